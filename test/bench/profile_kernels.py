"""Runs on the GPU machine: the time of each kernel of one run of a compiled
model executable, from Nsight Compute (gpu__time_duration, clocks left
alone), summed by kernel name, largest first.
Usage: python3 profile_kernels.py OUT.csv -- EXE ARGS...
Prints a table: kernel, launches, total µs, share."""
import collections
import csv
import io
import subprocess
import sys

out_csv = sys.argv[1]
cmd = sys.argv[sys.argv.index("--") + 1:]
ncu = ["ncu", "--clock-control", "none", "--metrics", "gpu__time_duration.sum",
       "--csv", "--page", "raw"]
r = subprocess.run(ncu + cmd, capture_output=True, text=True, timeout=500)
open(out_csv, "w").write(r.stdout)
if r.returncode != 0:
    print(r.stdout[-3000:], r.stderr[-3000:])
    raise SystemExit(f"ncu failed ({r.returncode})")
text = r.stdout[r.stdout.index('"ID"'):] if '"ID"' in r.stdout else r.stdout
rows = list(csv.DictReader(io.StringIO(text)))
scale = {"nsecond": 1.0, "usecond": 1e3, "msecond": 1e6, "second": 1e9}
ns = 1.0
for row in rows[:1]:
    ns = scale.get(row.get("gpu__time_duration.sum", ""), 1.0)
tot = collections.defaultdict(float)
cnt = collections.Counter()
for row in rows:
    try:
        t = ns * float(row["gpu__time_duration.sum"].replace(",", ""))
    except (KeyError, ValueError):
        continue
    name = row.get("Kernel Name", "?")
    tot[name] += t
    cnt[name] += 1
total = sum(tot.values())
print(f"{len(rows)} kernel launches, {total / 1e3:.1f} µs of kernel time")
print(f"| kernel | launches | µs | share |\n|---|---|---|---|")
for name, t in sorted(tot.items(), key=lambda x: -x[1])[:25]:
    print(f"| {name[:60]} | {cnt[name]} | {t / 1e3:.1f} | {t / total:.1%} |")

#!/usr/bin/env python3
"""The share of the expert kernels' MMA rows that are tokens, by row-tile
scheme, for the standard shapes' prefill points under random routing (k
distinct experts a token, uniform), the mean of 20 draws (no GPU needed):

  row_waste.py [--tokens 1024,8192] [--draws 20]

Schemes: 128 (row tiles of 128), 192s128 (the wgmma kernels' tiles 128
apart with a last tile of up to 192 rows; a last tile of at most 128 rows
costs 128), 192 (192-row tiles 192 apart, a last one of at most 128 rows
costing 128), 64 (m64 tiles), 16 (a granularity of 16 rows, what tiles with
the tokens as the MMA's N dimension, "swap AB", would reach), and
192s128/G, 192/G (those tiles with the band past 128 rows multiplied in
sub-bands of G rows: --gpu-wgmma-band=swapG). Where a point is bound by the
tensor cores, its time follows the computed rows, so the share bounds what
a finer tile could gain there."""
import argparse
import random

from shapes import SHAPES


def computed_rows(count, scheme):
    if count == 0:
        return 0
    tiles, _, sub = scheme.partition("/")
    if tiles in ("192s128", "192"):
        step = 128 if tiles == "192s128" else 192
        rows = 0
        while count > 192:
            rows, count = rows + step, count - step
        if count <= 128:
            return rows + 128
        g = int(sub or 64)
        return rows + 128 + -(-(count - 128) // g) * g
    step = int(scheme)
    return -(-count // step) * step


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", default="1024,8192")
    p.add_argument("--draws", type=int, default=20)
    args = p.parse_args()
    schemes = ("128", "192s128", "192s128/32", "192s128/16", "192", "192/32",
               "192/16", "64", "16")
    rnd = random.Random(0)
    print("| shape | tokens | " + " | ".join(schemes) + " |")
    print("|---|---|" + "---|" * len(schemes))
    for name, spec in SHAPES.items():
        experts, k = spec[0], spec[1]
        for t in (int(v) for v in args.tokens.split(",")):
            useful = {s: 0 for s in schemes}
            total = {s: 0 for s in schemes}
            for _ in range(args.draws):
                counts = [0] * experts
                for _ in range(t):
                    for e in rnd.sample(range(experts), k):
                        counts[e] += 1
                for s in schemes:
                    useful[s] += t * k
                    total[s] += sum(computed_rows(c, s) for c in counts)
            print("| %s | %d | " % (name, t) +
                  " | ".join("%.3f" % (useful[s] / total[s]) for s in schemes) + " |")


if __name__ == "__main__":
    main()

"""A plain NCCL all-to-all and all-reduce (float32) of given byte counts
between the ranks of an mpirun launch (torch.distributed, backend nccl),
timed with CUDA events: the baselines for the compiled exchanges' and
all-reduces' achieved bandwidth.
Usage: mpirun -np N python3 nccl_alltoall.py BYTES_PER_RANK [...]"""
import os
import sys

import torch
import torch.distributed as dist

rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", rank))
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29533")
torch.cuda.set_device(local)
dist.init_process_group("nccl", rank=rank, world_size=size)
for nbytes in [int(a) for a in sys.argv[1:]]:
    x = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(5):
        dist.all_to_all_single(y, x)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    iters = 50
    start.record()
    for _ in range(iters):
        dist.all_to_all_single(y, x)
    stop.record()
    torch.cuda.synchronize()
    us = start.elapsed_time(stop) * 1e3 / iters
    # Check the exchange itself: block j of y is block `rank` of rank j's x.
    ref = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(ref, x)
    chunk = nbytes // size
    ok = all(torch.equal(y[j * chunk:(j + 1) * chunk], ref[j][rank * chunk:(rank + 1) * chunk]) for j in range(size))
    if rank == 0:
        print(f"alltoall {nbytes} bytes per rank: {us:.1f} us, {nbytes / us / 1e3:.2f} GB/s, correct={ok}")
    # All-reduce of the same bytes as float32 (the runtime sums in f32),
    # checked against the sum of the gathered inputs.
    a = torch.randn(nbytes // 4, device="cuda") + rank
    parts = [torch.empty_like(a) for _ in range(size)]
    dist.all_gather(parts, a)
    b = a.clone()
    dist.all_reduce(b)
    summed = torch.allclose(b, torch.stack(parts).sum(0), rtol=1e-5, atol=1e-5)
    for _ in range(5):
        dist.all_reduce(b)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        dist.all_reduce(b)
    stop.record()
    torch.cuda.synchronize()
    us = start.elapsed_time(stop) * 1e3 / iters
    if rank == 0:
        print(f"allreduce {nbytes} bytes per rank: {us:.1f} us, "
              f"{nbytes / us / 1e3:.2f} GB/s (algorithm bandwidth), correct={summed}")
dist.destroy_process_group()

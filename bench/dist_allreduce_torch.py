"""PyTorch's all-reduce measured as bench/dist_allreduce.ts measures patchwork's, for the same table.

For each size (doubling from --min to --max bytes): --warmup untimed then --iters timed in-place
sums on one GPU per process (NCCL), queued back to back and synchronised once; the mean time per
all-reduce over the slowest rank, the algorithm bandwidth (bytes / time) and the bus bandwidth
(algorithm bandwidth x 2(W - 1)/W), as nccl-tests reports them. Rank 0 prints a markdown table
and, with --json FILE, appends one JSON record per size.

    torchrun --nproc_per_node 2 bench/dist_allreduce_torch.py --max 1073741824 --json out/allreduce.jsonl
"""

import argparse
import json
import os
import time

import torch
import torch.distributed as dist

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--min", type=int, default=8, help="smallest size, bytes")
parser.add_argument("--max", type=int, default=64 * 2**20, help="largest size, bytes (sizes double)")
parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
parser.add_argument("--iters", type=int, default=20, help="timed all-reduces per size")
parser.add_argument("--warmup", type=int, default=5, help="untimed all-reduces per size first")
parser.add_argument("--json", help="append rank 0's records to this JSON-lines file")
args = parser.parse_args()

torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
dtype = DTYPES[args.dtype]
item = torch.tensor([], dtype=dtype).element_size()
if rank == 0:
    print(f"all-reduce (sum, {args.dtype}) on {world} ranks, pytorch {torch.__version__} nccl {torch.cuda.nccl.version()}")
    print("| bytes | elements | time (µs) | algbw (GB/s) | busbw (GB/s) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
records = []
size = args.min
while size <= args.max:
    n = max(1, size // item)
    x = torch.ones(n, dtype=dtype, device="cuda")
    for _ in range(args.warmup):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    seconds = torch.tensor([(time.perf_counter() - t0) / args.iters], dtype=torch.float64, device="cuda")
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    t = seconds.item()
    algbw = n * item / t / 1e9
    busbw = algbw * 2 * (world - 1) / world
    if rank == 0:
        print(f"| {n * item} | {n} | {t * 1e6:.1f} | {algbw:.3f} | {busbw:.3f} |")
    records.append({"impl": "pytorch-nccl", "ranks": world, "dtype": args.dtype, "bytes": n * item,
                    "seconds": t, "algbw": algbw, "busbw": busbw})
    del x
    size *= 2
if rank == 0 and args.json:
    with open(args.json, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
dist.destroy_process_group()

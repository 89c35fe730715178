#!/usr/bin/env python3
"""PyTorch's side of bench/lm_attention.ts: causal grouped-query attention (32 query heads, 8 key/value
heads, head dim 128, bfloat16) forward, and forward + backward, through scaled_dot_product_attention
with the flash backend alone (torch.nn.attention.sdpa_kernel), for square sequences (L = 2K, 8K,
16K) and for chunks of queries (128, 1024) at the end of a 16K key prefix (the bottom-right causal
mask: query i sees keys up to prefix − chunk + i, as a SeCO chunk reads its cache).

FLOPs count the causal pairs only: forward 4·Hq·D per (query, key) pair, backward 2.5× that
(flash attention's convention). Median milliseconds of --reps runs with CUDA events after warm-up,
inputs drawn fresh from N(0, 1) (never zeros) and the output gradient too.

--dump DIR writes, for the first case, the inputs, the output gradient, PyTorch's outputs and
gradients, and float32 references of both (plain ops on upcast inputs) as DIR/attention_case.safetensors,
so bench/lm_attention.ts can measure both implementations' error against the same reference.

  python3 bench/torch_attention.py --json out/torch_attention.jsonl --dump /tmp/attn
  python3 bench/torch_attention.py --heads 4 --kv-heads 2 --head-dim 16 --cases 64,32x64 --reps 2   # CPU check
"""

import argparse
import contextlib
import json
import struct
import sys

import torch

import torch_llama as tl

PEAK_TFLOPS = 989.0  # H200 SXM dense bfloat16, datasheet


def parse_case(text):
    """'2048' → a square causal sequence; '128x16384' → 128 queries at the end of 16384 keys."""
    q, _, k = text.partition("x")
    return int(q), int(k or q)


def causal_pairs(lq, lk):
    return lq * (lk - lq) + lq * (lq + 1) // 2


def flash_only():
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.FLASH_ATTENTION), "flash"
    except ImportError:
        return contextlib.nullcontext(), "default"


def time_ms(fn, reps, warmup, cuda):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            with tl.Timer("cpu") as t:
                fn()
            times.append(t.seconds * 1e3)
    return sorted(times)[len(times) // 2]


def write_safetensors(path, tensors):
    """bfloat16 and float32 tensors, no library needed."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw, dtype = t.view(torch.int16).numpy().tobytes(), "BF16"
        else:
            raw, dtype = t.float().numpy().astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for c in chunks:
            f.write(c)


def reference(q, k, v, dout):
    """Output and gradients in float32 from plain ops (the mask and grouping written out)."""
    q32, k32, v32 = (x.detach().float().requires_grad_(True) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    s = q32 @ k32.repeat_interleave(group, 1).transpose(-1, -2) / q.shape[-1] ** 0.5
    s = s.masked_fill(~tl.causal_mask(q.shape[2], k.shape[2], q.device), float("-inf"))
    out = s.softmax(-1) @ v32.repeat_interleave(group, 1)
    out.backward(dout.float())
    return out.detach(), q32.grad, k32.grad, v32.grad


def run_case(args, first, lq, lk, g, device, dtype, cuda):
    """Times one case and prints its row (and appends its JSON line)."""
    q = torch.randn(1, args.heads, lq, args.head_dim, device=device, dtype=dtype, generator=g)
    k = torch.randn(1, args.kv_heads, lk, args.head_dim, device=device, dtype=dtype, generator=g)
    v = torch.randn(1, args.kv_heads, lk, args.head_dim, device=device, dtype=dtype, generator=g)
    dout = torch.randn(1, args.heads, lq, args.head_dim, device=device, dtype=dtype, generator=g)
    q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True)

    def forward():
        with torch.no_grad():
            return tl.sdpa(q, k, v)

    def both():
        out = tl.sdpa(q, k, v)
        return torch.autograd.grad(out, (q, k, v), dout)

    def measure(context):
        with context:
            fwd, fb = time_ms(forward, args.reps, args.warmup, cuda), time_ms(both, args.reps, args.warmup, cuda)
            if args.dump and first:
                out = tl.sdpa(q, k, v)
                dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout)
                ref = reference(q, k, v, dout)
                write_safetensors(f"{args.dump}/attention_case.safetensors", dict(
                    q=q, k=k, v=v, dout=dout, out=out, dq=dq, dk=dk, dv=dv, ref_out=ref[0], ref_dq=ref[1],
                    ref_dk=ref[2], ref_dv=ref[3]))
        return fwd, fb

    context, name = flash_only() if cuda else (contextlib.nullcontext(), "default")
    try:
        fwd, fb = measure(context)
    except RuntimeError as e:  # the flash backend refused these inputs: PyTorch's own choice, said so
        name = f"default; flash refused: {str(e).splitlines()[0][:100]}"
        fwd, fb = measure(contextlib.nullcontext())
    flops = 4 * args.heads * args.head_dim * causal_pairs(lq, lk)
    tf, tfb = flops / fwd / 1e9, 3.5 * flops / fb / 1e9
    print(f"| PyTorch ({name}) | {lq} × {lk} | {fwd:.3f} | {fb:.3f} | {tf:.0f} | {tfb:.0f} | "
          f"{100 * tfb / PEAK_TFLOPS:.0f}% |", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(dict(impl="torch", backend=name, queries=lq, keys=lk, heads=args.heads,
                                    kv_heads=args.kv_heads, head_dim=args.head_dim, fwd_ms=fwd, fwd_bwd_ms=fb,
                                    fwd_tflops=tf, fwd_bwd_tflops=tfb, attention=tl.attention_paths(),
                                    **tl.device_info())) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="2048,8192,16384,128x16384,1024x16384")
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", help="append one JSON line per case here")
    p.add_argument("--dump", help="folder for the first case's inputs, outputs and float32 references")
    args = p.parse_args()
    tl.quiet()
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    g = torch.Generator(device=device).manual_seed(0)
    print("| impl | queries × keys | fwd ms | fwd+bwd ms | fwd TFLOP/s | fwd+bwd TFLOP/s | % of 989 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, case in enumerate(args.cases.split(",")):
        run_case(args, n == 0, *parse_case(case), g, device, dtype, cuda)
    return 0


if __name__ == "__main__":
    sys.exit(main())

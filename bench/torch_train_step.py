#!/usr/bin/env python3
"""PyTorch eager baseline of bench/lm_step.ts: one training step of a Llama shape (random weights,
batch × L random tokens, the whole sequence back-propagated, AdamW), in two ways of keeping
float32 master weights for bfloat16 arithmetic:

- `master`: bfloat16 parameters; the optimiser holds float32 copies, steps them on the widened
  gradients and writes them back rounded (what patchwork's AdamW does for bfloat16 parameters);
- `autocast`: float32 parameters, the forward pass and loss under torch.autocast(bfloat16) (PyTorch's
  usual mixed-precision recipe).

Attention is scaled_dot_product_attention (flash on an H200); AdamW is torch's fused one where
the device has it; the loss is cross-entropy over the full logits in float32 (PyTorch's usual).
tokens/s = batch·L / median step seconds, after warm-up steps.

  python3 bench/torch_train_step.py --shape llama-3.2-1b --seq 2048 --json out/torch_step.jsonl
  python3 bench/torch_train_step.py --shape tiny --seq 64 --steps 2 --warmup 1     # CPU check
"""

import argparse
import json
import statistics

import torch

import torch_llama as tl


def step_fn(model, recipe, params, lr):
    fused = dict(fused=True) if params[0].is_cuda else {}
    if recipe == "master":
        masters = [p.detach().float().clone().requires_grad_(True) for p in params]
        opt = torch.optim.AdamW(masters, lr=lr, betas=(0.9, 0.95), weight_decay=0.1, **fused)
    else:
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.1, **fused)
    device_type = "cuda" if params[0].is_cuda else "cpu"

    def step(ids):
        inputs, targets = ids[:, :-1], ids[:, 1:]
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=recipe == "autocast"):
            loss = tl.loss_sum(model.hidden(inputs), model.head_weight, targets) / targets.numel()
        loss.backward()
        if recipe == "master":
            for p, m in zip(params, masters):
                m.grad = p.grad.float()
                p.grad = None
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for p, m in zip(params, masters):
                    p.copy_(m)
        else:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def run(args, recipe, device):
    dtype = torch.bfloat16 if recipe == "master" else torch.float32
    model = tl.Llama(tl.SHAPES[args.shape], dtype=dtype, device=device, seed=0).train()
    params = [p for p in model.parameters()]
    step = step_fn(model, recipe, params, 1e-4)
    g = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randint(0, model.shape["vocab"], (args.batch, args.seq + 1), generator=g).to(device)
               for _ in range(2)]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        with tl.Timer(device) as t:
            losses.append(float(step(batches[i % 2])))
        if i >= args.warmup:
            times.append(t.seconds)
    seconds = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    row = dict(impl="torch", recipe=recipe, shape=args.shape, batch=args.batch, seq=args.seq, seconds=seconds,
               tokens_per_s=args.batch * args.seq / seconds, peak_gib=peak, losses=losses[:3],
               params=sum(p.numel() for p in params), attention=tl.attention_paths(), **tl.device_info())
    del model, params, step
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="llama-3.2-1b", choices=sorted(tl.SHAPES))
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--recipes", default="master,autocast")
    p.add_argument("--json", help="append one JSON line per recipe here")
    args = p.parse_args()
    tl.quiet()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("| impl | recipe | shape | tokens/step | step s (median) | tokens/s | peak GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for recipe in args.recipes.split(","):
        row = run(args, recipe, device)
        peak = "—" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
        print(f"| PyTorch eager | {recipe} | {args.shape} | {args.batch * args.seq} | {row['seconds']:.4f} | "
              f"{row['tokens_per_s']:.0f} | {peak} |", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

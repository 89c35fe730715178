"""PyTorch eager reference for bench/mlp_step.ts (issue "CUDA backend", benchmark 4).

The same model and step: an MLP of --layers nn.Linear(width, width) (bias, an activation between
layers, none after the last), batch --batch, MSE loss against a random float32 target, AdamW
(lr 1e-4, weight decay 0.01) in
  bf16: float32 parameters (the master weights) under torch.autocast(bfloat16): the linear layers
        run in bfloat16, the loss in float32 (autocast's rule for mse_loss), gradients reach the
        float32 parameters; AdamW with the multi-tensor "foreach" kernels (foreach=True,
        fused=False: what foreach=None picks for CUDA parameters);
  fp32: float32 throughout with TF32 off (torch.backends.cuda.matmul.allow_tf32 = False,
        float32 matmul precision "highest").
--fused adds a bf16 row with AdamW(fused=True) for comparison.

Timing as in mlp_step.ts: warm-up steps, then --repeats blocks of --steps steps between two CUDA
events; ms/step is the median block over its steps. Effective TFLOP/s = 6·P·B / t. Peak memory is
torch.cuda.max_memory_allocated() over the timed steps.

  PYTHONUNBUFFERED=1 python3 bench/mlp_step_torch.py [--layers 8] [--width 4096] [--batch 4096]
      [--act gelu|gelu_tanh|relu] [--modes bf16,fp32] [--steps 10] [--repeats 3] [--warmup 3]
      [--no-breakdown] [--fused]
"""

import argparse
import datetime
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=8)
p.add_argument("--width", type=int, default=4096)
p.add_argument("--batch", type=int, default=4096)
p.add_argument("--act", choices=["gelu", "gelu_tanh", "relu"], default="gelu")
p.add_argument("--modes", default="bf16,fp32")
p.add_argument("--steps", type=int, default=10)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--no-breakdown", dest="breakdown", action="store_false")
p.add_argument("--fused", action="store_true")
args = p.parse_args()
sys.stdout.reconfigure(encoding="utf-8")

if not torch.cuda.is_available():
    raise SystemExit("bench/mlp_step_torch.py needs a CUDA GPU")
dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


def activation() -> nn.Module:
    if args.act == "relu":
        return nn.ReLU()
    return nn.GELU(approximate="tanh" if args.act == "gelu_tanh" else "none")


def build() -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(args.layers):
        mods.append(nn.Linear(args.width, args.width))
        if i < args.layers - 1:
            mods.append(activation())
    return nn.Sequential(*mods).to(dev)


def time_ms(fn) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def per_call(fn, n: int) -> float:
    fn()
    torch.cuda.synchronize()

    def block():
        for _ in range(n):
            fn()

    return statistics.median(time_ms(block) / n for _ in range(args.repeats))


def run(mode: str, fused: bool):
    torch.manual_seed(0)
    bf16 = mode == "bf16"
    model = build()
    params = sum(q.numel() for q in model.parameters())
    # foreach=True is what AdamW picks by default for CUDA parameters; name it so the row is unambiguous.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01,
                            **(dict(fused=True) if fused else dict(foreach=True, fused=False)))
    x = torch.randn(args.batch, args.width, device=dev, dtype=torch.bfloat16 if bf16 else torch.float32)
    y = torch.randn(args.batch, args.width, device=dev)

    def loss_of():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            return F.mse_loss(model(x).float(), y)

    def step():
        loss = loss_of()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    losses = [step() for _ in range(args.warmup)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    blocks, hosts = [], []
    for _ in range(args.repeats):

        def block():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                losses.append(step())
            hosts.append((time.perf_counter() - t0) * 1e3 / args.steps)

        blocks.append(time_ms(block) / args.steps)
    peak = torch.cuda.max_memory_allocated()
    ms = statistics.median(blocks)
    lv = [losses[0].item(), losses[args.warmup].item(), losses[-1].item()]
    label = ("bf16 autocast, fp32 AdamW" if bf16 else "fp32, TF32 off") + (" (fused=True)" if fused else " (foreach)")
    row = dict(mode=label, ms=ms, tflops=6 * params * args.batch / (ms * 1e9), peak=peak,
               host=statistics.median(hosts), loss=" → ".join(f"{v:.4g}" for v in lv))

    bd = None
    if args.breakdown and not fused:
        n = max(2, (args.steps + 1) // 2)

        def fwd():
            loss_of()

        def fwd_bwd():
            loss_of().backward()
            opt.zero_grad(set_to_none=True)

        forward = per_call(fwd, n)
        forward_backward = per_call(fwd_bwd, n)
        loss_of().backward()
        optimizer = per_call(opt.step, n)
        opt.zero_grad(set_to_none=True)
        dt = torch.bfloat16 if bf16 else torch.float32
        weights = [m.weight.detach().to(dt) for m in model if isinstance(m, nn.Linear)]
        g = torch.randn(args.batch, args.width, device=dev, dtype=dt)
        xx = x.to(dt)

        def gemms():
            for i, w in enumerate(weights):
                xx @ w.t()
                g.t() @ xx
                if i > 0:
                    g @ w

        with torch.no_grad():
            gemm = per_call(gemms, n)
        bd = dict(mode=mode, step=ms, forward=forward, fwd_bwd=forward_backward, opt=optimizer, gemms=gemm,
                  count=3 * len(weights) - 1)
    del model, opt, x, y, losses
    torch.cuda.empty_cache()
    return row, bd


rows, bds = [], []
for mode in args.modes.split(","):
    for fused in ([False, True] if args.fused and mode == "bf16" else [False]):
        r, b = run(mode, fused)
        rows.append(r)
        if b:
            bds.append(b)

P = args.layers * (args.width * args.width + args.width)
print("# PyTorch eager MLP training step (forward, backward, AdamW)\n")
print(f"device: {torch.cuda.get_device_name()} (torch {torch.__version__}); "
      f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
      f"MLP {args.layers} × Linear({args.width} → {args.width}) with {args.act}, batch {args.batch}, "
      f"{P:,} parameters; MSE loss (float32); AdamW lr 1e-4, weight decay 0.01; "
      f"{args.warmup} warm-up steps, median of {args.repeats} blocks of {args.steps} steps timed with CUDA events\n")
print("| impl | mode | ms/step | TFLOP/s (6·P·B/t) | peak memory GiB | host enqueue ms/step | loss (first → timed → last) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    print(f"| torch | {r['mode']} | {r['ms']:.2f} | {r['tflops']:.1f} | {r['peak'] / 2**30:.2f} | "
          f"{r['host']:.2f} | {r['loss']} |")
print()
if bds:
    print(f"## Where the time goes (ms; each part timed on its own, median of {args.repeats} blocks)\n")
    print("| impl | mode | step | forward (+loss) | forward + backward | AdamW step | GEMMs alone | GEMM share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for b in bds:
        print(f"| torch | {b['mode']} | {b['step']:.2f} | {b['forward']:.2f} | {b['fwd_bwd']:.2f} | {b['opt']:.2f} | "
              f"{b['gemms']:.2f} ({b['count']}) | {100 * b['gemms'] / b['step']:.0f}% |")
    print()

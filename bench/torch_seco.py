#!/usr/bin/env python3
"""PyTorch baseline of bench/lm_chunked_scale.ts: one training iteration of a Llama with LoRA (r 8,
α 16 on q_proj and v_proj, bfloat16 weights, AdamW on the adapters) over one sequence of L tokens, by

- `full`: the whole sequence in one graph, one backward pass (flash attention);
- `checkpoint`: the same with every decoder layer recomputed in the backward pass;
- `seco:C`: Li et al.'s Algorithm 1 — every chunk of C tokens forward without a graph, each layer's
  keys and values kept; then for chunks k … 1, the chunk's graph rebuilt on the detached keys and
  values of the chunks before it (rotary positions offset), its loss (÷ all tokens) back-propagated
  together with the gradient its own keys and values received from later chunks;
- `spaco:C:T`: Algorithm 2 — the same forward, then the backward for T of the k chunks drawn
  uniformly, the relayed key/value gradients multiplied by min(k/T, 2).

Losses take the logits one slice of 4096 positions at a time, recomputed in the backward pass (as
patchwork's sliced loss), so the vocabulary's logits never decide the longest L.

`--model hf` runs transformers' LlamaForCausalLM with PEFT's LoRA, every layer's attention through a
function registered with transformers' AttentionInterface; `--model plain` runs torch_llama.Llama.
For each method the lengths run in order (one warm-up iteration first); a length that runs out
of memory ends that method's list; `--longest` then looks further (doubling, then one bisection)
while the method's share of `--budget` seconds lasts. Rows print as they finish.

  python3 bench/torch_seco.py --model hf --shape llama-3-8b --lengths 16384,32768,65536 \\
      --methods full,checkpoint,seco:128,seco:256,spaco:256:8 --longest --budget 240 --json out/seco.jsonl
  python3 bench/torch_seco.py --check [--model hf]     # SeCO's gradients equal full backprop's (CPU)
"""

import argparse
import gc
import json
import math
import random
import sys
import time

import torch

import torch_llama as tl

NAME = "patchwork_bench"
LOSS_SLICE = 4096
OOM = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)


class Subject:
    """A model with LoRA seen the same way whichever code defines it: hidden states of tokens at a
    position, the head weight, an attention function (q, k, v, layer) → out it calls, checkpointing."""

    def __init__(self, kind, shape, dtype, device, r, alpha, max_len):
        self.kind, self.calls = kind, 0
        self.layers, self.kv, self.head_dim = shape["layers"], shape["kv"], shape["head_dim"]
        self.fn = lambda q, k, v, layer: tl.sdpa(q, k, v)
        if kind == "plain":
            self.model = tl.Llama(shape, dtype=dtype, device=device, seed=0)
            self.model.attention = self._attend
            self.lora = tl.apply_lora(self.model, r, alpha, dtype=tl.wide_dtype(dtype))
        else:
            self.model, self.lora = hf_model(shape, dtype, device, r, alpha, max_len, self)
        self.model.train()

    def _attend(self, q, k, v, layer):
        self.calls += 1
        return self.fn(q, k, v, layer)

    def hidden(self, ids, start):
        if self.kind == "plain":
            return self.model.hidden(ids, start)
        pos = torch.arange(start, start + ids.shape[1], device=ids.device).unsqueeze(0)
        return self.base.model(input_ids=ids, position_ids=pos, use_cache=False)[0]

    @property
    def head_weight(self):
        return self.model.head_weight if self.kind == "plain" else self.base.lm_head.weight

    def checkpoint(self, on):
        if self.kind == "plain":
            self.model.checkpoint_layers = on
        elif on:
            self.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.base.gradient_checkpointing_disable()


def hf_model(shape, dtype, device, r, alpha, max_len, subject):
    """transformers' Llama with this shape, random weights in `dtype`, PEFT LoRA on q_proj and v_proj;
    attention through `subject._attend` (registered with AttentionInterface)."""
    import peft
    import transformers

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        return subject._attend(query, key, value, module.layer_idx).transpose(1, 2).contiguous(), None

    transformers.AttentionInterface.register(NAME, attention)
    masks = getattr(transformers, "AttentionMaskInterface", None)
    if masks is not None:  # no mask tensor is built: the attention function applies the causal mask itself
        masks.register(NAME, lambda *args, **kwargs: None)
    kw = dict(vocab_size=shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["inter"],
              num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
              num_key_value_heads=shape["kv"], head_dim=shape["head_dim"], rms_norm_eps=shape["eps"],
              max_position_embeddings=max_len, tie_word_embeddings=shape["tie"], use_cache=False)
    s = shape["scaling"]
    scaling = None if s is None else dict(rope_type="llama3", factor=s["factor"], low_freq_factor=s["low"],
                                          high_freq_factor=s["high"], original_max_position_embeddings=s["original"])
    if hasattr(transformers.LlamaConfig(), "rope_parameters"):  # transformers 5
        kw["rope_parameters"] = dict(scaling or {"rope_type": "default"}, rope_theta=shape["theta"])
    else:
        kw.update(rope_theta=shape["theta"], rope_scaling=scaling)
    config = transformers.LlamaConfig(**kw, attn_implementation=NAME)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.LlamaForCausalLM(config).to(dtype)
    if getattr(model.config, "_attn_implementation", None) != NAME:
        model.set_attn_implementation(NAME)
    lora = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                           bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora)
    subject.base = model.get_base_model()
    return model, [p for p in model.parameters() if p.requires_grad]


def loss_of(m, ids, start, end, total):
    h = m.hidden(ids[:, start:end], start)
    return tl.loss_sum(h, m.head_weight, ids[:, start + 1:end + 1], LOSS_SLICE) / total


def whole(m, ids, checkpoint):
    """`full` and `checkpoint`: one graph over the sequence."""
    m.checkpoint(checkpoint)
    m.fn = lambda q, k, v, layer: tl.sdpa(q, k, v)
    try:
        loss = loss_of(m, ids, 0, ids.shape[1] - 1, ids.numel() - ids.shape[0])
        loss.backward()
    finally:
        m.checkpoint(False)
    return float(loss)


def chunked(m, ids, chunk, sampled=None, cap=2.0, rng=None):
    """SeCO (every chunk back-propagated) or SpaCO (`sampled` of them), as Algorithms 1 and 2."""
    b, length = ids.shape[0], ids.shape[1] - 1
    total, k = b * length, math.ceil(length / chunk)
    buf = dict(device=m.head_weight.device, dtype=m.head_weight.dtype)
    keys = [torch.empty(b, m.kv, length, m.head_dim, **buf) for _ in range(m.layers)]
    values = [torch.empty_like(x) for x in keys]
    start = [0]

    def store(q, kk, vv, layer):
        s, e = start[0], start[0] + kk.shape[2]
        keys[layer][:, :, s:e], values[layer][:, :, s:e] = kk, vv
        return tl.sdpa(q, keys[layer][:, :, :e], values[layer][:, :, :e])

    m.fn, loss = store, 0.0
    with torch.no_grad():
        for j in range(k):
            start[0] = j * chunk
            loss += float(loss_of(m, ids, j * chunk, min(length, (j + 1) * chunk), total))
    grad_k = [torch.zeros_like(x) for x in keys]
    grad_v = [torch.zeros_like(x) for x in values]
    order = range(k - 1, -1, -1)
    factor = 1.0
    if sampled is not None:
        order = sorted((rng or random).sample(range(k), sampled), reverse=True)
        factor = min(k / sampled, cap)
    for j in order:
        s, e = j * chunk, min(length, (j + 1) * chunk)
        past_k = [x[:, :, :s].detach().requires_grad_(s > 0) for x in keys]
        past_v = [x[:, :, :s].detach().requires_grad_(s > 0) for x in values]
        own = {}

        def rebuild(q, kk, vv, layer):
            own[layer] = (kk, vv)
            if s == 0:
                return tl.sdpa(q, kk, vv)
            return tl.sdpa(q, torch.cat([past_k[layer], kk], 2), torch.cat([past_v[layer], vv], 2))

        m.fn = rebuild
        outputs, grads = [loss_of(m, ids, s, e, total)], [None]
        if e < length:
            for layer, (kk, vv) in own.items():  # (layer 0's keys need no gradient: no adapter before them)
                for x, g in ((kk, grad_k[layer]), (vv, grad_v[layer])):
                    if x.requires_grad:
                        outputs.append(x)
                        grads.append(g[:, :, s:e])
        torch.autograd.backward(outputs, grads)
        if s > 0:
            for layer in range(m.layers):
                for past, g in ((past_k[layer], grad_k[layer]), (past_v[layer], grad_v[layer])):
                    if past.grad is not None:
                        g[:, :, :s].add_(past.grad, alpha=factor)
    return loss  # the mean loss of the forward pass, exact whatever was sampled


def iteration(m, method, ids, rng):
    parts = method.split(":")
    if parts[0] in ("full", "checkpoint"):
        return whole(m, ids, parts[0] == "checkpoint")
    if parts[0] == "seco":
        return chunked(m, ids, int(parts[1]))
    if parts[0] == "spaco":
        return chunked(m, ids, int(parts[1]), sampled=int(parts[2]), rng=rng)
    raise SystemExit(f"unknown method {method} (full, checkpoint, seco:C, spaco:C:T)")


def check(kind):
    """SeCO equals full backprop and checkpointing (every LoRA gradient), SpaCO with every chunk and
    no compensation equals SeCO: a tiny model on the CPU (float64 plain; float32 for transformers,
    whose RMSNorm computes in float32)."""
    dtype, tol = (torch.float64, 1e-10) if kind == "plain" else (torch.float32, 1e-4)
    shape = dict(tl.SHAPES["tiny"], layers=3, theta=500.0)
    m = Subject(kind, shape, dtype, "cpu", 4, 8, 256)
    with torch.no_grad():
        for p in m.lora:
            p.copy_(0.3 * torch.randn(p.shape, dtype=p.dtype))
    ids = torch.randint(0, shape["vocab"], (2, 97), generator=torch.Generator().manual_seed(3))
    results = {}
    for method in ("full", "checkpoint", "seco:16", "seco:40", "spaco:16:6"):
        for p in m.lora:
            p.grad = None
        m.calls = 0
        loss = iteration(m, method, ids, random.Random(0))
        if m.calls == 0:
            raise SystemExit(f"{kind}: the model never called the benchmark's attention function")
        results[method] = (loss, torch.cat([p.grad.flatten().double() for p in m.lora]))
    ref_loss, ref = results["full"]
    worst = 0.0
    for method, (loss, g) in results.items():
        rel = float((g - ref).abs().max() / ref.abs().max())
        worst = max(worst, rel, abs(loss - ref_loss) / abs(ref_loss))
        print(f"{kind} {method}: loss {loss:.10f}, gradient vs full backprop {rel:.2e}")
    print(f"check {'passed' if worst <= tol else 'FAILED'}: worst {worst:.2e} (tolerance {tol})")
    return 0 if worst <= tol else 1


def measure(args):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lengths = [int(x) for x in args.lengths.split(",")]
    methods = args.methods.split(",")
    t0 = time.perf_counter()
    m = Subject(args.model, tl.SHAPES[args.shape], dtype, device, 8, 16, max(args.max_len, max(lengths)) + 1)
    opt = torch.optim.AdamW(m.lora, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    print(f"model built in {time.perf_counter() - t0:.1f} s ({args.model}, {args.shape}, "
          f"{sum(p.numel() for p in m.model.parameters()) / 1e9:.2f} B parameters)", flush=True)
    print("| impl | method | L | s/iteration | peak GiB | loss |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    g, rng = torch.Generator().manual_seed(1), random.Random(0)
    tokens = torch.randint(0, tl.SHAPES[args.shape]["vocab"], (1, args.max_len + 1), generator=g).to(device)

    def run(method, length):
        for p in m.lora:
            p.grad = None
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with tl.Timer(device) as t:
            loss = iteration(m, method, tokens[:, :length + 1], rng)
            opt.step()
            opt.zero_grad(set_to_none=True)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        return t.seconds, peak, loss

    def row(method, length, status, seconds=None, peak=None, loss=None):
        cells = [f"{seconds:.2f}" if seconds else status, f"{peak:.1f}" if peak else "—",
                 f"{loss:.4f}" if loss else "—"]
        print(f"| PyTorch ({args.model}) | {method} | {length} | {' | '.join(cells)} |", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(dict(impl="torch", model=args.model, shape=args.shape, method=method, length=length,
                                        status=status, seconds=seconds, peak_gib=peak, loss=loss,
                                        attention=tl.attention_paths(), **tl.device_info())) + "\n")

    for n, method in enumerate(methods):
        budget = (args.budget - (time.perf_counter() - t0)) / (len(methods) - n)
        began, last, ok, failed = time.perf_counter(), None, 0, None
        try:
            # warm-up: kernels chosen, caches made (SpaCO's long enough for its T chunks)
            parts = method.split(":")
            run(method, max(min(lengths[0], args.warmup_len), int(parts[1]) * int(parts[2]) if len(parts) == 3 else 0))
        except OOM:
            pass
        todo = list(lengths)
        while todo:
            length = todo.pop(0)
            left = budget - (time.perf_counter() - began)
            if last and last[1] * (length / last[0]) ** 1.7 > left:
                row(method, length, f"skipped (about {last[1] * (length / last[0]) ** 1.7:.0f} s > {left:.0f} s left)")
                break
            try:
                seconds, peak, loss = run(method, length)
            except OOM:
                failed = length
                row(method, length, "out of memory")
                gc.collect()
                torch.cuda.empty_cache()
                if args.longest and ok and length - ok > lengths[0] // 2:
                    todo = [ok + (length - ok) // 2 // 1024 * 1024]
                    continue
                break
            row(method, length, "ok", seconds, peak, loss)
            last, ok = (length, seconds), max(ok, length)
            if not todo and args.longest and (failed is None and length * 2 <= args.max_len):
                todo = [length * 2]
        print(f"longest trained by {method}: {ok or 'none'}{'' if failed else ' (no out-of-memory reached)'}",
              flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["hf", "plain"], default="hf")
    p.add_argument("--shape", default="llama-3-8b", choices=sorted(tl.SHAPES))
    p.add_argument("--lengths", default="16384,32768,65536")
    p.add_argument("--methods", default="full,checkpoint,seco:128,seco:256,spaco:256:8")
    p.add_argument("--longest", action="store_true", help="look past the lengths for the longest that trains")
    p.add_argument("--max-len", type=int, default=262144, help="the longest length tried")
    p.add_argument("--warmup-len", type=int, default=2048)
    p.add_argument("--budget", type=float, default=240.0, help="seconds for all methods")
    p.add_argument("--json", help="append one JSON line per row here")
    p.add_argument("--check", action="store_true", help="compare the methods' gradients on a tiny model")
    args = p.parse_args()
    tl.quiet()
    return check(args.model) if args.check else measure(args)


if __name__ == "__main__":
    sys.exit(main())

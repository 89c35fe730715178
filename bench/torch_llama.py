"""A Llama-family decoder in plain PyTorch for the GPU benchmarks' baselines (torch_train_step.py,
torch_seco.py, torch_attention.py), written from the architecture as Hugging Face's Llama has it:
RMSNorm computed in float32, rotate-half rotary embeddings (Llama 3's frequency scaling), grouped-
query attention, SwiGLU, an untied or tied head. Every layer's attention goes through
`Llama.attention(q, k, v, layer)`, which a script may replace (SeCO reads keys and values held
outside the layer). LoRA as PEFT computes it: y = x·Wᵀ + (α/r)·x·Aᵀ·Bᵀ, W frozen.

Shapes are the ones patchwork's presets have (src/lm/config.ts), so both sides time the same model.
Runs on torch ≥ 1.13 (CPU checks here); PyTorch's fused attention (scaled_dot_product_attention,
flash on the GPU) where the version has it.
"""

import math
import time
import warnings

import torch
import torch.utils.checkpoint
import torch.nn.functional as F
from torch import nn

SHAPES = {
    "tiny": dict(vocab=259, hidden=64, inter=176, layers=2, heads=4, kv=2, head_dim=16, eps=1e-5, theta=10000.0,
                 scaling=None, tie=False),
    "llama-3.2-1b": dict(vocab=128256, hidden=2048, inter=8192, layers=16, heads=32, kv=8, head_dim=64, eps=1e-5,
                         theta=500000.0, scaling=dict(factor=32.0, low=1.0, high=4.0, original=8192), tie=True),
    "llama-3-8b": dict(vocab=128256, hidden=4096, inter=14336, layers=32, heads=32, kv=8, head_dim=128, eps=1e-5,
                       theta=500000.0, scaling=None, tie=False),
}

_PATHS = set()


def _note(path):
    """Says once which attention path ran (the results name it)."""
    if path not in _PATHS:
        _PATHS.add(path)
        print(f"attention path: {path}", flush=True)


def attention_paths():
    return sorted(_PATHS)


def wide_dtype(dtype):
    """float32 for arithmetic that Hugging Face does in float32 (float64 stays float64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def wide(x):
    return x.to(wide_dtype(x.dtype))


def causal_mask(lq, lk, device):
    """True where query i (the last lq positions of lk keys) may see key j."""
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(lk - lq)


def sdpa(q, k, v, causal=True):
    """softmax(q·kᵀ/√d + mask)·v per head; q [B, Hq, Lq, D], k and v [B, Hkv, Lk, D] with Hkv dividing
    Hq; causal with the queries as the last Lq positions of the keys. PyTorch's
    scaled_dot_product_attention where it exists (grouped-query natively from torch 2.5, the
    bottom-right causal mask through torch.nn.attention.bias), else the same in plain ops."""
    lq, lk, group = q.shape[2], k.shape[2], q.shape[1] // k.shape[1]
    f = getattr(F, "scaled_dot_product_attention", None)
    if f is None:
        _note("composed (no scaled_dot_product_attention in this torch)")
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        s = wide(q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if causal:
            s = s.masked_fill(~causal_mask(lq, lk, q.device), float("-inf"))
        return (s.softmax(-1).to(v.dtype)) @ v
    kw = {}
    if causal and lq == lk:
        kw["is_causal"] = True
    elif causal:
        try:
            from torch.nn.attention.bias import causal_lower_right
            kw["attn_mask"] = causal_lower_right(lq, lk)
        except ImportError:
            kw["attn_mask"] = causal_mask(lq, lk, q.device)
    if group > 1:
        try:
            out = f(q, k, v, enable_gqa=True, **kw)
            _note(f"scaled_dot_product_attention, enable_gqa, {'mask' if 'attn_mask' in kw else 'is_causal'}")
            return out
        except (TypeError, RuntimeError) as e:
            _note(f"scaled_dot_product_attention on repeated keys/values ({type(e).__name__}: {str(e)[:80]})")
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    else:
        _note(f"scaled_dot_product_attention, {'mask' if 'attn_mask' in kw else 'is_causal'}")
    return f(q, k, v, **kw)


def inverse_frequencies(shape):
    d = shape["head_dim"]
    inv = 1.0 / shape["theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    s = shape["scaling"]
    if s is None:
        return inv.float()
    wavelen = 2 * math.pi / inv
    low, high = s["original"] / s["low"], s["original"] / s["high"]
    scaled = torch.where(wavelen > low, inv / s["factor"], inv)
    smooth = (s["original"] / wavelen - s["low"]) / (s["high"] - s["low"])
    smoothed = (1 - smooth) * scaled / s["factor"] + smooth * scaled
    return torch.where((wavelen >= high) & (wavelen <= low), smoothed, scaled).float()


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class RMSNorm(nn.Module):
    def __init__(self, n, eps, **factory):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, **factory))
        self.eps = eps

    def forward(self, x):
        h = wide(x)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class LoRALinear(nn.Module):
    """A frozen Linear plus (α/r)·x·Aᵀ·Bᵀ; A as PEFT draws it (Kaiming uniform), B zeros; the
    adapter in `dtype` (PEFT keeps adapters of a bfloat16 model in float32)."""

    def __init__(self, base, r, alpha, dtype):
        super().__init__()
        self.base, self.scale = base, alpha / r
        base.weight.requires_grad_(False)
        factory = dict(device=base.weight.device, dtype=dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + (F.linear(F.linear(x.to(self.lora_A.dtype), self.lora_A), self.lora_B) *
                               self.scale).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, s, **factory):
        super().__init__()
        self.heads, self.kv, self.d = s["heads"], s["kv"], s["head_dim"]
        self.q_proj = nn.Linear(s["hidden"], s["heads"] * s["head_dim"], bias=False, **factory)
        self.k_proj = nn.Linear(s["hidden"], s["kv"] * s["head_dim"], bias=False, **factory)
        self.v_proj = nn.Linear(s["hidden"], s["kv"] * s["head_dim"], bias=False, **factory)
        self.o_proj = nn.Linear(s["heads"] * s["head_dim"], s["hidden"], bias=False, **factory)

    def forward(self, x, cos, sin, attend, layer):
        b, t, _ = x.shape
        q = rotate(self.q_proj(x).view(b, t, self.heads, self.d).transpose(1, 2), cos, sin)
        k = rotate(self.k_proj(x).view(b, t, self.kv, self.d).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(b, t, self.kv, self.d).transpose(1, 2)
        return self.o_proj(attend(q, k, v, layer).transpose(1, 2).reshape(b, t, self.heads * self.d))


class Block(nn.Module):
    def __init__(self, s, **factory):
        super().__init__()
        self.input_layernorm = RMSNorm(s["hidden"], s["eps"], **factory)
        self.self_attn = Attention(s, **factory)
        self.post_attention_layernorm = RMSNorm(s["hidden"], s["eps"], **factory)
        self.gate_proj = nn.Linear(s["hidden"], s["inter"], bias=False, **factory)
        self.up_proj = nn.Linear(s["hidden"], s["inter"], bias=False, **factory)
        self.down_proj = nn.Linear(s["inter"], s["hidden"], bias=False, **factory)

    def forward(self, x, cos, sin, attend, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attend, layer)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    """The decoder; `hidden(ids, start)` gives the final normed hidden states of tokens at positions
    start, start + 1, …; `head_weight` is the LM head (the embedding when tied)."""

    def __init__(self, shape, dtype=torch.float32, device="cpu", seed=0):
        super().__init__()
        factory = dict(dtype=dtype, device=device)
        torch.manual_seed(seed)
        s = self.shape = dict(shape)
        self.embed_tokens = nn.Embedding(s["vocab"], s["hidden"], **factory)
        self.layers = nn.ModuleList(Block(s, **factory) for _ in range(s["layers"]))
        self.norm = RMSNorm(s["hidden"], s["eps"], **factory)
        self.lm_head = None if s["tie"] else nn.Linear(s["hidden"], s["vocab"], bias=False, **factory)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not name.endswith("norm.weight"):
                    p.normal_(0.0, 0.02)
        self.register_buffer("inv_freq", inverse_frequencies(s).to(device), persistent=False)
        self.attention = lambda q, k, v, layer: sdpa(q, k, v)
        self.checkpoint_layers = False

    @property
    def head_weight(self):
        return self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def rotary(self, start, length, dtype):
        pos = torch.arange(start, start + length, device=self.inv_freq.device, dtype=torch.float32)
        ang = pos[:, None] * self.inv_freq[None, :]
        ang = torch.cat([ang, ang], -1)
        return ang.cos().to(dtype), ang.sin().to(dtype)

    def hidden(self, ids, start=0):
        x = self.embed_tokens(ids)
        cos, sin = self.rotary(start, ids.shape[1], x.dtype)
        for i, layer in enumerate(self.layers):
            if self.checkpoint_layers and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, self.attention, i, use_reentrant=False)
            else:
                x = layer(x, cos, sin, self.attention, i)
        return self.norm(x)


def apply_lora(model, r=8, alpha=16, targets=("q_proj", "v_proj"), dtype=torch.float32):
    """Freezes every parameter and adapts the named Linear layers; returns the adapter parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, r, alpha, dtype))
    return [p for p in model.parameters() if p.requires_grad]


def loss_sum(hidden, head_weight, targets, slice_tokens=0):
    """Σ token cross-entropy in float32. slice_tokens > 0: the logits of one slice of positions at a
    time, recomputed in the backward pass (memory of one slice's logits, as patchwork's sliced loss)."""
    def part(h, t):
        return F.cross_entropy(wide(h @ head_weight.t()).flatten(0, -2), t.flatten(), reduction="sum")

    if slice_tokens <= 0 or hidden.shape[1] <= slice_tokens:
        return part(hidden, targets)
    total = 0.0
    for s in range(0, hidden.shape[1], slice_tokens):
        h, t = hidden[:, s:s + slice_tokens], targets[:, s:s + slice_tokens]
        total = total + (torch.utils.checkpoint.checkpoint(part, h, t, use_reentrant=False)
                         if torch.is_grad_enabled() else part(h, t))
    return total


class Timer:
    """Wall seconds of a region, the device drained at both ends."""

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t0


def device_info():
    if not torch.cuda.is_available():
        return dict(device="cpu", torch=torch.__version__)
    p = torch.cuda.get_device_properties(0)
    return dict(device=p.name, torch=torch.__version__, cuda=torch.version.cuda, sms=p.multi_processor_count,
                memory_gib=round(p.total_memory / 2**30, 1))


def quiet():
    warnings.filterwarnings("ignore", message=".*(TypedStorage|checkpoint|sdp_kernel).*")

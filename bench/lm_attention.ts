// Fused attention against PyTorch's scaled_dot_product_attention (flash backend): causal grouped-
// query attention in bfloat16 (32 query heads, 8 key/value heads, head dim 128 by default), the
// forward alone and forward + backward, for square sequences (L = 2K, 8K, 16K) and for chunks of
// queries (128, 1024) at the end of a 16K key prefix (a SeCO chunk reading its cache).
//
// FLOPs count the causal (query, key) pairs only, as bench/torch_attention.py does: forward
// 4·Hq·D per pair, forward + backward 3.5× that; TFLOP/s beside the H200's dense bfloat16 peak.
// Median of --reps runs after --warmup, the device drained at both ends of each. With --torch (the
// JSON lines of torch_attention.py) each row gets the time ratio ours/PyTorch; with --ref (the
// safetensors that `torch_attention.py --dump DIR` writes for its first case) both implementations'
// outputs and gradients are compared with the float32 reference on the same inputs.
//
//   python3 bench/torch_attention.py --json out/attn.jsonl --dump out
//   PATCHWORK_BACKEND=cuda deno run -A bench/lm_attention.ts --torch out/attn.jsonl \
//     --ref out/attention_case.safetensors --json out/attn.jsonl
//   deno run -A bench/lm_attention.ts --shape tiny        # the same on the CPU at a tiny size

import { type DType, getDefaultBackend, nn, noGrad, randn, type Tensor, tidy, train, vjp } from "../mod.ts";
import {
  appendJsonLine,
  deviceLine,
  medianSeconds,
  PEAK_TFLOPS,
  ratio,
  readJsonLines,
  rowMatches,
} from "./lm_bench_util.ts";

const SHAPES = {
  h200: { heads: 32, kvHeads: 8, headDim: 128, cases: "2048,8192,16384,128x16384,1024x16384", dtype: "bfloat16" },
  tiny: { heads: 4, kvHeads: 2, headDim: 16, cases: "64,16x64,32x64", dtype: "float32" },
} as const;

const flags = train.parseFlags(
  {
    shape: { type: "choice", choices: ["h200", "tiny"], default: "h200", help: "sizes: the issue's, or a CPU check" },
    cases: { type: "string", help: "'L' (square) or 'QxK' (Q queries after K keys), comma-separated" },
    dtype: { type: "choice", choices: ["bfloat16", "float32"], help: "dtype (default bfloat16; tiny float32)" },
    reps: { type: "integer", default: 10, min: 1, help: "timed runs per measurement (median)" },
    maxSeconds: { type: "number", default: 20, min: 0, help: "fewer runs where they would take longer" },
    warmup: { type: "integer", default: 3, min: 0, help: "untimed runs first" },
    implementation: { type: "choice", choices: ["auto", "fused", "composed"], default: "auto", help: "attention" },
    torch: { type: "string", help: "PyTorch's JSON lines (bench/torch_attention.py --json)" },
    ref: { type: "string", help: "the case dumped by bench/torch_attention.py --dump (safetensors)" },
    json: { type: "string", help: "append one JSON line per case here" },
  },
  Deno.args,
  { usage: "deno run -A bench/lm_attention.ts [flags]" },
);
const shape = SHAPES[flags.shape];
const dtype = (flags.dtype ?? shape.dtype) as DType;
const { heads, kvHeads, headDim } = shape;
const implementation = flags.implementation;
// What "auto" runs: the backend's fused kernels where it prefers them.
const used = implementation === "auto" ? (getDefaultBackend().fused?.preferred ? "fused" : "composed") : implementation;
const attend = (q: Tensor, k: Tensor, v: Tensor) =>
  nn.scaledDotProductAttention(q, k, v, { causal: true, implementation });
const torchRows = readJsonLines(flags.torch).filter((r) => r.impl === "torch");

/** '2048' → 2048 queries over 2048 keys; '128x16384' → 128 queries at the end of 16384 keys. */
function parseCase(text: string): [number, number] {
  const [q, k = q] = text.split("x").map(Number);
  if (!(Number.isInteger(q) && Number.isInteger(k) && q > 0 && q <= k)) {
    throw new Error(`bad case "${text}": write L or QxK with 0 < Q <= K`);
  }
  return [q, k];
}

/** Causal (query, key) pairs of `lq` queries at the end of `lk` keys. */
const causalPairs = (lq: number, lk: number) => lq * (lk - lq) + (lq * (lq + 1)) / 2;

console.log(`# attention, ${heads}/${kvHeads} heads, head dim ${headDim}, ${dtype}: ${deviceLine()}`);
console.log(
  "| impl | queries × keys | fwd ms | fwd+bwd ms | fwd TFLOP/s | fwd+bwd TFLOP/s | % of peak | PyTorch fwd+bwd ms | ratio fwd | ratio fwd+bwd |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const text of (flags.cases ?? shape.cases).split(",")) {
  const [lq, lk] = parseCase(text);
  const draw = (h: number, len: number, seed: number) => randn([1, h, len, headDim], { seed, dtype });
  const q = draw(heads, lq, 1), k = draw(kvHeads, lk, 2), v = draw(kvHeads, lk, 3), dout = draw(heads, lq, 4);
  const forward = () => tidy(() => void noGrad(() => attend(q, k, v)));
  const both = () =>
    tidy(() => {
      const [, back] = vjp(attend, q, k, v);
      back(dout);
    });
  const f = medianSeconds(forward, flags.reps, flags.warmup, flags.maxSeconds);
  const b = medianSeconds(both, flags.reps, flags.warmup, flags.maxSeconds);
  const fwd = f.seconds * 1e3, fb = b.seconds * 1e3;
  [q, k, v, dout].forEach((t) => t.dispose());
  const flops = 4 * heads * headDim * causalPairs(lq, lk);
  const tf = flops / fwd / 1e9, tfb = (3.5 * flops) / fb / 1e9;
  const theirs = torchRows.find((r) =>
    rowMatches(r, { queries: lq, keys: lk, heads, kv_heads: kvHeads, head_dim: headDim })
  );
  const tFwd = theirs?.fwd_ms as number | undefined, tFb = theirs?.fwd_bwd_ms as number | undefined;
  console.log(
    `| patchwork (${used}) | ${lq} × ${lk} | ${fwd.toFixed(3)} | ${fb.toFixed(3)} | ${tf.toPrecision(3)} | ` +
      `${tfb.toPrecision(3)} | ${((100 * tfb) / PEAK_TFLOPS).toPrecision(3)}% | ${tFb?.toFixed(3) ?? "—"} | ` +
      `${ratio(fwd, tFwd)} | ${ratio(fb, tFb)} |`,
  );
  appendJsonLine(flags.json, {
    impl: "patchwork",
    implementation: used,
    dtype,
    reps: [f.reps, b.reps],
    queries: lq,
    keys: lk,
    heads,
    kv_heads: kvHeads,
    head_dim: headDim,
    fwd_ms: fwd,
    fwd_bwd_ms: fb,
    fwd_tflops: tf,
    fwd_bwd_tflops: tfb,
    ratio_fwd: tFwd ? fwd / tFwd : null,
    ratio_fwd_bwd: tFb ? fb / tFb : null,
    device: deviceLine(),
  });
}

if (flags.ref) await compareWithReference(flags.ref);

/**
 * Our output and gradients on the dumped inputs against the float32 reference, beside PyTorch's
 * (max |x − ref| / max |ref| per tensor).
 */
async function compareWithReference(path: string): Promise<void> {
  let file;
  try {
    file = await nn.loadSafetensors(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return void console.log(`\nno reference at ${path}: error not measured`);
    throw e;
  }
  const t = (name: string) => {
    const x = file.tensors.get(name);
    if (!x) throw new Error(`${path} has no tensor "${name}" (write it with bench/torch_attention.py --dump)`);
    return x;
  };
  const [q, k, v, dout] = ["q", "k", "v", "dout"].map((name) => t(name).cast(dtype));
  const rel = (x: Tensor, ref: Tensor) =>
    tidy(() => x.cast("float32").sub(ref).abs().max().item() / ref.abs().max().item());
  const [out, back] = vjp(attend, q, k, v);
  const [dq, dk, dv] = back(dout);
  const ours = { out, dq, dk, dv };
  console.log(`\n# error against the float32 reference (${path}, ${q.shape[2]} × ${k.shape[2]})`);
  console.log("| tensor | patchwork | PyTorch |");
  console.log("| --- | --- | --- |");
  const errors: Record<string, { patchwork: number; torch: number }> = {};
  for (const [name, x] of Object.entries(ours)) {
    const ref = t(`ref_${name}`);
    errors[name] = { patchwork: rel(x, ref), torch: rel(t(name), ref) };
    console.log(`| ${name} | ${errors[name].patchwork.toExponential(2)} | ${errors[name].torch.toExponential(2)} |`);
  }
  appendJsonLine(flags.json, {
    impl: "patchwork",
    kind: "error",
    dtype,
    reference: path,
    errors,
    device: deviceLine(),
  });
}

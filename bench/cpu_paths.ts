/**
 * CPU paths outside `cpu_ops.ts` (copy this file into another checkout to compare two commits on
 * one machine): the fused AdamW update of 2^24 float32 parameters, the gradient of a
 * Qwen2.5-0.5B-sized embedding table ([151936, 896] float32) for 32 tokens, the unary ops sin,
 * cos, erf, gelu, gelu_grad, sigmoid, silu and tanh on 2^22 elements (float32 and float64), a
 * transposing copy of 2048 × 2048 float32, and one training step of a decoder of Qwen2.5-0.5B's
 * widths cut to 2 layers (32 tokens: forward and loss, backward, AdamW). Each figure is the best of a few runs
 * after a warm-up (the step: the second of two).
 *
 *   deno run -A bench/cpu_paths.ts
 *
 * @module
 */

import { embedding, grad, lm, optim, randn, type Tensor, tensor, tidy, useBackend } from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import type { DeviceBuffer, View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import type { UnaryOp } from "../src/tensor/op_defs.ts";
import { contiguousStrides } from "../src/tensor/shape.ts";

useBackend("cpu");
const cpu = new CpuBackend();

/** Best wall time (ms) of `fn` over `reps` runs after one warm-up. */
function best(fn: () => void, reps = 4): number {
  fn();
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

const view = (buffer: DeviceBuffer, shape: number[], strides = contiguousStrides(shape)): View => ({
  buffer,
  shape,
  strides,
  offset: 0,
});
const rows: string[] = [];
const row = (what: string, ms: number, extra = "") => rows.push(`| ${what} | ${ms.toFixed(1)} ms${extra} |`);

{
  const n = 1 << 24;
  const [p, g, m, v] = [1, 2, 3, 4].map((s) => view(cpu.random("uniform", n, s, 0, "float32"), [n]));
  let step = 0;
  const hyper = () => ({
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0.1,
    decoupled: true,
    step: ++step,
  });
  const ms = best(() => cpu.optim.adam(p, g, m, v, null, hyper()));
  row("AdamW, 2^24 float32 parameters", ms, ` (${((n * 28) / ms / 1e6).toFixed(1)} GB/s)`);
}
{
  const W = randn([151936, 896]);
  const ids = tensor(Array.from({ length: 32 }, (_, i) => (i * 4729) % 151936), { dtype: "int32" });
  const backward = grad((w: Tensor) => embedding(w, ids).sum());
  row("embedding gradient, [151936, 896] float32, 32 tokens", best(() => tidy(() => void backward(W)), 3));
  W.dispose();
}
for (const dtype of ["float32", "float64"] as DType[]) {
  const n = 1 << 22;
  const x = view(cpu.random("normal", n, 1, 0, dtype), [n]);
  for (const op of ["sin", "cos", "erf", "gelu", "gelu_grad", "sigmoid", "silu", "tanh"] as UnaryOp[]) {
    row(`${op}, 2^22 ${dtype}`, best(() => cpu.free(cpu.unary(op, x, dtype))));
  }
}
{
  const n = 2048;
  const src = view(cpu.random("normal", n * n, 2, 0, "float32"), [n, n], [1, n]);
  const dst = view(cpu.random("normal", n * n, 3, 0, "float32"), [n, n]);
  row("transposing copy, 2048 × 2048 float32", best(() => cpu.copy(src, dst)));
}
{
  const config = { ...lm.preset("qwen2.5-0.5b"), numHiddenLayers: 2 };
  const model = new lm.LlamaForCausalLM(config, { seed: 0 });
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-4 });
  const tokens = Array.from({ length: 33 }, (_, i) => (i * 7919) % config.vocabSize);
  const input = [tokens.slice(0, 32)], target = [tokens.slice(1)];
  let t: number[] = [];
  for (let s = 0; s < 2; s++) {
    t = [performance.now()];
    tidy(() => {
      const { loss } = model.loss(input, target);
      loss.item();
      t.push(performance.now());
      loss.backward();
      t.push(performance.now());
      opt.step();
      opt.zeroGrad();
      t.push(performance.now());
    });
  }
  const part = (i: number) => (t[i + 1] - t[i]) / 1000;
  rows.push(
    `| 0.5B-width decoder, 2 layers (${(model.numParameters() / 1e6).toFixed(0)}M parameters), 32 tokens: ` +
      `step (forward + loss / backward / AdamW) | ${((t[3] - t[0]) / 1000).toFixed(2)} s ` +
      `(${part(0).toFixed(2)} / ${part(1).toFixed(2)} / ${part(2).toFixed(2)}) |`,
  );
}
console.log(["| path | time |", "|---|---:|", ...rows].join("\n"));

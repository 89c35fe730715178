// The fused language-model primitives (FusedPrimitives: the CPU backend's host paths here) against
// the compositions of ordinary ops they stand for, forward and backward in float64; gradients of
// gradients through the wrappers (which differentiate the composition when a backward is
// recorded); and the whole model and the sliced loss run fused against composed.

import assert from "node:assert/strict";
import { DeviceError, gradcheck, lm, nn, randn, type Tensor, vjp } from "../mod.ts";
import { assertRelClose, smallConfig } from "./lm_helpers.ts";
import { randomData } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;

/** Output and input gradients (for a random cotangent) of `fn` under both implementations agree. */
function sameBothWays(fn: (impl: nn.Implementation, ...xs: Tensor[]) => Tensor, inputs: Tensor[], what: string) {
  const run = (impl: nn.Implementation) => {
    const [y, back] = vjp((...xs: Tensor[]) => fn(impl, ...xs), ...inputs);
    const g = randn(y.shape, { ...f64, seed: 99 });
    return [y, ...back(g)];
  };
  const fused = run("fused");
  const composed = run("composed");
  fused.forEach((t, i) =>
    assertRelClose(t, composed[i], 1e-12, `${what}: ${i === 0 ? "output" : `gradient ${i - 1}`}`)
  );
}

Deno.test("fused attention = composed: GQA, causal with a query offset, sliding window, several key tiles", () => {
  const cases = [
    { b: 2, hq: 4, hkv: 2, tq: 5, tk: 150, causal: true, window: null },
    { b: 1, hq: 6, hkv: 3, tq: 1, tk: 70, causal: true, window: null }, // one query against a long prefix
    { b: 1, hq: 2, hkv: 2, tq: 9, tk: 100, causal: true, window: 20 },
    { b: 1, hq: 2, hkv: 1, tq: 7, tk: 13, causal: false, window: null },
  ];
  for (const [n, c] of cases.entries()) {
    const q = randn([c.b, c.hq, c.tq, 8], { ...f64, seed: 10 * n + 1 });
    const k = randn([c.b, c.hkv, c.tk, 8], { ...f64, seed: 10 * n + 2 });
    const v = randn([c.b, c.hkv, c.tk, 6], { ...f64, seed: 10 * n + 3 });
    sameBothWays(
      (implementation, a, b, cc) =>
        nn.scaledDotProductAttention(a, b, cc, { causal: c.causal, window: c.window, implementation }),
      [q, k, v],
      `attention case ${n}`,
    );
  }
});

Deno.test("fused RMSNorm, rotary and SwiGLU = composed; their gradients of gradients pass gradcheck", () => {
  const x = randn([3, 5, 8], { ...f64, seed: 1 });
  const w = randn([8], { ...f64, seed: 2 });
  sameBothWays((impl, a, b) => nn.fusedRmsNorm(a, b, 1e-5, impl), [x, w], "rmsNorm");
  const { cos, sin } = lm.rotaryTables(smallConfig(), 11, 5, f64);
  sameBothWays((impl, a) => lm.applyRotary(a, cos, sin, impl), [randn([2, 3, 5, 4], { ...f64, seed: 3 })], "rotary");
  sameBothWays((impl, a, b) => nn.fusedSwiglu(a, b, impl), [x, randn([3, 5, 8], { ...f64, seed: 4 })], "swiglu");
  const small = randn([2, 4], { ...f64, seed: 5 });
  gradcheck((a, b) => nn.fusedRmsNorm(a, b, 1e-5, "fused"), [small, randn([4], { ...f64, seed: 6 })], {
    secondOrder: true,
  });
  gradcheck((a, b) => nn.fusedSwiglu(a, b, "fused"), [small, randn([2, 4], { ...f64, seed: 7 })], {
    secondOrder: true,
  });
  const t = lm.rotaryTables(smallConfig(), 3, 2, f64);
  gradcheck((a) => lm.applyRotary(a, t.cos, t.sin, "fused"), [randn([1, 2, 2, 4], { ...f64, seed: 8 })], {
    secondOrder: true,
  });
  const [q, k, v] = [[1, 2, 3, 4], [1, 1, 5, 4], [1, 1, 5, 4]].map((s, i) => randn(s, { ...f64, seed: 20 + i }));
  gradcheck((a, b, c) => nn.scaledDotProductAttention(a, b, c, { causal: true, implementation: "fused" }), [q, k, v], {
    secondOrder: true,
  });
});

Deno.test("the sliced cross-entropy's fused slices = composed, every reduction, ignored targets", () => {
  const h = randn([2, 5, 6], { ...f64, seed: 30 });
  const w = randn([23, 6], { ...f64, seed: 31 });
  const t = [1, 22, 0, -100, 7, 3, 3, 21, 9, -100];
  for (const reduction of ["mean", "sum", "none"] as const) {
    sameBothWays(
      (implementation, a, b) => lm.linearCrossEntropy(a, b, t, { reduction, sliceSize: 4, implementation }),
      [h, w],
      `cross-entropy ${reduction}`,
    );
  }
});

Deno.test("the whole model and the sliced loss, fused against composed (float64)", () => {
  const config = smallConfig({ modelType: "qwen2", attentionBias: true, slidingWindow: null });
  const ids = [0, 1].map((r) => randomData(11, r + 5, 0, config.vocabSize).map(Math.floor));
  const targets = ids.map((row) => [...row.slice(1), -100]);
  const results = (["fused", "composed"] as const).map((implementation) => {
    const model = new lm.LlamaForCausalLM(config, { ...f64, seed: 12, implementation });
    const first = model.forward(ids.map((r) => r.slice(0, 6)));
    const rest = model.loss(ids.map((r) => r.slice(6)), targets.map((r) => r.slice(6)), {
      cache: first.cache,
      sliceSize: 10,
    });
    const loss = rest.loss.add(lm.crossEntropy(first.logits, targets.map((r) => r.slice(0, 6)).flat()));
    loss.backward();
    return { loss, logits: first.logits, grads: model.parameters().map((p) => p.grad!) };
  });
  assertRelClose(results[0].logits, results[1].logits, 1e-12, "logits");
  assertRelClose([results[0].loss.item()], [results[1].loss.item()], 1e-13, "loss");
  results[0].grads.forEach((g, i) => assertRelClose(g, results[1].grads[i], 1e-11, `gradient ${i}`));
});

Deno.test("asking for fused ops where the backend has none is a DeviceError naming the op", () => {
  const x = randn([2, 4], f64);
  const bare = Object.create(x.backend, { fused: { value: undefined } });
  const t = Object.create(x, { backend: { value: bare } }) as Tensor;
  assert.throws(
    () => nn.fusedPrimitives("fused", t, "rmsNorm"),
    (e) => e instanceof DeviceError && e.message.includes("rmsNorm"),
  );
  // "auto": the CPU prefers the composition, a GPU backend its fused kernels.
  if (x.backend.name === "cpu") assert.equal(nn.fusedPrimitives("auto", x, "rmsNorm"), null);
  else assert.notEqual(nn.fusedPrimitives("auto", x, "rmsNorm"), null);
});

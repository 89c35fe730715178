// Adjoint sharding against back-propagation through the scan (itself checked against finite
// differences and jax-js in lm_ssm_test.ts): the paper's form for one layer, the exact form for
// any depth, the truncated form as its window grows, the VJP counters, and bad options.

import assert from "node:assert/strict";
import { ArgumentError, lm, NonFiniteError } from "../mod.ts";
import { assertRelClose, microSSMConfig, relDiff } from "./lm_helpers.ts";
import { assertRaises, randomData } from "./helpers.ts";

function model(numLayers: number, seed = 1, dtype: "float32" | "float64" = "float64"): lm.SSMForCausalLM {
  return new lm.SSMForCausalLM(microSSMConfig(numLayers), { dtype, seed });
}

function sequences(batch: number, width: number, seed: number): number[][] {
  return Array.from({ length: batch }, (_, r) => randomData(width, seed + r, 0, 11).map(Math.floor));
}

type Grads = Map<string, Float64Array | null>;

function gradientsOf(m: lm.SSMForCausalLM, seqs: number[][], options: lm.SSMBackwardOptions) {
  m.zeroGrad();
  const result = lm.ssmBackward(m, seqs, options);
  const grads: Grads = new Map(
    m.namedParameters().map(([n, p]) => [n, p.grad ? Float64Array.from(p.grad.toTypedArray()) : null]),
  );
  return { result, grads };
}

function assertSame(got: Grads, want: Grads, tol: number, names: (name: string) => boolean, what: string): void {
  let checked = 0;
  for (const [name, g] of want) {
    if (!names(name)) continue;
    assertRelClose(got.get(name)!, g!, tol, `${what}: ${name}`);
    checked++;
  }
  assert.ok(checked > 0, `${what}: no parameter compared`);
}

const paperGroups = (name: string) => /mixer|^norm|lm_head/.test(name);

Deno.test("K = 1: the paper's adjoint sharding equals backprop for 𝒜, ℬ, 𝒞, the final norm and Ω (float64)", () => {
  const m = model(1);
  const seqs = sequences(2, 13, 3);
  const ref = gradientsOf(m, seqs, { method: "backprop" });
  const paper = gradientsOf(m, seqs, { method: "adjoint", piecesPerLaunch: 10, blockSize: 5 });
  assertRelClose([paper.result.lossSum], [ref.result.lossSum], 1e-14, "loss");
  assertSame(paper.grads, ref.grads, 1e-10, paperGroups, "adjoint");
  // Outside the paper's proposition the constant-input assumption shows even for one layer: the
  // embedding gets only the residual path and the layer's norm nothing.
  assert.ok(relDiff(paper.grads.get("embed_tokens.weight")!, ref.grads.get("embed_tokens.weight")!) > 1e-2);
  assert.equal(paper.grads.get("layers.0.norm.weight"), null);
});

Deno.test("adjoint-exact equals backprop for every parameter, K = 1, 2, 3, whatever the launch and block sizes", () => {
  for (const [k, rows, block] of [[1, 4096, 1024], [2, 5, 4], [3, 17, 1]]) {
    const m = model(k, 10 + k);
    const seqs = sequences(2, 12, 20 + k);
    const ref = gradientsOf(m, seqs, { method: "backprop" });
    const exact = gradientsOf(m, seqs, { method: "adjoint-exact", piecesPerLaunch: rows, blockSize: block });
    assertRelClose([exact.result.lossSum], [ref.result.lossSum], 1e-14, "loss");
    assertSame(exact.grads, ref.grads, 1e-10, () => true, `K = ${k}`);
  }
});

Deno.test("K > 1: the paper's form drops the paths through later layers (its error is measured, not small)", () => {
  const m = model(2, 7);
  const seqs = sequences(1, 16, 8);
  const ref = gradientsOf(m, seqs, { method: "backprop" });
  const paper = gradientsOf(m, seqs, { method: "adjoint" });
  // The top layer sees the true cotangent; the one below does not.
  assertSame(paper.grads, ref.grads, 1e-10, (n) => n.startsWith("layers.1.mixer"), "top layer");
  for (const net of ["a", "b", "c"]) {
    const name = `layers.0.mixer.${net}_proj.weight`;
    assert.ok(relDiff(paper.grads.get(name)!, ref.grads.get(name)!) > 1e-3, name);
  }
});

Deno.test("truncated: equal to the exact form once the window covers the sequence; the error falls as it grows", () => {
  const m = model(2, 3);
  const seqs = sequences(1, 17, 5);
  const exact = gradientsOf(m, seqs, { method: "adjoint-exact" }).grads;
  const flat = (g: Grads) => [...g.values()].flatMap((v) => [...v!]);
  const errors = [1, 2, 4, 8, 16, 40].map((w) =>
    relDiff(flat(gradientsOf(m, seqs, { method: "truncated", window: w }).grads), flat(exact))
  );
  // The same sums in the same order on the CPU: bit-equal. A GPU backend scatters the embedding's
  // gradient with atomic adds, whose order (and so the last bits, float64) varies from run to run.
  const equalBits = m.embed_tokens.weight.backend.name === "cpu";
  const same = (e: number) => equalBits ? e === 0 : e <= 1e-14;
  assert.ok(same(errors[4]) && same(errors[5]), `T̄ ≥ T: ${errors}`);
  // Not monotone at the smallest windows (dropping a term can cancel another's error), but falling
  // once the window spans the decays' memory.
  const shown = errors.map((e) => e.toExponential(2)).join(", ");
  assert.ok(errors[2] > errors[3] && errors[3] > errors[4] && errors[3] < 0.7 * errors[0], shown);
});

Deno.test("the VJP counters: T(T+1)/2 per layer and sequence through 𝒜 and ℬ, T through 𝒞; the truncated count", () => {
  const m = model(2, 2);
  const [batch, length] = [3, 20];
  const seqs = sequences(batch, length + 1, 9);
  for (const method of ["adjoint", "adjoint-exact"] as const) {
    const { vjps } = lm.ssmBackward(m, seqs, { method, piecesPerLaunch: 1e6, blockSize: 8 });
    assert.equal(vjps.length, 2);
    for (const v of vjps) {
      assert.deepEqual(v, { a: batch * 210, b: batch * 210, c: batch * 20, launches: 1 + 3 });
    }
  }
  const window = 6;
  const { vjps } = lm.ssmBackward(m, seqs, { method: "truncated", window, piecesPerLaunch: 64 });
  let kept = 0;
  for (let d = 0; d < window; d++) kept += length - d;
  for (const v of vjps) {
    assert.equal(v.a, batch * kept);
    assert.equal(v.b, batch * kept);
    assert.equal(v.c, batch * length);
    // Batched: the 105 steps kept of each sequence in launches of ⌊64 / 3⌋ = 21 steps (63 VJPs), and 𝒞 in one.
    assert.equal(v.launches, 1 + 5);
  }
  assert.deepEqual(lm.ssmBackward(m, seqs, { method: "backprop" }).vjps, []);
});

Deno.test("float32: the sharded gradients agree with backprop to float32 rounding", () => {
  const m = model(2, 4, "float32");
  const seqs = sequences(2, 33, 11);
  const ref = gradientsOf(m, seqs, { method: "backprop" });
  const exact = gradientsOf(m, seqs, { method: "adjoint-exact", piecesPerLaunch: 100 });
  assertSame(exact.grads, ref.grads, 1e-4, () => true, "float32");
});

Deno.test("bad options are ArgumentErrors naming the option; a non-finite loss adds no gradient", () => {
  const m = model(1);
  const seqs = sequences(1, 6, 1);
  const call = (o: Record<string, unknown>) => () => lm.ssmBackward(m, seqs, o as lm.SSMBackwardOptions);
  assertRaises(call({ method: "adjoint-sharding" }), ArgumentError, "ssmBackward", "method must be");
  assertRaises(call({ method: "adjoint", windows: 4 }), ArgumentError, "ssmBackward", "windows");
  assertRaises(call({ method: "truncated" }), ArgumentError, "ssmBackward", "needs a window");
  assertRaises(call({ method: "backprop", window: 4 }), ArgumentError, "ssmBackward", "window applies to");
  assertRaises(call({ method: "adjoint-exact", window: 4 }), ArgumentError, "ssmBackward", "window applies to");
  assertRaises(call({ method: "truncated", window: 0 }), ArgumentError, "ssmBackward", "window must be");
  assertRaises(call({ method: "adjoint", piecesPerLaunch: 1.5 }), ArgumentError, "ssmBackward", "piecesPerLaunch");
  assertRaises(() => lm.ssmBackward(m, [[1]], {}), ArgumentError, "ssmBackward", "at least 2 tokens");
  m.zeroGrad();
  m.lm_head.weight.assign(m.lm_head.weight.mul(NaN));
  for (const method of lm.SSM_GRADIENT_METHODS) {
    assertRaises(call({ method, window: method === "truncated" ? 2 : undefined }), NonFiniteError, "ssmBackward");
    assert.ok(m.parameters().every((p) => p.grad === null), method);
  }
});

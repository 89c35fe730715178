// The CPU backend's fused Adam(W) update on its SIMD kernels, against the update written out here
// element by element (float32 rounded after every operation, as the composite update rounds it;
// bfloat16 gradients widened and copies rounded by the dtype module's scalar conversions).

import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { heapAddress } from "../src/backend/cpu/heap.ts";
import type { AdamHyperparameters, View } from "../src/tensor/backend.ts";
import { type DType, fromBFloat16Bits, toBFloat16Bits } from "../src/tensor/dtype.ts";
import { bufferOf } from "../src/backend/cpu/buffer.ts";
import { rng } from "./helpers.ts";

const cpu = new CpuBackend();

/** One Adam(W) step on plain arrays: the AdamW paper's update with every operation rounded by `r`. */
function reference(
  p: Float64Array,
  g: Float64Array,
  m: Float64Array,
  v: Float64Array,
  h: AdamHyperparameters,
  r: (x: number) => number,
): void {
  const { lr, beta1, beta2, eps, weightDecay, decoupled, step } = h;
  for (let i = 0; i < p.length; i++) {
    let grad = g[i], theta = p[i];
    if (weightDecay !== 0 && !decoupled) grad = r(grad + r(theta * r(weightDecay)));
    if (weightDecay !== 0 && decoupled) theta = r(theta * r(1 - lr * weightDecay));
    m[i] = r(r(m[i] * r(beta1)) + r(grad * r(1 - beta1)));
    v[i] = r(r(v[i] * r(beta2)) + r(r(grad * grad) * r(1 - beta2)));
    const denom = r(r(r(Math.sqrt(v[i])) / r(Math.sqrt(1 - beta2 ** step))) + r(eps));
    p[i] = r(theta - r(r(m[i] / denom) * r(lr / (1 - beta1 ** step))));
  }
}

function values(n: number, seed: number, scale: number, positive = false): Float64Array {
  const u = rng(seed);
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = scale * (positive ? u() : 2 * u() - 1);
  if (n > 3) [x[0], x[1]] = [0, -0];
  return x;
}

Deno.test("adam: SIMD fused update (one thread and all, vector body and tail) matches the update bit for bit", () => {
  const hypers: AdamHyperparameters[] = [
    { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: true, step: 1 },
    { lr: 3e-2, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, decoupled: true, step: 7 },
    { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, decoupled: false, step: 3 },
  ];
  for (const dtype of ["float32", "float64"] as DType[]) {
    const r = dtype === "float32" ? Math.fround : (x: number) => x;
    for (const n of [1, 7, 4099, 70001, 200003]) {
      for (const [k, h] of hypers.entries()) {
        const host = [
          values(n, k + 1, 1),
          values(n, k + 11, 0.1),
          values(n, k + 21, 0.01),
          values(n, k + 31, 1e-4, true),
        ]
          .map((x) => x.map(r));
        const views = host.map((x): View => ({ buffer: cpu.fromHost(x, dtype), shape: [n], strides: [1], offset: 0 }));
        for (const view of views) {
          assert.ok(heapAddress(bufferOf(view.buffer, "test").data) >= 0, "operands in the heap");
        }
        const [p, g, m, v] = views;
        cpu.optim.adam(p, g, m, v, null, h);
        const [pr, gr, mr, vr] = host;
        reference(pr, gr, mr, vr, h, r);
        for (const [name, view, want] of [["param", p, pr], ["expAvg", m, mr], ["expAvgSq", v, vr]] as const) {
          const got = cpu.toHost(view);
          for (let i = 0; i < n; i++) {
            if (!Object.is(got[i], want[i])) {
              assert.fail(`${dtype} n=${n} hyper ${k}: ${name}[${i}] = ${got[i]}, want ${want[i]}`);
            }
          }
        }
        for (const view of views) cpu.free(view.buffer);
      }
    }
  }
});

Deno.test("adam: SIMD fused update of float32 parameters with a bfloat16 gradient and a bfloat16 copy, bit for bit", () => {
  const h: AdamHyperparameters = {
    lr: 2e-2,
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0.05,
    decoupled: true,
    step: 4,
  };
  for (const [gradDtype, copy] of [["bfloat16", true], ["bfloat16", false], ["float32", true]] as const) {
    for (const n of [5, 70001]) {
      const grads = values(n, 2, 0.1).map((x) => fromBFloat16Bits(toBFloat16Bits(x)));
      const host = [values(n, 1, 1), grads, values(n, 3, 0.01), values(n, 4, 1e-4, true)].map((x) =>
        x.map(Math.fround)
      );
      const views = host.map((x, k): View => ({
        buffer: cpu.fromHost(x, k === 1 ? gradDtype : "float32"),
        shape: [n],
        strides: [1],
        offset: 0,
      }));
      const low: View | null = copy
        ? { buffer: cpu.fromHost(new Uint16Array(n + 3), "bfloat16"), shape: [n], strides: [1], offset: 3 }
        : null;
      const [p, g, m, v] = views;
      cpu.optim.adam(p, g, m, v, low, h);
      const [pr, gr, mr, vr] = host;
      reference(pr, gr, mr, vr, h, Math.fround);
      const got = cpu.toHost(p);
      const bits = low ? bufferOf(low.buffer, "test").data as Uint16Array : null;
      for (let i = 0; i < n; i++) {
        if (!Object.is(got[i], pr[i])) assert.fail(`${gradDtype} grad, n=${n}: param[${i}] = ${got[i]}, want ${pr[i]}`);
        if (bits && bits[3 + i] !== toBFloat16Bits(pr[i])) {
          assert.fail(`${gradDtype} grad, n=${n}: copy[${i}] = ${bits[3 + i]}, want ${toBFloat16Bits(pr[i])}`);
        }
      }
      if (bits) assert.deepEqual([...bits.slice(0, 3)], [0, 0, 0], "nothing written before the copy's offset");
      for (const view of [...views, ...(low ? [low] : [])]) cpu.free(view.buffer);
    }
  }
});

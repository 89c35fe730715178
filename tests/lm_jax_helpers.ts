// Shared by the language-model tests that check a model against the same model written with
// jax-js (a separately written JavaScript autodiff) in float64.

import { nn as jnn, numpy as np, valueAndGrad } from "@jax-js/jax";
import type { Tensor } from "../mod.ts";
import { assertRelClose } from "./lm_helpers.ts";

/** A model's parameters as jax-js arrays, by their names. */
export type Params = Record<string, np.Array>;

/** jax-js's linear layer (weight, and bias where `p` has one) and RMS norm, by parameter name. */
export function jaxLayers(p: Params, rmsNormEps: number): {
  linear: (x: np.Array, name: string) => np.Array;
  rmsNorm: (x: np.Array, name: string) => np.Array;
} {
  return {
    linear: (x, name) => {
      const y = np.matmul(x, p[`${name}.weight`].transpose());
      return p[`${name}.bias`] ? y.add(p[`${name}.bias`]) : y;
    },
    rmsNorm: (x, name) => {
      const ms = np.mean(np.square(x.ref), -1, { keepdims: true });
      return x.div(np.sqrt(ms.add(rmsNormEps))).mul(p[`${name}.weight`]);
    },
  };
}

/** The mean cross-entropy of jax-js `logits` [b, t, V] at the token ids `targets` [b][t]. */
export function jaxCrossEntropy(logits: np.Array, targets: number[][]): np.Array {
  const logp = jnn.logSoftmax(logits, -1);
  const idx = np.array(Int32Array.from(targets.flat()), { dtype: np.int32 })
    .reshape([targets.length, targets[0].length, 1]);
  return np.takeAlongAxis(logp, idx, 2).mean().neg();
}

/**
 * Throws unless `model`'s loss on `ids` → `targets` (sliced by `sliceSize`) equals `jaxLoss` at
 * `params()` to 1e-12 and every parameter's gradient equals jax-js's to 1e-10 (relative).
 */
export function assertLossAndGradients(
  model: {
    loss(ids: number[][], targets: number[][], options: { sliceSize: number }): { loss: Tensor };
    namedParameters(): [string, Tensor][];
  },
  ids: number[][],
  targets: number[][],
  sliceSize: number,
  jaxLoss: (p: Params) => np.Array,
  params: () => Params,
): void {
  const [value, grads] = valueAndGrad(jaxLoss)(params());
  const ours = model.loss(ids, targets, { sliceSize }).loss;
  assertRelClose([ours.item()], value.dataSync() as Float64Array, 1e-12, "loss");
  ours.backward();
  for (const [name, p] of model.namedParameters()) {
    assertRelClose(p.grad!, (grads as Params)[name].dataSync() as Float64Array, 1e-10, `gradient of ${name}`);
  }
}

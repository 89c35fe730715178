/**
 * Differentiable wrappers around a backend's fused language-model primitives
 * (`FusedPrimitives`): RMSNorm and SwiGLU here, attention in `attention.ts`, rotary embeddings in
 * `src/lm/rope.ts`. Each has a composition of ordinary ops with the same semantics; the fused
 * primitive runs the forward and the backward, and when a backward is itself being recorded
 * (gradients of gradients), the backward differentiates the composition instead, so every
 * derivative order stays exact.
 *
 * `implementation` picks: `composed`, `fused` (an error if the backend lacks the primitives), or
 * `auto` (default): fused where the backend prefers it (the GPU), composed elsewhere.
 *
 * @module
 */

import {
  type Backend,
  customFunction,
  DeviceError,
  type FusedPrimitives,
  isFloat,
  isGradEnabled,
  shapesEqual,
  Tensor,
  vjp,
} from "../tensor/mod.ts";
import { rmsNorm } from "./norm.ts";

/**
 * Which implementation of a fused op to run.
 *
 * @example
 * ```ts
 * import type { Implementation } from "./fused.ts";
 * const impl: Implementation = "fused";
 * ```
 */
export type Implementation = "auto" | "fused" | "composed";

/**
 * The backend's fused primitives when `implementation` asks for them (`auto`: when the backend
 * prefers them), else null; `fused` on a backend without them raises a {@link DeviceError}.
 *
 * @example
 * ```ts
 * import { fusedPrimitives } from "./fused.ts";
 * import { zeros } from "../tensor/mod.ts";
 * fusedPrimitives("composed", zeros([1]), "rmsNorm"); // null
 * ```
 */
export function fusedPrimitives(implementation: Implementation, x: Tensor, op: string): FusedPrimitives | null {
  if (implementation === "composed" || !isFloat(x.dtype)) return null;
  const fused = (x.backend as Backend).fused ?? null;
  if (implementation === "fused" && !fused) {
    throw new DeviceError(op, `the ${x.backend.name} backend has no fused primitives; use implementation "composed"`);
  }
  if (implementation === "auto" && !fused?.preferred) return null;
  return fused;
}

/**
 * A differentiable function from a fused forward and backward and the composition they stand
 * for: `forward` returns the output and any extra residuals, `backward` the input gradients;
 * a recorded backward (for higher derivatives) differentiates `composed`.
 *
 * @example
 * ```ts
 * import { fusedFunction } from "./fused.ts";
 * // const square = fusedFunction((x) => ({ output: kernel(x), saved: [] }), ([x], g) => [g.mul(x).mul(2)],
 * //   (x) => x.mul(x));
 * ```
 */
export function fusedFunction<A extends Tensor[]>(
  forward: (...inputs: A) => { output: Tensor; saved: Tensor[] },
  backward: (inputs: Tensor[], saved: Tensor[], g: Tensor) => (Tensor | null)[],
  composed: (...inputs: A) => Tensor,
): (...inputs: A) => Tensor {
  return (...inputs: A) => {
    const fn = customFunction((...xs: A) => {
      const { output, saved } = forward(...xs);
      return { output, residuals: [...xs, ...saved] };
    }, (residuals, g) => {
      const xs = residuals.slice(0, inputs.length);
      if (isGradEnabled()) return vjp(composed, ...(xs as A))[1](g) as Tensor[];
      return backward(xs, residuals.slice(inputs.length), g);
    });
    return fn(...inputs).output;
  };
}

function accumulation(x: Tensor): "float32" | "float64" {
  return x.dtype === "float64" ? "float64" : "float32";
}

/**
 * RMSNorm over the last axis (`x·rstd·weight`), fused where the backend offers it; equal to
 * `rmsNorm(x, d, weight, null, eps)` of `norm.ts`.
 *
 * @example
 * ```ts
 * import { fusedRmsNorm } from "./fused.ts";
 * import { ones, randn } from "../tensor/mod.ts";
 * fusedRmsNorm(randn([4, 8]), ones([8]), 1e-6).shape; // [4, 8]
 * ```
 */
export function fusedRmsNorm(x: Tensor, weight: Tensor, eps: number, implementation: Implementation = "auto"): Tensor {
  const d = x.shape[x.ndim - 1];
  const composed = (a: Tensor, w: Tensor) => rmsNorm(a, d, w, null, eps);
  const f = fusedPrimitives(implementation, x, "rmsNorm");
  if (!f) return composed(x, weight);
  return fusedFunction((a: Tensor, w: Tensor) => {
    const r = f.rmsNorm(a.contiguous(), w.contiguous(), d, eps, a.dtype);
    const rstd = Tensor.fromBuffer(r.rstd, [a.size / d], accumulation(a));
    return { output: Tensor.fromBuffer(r.y, a.shape, a.dtype), saved: [rstd] };
  }, ([a, w], [rstd], g) => {
    const r = f.rmsNormBackward(a.contiguous(), w.contiguous(), rstd, g.contiguous(), d, a.dtype);
    return [Tensor.fromBuffer(r.dx, a.shape, a.dtype), Tensor.fromBuffer(r.dw, [d], a.dtype).cast(w.dtype)];
  }, composed)(x, weight);
}

/**
 * SwiGLU's gating `silu(gate)·up`, fused where the backend offers it.
 *
 * @example
 * ```ts
 * import { fusedSwiglu } from "./fused.ts";
 * import { randn } from "../tensor/mod.ts";
 * fusedSwiglu(randn([2, 16]), randn([2, 16])).shape; // [2, 16]
 * ```
 */
export function fusedSwiglu(gate: Tensor, up: Tensor, implementation: Implementation = "auto"): Tensor {
  const composed = (g: Tensor, u: Tensor) => g.silu().mul(u);
  const f = fusedPrimitives(implementation, gate, "swiglu");
  if (!f || !shapesEqual(gate.shape, up.shape) || gate.dtype !== up.dtype) return composed(gate, up);
  return fusedFunction((g: Tensor, u: Tensor) => {
    const y = f.swiglu(g.contiguous(), u.contiguous(), g.dtype);
    return { output: Tensor.fromBuffer(y, g.shape, g.dtype), saved: [] };
  }, ([g, u], _, gy) => {
    const r = f.swigluBackward(g.contiguous(), u.contiguous(), gy.contiguous(), g.dtype);
    return [Tensor.fromBuffer(r.dgate, g.shape, g.dtype), Tensor.fromBuffer(r.dup, u.shape, u.dtype)];
  }, composed)(gate, up);
}

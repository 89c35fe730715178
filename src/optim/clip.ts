/**
 * Gradient clipping: by global norm ({@link clipGradNorm}) and by value ({@link clipGradValue}).
 *
 * @module
 */

import {
  checkNumber,
  checkOneOf,
  checkOptions,
  noGrad,
  NonFiniteError,
  stack,
  type Tensor,
  tidy,
} from "../tensor/mod.ts";
import { parameterList, type Params } from "./optimizer.ts";

/**
 * Options of {@link clipGradNorm}.
 *
 * @example
 * ```ts
 * import { clipGradNorm, type ClipGradNormOptions } from "./clip.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const w = tensor([1, 2]).requireGrad();
 * w.square().sum().backward();
 * const options: ClipGradNormOptions = { normType: Infinity, errorIfNonfinite: true };
 * clipGradNorm([w], 1, options); // 4
 * ```
 */
export interface ClipGradNormOptions {
  /** Order of the norm: 2 (default), 1, or Infinity (largest absolute value). */
  normType?: number;
  /** Raise a {@link NonFiniteError} naming the offending parameters when the norm is NaN or ±∞. Default false. */
  errorIfNonfinite?: boolean;
}

/** The gradients of `params` by name (position for unnamed parameters), skipping those with none. */
function gradsOf(op: string, params: Params): [string, Tensor][] {
  return parameterList(op, params).flatMap((
    [n, p],
    i,
  ): [string, Tensor][] => (p.grad ? [[n ?? String(i), p.grad]] : []));
}

/**
 * Scales the gradients of `params` in place so their combined norm is at most `maxNorm`, and
 * returns the norm before clipping (as `torch.nn.utils.clip_grad_norm_`: the scale is
 * `min(1, maxNorm / (norm + 1e-6))`). Parameters without a gradient are ignored. One host
 * synchronisation per call.
 *
 * @example
 * ```ts
 * import { clipGradNorm } from "./clip.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const w = tensor([3, 4]).requireGrad();
 * w.mul(w).mul(0.5).sum().backward(); // grad [3, 4], norm 5
 * clipGradNorm([w], 1); // 5; w.grad is now ≈ [0.6, 0.8]
 * ```
 */
export function clipGradNorm(params: Params, maxNorm: number, options: ClipGradNormOptions = {}): number {
  const op = "clipGradNorm";
  const { normType = 2, errorIfNonfinite = false } = checkOptions(op, options, ["normType", "errorIfNonfinite"]);
  checkNumber(op, "maxNorm", maxNorm, { min: 0, finite: false });
  checkNumber(op, "normType", normType, { min: 0, minOpen: true, finite: false });
  checkOneOf(op, "errorIfNonfinite", errorIfNonfinite, [true, false]);
  const grads = gradsOf(op, params);
  if (grads.length === 0) return 0;
  return noGrad(() =>
    tidy(() => {
      // Per-gradient partial norms, in float64 on the host after one transfer.
      const parts = stack(grads.map(([, g]) => {
        const a = (g.dtype === "float64" ? g : g.cast("float32")).abs();
        const r = normType === Infinity
          ? a.max()
          : normType === 1
          ? a.sum()
          : normType === 2
          ? a.mul(a).sum()
          : a.pow(normType).sum();
        return r.cast("float64");
      }));
      const host = parts.toTypedArray();
      let total = 0;
      for (const v of host) total = normType === Infinity ? (Number.isNaN(v) ? NaN : Math.max(total, v)) : total + v;
      if (normType !== Infinity && normType !== 1) total = total ** (1 / normType);
      if (!Number.isFinite(total) && errorIfNonfinite) {
        const bad = grads.filter((_, i) => !Number.isFinite(host[i])).map(([n]) => `"${n}"`);
        throw new NonFiniteError(
          "clipGradNorm",
          `the total ${normType}-norm of the gradients is ${total}; non-finite gradients in ${bad.join(", ")}`,
        );
      }
      const coef = maxNorm / (total + 1e-6);
      if (coef < 1 || Number.isNaN(coef)) { for (const [, g] of grads) g.assign(g.mul(coef)); }
      return total;
    })
  );
}

/**
 * Clamps every gradient element of `params` into [−clipValue, clipValue], in place.
 *
 * @example
 * ```ts
 * import { clipGradValue } from "./clip.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const w = tensor([3, -4]).requireGrad();
 * w.mul(w).mul(0.5).sum().backward();
 * clipGradValue([w], 1); // w.grad is [1, -1]
 * ```
 */
export function clipGradValue(params: Params, clipValue: number): void {
  checkNumber("clipGradValue", "clipValue", clipValue, { min: 0, finite: false });
  const grads = gradsOf("clipGradValue", params);
  noGrad(() =>
    tidy(() => {
      for (const [, g] of grads) g.assign(g.clamp(-clipValue, clipValue));
    })
  );
}

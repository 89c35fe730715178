/**
 * Residuals with structure the solver can exploit: {@link BasisResidual}, for `u = Φ·w` expansions
 * (hard-constraint layers: a network outputs N basis functions Φ, the coefficients w make a PDE
 * residual vanish) where the residual is pointwise in a few linear features `u_k = Φ_k·w`:
 *
 *     r = F(Φ_1·w, …, Φ_K·w; θ)   (row i of r reads row i of each u_k only)
 *     J = Σ_k diag(∂F/∂u_k)·Φ_k,  then JᵀJ and Jᵀr by two batched matmuls
 *
 * so J costs one reverse pass of F (or none, with `derivative`) and a product with Φ, instead of N
 * forward passes; `leastSquares` stacks the K features once per solve, so each iteration forms every
 * u_k by one matmul and J by one batched product per row. Derivative features (u_x = Φ_x·w, a
 * finite-difference stencil applied to Φ, boundary rows) are just more features.
 *
 * @module
 */

import { ArgumentError, ShapeError } from "../tensor/errors.ts";
import { fmtShape } from "../tensor/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { matmul } from "../tensor/ops_matmul.ts";

/** What a {@link BasisResidual} is made of. */
export interface BasisResidualSpec<P> {
  /**
   * The linear features Φ_k(θ): one tensor or a list, each `[B, M, N]` (one per problem) or
   * `[M, N]` (shared by every problem). Called once per solve (and once per backward pass).
   */
  features: (params: P) => Tensor | readonly Tensor[];
  /** The residual `r = F(u_1, …, u_K; θ)` `[B, M]` from the features `u_k = Φ_k·w` `[B, M]`, pointwise in each u_k. */
  pointwise: (u: Tensor[], params: P) => Tensor;
  /** Optional ∂F/∂u_k, each `[B, M]` (or null for a feature F does not read); by autodiff when omitted. */
  derivative?: (u: Tensor[], params: P) => (Tensor | null)[];
}

/**
 * A residual `r(w; θ) = F(Φ_1(θ)·w, …; θ)`, pointwise in its linear features — the structured
 * Jacobian fast path of `leastSquares`. It is also an ordinary residual function (`residual`).
 *
 * @example
 * ```ts
 * import { BasisResidual } from "./residual.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * // r = Φw + 0.1 (Φw)² − y
 * const res = new BasisResidual({
 *   features: (p: { phi: Tensor; y: Tensor }) => p.phi,
 *   pointwise: ([u], p) => u.add(u.square().mul(0.1)).sub(p.y),
 * });
 * ```
 */
export class BasisResidual<P> {
  /** The specification. */
  readonly spec: BasisResidualSpec<P>;

  /** Wraps the specification. */
  constructor(spec: BasisResidualSpec<P>) {
    if (typeof spec?.features !== "function" || typeof spec?.pointwise !== "function") {
      throw new ArgumentError("BasisResidual", "needs { features, pointwise } functions");
    }
    this.spec = spec;
  }

  /**
   * The features Φ_k(θ) as a checked list (N must match `n`, the batch must be 1-D when present).
   *
   * @example
   * ```ts
   * // const phis = basis.features(params, 64);
   * ```
   */
  features(params: P, n: number): Tensor[] {
    const f = this.spec.features(params);
    const list = Array.isArray(f) ? [...f] : [f as Tensor];
    if (list.length === 0) throw new ArgumentError("BasisResidual", "features returned an empty list");
    for (const phi of list) {
      if ((phi.ndim !== 2 && phi.ndim !== 3) || phi.shape[phi.ndim - 1] !== n) {
        throw new ShapeError(
          "BasisResidual",
          `each feature must be [B, M, N] or [M, N] with N = ${n} unknowns, got ${fmtShape(phi.shape)}`,
        );
      }
    }
    return list;
  }

  /**
   * `u_k = Φ_k·w` for w `[B, N]`: each `[B, M]`.
   *
   * @example
   * ```ts
   * // const u = basis.apply(phis, w);
   * ```
   */
  apply(features: readonly Tensor[], w: Tensor): Tensor[] {
    return features.map((phi) => {
      const u = matmul(phi, w.unsqueeze(-1));
      return u.reshape(u.shape.slice(0, -1));
    });
  }

  /**
   * The residual at w `[B, N]`: `F(Φ_1·w, …; θ)`, `[B, M]`.
   *
   * @example
   * ```ts
   * // const r = basis.residual(w, params);
   * ```
   */
  residual(w: Tensor, params: P): Tensor {
    return this.spec.pointwise(this.apply(this.features(params, w.shape[w.ndim - 1]), w), params);
  }
}

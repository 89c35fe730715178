/**
 * How the solution of a nonlinear least-squares problem is differentiated, kept apart from how it
 * is solved (as in Optimistix): {@link ImplicitAdjoint} (the implicit function theorem at the
 * solution: one batched linear solve and one VJP of the residual, whatever the number of
 * iterations) or {@link UnrolledAdjoint} (differentiate through every iteration). See `mod.ts`
 * for the equations.
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";
import { Cholesky, type LinearSolver, LU } from "./linear_solver.ts";

/** Options of {@link ImplicitAdjoint}. */
export interface ImplicitAdjointOptions {
  /** Damping μ ≥ 0 of the adjoint system `(H + μI)·v = w̄`. Default 0 (exact). */
  damping?: number;
  /**
   * H: "gauss-newton" (default, JᵀJ at the solution — exact when the residual vanishes there, the
   * hard-constraint case) or "exact" (the full Hessian of ½‖r‖², `JᵀJ + Σᵢ rᵢ∇²rᵢ`, formed by N
   * Hessian–vector products; exact for non-zero residuals too).
   */
  hessian?: "gauss-newton" | "exact";
  /**
   * Relative Tikhonov term used when `H + μI` is numerically singular (see the solver option of
   * the same name). 0 disables it (the gradients of those problems are then zero and flagged).
   * Default: 10·n·ε of the dtype.
   */
  regularization?: number;
  /**
   * The linear solver of the adjoint system, as Optimistix's `ImplicitAdjoint(linear_solver=…)`:
   * a dense one ({@link Cholesky} or {@link LU}). Default {@link Cholesky} for the Gauss–Newton
   * Hessian (JᵀJ is positive semi-definite) and {@link LU} for the exact one (possibly indefinite).
   */
  linearSolver?: LinearSolver;
}

/**
 * Differentiate the solution by the implicit function theorem (the default adjoint).
 *
 * @example
 * ```ts
 * import { ImplicitAdjoint } from "./adjoint.ts";
 * const adjoint = new ImplicitAdjoint({ damping: 1e-6 });
 * adjoint.kind; // "implicit"
 * ```
 */
export class ImplicitAdjoint {
  /** Discriminates the adjoint kinds. */
  readonly kind = "implicit";
  /** Damping μ of the adjoint system. */
  readonly damping: number;
  /** Which Hessian the adjoint system uses. */
  readonly hessian: "gauss-newton" | "exact";
  /** Relative Tikhonov fallback (undefined: 10·n·ε). */
  readonly regularization: number | undefined;
  /** The linear solver of the adjoint system. */
  readonly linearSolver: LinearSolver;

  /** An implicit adjoint with the given options (all optional). */
  constructor(options: ImplicitAdjointOptions = {}) {
    const damping = options.damping ?? 0;
    if (!(damping >= 0) || !Number.isFinite(damping)) {
      throw new ArgumentError("ImplicitAdjoint", `damping must be a finite number ≥ 0, got ${damping}`);
    }
    const hessian = options.hessian ?? "gauss-newton";
    if (hessian !== "gauss-newton" && hessian !== "exact") {
      throw new ArgumentError("ImplicitAdjoint", `hessian must be "gauss-newton" or "exact", got ${hessian}`);
    }
    const reg = options.regularization;
    if (reg !== undefined && (!(reg >= 0) || !Number.isFinite(reg))) {
      throw new ArgumentError("ImplicitAdjoint", `regularization must be a finite number ≥ 0, got ${reg}`);
    }
    const linearSolver = options.linearSolver ?? (hessian === "exact" ? new LU() : new Cholesky());
    if (!(linearSolver instanceof Cholesky) && !(linearSolver instanceof LU)) {
      throw new ArgumentError("ImplicitAdjoint", "linearSolver must be a dense linear solver (Cholesky or LU)");
    }
    this.damping = damping;
    this.hessian = hessian;
    this.regularization = reg;
    this.linearSolver = linearSolver;
  }
}

/**
 * Differentiate through every iteration of the solver (memory grows with the number of
 * iterations; the damping schedule and the accept/reject decisions are treated as constants).
 * For testing the implicit adjoint, and for users who want the derivative of the iterate the
 * solver actually returned, converged or not.
 *
 * @example
 * ```ts
 * import { UnrolledAdjoint } from "./adjoint.ts";
 * new UnrolledAdjoint().kind; // "unrolled"
 * ```
 */
export class UnrolledAdjoint {
  /** Discriminates the adjoint kinds. */
  readonly kind = "unrolled";
}

/**
 * Either adjoint.
 *
 * @example
 * ```ts
 * import { type Adjoint, UnrolledAdjoint } from "./adjoint.ts";
 * const a: Adjoint = new UnrolledAdjoint();
 * ```
 */
export type Adjoint = ImplicitAdjoint | UnrolledAdjoint;

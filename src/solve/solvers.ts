/**
 * Nonlinear least-squares solvers as values: {@link LevenbergMarquardt} and {@link GaussNewton}
 * hold their options (tolerances, step limit, damping rule, conditioning) and nothing else; the
 * iteration itself lives in `least_squares.ts`, which reads these fields. See `mod.ts` for the
 * equations.
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";

/** Options shared by both solvers. */
export interface SolverOptions {
  /** Absolute tolerance of the termination test. Default 1e-6. */
  atol?: number;
  /** Relative tolerance of the termination test. Default 1e-6. */
  rtol?: number;
  /** Most iterations per problem (each is one linear solve and one residual + Jacobian evaluation). Default 100. */
  maxSteps?: number;
  /** Also stop when ‖Jᵀr‖∞ ≤ gtol (0 switches the gradient test off). Default 0. */
  gtol?: number;
  /**
   * Relative Tikhonov term τ used when the damped normal matrix A = JᵀJ + λD is numerically
   * singular (Cholesky fails, or its pivot ratio is below n·ε): that step is dropped and the
   * problem's later steps add τ·max(diag JᵀJ)·I to A; its `regularized` flag is set. 0 disables
   * it (the problem then stops with status "singular"). Default: 10·n·ε of the dtype.
   */
  regularization?: number;
}

/** Options of {@link LevenbergMarquardt}. */
export interface LevenbergMarquardtOptions extends SolverOptions {
  /** τ₀ of the initial damping λ₀ = τ₀·max(diag JᵀJ(w₀)) (τ₀ itself when that is 0). Default 1e-3. */
  initialDamping?: number;
  /**
   * The damping matrix D: "identity" (Levenberg, D = I, as Optimistix's LevenbergMarquardt) or
   * "marquardt" (Moré's scaling, D = diag of the largest diag(JᵀJ) seen so far; invariant to
   * rescaling the unknowns). Default "identity".
   */
  scaling?: "identity" | "marquardt";
}

/** Options of {@link GaussNewton}. */
export interface GaussNewtonOptions extends SolverOptions {
  /** A fixed damping μ ≥ 0 added as μI to JᵀJ in every step. Default 0 (pure Gauss–Newton). */
  damping?: number;
}

function nonNegative(op: string, name: string, v: number): number {
  if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) {
    throw new ArgumentError(op, `${name} must be a finite number ≥ 0, got ${v}`);
  }
  return v;
}

function shared(op: string, o: SolverOptions) {
  const maxSteps = o.maxSteps ?? 100;
  if (!Number.isInteger(maxSteps) || maxSteps < 0) {
    throw new ArgumentError(op, `maxSteps must be an integer ≥ 0, got ${maxSteps}`);
  }
  return {
    atol: nonNegative(op, "atol", o.atol ?? 1e-6),
    rtol: nonNegative(op, "rtol", o.rtol ?? 1e-6),
    gtol: nonNegative(op, "gtol", o.gtol ?? 0),
    maxSteps,
    regularization: o.regularization === undefined ? undefined : nonNegative(op, "regularization", o.regularization),
  };
}

/**
 * Levenberg–Marquardt: damped Gauss–Newton steps `(JᵀJ + λD)·δ = −Jᵀr` with the damping adapted
 * by the gain ratio (Nielsen's rule), accepted only when they reduce ½‖r‖².
 *
 * @example
 * ```ts
 * import { LevenbergMarquardt } from "./solvers.ts";
 * const lm = new LevenbergMarquardt({ atol: 1e-8, rtol: 1e-8, maxSteps: 50 });
 * lm.kind; // "levenberg-marquardt"
 * ```
 */
export class LevenbergMarquardt {
  /** Discriminates the solver kinds. */
  readonly kind = "levenberg-marquardt";
  /** Absolute tolerance. */
  readonly atol: number;
  /** Relative tolerance. */
  readonly rtol: number;
  /** Gradient tolerance (0: off). */
  readonly gtol: number;
  /** Iteration limit. */
  readonly maxSteps: number;
  /** Relative Tikhonov fallback (undefined: 10·n·ε). */
  readonly regularization: number | undefined;
  /** τ₀ of the initial damping. */
  readonly initialDamping: number;
  /** The damping matrix D. */
  readonly scaling: "identity" | "marquardt";

  /** A solver with the given options (all optional). */
  constructor(options: LevenbergMarquardtOptions = {}) {
    const s = shared("LevenbergMarquardt", options);
    this.atol = s.atol;
    this.rtol = s.rtol;
    this.gtol = s.gtol;
    this.maxSteps = s.maxSteps;
    this.regularization = s.regularization;
    this.initialDamping = nonNegative("LevenbergMarquardt", "initialDamping", options.initialDamping ?? 1e-3);
    const scaling = options.scaling ?? "identity";
    if (scaling !== "identity" && scaling !== "marquardt") {
      throw new ArgumentError("LevenbergMarquardt", `scaling must be "identity" or "marquardt", got ${scaling}`);
    }
    this.scaling = scaling;
  }
}

/**
 * Gauss–Newton: full steps `(JᵀJ + μI)·δ = −Jᵀr` (μ = `damping`, default 0), always taken. Fast
 * near a solution; no globalisation, so prefer {@link LevenbergMarquardt} from a poor start.
 *
 * @example
 * ```ts
 * import { GaussNewton } from "./solvers.ts";
 * const gn = new GaussNewton({ maxSteps: 20 });
 * gn.kind; // "gauss-newton"
 * ```
 */
export class GaussNewton {
  /** Discriminates the solver kinds. */
  readonly kind = "gauss-newton";
  /** Absolute tolerance. */
  readonly atol: number;
  /** Relative tolerance. */
  readonly rtol: number;
  /** Gradient tolerance (0: off). */
  readonly gtol: number;
  /** Iteration limit. */
  readonly maxSteps: number;
  /** Relative Tikhonov fallback (undefined: 10·n·ε). */
  readonly regularization: number | undefined;
  /** Fixed damping μ. */
  readonly damping: number;

  /** A solver with the given options (all optional). */
  constructor(options: GaussNewtonOptions = {}) {
    const s = shared("GaussNewton", options);
    this.atol = s.atol;
    this.rtol = s.rtol;
    this.gtol = s.gtol;
    this.maxSteps = s.maxSteps;
    this.regularization = s.regularization;
    this.damping = nonNegative("GaussNewton", "damping", options.damping ?? 0);
  }
}

/**
 * Either solver.
 *
 * @example
 * ```ts
 * import { GaussNewton, type LeastSquaresSolver } from "./solvers.ts";
 * const s: LeastSquaresSolver = new GaussNewton();
 * ```
 */
export type LeastSquaresSolver = LevenbergMarquardt | GaussNewton;

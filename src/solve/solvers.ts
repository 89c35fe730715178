/**
 * Nonlinear least-squares solvers as values, composed as Optimistix composes them: the damped
 * Gauss–Newton descent, a search and a linear solver. {@link LevenbergMarquardt} is the descent
 * with Nielsen's damping update ({@link TrustRegion}); {@link GaussNewton} is the undamped (or
 * fixed-damping) descent with every step taken ({@link LearningRate}) or with a backtracking line
 * search. Both run the iteration of `gauss_newton.ts` on the one loop of `iterate.ts`. See
 * `mod.ts` for the equations.
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";
import { AbstractGaussNewton } from "./gauss_newton.ts";
import { Cholesky, type LinearSolver } from "./linear_solver.ts";
import { BacktrackingLineSearch, LearningRate, TrustRegion } from "./search.ts";

/** Options shared by both solvers. */
export interface SolverOptions {
  /** Absolute tolerance of the termination test. Default 1e-6. */
  atol?: number;
  /** Relative tolerance of the termination test. Default 1e-6. */
  rtol?: number;
  /** Most iterations per problem (each is one linear solve and one residual + Jacobian evaluation). Default 100. */
  maxSteps?: number;
  /**
   * Stationarity tolerance: a problem whose termination test passes is "converged" when the
   * cosine of the angle between r and the range of J, ‖P_J r‖₂ / ‖r‖₂, is at most gtol (or
   * ‖P_J r‖₂ ≤ √M·atol), else "stalled". Default 1e-4.
   */
  gtol?: number;
  /**
   * Also stop when an accepted step lowers ½‖r‖² by at most ftol of it (MINPACK's ftol). Default 0
   * (off).
   */
  ftol?: number;
  /** The linear solver of the steps (default {@link Cholesky}). */
  linearSolver?: LinearSolver;
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
  /**
   * The search: {@link LearningRate} (default: every finite full step is taken) or a
   * {@link BacktrackingLineSearch} (each step lowers the cost).
   */
  search?: LearningRate | BacktrackingLineSearch;
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
  const linearSolver = o.linearSolver ?? new Cholesky();
  if (typeof linearSolver?.factor !== "function" || typeof linearSolver?.addDiagonal !== "function") {
    throw new ArgumentError(op, "linearSolver must be a linear solver (Cholesky, LU or BandedCholesky)");
  }
  return {
    atol: nonNegative(op, "atol", o.atol ?? 1e-6),
    rtol: nonNegative(op, "rtol", o.rtol ?? 1e-6),
    gtol: nonNegative(op, "gtol", o.gtol ?? 1e-4),
    ftol: nonNegative(op, "ftol", o.ftol ?? 0),
    maxSteps,
    regularization: o.regularization === undefined ? undefined : nonNegative(op, "regularization", o.regularization),
    linearSolver,
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
export class LevenbergMarquardt extends AbstractGaussNewton {
  /** Discriminates the solver kinds. */
  readonly kind = "levenberg-marquardt";
  /** τ₀ of the initial damping. */
  readonly initialDamping: number;

  /** A solver with the given options (all optional). */
  constructor(options: LevenbergMarquardtOptions = {}) {
    const op = "LevenbergMarquardt";
    const scaling = options.scaling ?? "identity";
    if (scaling !== "identity" && scaling !== "marquardt") {
      throw new ArgumentError(op, `scaling must be "identity" or "marquardt", got ${scaling}`);
    }
    super({ ...shared(op, options), search: new TrustRegion(), scaling });
    this.initialDamping = nonNegative(op, "initialDamping", options.initialDamping ?? 1e-3);
  }

  /** λ₀ = τ₀·max diag J₀ᵀJ₀ (τ₀ when that is not positive). */
  lambda0(maxDiag: number): number {
    return this.initialDamping * (maxDiag > 0 ? maxDiag : 1);
  }
}

/**
 * Gauss–Newton: steps `(JᵀJ + μI)·δ = −Jᵀr` (μ = `damping`, default 0), every finite one taken
 * ({@link LearningRate}, the default) or shortened by a {@link BacktrackingLineSearch} until the
 * cost does not increase. Fast near a solution; without the line search there is no
 * globalisation, so prefer {@link LevenbergMarquardt} from a poor start.
 *
 * @example
 * ```ts
 * import { GaussNewton } from "./solvers.ts";
 * const gn = new GaussNewton({ maxSteps: 20 });
 * gn.kind; // "gauss-newton"
 * ```
 */
export class GaussNewton extends AbstractGaussNewton {
  /** Discriminates the solver kinds. */
  readonly kind = "gauss-newton";
  /** Fixed damping μ. */
  readonly damping: number;

  /** A solver with the given options (all optional). */
  constructor(options: GaussNewtonOptions = {}) {
    const op = "GaussNewton";
    const search = options.search ?? new LearningRate();
    if (!(search instanceof LearningRate) && !(search instanceof BacktrackingLineSearch)) {
      throw new ArgumentError(op, "search must be a LearningRate or a BacktrackingLineSearch");
    }
    super({ ...shared(op, options), search, scaling: "identity" });
    this.damping = nonNegative(op, "damping", options.damping ?? 0);
  }

  /** λ = μ throughout. */
  lambda0(): number {
    return this.damping;
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

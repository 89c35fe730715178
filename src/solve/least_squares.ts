/**
 * Batched nonlinear least squares `min_w ½‖r(w; θ)‖²` for B independent problems (w `[B, N]`,
 * r `[B, M]`), solved by any solver of the Gauss–Newton family ({@link LevenbergMarquardt},
 * {@link GaussNewton}) on the one loop of `iterate.ts`, and differentiated by an
 * {@link ImplicitAdjoint} (default) or an {@link UnrolledAdjoint}. The equations, termination
 * tests and conditioning rules are in the module doc of `mod.ts`.
 *
 * Everything that scales with M or N runs as tensor ops and backend primitives (so on the GPU
 * unchanged). Iterations run inside `tidy` and the previous iterate is disposed, so memory stays
 * bounded by one iteration's temporaries (implicit adjoint).
 *
 * @module
 */

import { noGrad } from "../tensor/autograd.ts";
import { tidy } from "../tensor/storage.ts";
import { stack } from "../tensor/ops_shape.ts";
import { ArgumentError, DTypeError, ShapeError } from "../tensor/errors.ts";
import { fmtShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type Adjoint, ImplicitAdjoint } from "./adjoint.ts";
import { SolverError } from "./errors.ts";
import {
  evaluate,
  halfSquaredNorm,
  type JacobianOption,
  mapTensors,
  type Problem,
  type ResidualFn,
  stackFeatures,
  tensorsOf,
} from "./evaluate.ts";
import { AbstractGaussNewton, defaultRegularization } from "./gauss_newton.ts";
import { implicitValue, OK_STATUS } from "./implicit.ts";
import { linalgOf } from "./internal.ts";
import { iterate, STATUS, type Status } from "./iterate.ts";
import { BasisResidual } from "./residual.ts";
import { type LeastSquaresSolver, LevenbergMarquardt } from "./solvers.ts";

/** Options of {@link leastSquares}. */
export interface LeastSquaresOptions<P> {
  /** The solver (default `new LevenbergMarquardt()`). */
  solver?: LeastSquaresSolver;
  /** How to differentiate the solution (default `new ImplicitAdjoint()`). */
  adjoint?: Adjoint;
  /** How to form J (default "forward"; ignored for a {@link BasisResidual}). */
  jacobian?: JacobianOption<P>;
  /** Throw a {@link SolverError} when any problem did not converge. Default false (read `status`). */
  throwOnFailure?: boolean;
}

/** What the adjoint's linear solve needed, per problem (filled when a backward pass runs). */
export interface AdjointReport {
  /** The Tikhonov fallback was added to the adjoint system. */
  regularized: boolean[];
  /** The adjoint system stayed singular (the problem's gradient is zero). */
  singular: boolean[];
}

/** The solution and per-problem diagnostics of {@link leastSquares}. */
export interface LeastSquaresResult {
  /** The solution w* `[B, N]`, differentiable with respect to the tensors in `params`. */
  value: Tensor;
  /**
   * How each problem ended: "converged", "max_steps", "singular" (the step's linear system was
   * singular even after regularization, or regularization is off) or "nonfinite" (NaN / Inf in
   * the residual or Jacobian at the start; the value is then the last finite iterate, w0 if none).
   */
  status: Status[];
  /** Iterations each problem ran. */
  steps: number[];
  /** ‖r(w*)‖₂ per problem. */
  residualNorm: number[];
  /** ‖J(w*)ᵀr(w*)‖∞ per problem. */
  gradientNorm: number[];
  /** Whether the Tikhonov fallback was needed in some step of the problem. */
  regularized: boolean[];
  /** The final damping λ per problem (Levenberg–Marquardt; the fixed μ for Gauss–Newton). */
  damping: number[];
  /** Iterations of the batched loop (the largest of `steps`). */
  iterations: number;
  /** Whether every problem converged. */
  converged: boolean;
  /** The adjoint's conditioning report of the last backward pass through `value` (null before one). */
  adjointReport(): AdjointReport | null;
}

// ------------------------------------------------------------------------------------ the solve

/**
 * Solves `min_w ½‖r(w; θ)‖²` for a batch of independent problems from w0 `[B, N]`, returning the
 * solution (differentiable with respect to every tensor in `params` through the chosen adjoint)
 * and per-problem status, iteration counts and residual norms. Tensors the residual reads that
 * should receive gradients must be passed in `params` (a tensor, or arrays / plain objects of
 * them); the implicit adjoint raises an `AutodiffError` when the residual reads other tensors that
 * require grad.
 *
 * @example
 * ```ts
 * import { leastSquares, LevenbergMarquardt } from "./mod.ts";
 * import { tensor, type Tensor } from "../tensor/mod.ts";
 * // Fit y = a·exp(−k t) for two data sets at once.
 * const t = tensor([[0, 1, 2, 3]]);
 * const y = tensor([[2, 1.2131, 0.7358, 0.4463], [1, 0.3679, 0.1353, 0.0498]]).requireGrad();
 * const fit = (w: Tensor, p: { y: Tensor }) =>
 *   w.narrow(1, 0, 1).mul(w.narrow(1, 1, 1).neg().mul(t).exp()).sub(p.y);
 * const sol = leastSquares(fit, tensor([[1, 1], [1, 1]]), { y }, { solver: new LevenbergMarquardt() });
 * sol.status; // ["converged", "converged"]
 * sol.value.sum().backward(); // y.grad by the implicit function theorem
 * ```
 */
export function leastSquares<P>(
  residual: ResidualFn<P> | BasisResidual<P>,
  w0: Tensor,
  params: P,
  options: LeastSquaresOptions<P> = {},
): LeastSquaresResult {
  const op = "leastSquares";
  const solver = options.solver ?? new LevenbergMarquardt();
  const adjoint = options.adjoint ?? new ImplicitAdjoint();
  const { pb, loopProblem, relReg } = prepare(
    op,
    residual,
    w0,
    params,
    solver,
    adjoint,
    options.jacobian,
    solver.maxSteps > 0,
  );
  const [b] = w0.shape;
  const loop = iterate(solver, loopProblem, w0);
  if (!pb.differentiable) loopProblem.stacked?.dispose();
  // The iteration's own autodiff leaves (for an untracked w0) take no gradient from here on.
  for (const leaf of loopProblem.leaves) leaf.requiresGrad = false;
  const iterations = loop.iterations;
  const host = [
    Array.from(loop.status),
    Array.from(loop.steps),
    Array.from(loop.cost, (c) => Math.sqrt(2 * c)),
    Array.from(loop.gnorm),
    Array.from(loop.regularized),
    Array.from(loop.lam),
  ];
  const row = (k: number) => host[k];
  const status = row(0).map((c) => STATUS[c] ?? "nonfinite");
  let reportFlags: Float64Array | null = null;
  let value: Tensor;
  if (pb.differentiable) {
    value = loop.w;
  } else {
    const atStar = () => {
      const okHost = Float64Array.from(loop.status, (c) => (OK_STATUS.has(STATUS[c]) ? 1 : 0));
      return { jtj: loop.jtj, ok: Tensor.fromBuffer(w0.backend.fromHost(okHost, w0.dtype), [b], w0.dtype) };
    };
    value = implicitValue(pb, adjoint as ImplicitAdjoint, loop.w, atStar, relReg, (f) => {
      reportFlags = f;
    });
    // Without a node no backward pass will read them.
    if (!value.node) { for (const t of [loop.w, loop.jtj]) t.dispose(); }
  }
  const adjointReport = (): AdjointReport | null => {
    const f = reportFlags as Float64Array | null;
    if (!f) return null;
    return {
      regularized: Array.from(f.subarray(0, b), (x) => x > 0),
      singular: Array.from(f.subarray(b, 2 * b), (x) => x > 0),
    };
  };
  const result: LeastSquaresResult = {
    value,
    status,
    steps: row(1),
    residualNorm: row(2),
    gradientNorm: row(3),
    regularized: row(4).map((v) => v > 0),
    damping: row(5),
    iterations,
    converged: status.every((s) => s === "converged"),
    adjointReport,
  };
  if (options.throwOnFailure && !result.converged) {
    const failed = status.flatMap((s, i) => (s === "converged" ? [] : [`problem ${i}: ${s}`]));
    throw new SolverError(
      op,
      status,
      `${failed.length} of ${b} problems did not converge (${failed.slice(0, 8).join(", ")}${
        failed.length > 8 ? ", …" : ""
      }) after ${iterations} iterations`,
    );
  }
  return result;
}

/** Options of {@link implicitSolution}. */
export interface ImplicitSolutionOptions<P> {
  /** The implicit adjoint (default `new ImplicitAdjoint()`). */
  adjoint?: ImplicitAdjoint;
  /** How to form J (default "forward"; ignored for a {@link BasisResidual}). */
  jacobian?: JacobianOption<P>;
  /** The relative Tikhonov fallback of the adjoint system (default: as {@link leastSquares}). */
  regularization?: number;
}

/**
 * The implicit-function node of a solution found elsewhere: returns `wStar` `[B, N]` unchanged in
 * value, as a tensor whose backward pass is the implicit adjoint of `min_w ½‖r(w; θ)‖²` at w*
 * (the Jacobian is formed once there; no iterations run). This is how one batched forward solve is
 * split into independent backward pieces: solve all problems at once without recording, then give
 * each piece its own node over its own slice of the parameters. The status it reports is
 * "max_steps" for every problem (it never iterates); `residualNorm` and `gradientNorm` are at w*.
 *
 * @example
 * ```ts
 * import { implicitSolution, leastSquares } from "./mod.ts";
 * import { noGrad, tensor, type Tensor } from "../tensor/mod.ts";
 * const y = tensor([[1, 2, 3]], { dtype: "float64" }).requireGrad();
 * const r = (w: Tensor, p: { y: Tensor }) => w.mul(w).sub(p.y); // w² = y
 * const wStar = noGrad(() => leastSquares(r, tensor([[1, 1, 1]], { dtype: "float64" }), { y }).value);
 * const w = implicitSolution(r, wStar, { y }).value;
 * w.sum().backward(); // y.grad ≈ 1 / (2√y)
 * ```
 */
export function implicitSolution<P>(
  residual: ResidualFn<P> | BasisResidual<P>,
  wStar: Tensor,
  params: P,
  options: ImplicitSolutionOptions<P> = {},
): LeastSquaresResult {
  const adjoint = options.adjoint ?? new ImplicitAdjoint();
  if (adjoint?.kind !== "implicit") {
    throw new ArgumentError("implicitSolution", "adjoint must be an ImplicitAdjoint instance (nothing to unroll)");
  }
  if (!(wStar instanceof Tensor)) throw new ArgumentError("implicitSolution", "wStar must be a Tensor");
  const solver = new LevenbergMarquardt({ maxSteps: 0, regularization: options.regularization });
  return leastSquares(residual, wStar.detach(), params, { solver, adjoint, jacobian: options.jacobian });
}

/**
 * The node of {@link implicitSolution} alone: `wStar` `[B, N]` unchanged in value, whose backward
 * pass is the implicit adjoint at w*, without the diagnostics (no residual norms, no status, no
 * adjoint report), so nothing is read to the host but the one number the adjoint's factorisation
 * reads (whether any problem needs the Tikhonov fallback) — a step that gives each of many pieces
 * its own node waits for the device once per piece, not three times. As there, a problem whose
 * residual or Jacobian at w* is not finite gets a zero gradient.
 *
 * @example
 * ```ts
 * import { implicitNode, leastSquares } from "./mod.ts";
 * import { noGrad, tensor, type Tensor } from "../tensor/mod.ts";
 * const y = tensor([[1, 2, 3]], { dtype: "float64" }).requireGrad();
 * const r = (w: Tensor, p: { y: Tensor }) => w.mul(w).sub(p.y); // w² = y
 * const wStar = noGrad(() => leastSquares(r, tensor([[1, 1, 1]], { dtype: "float64" }), { y }).value);
 * implicitNode(r, wStar, { y }).sum().backward(); // y.grad ≈ 1 / (2√y)
 * ```
 */
export function implicitNode<P>(
  residual: ResidualFn<P> | BasisResidual<P>,
  wStar: Tensor,
  params: P,
  options: ImplicitSolutionOptions<P> = {},
): Tensor {
  const op = "implicitNode";
  const adjoint = options.adjoint ?? new ImplicitAdjoint();
  if (adjoint?.kind !== "implicit") {
    throw new ArgumentError(op, "adjoint must be an ImplicitAdjoint instance (nothing to unroll)");
  }
  if (!(wStar instanceof Tensor)) throw new ArgumentError(op, "wStar must be a Tensor");
  const solver = new LevenbergMarquardt({ maxSteps: 0, regularization: options.regularization });
  const w = wStar.detach();
  const { pb, loopProblem, relReg } = prepare(op, residual, w, params, solver, adjoint, options.jacobian, false);
  const atStar = () =>
    noGrad(() =>
      tidy(() => {
        const ev = evaluate(loopProblem, w);
        // The solver's start tests: a finite cost, Σ JᵀJ and Σ Jᵀr (1 where all three are).
        const probe = stack([halfSquaredNorm(ev.r), ev.jtj.sum([1, 2]), ev.jtr.sum(-1)]);
        return { jtj: ev.jtj, ok: probe.sub(probe).eq(0).cast(w.dtype).min(0) };
      })
    );
  return implicitValue(pb, adjoint, w, atStar, relReg, null);
}

/**
 * The checked problem of a solve from `w0` (and its detached copy the implicit adjoint iterates on);
 * a structured residual's features are stacked for the iterations when there will be some.
 */
function prepare<P>(
  op: string,
  residual: ResidualFn<P> | BasisResidual<P>,
  w0: Tensor,
  params: P,
  solver: LeastSquaresSolver,
  adjoint: Adjoint,
  jacobian: JacobianOption<P> | undefined,
  iterates: boolean,
): { pb: Problem<P>; loopProblem: Problem<P>; relReg: number } {
  if (!(solver instanceof AbstractGaussNewton)) {
    throw new ArgumentError(op, "solver must be a LevenbergMarquardt or GaussNewton instance");
  }
  if (adjoint?.kind !== "implicit" && adjoint?.kind !== "unrolled") {
    throw new ArgumentError(op, "adjoint must be an ImplicitAdjoint or UnrolledAdjoint instance");
  }
  if (!(w0 instanceof Tensor)) throw new ArgumentError(op, "w0 must be a Tensor");
  if (w0.ndim !== 2) throw new ShapeError(op, `w0 must be [B, N] (B problems, N unknowns), got ${fmtShape(w0.shape)}`);
  if (w0.dtype !== "float32" && w0.dtype !== "float64") {
    throw new DTypeError(op, `w0 must be float32 or float64, got ${w0.dtype}`);
  }
  linalgOf(op, w0);
  const basis = residual instanceof BasisResidual ? residual : null;
  if (!basis && typeof residual !== "function") {
    throw new ArgumentError(op, "residual must be a function (w, params) => Tensor or a BasisResidual");
  }
  const [b, n] = w0.shape;
  const unrolled = adjoint.kind === "unrolled";
  if (unrolled && !solver.linearSolver.differentiable) {
    throw new ArgumentError(
      op,
      `the ${solver.linearSolver.kind} linear solver is not recorded for autodiff; use the implicit adjoint`,
    );
  }
  const pb: Problem<P> = {
    residual: basis ? (w, p) => basis.residual(w, p) : residual as ResidualFn<P>,
    basis,
    params,
    jacobian: jacobian ?? "forward",
    b,
    n,
    dtype: w0.dtype,
    gramShape: solver.linearSolver.shape(b, n),
    feats: null,
    stacked: null,
    differentiable: unrolled,
    leaves: [],
  };
  const relReg = solver.regularization ?? defaultRegularization(n, w0.dtype);
  for (const t of tensorsOf(params)) w0.sameBackend(op, t);
  // The implicit adjoint iterates on constants: the residual sees detached parameters, so the
  // internal Jacobian passes never walk into (or record onto) the caller's graph.
  const loopProblem: Problem<P> = unrolled ? pb : { ...pb, params: mapTensors(params, (t) => t.detach()) };
  const feats = basis
    ? (unrolled ? basis.features(params, n) : noGrad(() => basis.features(loopProblem.params, n)))
    : null;
  loopProblem.feats = feats;
  if (feats) {
    for (const phi of feats) {
      w0.sameBackend(op, phi);
      if (phi.ndim === 3 && phi.shape[0] !== b) {
        throw new ShapeError(op, `feature of shape ${fmtShape(phi.shape)} does not match B = ${b} problems`);
      }
      if (phi.dtype !== w0.dtype) throw new DTypeError(op, `features are ${phi.dtype} but w0 is ${w0.dtype}`);
    }
    if (iterates) loopProblem.stacked = unrolled ? stackFeatures(feats, b) : noGrad(() => stackFeatures(feats, b));
  }
  return { pb, loopProblem, relReg };
}

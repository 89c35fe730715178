/**
 * The outcome of a batched expert solve: the coefficients and the solver's per-problem report
 * ({@link ExpertSolve}), and {@link checkSolve}, which summarises it, names each problem that did
 * not converge by expert and batch entry, and raises on NaN/Inf (and, when strict, on any problem
 * that did not converge).
 *
 * @example
 * ```ts
 * import type { SolveSummary } from "./expert_solve.ts";
 * const line = (s: SolveSummary) => `${s.converged}/${s.problems} converged`;
 * ```
 *
 * @module
 */

import { NonFiniteError, type Tensor } from "../tensor/mod.ts";
import { SolverError } from "../solve/errors.ts";
import type { LeastSquaresResult } from "../solve/least_squares.ts";

/**
 * The result of a batched expert solve.
 *
 * @example
 * ```ts
 * import type { ExpertSolve } from "./expert_solve.ts";
 * const iterations = (s: ExpertSolve) => s.result.steps; // per problem, expert-major
 * ```
 */
export interface ExpertSolve {
  /** The coefficients `[K·B, N]` (problem `k·B + b`); differentiable when solved with grad. */
  w: Tensor;
  /** The solver's per-problem report. */
  result: LeastSquaresResult;
  /** The experts solved, in order. */
  experts: readonly number[];
}

/**
 * Some expert solves did not converge (raised by `checkSolve` with `strict`).
 *
 * @example
 * ```ts
 * import { ExpertSolveError } from "./expert_solve.ts";
 * const e = new ExpertSolveError("HardConstraint", ["converged", "max_steps"], "expert 0 sample 1: max_steps");
 * e.status[1]; // "max_steps"
 * ```
 */
export class ExpertSolveError extends SolverError {}

/**
 * A summary of a batched expert solve (host numbers).
 *
 * @example
 * ```ts
 * import type { SolveSummary } from "./expert_solve.ts";
 * const line = (s: SolveSummary) => `${s.converged}/${s.problems} converged, ${s.meanIterations.toFixed(1)} iterations`;
 * ```
 */
export interface SolveSummary {
  /** Number of problems (experts × batch). */
  problems: number;
  /** How many converged. */
  converged: number;
  /** Mean iterations per problem. */
  meanIterations: number;
  /** Largest iteration count. */
  maxIterations: number;
  /** Mean ‖r(w*)‖₂ over problems. */
  meanResidual: number;
  /** Problems that did not converge: `{ expert, sample, status, residual }`. */
  failed: { expert: number; sample: number; status: string; residual: number }[];
}

/**
 * Summarises a batched expert solve, naming each problem that did not converge by expert and
 * batch entry. Raises a `NonFiniteError` when a problem met NaN or Inf (its basis or residual is
 * not finite), and with `strict` an {@link ExpertSolveError} when any problem did not converge.
 *
 * @example
 * ```ts
 * import { checkSolve, HardConstraint, Heat1D } from "./mod.ts";
 * import { noGrad, randn } from "../tensor/mod.ts";
 * const heat = new Heat1D();
 * const grid = heat.grid({ nt: 9, nx: 16 });
 * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
 * const f = layer.features(randn([2, 9, 16, 4], { dtype: "float64" }), heat.initialConditions(2, grid, { dtype: "float64" }));
 * const solved = noGrad(() => layer.solve(f, layer.layout([Int32Array.from([20, 40, 60, 80])])));
 * const summary = checkSolve(solved, 2);
 * summary.converged; // of summary.problems (2)
 * ```
 */
export function checkSolve(solve: ExpertSolve, batch: number, options: { strict?: boolean } = {}): SolveSummary {
  const r = solve.result;
  const failed: SolveSummary["failed"] = [];
  r.status.forEach((s, p) => {
    if (s === "converged") return;
    failed.push({
      expert: solve.experts[Math.floor(p / batch)],
      sample: p % batch,
      status: s,
      residual: r.residualNorm[p],
    });
  });
  const describe = (list: typeof failed) =>
    list.slice(0, 6).map((f) =>
      `expert ${f.expert} sample ${f.sample}: ${f.status} (‖r‖ = ${f.residual.toExponential(2)})`
    )
      .join("; ") + (list.length > 6 ? `; … ${list.length - 6} more` : "");
  const nonfinite = failed.filter((f) => f.status === "nonfinite");
  if (nonfinite.length) {
    throw new NonFiniteError(
      "HardConstraint",
      `${nonfinite.length} expert solve(s) met NaN or Inf in the basis or the residual (${describe(nonfinite)}); ` +
        "the network's output or the data is not finite",
    );
  }
  if (options.strict && failed.length) {
    throw new ExpertSolveError(
      "HardConstraint",
      r.status,
      `${failed.length} of ${r.status.length} expert solves did not converge within ${r.iterations} iterations: ${
        describe(failed)
      }`,
    );
  }
  const steps = r.steps;
  return {
    problems: r.status.length,
    converged: r.status.length - failed.length,
    meanIterations: steps.reduce((s, v) => s + v, 0) / Math.max(1, steps.length),
    maxIterations: steps.reduce((s, v) => Math.max(s, v), 0),
    meanResidual: r.residualNorm.reduce((s, v) => s + v, 0) / Math.max(1, r.residualNorm.length),
    failed,
  };
}

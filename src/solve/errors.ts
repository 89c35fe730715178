/**
 * Typed errors of the solvers: a singular (or not positive-definite) matrix in a linear solve, and
 * a nonlinear solve that did not converge when the caller asked for an exception.
 *
 * @module
 */

import { PatchworkError } from "../tensor/errors.ts";

/**
 * A matrix of a batched linear solve is singular, numerically singular, or (for Cholesky) not
 * positive definite. `indices` lists the failing entries of the batch (row-major flat indices
 * over the batch axes).
 *
 * @example
 * ```ts
 * import { SingularMatrixError } from "./errors.ts";
 * const e = new SingularMatrixError("solve", [1, 3], "matrices 1, 3 of batch [4] are singular");
 * e.indices; // [1, 3]
 * ```
 */
export class SingularMatrixError extends PatchworkError {
  /** Flat indices of the failing batch entries. */
  readonly indices: readonly number[];
  /** Builds `op: detail` as the message. */
  constructor(op: string, indices: readonly number[], detail: string) {
    super(op, detail);
    this.indices = indices;
  }
}

/**
 * A nonlinear solve ended without converging for some problems of the batch (raised only when
 * `throwOnFailure` is set; otherwise the per-problem status says so).
 *
 * @example
 * ```ts
 * import { SolverError } from "./errors.ts";
 * const e = new SolverError("leastSquares", ["converged", "max_steps"], "problem 1: max_steps");
 * e.status[1]; // "max_steps"
 * ```
 */
export class SolverError extends PatchworkError {
  /** Status of every problem of the batch. */
  readonly status: readonly string[];
  /** Builds `op: detail` as the message. */
  constructor(op: string, status: readonly string[], detail: string) {
    super(op, detail);
    this.status = status;
  }
}

/**
 * The one loop every iterative solver runs, after Optimistix's `_iterate.py`: a solver is a value
 * with `init` (the state at w0), `step` (one iteration for every active problem of the batch) and
 * `terminate` (whether any problem is still active); the loop knows nothing of the solver's kind.
 *
 * @module
 */

import { enableGrad, noGrad } from "../tensor/autograd.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Problem } from "./evaluate.ts";

/**
 * How a problem of the batch ended: "converged" (the termination test passed at a first-order
 * stationary point), "stalled" (the iterates stopped moving at a point that is not stationary),
 * "max_steps", "singular" (the step's linear system stayed singular) or "nonfinite".
 *
 * @example
 * ```ts
 * import type { Status } from "./iterate.ts";
 * const ok = (s: Status) => s === "converged";
 * ```
 */
export type Status = "converged" | "max_steps" | "singular" | "nonfinite" | "stalled";

/**
 * The status names by code (the per-problem codes the solvers keep).
 *
 * @example
 * ```ts
 * import { STATUS } from "./iterate.ts";
 * STATUS[0]; // "converged"
 * ```
 */
export const STATUS: readonly Status[] = ["converged", "max_steps", "singular", "nonfinite", "stalled"];

/**
 * What the loop reads of any solver's state: the iterate, the per-problem host record, and the
 * normal matrix at the iterate (the implicit adjoint reuses it).
 *
 * @example
 * ```ts
 * import type { SolverState } from "./iterate.ts";
 * const done = (s: SolverState) => !s.active.some((a) => a === 1);
 * ```
 */
export interface SolverState {
  /** The current iterate `[B, N]`. */
  w: Tensor;
  /** JᵀJ at w (in the linear solver's storage). */
  jtj: Tensor;
  /** Status code per problem (an index into {@link STATUS}; "max_steps" while running). */
  readonly status: Int32Array;
  /** Iterations per problem. */
  readonly steps: Int32Array;
  /** 1 while the problem iterates. */
  readonly active: Uint8Array;
  /** ½‖r(w)‖² per problem. */
  readonly cost: Float64Array;
  /** ‖Jᵀr‖∞ per problem. */
  readonly gnorm: Float64Array;
  /** Whether the Tikhonov fallback was needed. */
  readonly regularized: Uint8Array;
  /** The damping λ per problem. */
  readonly lam: Float64Array;
  /** Loop iterations so far. */
  iterations: number;
}

/**
 * An iterative solver for batches of least-squares problems.
 *
 * @example
 * ```ts
 * import type { IterativeSolver } from "./iterate.ts";
 * const steps = (s: IterativeSolver<never>) => s.maxSteps;
 * ```
 */
export interface IterativeSolver<S extends SolverState> {
  /** Iteration limit. */
  readonly maxSteps: number;
  /** The state at w0 (evaluates the residual and J there). */
  init<P>(problem: Problem<P>, w0: Tensor): S;
  /** One iteration of every active problem; returns the tensors no longer needed. */
  step<P>(problem: Problem<P>, state: S): Tensor[];
  /** Whether every problem has stopped. */
  terminate(state: S): boolean;
  /** Frees what the solver keeps beside the iterate and JᵀJ (all of it but the graph when recorded). */
  release(state: S, differentiable: boolean): void;
}

/**
 * Runs `solver` from w0 until every problem stops or `maxSteps` iterations. Each step runs inside
 * `tidy`; a problem that is not recorded (implicit adjoint) keeps only the current iterate alive.
 *
 * @example
 * ```ts
 * import { iterate } from "./iterate.ts";
 * // const state = iterate(new LevenbergMarquardt(), problem, w0);
 * ```
 */
export function iterate<P, S extends SolverState>(solver: IterativeSolver<S>, problem: Problem<P>, w0: Tensor): S {
  const mode = <T>(fn: () => T): T => (problem.differentiable ? enableGrad(fn) : noGrad(fn));
  const state = mode(() => solver.init(problem, w0));
  while (!solver.terminate(state) && state.iterations < solver.maxSteps) {
    const dead = mode(() => solver.step(problem, state));
    // The implicit adjoint needs none of the previous iterates (the unrolled one keeps its graph).
    if (!problem.differentiable) { for (const t of dead) t.dispose(); }
  }
  solver.release(state, problem.differentiable);
  return state;
}

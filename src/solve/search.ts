/**
 * Searches, as Optimistix decomposes its solvers: a descent proposes a step from the model at the
 * current point (here the damped Gauss–Newton step `(JᵀJ + λD)·δ = −Jᵀr`), and a search decides,
 * per problem, whether a trial point is accepted and what the next damping or step length is.
 *
 * - {@link TrustRegion}: Levenberg–Marquardt's damping update (Nielsen's rule) from the gain ratio
 *   of actual to predicted reduction; one trial per iteration.
 * - {@link LearningRate}: every finite full step is taken (Gauss–Newton).
 * - {@link BacktrackingLineSearch}: halves the step along one direction until the cost does not
 *   increase; trial points are judged by their cost alone, and J is formed only where a step is
 *   accepted.
 *
 * The decisions are per-problem host arithmetic on numbers the iteration has read back in its one
 * synchronisation; see `mod.ts` for the equations.
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";

/**
 * One problem's trial point, as the search sees it.
 *
 * @example
 * ```ts
 * import type { Trial } from "./search.ts";
 * const t: Trial = { cost: 1, trialCost: 0.5, finite: true, predicted: 0.6, noise: 1e-8, lastTry: true };
 * ```
 */
export interface Trial {
  /** ½‖r‖² at the current point. */
  cost: number;
  /** ½‖r‖² at the trial point. */
  trialCost: number;
  /** Whether the trial's residual (and, evaluated eagerly, its normal equations) are finite. */
  finite: boolean;
  /** The model's reduction −gᵀδ − ½δᵀJᵀJδ (NaN when the search does not use it). */
  predicted: number;
  /** The cost's rounding level: reductions below it are noise. */
  noise: number;
  /** Whether no further trial along this direction is allowed this iteration. */
  lastTry: boolean;
}

/**
 * A search's verdict on a trial: take it, reject it (the next iteration proposes again), try a
 * shorter step along the same direction, stop because the trial is not finite, or stop because no
 * step along the direction lowers the cost.
 *
 * @example
 * ```ts
 * import type { Verdict } from "./search.ts";
 * const v: Verdict = "accept";
 * ```
 */
export type Verdict = "accept" | "reject" | "retry" | "nonfinite" | "exhausted";

/** Per-problem damping state a search may update: λ and Nielsen's ν. */
export interface Damping {
  /** λ per problem. */
  readonly lam: Float64Array;
  /** ν per problem. */
  readonly nu: Float64Array;
}

/**
 * What the Gauss–Newton iteration asks of a search.
 *
 * @example
 * ```ts
 * import { LearningRate, type Search } from "./search.ts";
 * const s: Search = new LearningRate();
 * s.tries; // 1
 * ```
 */
export interface Search {
  /** Names the search. */
  readonly kind: string;
  /** Trial points judged by their cost alone: J is formed only where a step is accepted. */
  readonly lazy: boolean;
  /** Trials per iteration (a line search retries along one direction). */
  readonly tries: number;
  /** The step length of try `t` (0-based) along the direction. */
  length(t: number): number;
  /** Judges problem `k`'s trial, updating its damping where the search adapts it. */
  judge(k: number, trial: Trial, damping: Damping): Verdict;
}

/**
 * Levenberg–Marquardt's search: the step is accepted when the cost does not increase, then
 * λ ← λ·max(⅓, 1 − (2ρ − 1)³), ν ← 2 with the gain ratio ρ = actual / predicted reduction;
 * otherwise λ ← λ·ν, ν ← 2ν (Nielsen's rule). When both reductions are within the cost's rounding
 * level the model is trusted (ρ = 1), so noise does not inflate λ near a solution.
 *
 * @example
 * ```ts
 * import { TrustRegion } from "./search.ts";
 * new TrustRegion().lazy; // false: J is formed at every trial point (one synchronisation per iteration)
 * ```
 */
export class TrustRegion implements Search {
  /** Names the search. */
  readonly kind = "trust-region";
  /** J at every trial point. */
  readonly lazy = false;
  /** One trial per iteration. */
  readonly tries = 1;

  /** Always the full damped step. */
  length(): number {
    return 1;
  }

  /** Nielsen's update. */
  judge(k: number, t: Trial, d: Damping): Verdict {
    const actual = t.cost - t.trialCost;
    const noise = t.noise * Math.max(t.cost, t.finite ? t.trialCost : 0);
    const atNoise = t.finite && Math.abs(actual) <= noise && t.predicted <= noise;
    const rho = atNoise ? 1 : t.predicted > 0 ? actual / t.predicted : actual >= 0 ? 1 : -1;
    const ok = t.finite && (actual >= 0 || atNoise);
    if (ok) {
      const x = 2 * rho - 1;
      d.lam[k] = Math.min(1e30, Math.max(1e-30, d.lam[k] * Math.max(1 / 3, 1 - x * x * x)));
      d.nu[k] = 2;
      return "accept";
    }
    d.lam[k] = Math.min(1e30, d.lam[k] * d.nu[k]);
    d.nu[k] = Math.min(1e8, d.nu[k] * 2);
    return "reject";
  }
}

/**
 * Gauss–Newton's search: every finite full step is taken (a trial that is not finite stops the
 * problem with status "nonfinite").
 *
 * @example
 * ```ts
 * import { GaussNewton, LearningRate } from "./mod.ts";
 * const gn = new GaussNewton({ search: new LearningRate() }); // the default
 * ```
 */
export class LearningRate implements Search {
  /** Names the search. */
  readonly kind = "learning-rate";
  /** J at every trial point (each is taken). */
  readonly lazy = false;
  /** One trial per iteration. */
  readonly tries = 1;

  /** The full step. */
  length(): number {
    return 1;
  }

  /** Accepts a finite trial. */
  judge(_k: number, t: Trial): Verdict {
    return t.finite ? "accept" : "nonfinite";
  }
}

/** Options of {@link BacktrackingLineSearch}. */
export interface BacktrackingOptions {
  /** Trial lengths 1, ½, ¼, … per iteration at most. Default 40. */
  tries?: number;
}

/**
 * A backtracking line search: lengths 1, ½, ¼, … along the Gauss–Newton direction until the cost
 * does not increase; when none of `tries` lengths does, the problem stops (no descent along the
 * direction: a stationary point, or a stall). Trials are judged by their cost alone, so J is
 * formed only at accepted points.
 *
 * @example
 * ```ts
 * import { BacktrackingLineSearch, GaussNewton } from "./mod.ts";
 * const gn = new GaussNewton({ search: new BacktrackingLineSearch({ tries: 20 }) });
 * ```
 */
export class BacktrackingLineSearch implements Search {
  /** Names the search. */
  readonly kind = "backtracking";
  /** J only at accepted points. */
  readonly lazy = true;
  /** Trials per iteration. */
  readonly tries: number;

  /** A line search with the given options. */
  constructor(options: BacktrackingOptions = {}) {
    const tries = options.tries ?? 40;
    if (!Number.isInteger(tries) || tries < 1) {
      throw new ArgumentError("BacktrackingLineSearch", `tries must be a positive integer, got ${tries}`);
    }
    this.tries = tries;
  }

  /** 2⁻ᵗ. */
  length(t: number): number {
    return 2 ** -t;
  }

  /** Accepts a trial whose cost does not exceed the current one; else halves, or gives up. */
  judge(_k: number, t: Trial): Verdict {
    if (t.finite && t.trialCost <= t.cost) return "accept";
    return t.lastTry ? "exhausted" : "retry";
  }
}

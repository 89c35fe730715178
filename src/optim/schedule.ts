/**
 * Learning-rate schedules: functions from the step count (0 for the first update) to a learning
 * rate. Any optimiser's `lr` accepts one in place of a number.
 *
 * @module
 */

import { ArgumentError, checkInteger, checkNumber, checkOneOf, checkOptions } from "../tensor/mod.ts";

/**
 * A learning-rate schedule: the rate for the update made after `step` earlier updates.
 *
 * @example
 * ```ts
 * import type { Schedule } from "./schedule.ts";
 * const inverseSqrt: Schedule = (step) => 1e-3 / Math.sqrt(Math.max(step, 1));
 * ```
 */
export type Schedule = (step: number) => number;

/**
 * A fixed rate or a schedule.
 *
 * @example
 * ```ts
 * import { type LearningRate, warmupCosine } from "./schedule.ts";
 * const fixed: LearningRate = 1e-3;
 * const scheduled: LearningRate = warmupCosine({ peakLr: 1e-3, warmupSteps: 10, totalSteps: 100 });
 * ```
 */
export type LearningRate = number | Schedule;

/** A learning rate argument: a finite number ≥ 0. */
function rate(op: string, name: string, value: unknown): number {
  return checkNumber(op, name, value, { min: 0 });
}

/** A step count argument: an integer ≥ 0. */
function count(op: string, name: string, value: unknown): number {
  return checkInteger(op, name, value, { min: 0 });
}

/**
 * The learning rate of `lr` at `step` (checked to be finite and non-negative).
 *
 * @example
 * ```ts
 * import { resolveLr, warmupCosine } from "./schedule.ts";
 * resolveLr(0.1, 5); // 0.1
 * resolveLr(warmupCosine({ peakLr: 1, warmupSteps: 10, totalSteps: 100 }), 5); // 0.5
 * ```
 */
export function resolveLr(lr: LearningRate, step: number): number {
  const value = typeof lr === "function" ? lr(step) : lr;
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new ArgumentError("lr", `the learning rate at step ${step} is ${value}; it must be finite and non-negative`);
  }
  return value;
}

/**
 * The same rate at every step.
 *
 * @example
 * ```ts
 * import { constant } from "./schedule.ts";
 * constant(3e-4)(1000); // 3e-4
 * ```
 */
export function constant(lr: number): Schedule {
  rate("constant", "lr", lr);
  return () => lr;
}

/**
 * Options of {@link linearWarmup}.
 *
 * @example
 * ```ts
 * import { linearWarmup, type WarmupOptions } from "./schedule.ts";
 * const options: WarmupOptions = { peakLr: 1e-3, warmupSteps: 500, initLr: 1e-5 };
 * linearWarmup(options)(250); // ≈ 5e-4
 * ```
 */
export interface WarmupOptions {
  /** Rate reached at the end of the warm-up and kept after it. */
  peakLr: number;
  /** Steps of linear warm-up. */
  warmupSteps: number;
  /** Rate at step 0. Default 0. */
  initLr?: number;
}

/**
 * Linear warm-up from `initLr` (step 0) to `peakLr` (step `warmupSteps`), then constant.
 *
 * @example
 * ```ts
 * import { linearWarmup } from "./schedule.ts";
 * const s = linearWarmup({ peakLr: 1e-3, warmupSteps: 100 });
 * [s(0), s(50), s(100), s(5000)]; // [0, 5e-4, 1e-3, 1e-3]
 * ```
 */
export function linearWarmup(options: WarmupOptions): Schedule {
  const op = "linearWarmup";
  const { peakLr, warmupSteps, initLr = 0 } = checkOptions(op, options, ["peakLr", "warmupSteps", "initLr"]);
  rate(op, "peakLr", peakLr);
  rate(op, "initLr", initLr);
  count(op, "warmupSteps", warmupSteps);
  return (t) => (t < warmupSteps ? initLr + (peakLr - initLr) * (t / warmupSteps) : peakLr);
}

/**
 * Options of {@link warmupCosine}.
 *
 * @example
 * ```ts
 * import { warmupCosine, type WarmupCosineOptions } from "./schedule.ts";
 * const options: WarmupCosineOptions = { peakLr: 1e-3, warmupSteps: 100, totalSteps: 10_000, minLr: 1e-5 };
 * warmupCosine(options)(100); // 1e-3
 * ```
 */
export interface WarmupCosineOptions {
  /** Rate at the end of the warm-up. */
  peakLr: number;
  /** Steps of linear warm-up (0 for none). */
  warmupSteps: number;
  /** Step at which the cosine reaches `minLr` (counted from 0, warm-up included). */
  totalSteps: number;
  /** Final rate, kept after `totalSteps`. Default 0. */
  minLr?: number;
  /** Rate at step 0. Default 0. */
  initLr?: number;
}

/**
 * Linear warm-up from `initLr` to `peakLr` over `warmupSteps`, then half a cosine down to `minLr`
 * at `totalSteps`, then `minLr` (optax's `warmup_cosine_decay_schedule`; with `initLr` 0 it is
 * Hugging Face's `get_cosine_schedule_with_warmup` plus a floor).
 *
 * @example
 * ```ts
 * import { warmupCosine } from "./schedule.ts";
 * const s = warmupCosine({ peakLr: 1e-3, warmupSteps: 100, totalSteps: 1100, minLr: 1e-5 });
 * [s(0), s(100), s(600), s(1100)]; // [0, 1e-3, 5.05e-4, 1e-5]
 * ```
 */
export function warmupCosine(options: WarmupCosineOptions): Schedule {
  const op = "warmupCosine";
  return cosine(op, checkOptions(op, options, ["peakLr", "warmupSteps", "totalSteps", "minLr", "initLr"]));
}

/** The warm-up + cosine schedule, its options checked in the name of `op`. */
function cosine(op: string, options: WarmupCosineOptions): Schedule {
  const { peakLr, warmupSteps, totalSteps, minLr = 0, initLr = 0 } = options;
  rate(op, "peakLr", peakLr);
  rate(op, "minLr", minLr);
  rate(op, "initLr", initLr);
  count(op, "warmupSteps", warmupSteps);
  count(op, "totalSteps", totalSteps);
  if (totalSteps < warmupSteps) {
    throw new ArgumentError(op, `totalSteps (${totalSteps}) must be at least warmupSteps (${warmupSteps})`);
  }
  const decay = totalSteps - warmupSteps;
  return (t) => {
    if (t < warmupSteps) return initLr + (peakLr - initLr) * (t / warmupSteps);
    if (t >= totalSteps) return minLr;
    const progress = (t - warmupSteps) / decay;
    return minLr + (peakLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * Half a cosine from `peakLr` (step 0) to `minLr` (step `totalSteps`), then `minLr`.
 *
 * @example
 * ```ts
 * import { cosineDecay } from "./schedule.ts";
 * cosineDecay({ peakLr: 1, totalSteps: 10 })(5); // 0.5
 * ```
 */
export function cosineDecay(options: { peakLr: number; totalSteps: number; minLr?: number }): Schedule {
  const op = "cosineDecay";
  return cosine(op, { ...checkOptions(op, options, ["peakLr", "totalSteps", "minLr"]), warmupSteps: 0 });
}

/**
 * `lr · gamma^(step / every)` (with `staircase`, the exponent is floored: a drop every `every` steps).
 *
 * @example
 * ```ts
 * import { exponentialDecay } from "./schedule.ts";
 * exponentialDecay({ lr: 1, gamma: 0.5, every: 10, staircase: true })(25); // 0.25
 * ```
 */
export function exponentialDecay(
  options: { lr: number; gamma: number; every?: number; staircase?: boolean },
): Schedule {
  const op = "exponentialDecay";
  const { lr, gamma, every = 1, staircase = false } = checkOptions(op, options, ["lr", "gamma", "every", "staircase"]);
  rate(op, "lr", lr);
  checkNumber(op, "gamma", gamma, { min: 0 });
  checkNumber(op, "every", every, { min: 0, minOpen: true });
  checkOneOf(op, "staircase", staircase, [true, false]);
  return (t) => lr * gamma ** (staircase ? Math.floor(t / every) : t / every);
}

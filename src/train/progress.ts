/**
 * The progress line of a training run and its number formats:
 *
 *     step  25/150  loss 9.14e-1  residual 1.73e-1  28.4k pts/s  0.095 s/step  mem 7.1/66.3 MiB  eta 12s
 *
 * the step of the total, the loss, whatever the caller adds, the rate in the caller's unit
 * (points, tokens), seconds per step, the backend's memory in use and its peak, and the time
 * left. {@link Stopwatch} times the phases of a step for the caller.
 *
 * @example
 * ```ts
 * import { progressLine } from "./progress.ts";
 * progressLine({ step: 25, steps: 150, loss: 0.914, parts: [], rate: 28400, unit: "tok", secondsPerStep: 0.095, memoryMiB: 7.1, peakMiB: 66.3, etaSeconds: 12 });
 * ```
 *
 * @module
 */

/**
 * A number in scientific notation with `digits` significant digits (`9.14e-1`); NaN and ±∞ as
 * words.
 *
 * @example
 * ```ts
 * import { sci } from "./progress.ts";
 * sci(0.000123456); // "1.23e-4"
 * ```
 */
export function sci(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toExponential(digits - 1) : String(v);
}

/**
 * A rate with a k / M suffix (`28.4k`, `1.25M`, `950`).
 *
 * @example
 * ```ts
 * import { rate } from "./progress.ts";
 * rate(28437); // "28.4k"
 * ```
 */
export function rate(v: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(0);
}

/**
 * A duration for people: `42s`, `3m05s`, `2h07m`.
 *
 * @example
 * ```ts
 * import { duration } from "./progress.ts";
 * duration(185); // "3m05s"
 * ```
 */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * The fields of one progress line.
 *
 * @example
 * ```ts
 * import type { ProgressFields } from "./progress.ts";
 * const f: ProgressFields = { step: 1, steps: 10, loss: 2.5, parts: ["lr 1.00e-3"], rate: 900, unit: "tok", secondsPerStep: 1.2, memoryMiB: 10, peakMiB: 40 };
 * ```
 */
export interface ProgressFields {
  /** Completed steps. */
  step: number;
  /** Total steps. */
  steps: number;
  /** The loss. */
  loss: number;
  /** The caller's parts, between the loss and the rate (`residual 1.73e-1`). */
  parts: readonly string[];
  /** Items per second. */
  rate: number;
  /** The items' short name (`pts`, `tok`). */
  unit: string;
  /** Seconds per step. */
  secondsPerStep: number;
  /** Backend memory in use, MiB. */
  memoryMiB: number;
  /** Peak backend memory, MiB. */
  peakMiB: number;
  /** Estimated seconds left (omitted when undefined). */
  etaSeconds?: number;
}

/**
 * One progress line (see the module notes), parts separated by two spaces.
 *
 * @example
 * ```ts
 * import { progressLine } from "./progress.ts";
 * progressLine({ step: 5, steps: 20, loss: 0.5, parts: [], rate: 1500, unit: "pts", secondsPerStep: 0.2, memoryMiB: 7, peakMiB: 70 });
 * // "step  5/20  loss 5.00e-1  1.5k pts/s  0.200 s/step  mem 7.0/70.0 MiB"
 * ```
 */
export function progressLine(f: ProgressFields): string {
  const parts = [
    `step ${String(f.step).padStart(String(f.steps).length)}/${f.steps}`,
    `loss ${sci(f.loss)}`,
    ...f.parts,
    `${rate(f.rate)} ${f.unit}/s`,
    `${f.secondsPerStep.toFixed(3)} s/step`,
    `mem ${f.memoryMiB.toFixed(1)}/${f.peakMiB.toFixed(1)} MiB`,
  ];
  if (f.etaSeconds !== undefined) parts.push(`eta ${duration(f.etaSeconds)}`);
  return parts.join("  ");
}

/**
 * Times the phases of a step: each {@link Stopwatch.lap} adds the milliseconds since the previous
 * lap (or the start) to the named phase. Hand `lap` to code that announces its phases.
 *
 * @example
 * ```ts
 * import { Stopwatch } from "./progress.ts";
 * const watch = new Stopwatch();
 * // ... solve ...
 * watch.lap("solve");
 * // ... backward ...
 * watch.lap("backward");
 * watch.ms; // { solve: …, backward: … }
 * ```
 */
export class Stopwatch {
  /** Milliseconds per phase. */
  readonly ms: Record<string, number> = {};
  #last = performance.now();

  /** Adds the time since the previous lap to `phase` and returns it (ms). */
  readonly lap = (phase: string): number => {
    const now = performance.now();
    const d = now - this.#last;
    this.#last = now;
    this.ms[phase] = (this.ms[phase] ?? 0) + d;
    return d;
  };
}

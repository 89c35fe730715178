// Shared by the language-model GPU benchmarks (lm_attention.ts, lm_step.ts, lm_chunked_scale.ts):
// timing with the device drained at both ends, medians, and the JSON lines that carry PyTorch's
// figures (bench/torch_*.py) and ours into one table.

import { getDefaultBackend, OutOfMemoryError } from "../mod.ts";

/** The H200 SXM's dense bfloat16 rate by its datasheet (TFLOP/s). */
export const PEAK_TFLOPS = 989;

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Seconds that `fn` takes, the device drained before and after (queued launches counted). */
export function timed<T>(fn: () => T): { seconds: number; value: T } {
  const backend = getDefaultBackend();
  backend.synchronize();
  const t0 = performance.now();
  const value = fn();
  backend.synchronize();
  return { seconds: (performance.now() - t0) / 1000, value };
}

/**
 * Median seconds of up to `reps` runs of `fn` after `warmup` runs (one at least), fewer runs when
 * they would take more than `maxSeconds` together (judged by the last warm-up); and how many ran.
 */
export function medianSeconds(
  fn: () => void,
  reps: number,
  warmup: number,
  maxSeconds = Infinity,
): { seconds: number; reps: number } {
  let last = 0;
  for (let i = 0; i < Math.max(1, warmup); i++) last = timed(fn).seconds;
  const n = Math.max(1, Math.min(reps, Math.floor(maxSeconds / Math.max(last, 1e-9))));
  return { seconds: median(Array.from({ length: n }, () => timed(fn).seconds)), reps: n };
}

/** The backend in words, for the tables' headers. */
export function deviceLine(): string {
  const b = getDefaultBackend() as { name: string; description?: string };
  return `${b.name}${b.description ? ` (${b.description})` : ""}; ${new Date().toISOString()}`;
}

/** The rows of a JSON-lines file (none when the file is absent). */
export function readJsonLines(path: string | undefined): Record<string, unknown>[] {
  if (!path) return [];
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Appends one row to a JSON-lines file (nothing without a path). */
export function appendJsonLine(path: string | undefined, row: Record<string, unknown>): void {
  if (path) Deno.writeTextFileSync(path, JSON.stringify(row) + "\n", { append: true });
}

/** `a / b` to two decimals, or — when either is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  return a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(2) : "—";
}

/**
 * Whether an error is the device running out of memory: the allocator's error, or a library's
 * failed allocation of its own workspace (cuBLAS, cuFFT, cuSOLVER).
 */
export function outOfMemory(e: unknown): boolean {
  return e instanceof OutOfMemoryError || (e instanceof Error && /OUT_OF_MEMORY|ALLOC_FAILED/.test(e.message));
}

/** Whether a JSON row has every one of `fields` equal. */
export function rowMatches(row: Record<string, unknown>, fields: Record<string, unknown>): boolean {
  return Object.entries(fields).every(([key, value]) => row[key] === value);
}

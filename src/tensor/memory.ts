/**
 * Memory as a program reads it: the bytes its tensors hold, apart from the constants that
 * library code caches across calls (a solver's identity and triangular masks, a mixture of
 * experts' region masks). Those are made once, on first use, and live for the rest of the run, so
 * counting them with the program's tensors would make the first call of a loop look like a leak.
 *
 * @module
 */

import { getDefaultBackend, type MemoryStats } from "./backend.ts";
import { itemSize } from "./dtype.ts";
import { keep, type Storage } from "./storage.ts";
import type { Tensor } from "./tensor.ts";
import { checkTensor } from "./validate.ts";

const constants = new Set<Tensor>();

/**
 * Marks `t` as a constant cached across calls: it is kept out of every `tidy` scope, and its bytes
 * are reported by {@link memory} as `constants` instead of `current`. Returns `t`.
 *
 * @example
 * ```ts
 * import { cacheConstant } from "./memory.ts";
 * import { eye } from "./creation.ts";
 * const identity = cacheConstant(eye(64)); // made once, reused by every later call
 * ```
 */
export function cacheConstant<T extends Tensor>(t: T): T {
  checkTensor("cacheConstant", "t", t);
  constants.add(keep(t));
  return t;
}

/** Memory statistics in bytes: {@link MemoryStats} with the cached constants counted apart. */
export interface Memory extends MemoryStats {
  /** Bytes held by constants cached across calls ({@link cacheConstant}); not in `current` or `peak`. */
  constants: number;
}

/**
 * Memory statistics of the default backend: `current`, the bytes held by the program's live
 * tensors; `peak`, the highest `current` since the last {@link resetPeakMemory}; `cached`, bytes
 * the allocator holds for reuse; and `constants`, the bytes of constants cached across calls
 * (left out of `current` and `peak`, so a loop's first call that builds them does not look like a
 * leak).
 *
 * @example
 * ```ts
 * import { memory } from "./memory.ts";
 * const before = memory().current;
 * // ... a training step inside tidy ...
 * memory().current - before; // 0 when nothing leaked
 * ```
 */
export function memory(): Memory {
  const backend = getDefaultBackend();
  const stats = backend.memory();
  const storages = new Set<Storage>();
  for (const t of constants) {
    if (t.disposed || t.storage.freed) constants.delete(t);
    else if (t.backend === backend) storages.add(t.storage);
  }
  let bytes = 0;
  for (const s of storages) bytes += s.buffer.size * itemSize(s.buffer.dtype);
  return { ...stats, current: stats.current - bytes, peak: stats.peak - bytes, constants: bytes };
}

/**
 * Resets the default backend's peak-memory statistic to its current use.
 *
 * @example
 * ```ts
 * import { resetPeakMemory } from "./memory.ts";
 * resetPeakMemory();
 * ```
 */
export function resetPeakMemory(): void {
  getDefaultBackend().resetPeak();
}

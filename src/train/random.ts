/**
 * Seeded host random streams for the training machinery: the order of the data (which samples
 * a step sees), host-side choices (which chunks a sparse backward samples), and test inputs that
 * must not depend on the backend. These are plain numbers on the host; tensors draw from the
 * counter-based streams of `src/tensor` instead.
 *
 * {@link HostRandom} is mulberry32: one 32-bit word of state, so a checkpoint saves and restores
 * it exactly ({@link HostRandom.state}). {@link batchIndices} is a pure function of the seed and
 * the step, so a data order built on it needs no state at all.
 *
 * @example
 * ```ts
 * import { batchIndices, HostRandom } from "./random.ts";
 * const rng = new HostRandom(7);
 * rng.next(); // uniform on [0, 1)
 * batchIndices(10, 4, 0, 3); // the 4 samples of step 3 (0-based) of a seeded epoch order
 * ```
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";
import type { Resumable } from "./checkpoint.ts";

/**
 * The saved state of a {@link HostRandom}.
 *
 * @example
 * ```ts
 * import { HostRandom, type HostRandomState } from "./random.ts";
 * const s: HostRandomState = new HostRandom(1).state();
 * ```
 */
export interface HostRandomState {
  /** The generator's 32-bit state word. */
  word: number;
}

/**
 * A seeded uniform stream on [0, 1) (mulberry32) whose state can be saved in a checkpoint and
 * restored, so a resumed run draws what an uninterrupted one would.
 *
 * @example
 * ```ts
 * import { HostRandom } from "./random.ts";
 * const a = new HostRandom(3);
 * a.next();
 * const saved = a.state();
 * const x = a.next();
 * const b = new HostRandom(0);
 * b.restore(saved);
 * b.next() === x; // true
 * ```
 */
export class HostRandom implements Resumable<HostRandomState> {
  #word: number;

  /** A stream seeded with `seed` (any number; its low 32 bits are used). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new ArgumentError("HostRandom", `seed must be a finite number, got ${seed}`);
    this.#word = seed >>> 0;
  }

  /** The next uniform number on [0, 1). */
  next(): number {
    this.#word = (this.#word + 0x6d2b79f5) >>> 0;
    let t = this.#word;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * A uniform integer on [0, n).
   *
   * @example
   * ```ts
   * import { HostRandom } from "./random.ts";
   * new HostRandom(1).int(6); // 0..5
   * ```
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1) throw new ArgumentError("HostRandom.int", `n must be an integer ≥ 1, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /**
   * Shuffles `items` in place (Fisher–Yates, from the last position down) and returns it.
   *
   * @example
   * ```ts
   * import { HostRandom } from "./random.ts";
   * new HostRandom(2).shuffle([0, 1, 2, 3]); // a permutation of 0..3
   * ```
   */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** The state to save (see {@link HostRandom.restore}). */
  state(): HostRandomState {
    return { word: this.#word };
  }

  /** Continues from a saved state. */
  restore(state: HostRandomState): void {
    const word = state?.word;
    if (!Number.isInteger(word) || word < 0 || word > 0xffffffff) {
      throw new ArgumentError(
        "HostRandom.restore",
        `expected { word: a 32-bit unsigned integer }, got ${JSON.stringify(state)}`,
      );
    }
    this.#word = word;
  }
}

/**
 * A seeded uniform stream on [0, 1) as a function (a {@link HostRandom} without the state API).
 *
 * @example
 * ```ts
 * import { uniformStream } from "./random.ts";
 * const r = uniformStream(42);
 * const xs = [r(), r(), r()];
 * ```
 */
export function uniformStream(seed: number): () => number {
  const rng = new HostRandom(seed);
  return () => rng.next();
}

/**
 * A seeded permutation of 0..n−1 for epoch `epoch`, a pure function of its arguments.
 *
 * @example
 * ```ts
 * import { epochPermutation } from "./random.ts";
 * epochPermutation(5, 0, 1).sort(); // [0, 1, 2, 3, 4]
 * ```
 */
export function epochPermutation(n: number, seed: number, epoch: number): number[] {
  const rng = new HostRandom(Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b));
  return rng.shuffle(Array.from({ length: n }, (_, i) => i));
}

/**
 * The sample indices of step `step` (0-based): consecutive slices of a seeded permutation per
 * epoch ({@link epochPermutation}), a pure function of its arguments — so the data position of a
 * run is its step, and a resumed run sees what an uninterrupted one would.
 *
 * @example
 * ```ts
 * import { batchIndices } from "./random.ts";
 * batchIndices(10, 4, 0, 0).length; // 4
 * ```
 */
export function batchIndices(n: number, batchSize: number, seed: number, step: number): number[] {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(batchSize) || batchSize < 1) {
    throw new ArgumentError(
      "batchIndices",
      `needs n ≥ 1 samples and a batch size ≥ 1 (integers), got n = ${n}, batch size ${batchSize}`,
    );
  }
  const perms = new Map<number, number[]>();
  const out: number[] = [];
  for (let i = 0; i < batchSize; i++) {
    const pos = step * batchSize + i;
    const epoch = Math.floor(pos / n);
    let p = perms.get(epoch);
    if (!p) perms.set(epoch, p = epochPermutation(n, seed, epoch));
    out.push(p[pos % n]);
  }
  return out;
}

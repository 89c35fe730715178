/**
 * Iteration over strided views. Every CPU primitive walks its operands the same way: adjacent
 * axes that are laid out contiguously in every operand are merged ({@linkcode coalesce}), the
 * last remaining axis becomes a "line" handed to a tight loop, and an {@linkcode Odometer} steps
 * the per-operand offsets over the other axes. A fully contiguous view is one line. Strides may
 * be zero (broadcast) or negative (reversed); nothing here assumes otherwise.
 *
 * @module
 */

import { coalesce, sizeOf } from "../../tensor/shape.ts";

/**
 * Lowest and highest element index a view can reach (`hi < lo` when the view is empty).
 *
 * @example
 * ```ts
 * import { spanOf } from "./strided.ts";
 * spanOf([3], [-1], 5); // [3, 5]
 * ```
 */
export function spanOf(shape: readonly number[], strides: readonly number[], offset: number): [number, number] {
  let lo = offset;
  let hi = offset;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 0) return [0, -1];
    const reach = (shape[d] - 1) * strides[d];
    if (reach < 0) lo += reach;
    else hi += reach;
  }
  return [lo, hi];
}

/**
 * Steps the offsets of several operands over a shape in row-major order. `pos[j]` is operand j's
 * current element index; `next()` advances by one position (carrying like an odometer). No
 * allocation happens per step.
 *
 * @example
 * ```ts
 * import { Odometer } from "./strided.ts";
 * const w = new Odometer([2, 2], [[2, 1]], [0]);
 * const seen = [];
 * for (let i = 0; i < w.count; i++) { seen.push(w.pos[0]); w.next(); }
 * // seen = [0, 1, 2, 3]
 * ```
 */
export class Odometer {
  /** Current element index of each operand (int32, so kernels index typed arrays with small integers). */
  readonly pos: Int32Array;
  /** Number of positions (product of the shape). */
  readonly count: number;
  /**
   * The walk's state in one array (one allocation): per axis d, `[extent, index, then for each
   * operand j its stride and its stride · (extent − 1)]` at `d · (2 + 2k)`.
   */
  readonly #state: Int32Array;
  readonly #k: number;

  /** Walks `shape`; operand j starts at `offsets[j]` and moves by `strides[j][d]` along axis d. */
  constructor(shape: readonly number[], strides: readonly (readonly number[])[], offsets: readonly number[]) {
    const nd = shape.length;
    const k = offsets.length;
    const w = 2 + 2 * k;
    this.#k = k;
    const state = this.#state = new Int32Array(nd * w);
    for (let d = 0; d < nd; d++) {
      state[d * w] = shape[d];
      for (let j = 0; j < k; j++) {
        state[d * w + 2 + 2 * j] = strides[j][d];
        state[d * w + 3 + 2 * j] = strides[j][d] * (shape[d] - 1);
      }
    }
    const pos = this.pos = new Int32Array(k);
    for (let j = 0; j < k; j++) pos[j] = offsets[j];
    this.count = sizeOf(shape);
  }

  /** Advances to the next position in row-major order. */
  next(): void {
    const k = this.#k;
    const w = 2 + 2 * k;
    const state = this.#state;
    const pos = this.pos;
    for (let d = state.length / w - 1; d >= 0; d--) {
      const base = d * w;
      if (++state[base + 1] < state[base]) {
        for (let j = 0; j < k; j++) pos[j] += state[base + 2 + 2 * j];
        return;
      }
      state[base + 1] = 0;
      for (let j = 0; j < k; j++) pos[j] -= state[base + 3 + 2 * j];
    }
  }
}

/**
 * A walk over several equally shaped views split into lines: `count` lines of `n` elements;
 * along a line operand j moves by `inner[j]`; `walker.pos[j]` is its start and `walker.next()`
 * moves to the next line.
 *
 * @example
 * ```ts
 * import { linePlan } from "./strided.ts";
 * const plan = linePlan([2, 3], [[3, 1]], [0]);
 * for (let l = 0; l < plan.count; l++) {
 *   // elements plan.walker.pos[0] + k * plan.inner[0] for k < plan.n
 *   plan.walker.next();
 * }
 * ```
 */
export interface LinePlan {
  /** Number of lines. */
  readonly count: number;
  /** Elements per line. */
  readonly n: number;
  /** Step of each operand along a line. */
  readonly inner: readonly number[];
  /** Start offsets of the current line, per operand. */
  readonly walker: Odometer;
}

/**
 * Plans a row-major walk over `shape` for operands with the given strides and offsets, merging
 * axes first so a contiguous walk is a single line.
 *
 * @example
 * ```ts
 * import { linePlan } from "./strided.ts";
 * const plan = linePlan([4, 5], [[5, 1], [5, 1]], [0, 3]);
 * // plan.count === 1, plan.n === 20, plan.inner = [1, 1], plan.walker.pos = [0, 3]
 * ```
 */
export function linePlan(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  offsets: readonly number[],
): LinePlan {
  const c = coalesce(shape, strides);
  const nd = c.shape.length;
  const n = c.shape[nd - 1];
  const inner = c.strides.map((s) => s[nd - 1]);
  const walker = new Odometer(c.shape.slice(0, nd - 1), c.strides.map((s) => s.slice(0, nd - 1)), offsets);
  return { count: n === 0 ? 0 : walker.count, n, inner, walker };
}

/**
 * Plans a walk over the lines along `axis` of `shape`: one line per position of the other axes
 * (`count` of them), `n = shape[axis]` elements each, operand j stepping by `inner[j]` (its stride
 * along `axis`). Useful for softmax, cumsum, arg-reductions and FFTs.
 *
 * @example
 * ```ts
 * import { axisLines } from "./strided.ts";
 * const plan = axisLines([2, 3], 0, [[3, 1]], [0]);
 * // plan.count === 3, plan.n === 2, plan.inner = [3]; walker.pos[0] visits 0, 1, 2
 * ```
 */
export function axisLines(
  shape: readonly number[],
  axis: number,
  strides: readonly (readonly number[])[],
  offsets: readonly number[],
): LinePlan {
  const n = shape[axis];
  const inner = strides.map((s) => s[axis]);
  const outerShape = shape.filter((_, d) => d !== axis);
  const c = coalesce(outerShape, strides.map((s) => s.filter((_, d) => d !== axis)));
  const walker = new Odometer(c.shape, c.strides, offsets);
  return { count: n === 0 ? 0 : walker.count, n, inner, walker };
}

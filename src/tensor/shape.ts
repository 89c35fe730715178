/**
 * Shape arithmetic: sizes, row-major strides, NumPy broadcasting (axes and user-given shapes are
 * checked in `validate.ts`).
 *
 * @module
 */

import { ShapeError } from "./errors.ts";

/** A tensor shape: the extent of each axis. */
export type Shape = readonly number[];

/**
 * Number of elements of a shape (1 for a scalar).
 *
 * @example
 * ```ts
 * import { sizeOf } from "./shape.ts";
 * sizeOf([2, 3]); // 6
 * ```
 */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Row-major (C order) element strides of a shape.
 *
 * @example
 * ```ts
 * import { contiguousStrides } from "./shape.ts";
 * contiguousStrides([2, 3, 4]); // [12, 4, 1]
 * ```
 */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * Whether a view with these strides is row-major contiguous (size-1 axes may have any stride).
 *
 * @example
 * ```ts
 * import { isContiguous } from "./shape.ts";
 * isContiguous([2, 3], [3, 1]); // true
 * isContiguous([2, 3], [1, 2]); // false
 * ```
 */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    if (strides[d] !== s) return false;
    s *= shape[d];
  }
  return true;
}

/**
 * Whether two shapes are equal.
 *
 * @example
 * ```ts
 * import { shapesEqual } from "./shape.ts";
 * shapesEqual([2, 3], [2, 3]); // true
 * ```
 */
export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Formats a shape as `[2,3]` for messages.
 *
 * @example
 * ```ts
 * import { fmtShape } from "./shape.ts";
 * fmtShape([2, 3]); // "[2,3]"
 * ```
 */
export function fmtShape(shape: Shape): string {
  return `[${shape.join(",")}]`;
}

/**
 * The NumPy broadcast of several shapes; throws a ShapeError naming `op` when they do not broadcast.
 *
 * @example
 * ```ts
 * import { broadcastShapes } from "./shape.ts";
 * broadcastShapes("add", [3, 1], [4]); // [3, 4]
 * ```
 */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  let rank = 0;
  for (const s of shapes) rank = Math.max(rank, s.length);
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i];
      if (d === out[j] || d === 1) continue;
      if (out[j] === 1) {
        out[j] = d;
        continue;
      }
      throw new ShapeError(
        op,
        `shapes ${shapes.map(fmtShape).join(" and ")} do not broadcast (axis ${j - rank}: ${out[j]} vs ${d})`,
      );
    }
  }
  return out;
}

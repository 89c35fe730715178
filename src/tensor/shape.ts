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
  if (shapes.length === 2 && shapesEqual(shapes[0], shapes[1])) return [...shapes[0]];
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

/**
 * Merges adjacent axes that every operand lays out contiguously and drops axes of extent 1.
 * Returns the merged shape and each operand's merged strides (at least one axis, so a scalar
 * becomes shape `[1]`). Iterating the result in row-major order visits the same elements in the
 * same order as iterating the original (an empty shape becomes `[0]`). The CPU backend's loops and
 * the CUDA backend's kernel launches both walk views through it.
 *
 * @example
 * ```ts
 * import { coalesce } from "./shape.ts";
 * coalesce([2, 3], [[3, 1], [0, 1]]); // { shape: [2, 3], strides: [[3, 1], [0, 1]] }
 * coalesce([2, 3], [[3, 1], [6, 2]]); // { shape: [6], strides: [[1], [2]] }
 * ```
 */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const k = strides.length;
  const outShape: number[] = [];
  const outStrides: number[][] = [];
  for (let j = 0; j < k; j++) outStrides.push([]);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d];
    if (n === 1) continue;
    const last = outShape.length - 1;
    let merge = last >= 0;
    if (merge) {
      for (let j = 0; j < k; j++) {
        if (outStrides[j][last] !== strides[j][d] * n) {
          merge = false;
          break;
        }
      }
    }
    if (merge) {
      outShape[last] *= n;
      for (let j = 0; j < k; j++) outStrides[j][last] = strides[j][d];
    } else {
      outShape.push(n);
      for (let j = 0; j < k; j++) outStrides[j].push(strides[j][d]);
    }
  }
  if (outShape.length === 0 || shape.some((n) => n === 0)) {
    const empty = shape.some((n) => n === 0);
    return { shape: [empty ? 0 : 1], strides: outStrides.map(() => [0]) };
  }
  return { shape: outShape, strides: outStrides };
}

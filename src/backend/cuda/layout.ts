/**
 * Strided-layout helpers shared by the CUDA backend's kernels.
 *
 * @module
 */

import { sizeOf } from "../../tensor/shape.ts";

/**
 * Most axes a kernel takes (`Shape8` / `Strides8` in kernels/common.cuh).
 *
 * @example
 * ```ts
 * import { MAX_DIMS } from "./layout.ts";
 * MAX_DIMS; // 8
 * ```
 */
export const MAX_DIMS = 8;

/**
 * Elements one launch of a 32-bit-indexed kernel may cover.
 *
 * @example
 * ```ts
 * import { MAX_U32_WORK } from "./layout.ts";
 * MAX_U32_WORK; // 2147483648
 * ```
 */
export const MAX_U32_WORK = 2 ** 31;

/**
 * Drops size-1 axes and merges neighbours that are contiguous with each other in every stride
 * set (row-major order is kept, so a linear index over the result is one over the input shape).
 *
 * @example
 * ```ts
 * import { collapse } from "./layout.ts";
 * collapse([2, 1, 3], [[3, 3, 1]]); // { shape: [6], strides: [[1]] }
 * ```
 */
export function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): {
  shape: number[];
  strides: number[][];
} {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d];
    if (n === 1) continue;
    const last = outShape.length - 1;
    let merge = last >= 0;
    for (let k = 0; merge && k < strides.length; k++) {
      if (outStrides[k][last] !== strides[k][d] * n) merge = false;
    }
    if (merge) {
      outShape[last] *= n;
      for (let k = 0; k < strides.length; k++) outStrides[k][last] = strides[k][d];
    } else {
      outShape.push(n);
      for (let k = 0; k < strides.length; k++) outStrides[k].push(strides[k][d]);
    }
  }
  if (outShape.length === 0) {
    outShape.push(1);
    for (const s of outStrides) s.push(0);
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * Splits a strided iteration space into pieces a 32-bit, 8-axis kernel can take (fewer than
 * `MAX_U32_WORK` elements, at most `MAX_DIMS` axes): calls `fn` with each piece's shape, strides,
 * per-operand element offsets and the linear index of its first element.
 *
 * @example
 * ```ts
 * import { forChunks } from "./layout.ts";
 * forChunks([4, 5], [[5, 1]], (shape, strides, offsets, start) => {
 *   // one piece here: shape [4, 5], offsets [0], start 0
 * });
 * ```
 */
export function forChunks(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  fn: (shape: readonly number[], strides: readonly (readonly number[])[], offsets: number[], start: number) => void,
  offsets: number[] = strides.map(() => 0),
  start = 0,
): void {
  const n = sizeOf(shape);
  if (shape.length <= MAX_DIMS && n < MAX_U32_WORK) {
    fn(shape, strides, offsets, start);
    return;
  }
  if (shape.length === 1) {
    const step = 2 ** 30;
    for (let s = 0; s < n; s += step) {
      fn([Math.min(step, n - s)], strides, offsets.map((o, k) => o + s * strides[k][0]), start + s);
    }
    return;
  }
  const inner = n / shape[0];
  const rest = strides.map((s) => s.slice(1));
  for (let i = 0; i < shape[0]; i++) {
    forChunks(shape.slice(1), rest, fn, offsets.map((o, k) => o + i * strides[k][0]), start + i * inner);
  }
}

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

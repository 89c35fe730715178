/**
 * Strided-layout helpers shared by the CUDA backend's kernels.
 *
 * @module
 */

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

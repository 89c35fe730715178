/**
 * The CPU path of `kernels/ssm_scan.cu`: the diagonal linear recurrence of a selective
 * state-space model on host arrays (see `FusedPrimitives.linearScan`).
 *
 * @module
 */

/**
 * `h[t] = a[t]·h[t − 1] + b[t]` (or, `reverse`, `a[t]·h[t + 1] + b[t]`) over host arrays of
 * `batch × steps × width` elements (row-major `[batch, steps, width]`), starting from `h0`
 * (`batch × width`, or null for zeros). The state is carried in float64, each step one multiply
 * and one add.
 *
 * @example
 * ```ts
 * import { linearScanHost } from "./ssm_scan.ts";
 * linearScanHost([0.5, 0.5], [1, 1], null, 1, 2, 1, false); // Float64Array [1, 1.5]
 * ```
 */
export function linearScanHost(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  h0: ArrayLike<number> | null,
  batch: number,
  steps: number,
  width: number,
  reverse: boolean,
): Float64Array {
  const h = new Float64Array(batch * steps * width);
  for (let bi = 0; bi < batch; bi++) {
    for (let n = 0; n < width; n++) {
      let s = h0 ? h0[bi * width + n] : 0;
      for (let k = 0; k < steps; k++) {
        const t = reverse ? steps - 1 - k : k;
        const i = (bi * steps + t) * width + n;
        s = a[i] * s + b[i];
        h[i] = s;
      }
    }
  }
  return h;
}

/**
 * Discrete Fourier transforms along one axis of a strided view. Complex numbers are pairs in a
 * trailing axis of size 2 (`[..., 0]` real, `[..., 1]` imaginary). Each 1-D line is copied into
 * float64 scratch, transformed by the 1-D kernel of `fft.ts`, and written back; numpy.fft
 * conventions throughout (forward unnormalised, inverse divided by n).
 *
 * @module
 */

import type { NumArray, Operand } from "./buffer.ts";
import { fftKernel } from "./fft.ts";
import { simdFft } from "./fft_simd.ts";
import { axisLines, type LinePlan } from "./strided.ts";
import { contiguousStrides } from "../../tensor/shape.ts";

/**
 * Complex DFT along `axis` of the complex view `x` (shape `shape`, trailing axis 2) into the
 * contiguous array `out` of the same shape.
 *
 * @example
 * ```ts
 * import { fftInto } from "./fft_ops.ts";
 * const x = { data: new Float64Array([1, 0, 0, 0]), offset: 0, strides: [2, 1] }; // [1, 0]
 * const out = new Float64Array(4);
 * fftInto(x, [2, 2], 0, false, out); // out = [1, 0, 1, 0]
 * ```
 */
export function fftInto(x: Operand, shape: readonly number[], axis: number, inverse: boolean, out: NumArray): void {
  const rank = shape.length - 1;
  const cShape = shape.slice(0, rank);
  const oStrides = contiguousStrides(shape);
  const xt = x.strides[rank];
  const ot = oStrides[rank];
  const plan = axisLines(cShape, axis, [x.strides.slice(0, rank), oStrides.slice(0, rank)], [x.offset, 0]);
  const n = plan.n;
  if (simdFft(x, { mode: inverse ? "inverse" : "forward", n, len: n, plan, xt, ot }, out)) return;
  const [xs, os] = plan.inner;
  const d = x.data;
  eachLine(plan, n, inverse, (re, im, j) => {
    for (let k = 0; k < n; k++, j += xs) {
      re[k] = d[j];
      im[k] = d[j + xt];
    }
  }, (re, im, i) => {
    for (let k = 0; k < n; k++, i += os) {
      out[i] = re[k];
      out[i + ot] = im[k];
    }
  });
}

/**
 * Real-to-complex DFT along `axis`: the real view `x` (shape `shape`, n = shape[axis]) gives
 * floor(n/2)+1 complex values along `axis`, written to the contiguous array `out` of shape
 * `[...shape with axis = floor(n/2)+1, 2]`.
 *
 * @example
 * ```ts
 * import { rfftInto } from "./fft_ops.ts";
 * const out = new Float64Array(4);
 * rfftInto({ data: new Float64Array([1, 2, 3]), offset: 0, strides: [1] }, [3], 0, out);
 * // out = [6, 0, -1.5, 0.866...]
 * ```
 */
export function rfftInto(x: Operand, shape: readonly number[], axis: number, out: NumArray): void {
  const n = shape[axis];
  const h = Math.floor(n / 2) + 1;
  const outShape = [...shape.slice(0, axis), h, ...shape.slice(axis + 1), 2];
  const oStrides = contiguousStrides(outShape);
  const rank = shape.length;
  const plan = axisLines(shape, axis, [x.strides, oStrides.slice(0, rank)], [x.offset, 0]);
  const ot = oStrides[rank];
  if (simdFft(x, { mode: "rfft", n, len: n, plan, xt: 0, ot }, out)) return;
  const [xs, os] = plan.inner;
  const d = x.data;
  eachLine(plan, n, false, (re, im, j) => {
    for (let k = 0; k < n; k++, j += xs) re[k] = d[j];
    im.fill(0);
  }, (re, im, i) => {
    for (let k = 0; k < h; k++, i += os) {
      out[i] = re[k];
      out[i + ot] = im[k];
    }
  });
}

/**
 * Complex-to-real inverse DFT along `axis` (numpy.fft.irfft): of the complex view `x` (shape
 * `shape`, trailing axis 2, m = shape[axis]) the first floor(n/2)+1 entries are used (zero-padded
 * when m is smaller), Hermitian symmetry is assumed (the imaginary parts of the DC term and, for
 * even n, of the Nyquist term are ignored), and `n` reals divided by n are written to the
 * contiguous array `out` of shape `[...shape without the trailing 2, with axis = n]`.
 *
 * @example
 * ```ts
 * import { irfftInto } from "./fft_ops.ts";
 * const x = { data: new Float64Array([6, 0, -1.5, Math.sqrt(3) / 2]), offset: 0, strides: [2, 1] };
 * const out = new Float64Array(3);
 * irfftInto(x, [2, 2], 0, 3, out); // out ≈ [1, 2, 3]
 * ```
 */
export function irfftInto(x: Operand, shape: readonly number[], axis: number, n: number, out: NumArray): void {
  const rank = shape.length - 1;
  const cShape = shape.slice(0, rank);
  const m = cShape[axis];
  const h = Math.floor(n / 2) + 1;
  const use = Math.min(m, h);
  const outShape = cShape.map((v, d) => (d === axis ? n : v));
  const oStrides = contiguousStrides(outShape);
  const xt = x.strides[rank];
  // Walk the lines of the output shape; the input uses its own stride along axis.
  const plan = axisLines(outShape, axis, [x.strides.slice(0, rank), oStrides], [x.offset, 0]);
  if (simdFft(x, { mode: "irfft", n, len: use, plan, xt, ot: 0 }, out)) return;
  const [xs, os] = plan.inner;
  const d = x.data;
  eachLine(plan, n, true, (re, im, j) => {
    re.fill(0);
    im.fill(0);
    for (let k = 0; k < use; k++, j += xs) {
      re[k] = d[j];
      im[k] = d[j + xt];
    }
    im[0] = 0;
    if (n % 2 === 0 && n > 0) im[n / 2] = 0;
    for (let k = 1; k < n - k; k++) {
      re[n - k] = re[k];
      im[n - k] = -im[k];
    }
  }, (re, _im, i) => {
    for (let k = 0; k < n; k++, i += os) out[i] = re[k];
  });
}

/**
 * The scalar path: for each line of `plan`, `load` fills the n-point float64 scratch from the
 * input at offset `j`, the 1-D kernel transforms it, and `store` writes it to the output at `i`.
 */
function eachLine(
  plan: LinePlan,
  n: number,
  inverse: boolean,
  load: (re: Float64Array, im: Float64Array, j: number) => void,
  store: (re: Float64Array, im: Float64Array, i: number) => void,
): void {
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  const pos = plan.walker.pos;
  for (let l = 0; l < plan.count; l++) {
    load(re, im, pos[0]);
    fftKernel(re, im, inverse);
    store(re, im, pos[1]);
    plan.walker.next();
  }
}

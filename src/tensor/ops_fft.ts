/**
 * Discrete Fourier transforms. Complex tensors are real tensors with a trailing axis of size 2
 * (real, imaginary), as `torch.view_as_real` lays them out. Forward transforms are unnormalised;
 * inverse transforms divide by n (NumPy's default "backward" normalisation).
 *
 * Gradients (each a composition of these same transforms, so they differentiate again):
 * - fft: x̄ = n · ifft(ȳ);  ifft: x̄ = fft(ȳ) / n.
 * - rfft (n reals → m = ⌊n/2⌋+1 bins): x̄ = n · irfft(w ⊙ ȳ, n) with w = 1 at the DC bin (and the
 *   Nyquist bin for even n) and ½ elsewhere.
 * - irfft: z̄ = rfft(x̄) ⊙ w′ / n with w′ = 1 at DC (and Nyquist for even n) and 2 elsewhere.
 *
 * @module
 */

import { record } from "./autograd.ts";
import { ArgumentError, ShapeError } from "./errors.ts";
import { fmtShape } from "./shape.ts";
import { checkInteger, checkShape, checkTensor, normalizeAxes, normalizeAxis } from "./validate.ts";
import { Tensor } from "./tensor.ts";
import { mul, requireFloat } from "./ops_elementwise.ts";
import { narrow, pad } from "./ops_shape.ts";

function checkComplex(op: string, z: Tensor): void {
  checkTensor(op, "z", z);
  requireFloat(op, z);
  if (z.ndim < 2 || z.shape[z.ndim - 1] !== 2) {
    throw new ShapeError(op, `needs a complex tensor (trailing axis of size 2), got shape ${fmtShape(z.shape)}`);
  }
}

/** Per-bin weights shaped [1,..,m,..,1] to broadcast along `axis` of `like` (1 at DC and Nyquist). */
function binWeights(like: Tensor, axis: number, m: number, n: number, interior: number): Tensor {
  const w = new Float64Array(m).fill(interior);
  w[0] = 1;
  if (n % 2 === 0 && m - 1 === n / 2) w[m - 1] = 1;
  const shape = like.shape.map((_, i) => (i === axis ? m : 1));
  return Tensor.fromBuffer(
    like.backend.fromHost(like.dtype === "float64" ? w : new Float32Array(w), like.dtype),
    shape,
  );
}

function complexAxis(op: string, z: Tensor, axis: number): number {
  return normalizeAxis(op, axis, z.ndim - 1);
}

function c2c(z: Tensor, axis: number, inverse: boolean): Tensor {
  const out = Tensor.fromBuffer(z.backend.fft(z, axis, inverse, z.dtype), z.shape, z.dtype);
  const n = z.shape[axis];
  return record(inverse ? "ifft" : "fft", out, [z], [], (g) => [
    inverse ? mul(c2c(g, axis, false), 1 / n) : mul(c2c(g, axis, true), n),
  ]);
}

/**
 * Complex DFT along `axis` (of the complex axes; default the last).
 *
 * @example
 * ```ts
 * import { fft } from "./ops_fft.ts";
 * import { tensor } from "./creation.ts";
 * fft(tensor([[1, 0], [0, 0]])).toArray(); // [[1, 0], [1, 0]]
 * ```
 */
export function fft(z: Tensor, axis = -1): Tensor {
  checkComplex("fft", z);
  return c2c(z, complexAxis("fft", z, axis), false);
}

/**
 * Inverse complex DFT along `axis` (divides by n).
 *
 * @example
 * ```ts
 * import { fft, ifft } from "./ops_fft.ts";
 * import { tensor } from "./creation.ts";
 * ifft(fft(tensor([[1, 2], [3, 4]]))).toArray(); // [[1, 2], [3, 4]]
 * ```
 */
export function ifft(z: Tensor, axis = -1): Tensor {
  checkComplex("ifft", z);
  return c2c(z, complexAxis("ifft", z, axis), true);
}

function r2c(x: Tensor, axis: number): Tensor {
  const n = x.shape[axis];
  const m = Math.floor(n / 2) + 1;
  const shape = [...x.shape, 2];
  shape[axis] = m;
  const out = Tensor.fromBuffer(x.backend.rfft(x, axis, x.dtype), shape, x.dtype);
  return record("rfft", out, [x], [], (g) => [mul(c2r(mul(g, binWeights(g, axis, m, n, 0.5)), axis, n), n)]);
}

function c2r(z: Tensor, axis: number, n: number): Tensor {
  const m = Math.floor(n / 2) + 1;
  const shape = z.shape.slice(0, -1);
  shape[axis] = n;
  const out = Tensor.fromBuffer(z.backend.irfft(z, axis, n, z.dtype), shape, z.dtype);
  return record("irfft", out, [z], [], (g) => {
    const gz = r2c(g, axis);
    return [mul(mul(gz, binWeights(gz, axis, m, n, 2)), 1 / n)];
  });
}

/**
 * DFT of real input along `axis`: n reals give ⌊n/2⌋+1 complex bins (trailing axis 2 appended).
 *
 * @example
 * ```ts
 * import { rfft } from "./ops_fft.ts";
 * import { tensor } from "./creation.ts";
 * rfft(tensor([1, 1, 1, 1])).toArray(); // [[4, 0], [0, 0], [0, 0]]
 * ```
 */
export function rfft(x: Tensor, axis = -1): Tensor {
  checkTensor("rfft", "x", x);
  requireFloat("rfft", x);
  const a = normalizeAxis("rfft", axis, x.ndim);
  if (x.shape[a] === 0) throw new ArgumentError("rfft", "cannot transform an empty axis");
  return r2c(x, a);
}

/**
 * Inverse of {@link rfft} along `axis` (of the complex axes): returns `n` reals (default
 * 2·(m−1) for m bins). Bins beyond ⌊n/2⌋+1 are dropped and missing ones count as zero, as NumPy does.
 *
 * @example
 * ```ts
 * import { irfft, rfft } from "./ops_fft.ts";
 * import { tensor } from "./creation.ts";
 * irfft(rfft(tensor([1, 2, 3])), 3).toArray(); // [1, 2, 3]
 * ```
 */
export function irfft(z: Tensor, n?: number, axis = -1): Tensor {
  checkComplex("irfft", z);
  const a = complexAxis("irfft", z, axis);
  const have = z.shape[a];
  const size = n === undefined ? 2 * (have - 1) : checkInteger("irfft", "n", n, { min: 1 });
  if (size < 1) throw new ArgumentError("irfft", `the output length 2·(${have} − 1) must be ≥ 1; pass n`);
  const m = Math.floor(size / 2) + 1;
  let zz = z;
  if (have > m) zz = narrow(z, a, 0, m);
  else if (have < m) {
    const pads = z.shape.map((): [number, number] => [0, 0]);
    pads[a] = [0, m - have];
    zz = pad(z, pads);
  }
  return c2r(zz, a, size);
}

/**
 * Real DFT over several axes: rfft over the last listed axis, then complex DFTs over the others.
 *
 * @example
 * ```ts
 * import { rfftn } from "./ops_fft.ts";
 * import { ones } from "./creation.ts";
 * rfftn(ones([2, 4]), [0, 1]).shape; // [2, 3, 2]
 * ```
 */
export function rfftn(x: Tensor, axes?: number[]): Tensor {
  checkTensor("rfftn", "x", x);
  const list = normalizeAxes("rfftn", axes, x.ndim);
  if (list.length === 0) throw new ArgumentError("rfftn", "needs at least one axis");
  let z = rfft(x, list[list.length - 1]);
  for (const a of list.slice(0, -1)) z = c2c(z, a, false);
  return z;
}

/**
 * Inverse of {@link rfftn}: complex inverse DFTs over all but the last listed axis, then irfft over
 * it, producing `sizes` (the real lengths of the listed axes; the last defaults to 2·(m−1)).
 *
 * @example
 * ```ts
 * import { irfftn, rfftn } from "./ops_fft.ts";
 * import { ones } from "./creation.ts";
 * irfftn(rfftn(ones([2, 5]), [0, 1]), [0, 1], [2, 5]).shape; // [2, 5]
 * ```
 */
export function irfftn(z: Tensor, axes?: number[], sizes?: number[]): Tensor {
  checkComplex("irfftn", z);
  const list = axes === undefined ? z.shape.slice(0, -1).map((_, i) => i) : normalizeAxes("irfftn", axes, z.ndim - 1);
  if (sizes !== undefined) checkShape("irfftn", sizes, { name: "sizes" });
  if (sizes && sizes.length !== list.length) {
    throw new ArgumentError("irfftn", `${sizes.length} sizes for ${list.length} axes`);
  }
  let y = z;
  list.slice(0, -1).forEach((a, i) => {
    if (sizes && sizes[i] !== y.shape[a]) {
      throw new ArgumentError("irfftn", `size ${sizes[i]} for axis ${a} differs from its length ${y.shape[a]}`);
    }
    y = c2c(y, a, true);
  });
  return irfft(y, sizes?.[sizes.length - 1], list[list.length - 1]);
}

/**
 * Fourier-space layers of the Fourier neural operator: {@link SpectralConv} (a learned linear map
 * on the lowest Fourier modes of a 1-, 2- or 3-D grid) and its functional form {@link spectralConv}.
 *
 * Layout is channels-last: an input is `[batch, ...grid, channels]`. The layer takes `rfftn` over
 * the grid axes, keeps `modes[i]` frequencies per axis, multiplies them by learned complex weights
 * (mixing channels independently per mode), zeroes every other frequency and transforms back with
 * `irfftn` to the input's grid size. As in the FNO reference code, every axis but the last keeps
 * both its lowest non-negative frequencies `0 … m−1` and its highest negative ones `−m … −1`, which
 * gives 2^(d−1) corner blocks of modes with their own weights; the last axis is the half spectrum
 * of the real transform and keeps `0 … m−1`.
 *
 * Two ways to compute it, with the same result (to rounding) and the same weights:
 *
 * - `"dft"` (default): the kept frequencies only, as truncated DFTs by matrix products, one per
 *   grid axis each way (the real transform of the last axis keeps m bins out of n/2 + 1, each full
 *   axis then 2m rows of what is left), and the per-mode channel mixing as one fused primitive
 *   (`spectralMix`). Seven primitives per 3-D layer; each pass after the first reads only the kept
 *   modes, so a layer moves about two passes over its input and output.
 * - `"fft"`: the whole spectrum by `rfftn` and `irfftn`, the kept corner blocks gathered by
 *   slices and concatenations, and the mixing as one batched real product with the block matrix
 *   `[[Wr, Wi], [−Wi, Wr]]` (the composition the fused path was checked against).
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  cacheConstant,
  concat,
  type DType,
  fmtShape,
  Generator,
  irfftn,
  matmul,
  promoteTypes,
  rfftn,
  ShapeError,
  spectralMix,
  type Tensor,
  tensor,
  zeros,
} from "../tensor/mod.ts";
import { uniform } from "./init.ts";
import type { LayerOptions } from "./linear.ts";
import { Module } from "./module.ts";

/**
 * Options of {@link SpectralConv}: the seed (or generator), dtype and backend of the weights.
 *
 * @example
 * ```ts
 * import { SpectralConv, type SpectralConvOptions } from "./spectral.ts";
 * const options: SpectralConvOptions = { seed: 3, dtype: "float64" };
 * new SpectralConv(4, 4, [6, 6], options);
 * ```
 */
export interface SpectralConvOptions extends LayerOptions {
  /** How the layer transforms (see the module notes). Default `"dft"`. */
  method?: SpectralMethod;
  /**
   * Scale of the initial weights: real and imaginary parts are drawn from U(0, scale), as in the
   * FNO reference. Default `1 / (inChannels · outChannels)`.
   */
  scale?: number;
}

/**
 * How a spectral convolution computes: `"dft"` (truncated DFTs by matrix products and the fused
 * mixing) or `"fft"` (full FFTs, gathers and a block matrix product). See the module notes.
 *
 * @example
 * ```ts
 * import type { SpectralMethod } from "./spectral.ts";
 * const method: SpectralMethod = "fft"; // the composition of the full transforms
 * ```
 */
export type SpectralMethod = "dft" | "fft";

/** The spectral methods, for validation and flags. */
const METHODS: readonly SpectralMethod[] = ["dft", "fft"];

function checkMethod(op: string, method: unknown): SpectralMethod {
  if (!METHODS.includes(method as SpectralMethod)) {
    throw new ArgumentError(op, `method must be "dft" or "fft", got ${JSON.stringify(method)}`);
  }
  return method as SpectralMethod;
}

function checkPositiveInt(op: string, what: string, n: number): void {
  if (!Number.isInteger(n) || n <= 0) throw new ArgumentError(op, `${what} must be a positive integer, got ${n}`);
}

/**
 * The shape of the complex weight of a spectral convolution:
 * `[2^(d−1), inChannels, outChannels, ...modes, 2]` (corner blocks first, trailing real/imaginary).
 *
 * @example
 * ```ts
 * import { spectralWeightShape } from "./spectral.ts";
 * spectralWeightShape(8, 16, [4, 4, 3]); // [4, 8, 16, 4, 4, 3, 2]
 * ```
 */
export function spectralWeightShape(inChannels: number, outChannels: number, modes: readonly number[]): number[] {
  return [2 ** (modes.length - 1), inChannels, outChannels, ...modes, 2];
}

/** Zeros shaped like `like` except `axis` has length `n`. */
function zerosAlong(like: Tensor, axis: number, n: number): Tensor {
  const shape = like.shape.slice();
  shape[axis] = n;
  return zeros(shape, { dtype: like.dtype, backend: like.backend });
}

/** `x` with `n` zeros appended (after = true) or prepended along `axis`. */
function padAlong(x: Tensor, axis: number, n: number, after: boolean): Tensor {
  if (n === 0) return x;
  const z = zerosAlong(x, axis, n);
  return concat(after ? [x, z] : [z, x], axis);
}

/**
 * The truncated DFT of one grid axis of length `n` keeping `m` modes, as the real matrices the
 * `"dft"` path multiplies by (see the module notes):
 *
 * - the last axis (`full` false), real in and complex out: `forward` `[2m, n]` (rows: real parts
 *   of bins 0 … m−1, then imaginary parts) and `inverse` `[n, 2m]`, which weighs each bin as
 *   `irfft` does (1 for the zero and Nyquist bins, 2 for the others) and divides by n;
 * - a full axis, complex both ways: `forward` `[2·2m, 2n]` with rows (part, slot) and columns
 *   (point, part), slots 0 … m−1 the frequencies 0 … m−1 and slots m … 2m−1 the frequencies
 *   −m … −1, and `inverse` `[2n, 2·2m]` (dividing by n).
 *
 * Frequencies the axis does not have (n < 2m on a full axis, m > n/2 + 1 bins on the last) get
 * zero rows and columns: they count as zero, as in the `"fft"` path. Made once per size, dtype
 * and backend (cached constants).
 */
function truncatedDft(n: number, m: number, full: boolean, dtype: DType, backend: Backend): {
  forward: Tensor;
  inverse: Tensor;
} {
  const key = `${full ? "c" : "r"}${n}:${m}:${dtype}`;
  let byKey = dftCache.get(backend);
  if (!byKey) dftCache.set(backend, byKey = new Map());
  const hit = byKey.get(key);
  if (hit && !hit.forward.disposed && !hit.inverse.disposed) return hit;
  const angle = (f: number, x: number) => (2 * Math.PI * ((f * x) % n)) / n;
  let fwd: Float64Array, inv: Float64Array, fShape: number[], iShape: number[];
  if (!full) {
    const keep = Math.min(m, Math.floor(n / 2) + 1);
    fwd = new Float64Array(2 * m * n);
    inv = new Float64Array(n * 2 * m);
    for (let k = 0; k < keep; k++) {
      const weight = k === 0 || (n % 2 === 0 && k === n / 2) ? 1 : 2;
      for (let y = 0; y < n; y++) {
        const c = Math.cos(angle(k, y)), sn = Math.sin(angle(k, y));
        fwd[k * n + y] = c;
        fwd[(m + k) * n + y] = -sn;
        inv[y * 2 * m + k] = (weight * c) / n;
        inv[y * 2 * m + m + k] = (-weight * sn) / n;
      }
    }
    fShape = [2 * m, n];
    iShape = [n, 2 * m];
  } else {
    const lo = Math.min(m, Math.ceil(n / 2));
    const hi = Math.min(m, Math.floor(n / 2));
    const slots = 2 * m;
    fwd = new Float64Array(2 * slots * 2 * n);
    inv = new Float64Array(2 * n * 2 * slots);
    for (let s = 0; s < slots; s++) {
      const j = s % m;
      const f = s < m ? (j < lo ? j : -1) : (j >= m - hi ? n - m + j : -1);
      if (f < 0) continue;
      for (let x = 0; x < n; x++) {
        const c = Math.cos(angle(f, x)), sn = Math.sin(angle(f, x));
        // forward rows (part, slot), columns (point, part): re = Σ zr·c + zi·s, im = Σ zi·c − zr·s
        const re = s * 2 * n, im = (slots + s) * 2 * n;
        fwd[re + 2 * x] = c;
        fwd[re + 2 * x + 1] = sn;
        fwd[im + 2 * x] = -sn;
        fwd[im + 2 * x + 1] = c;
        // inverse rows (point, part), columns (part, slot): zr = (Σ Xr·c − Xi·s)/n, zi = (Σ Xi·c + Xr·s)/n
        const zr = 2 * x * 2 * slots, zi = (2 * x + 1) * 2 * slots;
        inv[zr + s] = c / n;
        inv[zr + slots + s] = -sn / n;
        inv[zi + s] = sn / n;
        inv[zi + slots + s] = c / n;
      }
    }
    fShape = [2 * slots, 2 * n];
    iShape = [2 * n, 2 * slots];
  }
  const upload = (v: Float64Array, shape: number[]) =>
    cacheConstant(tensor(dtype === "float64" ? v : new Float32Array(v), { shape, dtype, backend }));
  const made = { forward: upload(fwd, fShape), inverse: upload(inv, iShape) };
  byKey.set(key, made);
  return made;
}

const dftCache = new Map<Backend, Map<string, { forward: Tensor; inverse: Tensor }>>();

/**
 * The `"dft"` path: truncated DFTs by matrix products (last axis first, then the full axes from
 * the last to the first), the fused mixing, and the inverse DFTs in reverse order. Each product
 * is one batched matmul of a constant matrix and a contiguous view; the spectrum between them is
 * `[B, 2, S, channels]` (see `spectralMix`).
 */
function dftPath(x: Tensor, weight: Tensor, grid: readonly number[], modes: readonly number[]): Tensor {
  const d = grid.length;
  const [batch] = x.shape;
  const cin = weight.shape[1], cout = weight.shape[2];
  const mats = grid.map((n, a) => truncatedDft(n, modes[a], a < d - 1, x.dtype, x.backend));
  const lead = (a: number) => batch * grid.slice(0, a).reduce((p, q) => p * q, 1);
  let h = matmul(mats[d - 1].forward, x.reshape([lead(d - 1), grid[d - 1], cin]));
  for (let a = d - 2; a >= 0; a--) {
    h = matmul(mats[a].forward, h.reshape([lead(a), 2 * grid[a], h.size / (lead(a) * 2 * grid[a])]));
  }
  const slots = h.size / (2 * batch * cin);
  h = spectralMix(h.reshape([batch, 2, slots, cin]), weight);
  for (let a = 0; a < d - 1; a++) {
    h = matmul(mats[a].inverse, h.reshape([lead(a), 4 * modes[a], h.size / (lead(a) * 4 * modes[a])]));
  }
  h = matmul(mats[d - 1].inverse, h.reshape([lead(d - 1), 2 * modes[d - 1], cout]));
  return h.reshape([batch, ...grid, cout]);
}

/**
 * The spectral convolution as a function of its input and weight (the weight of a
 * {@link SpectralConv}, shaped as {@link spectralWeightShape}; the modes are read from it).
 *
 * `x` is `[batch, ...grid, in]` with d grid axes; the result is `[batch, ...grid, out]`. Where a grid
 * axis is too short for its modes (fewer than 2m points on a full axis, fewer than m bins on the
 * last axis) the missing frequencies count as zero, so one set of weights serves every resolution.
 * `options.method` picks how it is computed (module notes; default `"dft"`).
 *
 * @example
 * ```ts
 * import { spectralConv, spectralWeightShape } from "./spectral.ts";
 * import { randn } from "../tensor/mod.ts";
 * const w = randn(spectralWeightShape(3, 5, [4, 4]), { seed: 0 }).mul(0.1);
 * spectralConv(randn([2, 16, 12, 3], { seed: 1 }), w).shape; // [2, 16, 12, 5]
 * spectralConv(randn([2, 16, 12, 3], { seed: 1 }), w, { method: "fft" }).shape; // the same, by full FFTs
 * ```
 */
export function spectralConv(x: Tensor, weight: Tensor, options: { method?: SpectralMethod } = {}): Tensor {
  const op = "spectralConv";
  const d = weight.ndim - 4;
  if (d < 1 || weight.shape[weight.ndim - 1] !== 2 || weight.shape[0] !== 2 ** (d - 1)) {
    throw new ShapeError(
      op,
      `weight must be [2^(d−1), in, out, ...modes(d), 2], got ${fmtShape(weight.shape)}`,
    );
  }
  const cin = weight.shape[1];
  const modes = weight.shape.slice(3, 3 + d);
  if (x.ndim !== d + 2 || x.shape[x.ndim - 1] !== cin) {
    throw new ShapeError(
      op,
      `expected input [batch, ...grid(${d} axes), ${cin}] (channels last), got ${fmtShape(x.shape)}`,
    );
  }
  x.sameBackend(op, weight);
  const method = checkMethod(op, options.method ?? "dft");
  const grid = x.shape.slice(1, 1 + d);
  if (grid.some((n) => n === 0) || x.shape[0] === 0) throw new ShapeError(op, `empty input ${fmtShape(x.shape)}`);
  if (method === "fft") return fftPath(x, weight, grid, modes);
  // The DFT matrices and the fused mixing take one dtype: the promoted one (a float64 input to a
  // float32 layer computes in float64, as the elementwise ops and matmul do).
  const dtype = promoteTypes(x.dtype, weight.dtype);
  return dftPath(
    x.dtype === dtype ? x : x.cast(dtype),
    weight.dtype === dtype ? weight : weight.cast(dtype),
    grid,
    modes,
  );
}

/** The `"fft"` path: full transforms, the kept corner blocks gathered, one block-matrix product. */
function fftPath(x: Tensor, weight: Tensor, grid: readonly number[], modes: readonly number[]): Tensor {
  const d = grid.length;
  const [corners, cin, cout] = weight.shape;
  const batch = x.shape[0];
  const axes = grid.map((_, i) => i + 1);
  const last = d; // tensor axis of the last grid axis
  const mLast = modes[d - 1];
  const bins = Math.floor(grid[d - 1] / 2) + 1;
  const keepLast = Math.min(mLast, bins);
  // How many low (0…lo−1) and high (−hi…−1) frequencies each full axis really has.
  const lo = grid.map((n, i) => Math.min(modes[i], Math.ceil(n / 2)));
  const hi = grid.map((n, i) => Math.min(modes[i], Math.floor(n / 2)));

  // ---- gather the kept modes: [corners, batch, ...modes, in, 2]
  const spec = rfftn(x, axes); // [batch, n1 … n(d−1), bins, in, 2]
  let y = padAlong(spec.narrow(last, 0, keepLast), last, mLast - keepLast, true);
  for (let i = 0; i < d - 1; i++) {
    // y: [2 (axis i−1), …, 2 (axis 1), batch, ...grid, in, 2]; grid axis i sits at tensor axis 2i + 1.
    const ax = 2 * i + 1;
    const m = modes[i];
    const n = grid[i];
    const low = padAlong(y.narrow(ax, 0, lo[i]), ax, m - lo[i], true);
    const high = padAlong(y.narrow(ax, n - hi[i], hi[i]), ax, m - hi[i], false);
    y = concat([low.unsqueeze(0), high.unsqueeze(0)], 0);
  }
  const nModes = modes.reduce((a, b) => a * b, 1);
  const k = corners * nModes;
  // [corners, batch, M, in, 2] → [corners, M, batch, 2, in] → [K, batch, 2·in] (real parts, then imaginary)
  const xs = y.reshape([corners, batch, nModes, cin, 2]).permute([0, 2, 1, 4, 3]).reshape([k, batch, 2 * cin]);

  // ---- weights as real block matrices [K, 2·in, 2·out]
  const wPerm = weight.reshape([corners, cin, cout, nModes, 2]).permute([0, 3, 1, 2, 4]).reshape([k, cin, cout, 2]);
  const wr = wPerm.narrow(3, 0, 1).squeeze(3);
  const wi = wPerm.narrow(3, 1, 1).squeeze(3);
  const block = concat([concat([wr, wi], 2), concat([wi.neg(), wr], 2)], 1);

  // ---- one batched matmul over the modes: [K, batch, 2·out]
  const prod = matmul(xs, block);
  // [K, batch, 2·out] → [corners, M, batch, 2, out] → [corners, batch, M, out, 2] → corner bits, batch, ...modes
  let out = prod.reshape([corners, nModes, batch, 2, cout]).permute([0, 2, 1, 4, 3])
    .reshape([...Array(d - 1).fill(2), batch, ...modes, cout, 2]);

  // ---- put the corners back in place, zeroing the other frequencies
  for (let i = d - 2; i >= 0; i--) {
    // out: [2 (axis i), …, 2 (axis 0), batch, ...]; after taking the leading axis, grid axis i is at 2i + 1.
    const ax = 2 * i + 1;
    const m = modes[i];
    const n = grid[i];
    const low = out.narrow(0, 0, 1).squeeze(0).narrow(ax, 0, lo[i]);
    const high = out.narrow(0, 1, 1).squeeze(0).narrow(ax, m - hi[i], hi[i]);
    const parts = [low];
    if (n - lo[i] - hi[i] > 0) parts.push(zerosAlong(low, ax, n - lo[i] - hi[i]));
    parts.push(high);
    out = concat(parts, ax);
  }
  // Last axis: the kept bins; irfftn counts the missing higher bins as zero.
  if (keepLast < mLast) out = out.narrow(last, 0, keepLast);
  return irfftn(out, axes, [...grid]);
}

/**
 * A spectral convolution over 1, 2 or 3 grid axes (the Fourier layer of a Fourier neural operator).
 *
 * Input `[batch, ...grid, inChannels]` (channels last), output `[batch, ...grid, outChannels]` on
 * the same grid. The weight `weight` is complex, `[2^(d−1), in, out, ...modes, 2]` (see
 * {@link spectralWeightShape}); corner c holds the low (bit i of c = 0) or high (bit = 1) frequencies
 * of full axis i, as `weights1…4` of the reference `SpectralConv3d`. Initial real and imaginary parts
 * are U(0, 1/(in·out)) from the seeded generator. There is no bias (the FNO's pointwise linear
 * layer beside it has one).
 *
 * @example
 * ```ts
 * import { SpectralConv } from "./spectral.ts";
 * import { randn } from "../tensor/mod.ts";
 * const conv = new SpectralConv(8, 8, [12, 12], { seed: 0 });
 * conv.weight.shape; // [2, 8, 8, 12, 12, 2]
 * conv.forward(randn([4, 64, 64, 8])).shape; // [4, 64, 64, 8]
 * ```
 */
export class SpectralConv extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Kept frequencies per grid axis. */
  readonly modes: readonly number[];
  /** The complex weight `[2^(d−1), in, out, ...modes, 2]`. */
  readonly weight: Tensor;
  /** How the layer computes (see the module notes). */
  readonly method: SpectralMethod;

  /** A spectral convolution from `inChannels` to `outChannels` keeping `modes[i]` frequencies on grid axis i. */
  constructor(inChannels: number, outChannels: number, modes: readonly number[], options: SpectralConvOptions = {}) {
    super();
    checkPositiveInt("SpectralConv", "inChannels", inChannels);
    checkPositiveInt("SpectralConv", "outChannels", outChannels);
    if (!Array.isArray(modes) || modes.length < 1 || modes.length > 3) {
      throw new ArgumentError(
        "SpectralConv",
        `modes must list 1 to 3 positive integers (one per grid axis), got ${modes}`,
      );
    }
    modes.forEach((m, i) => checkPositiveInt("SpectralConv", `modes[${i}]`, m));
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.modes = [...modes];
    this.method = checkMethod("SpectralConv", options.method ?? "dft");
    const scale = options.scale ?? 1 / (inChannels * outChannels);
    const dtype: DType = options.dtype ?? "float32";
    const generator = options.generator ?? new Generator(options.seed ?? 0);
    this.weight = this.param(
      "weight",
      uniform(spectralWeightShape(inChannels, outChannels, modes), {
        generator,
        dtype,
        backend: options.backend,
        low: 0,
        high: scale,
      }),
    );
  }

  /** Number of grid axes. */
  get dims(): number {
    return this.modes.length;
  }

  /** Applies the layer to `[batch, ...grid, inChannels]`. */
  forward(x: Tensor): Tensor {
    return spectralConv(x, this.weight, { method: this.method });
  }

  /** `SpectralConv(in → out, modes [..])`. */
  override describe(): string {
    return `SpectralConv(${this.inChannels} → ${this.outChannels}, modes [${this.modes.join(", ")}])`;
  }
}

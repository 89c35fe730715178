/**
 * The spectral channel mixing of a Fourier layer, defined once: its geometry (which weight
 * entry each kept Fourier mode reads), the host loops the CPU backend runs, and the names of the
 * kernels the GPU runs (kernels/spectral.cu, the same arithmetic). The differentiable ops built on
 * it are in `ops_spectral.ts`.
 *
 * **Layout.** A spectrum holds the kept modes of a d-dimensional grid (d = 1, 2, 3), as
 * `[batch, 2, S, channels]`: real parts then imaginary parts, S mode *slots*, channels last. Each
 * full grid axis a < d − 1 has 2·m_a slots (its m_a lowest non-negative frequencies, then its m_a
 * highest negative ones); the last axis, the half spectrum of a real transform, has m_(d−1) slots.
 * Slots are numbered row-major over the axes. The weight is `[2^(d−1), I, O, ...modes, 2]` (corner
 * blocks, input and output channels, the modes per axis, real and imaginary parts): slot s reads
 * corner c = Σ_a bit_a·2^a (bit_a = 1 when its slot on full axis a is a high one) and mode
 * q = (s_a mod m_a)_a, as the reference FNO's `weights1 … weights4`.
 *
 * **Arithmetic.** Every complex product is `(xr·wr − xi·wi, xr·wi + xi·wr)` and the sum over the
 * contracted channels runs in ascending order, all in float64 with separately rounded operations
 * (no fused multiply-add), each result rounded once to the storage type: the CPU loops and the
 * GPU kernels give the same bits.
 *
 * @example
 * ```ts
 * import { spectralSlots, slotWeightIndex } from "./spectral_defs.ts";
 * spectralSlots([8, 8, 8]); // 2048 = 16 · 16 · 8
 * slotWeightIndex([2, 3], 2 * 3 + 1); // { corner: 1, mode: 1 }: axis 0's first high slot, last-axis mode 1
 * ```
 *
 * @module
 */

import type { DType } from "./dtype.ts";
import { ArgumentError, DTypeError } from "./errors.ts";

/**
 * Names of the GPU kernels of the spectral mixing (kernels/spectral.cu): `<stem>_<dtype>` for
 * float32 (`f32`) and float64 (`f64`) storage.
 *
 * @example
 * ```ts
 * import { SPECTRAL_KERNELS } from "./spectral_defs.ts";
 * `${SPECTRAL_KERNELS.mix}_f64`; // "spectral_mix_f64"
 * ```
 */
export const SPECTRAL_KERNELS = {
  /** `out = x·W` per slot (or `x·Wᴴ` with the adjoint flag). */
  mix: "spectral_mix",
  /** `G = Σ_batch conj(a) ⊗ d` per slot, laid out as a weight. */
  weightGrad: "spectral_weight_grad",
} as const;

/**
 * Mode slots per axis of a spectrum keeping `modes` (2·m on every axis but the last, m there).
 *
 * @example
 * ```ts
 * import { slotExtents } from "./spectral_defs.ts";
 * slotExtents([4, 4, 3]); // [8, 8, 3]
 * ```
 */
export function slotExtents(modes: readonly number[]): number[] {
  return modes.map((m, a) => (a < modes.length - 1 ? 2 * m : m));
}

/**
 * Number of mode slots S of a spectrum keeping `modes`: 2^(d−1)·∏modes.
 *
 * @example
 * ```ts
 * import { spectralSlots } from "./spectral_defs.ts";
 * spectralSlots([6]); // 6
 * ```
 */
export function spectralSlots(modes: readonly number[]): number {
  return slotExtents(modes).reduce((a, b) => a * b, 1);
}

/** The sizes of one `spectralMix` (see {@link spectralMixSizes}). */
export interface SpectralMixSizes {
  /** Batch rows B. */
  batch: number;
  /** Mode slots S. */
  slots: number;
  /** Channels read per slot. */
  cin: number;
  /** Channels written per slot. */
  cout: number;
}

/**
 * What a backend's `spectralMix` reads and writes, from its operands' shapes: `x` `[B, 2, S, I]`
 * and the weight `[2^(d−1), I, O, ...modes, 2]` (with `adjoint`, `x` holds O channels and the
 * result I). Every backend checks its operands here: dtype `float32` or `float64`, S and the
 * channels fitting `modes` and the weight; otherwise a typed error naming `spectralMix`.
 *
 * @example
 * ```ts
 * import { spectralMixSizes } from "./spectral_defs.ts";
 * spectralMixSizes([4, 2, 6, 3], [1, 3, 5, 6, 2], [6], false, "float64"); // { batch: 4, slots: 6, cin: 3, cout: 5 }
 * ```
 */
export function spectralMixSizes(
  x: readonly number[],
  weight: readonly number[],
  modes: readonly number[],
  adjoint: boolean,
  dtype: DType,
): SpectralMixSizes {
  const op = "spectralMix";
  floatOutput(op, dtype);
  const [batch, , slots, cin] = x;
  const [, wi, wo] = weight;
  if (slots !== spectralSlots(modes) || cin !== (adjoint ? wo : wi)) {
    throw new ArgumentError(op, `x [${x}] does not fit weight [${weight}]`);
  }
  return { batch, slots, cin, cout: adjoint ? wi : wo };
}

/**
 * What a backend's `spectralWeightGrad` reads and writes, from its operands' shapes `a`
 * `[B, 2, S, A]` and `d` `[B, 2, S, D]`: the sizes and the result's weight shape
 * `[2^(d−1), A, D, ...modes, 2]`, checked as {@link spectralMixSizes} checks its operands.
 *
 * @example
 * ```ts
 * import { spectralWeightGradSizes } from "./spectral_defs.ts";
 * spectralWeightGradSizes([4, 2, 6, 3], [4, 2, 6, 5], [6], "float64").shape; // [1, 3, 5, 6, 2]
 * ```
 */
export function spectralWeightGradSizes(
  a: readonly number[],
  d: readonly number[],
  modes: readonly number[],
  dtype: DType,
): { batch: number; slots: number; ca: number; cd: number; shape: number[] } {
  const op = "spectralWeightGrad";
  floatOutput(op, dtype);
  const [batch, , slots, ca] = a;
  const cd = d[3];
  if (slots !== spectralSlots(modes) || d[0] !== batch || d[2] !== slots) {
    throw new ArgumentError(op, `a [${a}] and d [${d}] do not fit modes [${modes}]`);
  }
  return { batch, slots, ca, cd, shape: [2 ** (modes.length - 1), ca, cd, ...modes, 2] };
}

function floatOutput(op: string, dtype: DType): void {
  if (dtype !== "float32" && dtype !== "float64") throw new DTypeError(op, `${dtype} output; use float32 or float64`);
}

/**
 * The weight entry slot `s` reads: its corner block and its flat mode index (row-major over
 * `modes`).
 *
 * @example
 * ```ts
 * import { slotWeightIndex } from "./spectral_defs.ts";
 * slotWeightIndex([4], 3); // { corner: 0, mode: 3 }
 * ```
 */
export function slotWeightIndex(modes: readonly number[], s: number): { corner: number; mode: number } {
  const d = modes.length;
  const ext = slotExtents(modes);
  let rest = s;
  let corner = 0;
  let mode = 0;
  let inner = 1;
  for (let a = d - 1; a >= 0; a--) {
    const sa = rest % ext[a];
    rest = Math.floor(rest / ext[a]);
    const high = a < d - 1 && sa >= modes[a] ? 1 : 0;
    corner += high << a;
    mode += (sa - high * modes[a]) * inner;
    inner *= modes[a];
  }
  return { corner, mode };
}

/** Row-major element access of a contiguous host array with an element offset. */
type Host = { readonly data: ArrayLike<number>; readonly offset: number };
/** A writable contiguous host array with an element offset. */
type HostOut = { readonly data: { [i: number]: number; readonly length: number }; readonly offset: number };

/**
 * The mixing on contiguous host arrays (the CPU path of `spectral_mix_*`): x `[B, 2, S, C]`,
 * weight `[corners, I, O, M, 2]`, out `[B, 2, S, C']` with `(C, C') = (I, O)`, or with `adjoint`
 * `(O, I)` and the conjugate weight: `out[b, s, i] = Σ_o x[b, s, o]·conj(w[c, i, o, q])`.
 *
 * @example
 * ```ts
 * import { spectralMixHost } from "./spectral_defs.ts";
 * const out = new Float64Array(2);
 * // One slot, one channel each way: (1 + 2i)·(3 + 4i) = −5 + 10i.
 * spectralMixHost({ data: [1, 2], offset: 0 }, { data: [3, 4], offset: 0 }, { data: out, offset: 0 }, 1, [1], 1, 1, false);
 * out; // Float64Array [-5, 10]
 * ```
 */
export function spectralMixHost(
  x: Host,
  w: Host,
  out: HostOut,
  batch: number,
  modes: readonly number[],
  cin: number,
  cout: number,
  adjoint: boolean,
): void {
  const slots = spectralSlots(modes);
  const nModes = modes.reduce((a, b) => a * b, 1);
  const xd = x.data, wd = w.data, od = out.data;
  const sign = adjoint ? -1 : 1;
  for (let s = 0; s < slots; s++) {
    const { corner, mode } = slotWeightIndex(modes, s);
    for (let b = 0; b < batch; b++) {
      const xr0 = x.offset + (b * 2 * slots + s) * cin;
      const xi0 = xr0 + slots * cin;
      const or0 = out.offset + (b * 2 * slots + s) * cout;
      const oi0 = or0 + slots * cout;
      for (let o = 0; o < cout; o++) {
        let re = 0, im = 0;
        for (let i = 0; i < cin; i++) {
          // Plain: w[c, i, o]; adjoint: w[c, o, i] conjugated (the weight's channels are (O, I) = (cout, cin)).
          const at = w.offset +
            2 * ((adjoint ? (corner * cout + o) * cin + i : (corner * cin + i) * cout + o) * nModes + mode);
          const wr = wd[at], wi = sign * wd[at + 1];
          const xr = xd[xr0 + i], xi = xd[xi0 + i];
          re = re + (xr * wr - xi * wi);
          im = im + (xr * wi + xi * wr);
        }
        od[or0 + o] = re;
        od[oi0 + o] = im;
      }
    }
  }
}

/**
 * The weight-shaped product on contiguous host arrays (the CPU path of `spectral_weight_grad_*`):
 * a `[B, 2, S, A]`, d `[B, 2, S, D]`, out `[corners, A, D, M, 2]` with
 * `out[c, i, o, q] = Σ_b conj(a[b, s, i])·d[b, s, o]` where slot s reads (c, q); the batch is
 * summed in ascending order.
 *
 * @example
 * ```ts
 * import { spectralWeightGradHost } from "./spectral_defs.ts";
 * const g = new Float64Array(2);
 * // conj(1 + 2i)·(3 + 4i) = 11 − 2i.
 * spectralWeightGradHost({ data: [1, 2], offset: 0 }, { data: [3, 4], offset: 0 }, { data: g, offset: 0 }, 1, [1], 1, 1);
 * g; // Float64Array [11, -2]
 * ```
 */
export function spectralWeightGradHost(
  a: Host,
  d: Host,
  out: HostOut,
  batch: number,
  modes: readonly number[],
  ca: number,
  cd: number,
): void {
  const slots = spectralSlots(modes);
  const nModes = modes.reduce((p, q) => p * q, 1);
  const ad = a.data, dd = d.data, od = out.data;
  for (let s = 0; s < slots; s++) {
    const { corner, mode } = slotWeightIndex(modes, s);
    for (let i = 0; i < ca; i++) {
      for (let o = 0; o < cd; o++) {
        let re = 0, im = 0;
        for (let b = 0; b < batch; b++) {
          const ar = ad[a.offset + (b * 2 * slots + s) * ca + i],
            ai = ad[a.offset + ((b * 2 + 1) * slots + s) * ca + i];
          const dr = dd[d.offset + (b * 2 * slots + s) * cd + o],
            di = dd[d.offset + ((b * 2 + 1) * slots + s) * cd + o];
          re = re + (ar * dr + ai * di);
          im = im + (ar * di - ai * dr);
        }
        const at = out.offset + 2 * (((corner * ca + i) * cd + o) * nModes + mode);
        od[at] = re;
        od[at + 1] = im;
      }
    }
  }
}

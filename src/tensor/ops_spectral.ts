/**
 * The Fourier layer's per-mode complex channel mixing as differentiable ops (geometry, layout
 * and arithmetic in `spectral_defs.ts`): {@link spectralMix} and {@link spectralWeightGrad}, one
 * primitive each on a backend with {@link SpectralPrimitives}, else composed from a gather and a
 * batched matrix product ({@link spectralMixComposed}). Their backward rules are the same two ops,
 * so gradients of any order work:
 *
 * ```text
 * y = mix(x, W):        x̄ = mix(ȳ, W, adjoint)    W̄ = weightGrad(x, ȳ)
 * y = mix(x, W, adj.):  x̄ = mix(ȳ, W)             W̄ = weightGrad(ȳ, x)
 * G = weightGrad(a, d): ā = mix(d, Ḡ, adjoint)    d̄ = mix(a, Ḡ)
 * ```
 *
 * (the gradient of a complex number is taken as that of its real and imaginary parts:
 * ∂L/∂re + i·∂L/∂im).
 *
 * @example
 * ```ts
 * import { spectralMix } from "./ops_spectral.ts";
 * import { randn } from "./creation.ts";
 * // Batch 2, 2-D modes [3, 2] (S = 6 · 2 = 12 slots), 4 → 5 channels.
 * const x = randn([2, 2, 12, 4], { dtype: "float64" });
 * const w = randn([2, 4, 5, 3, 2, 2], { dtype: "float64" });
 * spectralMix(x, w).shape; // [2, 2, 12, 5]
 * ```
 *
 * @module
 */

import { record } from "./autograd.ts";
import type { SpectralPrimitives } from "./backend.ts";
import { DTypeError, ShapeError } from "./errors.ts";
import { slotWeightIndex, spectralSlots } from "./spectral_defs.ts";
import { cacheConstant } from "./memory.ts";
import { Tensor } from "./tensor.ts";
import { tensor } from "./creation.ts";
import { indexSelect } from "./ops_index.ts";
import { matmul } from "./ops_matmul.ts";
import { concat, contiguous, narrow, permute, reshape, squeeze, transpose, unsqueeze } from "./ops_shape.ts";
import { add, neg, sub } from "./ops_elementwise.ts";
import { fmtShape } from "./shape.ts";
import { checkTensor, sameBackend } from "./validate.ts";

/** The modes a weight `[2^(d−1), I, O, ...modes, 2]` keeps, checked. */
function weightModes(op: string, weight: Tensor): number[] {
  const d = weight.ndim - 4;
  if (d < 1 || d > 3 || weight.shape[weight.ndim - 1] !== 2 || weight.shape[0] !== 2 ** (d - 1)) {
    throw new ShapeError(op, `weight must be [2^(d−1), in, out, ...modes(d = 1…3), 2], got ${fmtShape(weight.shape)}`);
  }
  return weight.shape.slice(3, 3 + d);
}

function checkSpectrum(op: string, name: string, x: Tensor, slots: number, channels: number | null): void {
  if (x.ndim !== 4 || x.shape[1] !== 2 || x.shape[2] !== slots || (channels !== null && x.shape[3] !== channels)) {
    throw new ShapeError(
      op,
      `${name} must be a spectrum [batch, 2, ${slots} slots, ${channels ?? "channels"}], got ${fmtShape(x.shape)}`,
    );
  }
}

function checkFloat(op: string, a: Tensor, b: Tensor): void {
  if ((a.dtype !== "float32" && a.dtype !== "float64") || a.dtype !== b.dtype) {
    throw new DTypeError(op, `operands must share float32 or float64, got ${a.dtype} and ${b.dtype}`);
  }
}

function spectralOf(t: Tensor): SpectralPrimitives | undefined {
  return t.backend.spectral;
}

/**
 * The per-mode complex channel mixing: `x` `[B, 2, S, I]` times the weight `[2^(d−1), I, O,
 * ...modes, 2]` slot by slot into `[B, 2, S, O]`; with `adjoint`, `x` `[B, 2, S, O]` times the
 * conjugate transpose into `[B, 2, S, I]`. Differentiable in both (see the module notes).
 *
 * @example
 * ```ts
 * import { spectralMix } from "./ops_spectral.ts";
 * import { tensor } from "./creation.ts";
 * // One slot, one channel: (1 + 2i)·(3 + 4i) = −5 + 10i; adjoint: (1 + 2i)·(3 − 4i) = 11 + 2i.
 * const x = tensor([[[[1]], [[2]]]], { dtype: "float64" }), w = tensor([[[[[3, 4]]]]], { dtype: "float64" });
 * spectralMix(x, w).toArray(); // [[[[-5]], [[10]]]]
 * spectralMix(x, w, { adjoint: true }).toArray(); // [[[[11]], [[2]]]]
 * ```
 */
export function spectralMix(x: Tensor, weight: Tensor, options: { adjoint?: boolean } = {}): Tensor {
  const op = "spectralMix";
  const { modes, adjoint } = mixArguments(op, x, weight, options);
  const [, wi, wo] = weight.shape;
  const cin = adjoint ? wo : wi, cout = adjoint ? wi : wo;
  const slots = spectralSlots(modes);
  checkSpectrum(op, "x", x, slots, cin);
  checkFloat(op, x, weight);
  const fused = spectralOf(x);
  if (!fused) return spectralMixComposed(x, weight, { adjoint });
  const xc = contiguous(x), wc = contiguous(weight);
  const shape = [x.shape[0], 2, slots, cout];
  const out = Tensor.fromBuffer(fused.spectralMix(xc, wc, modes, adjoint, x.dtype), shape, x.dtype);
  return record(op, out, [xc, wc], [], (g, needs) => [
    needs[0] ? spectralMix(g, wc, { adjoint: !adjoint }) : null,
    needs[1] ? (adjoint ? spectralWeightGrad(g, xc, modes) : spectralWeightGrad(xc, g, modes)) : null,
  ]);
}

/** The checked operands of {@link spectralMix} and {@link spectralMixComposed}: the weight's modes, and adjoint or not. */
function mixArguments(
  op: string,
  x: Tensor,
  weight: Tensor,
  options: { adjoint?: boolean },
): { modes: number[]; adjoint: boolean } {
  checkTensor(op, "x", x);
  checkTensor(op, "weight", weight);
  sameBackend(op, x, weight);
  return { modes: weightModes(op, weight), adjoint: options.adjoint ?? false };
}

/**
 * `Σ_batch conj(a) ⊗ d` slot by slot, laid out as a spectral weight: `a` `[B, 2, S, A]` and `d`
 * `[B, 2, S, D]` give `[2^(d−1), A, D, ...modes, 2]` (the gradient of {@link spectralMix}'s
 * weight). Differentiable in both.
 *
 * @example
 * ```ts
 * import { spectralWeightGrad } from "./ops_spectral.ts";
 * import { tensor } from "./creation.ts";
 * // conj(1 + 2i)·(3 + 4i) = 11 − 2i.
 * const a = tensor([[[[1]], [[2]]]], { dtype: "float64" }), d = tensor([[[[3]], [[4]]]], { dtype: "float64" });
 * spectralWeightGrad(a, d, [1]).toArray(); // [[[[[11, -2]]]]]
 * ```
 */
export function spectralWeightGrad(a: Tensor, d: Tensor, modes: readonly number[]): Tensor {
  const op = "spectralWeightGrad";
  checkTensor(op, "a", a);
  checkTensor(op, "d", d);
  sameBackend(op, a, d);
  if (
    !Array.isArray(modes) || modes.length < 1 || modes.length > 3 || modes.some((m) => !(Number.isInteger(m) && m > 0))
  ) {
    throw new ShapeError(op, `modes must list 1 to 3 positive integers, got ${JSON.stringify(modes)}`);
  }
  const slots = spectralSlots(modes);
  checkSpectrum(op, "a", a, slots, null);
  checkSpectrum(op, "d", d, slots, null);
  if (a.shape[0] !== d.shape[0]) {
    throw new ShapeError(op, `batch sizes differ: ${fmtShape(a.shape)} and ${fmtShape(d.shape)}`);
  }
  checkFloat(op, a, d);
  const shape = [2 ** (modes.length - 1), a.shape[3], d.shape[3], ...modes, 2];
  const fused = spectralOf(a);
  if (!fused) return weightGradComposed(a, d, modes);
  const ac = contiguous(a), dc = contiguous(d);
  const out = Tensor.fromBuffer(fused.spectralWeightGrad(ac, dc, modes, a.dtype), shape, a.dtype);
  return record(op, out, [ac, dc], [], (g, needs) => [
    needs[0] ? spectralMix(dc, g, { adjoint: true }) : null,
    needs[1] ? spectralMix(ac, g) : null,
  ]);
}

// ---------------------------------------------------------------- the composition of primitives

const slotIndexCache = new Map<string, Map<object, { rows: Tensor; slots: Tensor }>>();

/**
 * Int32 constants on `like`'s backend: `rows`, the flat weight row (corner · M + mode) each slot
 * reads, and `slots`, its inverse (the slot of each weight row).
 */
function slotIndex(modes: readonly number[], like: Tensor): { rows: Tensor; slots: Tensor } {
  const key = modes.join("x");
  let byBackend = slotIndexCache.get(key);
  if (!byBackend) slotIndexCache.set(key, byBackend = new Map());
  let t = byBackend.get(like.backend);
  if (!t || t.rows.disposed || t.slots.disposed) {
    const nModes = modes.reduce((p, q) => p * q, 1);
    const rows = new Int32Array(spectralSlots(modes));
    const slots = new Int32Array(rows.length);
    rows.forEach((_, s) => {
      const { corner, mode } = slotWeightIndex(modes, s);
      rows[s] = corner * nModes + mode;
      slots[rows[s]] = s;
    });
    const upload = (v: Int32Array) => cacheConstant(tensor(v, { dtype: "int32", backend: like.backend }));
    t = { rows: upload(rows), slots: upload(slots) };
    byBackend.set(like.backend, t);
  }
  return t;
}

/** The weight as one complex matrix per slot: `[S, I, O]` real and imaginary parts. */
function slotWeights(weight: Tensor, modes: readonly number[]): { wr: Tensor; wi: Tensor } {
  const [corners, ci, co] = weight.shape;
  const nModes = modes.reduce((p, q) => p * q, 1);
  const flat = permute(reshape(weight, [corners, ci, co, nModes, 2]), [0, 3, 1, 2, 4]);
  const perSlot = indexSelect(reshape(flat, [corners * nModes, ci, co, 2]), 0, slotIndex(modes, weight).rows);
  return { wr: squeeze(narrow(perSlot, 3, 0, 1), 3), wi: squeeze(narrow(perSlot, 3, 1, 1), 3) };
}

/** `[B, 2, S, C]` → `[S, B, 2·C]` (real parts, then imaginary parts). */
function bySlot(x: Tensor): Tensor {
  const [b, , s, c] = x.shape;
  return reshape(permute(x, [2, 0, 1, 3]), [s, b, 2 * c]);
}

/** `[S, B, 2·C]` → `[B, 2, S, C]`. */
function fromSlots(y: Tensor, c: number): Tensor {
  const [s, b] = y.shape;
  return permute(reshape(y, [s, b, 2, c]), [1, 2, 0, 3]);
}

/**
 * {@link spectralMix} composed of primitives (a gather of the weight per slot, the real block
 * matrices `[[Wr, Wi], [−Wi, Wr]]`, one batched matrix product): what a backend without
 * {@link SpectralPrimitives} runs, and the reference the fused op is tested against.
 *
 * @example
 * ```ts
 * import { spectralMixComposed } from "./ops_spectral.ts";
 * import { tensor } from "./creation.ts";
 * const x = tensor([[[[1]], [[2]]]], { dtype: "float64" }), w = tensor([[[[[3, 4]]]]], { dtype: "float64" });
 * spectralMixComposed(x, w).toArray(); // [[[[-5]], [[10]]]]
 * ```
 */
export function spectralMixComposed(x: Tensor, weight: Tensor, options: { adjoint?: boolean } = {}): Tensor {
  const op = "spectralMixComposed";
  const { modes, adjoint } = mixArguments(op, x, weight, options);
  let { wr, wi } = slotWeights(weight, modes);
  if (adjoint) {
    // Wᴴ: transposed, imaginary part negated.
    wr = transpose(wr, 1, 2);
    wi = neg(transpose(wi, 1, 2));
  }
  const cout = wr.shape[2];
  checkSpectrum(op, "x", x, spectralSlots(modes), wr.shape[1]);
  const block = concat([concat([wr, wi], 2), concat([neg(wi), wr], 2)], 1);
  return fromSlots(matmul(bySlot(x), block), cout);
}

/** {@link spectralWeightGrad} composed of primitives: per slot `conj(a)ᵀ·d`, scattered back to the weight's layout. */
function weightGradComposed(a: Tensor, d: Tensor, modes: readonly number[]): Tensor {
  const ca = a.shape[3], cd = d.shape[3];
  const as = bySlot(a), ds = bySlot(d); // [S, B, 2A], [S, B, 2D]
  const ar = narrow(as, 2, 0, ca), ai = narrow(as, 2, ca, ca);
  const dr = narrow(ds, 2, 0, cd), di = narrow(ds, 2, cd, cd);
  // conj(a)ᵀ·d = (arᵀdr + aiᵀdi) + i(arᵀdi − aiᵀdr): [S, A, D] each.
  const re = add(matmul(transpose(ar), dr), matmul(transpose(ai), di));
  const im = sub(matmul(transpose(ar), di), matmul(transpose(ai), dr));
  const perSlot = concat([unsqueeze(re, 3), unsqueeze(im, 3)], 3); // [S, A, D, 2]
  const corners = 2 ** (modes.length - 1);
  const nModes = modes.reduce((p, q) => p * q, 1);
  const rows = indexSelect(perSlot, 0, slotIndex(modes, a).slots);
  return reshape(permute(reshape(rows, [corners, nModes, ca, cd, 2]), [0, 2, 3, 1, 4]), [corners, ca, cd, ...modes, 2]);
}

/**
 * The CUDA backend's spectral primitives (the Fourier layer's fused channel mixing) (kernels/spectral.cu; geometry and
 * arithmetic in `src/tensor/spectral_defs.ts`).
 *
 * @module
 */

import type { View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { ArgumentError, DTypeError } from "../../tensor/errors.ts";
import { isContiguous, sizeOf } from "../../tensor/shape.ts";
import { SPECTRAL_KERNELS, spectralMixSizes, spectralWeightGradSizes } from "../../tensor/spectral_defs.ts";
import type { KernelFamily } from "./compiler.ts";
import { type CudaBuffer, type CudaDevice, SFX } from "./device.ts";

/** A contiguous operand of `dtype`, by address. */
function contiguousPtr(dev: CudaDevice, op: string, name: string, v: View, dtype: DType): number {
  if (!isContiguous(v.shape, v.strides)) throw new ArgumentError(op, `${name} must be a contiguous view`);
  const r = dev.raw(v, op);
  if (r.dtype !== dtype) throw new DTypeError(op, `${name} is ${r.dtype}, expected ${dtype}`);
  return r.ptr;
}

/** `struct SpectralModes { u32 d; u32 m[3]; }`. */
function modesStruct(modes: readonly number[]): number[] {
  return [modes.length, modes[0] ?? 1, modes[1] ?? 1, modes[2] ?? 1];
}

/**
 * `x` `[B, 2, S, C]` mixed by `weight` per mode slot (see `SpectralPrimitives.spectralMix`): one
 * launch of `spectral_mix_<dtype>`.
 *
 * @example
 * ```ts
 * import { spectralMix } from "./spectral.ts";
 * // const y = spectralMix(dev, x, w, [8, 8, 8], false, "float64");
 * ```
 */
export function spectralMix(
  dev: CudaDevice,
  x: View,
  weight: View,
  modes: readonly number[],
  adjoint: boolean,
  dtype: DType,
): CudaBuffer {
  const op = "spectralMix";
  const { batch, slots, cin, cout } = spectralMixSizes(x.shape, weight.shape, modes, adjoint, dtype);
  const out = dev.newBuffer(batch * 2 * slots * cout, dtype);
  if (out.size === 0) return out;
  const p = dev.params;
  p.ptr(0, contiguousPtr(dev, op, "x", x, dtype));
  p.ptr(1, contiguousPtr(dev, op, "weight", weight, dtype));
  p.ptr(2, out.ptr);
  p.u32(3, batch);
  p.u32(4, slots);
  p.u32(5, cin);
  p.u32(6, cout);
  p.u32(7, modes.reduce((a, b) => a * b, 1));
  p.u32(8, adjoint ? 1 : 0);
  p.u32s(9, modesStruct(modes));
  dev.launch(dev.kernel("spectral", `${SPECTRAL_KERNELS.mix}_${SFX[dtype]}`), dev.grid(slots * cout), 256);
  return out;
}

/**
 * `Σ_batch conj(a) ⊗ d` per slot, laid out as a weight (see `SpectralPrimitives.spectralWeightGrad`):
 * one launch of `spectral_weight_grad_<dtype>`.
 *
 * @example
 * ```ts
 * import { spectralWeightGrad } from "./spectral.ts";
 * // const g = spectralWeightGrad(dev, a, d, [8, 8, 8], "float64");
 * ```
 */
export function spectralWeightGrad(
  dev: CudaDevice,
  a: View,
  d: View,
  modes: readonly number[],
  dtype: DType,
): CudaBuffer {
  const op = "spectralWeightGrad";
  const { batch, slots, ca, cd, shape } = spectralWeightGradSizes(a.shape, d.shape, modes, dtype);
  const nModes = modes.reduce((p, q) => p * q, 1);
  const out = dev.newBuffer(sizeOf(shape), dtype);
  if (out.size === 0) return out;
  const p = dev.params;
  p.ptr(0, contiguousPtr(dev, op, "a", a, dtype));
  p.ptr(1, contiguousPtr(dev, op, "d", d, dtype));
  p.ptr(2, out.ptr);
  p.u32(3, batch);
  p.u32(4, slots);
  p.u32(5, ca);
  p.u32(6, cd);
  p.u32(7, nModes);
  p.u32s(8, modesStruct(modes));
  dev.launch(dev.kernel("spectral", `${SPECTRAL_KERNELS.weightGrad}_${SFX[dtype]}`), dev.grid(out.size / 2), 256);
  return out;
}

/**
 * The kernels this module asks kernels/spectral.cu for.
 *
 * @example
 * ```ts
 * import { spectralKernelNames } from "./spectral.ts";
 * spectralKernelNames().spectral?.includes("spectral_mix_f64"); // true
 * ```
 */
export function spectralKernelNames(): Partial<Record<KernelFamily, string[]>> {
  return {
    spectral: Object.values(SPECTRAL_KERNELS).flatMap((stem) => [`${stem}_f32`, `${stem}_f64`]),
  };
}

/**
 * The spectral primitives of the CPU backend ({@link SpectralPrimitives}, the Fourier layer's fused channel mixing): the host loops of
 * `spectral_defs.ts` over contiguous buffers, float64 arithmetic rounded once at the store.
 *
 * @module
 */

import type { DeviceBuffer, SpectralPrimitives, View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { ArgumentError, DTypeError } from "../../tensor/errors.ts";
import { isContiguous, sizeOf } from "../../tensor/shape.ts";
import {
  spectralMixHost,
  spectralMixSizes,
  spectralWeightGradHost,
  spectralWeightGradSizes,
} from "../../tensor/spectral_defs.ts";
import { allocCompute, type NumArray, operandOf } from "./buffer.ts";

function contiguousOperand(op: string, name: string, v: View, dtype: DType): { data: NumArray; offset: number } {
  if (!isContiguous(v.shape, v.strides)) throw new ArgumentError(op, `${name} must be a contiguous view`);
  if (v.buffer.dtype !== dtype) throw new DTypeError(op, `${name} is ${v.buffer.dtype}, expected ${dtype}`);
  const o = operandOf(v, op);
  return { data: o.data as NumArray, offset: o.offset };
}

/**
 * The CPU backend's spectral primitives.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * const cpu = new CpuBackend();
 * const view = (data: number[], shape: number[]) => ({
 *   buffer: cpu.fromHost(data, "float64"), shape, strides: shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1)), offset: 0,
 * });
 * // (1 + 2i)·(3 + 4i) = −5 + 10i
 * const y = cpu.spectral.spectralMix(view([1, 2], [1, 2, 1, 1]), view([3, 4], [1, 1, 1, 1, 2]), [1], false, "float64");
 * cpu.toHost({ buffer: y, shape: [2], strides: [1], offset: 0 }); // Float64Array [-5, 10]
 * ```
 */
export class CpuSpectral implements SpectralPrimitives {
  readonly #wrap: (data: NumArray, dtype: DType) => DeviceBuffer;

  /** `wrap` turns a computed array into a buffer of the backend. */
  constructor(wrap: (data: NumArray, dtype: DType) => DeviceBuffer) {
    this.#wrap = wrap;
  }

  /** See {@link SpectralPrimitives.spectralMix}. */
  spectralMix(x: View, weight: View, modes: readonly number[], adjoint: boolean, dtype: DType): DeviceBuffer {
    const op = "spectralMix";
    const { batch, slots, cin, cout } = spectralMixSizes(x.shape, weight.shape, modes, adjoint, dtype);
    const out = allocCompute(dtype, batch * 2 * slots * cout);
    spectralMixHost(
      contiguousOperand(op, "x", x, dtype),
      contiguousOperand(op, "weight", weight, dtype),
      { data: out, offset: 0 },
      batch,
      modes,
      cin,
      cout,
      adjoint,
    );
    return this.#wrap(out, dtype);
  }

  /** See {@link SpectralPrimitives.spectralWeightGrad}. */
  spectralWeightGrad(a: View, d: View, modes: readonly number[], dtype: DType): DeviceBuffer {
    const op = "spectralWeightGrad";
    const { batch, ca, cd, shape } = spectralWeightGradSizes(a.shape, d.shape, modes, dtype);
    const out = allocCompute(dtype, sizeOf(shape));
    spectralWeightGradHost(
      contiguousOperand(op, "a", a, dtype),
      contiguousOperand(op, "d", d, dtype),
      { data: out, offset: 0 },
      batch,
      modes,
      ca,
      cd,
    );
    return this.#wrap(out, dtype);
  }
}

/**
 * The CUDA backend's discrete Fourier transforms, through cuFFT: complex-to-complex, real-to-
 * complex and complex-to-real along one axis. The transformed axis is moved innermost (and the
 * data converted to float32 or float64) by one strided copy into a contiguous batch, cuFFT runs
 * one batched plan (cached per size and batch), and a second strided copy puts the result in
 * place, dividing by n for the inverses. Complex numbers are pairs in a trailing axis of 2.
 *
 * @module
 */

import type { View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { ArgumentError, DTypeError } from "../../tensor/errors.ts";
import { contiguousStrides, sizeOf } from "../../tensor/shape.ts";
import { normalizeAxis } from "../../tensor/validate.ts";
import { CUFFT_DIRECTION, CUFFT_TYPE } from "./cufft.ts";
import type { CudaBuffer, CudaDevice } from "./device.ts";
import { copyRaw, memset0 } from "./transfer.ts";

/**
 * The complex DFT of `x` (pairs in a trailing axis of 2) along `axis`; the inverse divides by n.
 *
 * @example
 * ```ts
 * import { fft } from "./fft.ts";
 * // const y = fft(dev, view, 0, false, "float32");
 * ```
 */
export function fft(dev: CudaDevice, x: View, axis: number, inverse: boolean, dtype: DType): CudaBuffer {
  if (dtype === "int32") throw new DTypeError("fft", "int32 output; use a float dtype");
  const rank = x.shape.length;
  if (rank < 2 || x.shape[rank - 1] !== 2) throw new ArgumentError("fft", "expected a trailing axis of size 2");
  const ax = normalizeAxis("fft", axis, rank - 1);
  const total = sizeOf(x.shape);
  const out = dev.newBuffer(total, dtype);
  if (total === 0) return out;
  const n = x.shape[ax];
  const cd: DType = dtype === "float64" ? "float64" : "float32";
  const order = permutedOrder(rank - 1, ax);
  order.push(rank - 1);
  const src = dev.raw(x, "fft");
  const pShape = order.map((d) => x.shape[d]);
  const tmp = dev.newBuffer(total, cd);
  const tStrides = contiguousStrides(pShape);
  copyRaw(dev, { ptr: src.ptr, dtype: src.dtype, shape: pShape, strides: order.map((d) => src.strides[d]) }, {
    ptr: tmp.ptr,
    dtype: cd,
    shape: pShape,
    strides: tStrides,
  });
  const { lib, plans } = dev.fft();
  const batch = total / (2 * n);
  const plan = plans.get(cd === "float64" ? CUFFT_TYPE.Z2Z : CUFFT_TYPE.C2C, n, batch);
  const dir = inverse ? CUFFT_DIRECTION.INVERSE : CUFFT_DIRECTION.FORWARD;
  const tp = BigInt(tmp.ptr);
  if (cd === "float64") lib.check("cufftExecZ2Z", lib.sym.cufftExecZ2Z(plan, tp, tp, dir));
  else lib.check("cufftExecC2C", lib.sym.cufftExecC2C(plan, tp, tp, dir));
  const oStrides = contiguousStrides(x.shape);
  copyRaw(dev, { ptr: tmp.ptr, dtype: cd, shape: pShape, strides: tStrides }, {
    ptr: out.ptr,
    dtype,
    shape: pShape,
    strides: order.map((d) => oStrides[d]),
  }, inverse ? 1 / n : 1);
  dev.free(tmp);
  return out;
}

/**
 * The real-to-complex DFT of `x` along `axis`: n reals give n/2+1 complex pairs.
 *
 * @example
 * ```ts
 * import { rfft } from "./fft.ts";
 * // const y = rfft(dev, view, -1, "float64");
 * ```
 */
export function rfft(dev: CudaDevice, x: View, axis: number, dtype: DType): CudaBuffer {
  if (dtype === "int32") throw new DTypeError("rfft", "int32 output; use a float dtype");
  const rank = x.shape.length;
  const ax = normalizeAxis("rfft", axis, rank);
  const n = x.shape[ax];
  const h = Math.floor(n / 2) + 1;
  const outShape = [...x.shape.slice(0, ax), h, ...x.shape.slice(ax + 1), 2];
  const total = sizeOf(outShape);
  if (n === 0 && total > 0) throw new ArgumentError("rfft", "axis of length 0");
  const out = dev.newBuffer(n === 0 ? 0 : total, dtype);
  if (n === 0 || total === 0) return out;
  const cd: DType = dtype === "float64" ? "float64" : "float32";
  const order = permutedOrder(rank, ax);
  const src = dev.raw(x, "rfft");
  const pShape = order.map((d) => x.shape[d]);
  const batch = sizeOf(pShape) / n;
  const tin = dev.newBuffer(batch * n, cd);
  copyRaw(dev, { ptr: src.ptr, dtype: src.dtype, shape: pShape, strides: order.map((d) => src.strides[d]) }, {
    ptr: tin.ptr,
    dtype: cd,
    shape: pShape,
    strides: contiguousStrides(pShape),
  });
  const tout = dev.newBuffer(batch * h * 2, cd);
  const { lib, plans } = dev.fft();
  const plan = plans.get(cd === "float64" ? CUFFT_TYPE.D2Z : CUFFT_TYPE.R2C, n, batch);
  if (cd === "float64") lib.check("cufftExecD2Z", lib.sym.cufftExecD2Z(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
  else lib.check("cufftExecR2C", lib.sym.cufftExecR2C(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
  const oOrder = [...order, rank];
  const oShapeP = oOrder.map((d) => outShape[d]);
  const oStrides = contiguousStrides(outShape);
  copyRaw(dev, { ptr: tout.ptr, dtype: cd, shape: oShapeP, strides: contiguousStrides(oShapeP) }, {
    ptr: out.ptr,
    dtype,
    shape: oShapeP,
    strides: oOrder.map((d) => oStrides[d]),
  });
  dev.free(tin);
  dev.free(tout);
  return out;
}

/**
 * The complex-to-real inverse DFT of `x` along `axis`, producing `n` reals (divides by n).
 *
 * @example
 * ```ts
 * import { irfft } from "./fft.ts";
 * // const y = irfft(dev, view, 0, 16, "float32");
 * ```
 */
export function irfft(dev: CudaDevice, x: View, axis: number, n: number, dtype: DType): CudaBuffer {
  if (dtype === "int32") throw new DTypeError("irfft", "int32 output; use a float dtype");
  const rank = x.shape.length;
  if (rank < 2 || x.shape[rank - 1] !== 2) throw new ArgumentError("irfft", "expected a trailing axis of size 2");
  const ax = normalizeAxis("irfft", axis, rank - 1);
  if (!Number.isInteger(n) || n < 1) throw new ArgumentError("irfft", `bad length ${n}`);
  const h = Math.floor(n / 2) + 1;
  const m = x.shape[ax];
  const outShape = [...x.shape.slice(0, ax), n, ...x.shape.slice(ax + 1, rank - 1)];
  const total = sizeOf(outShape);
  const out = dev.newBuffer(total, dtype);
  if (total === 0) return out;
  const cd: DType = dtype === "float64" ? "float64" : "float32";
  const order = permutedOrder(rank - 1, ax);
  const batch = total / n;
  const tin = dev.newBuffer(batch * h * 2, cd);
  if (m < h) memset0(dev, tin.ptr, tin.bytes);
  const mm = Math.min(m, h);
  if (mm > 0) {
    const src = dev.raw(x, "irfft");
    const inOrder = [...order, rank - 1];
    const pShape = inOrder.map((d) => (d === ax ? mm : x.shape[d]));
    const fullShape = inOrder.map((d) => (d === ax ? h : x.shape[d]));
    copyRaw(dev, { ptr: src.ptr, dtype: src.dtype, shape: pShape, strides: inOrder.map((d) => src.strides[d]) }, {
      ptr: tin.ptr,
      dtype: cd,
      shape: pShape,
      strides: contiguousStrides(fullShape),
    });
  }
  const tout = dev.newBuffer(total, cd);
  const { lib, plans } = dev.fft();
  const plan = plans.get(cd === "float64" ? CUFFT_TYPE.Z2D : CUFFT_TYPE.C2R, n, batch);
  if (cd === "float64") lib.check("cufftExecZ2D", lib.sym.cufftExecZ2D(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
  else lib.check("cufftExecC2R", lib.sym.cufftExecC2R(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
  const pOut = order.map((d) => outShape[d]);
  const oStrides = contiguousStrides(outShape);
  copyRaw(dev, { ptr: tout.ptr, dtype: cd, shape: pOut, strides: contiguousStrides(pOut) }, {
    ptr: out.ptr,
    dtype,
    shape: pOut,
    strides: order.map((d) => oStrides[d]),
  }, 1 / n);
  dev.free(tin);
  dev.free(tout);
  return out;
}

/** Axis order [every axis but `ax`, ax] over `rank` axes. */
function permutedOrder(rank: number, ax: number): number[] {
  const o: number[] = [];
  for (let d = 0; d < rank; d++) if (d !== ax) o.push(d);
  o.push(ax);
  return o;
}

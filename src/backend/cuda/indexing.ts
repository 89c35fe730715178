/**
 * The CUDA backend's indexing along an axis (kernels/indexing.cu): `gather`, and `scatterAdd`
 * with atomic adds into a zeroed buffer of the accumulation type (float sums in any order).
 *
 * @module
 */

import type { View } from "../../tensor/backend.ts";
import { type DType, DTYPES } from "../../tensor/dtype.ts";
import { DeviceError } from "../../tensor/errors.ts";
import { contiguousStrides, sizeOf } from "../../tensor/shape.ts";
import { normalizeAxis } from "../../tensor/validate.ts";
import { accDtype, type CudaBuffer, type CudaDevice, SFX } from "./device.ts";
import { copyRaw, memset0, operand } from "./transfer.ts";
import { MAX_DIMS, MAX_U32_WORK } from "./layout.ts";
import type { KernelFamily } from "./compiler.ts";

function indexingKernel(op: "gather" | "scatter_add", dtype: DType): string {
  return `${op}_${SFX[dtype]}`;
}

/**
 * Every kernel name the indexing ops can ask for: gathers and scatter-adds of every type.
 *
 * @example
 * ```ts
 * import { indexingKernelNames } from "./indexing.ts";
 * indexingKernelNames().indexing.length; // 8
 * ```
 */
export function indexingKernelNames(): Partial<Record<KernelFamily, string[]>> {
  return { indexing: DTYPES.flatMap((d) => [indexingKernel("gather", d), indexingKernel("scatter_add", d)]) };
}

/**
 * out[..i.., j, ..k..] = x[..i.., index[..i.., j, ..k..], ..k..] along `axis` (int32 index of
 * x's rank), into a new buffer of index's shape.
 *
 * @example
 * ```ts
 * import { gather } from "./indexing.ts";
 * // const y = gather(dev, view, 1, index, "float32");
 * ```
 */
export function gather(dev: CudaDevice, x: View, axis: number, index: View, dtype: DType): CudaBuffer {
  const rank = x.shape.length;
  const ax = normalizeAxis("gather", axis, rank);
  if (rank > MAX_DIMS) throw new DeviceError("gather", `rank ${rank} > 8 is not supported on cuda`);
  const n = sizeOf(index.shape);
  const out = dev.newBuffer(n, dtype);
  if (n === 0) return out;
  if (n >= MAX_U32_WORK) throw new DeviceError("gather", `${n} elements is too many for one launch`);
  const X = operand(dev, x, dtype, "gather"), I = operand(dev, index, "int32", "gather");
  const p = dev.params;
  p.ptr(0, X.raw.ptr);
  p.ptr(1, I.raw.ptr);
  p.ptr(2, out.ptr);
  p.u32(3, n);
  p.shape8(4, index.shape);
  p.strides8(5, X.raw.strides);
  p.strides8(6, I.raw.strides);
  p.u32(7, ax);
  p.u32(8, x.shape[ax]);
  dev.launch(dev.kernel("indexing", indexingKernel("gather", dtype)), dev.grid(n), 256);
  dev.release(X.temp);
  dev.release(I.temp);
  return out;
}

/**
 * zeros(shape), then out[.., index[..j..], ..] += src[..j..] along `axis` (index shaped like src).
 *
 * @example
 * ```ts
 * import { scatterAdd } from "./indexing.ts";
 * // const y = scatterAdd(dev, [4, 3], 0, index, src, "float32");
 * ```
 */
export function scatterAdd(
  dev: CudaDevice,
  shape: readonly number[],
  axis: number,
  index: View,
  src: View,
  dtype: DType,
): CudaBuffer {
  const rank = shape.length;
  const ax = normalizeAxis("scatterAdd", axis, rank);
  if (rank > MAX_DIMS) throw new DeviceError("scatterAdd", `rank ${rank} > 8 is not supported on cuda`);
  const total = sizeOf(shape);
  const out = dev.newBuffer(total, dtype);
  if (total === 0) return out;
  const acc = accDtype(dtype);
  const accBuf = acc === dtype ? out : dev.newBuffer(total, acc);
  memset0(dev, accBuf.ptr, accBuf.bytes);
  const n = sizeOf(src.shape);
  if (n > 0) {
    if (n >= MAX_U32_WORK) throw new DeviceError("scatterAdd", `${n} elements is too many for one launch`);
    const S = operand(dev, src, dtype, "scatterAdd"), I = operand(dev, index, "int32", "scatterAdd");
    const p = dev.params;
    p.ptr(0, S.raw.ptr);
    p.ptr(1, I.raw.ptr);
    p.ptr(2, accBuf.ptr);
    p.u32(3, n);
    p.shape8(4, src.shape);
    p.strides8(5, S.raw.strides);
    p.strides8(6, I.raw.strides);
    p.strides8(7, contiguousStrides(shape));
    p.u32(8, ax);
    p.u32(9, shape[ax]);
    dev.launch(dev.kernel("indexing", indexingKernel("scatter_add", dtype)), dev.grid(n), 256);
    dev.release(S.temp);
    dev.release(I.temp);
  }
  if (accBuf !== out) {
    copyRaw(dev, { ptr: accBuf.ptr, dtype: acc, shape: [total], strides: [1] }, {
      ptr: out.ptr,
      dtype,
      shape: [total],
      strides: [1],
    });
    dev.free(accBuf);
  }
  return out;
}

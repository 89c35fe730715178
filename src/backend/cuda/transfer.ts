/**
 * Data movement of the CUDA backend: uploads and downloads (the download is the only
 * synchronisation), fills, ranges, counter-based random numbers (kernels/random.cu, the CPU
 * backend's Philox stream) and copies between views with dtype conversion (kernels/copy.cu).
 *
 * @module
 */

import type { View } from "../../tensor/backend.ts";
import { type DType, DTYPES, fromBFloat16Bits, type HostArray, toBFloat16Bits } from "../../tensor/dtype.ts";
import { ArgumentError, DTypeError } from "../../tensor/errors.ts";
import { coalesce, contiguousStrides, isContiguous, sizeOf } from "../../tensor/shape.ts";
import { type CudaBuffer, type CudaDevice, ITEM, type Operand, type Raw, SFX } from "./device.ts";
import type { KernelFamily } from "./compiler.ts";
import { forChunks } from "./layout.ts";

const f64Scratch = new Float64Array(1);
const u32OfF64 = new Uint32Array(f64Scratch.buffer);
const f32Scratch = new Float32Array(1);
const u32OfF32 = new Uint32Array(f32Scratch.buffer);

/** The kernel of kernels/copy.cu that copies (`cast`: contiguous, `copy`: strided, `copy_scaled`: strided times a number) `src` storage into `dst` storage. */
function copyKernel(how: "cast" | "copy" | "copy_scaled", src: DType, dst: DType): string {
  return `${how}_${SFX[src]}_${SFX[dst]}`;
}

function arangeKernel(dtype: DType): string {
  return `arange_${SFX[dtype]}`;
}

function randomKernel(kind: "uniform" | "normal", dtype: DType): string {
  return `random_${kind}_${SFX[dtype]}`;
}

/**
 * Every kernel name the data movement can ask for, by family: conversions between any two
 * storage types, scaled copies from the FFTs' float32 or float64 results into a float output,
 * fills, ranges and random numbers of every type.
 *
 * @example
 * ```ts
 * import { transferKernelNames } from "./transfer.ts";
 * transferKernelNames().copy.includes("cast_bf16_f32"); // true
 * ```
 */
export function transferKernelNames(): Partial<Record<KernelFamily, string[]>> {
  const copy = ["fill_u64"], random: string[] = [];
  for (const src of DTYPES) {
    for (const dst of DTYPES) {
      copy.push(copyKernel("copy", src, dst));
      if (src !== dst) copy.push(copyKernel("cast", src, dst));
    }
    copy.push(arangeKernel(src));
    random.push(randomKernel("uniform", src), randomKernel("normal", src));
  }
  for (const [src, dst] of [["float32", "float32"], ["float64", "float64"], ["float32", "bfloat16"]] as const) {
    copy.push(copyKernel("copy_scaled", src, dst));
  }
  return { copy, random };
}

/**
 * `v` as a Raw of `dtype`; a converted contiguous copy (to free afterwards) when the dtype differs.
 *
 * @example
 * ```ts
 * import { operand } from "./transfer.ts";
 * // const { raw, temp } = operand(dev, view, "float32", "exp"); ...; dev.release(temp);
 * ```
 */
export function operand(dev: CudaDevice, v: View, dtype: DType, op: string): Operand {
  const r = dev.raw(v, op);
  if (r.dtype === dtype) return { raw: r, temp: null };
  return materialize(dev, r, dtype);
}

/**
 * A contiguous copy of `r` in `dtype`.
 *
 * @example
 * ```ts
 * import { materialize } from "./transfer.ts";
 * // const { raw, temp } = materialize(dev, r, "float64");
 * ```
 */
export function materialize(dev: CudaDevice, r: Raw, dtype: DType): { raw: Raw; temp: CudaBuffer } {
  const t = dev.newBuffer(sizeOf(r.shape), dtype);
  const strides = contiguousStrides(r.shape);
  copyRaw(dev, r, { ptr: t.ptr, dtype, shape: r.shape, strides });
  return { raw: { ptr: t.ptr, dtype, shape: r.shape, strides }, temp: t };
}

/**
 * `r` itself when contiguous, else a contiguous copy.
 *
 * @example
 * ```ts
 * import { contiguous } from "./transfer.ts";
 * // const { raw, temp } = contiguous(dev, r);
 * ```
 */
export function contiguous(dev: CudaDevice, r: Raw): Operand {
  return isContiguous(r.shape, r.strides) ? { raw: r, temp: null } : materialize(dev, r, r.dtype);
}

/**
 * dst = src (shapes equal), converting dtype; scale != 1 multiplies (float types only).
 *
 * @example
 * ```ts
 * import { copyRaw } from "./transfer.ts";
 * // copyRaw(dev, src, dst); copyRaw(dev, src, dst, 0.5); // the second halves
 * ```
 */
export function copyRaw(dev: CudaDevice, src: Raw, dst: Raw, scale = 1): void {
  const n = sizeOf(src.shape);
  if (n === 0) return;
  if (scale === 1 && isContiguous(src.shape, src.strides) && isContiguous(dst.shape, dst.strides)) {
    if (src.dtype === dst.dtype) {
      dev.counts.copies++;
      dev.drv.check(
        "cuMemcpyDtoDAsync_v2",
        dev.drv.sym.cuMemcpyDtoDAsync_v2(
          BigInt(dst.ptr),
          BigInt(src.ptr),
          BigInt(n * ITEM[src.dtype]),
          dev.stream,
        ),
      );
    } else {
      const p = dev.params;
      p.ptr(0, src.ptr);
      p.ptr(1, dst.ptr);
      p.u64(2, n);
      dev.launch(dev.kernel("copy", copyKernel("cast", src.dtype, dst.dtype)), dev.grid(n), 256);
    }
    return;
  }
  const c = coalesce(src.shape, [src.strides, dst.strides]);
  const fn = dev.kernel("copy", copyKernel(scale === 1 ? "copy" : "copy_scaled", src.dtype, dst.dtype));
  const si = ITEM[src.dtype], di = ITEM[dst.dtype];
  forChunks(c.shape, c.strides, (shape, strides, offs) => {
    const m = sizeOf(shape);
    const p = dev.params;
    p.ptr(0, src.ptr + offs[0] * si);
    p.ptr(1, dst.ptr + offs[1] * di);
    p.u32(2, m);
    p.shape8(3, shape);
    p.strides8(4, strides[0]);
    p.strides8(5, strides[1]);
    if (scale !== 1) p.f64(6, scale);
    dev.launch(fn, dev.grid(m), 256);
  });
}

/**
 * Zeroes `bytes` bytes at `ptr` (queued).
 *
 * @example
 * ```ts
 * import { memset0 } from "./transfer.ts";
 * // memset0(dev, buf.ptr, buf.bytes);
 * ```
 */
export function memset0(dev: CudaDevice, ptr: number, bytes: number): void {
  if (bytes > 0) {
    dev.counts.copies++;
    dev.drv.check("cuMemsetD8Async", dev.drv.sym.cuMemsetD8Async(BigInt(ptr), 0, BigInt(bytes), dev.stream));
  }
}

/**
 * Sets every element of `buf` to `value` (queued).
 *
 * @example
 * ```ts
 * import { fill } from "./transfer.ts";
 * // fill(dev, buf, 1);
 * ```
 */
export function fill(dev: CudaDevice, buf: CudaBuffer, value: number): void {
  const n = buf.size;
  if (n === 0) return;
  const ptr = BigInt(buf.ptr);
  if (buf.dtype !== "float64") dev.counts.copies++;
  switch (buf.dtype) {
    case "float32":
      f32Scratch[0] = value;
      dev.drv.check(
        "cuMemsetD32Async",
        dev.drv.sym.cuMemsetD32Async(ptr, u32OfF32[0], BigInt(n), dev.stream),
      );
      return;
    case "int32":
      dev.drv.check(
        "cuMemsetD32Async",
        dev.drv.sym.cuMemsetD32Async(ptr, (value | 0) >>> 0, BigInt(n), dev.stream),
      );
      return;
    case "bfloat16":
      dev.drv.check(
        "cuMemsetD16Async",
        dev.drv.sym.cuMemsetD16Async(ptr, toBFloat16Bits(value), BigInt(n), dev.stream),
      );
      return;
    case "float64": {
      f64Scratch[0] = value;
      const p = dev.params;
      p.ptr(0, buf.ptr);
      p.u64(1, n);
      p.words(2, u32OfF64[0], u32OfF64[1]);
      dev.launch(dev.kernel("copy", "fill_u64"), dev.grid(n), 256);
      return;
    }
  }
}

/**
 * Uploads host data into a new buffer. A `Uint16Array` is always bfloat16 raw bits (as on the
 * CPU backend): kept as they are for a bfloat16 buffer, widened to their values for the others;
 * other arrays are values.
 *
 * @example
 * ```ts
 * import { fromHost } from "./transfer.ts";
 * // const buf = fromHost(dev, [1, 2, 3], "float32");
 * ```
 */
export function fromHost(dev: CudaDevice, data: HostArray | readonly number[], dtype: DType): CudaBuffer {
  let arr: Float32Array | Float64Array | Int32Array | Uint16Array;
  if (data instanceof Uint16Array && dtype !== "bfloat16") data = Float64Array.from(data, fromBFloat16Bits);
  switch (dtype) {
    case "float32":
      arr = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
      break;
    case "float64":
      arr = data instanceof Float64Array ? data : Float64Array.from(data as ArrayLike<number>);
      break;
    case "int32":
      arr = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
      break;
    case "bfloat16": {
      if (data instanceof Uint16Array) arr = data;
      else {
        const src = data as ArrayLike<number>;
        const bits = new Uint16Array(src.length);
        for (let i = 0; i < src.length; i++) bits[i] = toBFloat16Bits(src[i]);
        arr = bits;
      }
      break;
    }
    default:
      throw new DTypeError("fromHost", `unknown dtype ${dtype}`);
  }
  const buf = dev.newBuffer(arr.length, dtype);
  if (arr.length > 0) {
    dev.counts.uploads++;
    dev.drv.check(
      "cuMemcpyHtoDAsync_v2",
      dev.drv.sym.cuMemcpyHtoDAsync_v2(BigInt(buf.ptr), arr, BigInt(buf.bytes), dev.stream),
    );
  }
  return buf;
}

/**
 * Reads a view to a new host array (bfloat16 as float32); waits for the stream.
 *
 * @example
 * ```ts
 * import { toHost } from "./transfer.ts";
 * // const host = toHost(dev, view);
 * ```
 */
export function toHost(dev: CudaDevice, view: View): Float32Array | Float64Array | Int32Array {
  const r0 = dev.raw(view, "toHost");
  const n = sizeOf(view.shape);
  const { raw, temp } = contiguous(dev, r0);
  let out: Float32Array | Float64Array | Int32Array;
  let bits: Uint16Array | undefined;
  let target: Float32Array | Float64Array | Int32Array | Uint16Array;
  switch (raw.dtype) {
    case "float32":
      target = out = new Float32Array(n);
      break;
    case "float64":
      target = out = new Float64Array(n);
      break;
    case "int32":
      target = out = new Int32Array(n);
      break;
    default:
      out = new Float32Array(n);
      target = bits = new Uint16Array(n);
  }
  if (n > 0) {
    dev.drv.check(
      "cuMemcpyDtoHAsync_v2",
      dev.drv.sym.cuMemcpyDtoHAsync_v2(target, BigInt(raw.ptr), BigInt(n * ITEM[raw.dtype]), dev.stream),
    );
  }
  dev.synchronize();
  dev.release(temp);
  if (bits) {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = bits[i] << 16;
  }
  return out;
}

/**
 * A new buffer of `size` elements equal to `value`.
 *
 * @example
 * ```ts
 * import { full } from "./transfer.ts";
 * // const ones = full(dev, 8, 1, "float64");
 * ```
 */
export function full(dev: CudaDevice, size: number, value: number, dtype: DType): CudaBuffer {
  const buf = dev.newBuffer(size, dtype);
  fill(dev, buf, value);
  return buf;
}

/**
 * `start + i * step` for i in [0, size).
 *
 * @example
 * ```ts
 * import { arange } from "./transfer.ts";
 * // const r = arange(dev, 5, 0, 0.5, "float32");
 * ```
 */
export function arange(dev: CudaDevice, size: number, start: number, step: number, dtype: DType): CudaBuffer {
  const buf = dev.newBuffer(size, dtype);
  if (size === 0) return buf;
  const p = dev.params;
  p.ptr(0, buf.ptr);
  p.u64(1, size);
  p.f64(2, start);
  p.f64(3, step);
  dev.launch(dev.kernel("copy", arangeKernel(dtype)), dev.grid(size), 256);
  return buf;
}

/**
 * Philox4x32-10 uniform or normal numbers, identical to the CPU backend's.
 *
 * @example
 * ```ts
 * import { random } from "./transfer.ts";
 * // const z = random(dev, "normal", 1024, 7, 0, "float32");
 * ```
 */
export function random(
  dev: CudaDevice,
  kind: "uniform" | "normal",
  size: number,
  seed: number,
  offset: number,
  dtype: DType,
): CudaBuffer {
  if (kind !== "uniform" && kind !== "normal") throw new ArgumentError("random", `unknown kind ${kind}`);
  const buf = dev.newBuffer(size, dtype);
  if (size === 0) return buf;
  const k0 = ((seed % 4294967296) + 4294967296) % 4294967296;
  const k1 = ((Math.floor(seed / 4294967296) % 4294967296) + 4294967296) % 4294967296;
  const p = dev.params;
  p.ptr(0, buf.ptr);
  p.u64(1, size);
  p.u32(2, k0);
  p.u32(3, k1);
  p.u64(4, offset);
  dev.launch(dev.kernel("random", randomKernel(kind, dtype)), dev.grid(size), 256);
  return buf;
}

/**
 * Copies `src` into the window `dst` of an existing buffer (shapes equal), converting dtype;
 * overlapping windows of one buffer are read in full before any is written.
 *
 * @example
 * ```ts
 * import { copy } from "./transfer.ts";
 * // copy(dev, src, dst);
 * ```
 */
export function copy(dev: CudaDevice, src: View, dst: View): void {
  let s = dev.raw(src, "copy");
  const d = dev.raw(dst, "copy");
  let temp: CudaBuffer | null = null;
  if (src.buffer === dst.buffer && sizeOf(src.shape) > 0) {
    // The windows may overlap: read everything before writing.
    const m = materialize(dev, s, s.dtype);
    s = m.raw;
    temp = m.temp;
  }
  copyRaw(dev, s, d);
  dev.release(temp);
}

/**
 * The CUDA backend's elementwise ops (kernels/elementwise.cu): the unary and binary ops of
 * src/tensor/op_defs.ts, looked up by name, and `where`. For every op and storage type the
 * kernels file instantiates a contiguous kernel `<kernel>_<dtype>` (16-byte vector loads; taken
 * when every operand is contiguous and aligned) and a strided one `<kernel>_strided_<dtype>`
 * (up to eight collapsed axes, split into 32-bit pieces), where `<kernel>` is the op definition's
 * kernel name; `where` has one pair per condition and value type. Operands of another dtype are
 * converted first; a number operand travels as a kernel parameter.
 *
 * @module
 */

import type { View } from "../../tensor/backend.ts";
import { type DType, DTYPES } from "../../tensor/dtype.ts";
import { ArgumentError } from "../../tensor/errors.ts";
import { BINARY_OPS, type BinaryOp, UNARY_OPS, type UnaryOp } from "../../tensor/op_defs.ts";
import { coalesce, isContiguous, sizeOf } from "../../tensor/shape.ts";
import { type CudaBuffer, type CudaDevice, ITEM, type Raw, SFX } from "./device.ts";
import { operand } from "./transfer.ts";
import { forChunks } from "./layout.ts";
import type { KernelFamily } from "./compiler.ts";

/** Elements per 16-byte vector in the contiguous kernels. */
const VEC: Readonly<Record<DType, number>> = { float32: 4, float64: 2, bfloat16: 8, int32: 4 };

/**
 * The kernel of kernels/elementwise.cu that runs the op with kernel name `kernel` on `dtype`
 * storage (contiguous operands, or `strided` ones).
 *
 * @example
 * ```ts
 * import { elementwiseKernel } from "./elementwise.ts";
 * elementwiseKernel("unary_exp", "float32", false); // "unary_exp_f32"
 * elementwiseKernel("binary_add", "bfloat16", true); // "binary_add_strided_bf16"
 * ```
 */
export function elementwiseKernel(kernel: string, dtype: DType, strided: boolean): string {
  return `${kernel}${strided ? "_strided" : ""}_${SFX[dtype]}`;
}

/**
 * The `where` kernel for a condition of `cond` storage and values of `dtype` storage.
 *
 * @example
 * ```ts
 * import { whereKernel } from "./elementwise.ts";
 * whereKernel("int32", "float32", true); // "where_strided_i32_f32"
 * ```
 */
export function whereKernel(cond: DType, dtype: DType, strided: boolean): string {
  return `where${strided ? "_strided" : ""}_${SFX[cond]}_${SFX[dtype]}`;
}

/**
 * Every kernel name the elementwise ops can ask kernels/elementwise.cu for.
 *
 * @example
 * ```ts
 * import { elementwiseKernelNames } from "./elementwise.ts";
 * elementwiseKernelNames().elementwise.includes("unary_gelu_strided_f64"); // true
 * ```
 */
export function elementwiseKernelNames(): Partial<Record<KernelFamily, string[]>> {
  const names: string[] = [];
  const stems = [...Object.values(UNARY_OPS), ...Object.values(BINARY_OPS)].map((def) => def.kernel);
  for (const dtype of DTYPES) {
    for (const strided of [false, true]) {
      for (const kernel of stems) names.push(elementwiseKernel(kernel, dtype, strided));
      for (const cond of DTYPES) names.push(whereKernel(cond, dtype, strided));
    }
  }
  return { elementwise: names };
}

/** A value operand of `binary` or `where`: a view converted to the op's dtype, or a number. */
interface Value {
  /** The view (null for a number). */
  readonly raw: Raw | null;
  /** Its converted copy, to free after the launch. */
  readonly temp: CudaBuffer | null;
  /** The number (0 for a view); the kernels take it by value. */
  readonly number: number;
}

function value(dev: CudaDevice, x: View | number, dtype: DType, op: string): Value {
  if (typeof x === "number") return { raw: null, temp: null, number: x };
  return { ...operand(dev, x, dtype, op), number: 0 };
}

/** The kernels' `flags`: bit 0 when `a` is a number, bit 1 when `b` is. */
function numberFlags(a: Value, b: Value): number {
  return (a.raw ? 0 : 1) | (b.raw ? 0 : 2);
}

/** Address of element `offset` of a view operand (0 for a number). */
function address(v: Value, offset: number, itemBytes: number): number {
  return v.raw ? v.raw.ptr + offset * itemBytes : 0;
}

/** Strides of a view operand (zeros for a number). */
function stridesOf(v: Value, shape: readonly number[]): readonly number[] {
  return v.raw ? v.raw.strides : new Array<number>(shape.length).fill(0);
}

/**
 * The unary op `op` of `x` into a new contiguous buffer of `dtype`.
 *
 * @example
 * ```ts
 * import { unary } from "./elementwise.ts";
 * // const y = unary(dev, "exp", view, "float32");
 * ```
 */
export function unary(dev: CudaDevice, op: UnaryOp, x: View, dtype: DType): CudaBuffer {
  if (!Object.hasOwn(UNARY_OPS, op)) throw new ArgumentError("unary", `unknown op ${op}`);
  const kernel = UNARY_OPS[op].kernel;
  const n = sizeOf(x.shape);
  const out = dev.newBuffer(n, dtype);
  if (n === 0) return out;
  const { raw, temp } = operand(dev, x, dtype, op);
  const isz = ITEM[dtype];
  const p = dev.params;
  if (isContiguous(raw.shape, raw.strides) && raw.ptr % 16 === 0) {
    p.ptr(0, raw.ptr);
    p.ptr(1, out.ptr);
    p.u64(2, n);
    const fn = dev.kernel("elementwise", elementwiseKernel(kernel, dtype, false));
    dev.launch(fn, dev.grid(Math.ceil(n / VEC[dtype])), 256);
  } else {
    const c = coalesce(raw.shape, [raw.strides]);
    const fn = dev.kernel("elementwise", elementwiseKernel(kernel, dtype, true));
    forChunks(c.shape, c.strides, (shape, strides, offs, start) => {
      const m = sizeOf(shape);
      p.ptr(0, raw.ptr + offs[0] * isz);
      p.ptr(1, out.ptr + start * isz);
      p.u32(2, m);
      p.shape8(3, shape);
      p.strides8(4, strides[0]);
      dev.launch(fn, dev.grid(m), 256);
    });
  }
  dev.release(temp);
  return out;
}

/**
 * The binary op `op` of `a` and `b` (views of `shape`, or numbers) into a new contiguous buffer.
 *
 * @example
 * ```ts
 * import { binary } from "./elementwise.ts";
 * // const y = binary(dev, "mul", view, 0.5, view.shape, "float32");
 * ```
 */
export function binary(
  dev: CudaDevice,
  op: BinaryOp,
  a: View | number,
  b: View | number,
  shape: readonly number[],
  dtype: DType,
): CudaBuffer {
  if (!Object.hasOwn(BINARY_OPS, op)) throw new ArgumentError("binary", `unknown op ${op}`);
  const kernel = BINARY_OPS[op].kernel;
  const n = sizeOf(shape);
  const out = dev.newBuffer(n, dtype);
  if (n === 0) return out;
  const va = value(dev, a, dtype, op), vb = value(dev, b, dtype, op);
  const flags = numberFlags(va, vb);
  const isz = ITEM[dtype];
  const p = dev.params;
  const aligned = (v: Value) => v.raw === null || (isContiguous(v.raw.shape, v.raw.strides) && v.raw.ptr % 16 === 0);
  if (aligned(va) && aligned(vb)) {
    p.ptr(0, address(va, 0, isz));
    p.ptr(1, address(vb, 0, isz));
    p.ptr(2, out.ptr);
    p.u64(3, n);
    p.f64(4, va.number);
    p.f64(5, vb.number);
    p.u32(6, flags);
    dev.launch(
      dev.kernel("elementwise", elementwiseKernel(kernel, dtype, false)),
      dev.grid(Math.ceil(n / VEC[dtype])),
      256,
    );
  } else {
    const c = coalesce(shape, [stridesOf(va, shape), stridesOf(vb, shape)]);
    const fn = dev.kernel("elementwise", elementwiseKernel(kernel, dtype, true));
    forChunks(c.shape, c.strides, (sh, strides, offs, start) => {
      const m = sizeOf(sh);
      p.ptr(0, address(va, offs[0], isz));
      p.ptr(1, address(vb, offs[1], isz));
      p.ptr(2, out.ptr + start * isz);
      p.u32(3, m);
      p.shape8(4, sh);
      p.strides8(5, strides[0]);
      p.strides8(6, strides[1]);
      p.f64(7, va.number);
      p.f64(8, vb.number);
      p.u32(9, flags);
      dev.launch(fn, dev.grid(m), 256);
    });
  }
  dev.release(va.temp);
  dev.release(vb.temp);
  return out;
}

/**
 * `cond ? a : b` elementwise (views of `shape`, or numbers for `a` and `b`) into a new
 * contiguous buffer of `dtype`; a nonzero condition picks `a`.
 *
 * @example
 * ```ts
 * import { where } from "./elementwise.ts";
 * // const y = where(dev, mask, view, 0, view.shape, "float32");
 * ```
 */
export function where(
  dev: CudaDevice,
  cond: View,
  a: View | number,
  b: View | number,
  shape: readonly number[],
  dtype: DType,
): CudaBuffer {
  const n = sizeOf(shape);
  const out = dev.newBuffer(n, dtype);
  if (n === 0) return out;
  const rc = dev.raw(cond, "where");
  const va = value(dev, a, dtype, "where"), vb = value(dev, b, dtype, "where");
  const flags = numberFlags(va, vb);
  const isz = ITEM[dtype], csz = ITEM[rc.dtype];
  const p = dev.params;
  const contiguous = (v: Value) => v.raw === null || isContiguous(v.raw.shape, v.raw.strides);
  if (isContiguous(rc.shape, rc.strides) && contiguous(va) && contiguous(vb)) {
    p.ptr(0, rc.ptr);
    p.ptr(1, address(va, 0, isz));
    p.ptr(2, address(vb, 0, isz));
    p.ptr(3, out.ptr);
    p.u64(4, n);
    p.f64(5, va.number);
    p.f64(6, vb.number);
    p.u32(7, flags);
    dev.launch(dev.kernel("elementwise", whereKernel(rc.dtype, dtype, false)), dev.grid(n), 256);
  } else {
    const c = coalesce(shape, [rc.strides, stridesOf(va, shape), stridesOf(vb, shape)]);
    const fn = dev.kernel("elementwise", whereKernel(rc.dtype, dtype, true));
    forChunks(c.shape, c.strides, (sh, strides, offs, start) => {
      const m = sizeOf(sh);
      p.ptr(0, rc.ptr + offs[0] * csz);
      p.ptr(1, address(va, offs[1], isz));
      p.ptr(2, address(vb, offs[2], isz));
      p.ptr(3, out.ptr + start * isz);
      p.u32(4, m);
      p.shape8(5, sh);
      p.strides8(6, strides[0]);
      p.strides8(7, strides[1]);
      p.strides8(8, strides[2]);
      p.f64(9, va.number);
      p.f64(10, vb.number);
      p.u32(11, flags);
      dev.launch(fn, dev.grid(m), 256);
    });
  }
  dev.release(va.temp);
  dev.release(vb.temp);
  return out;
}

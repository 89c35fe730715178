/**
 * The CUDA backend's reductions along axes: sums, products, maxima and minima over any set of
 * axes (kernels/reduce.cu, in one or two passes), arg-max/min along an axis, softmax and
 * log-softmax (kernels/softmax.cu) and inclusive prefix sums (kernels/scan.cu).
 *
 * A reduction merges the kept and the reduced axes separately (at most eight groups each) and
 * picks its kernel from the layout: a row kernel (a warp or a block per output, walking the
 * reduced axes innermost) when they are the fastest-varying, else a column kernel (a thread per
 * output); outputs too few to fill the device split the reduced range, and a second pass adds
 * the parts in the accumulation type.
 *
 * @module
 */

import type { ReduceOp, View } from "../../tensor/backend.ts";
import { type DType, DTYPES } from "../../tensor/dtype.ts";
import { ArgumentError, DeviceError, DTypeError } from "../../tensor/errors.ts";
import { coalesce, contiguousStrides, sizeOf } from "../../tensor/shape.ts";
import { normalizeAxis } from "../../tensor/validate.ts";
import { accDtype, type CudaBuffer, type CudaDevice, type Raw, SFX } from "./device.ts";
import { contiguous, copyRaw, fill, materialize, operand } from "./transfer.ts";
import { MAX_DIMS } from "./layout.ts";
import type { KernelFamily } from "./compiler.ts";

/** The reduction kernels: a thread per output, a warp per output, or a block per output. */
type ReduceKind = "col" | "row_warp" | "row_block";
/** The softmax kernels: a warp per row holding 1, 2, 4 or 8 values per lane, a block per row, one pass per row (online), or a thread per column. */
type SoftmaxKind = "warp1" | "warp2" | "warp4" | "warp8" | "block" | "online" | "col";

function reduceKernel(kind: ReduceKind, op: ReduceOp, input: DType, output: DType): string {
  return `reduce_${kind}_${op}_${SFX[input]}_${SFX[output]}`;
}

function argReduceKernel(op: "argmax" | "argmin", rowMode: boolean, dtype: DType): string {
  return `${op}_${rowMode ? "row" : "col"}_${SFX[dtype]}`;
}

function softmaxKernel(log: boolean, kind: SoftmaxKind, dtype: DType): string {
  return `${log ? "softmax_log" : "softmax"}_${kind}_${SFX[dtype]}`;
}

function scanKernel(row: boolean, dtype: DType): string {
  return `scan_${row ? "row" : "col"}_${SFX[dtype]}`;
}

/**
 * Every kernel name the reductions can ask for, by family. A reduction of `dtype` reads and
 * writes `dtype`, or (split in two passes) writes its accumulation type and reads it back.
 *
 * @example
 * ```ts
 * import { reduceKernelNames } from "./reduce.ts";
 * reduceKernelNames().reduce.includes("reduce_row_warp_sum_i32_f64"); // true
 * ```
 */
export function reduceKernelNames(): Partial<Record<KernelFamily, string[]>> {
  const reduce: string[] = [], softmax: string[] = [], scan: string[] = [];
  for (const dtype of DTYPES) {
    const acc = accDtype(dtype);
    for (const op of ["sum", "max", "min", "prod"] as const) {
      for (const kind of ["col", "row_warp", "row_block"] as const) {
        for (const [input, output] of [[dtype, dtype], [dtype, acc], [acc, dtype]]) {
          reduce.push(reduceKernel(kind, op, input, output));
        }
      }
    }
    for (const op of ["argmax", "argmin"] as const) {
      reduce.push(argReduceKernel(op, true, dtype), argReduceKernel(op, false, dtype));
    }
    scan.push(scanKernel(true, dtype), scanKernel(false, dtype));
    if (dtype === "int32") continue;
    for (const kind of ["warp1", "warp2", "warp4", "warp8", "block", "online", "col"] as const) {
      softmax.push(softmaxKernel(false, kind, dtype), softmaxKernel(true, kind, dtype));
    }
  }
  return { reduce: [...new Set(reduce)], softmax, scan };
}

/** Kept and reduced axes of a reduction, each merged where the layout allows. */
interface ReduceDims {
  kshape: number[];
  kstrides: number[];
  rshape: number[];
  rstrides: number[];
}

/**
 * Reduces `x` over `axes` (kept as size-1 axes) into a new buffer of `dtype`.
 *
 * @example
 * ```ts
 * import { reduce } from "./reduce.ts";
 * // const s = reduce(dev, "sum", view, [1], "float32");
 * ```
 */
export function reduce(dev: CudaDevice, op: ReduceOp, x: View, axes: readonly number[], dtype: DType): CudaBuffer {
  if (op !== "sum" && op !== "max" && op !== "min" && op !== "prod") {
    throw new ArgumentError("reduce", `unknown op ${op}`);
  }
  const rank = x.shape.length;
  const axSet = new Set(axes.map((a) => normalizeAxis(op, a, rank)));
  const outShape = x.shape.map((n, d) => (axSet.has(d) ? 1 : n));
  const nOut = sizeOf(outShape);
  const out = dev.newBuffer(nOut, dtype);
  if (nOut === 0) return out;
  let nRed = 1;
  for (const d of axSet) nRed *= x.shape[d];
  if (nRed === 0) {
    fill(dev, out, op === "sum" ? 0 : op === "prod" ? 1 : op === "max" ? -Infinity : Infinity);
    return out;
  }
  let { raw, temp } = operand(dev, x, dtype, op);
  let dims = reduceDims(raw, axSet);
  if (dims.kshape.length > MAX_DIMS || dims.rshape.length > MAX_DIMS) {
    const m = materialize(dev, raw, dtype);
    dev.release(temp);
    ({ raw, temp } = m);
    dims = reduceDims(raw, axSet);
    if (dims.kshape.length > MAX_DIMS || dims.rshape.length > MAX_DIMS) {
      throw new DeviceError(
        op,
        `cannot reduce over ${[...axSet]} of a rank-${rank} tensor (more than 8 axis groups)`,
      );
    }
  }
  if (dims.rshape.length === 0) {
    copyRaw(dev, raw, { ptr: out.ptr, dtype, shape: raw.shape, strides: contiguousStrides(raw.shape) });
    dev.release(temp);
    return out;
  }
  const sms = dev.multiprocessors;
  let minK = Infinity, minR = Infinity;
  for (const s of dims.kstrides) minK = Math.min(minK, Math.abs(s));
  for (const s of dims.rstrides) minR = Math.min(minR, Math.abs(s));
  const rowMode = minR <= minK;
  let splits = 1;
  if (rowMode) {
    if (nOut < sms * 4 && nRed >= 16384) splits = Math.min(Math.ceil(nRed / 8192), Math.ceil((sms * 8) / nOut));
  } else {
    const want = sms * 2048;
    if (nOut < want && nRed >= 64) splits = Math.min(Math.ceil(nRed / 32), Math.ceil(want / nOut));
  }
  let chunk = Math.ceil(nRed / splits);
  // Keep every part's start 16-byte aligned for the vector loads of the row kernel.
  if (rowMode && splits > 1) chunk = Math.ceil(chunk / 16) * 16;
  splits = Math.ceil(nRed / chunk);
  const acc = accDtype(dtype);
  const stage1Out = splits > 1 ? dev.newBuffer(nOut * splits, acc) : out;
  reduceLaunch(dev, op, rowMode, dtype, stage1Out.dtype, raw.ptr, stage1Out.ptr, nOut, nRed, splits, chunk, dims);
  if (splits > 1) {
    reduceLaunch(dev, op, true, acc, dtype, stage1Out.ptr, out.ptr, nOut, splits, 1, splits, {
      kshape: nOut > 1 ? [nOut] : [],
      kstrides: nOut > 1 ? [splits] : [],
      rshape: [splits],
      rstrides: [1],
    });
    dev.free(stage1Out);
  }
  dev.release(temp);
  return out;
}

function reduceDims(raw: Raw, axSet: Set<number>): ReduceDims {
  const kept: number[] = [], red: number[] = [];
  for (let d = 0; d < raw.shape.length; d++) {
    if (raw.shape[d] === 1) continue;
    (axSet.has(d) ? red : kept).push(d);
  }
  // Reduced axes in order of decreasing |stride| so the innermost walks memory.
  red.sort((a, b) => Math.abs(raw.strides[b]) - Math.abs(raw.strides[a]));
  const merge = (ds: number[]) => {
    const c = coalesce(ds.map((d) => raw.shape[d]), [ds.map((d) => raw.strides[d])]);
    return ds.length === 0 ? { shape: [], strides: [] } : { shape: c.shape, strides: c.strides[0] };
  };
  const k = merge(kept), r = merge(red);
  return { kshape: k.shape, kstrides: k.strides, rshape: r.shape, rstrides: r.strides };
}

function reduceLaunch(
  dev: CudaDevice,
  op: ReduceOp,
  rowMode: boolean,
  input: DType,
  output: DType,
  xp: number,
  yp: number,
  nOut: number,
  nRed: number,
  splits: number,
  chunk: number,
  dims: ReduceDims,
): void {
  const items = nOut * splits;
  let kind: ReduceKind, blocks: number;
  if (!rowMode) {
    kind = "col";
    blocks = dev.grid(items);
  } else if (chunk <= 2048) {
    kind = "row_warp";
    blocks = dev.grid(items * 32);
  } else {
    kind = "row_block";
    blocks = Math.max(1, Math.min(items, dev.maxBlocks));
  }
  const p = dev.params;
  p.ptr(0, xp);
  p.ptr(1, yp);
  p.u32(2, nOut);
  p.u32(3, nRed);
  p.u32(4, splits);
  p.u32(5, chunk);
  p.rdims(6, dims.kshape, dims.kstrides, dims.rshape, dims.rstrides);
  dev.launch(dev.kernel("reduce", reduceKernel(kind, op, input, output)), blocks, 256);
}

/**
 * The int32 index of the max or min of `x` along `axis` (kept as a size-1 axis).
 *
 * @example
 * ```ts
 * import { argReduce } from "./reduce.ts";
 * // const i = argReduce(dev, "argmax", view, -1);
 * ```
 */
export function argReduce(dev: CudaDevice, op: "argmax" | "argmin", x: View, axis: number): CudaBuffer {
  if (op !== "argmax" && op !== "argmin") throw new ArgumentError("argReduce", `unknown op ${op}`);
  const rank = x.shape.length;
  const ax = normalizeAxis(op, axis, rank);
  const outShape = x.shape.map((n, d) => (d === ax ? 1 : n));
  const nOut = sizeOf(outShape);
  const out = dev.newBuffer(nOut, "int32");
  if (nOut === 0) return out;
  const L = x.shape[ax];
  if (L === 0) {
    fill(dev, out, 0);
    return out;
  }
  let raw = dev.raw(x, op);
  let temp: CudaBuffer | null = null;
  let dims = reduceDims(raw, new Set([ax]));
  if (dims.kshape.length > MAX_DIMS) {
    ({ raw, temp } = materialize(dev, raw, raw.dtype));
    dims = reduceDims(raw, new Set([ax]));
    if (dims.kshape.length > MAX_DIMS) throw new DeviceError(op, `rank ${rank} has more than 8 axis groups`);
  }
  const s = L === 1 ? 0 : raw.strides[ax];
  let minK = Infinity;
  for (const k of dims.kstrides) minK = Math.min(minK, Math.abs(k));
  const rowMode = L > 32 && Math.abs(s) <= minK;
  const p = dev.params;
  p.ptr(0, raw.ptr);
  p.ptr(1, out.ptr);
  p.u32(2, nOut);
  p.u32(3, L);
  p.rdims(4, dims.kshape, dims.kstrides, [L], [s]);
  const fn = dev.kernel("reduce", argReduceKernel(op, rowMode, raw.dtype));
  dev.launch(fn, rowMode ? Math.max(1, Math.min(nOut, dev.maxBlocks)) : dev.grid(nOut), 256);
  dev.release(temp);
  return out;
}

/**
 * Softmax (or log-softmax) of `x` along `axis` into a new buffer of float `dtype`.
 *
 * @example
 * ```ts
 * import { softmax } from "./reduce.ts";
 * // const p = softmax(dev, view, -1, false, "float32");
 * ```
 */
export function softmax(dev: CudaDevice, x: View, axis: number, log: boolean, dtype: DType): CudaBuffer {
  if (dtype === "int32") throw new DTypeError("softmax", "int32 output; use a float dtype");
  return alongAxis(dev, "softmax", x, axis, dtype, (L, outer, inner) => {
    const p = dev.params;
    if (inner === 1) {
      const rows = outer;
      p.u32(2, rows);
      p.u32(3, L);
      const sms = dev.multiprocessors;
      if (L <= 256) {
        const vpt = L <= 32 ? 1 : L <= 64 ? 2 : L <= 128 ? 4 : 8;
        dev.launch(
          dev.kernel("softmax", softmaxKernel(log, `warp${vpt}`, dtype)),
          Math.max(1, Math.min(Math.ceil(rows / 4), sms * 16)),
          128,
        );
      } else if (L <= 8192) {
        const threads = Math.min(1024, Math.max(32, Math.ceil(Math.ceil(L / 8) / 32) * 32));
        const perSm = Math.max(1, Math.floor(2048 / threads));
        const fn = dev.kernel("softmax", softmaxKernel(log, "block", dtype));
        dev.launch(fn, Math.max(1, Math.min(rows, sms * perSm * 2)), threads);
      } else {
        dev.launch(
          dev.kernel("softmax", softmaxKernel(log, "online", dtype)),
          Math.max(1, Math.min(rows, sms * 2)),
          1024,
        );
      }
    } else {
      p.u32(2, outer);
      p.u32(3, L);
      p.u32(4, inner);
      dev.launch(dev.kernel("softmax", softmaxKernel(log, "col", dtype)), dev.grid(outer * inner), 256);
    }
  });
}

/**
 * The inclusive prefix sum of `x` along `axis` into a new buffer of `dtype`.
 *
 * @example
 * ```ts
 * import { cumsum } from "./reduce.ts";
 * // const c = cumsum(dev, view, 0, "float32");
 * ```
 */
export function cumsum(dev: CudaDevice, x: View, axis: number, dtype: DType): CudaBuffer {
  return alongAxis(dev, "cumsum", x, axis, dtype, (L, outer, inner) => {
    const p = dev.params;
    if (inner === 1) {
      p.u32(2, outer);
      p.u32(3, L);
      const threads = Math.min(256, Math.max(32, Math.ceil(Math.ceil(L / 4) / 32) * 32));
      dev.launch(dev.kernel("scan", scanKernel(true, dtype)), Math.max(1, Math.min(outer, dev.maxBlocks * 2)), threads);
    } else {
      p.u32(2, outer);
      p.u32(3, L);
      p.u32(4, inner);
      dev.launch(dev.kernel("scan", scanKernel(false, dtype)), dev.grid(outer * inner), 256);
    }
  });
}

/**
 * A new buffer of `dtype` for an op along `axis` of `x`, filled by `launch` (given the axis length
 * and the element counts before and after it) from a contiguous copy of `x` in `dtype` (kernel
 * parameters 0 and 1: input and output).
 */
function alongAxis(
  dev: CudaDevice,
  op: string,
  x: View,
  axis: number,
  dtype: DType,
  launch: (length: number, outer: number, inner: number) => void,
): CudaBuffer {
  const ax = normalizeAxis(op, axis, x.shape.length);
  const n = sizeOf(x.shape);
  const out = dev.newBuffer(n, dtype);
  if (n === 0) return out;
  const a = operand(dev, x, dtype, op);
  const c = contiguous(dev, a.raw);
  dev.params.ptr(0, c.raw.ptr);
  dev.params.ptr(1, out.ptr);
  launch(x.shape[ax], sizeOf(x.shape.slice(0, ax)), sizeOf(x.shape.slice(ax + 1)));
  dev.release(c.temp);
  dev.release(a.temp);
  return out;
}

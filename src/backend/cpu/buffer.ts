/**
 * Storage of the CPU backend: a buffer is a typed array of one dtype, and an operand is a typed
 * array of numbers plus the strides and offset to read it with. bfloat16 is stored as raw bits in
 * a `Uint16Array` and widened to float32 before any arithmetic (see {@linkcode operandOf}).
 *
 * Buffers live in the shared WebAssembly heap (`heap.ts`), where the SIMD kernels reach them on
 * every thread without copies; freeing a buffer returns its memory to the heap at once.
 *
 * @module
 */

import type { Backend, DeviceBuffer, View } from "../../tensor/backend.ts";
import { type DType, fromBFloat16Bits, itemSize, toBFloat16Bits } from "../../tensor/dtype.ts";
import { DeviceError } from "../../tensor/errors.ts";
import { heapAddress, heapAlloc, heapFree, heapOwn } from "./heap.ts";

/** A heap copy of `data` (the array itself where the heap cannot hold it). */
function intoHeap(data: StorageArray): StorageArray {
  const copy = heapAlloc(data.constructor as Float64ArrayConstructor, data.length, false);
  if (heapAddress(copy) < 0) return data;
  copy.set(data as Float64Array);
  return copy;
}
import { spanOf } from "./strided.ts";

/**
 * Typed arrays whose elements read and write as plain numbers (every dtype but bfloat16).
 *
 * @example
 * ```ts
 * import type { NumArray } from "./buffer.ts";
 * const a: NumArray = new Int32Array(4);
 * ```
 */
export type NumArray = Float32Array | Float64Array | Int32Array;

/**
 * The backing array of a CPU buffer (bfloat16 is `Uint16Array` raw bits).
 *
 * @example
 * ```ts
 * import type { StorageArray } from "./buffer.ts";
 * const bf16: StorageArray = new Uint16Array([0x3f80]); // 1.0 as bfloat16
 * ```
 */
export type StorageArray = NumArray | Uint16Array;

/** An empty array of each dtype: what a freed buffer holds (no element can be written to it). */
const EMPTY: Readonly<Record<DType, StorageArray>> = {
  float32: new Float32Array(0),
  float64: new Float64Array(0),
  int32: new Int32Array(0),
  bfloat16: new Uint16Array(0),
};

/**
 * A CPU buffer: `size` elements of `dtype` in a typed array.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * const cpu = new CpuBackend();
 * const buf = cpu.fromHost([1, 2, 3], "float32");
 * buf.size; // 3
 * ```
 */
export class CpuBuffer implements DeviceBuffer {
  /** The backend that owns this buffer. */
  readonly backend: Backend;
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
  /** Elements (bfloat16 as raw bits); replaced by an empty array once freed. */
  data: StorageArray;
  /** Whether `free` has released this buffer. */
  freed = false;

  /**
   * Wraps `data` (its length is the size) as a buffer of `dtype` owned by `backend`; an array
   * outside the heap is copied into it (where the heap can hold it) so the kernels reach it.
   */
  constructor(backend: Backend, dtype: DType, data: StorageArray) {
    this.backend = backend;
    this.dtype = dtype;
    this.size = data.length;
    this.data = heapAddress(data) < 0 && data.length > 0 ? intoHeap(data) : data;
  }

  /** A tensor's storage owns the buffer now (and frees it): the heap need not watch its array. */
  adopted(): void {
    heapOwn(this.data);
  }

  /** Bytes of storage this buffer accounts for. */
  get bytes(): number {
    return this.size * itemSize(this.dtype);
  }

  /** Marks the buffer freed and returns its memory to the heap (once; later calls do nothing). */
  release(): void {
    if (this.freed) return;
    this.freed = true;
    heapFree(this.data);
    this.data = EMPTY[this.dtype];
  }
}

/**
 * A typed array of numbers with the strides and offset that read a view of it.
 *
 * @example
 * ```ts
 * import type { Operand } from "./buffer.ts";
 * const op: Operand = { data: new Float32Array([1, 2]), offset: 0, strides: [1] };
 * ```
 */
export interface Operand {
  /** Elements, readable as numbers. */
  readonly data: NumArray;
  /** Element index of the first element of the view. */
  readonly offset: number;
  /** Element steps of each axis. */
  readonly strides: readonly number[];
}

/**
 * Allocates storage for `n` elements of `dtype` in the heap, zeroed unless `zero` is false (for a
 * caller that writes every element).
 *
 * @example
 * ```ts
 * import { allocStorage } from "./buffer.ts";
 * allocStorage("bfloat16", 2); // Uint16Array(2)
 * ```
 */
export function allocStorage(dtype: DType, n: number, zero = true): StorageArray {
  switch (dtype) {
    case "float64":
      return heapAlloc(Float64Array, n, zero);
    case "int32":
      return heapAlloc(Int32Array, n, zero);
    case "float32":
      return heapAlloc(Float32Array, n, zero);
    case "bfloat16":
      return heapAlloc(Uint16Array, n, zero);
  }
}

/**
 * Allocates an array in the heap to compute results of `dtype` in: the storage array itself, or
 * a float32 scratch for bfloat16 (turn it into storage with {@linkcode finishCompute}). Its
 * elements are not cleared: the caller writes every one of them.
 *
 * @example
 * ```ts
 * import { allocCompute } from "./buffer.ts";
 * allocCompute("bfloat16", 2); // Float32Array(2)
 * ```
 */
export function allocCompute(dtype: DType, n: number): NumArray {
  switch (dtype) {
    case "float64":
      return heapAlloc(Float64Array, n, false);
    case "int32":
      return heapAlloc(Int32Array, n, false);
    case "float32":
    case "bfloat16":
      return heapAlloc(Float32Array, n, false);
  }
}

/**
 * Rounds numbers to bfloat16 bits (round to nearest even, through float32).
 *
 * @example
 * ```ts
 * import { encodeBFloat16 } from "./buffer.ts";
 * encodeBFloat16(new Float32Array([1]))[0]; // 0x3f80
 * ```
 */
export function encodeBFloat16(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const n = src.length;
  for (let i = 0; i < n; i++) dst[i] = toBFloat16Bits(src[i]);
  return dst;
}

/**
 * Widens bfloat16 bits to float32 (exact).
 *
 * @example
 * ```ts
 * import { decodeBFloat16 } from "./buffer.ts";
 * decodeBFloat16(new Uint16Array([0x3f80]))[0]; // 1
 * ```
 */
export function decodeBFloat16(
  src: Uint16Array,
  start = 0,
  end = src.length,
  dst: Float32Array = new Float32Array(end - start),
): Float32Array {
  for (let i = start; i < end; i++) dst[i - start] = fromBFloat16Bits(src[i]);
  return dst;
}

/**
 * Turns an array computed by {@linkcode allocCompute} into the storage of `dtype` (for
 * bfloat16, rounded into new storage, and the scratch is released).
 *
 * @example
 * ```ts
 * import { finishCompute } from "./buffer.ts";
 * finishCompute(new Float32Array([1]), "bfloat16"); // Uint16Array [0x3f80]
 * ```
 */
export function finishCompute(data: NumArray, dtype: DType): StorageArray {
  if (dtype !== "bfloat16") return data;
  const bits = encodeBFloat16(data, heapAlloc(Uint16Array, data.length, false));
  heapFree(data);
  return bits;
}

/**
 * The CPU buffer behind a view, checked to be live and owned by a CPU backend.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * import { bufferOf } from "./buffer.ts";
 * const cpu = new CpuBackend();
 * bufferOf(cpu.full(2, 0, "float32"), "add").size; // 2
 * ```
 */
export function bufferOf(buffer: DeviceBuffer, op: string): CpuBuffer {
  if (!(buffer instanceof CpuBuffer)) {
    throw new DeviceError(op, `buffer belongs to the ${buffer.backend?.name ?? "unknown"} backend, not cpu`);
  }
  if (buffer.freed) throw new DeviceError(op, "buffer was used after it was freed");
  return buffer;
}

/**
 * An operand that reads `view` as numbers. Non-bfloat16 views read their buffer in place; a
 * bfloat16 view decodes just the span of elements it can reach into a float32 scratch.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * import { operandOf } from "./buffer.ts";
 * const cpu = new CpuBackend();
 * const buffer = cpu.fromHost([1, 2], "bfloat16");
 * operandOf({ buffer, shape: [2], strides: [1], offset: 0 }, "exp").data; // Float32Array [1, 2]
 * ```
 */
export function operandOf(view: View, op: string): Operand {
  const buf = bufferOf(view.buffer, op);
  const data = buf.data;
  if (!(data instanceof Uint16Array)) return { data, offset: view.offset, strides: view.strides };
  const [lo, hi] = spanOf(view.shape, view.strides, view.offset);
  if (hi < lo) return { data: new Float32Array(0), offset: 0, strides: view.strides };
  return { data: decodeBFloat16(data, lo, hi + 1), offset: view.offset - lo, strides: view.strides };
}

/** Zero strides by rank, shared by the constant operands. */
const zeroStrides: (readonly number[])[] = [];
/** The one-element arrays (float32, float64) of constant operands 0 and 1. */
const constants = [[new Float32Array(1), new Float64Array(1)], [new Float32Array(1), new Float64Array(1)]] as const;

/**
 * An operand for a constant: one element with every stride 0. The value is first rounded to
 * `dtype` (the dtype the operation computes in), so `x * 0.1` on float32 uses `0.1` as a float32.
 * The operand's array is reused by the next constant of the same `slot`: an op with two constant
 * operands gives them slots 0 and 1, and reads them before it asks for another.
 *
 * @example
 * ```ts
 * import { constantOperand } from "./buffer.ts";
 * constantOperand(2, 3, "float32").strides; // [0, 0, 0]
 * ```
 */
export function constantOperand(value: number, rank: number, dtype: DType, slot: 0 | 1 = 0): Operand {
  const data = constants[slot][dtype === "float32" || dtype === "bfloat16" ? 0 : 1];
  data[0] = value;
  return { data, offset: 0, strides: zeroStrides[rank] ??= Object.freeze(new Array<number>(rank).fill(0)) };
}

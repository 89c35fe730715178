/**
 * The CPU backend: every primitive of the `Backend` interface on typed arrays that live in one
 * shared WebAssembly heap (`heap.ts`); the hot loops run as WebAssembly SIMD kernels on every
 * thread (`threads.ts`, `wasm/`), the rest in TypeScript.
 *
 * float32, float64 and int32 buffers are `Float32Array`, `Float64Array` and `Int32Array`;
 * bfloat16 buffers are `Uint16Array` raw bits, widened to float32 for arithmetic and rounded
 * (to nearest even) when stored. Work happens synchronously, so `synchronize()` has nothing to
 * wait for. Memory statistics count the bytes of live buffers; there is no cache.
 *
 * @module
 */

import type {
  Backend,
  BandedOperator,
  BinaryOp,
  DeviceBuffer,
  LinalgPrimitives,
  MemoryStats,
  OptimPrimitives,
  ReduceOp,
  SpectralPrimitives,
  UnaryOp,
  View,
} from "../../tensor/backend.ts";
import { type DType, fromBFloat16Bits, type HostArray, toBFloat16Bits } from "../../tensor/dtype.ts";
import { DeviceError, DTypeError } from "../../tensor/errors.ts";
import type { FusedPrimitives } from "../../tensor/fused_primitives.ts";
import {
  allocCompute,
  allocStorage,
  bufferOf,
  constantOperand,
  CpuBuffer,
  finishCompute,
  type NumArray,
  type Operand,
  operandOf,
  type StorageArray,
} from "./buffer.ts";
import { binaryInto, copyStrided, unaryInto, whereInto } from "./elementwise.ts";
import { fftInto, irfftInto, rfftInto } from "./fft_ops.ts";
import { gatherInto, scatterAddInto } from "./indexing.ts";
import { CpuLinalg } from "./linalg.ts";
import { matmulBatch } from "./matmul.ts";
import { HostFused } from "./fused.ts";
import { CpuSpectral } from "./spectral.ts";
import { CpuOptim } from "./optim.ts";
import { fillRandom } from "./random.ts";
import { argReduceInto, cumsumInto, reducedShape, reduceInto, softmaxInto } from "./reduce.ts";
import { stencilInto } from "./stencil.ts";
import { heapFree } from "./heap.ts";
import { threadCount } from "./threads.ts";
import { Odometer, spanOf } from "./strided.ts";
import { contiguousStrides, sizeOf } from "../../tensor/shape.ts";

export { CpuBuffer } from "./buffer.ts";

type FloatArray = Float32Array | Float64Array;

/** An operand whose data is exactly of the array class `ctor` (converting only the reachable span). */
function operandAs(view: View, op: string, ctor: Float32ArrayConstructor | Float64ArrayConstructor): {
  data: FloatArray;
  offset: number;
  strides: readonly number[];
} {
  const o = operandOf(view, op);
  if (o.data instanceof ctor) return o as { data: FloatArray; offset: number; strides: readonly number[] };
  const [lo, hi] = spanOf(view.shape, o.strides, o.offset);
  if (hi < lo) return { data: new ctor(0), offset: 0, strides: o.strides };
  return { data: ctor.from(o.data.subarray(lo, hi + 1)), offset: o.offset - lo, strides: o.strides };
}

/**
 * The CPU implementation of {@linkcode Backend}.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * const cpu = new CpuBackend();
 * const buf = cpu.fromHost([1, 2, 3, 4], "float32");
 * const x = { buffer: buf, shape: [2, 2], strides: [2, 1], offset: 0 };
 * const y = cpu.unary("exp", x, "float32");
 * cpu.toHost({ buffer: y, shape: [2, 2], strides: [2, 1], offset: 0 }); // Float32Array [e, e², e³, e⁴]
 * ```
 */
export class CpuBackend implements Backend {
  /** Always "cpu". */
  readonly name = "cpu";
  /** Human description. */
  readonly description: string;
  #current = 0;
  #peak = 0;
  /** Batched dense linear algebra (see `linalg.ts`). */
  readonly linalg: LinalgPrimitives = new CpuLinalg((data, dtype) => this.#wrap(dtype, data));
  /** Fused optimiser updates (see `optim.ts`). */
  readonly optim: OptimPrimitives = new CpuOptim();
  /** The language-model primitives on the host (see `fused.ts`). */
  readonly fused: FusedPrimitives = new HostFused(this);
  /** The Fourier layer's fused channel mixing (see `spectral.ts`). */
  readonly spectral: SpectralPrimitives = new CpuSpectral((data, dtype) => this.#finish(data, dtype));

  /** Creates a CPU backend with empty memory statistics. */
  constructor() {
    const where = typeof Deno !== "undefined" ? `${Deno.build.arch}-${Deno.build.os}` : "unknown platform";
    this.description = `CPU (WebAssembly SIMD kernels on ${threadCount()} threads, ${where})`;
  }

  #wrap(dtype: DType, data: StorageArray): CpuBuffer {
    const buf = new CpuBuffer(this, dtype, data);
    this.#current += buf.bytes;
    if (this.#current > this.#peak) this.#peak = this.#current;
    return buf;
  }

  #finish(data: NumArray, dtype: DType): CpuBuffer {
    return this.#wrap(dtype, finishCompute(data, dtype));
  }

  /** An operand for a view or a constant (in the constant slot `slot`); constants are rounded to `computeDType`. */
  #operand(x: View | number, rank: number, computeDType: DType, op: string, slot: 0 | 1): Operand {
    return typeof x === "number" ? constantOperand(x, rank, computeDType, slot) : operandOf(x, op);
  }

  /** Uploads host data. A `Uint16Array` is always bfloat16 raw bits; other arrays are values. */
  fromHost(data: HostArray | readonly number[], dtype: DType): DeviceBuffer {
    const n = data.length;
    const out = allocStorage(dtype, n, false);
    if (data instanceof Uint16Array) {
      if (out instanceof Uint16Array) out.set(data);
      else for (let i = 0; i < n; i++) out[i] = fromBFloat16Bits(data[i]);
    } else if (out instanceof Uint16Array) {
      for (let i = 0; i < n; i++) out[i] = toBFloat16Bits(data[i]);
    } else {
      out.set(data); // each element converted as an assignment would
    }
    return this.#wrap(dtype, out);
  }

  /** Reads a view to a new contiguous array (bfloat16 as float32). */
  toHost(view: View): Float32Array | Float64Array | Int32Array {
    const buf = bufferOf(view.buffer, "toHost");
    const n = sizeOf(view.shape);
    const out: NumArray = buf.dtype === "float64"
      ? new Float64Array(n)
      : buf.dtype === "int32"
      ? new Int32Array(n)
      : new Float32Array(n);
    copyStrided(
      { data: buf.data, offset: view.offset, strides: view.strides },
      { data: out, offset: 0, strides: contiguousStrides(view.shape) },
      view.shape,
    );
    return out;
  }

  /** A buffer of `size` copies of `value`. */
  full(size: number, value: number, dtype: DType): DeviceBuffer {
    const out = allocStorage(dtype, size, false);
    out.fill(dtype === "bfloat16" ? toBFloat16Bits(value) : value);
    return this.#wrap(dtype, out);
  }

  /** `start + i * step` for i in [0, size), computed in float64 and stored in `dtype`. */
  arange(size: number, start: number, step: number, dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, size);
    for (let i = 0; i < size; i++) out[i] = start + i * step;
    return this.#finish(out, dtype);
  }

  /** Philox4x32-10 uniform (0, 1) or standard normal numbers; see `random.ts` for the exact stream. */
  random(kind: "uniform" | "normal", size: number, seed: number, offset: number, dtype: DType): DeviceBuffer {
    if (dtype === "int32") throw new DTypeError("random", "int32 random numbers are not supported; use a float dtype");
    const out = allocCompute(dtype, size);
    fillRandom(kind, out, seed, offset);
    return this.#finish(out, dtype);
  }

  /** Copies `src` into the window `dst`, converting dtype (float to int32 truncates toward zero). */
  copy(src: View, dst: View): void {
    const s = bufferOf(src.buffer, "copy");
    const d = bufferOf(dst.buffer, "copy");
    let srcData: StorageArray = s.data;
    let srcOffset = src.offset;
    let srcStrides: readonly number[] = src.strides;
    if (s === d) {
      // Source and destination share storage: snapshot the source first so overlap is harmless.
      const n = sizeOf(src.shape);
      const tmp = allocStorage(s.dtype, n, false);
      const strides = contiguousStrides(src.shape);
      copyStrided(
        { data: s.data, offset: src.offset, strides: src.strides },
        { data: tmp, offset: 0, strides },
        src.shape,
      );
      srcData = tmp;
      srcOffset = 0;
      srcStrides = strides;
    }
    copyStrided(
      { data: srcData, offset: srcOffset, strides: srcStrides },
      { data: d.data, offset: dst.offset, strides: dst.strides },
      dst.shape,
    );
    if (srcData !== s.data) heapFree(srcData);
  }

  /** `op(x)` elementwise into a new contiguous buffer of `dtype`. */
  unary(op: UnaryOp, x: View, dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, sizeOf(x.shape));
    unaryInto(op, operandOf(x, op), x.shape, out);
    return this.#finish(out, dtype);
  }

  /** `op(a, b)` elementwise; numbers are constants. int32 output wraps like C (`mul`, `pow` too). */
  binary(op: BinaryOp, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer {
    const computeDType = typeof a !== "number" ? a.buffer.dtype : typeof b !== "number" ? b.buffer.dtype : dtype;
    const out = allocCompute(dtype, sizeOf(shape));
    const rank = shape.length;
    binaryInto(
      op,
      this.#operand(a, rank, computeDType, op, 0),
      this.#operand(b, rank, computeDType, op, 1),
      shape,
      out,
      dtype === "int32",
    );
    return this.#finish(out, dtype);
  }

  /** `cond ? a : b` elementwise (cond nonzero picks `a`); numbers are constants. */
  where(cond: View, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, sizeOf(shape));
    const rank = shape.length;
    whereInto(
      operandOf(cond, "where"),
      this.#operand(a, rank, dtype, "where", 0),
      this.#operand(b, rank, dtype, "where", 1),
      shape,
      out,
    );
    return this.#finish(out, dtype);
  }

  /** Reduces over `axes` (kept as extent 1); float sums and products accumulate in float64. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, sizeOf(reducedShape(x.shape, axes)));
    reduceInto(op, operandOf(x, "reduce"), x.shape, axes, out, dtype === "int32");
    return this.#finish(out, dtype);
  }

  /** int32 index of the first max/min along `axis` (kept as extent 1). */
  argReduce(op: "argmax" | "argmin", x: View, axis: number): DeviceBuffer {
    const out = new Int32Array(sizeOf(reducedShape(x.shape, [axis])));
    argReduceInto(op, operandOf(x, op), x.shape, axis, out);
    return this.#wrap("int32", out);
  }

  /** Softmax or log-softmax along `axis` with the maximum subtracted, summed and scaled in float64. */
  softmax(x: View, axis: number, log: boolean, dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, sizeOf(x.shape));
    softmaxInto(operandOf(x, log ? "logSoftmax" : "softmax"), x.shape, axis, log, out);
    return this.#finish(out, dtype);
  }

  /** Inclusive prefix sum along `axis`. */
  cumsum(x: View, axis: number, dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, sizeOf(x.shape));
    cumsumInto(operandOf(x, "cumsum"), x.shape, axis, out, dtype === "int32");
    return this.#finish(out, dtype);
  }

  /** Batched matrix product over equal (broadcast) batch shapes; bfloat16 computes in float32. */
  matmul(a: View, b: View, dtype: DType): DeviceBuffer {
    const r = a.shape.length;
    const m = a.shape[r - 2];
    const k = a.shape[r - 1];
    const n = b.shape[r - 1];
    const batch = a.shape.slice(0, r - 2);
    const count = sizeOf(batch);
    const mn = m * n;
    const out = allocCompute(dtype, count * mn);
    if (count === 0 || mn === 0) return this.#finish(out, dtype);
    if (out instanceof Int32Array) {
      const A = operandOf(a, "matmul");
      const B = operandOf(b, "matmul");
      const w = new Odometer(batch, [A.strides.slice(0, r - 2), B.strides.slice(0, r - 2)], [A.offset, B.offset]);
      const [ars, acs] = A.strides.slice(r - 2);
      const [brs, bcs] = B.strides.slice(r - 2);
      for (let t = 0; t < count; t++) {
        const ao = w.pos[0];
        const bo = w.pos[1];
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) {
              s = (s + Math.imul(A.data[ao + i * ars + p * acs], B.data[bo + p * brs + j * bcs])) | 0;
            }
            out[t * mn + i * n + j] = s;
          }
        }
        w.next();
      }
      return this.#finish(out, dtype);
    }
    const ctor = out instanceof Float64Array ? Float64Array : Float32Array;
    const A = operandAs(a, "matmul", ctor);
    const B = operandAs(b, "matmul", ctor);
    let aOffsets = [A.offset], bOffsets = [B.offset];
    if (r > 2) {
      const w = new Odometer(batch, [A.strides.slice(0, r - 2), B.strides.slice(0, r - 2)], [A.offset, B.offset]);
      aOffsets = new Array<number>(count), bOffsets = new Array<number>(count);
      for (let t = 0; t < count; t++, w.next()) [aOffsets[t], bOffsets[t]] = w.pos;
    }
    const [ars, acs, brs, bcs] = [A.strides[r - 2], A.strides[r - 1], B.strides[r - 2], B.strides[r - 1]];
    matmulBatch(A.data, aOffsets, ars, acs, B.data, bOffsets, brs, bcs, out, m, n, k);
    return this.#finish(out, dtype);
  }

  /** torch.gather along `axis`; out-of-range indices throw `ArgumentError`. */
  gather(x: View, axis: number, index: View, dtype: DType): DeviceBuffer {
    if (index.buffer.dtype !== "int32") {
      throw new DTypeError("gather", `index must be int32, got ${index.buffer.dtype}`);
    }
    const out = allocCompute(dtype, sizeOf(index.shape));
    gatherInto(operandOf(x, "gather"), x.shape, axis, operandOf(index, "gather"), index.shape, out);
    return this.#finish(out, dtype);
  }

  /** torch.scatter_add into zeros of `shape` along `axis`; out-of-range indices throw `ArgumentError`. */
  scatterAdd(shape: readonly number[], axis: number, index: View, src: View, dtype: DType): DeviceBuffer {
    if (index.buffer.dtype !== "int32") {
      throw new DTypeError("scatterAdd", `index must be int32, got ${index.buffer.dtype}`);
    }
    const size = sizeOf(shape);
    const out = (dtype === "bfloat16" ? allocCompute(dtype, size).fill(0) : allocStorage(dtype, size)) as NumArray;
    scatterAddInto(shape, axis, operandOf(index, "scatterAdd"), operandOf(src, "scatterAdd"), index.shape, out);
    return this.#finish(out, dtype);
  }

  /** Complex DFT along `axis` (complex pairs in a trailing axis of 2); inverse divides by n. */
  fft(x: View, axis: number, inverse: boolean, dtype: DType): DeviceBuffer {
    const out = allocCompute(dtype, sizeOf(x.shape));
    fftInto(operandOf(x, "fft"), x.shape, axis, inverse, out);
    return this.#finish(out, dtype);
  }

  /** Real-to-complex DFT along `axis`: n reals give floor(n/2)+1 complex pairs. */
  rfft(x: View, axis: number, dtype: DType): DeviceBuffer {
    const h = Math.floor(x.shape[axis] / 2) + 1;
    const out = allocCompute(dtype, sizeOf(x.shape.map((v, d) => (d === axis ? h : v))) * 2);
    if (x.shape[axis] === 0) out.fill(0);
    else rfftInto(operandOf(x, "rfft"), x.shape, axis, out);
    return this.#finish(out, dtype);
  }

  /** Complex-to-real inverse DFT along `axis` producing `n` reals (numpy.fft.irfft). */
  irfft(x: View, axis: number, n: number, dtype: DType): DeviceBuffer {
    const rank = x.shape.length - 1;
    const outShape = x.shape.slice(0, rank).map((v, d) => (d === axis ? n : v));
    const out = allocCompute(dtype, sizeOf(outShape));
    irfftInto(operandOf(x, "irfft"), x.shape, axis, n, out);
    return this.#finish(out, dtype);
  }

  /** The banded operator `op` along `axis` (+ `add`), summed in float64 and rounded once (see `stencil.ts`). */
  stencil(x: View, axis: number, op: BandedOperator, add: View | null, dtype: DType): DeviceBuffer {
    if (dtype === "int32") throw new DTypeError("stencil", "int32 output; use a float dtype");
    const out = allocCompute(dtype, sizeOf(x.shape));
    stencilInto(op, operandOf(x, "stencil"), x.shape, axis, add ? operandOf(add, "stencil") : null, out);
    return this.#finish(out, dtype);
  }

  /** Bytes of live buffers, the peak since `resetPeak()`, and 0 cached. */
  memory(): MemoryStats {
    return { current: this.#current, peak: this.#peak, cached: 0 };
  }

  /** Resets the peak to the current byte count. */
  resetPeak(): void {
    this.#peak = this.#current;
  }

  /** Releases a buffer now; freeing it again does nothing. */
  free(buffer: DeviceBuffer): void {
    if (!(buffer instanceof CpuBuffer) || buffer.backend !== this) {
      throw new DeviceError(
        "free",
        `buffer belongs to the ${buffer.backend?.name ?? "unknown"} backend, not this cpu backend`,
      );
    }
    if (buffer.freed) return;
    this.#current -= buffer.bytes;
    buffer.release();
  }

  /** Nothing is queued on the CPU; returns at once. */
  synchronize(): void {}
}

/**
 * The CUDA backend: every primitive of {@link Backend} on one device, through Deno FFI to the
 * driver API, NVRTC-compiled kernels (kernels/*.cu), cuBLAS and cuFFT.
 *
 * - One primary context and one non-blocking stream; every launch and copy is queued on it.
 *   `toHost` (and `synchronize`) are the only points that wait for the device.
 * - Shapes and strides stay on the host and travel as kernel parameters; op dispatch never reads
 *   device memory.
 * - Memory comes from a caching allocator (`allocator.ts`); `free` returns a buffer's
 *   block to it (a second `free` is a no-op).
 * - float32 matmuls use full float32 unless `allowTF32` is set.
 *
 * The primitives live by op family beside this file (`transfer.ts`, `elementwise.ts`,
 * `reduce.ts`, `matmul.ts`, `indexing.ts`, `fft.ts`, `stencil.ts`, `optim.ts`, `linalg.ts`), each
 * a function of the shared {@link CudaDevice} (`device.ts`); this class puts them together.
 *
 * @module
 */

import type {
  Backend,
  BandedOperator,
  BinaryOp,
  DeviceBuffer,
  DeviceCounts,
  LinalgPrimitives,
  MemoryStats,
  OptimPrimitives,
  ReduceOp,
  SpectralPrimitives,
  UnaryOp,
  View,
} from "../../tensor/backend.ts";
import type { DType, HostArray } from "../../tensor/dtype.ts";
import { DeviceError, PatchworkError } from "../../tensor/errors.ts";
import type { FusedPrimitives } from "../../tensor/fused_primitives.ts";
import type { AllocatorStats } from "./allocator.ts";
import {
  type KernelCacheStats,
  type KernelFamily,
  type KernelSources,
  loadKernelSources,
  loadKernelSourcesSync,
} from "./compiler.ts";
import type { Cublas } from "./cublas.ts";
import { CudaBuffer, CudaDevice } from "./device.ts";
import type { Driver } from "./driver.ts";
import { binary, elementwiseKernelNames, unary, where } from "./elementwise.ts";
import { fft, irfft, rfft } from "./fft.ts";
import { CudaFused, fusedKernelNames } from "./fused.ts";
import { gather, indexingKernelNames, scatterAdd } from "./indexing.ts";
import { CudaLinalg } from "./linalg.ts";
import { matmul } from "./matmul.ts";
import { adam, optimKernelNames } from "./optim.ts";
import type { KernelParams } from "./params.ts";
import { argReduce, cumsum, reduce, reduceKernelNames, softmax } from "./reduce.ts";
import { spectralKernelNames, spectralMix, spectralWeightGrad } from "./spectral.ts";
import { stencil, stencilKernelNames } from "./stencil.ts";
import {
  arange,
  copy,
  fromHost,
  full,
  materialize,
  memset0,
  operand,
  random,
  toHost,
  transferKernelNames,
} from "./transfer.ts";

export { CudaBuffer } from "./device.ts";

/**
 * Options of {@link CudaBackend} and {@link createCudaBackend}.
 *
 * @example
 * ```ts
 * import type { CudaBackendOptions } from "./backend.ts";
 * const opts: CudaBackendOptions = { device: 0, cacheDir: null };
 * ```
 */
export interface CudaBackendOptions {
  /** Device ordinal (default `$PATCHWORK_CUDA_DEVICE` or 0). */
  device?: number;
  /** Kernel sources (default: read from kernels/ next to this module). */
  sources?: KernelSources;
  /** Where kernel sources live (default: `../../../kernels/` relative to this module). */
  kernelsUrl?: URL;
  /** Kernel cache directory; `null` disables the disk cache (default: see compiler.ts). */
  cacheDir?: string | null;
  /** Parallel compile threads for {@link createCudaBackend} (default: min(8, cores)). */
  compileThreads?: number;
}

/**
 * Low-level handles for benchmarks and interop; using them bypasses every check.
 *
 * @example
 * ```ts
 * import type { CudaRaw } from "./backend.ts";
 * // const raw: CudaRaw = cuda.raw; raw.launch(raw.kernel("copy", "fill_u64"), 1, 256);
 * ```
 */
export interface CudaRaw {
  /** The driver library. */
  readonly driver: Driver;
  /** The stream every launch goes to. */
  readonly stream: Deno.PointerValue;
  /** The cuBLAS library and the backend's handle (bound to the stream). */
  cublas(): { lib: Cublas; handle: Deno.PointerValue };
  /** The function handle of kernel `name` in kernels/`family`.cu. */
  kernel(family: KernelFamily, name: string): Deno.PointerValue;
  /** The parameter block the next `launch` passes. */
  readonly params: KernelParams;
  /** Launches `fn` on the stream with `blocks` x `threads` and the current parameters. */
  launch(fn: Deno.PointerValue, blocks: number, threads: number): void;
}

/**
 * The CUDA backend. Construct with {@link createCudaBackend} (async: reads kernel sources with
 * `fetch` when needed and compiles every kernel up front, in parallel) or `new CudaBackend()`
 * (sync: kernels are local files, compiled at first use of each family).
 *
 * @example
 * ```ts
 * import { createCudaBackend } from "./backend.ts";
 * // const cuda = await createCudaBackend();
 * // const x = cuda.fromHost(new Float32Array([1, 2, 3]), "float32");
 * // cuda.toHost({ buffer: cuda.unary("exp", { buffer: x, shape: [3], strides: [1], offset: 0 }, "float32"),
 * //   shape: [3], strides: [1], offset: 0 });
 * ```
 */
export class CudaBackend implements Backend {
  /** Always "cuda". */
  readonly name = "cuda";
  /** Device name, compute capability, memory and multiprocessor count. */
  readonly description: string;
  /** Device ordinal. */
  readonly device: number;
  /** Compute capability as major*10+minor (90 on an H100). */
  readonly arch: number;
  /** Streaming multiprocessors. */
  readonly multiprocessors: number;
  /** Device memory in bytes. */
  readonly totalMemory: number;
  /**
   * Allow TF32 tensor cores for float32 matmuls (about 10 mantissa bits of product precision,
   * several times faster). Off by default.
   */
  allowTF32 = false;
  /** Batched dense linear algebra (kernels/linalg.cu; see {@link CudaLinalg}). */
  readonly linalg: LinalgPrimitives;
  /** Fused optimiser updates (kernels/optim.cu). */
  readonly optim: OptimPrimitives = {
    adam: (param, grad, expAvg, expAvgSq, copyTo, hyper) =>
      adam(this.#dev, param, grad, expAvg, expAvgSq, copyTo, hyper),
  };
  /** Fused language-model primitives (kernels/attention.cu, norms.cu, rotary.cu, swiglu.cu, cross_entropy.cu). */
  readonly fused: FusedPrimitives;
  /** The Fourier layer's fused channel mixing (kernels/spectral.cu). */
  readonly spectral: SpectralPrimitives = {
    spectralMix: (x, weight, modes, adjoint, dtype) => spectralMix(this.#dev, x, weight, modes, adjoint, dtype),
    spectralWeightGrad: (a, d, modes, dtype) => spectralWeightGrad(this.#dev, a, d, modes, dtype),
  };
  readonly #dev: CudaDevice;

  /** Opens the driver, the device's primary context, a stream, and NVRTC. */
  constructor(options: CudaBackendOptions = {}) {
    const dev = new CudaDevice(
      this,
      options.device,
      () => options.sources ?? loadKernelSourcesSync(options.kernelsUrl),
      options.cacheDir,
    );
    this.#dev = dev;
    this.fused = new CudaFused(dev);
    this.device = dev.ordinal;
    this.arch = dev.arch;
    this.multiprocessors = dev.multiprocessors;
    this.totalMemory = dev.totalMemory;
    this.description = dev.description;
    this.linalg = new CudaLinalg({
      alloc: (size, dtype) => dev.newBuffer(size, dtype),
      free: (buffer) => this.free(buffer),
      operand: (view, dtype, op) => operand(dev, view, dtype, op),
      contiguous: (raw) => materialize(dev, raw, raw.dtype),
      kernel: (name) => dev.kernel("linalg", name),
      launch: (fn, blocks, threads, shared) => dev.launch(fn, blocks, threads, shared),
      params: dev.params,
      memset0: (ptr, bytes) => memset0(dev, ptr, bytes),
      maxSharedBytes: dev.maxShared,
      multiprocessors: dev.multiprocessors,
    });
  }

  /** Compiles (or reads from the cache) and loads every kernel family, compiling in parallel. */
  compileAll(threads?: number): Promise<void> {
    return this.#dev.compileAll(threads);
  }

  /** Kernel cache counters (disk hits, NVRTC compiles, compile time). */
  get kernelCache(): KernelCacheStats {
    return { ...this.#dev.compiler.stats };
  }

  // ---------------------------------------------------------------- Backend: data movement

  /** Uploads host data (bfloat16 from raw `Uint16Array` bits or from numbers). */
  fromHost(data: HostArray | readonly number[], dtype: DType): DeviceBuffer {
    return fromHost(this.#dev, data, dtype);
  }

  /** Reads a view to a new host array; waits for the stream. */
  toHost(view: View): Float32Array | Float64Array | Int32Array {
    return toHost(this.#dev, view);
  }

  /** A new buffer filled with `value`. */
  full(size: number, value: number, dtype: DType): DeviceBuffer {
    return full(this.#dev, size, value, dtype);
  }

  /** `start + i * step`. */
  arange(size: number, start: number, step: number, dtype: DType): DeviceBuffer {
    return arange(this.#dev, size, start, step, dtype);
  }

  /** Philox4x32-10 uniform or normal numbers, identical to the CPU backend's. */
  random(kind: "uniform" | "normal", size: number, seed: number, offset: number, dtype: DType): DeviceBuffer {
    return random(this.#dev, kind, size, seed, offset, dtype);
  }

  /** Copies `src` into the window `dst`, converting dtype. */
  copy(src: View, dst: View): void {
    copy(this.#dev, src, dst);
  }

  // ---------------------------------------------------------------- Backend: compute

  /** The elementwise op `op` of `x` (kernels/elementwise.cu). */
  unary(op: UnaryOp, x: View, dtype: DType): DeviceBuffer {
    return unary(this.#dev, op, x, dtype);
  }

  /** The elementwise op `op` of `a` and `b` (numbers stand for constants). */
  binary(op: BinaryOp, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer {
    return binary(this.#dev, op, a, b, shape, dtype);
  }

  /** cond ? a : b elementwise. */
  where(cond: View, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer {
    return where(this.#dev, cond, a, b, shape, dtype);
  }

  /** Reduces over `axes` (kept as size-1 axes). */
  reduce(op: ReduceOp, x: View, axes: readonly number[], dtype: DType): DeviceBuffer {
    return reduce(this.#dev, op, x, axes, dtype);
  }

  /** Index of the max or min along `axis` (int32). */
  argReduce(op: "argmax" | "argmin", x: View, axis: number): DeviceBuffer {
    return argReduce(this.#dev, op, x, axis);
  }

  /** Softmax or log-softmax along `axis`. */
  softmax(x: View, axis: number, log: boolean, dtype: DType): DeviceBuffer {
    return softmax(this.#dev, x, axis, log, dtype);
  }

  /** Inclusive prefix sum along `axis`. */
  cumsum(x: View, axis: number, dtype: DType): DeviceBuffer {
    return cumsum(this.#dev, x, axis, dtype);
  }

  /** Batched matrix product through cuBLAS (TF32 only with `allowTF32`). */
  matmul(a: View, b: View, dtype: DType): DeviceBuffer {
    return matmul(this.#dev, a, b, dtype, this.allowTF32);
  }

  /** Gathers along `axis` with an int32 index of the same rank. */
  gather(x: View, axis: number, index: View, dtype: DType): DeviceBuffer {
    return gather(this.#dev, x, axis, index, dtype);
  }

  /** zeros(shape), then adds `src` at `index` along `axis` (atomics; float sums in any order). */
  scatterAdd(shape: readonly number[], axis: number, index: View, src: View, dtype: DType): DeviceBuffer {
    return scatterAdd(this.#dev, shape, axis, index, src, dtype);
  }

  /** Complex DFT along `axis` (pairs in a trailing axis of 2); inverse divides by n. */
  fft(x: View, axis: number, inverse: boolean, dtype: DType): DeviceBuffer {
    return fft(this.#dev, x, axis, inverse, dtype);
  }

  /** Real-to-complex DFT along `axis`: n reals give n/2+1 complex pairs. */
  rfft(x: View, axis: number, dtype: DType): DeviceBuffer {
    return rfft(this.#dev, x, axis, dtype);
  }

  /** Complex-to-real inverse DFT along `axis` producing `n` reals (divides by n). */
  irfft(x: View, axis: number, n: number, dtype: DType): DeviceBuffer {
    return irfft(this.#dev, x, axis, n, dtype);
  }

  /** The banded operator `op` along `axis` (+ `add`) in one launch of kernels/stencil.cu. */
  stencil(x: View, axis: number, op: BandedOperator, add: View | null, dtype: DType): DeviceBuffer {
    return stencil(this.#dev, x, axis, op, add, dtype);
  }

  // ---------------------------------------------------------------- Backend: memory

  /** Bytes in live buffers, their peak, and bytes cached for reuse. */
  memory(): MemoryStats {
    const s = this.#dev.alloc.stats();
    return { current: s.current, peak: s.peak, cached: s.cached };
  }

  /** The allocator's full counters (reserved bytes, cache hits and misses). */
  allocatorStats(): AllocatorStats {
    return this.#dev.alloc.stats();
  }

  /** Resets `peak` to `current`. */
  resetPeak(): void {
    this.#dev.alloc.resetPeak();
  }

  /** Frees every cached block back to the driver; returns the bytes released. */
  releaseCached(): number {
    return this.#dev.alloc.releaseCached();
  }

  /** Returns a buffer's memory to the cache (no-op when already freed or not this backend's). */
  free(buffer: DeviceBuffer): void {
    if (buffer instanceof CudaBuffer && buffer.backend === this) this.#dev.free(buffer);
  }

  /** Waits for every queued launch and copy. */
  synchronize(): void {
    this.#dev.synchronize();
  }

  /** Launches, library calls, driver copies, uploads and stream synchronisations since the backend opened. */
  deviceCounts(): DeviceCounts {
    return { ...this.#dev.counts };
  }

  /** Low-level handles (benchmarks, interop). */
  get raw(): CudaRaw {
    const dev = this.#dev;
    return {
      driver: dev.drv,
      stream: dev.stream,
      cublas: () => dev.blas(),
      kernel: (family, name) => dev.kernel(family, name),
      params: dev.params,
      launch: (fn, blocks, threads) => dev.launch(fn, blocks, threads),
    };
  }

  /**
   * Times device work queued by `fn` with CUDA events (milliseconds; synchronises).
   *
   * @example
   * ```ts
   * // const ms = cuda.time(() => cuda.unary("exp", view, "float32"));
   * ```
   */
  time(fn: () => void): number {
    const drv = this.#dev.drv;
    const out = new BigUint64Array(1);
    drv.check("cuEventCreate", drv.sym.cuEventCreate(out, 0));
    const e0 = Deno.UnsafePointer.create(out[0]);
    drv.check("cuEventCreate", drv.sym.cuEventCreate(out, 0));
    const e1 = Deno.UnsafePointer.create(out[0]);
    try {
      drv.check("cuEventRecord", drv.sym.cuEventRecord(e0, this.#dev.stream));
      fn();
      drv.check("cuEventRecord", drv.sym.cuEventRecord(e1, this.#dev.stream));
      drv.check("cuEventSynchronize", drv.sym.cuEventSynchronize(e1));
      const ms = new Float32Array(1);
      const elapsed = drv.sym.cuEventElapsedTime_v2 ?? drv.sym.cuEventElapsedTime;
      if (!elapsed) throw new DeviceError("cuda", "the driver has no cuEventElapsedTime");
      drv.check("cuEventElapsedTime", elapsed(ms, e0, e1));
      return ms[0];
    } finally {
      drv.sym.cuEventDestroy_v2(e0);
      drv.sym.cuEventDestroy_v2(e1);
    }
  }

  /**
   * Releases the stream, cuBLAS/cuFFT state, the kernel modules, cached memory and the context
   * reference. Buffers still alive become invalid.
   */
  dispose(): void {
    if (this.#dev.disposed) return;
    try {
      this.synchronize();
    } catch (e) {
      if (!(e instanceof PatchworkError)) throw e;
    }
    this.#dev.dispose();
  }
}

/**
 * Every kernel name the backend can ask kernels/*.cu for, by family (the linear algebra's
 * excepted), as the op families build them; a test holds them to the compiled kernels.
 *
 * @example
 * ```ts
 * import { cudaKernelNames } from "./backend.ts";
 * cudaKernelNames().get("softmax")?.includes("softmax_log_online_bf16"); // true
 * ```
 */
export function cudaKernelNames(): Map<KernelFamily, string[]> {
  const out = new Map<KernelFamily, string[]>();
  const parts = [
    transferKernelNames(),
    elementwiseKernelNames(),
    reduceKernelNames(),
    indexingKernelNames(),
    stencilKernelNames(),
    optimKernelNames(),
    fusedKernelNames(),
    spectralKernelNames(),
  ];
  for (const part of parts) {
    for (const [family, names] of Object.entries(part) as [KernelFamily, string[]][]) {
      out.set(family, [...(out.get(family) ?? []), ...names]);
    }
  }
  return out;
}

/**
 * Creates the CUDA backend: loads the libraries, opens the device, reads the kernel sources
 * (with `fetch` when patchwork was imported by URL) and compiles every kernel family up front in
 * parallel (a disk-cache hit makes this fast). Throws a DeviceError when libcuda cannot be
 * loaded, FFI permission is missing or there is no device.
 *
 * @example
 * ```ts
 * import { createCudaBackend } from "./backend.ts";
 * // const cuda = await createCudaBackend();
 * // console.log(cuda.description);
 * ```
 */
export async function createCudaBackend(options: CudaBackendOptions = {}): Promise<CudaBackend> {
  const sources = options.sources ?? await loadKernelSources(options.kernelsUrl);
  const backend = new CudaBackend({ ...options, sources });
  try {
    await backend.compileAll(options.compileThreads);
  } catch (e) {
    backend.dispose();
    throw e;
  }
  return backend;
}

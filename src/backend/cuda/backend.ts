/**
 * The CUDA backend: every primitive of {@link Backend} on one device, through Deno FFI to the
 * driver API, NVRTC-compiled kernels (kernels/*.cu), cuBLAS and cuFFT.
 *
 * - One primary context and one non-blocking stream; every launch and copy is queued on it.
 *   `toHost` (and `synchronize`) are the only points that wait for the device.
 * - Shapes and strides stay on the host and travel as kernel parameters; op dispatch never reads
 *   device memory.
 * - Memory comes from a caching allocator ({@link CachingAllocator}); `free` returns a buffer's
 *   block to it (a second `free` is a no-op).
 * - float32 matmuls use full float32 unless `allowTF32` is set.
 *
 * @module
 */

import type {
  AdamHyperparameters,
  Backend,
  BandedOperator,
  BinaryOp,
  DeviceBuffer,
  LinalgPrimitives,
  MemoryStats,
  OptimPrimitives,
  ReduceOp,
  UnaryOp,
  View,
} from "../../tensor/backend.ts";
import { BINARY_OPS, UNARY_OPS } from "../../tensor/op_defs.ts";
import { type DType, type HostArray, toBFloat16Bits } from "../../tensor/dtype.ts";
import { ArgumentError, DeviceError, DTypeError, PatchworkError } from "../../tensor/errors.ts";
import { type AllocatorStats, CachingAllocator } from "./allocator.ts";
import {
  KERNEL_PARTS,
  type KernelCacheStats,
  KernelCompiler,
  type KernelFamily,
  type KernelSources,
  loadKernelSources,
  loadKernelSourcesSync,
  unitName,
} from "./compiler.ts";
import { type Cublas, CUBLAS_COMPUTE, CUBLAS_GEMM_DEFAULT, CUBLAS_OP, CUDA_R, loadCublas } from "./cublas.ts";
import { type Cufft, CUFFT_DIRECTION, CUFFT_TYPE, FftPlanCache, loadCufft } from "./cufft.ts";
import { CU_DEVICE_ATTRIBUTE, CU_FUNC_ATTRIBUTE, CU_STREAM_NON_BLOCKING, type Driver, loadDriver } from "./driver.ts";
import { CudaError } from "./errors.ts";
import { cstr } from "./libraries.ts";
import { checkAdamOperands } from "../adam_operands.ts";
import { collapse } from "./layout.ts";
import { CudaLinalg } from "./linalg.ts";
import type { CompiledKernel } from "./nvrtc.ts";
import { loadNvrtc } from "./nvrtc.ts";
import { KernelParams } from "./params.ts";
import { bandCoefficients, bandWords, planStencil, STENCIL_THREADS } from "./stencil.ts";
import { SFX } from "./device.ts";
import { elementwiseKernel, whereKernel } from "./elementwise.ts";

const ITEM: Readonly<Record<DType, number>> = { float32: 4, float64: 8, bfloat16: 2, int32: 4 };
/** Elements per 16-byte vector in the contiguous elementwise kernels. */
const VEC: Readonly<Record<DType, number>> = { float32: 4, float64: 2, bfloat16: 8, int32: 4 };

const CUDA_ERROR_NOT_FOUND = 500;
const MAX_DIMS = 8;
const MAX_U32_WORK = 2 ** 31;

/**
 * A buffer in device memory owned by a {@link CudaBackend}.
 *
 * @example
 * ```ts
 * import { createCudaBackend } from "./backend.ts";
 * // const cuda = await createCudaBackend(); const buf = cuda.full(4, 1, "float32"); buf.size; // 4
 * ```
 */
export class CudaBuffer implements DeviceBuffer {
  /** The owning backend. */
  readonly backend: CudaBackend;
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
  /** Device address (0 for an empty buffer). */
  ptr: number;
  /** Bytes requested from the allocator. */
  readonly bytes: number;
  /** Set once freed. */
  freed = false;

  /** Wraps an allocation. */
  constructor(backend: CudaBackend, size: number, dtype: DType, ptr: number, bytes: number) {
    this.backend = backend;
    this.size = size;
    this.dtype = dtype;
    this.ptr = ptr;
    this.bytes = bytes;
  }
}

/** A strided window given by raw address (internal currency of the copy paths). */
interface Raw {
  ptr: number;
  dtype: DType;
  shape: readonly number[];
  strides: readonly number[];
}

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

function numel(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

function rowMajor(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d];
    if (n !== 1) {
      if (strides[d] !== expected) return false;
      expected *= n;
    }
  }
  return true;
}

/**
 * Splits a strided iteration space into pieces a 32-bit, 8-dim kernel can take: calls `fn` with
 * each piece's shape, strides, per-operand element offsets and the linear index of its start.
 */
function forChunks(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  fn: (shape: readonly number[], strides: readonly (readonly number[])[], offsets: number[], start: number) => void,
  offsets: number[] = strides.map(() => 0),
  start = 0,
): void {
  const n = numel(shape);
  if (shape.length <= MAX_DIMS && n < MAX_U32_WORK) {
    fn(shape, strides, offsets, start);
    return;
  }
  if (shape.length === 1) {
    const step = 2 ** 30;
    for (let s = 0; s < n; s += step) {
      fn([Math.min(step, n - s)], strides, offsets.map((o, k) => o + s * strides[k][0]), start + s);
    }
    return;
  }
  const inner = n / shape[0];
  const rest = strides.map((s) => s.slice(1));
  for (let i = 0; i < shape[0]; i++) {
    forChunks(shape.slice(1), rest, fn, offsets.map((o, k) => o + i * strides[k][0]), start + i * inner);
  }
}

function accDtype(dtype: DType): DType {
  return dtype === "bfloat16" ? "float32" : dtype === "int32" ? "float64" : dtype;
}

function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ArgumentError(op, `axis ${axis} out of range for rank ${rank}`);
  }
  return a;
}

const f64Scratch = new Float64Array(1);
const u32OfF64 = new Uint32Array(f64Scratch.buffer);
const f32Scratch = new Float32Array(1);
const u32OfF32 = new Uint32Array(f32Scratch.buffer);

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
    adam: (param, grad, expAvg, expAvgSq, copyTo, hyper) => this.#adam(param, grad, expAvg, expAvgSq, copyTo, hyper),
  };

  readonly #drv: Driver;
  readonly #ctx: Deno.PointerValue;
  readonly #stream: Deno.PointerValue;
  readonly #alloc: CachingAllocator;
  readonly #compiler: KernelCompiler;
  readonly #params = new KernelParams();
  readonly #modules = new Map<KernelFamily, Deno.PointerValue[]>();
  readonly #fns = new Map<string, Deno.PointerValue>();
  readonly #fnOut = new BigUint64Array(1);
  readonly #maxBlocks: number;
  /** Opt-in limit of dynamic shared memory per block, and the functions already raised to it. */
  readonly #maxShared: number;
  readonly #sharedRaised = new Set<Deno.PointerValue>();
  #cublas: { lib: Cublas; handle: Deno.PointerValue } | undefined;
  #cufft: { lib: Cufft; plans: FftPlanCache } | undefined;
  #disposed = false;
  readonly #one32 = new Float32Array([1]);
  readonly #zero32 = new Float32Array([0]);
  readonly #one64 = new Float64Array([1]);
  readonly #zero64 = new Float64Array([0]);

  /** Opens the driver, the device's primary context, a stream, and NVRTC. */
  constructor(options: CudaBackendOptions = {}) {
    let drv: Driver;
    try {
      drv = loadDriver();
    } catch (e) {
      if (e instanceof CudaError) throw new DeviceError("cuda", `the CUDA driver is unusable: ${e.message}`);
      throw e;
    }
    this.#drv = drv;
    const i32 = new Int32Array(1);
    drv.check("cuDeviceGetCount", drv.sym.cuDeviceGetCount(i32));
    if (i32[0] === 0) throw new DeviceError("cuda", "no CUDA device found");
    let ordinal = options.device;
    if (ordinal === undefined) {
      let envDevice: string | undefined;
      try {
        envDevice = Deno.env.get("PATCHWORK_CUDA_DEVICE");
      } catch { /* no env permission */ }
      ordinal = envDevice ? Number(envDevice) : 0;
    }
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= i32[0]) {
      throw new DeviceError("cuda", `device ${ordinal} does not exist (${i32[0]} device(s))`);
    }
    drv.check("cuDeviceGet", drv.sym.cuDeviceGet(i32, ordinal));
    const dev = i32[0];
    this.device = ordinal;
    const attr = (a: number): number => {
      drv.check("cuDeviceGetAttribute", drv.sym.cuDeviceGetAttribute(i32, a, dev));
      return i32[0];
    };
    this.arch = attr(CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MAJOR) * 10 +
      attr(CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MINOR);
    this.multiprocessors = attr(CU_DEVICE_ATTRIBUTE.MULTIPROCESSOR_COUNT);
    this.#maxBlocks = this.multiprocessors * 8;
    this.#maxShared = attr(CU_DEVICE_ATTRIBUTE.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    const nameBuf = new Uint8Array(256);
    drv.check("cuDeviceGetName", drv.sym.cuDeviceGetName(nameBuf, nameBuf.length, dev));
    const devName = new TextDecoder().decode(nameBuf.subarray(0, nameBuf.indexOf(0)));
    const mem = new BigUint64Array(1);
    drv.check("cuDeviceTotalMem_v2", drv.sym.cuDeviceTotalMem_v2(mem, dev));
    this.totalMemory = Number(mem[0]);
    this.description = `${devName} (sm_${this.arch}, ${(this.totalMemory / 2 ** 30).toFixed(1)} GiB, ` +
      `${this.multiprocessors} SMs)`;

    const out = new BigUint64Array(1);
    drv.check("cuDevicePrimaryCtxRetain", drv.sym.cuDevicePrimaryCtxRetain(out, dev));
    this.#ctx = Deno.UnsafePointer.create(out[0]);
    drv.check("cuCtxSetCurrent", drv.sym.cuCtxSetCurrent(this.#ctx));
    drv.check("cuStreamCreate", drv.sym.cuStreamCreate(out, CU_STREAM_NON_BLOCKING));
    this.#stream = Deno.UnsafePointer.create(out[0]);
    this.#alloc = new CachingAllocator(drv, () => this.synchronize());

    const sources = options.sources ?? loadKernelSourcesSync(options.kernelsUrl);
    this.#compiler = new KernelCompiler(
      loadNvrtc(),
      this.arch,
      sources,
      options.cacheDir === null ? undefined : options.cacheDir,
    );
    this.linalg = new CudaLinalg({
      alloc: (size, dtype) => this.#newBuffer(size, dtype),
      free: (buffer) => this.free(buffer),
      operand: (view, dtype, op) => this.#as(view, dtype, op),
      contiguous: (raw) => this.#materialize(raw, raw.dtype),
      kernel: (name) => this.#fn("linalg", name),
      launch: (fn, blocks, threads, shared) => this.#launch(fn, blocks, threads, shared),
      params: this.#params,
      memset0: (ptr, bytes) => this.#memset0(ptr, bytes),
      maxSharedBytes: this.#maxShared,
      multiprocessors: this.multiprocessors,
    });
  }

  // ---------------------------------------------------------------- kernels

  /** Compiles (or reads from the cache) and loads every kernel family, compiling in parallel. */
  async compileAll(threads?: number): Promise<void> {
    const images = await this.#compiler.buildAll(threads);
    for (const family of Object.keys(KERNEL_PARTS) as KernelFamily[]) {
      if (this.#modules.has(family)) continue;
      const mods: Deno.PointerValue[] = [];
      for (let part = 0; part < KERNEL_PARTS[family]; part++) {
        const img = images.get(unitName({ family, part }));
        mods.push(this.#loadModule(img ?? this.#compiler.build({ family, part })));
      }
      this.#modules.set(family, mods);
    }
  }

  /** Kernel cache counters (disk hits, NVRTC compiles, compile time). */
  get kernelCache(): KernelCacheStats {
    return { ...this.#compiler.stats };
  }

  #loadModule(img: CompiledKernel): Deno.PointerValue {
    let image = img.image;
    if (img.kind === "ptx" && image[image.length - 1] !== 0) {
      const z = new Uint8Array(image.length + 1);
      z.set(image);
      image = z;
    }
    const out = new BigUint64Array(1);
    this.#drv.check("cuModuleLoadData", this.#drv.sym.cuModuleLoadData(out, image));
    return Deno.UnsafePointer.create(out[0]);
  }

  #fn(family: KernelFamily, name: string): Deno.PointerValue {
    const hit = this.#fns.get(name);
    if (hit !== undefined) return hit;
    let mods = this.#modules.get(family);
    if (!mods) {
      mods = [];
      for (let part = 0; part < KERNEL_PARTS[family]; part++) {
        mods.push(this.#loadModule(this.#compiler.build({ family, part })));
      }
      this.#modules.set(family, mods);
    }
    const nameC = cstr(name);
    for (const m of mods) {
      const status = this.#drv.sym.cuModuleGetFunction(this.#fnOut, m, nameC);
      if (status === 0) {
        const f = Deno.UnsafePointer.create(this.#fnOut[0]);
        this.#fns.set(name, f);
        return f;
      }
      if (status !== CUDA_ERROR_NOT_FOUND) this.#drv.check("cuModuleGetFunction", status);
    }
    throw new DeviceError("cuda", `kernel ${name} not found in kernels/${family}.cu`);
  }

  #launch(fn: Deno.PointerValue, blocks: number, threads: number, shared = 0): void {
    if (shared > 48 * 1024 && !this.#sharedRaised.has(fn)) {
      this.#drv.check(
        "cuFuncSetAttribute",
        this.#drv.sym.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE.MAX_DYNAMIC_SHARED_SIZE_BYTES, this.#maxShared),
      );
      this.#sharedRaised.add(fn);
    }
    const status = this.#drv.sym.cuLaunchKernel(
      fn,
      blocks,
      1,
      1,
      threads,
      1,
      1,
      shared,
      this.#stream,
      this.#params.pointers,
      null,
    );
    if (status !== 0) this.#drv.check("cuLaunchKernel", status);
  }

  #grid(work: number, threads = 256): number {
    const b = Math.ceil(work / threads);
    return b < 1 ? 1 : b > this.#maxBlocks ? this.#maxBlocks : b;
  }

  // ---------------------------------------------------------------- buffers

  #newBuffer(size: number, dtype: DType): CudaBuffer {
    if (!Number.isInteger(size) || size < 0) throw new ArgumentError("cuda alloc", `bad size ${size}`);
    if (this.#disposed) throw new DeviceError("cuda", "backend was disposed");
    const bytes = size * ITEM[dtype];
    return new CudaBuffer(this, size, dtype, this.#alloc.alloc(bytes), bytes);
  }

  #buf(b: DeviceBuffer, op: string): CudaBuffer {
    if (!(b instanceof CudaBuffer) || b.backend !== this) {
      throw new DeviceError(op, `buffer belongs to the ${b.backend?.name ?? "unknown"} backend, not this cuda backend`);
    }
    if (b.freed) throw new DeviceError(op, "buffer was freed");
    return b;
  }

  #raw(v: View, op: string): Raw {
    const b = this.#buf(v.buffer, op);
    return { ptr: b.ptr + v.offset * ITEM[b.dtype], dtype: b.dtype, shape: v.shape, strides: v.strides };
  }

  /** `v` as a Raw of `dtype`; a converted contiguous copy (to free afterwards) when the dtype differs. */
  #as(v: View, dtype: DType, op: string): { raw: Raw; temp: CudaBuffer | null } {
    const r = this.#raw(v, op);
    if (r.dtype === dtype) return { raw: r, temp: null };
    return this.#materialize(r, dtype);
  }

  #materialize(r: Raw, dtype: DType): { raw: Raw; temp: CudaBuffer } {
    const t = this.#newBuffer(numel(r.shape), dtype);
    const strides = rowMajor(r.shape);
    this.#copyRaw(r, { ptr: t.ptr, dtype, shape: r.shape, strides });
    return { raw: { ptr: t.ptr, dtype, shape: r.shape, strides }, temp: t };
  }

  #contig(r: Raw): { raw: Raw; temp: CudaBuffer | null } {
    return isContiguous(r.shape, r.strides) ? { raw: r, temp: null } : this.#materialize(r, r.dtype);
  }

  #release(t: CudaBuffer | null): void {
    if (t) this.free(t);
  }

  /** dst = src (shapes equal), converting dtype; scale != 1 multiplies (float types only). */
  #copyRaw(src: Raw, dst: Raw, scale = 1): void {
    const n = numel(src.shape);
    if (n === 0) return;
    const s = SFX[src.dtype], d = SFX[dst.dtype];
    if (scale === 1 && isContiguous(src.shape, src.strides) && isContiguous(dst.shape, dst.strides)) {
      if (src.dtype === dst.dtype) {
        this.#drv.check(
          "cuMemcpyDtoDAsync_v2",
          this.#drv.sym.cuMemcpyDtoDAsync_v2(
            BigInt(dst.ptr),
            BigInt(src.ptr),
            BigInt(n * ITEM[src.dtype]),
            this.#stream,
          ),
        );
      } else {
        const p = this.#params;
        p.ptr(0, src.ptr);
        p.ptr(1, dst.ptr);
        p.u64(2, n);
        this.#launch(this.#fn("copy", `cast_${s}_${d}`), this.#grid(n), 256);
      }
      return;
    }
    const c = collapse(src.shape, [src.strides, dst.strides]);
    const name = scale === 1 ? `copy_${s}_${d}` : `copy_scaled_${s}_${d}`;
    const fn = this.#fn("copy", name);
    const si = ITEM[src.dtype], di = ITEM[dst.dtype];
    forChunks(c.shape, c.strides, (shape, strides, offs) => {
      const m = numel(shape);
      const p = this.#params;
      p.ptr(0, src.ptr + offs[0] * si);
      p.ptr(1, dst.ptr + offs[1] * di);
      p.u32(2, m);
      p.shape8(3, shape);
      p.strides8(4, strides[0]);
      p.strides8(5, strides[1]);
      if (scale !== 1) p.f64(6, scale);
      this.#launch(fn, this.#grid(m), 256);
    });
  }

  #memset0(ptr: number, bytes: number): void {
    if (bytes > 0) {
      this.#drv.check("cuMemsetD8Async", this.#drv.sym.cuMemsetD8Async(BigInt(ptr), 0, BigInt(bytes), this.#stream));
    }
  }

  #fill(buf: CudaBuffer, value: number): void {
    const n = buf.size;
    if (n === 0) return;
    const ptr = BigInt(buf.ptr);
    switch (buf.dtype) {
      case "float32":
        f32Scratch[0] = value;
        this.#drv.check(
          "cuMemsetD32Async",
          this.#drv.sym.cuMemsetD32Async(ptr, u32OfF32[0], BigInt(n), this.#stream),
        );
        return;
      case "int32":
        this.#drv.check(
          "cuMemsetD32Async",
          this.#drv.sym.cuMemsetD32Async(ptr, (value | 0) >>> 0, BigInt(n), this.#stream),
        );
        return;
      case "bfloat16":
        this.#drv.check(
          "cuMemsetD16Async",
          this.#drv.sym.cuMemsetD16Async(ptr, toBFloat16Bits(value), BigInt(n), this.#stream),
        );
        return;
      case "float64": {
        f64Scratch[0] = value;
        const p = this.#params;
        p.ptr(0, buf.ptr);
        p.u64(1, n);
        p.words(2, u32OfF64[0], u32OfF64[1]);
        this.#launch(this.#fn("copy", "fill_u64"), this.#grid(n), 256);
        return;
      }
    }
  }

  // ---------------------------------------------------------------- Backend: data movement

  /** Uploads host data (bfloat16 from raw `Uint16Array` bits or from numbers). */
  fromHost(data: HostArray | readonly number[], dtype: DType): DeviceBuffer {
    let arr: Float32Array | Float64Array | Int32Array | Uint16Array;
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
    const buf = this.#newBuffer(arr.length, dtype);
    if (arr.length > 0) {
      this.#drv.check(
        "cuMemcpyHtoDAsync_v2",
        this.#drv.sym.cuMemcpyHtoDAsync_v2(BigInt(buf.ptr), arr, BigInt(buf.bytes), this.#stream),
      );
    }
    return buf;
  }

  /** Reads a view to a new host array; waits for the stream. */
  toHost(view: View): Float32Array | Float64Array | Int32Array {
    const r0 = this.#raw(view, "toHost");
    const n = numel(view.shape);
    const { raw, temp } = this.#contig(r0);
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
      this.#drv.check(
        "cuMemcpyDtoHAsync_v2",
        this.#drv.sym.cuMemcpyDtoHAsync_v2(target, BigInt(raw.ptr), BigInt(n * ITEM[raw.dtype]), this.#stream),
      );
    }
    this.synchronize();
    this.#release(temp);
    if (bits) {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = bits[i] << 16;
    }
    return out;
  }

  /** A new buffer filled with `value`. */
  full(size: number, value: number, dtype: DType): DeviceBuffer {
    const buf = this.#newBuffer(size, dtype);
    this.#fill(buf, value);
    return buf;
  }

  /** `start + i * step`. */
  arange(size: number, start: number, step: number, dtype: DType): DeviceBuffer {
    const buf = this.#newBuffer(size, dtype);
    if (size === 0) return buf;
    const p = this.#params;
    p.ptr(0, buf.ptr);
    p.u64(1, size);
    p.f64(2, start);
    p.f64(3, step);
    this.#launch(this.#fn("copy", `arange_${SFX[dtype]}`), this.#grid(size), 256);
    return buf;
  }

  /** Philox4x32-10 uniform or normal numbers, identical to the CPU backend's. */
  random(kind: "uniform" | "normal", size: number, seed: number, offset: number, dtype: DType): DeviceBuffer {
    if (kind !== "uniform" && kind !== "normal") throw new ArgumentError("random", `unknown kind ${kind}`);
    const buf = this.#newBuffer(size, dtype);
    if (size === 0) return buf;
    const k0 = ((seed % 4294967296) + 4294967296) % 4294967296;
    const k1 = ((Math.floor(seed / 4294967296) % 4294967296) + 4294967296) % 4294967296;
    const p = this.#params;
    p.ptr(0, buf.ptr);
    p.u64(1, size);
    p.u32(2, k0);
    p.u32(3, k1);
    p.u64(4, offset);
    this.#launch(this.#fn("random", `random_${kind}_${SFX[dtype]}`), this.#grid(size), 256);
    return buf;
  }

  /** Copies `src` into the window `dst`, converting dtype. */
  copy(src: View, dst: View): void {
    let s = this.#raw(src, "copy");
    const d = this.#raw(dst, "copy");
    let temp: CudaBuffer | null = null;
    if (src.buffer === dst.buffer && numel(src.shape) > 0) {
      // The windows may overlap: read everything before writing.
      const m = this.#materialize(s, s.dtype);
      s = m.raw;
      temp = m.temp;
    }
    this.#copyRaw(s, d);
    this.#release(temp);
  }

  // ---------------------------------------------------------------- Backend: elementwise

  /** f(x) elementwise. */
  unary(op: UnaryOp, x: View, dtype: DType): DeviceBuffer {
    if (!Object.hasOwn(UNARY_OPS, op)) throw new ArgumentError("unary", `unknown op ${op}`);
    const kernel = UNARY_OPS[op].kernel;
    const n = numel(x.shape);
    const out = this.#newBuffer(n, dtype);
    if (n === 0) return out;
    const { raw, temp } = this.#as(x, dtype, op);
    const isz = ITEM[dtype];
    const p = this.#params;
    if (isContiguous(raw.shape, raw.strides) && raw.ptr % 16 === 0) {
      p.ptr(0, raw.ptr);
      p.ptr(1, out.ptr);
      p.u64(2, n);
      const fn = this.#fn("elementwise", elementwiseKernel(kernel, dtype, false));
      this.#launch(fn, this.#grid(Math.ceil(n / VEC[dtype])), 256);
    } else {
      const c = collapse(raw.shape, [raw.strides]);
      const fn = this.#fn("elementwise", elementwiseKernel(kernel, dtype, true));
      forChunks(c.shape, c.strides, (shape, strides, offs, start) => {
        const m = numel(shape);
        p.ptr(0, raw.ptr + offs[0] * isz);
        p.ptr(1, out.ptr + start * isz);
        p.u32(2, m);
        p.shape8(3, shape);
        p.strides8(4, strides[0]);
        this.#launch(fn, this.#grid(m), 256);
      });
    }
    this.#release(temp);
    return out;
  }

  /** f(a, b) elementwise (numbers stand for constants). */
  binary(op: BinaryOp, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer {
    if (!Object.hasOwn(BINARY_OPS, op)) throw new ArgumentError("binary", `unknown op ${op}`);
    const kernel = BINARY_OPS[op].kernel;
    const n = numel(shape);
    const out = this.#newBuffer(n, dtype);
    if (n === 0) return out;
    let flags = 0, sa = 0, sb = 0;
    let ra: Raw | null = null, rb: Raw | null = null;
    let ta: CudaBuffer | null = null, tb: CudaBuffer | null = null;
    if (typeof a === "number") {
      flags |= 1;
      sa = a;
    } else {
      ({ raw: ra, temp: ta } = this.#as(a, dtype, op));
    }
    if (typeof b === "number") {
      flags |= 2;
      sb = b;
    } else {
      ({ raw: rb, temp: tb } = this.#as(b, dtype, op));
    }
    const isz = ITEM[dtype];
    const p = this.#params;
    const contA = ra === null || (isContiguous(ra.shape, ra.strides) && ra.ptr % 16 === 0);
    const contB = rb === null || (isContiguous(rb.shape, rb.strides) && rb.ptr % 16 === 0);
    if (contA && contB) {
      p.ptr(0, ra ? ra.ptr : 0);
      p.ptr(1, rb ? rb.ptr : 0);
      p.ptr(2, out.ptr);
      p.u64(3, n);
      p.f64(4, sa);
      p.f64(5, sb);
      p.u32(6, flags);
      this.#launch(
        this.#fn("elementwise", elementwiseKernel(kernel, dtype, false)),
        this.#grid(Math.ceil(n / VEC[dtype])),
        256,
      );
    } else {
      const zeros = new Array<number>(shape.length).fill(0);
      const c = collapse(shape, [ra ? ra.strides : zeros, rb ? rb.strides : zeros]);
      const fn = this.#fn("elementwise", elementwiseKernel(kernel, dtype, true));
      forChunks(c.shape, c.strides, (sh, strides, offs, start) => {
        const m = numel(sh);
        p.ptr(0, ra ? ra.ptr + offs[0] * isz : 0);
        p.ptr(1, rb ? rb.ptr + offs[1] * isz : 0);
        p.ptr(2, out.ptr + start * isz);
        p.u32(3, m);
        p.shape8(4, sh);
        p.strides8(5, strides[0]);
        p.strides8(6, strides[1]);
        p.f64(7, sa);
        p.f64(8, sb);
        p.u32(9, flags);
        this.#launch(fn, this.#grid(m), 256);
      });
    }
    this.#release(ta);
    this.#release(tb);
    return out;
  }

  /** cond ? a : b elementwise. */
  where(cond: View, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer {
    const n = numel(shape);
    const out = this.#newBuffer(n, dtype);
    if (n === 0) return out;
    const rc = this.#raw(cond, "where");
    let flags = 0, sa = 0, sb = 0;
    let ra: Raw | null = null, rb: Raw | null = null;
    let ta: CudaBuffer | null = null, tb: CudaBuffer | null = null;
    if (typeof a === "number") {
      flags |= 1;
      sa = a;
    } else ({ raw: ra, temp: ta } = this.#as(a, dtype, "where"));
    if (typeof b === "number") {
      flags |= 2;
      sb = b;
    } else ({ raw: rb, temp: tb } = this.#as(b, dtype, "where"));
    const isz = ITEM[dtype], csz = ITEM[rc.dtype];
    const p = this.#params;
    const cont = isContiguous(rc.shape, rc.strides) && (ra === null || isContiguous(ra.shape, ra.strides)) &&
      (rb === null || isContiguous(rb.shape, rb.strides));
    if (cont) {
      p.ptr(0, rc.ptr);
      p.ptr(1, ra ? ra.ptr : 0);
      p.ptr(2, rb ? rb.ptr : 0);
      p.ptr(3, out.ptr);
      p.u64(4, n);
      p.f64(5, sa);
      p.f64(6, sb);
      p.u32(7, flags);
      this.#launch(this.#fn("elementwise", whereKernel(rc.dtype, dtype, false)), this.#grid(n), 256);
    } else {
      const zeros = new Array<number>(shape.length).fill(0);
      const c = collapse(shape, [rc.strides, ra ? ra.strides : zeros, rb ? rb.strides : zeros]);
      const fn = this.#fn("elementwise", whereKernel(rc.dtype, dtype, true));
      forChunks(c.shape, c.strides, (sh, strides, offs, start) => {
        const m = numel(sh);
        p.ptr(0, rc.ptr + offs[0] * csz);
        p.ptr(1, ra ? ra.ptr + offs[1] * isz : 0);
        p.ptr(2, rb ? rb.ptr + offs[2] * isz : 0);
        p.ptr(3, out.ptr + start * isz);
        p.u32(4, m);
        p.shape8(5, sh);
        p.strides8(6, strides[0]);
        p.strides8(7, strides[1]);
        p.strides8(8, strides[2]);
        p.f64(9, sa);
        p.f64(10, sb);
        p.u32(11, flags);
        this.#launch(fn, this.#grid(m), 256);
      });
    }
    this.#release(ta);
    this.#release(tb);
    return out;
  }

  // ---------------------------------------------------------------- Backend: reductions

  /** Reduces over `axes` (kept as size-1 axes). */
  reduce(op: ReduceOp, x: View, axes: readonly number[], dtype: DType): DeviceBuffer {
    if (op !== "sum" && op !== "max" && op !== "min" && op !== "prod") {
      throw new ArgumentError("reduce", `unknown op ${op}`);
    }
    const rank = x.shape.length;
    const axSet = new Set(axes.map((a) => normAxis(a, rank, op)));
    const outShape = x.shape.map((n, d) => (axSet.has(d) ? 1 : n));
    const nOut = numel(outShape);
    const out = this.#newBuffer(nOut, dtype);
    if (nOut === 0) return out;
    let nRed = 1;
    for (const d of axSet) nRed *= x.shape[d];
    if (nRed === 0) {
      this.#fill(out, op === "sum" ? 0 : op === "prod" ? 1 : op === "max" ? -Infinity : Infinity);
      return out;
    }
    let { raw, temp } = this.#as(x, dtype, op);
    let dims = this.#reduceDims(raw, axSet);
    if (dims.kshape.length > MAX_DIMS || dims.rshape.length > MAX_DIMS) {
      const m = this.#materialize(raw, dtype);
      this.#release(temp);
      ({ raw, temp } = m);
      dims = this.#reduceDims(raw, axSet);
      if (dims.kshape.length > MAX_DIMS || dims.rshape.length > MAX_DIMS) {
        throw new DeviceError(
          op,
          `cannot reduce over ${[...axSet]} of a rank-${rank} tensor (more than 8 axis groups)`,
        );
      }
    }
    if (dims.rshape.length === 0) {
      this.#copyRaw(raw, { ptr: out.ptr, dtype, shape: raw.shape, strides: rowMajor(raw.shape) });
      this.#release(temp);
      return out;
    }
    const sms = this.multiprocessors;
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
    const inS = SFX[dtype];
    const acc = accDtype(dtype);
    const stage1Out = splits > 1 ? this.#newBuffer(nOut * splits, acc) : out;
    const outS = SFX[stage1Out.dtype];
    this.#reduceLaunch(op, rowMode, inS, outS, raw.ptr, stage1Out.ptr, nOut, nRed, splits, chunk, dims);
    if (splits > 1) {
      this.#reduceLaunch(op, true, SFX[acc], SFX[dtype], stage1Out.ptr, out.ptr, nOut, splits, 1, splits, {
        kshape: nOut > 1 ? [nOut] : [],
        kstrides: nOut > 1 ? [splits] : [],
        rshape: [splits],
        rstrides: [1],
      });
      this.free(stage1Out);
    }
    this.#release(temp);
    return out;
  }

  #reduceDims(
    raw: Raw,
    axSet: Set<number>,
  ): { kshape: number[]; kstrides: number[]; rshape: number[]; rstrides: number[] } {
    const kept: number[] = [], red: number[] = [];
    for (let d = 0; d < raw.shape.length; d++) {
      if (raw.shape[d] === 1) continue;
      (axSet.has(d) ? red : kept).push(d);
    }
    // Reduced axes in order of decreasing |stride| so the innermost walks memory.
    red.sort((a, b) => Math.abs(raw.strides[b]) - Math.abs(raw.strides[a]));
    const merge = (ds: number[]) => {
      const c = collapse(ds.map((d) => raw.shape[d]), [ds.map((d) => raw.strides[d])]);
      return ds.length === 0 ? { shape: [], strides: [] } : { shape: c.shape, strides: c.strides[0] };
    };
    const k = merge(kept), r = merge(red);
    return { kshape: k.shape, kstrides: k.strides, rshape: r.shape, rstrides: r.strides };
  }

  #reduceLaunch(
    op: ReduceOp,
    rowMode: boolean,
    inS: string,
    outS: string,
    xp: number,
    yp: number,
    nOut: number,
    nRed: number,
    splits: number,
    chunk: number,
    dims: { kshape: number[]; kstrides: number[]; rshape: number[]; rstrides: number[] },
  ): void {
    const items = nOut * splits;
    let kind: string, blocks: number;
    if (!rowMode) {
      kind = "col";
      blocks = this.#grid(items);
    } else if (chunk <= 2048) {
      kind = "row_warp";
      blocks = this.#grid(items * 32);
    } else {
      kind = "row_block";
      blocks = Math.max(1, Math.min(items, this.#maxBlocks));
    }
    const p = this.#params;
    p.ptr(0, xp);
    p.ptr(1, yp);
    p.u32(2, nOut);
    p.u32(3, nRed);
    p.u32(4, splits);
    p.u32(5, chunk);
    p.rdims(6, dims.kshape, dims.kstrides, dims.rshape, dims.rstrides);
    this.#launch(this.#fn("reduce", `reduce_${kind}_${op}_${inS}_${outS}`), blocks, 256);
  }

  /** Index of the max or min along `axis` (int32). */
  argReduce(op: "argmax" | "argmin", x: View, axis: number): DeviceBuffer {
    if (op !== "argmax" && op !== "argmin") throw new ArgumentError("argReduce", `unknown op ${op}`);
    const rank = x.shape.length;
    const ax = normAxis(axis, rank, op);
    const outShape = x.shape.map((n, d) => (d === ax ? 1 : n));
    const nOut = numel(outShape);
    const out = this.#newBuffer(nOut, "int32");
    if (nOut === 0) return out;
    const L = x.shape[ax];
    if (L === 0) {
      this.#fill(out, 0);
      return out;
    }
    let raw = this.#raw(x, op);
    let temp: CudaBuffer | null = null;
    let dims = this.#reduceDims(raw, new Set([ax]));
    if (dims.kshape.length > MAX_DIMS) {
      ({ raw, temp } = this.#materialize(raw, raw.dtype));
      dims = this.#reduceDims(raw, new Set([ax]));
      if (dims.kshape.length > MAX_DIMS) throw new DeviceError(op, `rank ${rank} has more than 8 axis groups`);
    }
    const s = L === 1 ? 0 : raw.strides[ax];
    let minK = Infinity;
    for (const k of dims.kstrides) minK = Math.min(minK, Math.abs(k));
    const rowMode = L > 32 && Math.abs(s) <= minK;
    const p = this.#params;
    p.ptr(0, raw.ptr);
    p.ptr(1, out.ptr);
    p.u32(2, nOut);
    p.u32(3, L);
    p.rdims(4, dims.kshape, dims.kstrides, [L], [s]);
    const fn = this.#fn("reduce", `${op}_${rowMode ? "row" : "col"}_${SFX[raw.dtype]}`);
    this.#launch(fn, rowMode ? Math.max(1, Math.min(nOut, this.#maxBlocks)) : this.#grid(nOut), 256);
    this.#release(temp);
    return out;
  }

  /** Softmax or log-softmax along `axis`. */
  softmax(x: View, axis: number, log: boolean, dtype: DType): DeviceBuffer {
    if (dtype === "int32") throw new DTypeError("softmax", "int32 output; use a float dtype");
    const rank = x.shape.length;
    const ax = normAxis(axis, rank, "softmax");
    const n = numel(x.shape);
    const out = this.#newBuffer(n, dtype);
    if (n === 0) return out;
    const a = this.#as(x, dtype, "softmax");
    const c = this.#contig(a.raw);
    const L = x.shape[ax];
    const outer = numel(x.shape.slice(0, ax));
    const inner = numel(x.shape.slice(ax + 1));
    const pre = log ? "softmax_log" : "softmax";
    const sfx = SFX[dtype];
    const p = this.#params;
    p.ptr(0, c.raw.ptr);
    p.ptr(1, out.ptr);
    if (inner === 1) {
      const rows = outer;
      p.u32(2, rows);
      p.u32(3, L);
      const sms = this.multiprocessors;
      if (L <= 256) {
        const vpt = L <= 32 ? 1 : L <= 64 ? 2 : L <= 128 ? 4 : 8;
        this.#launch(
          this.#fn("softmax", `${pre}_warp${vpt}_${sfx}`),
          Math.max(1, Math.min(Math.ceil(rows / 4), sms * 16)),
          128,
        );
      } else if (L <= 8192) {
        const threads = Math.min(1024, Math.max(32, Math.ceil(Math.ceil(L / 8) / 32) * 32));
        const perSm = Math.max(1, Math.floor(2048 / threads));
        this.#launch(this.#fn("softmax", `${pre}_block_${sfx}`), Math.max(1, Math.min(rows, sms * perSm * 2)), threads);
      } else {
        this.#launch(this.#fn("softmax", `${pre}_online_${sfx}`), Math.max(1, Math.min(rows, sms * 2)), 1024);
      }
    } else {
      p.u32(2, outer);
      p.u32(3, L);
      p.u32(4, inner);
      this.#launch(this.#fn("softmax", `${pre}_col_${sfx}`), this.#grid(outer * inner), 256);
    }
    this.#release(c.temp);
    this.#release(a.temp);
    return out;
  }

  /** Inclusive prefix sum along `axis`. */
  cumsum(x: View, axis: number, dtype: DType): DeviceBuffer {
    const rank = x.shape.length;
    const ax = normAxis(axis, rank, "cumsum");
    const n = numel(x.shape);
    const out = this.#newBuffer(n, dtype);
    if (n === 0) return out;
    const a = this.#as(x, dtype, "cumsum");
    const c = this.#contig(a.raw);
    const L = x.shape[ax];
    const outer = numel(x.shape.slice(0, ax));
    const inner = numel(x.shape.slice(ax + 1));
    const sfx = SFX[dtype];
    const p = this.#params;
    p.ptr(0, c.raw.ptr);
    p.ptr(1, out.ptr);
    if (inner === 1) {
      p.u32(2, outer);
      p.u32(3, L);
      const threads = Math.min(256, Math.max(32, Math.ceil(Math.ceil(L / 4) / 32) * 32));
      this.#launch(this.#fn("scan", `scan_row_${sfx}`), Math.max(1, Math.min(outer, this.#maxBlocks * 2)), threads);
    } else {
      p.u32(2, outer);
      p.u32(3, L);
      p.u32(4, inner);
      this.#launch(this.#fn("scan", `scan_col_${sfx}`), this.#grid(outer * inner), 256);
    }
    this.#release(c.temp);
    this.#release(a.temp);
    return out;
  }

  // ---------------------------------------------------------------- Backend: matmul

  /** The cuBLAS library and this backend's handle (created at first use). */
  #blas(): { lib: Cublas; handle: Deno.PointerValue } {
    if (!this.#cublas) {
      const lib = loadCublas();
      this.#cublas = { lib, handle: lib.create(this.#stream) };
    }
    return this.#cublas;
  }

  /** Batched matrix product through cuBLAS (row-major via the transpose identity). */
  matmul(a: View, b: View, dtype: DType): DeviceBuffer {
    const r = a.shape.length;
    if (r < 2 || b.shape.length !== r) throw new ArgumentError("matmul", `ranks ${r} and ${b.shape.length}`);
    const m = a.shape[r - 2], k = a.shape[r - 1], n = b.shape[r - 1];
    const batchShape = a.shape.slice(0, r - 2);
    const batch = numel(batchShape);
    const out = this.#newBuffer(batch * m * n, dtype);
    if (batch * m * n === 0) return out;
    if (k === 0) {
      this.#memset0(out.ptr, out.bytes);
      return out;
    }
    if (dtype === "int32") {
      // cuBLAS has no int32 GEMM here: go through float64 (exact for |values| < 2^53).
      const c64 = this.matmul(a, b, "float64") as CudaBuffer;
      const shape = [...batchShape, m, n];
      this.#copyRaw({ ptr: c64.ptr, dtype: "float64", shape, strides: rowMajor(shape) }, {
        ptr: out.ptr,
        dtype: "int32",
        shape,
        strides: rowMajor(shape),
      });
      this.free(c64);
      return out;
    }
    const temps: (CudaBuffer | null)[] = [];
    const A0 = this.#as(a, dtype, "matmul"), B0 = this.#as(b, dtype, "matmul");
    temps.push(A0.temp, B0.temp);
    let A = A0.raw, B = B0.raw;
    let la = matLayout(A, m, k), lb = matLayout(B, k, n);
    if (!la) {
      const t = this.#materialize(A, dtype);
      temps.push(t.temp);
      A = t.raw;
      la = matLayout(A, m, k)!;
    }
    if (!lb) {
      const t = this.#materialize(B, dtype);
      temps.push(t.temp);
      B = t.raw;
      lb = matLayout(B, k, n)!;
    }
    let bb = batchLayout(batchShape, A.strides, B.strides);
    if (!bb) {
      if (!isContiguous(A.shape, A.strides)) {
        const t = this.#materialize(A, dtype);
        temps.push(t.temp);
        A = t.raw;
      }
      if (!isContiguous(B.shape, B.strides)) {
        const t = this.#materialize(B, dtype);
        temps.push(t.temp);
        B = t.raw;
      }
      la = matLayout(A, m, k)!;
      lb = matLayout(B, k, n)!;
      bb = { count: batch, sa: m * k, sb: k * n };
    }
    this.#gemm(dtype, lb, la, n, m, k, B.ptr, A.ptr, out.ptr, bb.sb, bb.sa, m * n, bb.count);
    for (const t of temps) this.#release(t);
    return out;
  }

  /** C (col-major n' x m') = op(X) op(Y) for the row-major product; X is B, Y is A. */
  #gemm(
    dtype: DType,
    lx: MatLayout,
    ly: MatLayout,
    mm: number,
    nn: number,
    kk: number,
    xp: number,
    yp: number,
    cp: number,
    sx: number,
    sy: number,
    sc: number,
    count: number,
  ): void {
    const { lib, handle } = this.#blas();
    const tx = lx.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T;
    const ty = ly.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T;
    if (dtype === "float64") {
      lib.check(
        "cublasDgemmStridedBatched",
        lib.sym.cublasDgemmStridedBatched(
          handle,
          tx,
          ty,
          mm,
          nn,
          kk,
          this.#one64,
          BigInt(xp),
          lx.ld,
          BigInt(sx),
          BigInt(yp),
          ly.ld,
          BigInt(sy),
          this.#zero64,
          BigInt(cp),
          mm,
          BigInt(sc),
          count,
        ),
      );
    } else if (dtype === "float32" && !this.allowTF32) {
      lib.check(
        "cublasSgemmStridedBatched",
        lib.sym.cublasSgemmStridedBatched(
          handle,
          tx,
          ty,
          mm,
          nn,
          kk,
          this.#one32,
          BigInt(xp),
          lx.ld,
          BigInt(sx),
          BigInt(yp),
          ly.ld,
          BigInt(sy),
          this.#zero32,
          BigInt(cp),
          mm,
          BigInt(sc),
          count,
        ),
      );
    } else {
      const t = dtype === "bfloat16" ? CUDA_R.BF16 : CUDA_R.F32;
      const compute = dtype === "float32" ? CUBLAS_COMPUTE.F32_FAST_TF32 : CUBLAS_COMPUTE.F32;
      lib.check(
        "cublasGemmStridedBatchedEx",
        lib.sym.cublasGemmStridedBatchedEx(
          handle,
          tx,
          ty,
          mm,
          nn,
          kk,
          this.#one32,
          BigInt(xp),
          t,
          lx.ld,
          BigInt(sx),
          BigInt(yp),
          t,
          ly.ld,
          BigInt(sy),
          this.#zero32,
          BigInt(cp),
          t,
          mm,
          BigInt(sc),
          count,
          compute,
          CUBLAS_GEMM_DEFAULT,
        ),
      );
    }
  }

  // ---------------------------------------------------------------- Backend: optimiser updates

  /** One fused Adam(W) update in place (see `OptimPrimitives.adam`). */
  #adam(
    param: View,
    grad: View,
    expAvg: View,
    expAvgSq: View,
    copyTo: View | null,
    hyper: AdamHyperparameters,
  ): void {
    const op = "adam";
    const P = this.#raw(param, op), G = this.#raw(grad, op), M = this.#raw(expAvg, op), V = this.#raw(expAvgSq, op);
    const L = copyTo ? this.#raw(copyTo, op) : null;
    const dtype = P.dtype;
    const n = checkAdamOperands(
      op,
      { name: "param", ...P },
      { name: "grad", ...G },
      { name: "expAvg", ...M },
      { name: "expAvgSq", ...V },
      L && { name: "copyTo", ...L },
    );
    if (n === 0) return;
    const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled, step: t } = hyper;
    const p = this.#params;
    p.ptr(0, P.ptr);
    p.ptr(1, G.ptr);
    p.ptr(2, M.ptr);
    p.ptr(3, V.ptr);
    p.ptr(4, L ? L.ptr : 0);
    p.u64(5, n);
    p.f64(6, wd !== 0 && decoupled ? 1 - lr * wd : 1);
    p.f64(7, wd !== 0 && !decoupled ? wd : 0);
    p.f64(8, b1);
    p.f64(9, 1 - b1);
    p.f64(10, b2);
    p.f64(11, 1 - b2);
    p.f64(12, Math.sqrt(1 - b2 ** t));
    p.f64(13, eps);
    p.f64(14, lr / (1 - b1 ** t));
    this.#launch(this.#fn("optim", `adam_${SFX[dtype]}_${SFX[G.dtype]}`), this.#grid(Math.ceil(n / 4)), 256);
  }

  // ---------------------------------------------------------------- Backend: indexing

  /** Gathers along `axis` with an int32 index of the same rank. */
  gather(x: View, axis: number, index: View, dtype: DType): DeviceBuffer {
    const rank = x.shape.length;
    const ax = normAxis(axis, rank, "gather");
    if (rank > MAX_DIMS) throw new DeviceError("gather", `rank ${rank} > 8 is not supported on cuda`);
    const n = numel(index.shape);
    const out = this.#newBuffer(n, dtype);
    if (n === 0) return out;
    if (n >= MAX_U32_WORK) throw new DeviceError("gather", `${n} elements is too many for one launch`);
    const X = this.#as(x, dtype, "gather"), I = this.#as(index, "int32", "gather");
    const p = this.#params;
    p.ptr(0, X.raw.ptr);
    p.ptr(1, I.raw.ptr);
    p.ptr(2, out.ptr);
    p.u32(3, n);
    p.shape8(4, index.shape);
    p.strides8(5, X.raw.strides);
    p.strides8(6, I.raw.strides);
    p.u32(7, ax);
    p.u32(8, x.shape[ax]);
    this.#launch(this.#fn("indexing", `gather_${SFX[dtype]}`), this.#grid(n), 256);
    this.#release(X.temp);
    this.#release(I.temp);
    return out;
  }

  /** zeros(shape), then adds `src` at `index` along `axis` (atomics; float sums in any order). */
  scatterAdd(shape: readonly number[], axis: number, index: View, src: View, dtype: DType): DeviceBuffer {
    const rank = shape.length;
    const ax = normAxis(axis, rank, "scatterAdd");
    if (rank > MAX_DIMS) throw new DeviceError("scatterAdd", `rank ${rank} > 8 is not supported on cuda`);
    const total = numel(shape);
    const out = this.#newBuffer(total, dtype);
    if (total === 0) return out;
    const acc = accDtype(dtype);
    const accBuf = acc === dtype ? out : this.#newBuffer(total, acc);
    this.#memset0(accBuf.ptr, accBuf.bytes);
    const n = numel(src.shape);
    if (n > 0) {
      if (n >= MAX_U32_WORK) throw new DeviceError("scatterAdd", `${n} elements is too many for one launch`);
      const S = this.#as(src, dtype, "scatterAdd"), I = this.#as(index, "int32", "scatterAdd");
      const p = this.#params;
      p.ptr(0, S.raw.ptr);
      p.ptr(1, I.raw.ptr);
      p.ptr(2, accBuf.ptr);
      p.u32(3, n);
      p.shape8(4, src.shape);
      p.strides8(5, S.raw.strides);
      p.strides8(6, I.raw.strides);
      p.strides8(7, rowMajor(shape));
      p.u32(8, ax);
      p.u32(9, shape[ax]);
      this.#launch(this.#fn("indexing", `scatter_add_${SFX[dtype]}`), this.#grid(n), 256);
      this.#release(S.temp);
      this.#release(I.temp);
    }
    if (accBuf !== out) {
      this.#copyRaw({ ptr: accBuf.ptr, dtype: acc, shape: [total], strides: [1] }, {
        ptr: out.ptr,
        dtype,
        shape: [total],
        strides: [1],
      });
      this.free(accBuf);
    }
    return out;
  }

  // ---------------------------------------------------------------- Backend: FFT

  #fft(): { lib: Cufft; plans: FftPlanCache } {
    if (!this.#cufft) {
      const lib = loadCufft();
      this.#cufft = { lib, plans: new FftPlanCache(lib, this.#stream) };
    }
    return this.#cufft;
  }

  /** Complex DFT along `axis` (pairs in a trailing axis of 2); inverse divides by n. */
  fft(x: View, axis: number, inverse: boolean, dtype: DType): DeviceBuffer {
    if (dtype === "int32") throw new DTypeError("fft", "int32 output; use a float dtype");
    const rank = x.shape.length;
    if (rank < 2 || x.shape[rank - 1] !== 2) throw new ArgumentError("fft", "expected a trailing axis of size 2");
    const ax = normAxis(axis, rank - 1, "fft");
    const total = numel(x.shape);
    const out = this.#newBuffer(total, dtype);
    if (total === 0) return out;
    const n = x.shape[ax];
    const cd: DType = dtype === "float64" ? "float64" : "float32";
    const order = permutedOrder(rank - 1, ax);
    order.push(rank - 1);
    const src = this.#raw(x, "fft");
    const pShape = order.map((d) => x.shape[d]);
    const tmp = this.#newBuffer(total, cd);
    const tStrides = rowMajor(pShape);
    this.#copyRaw({ ptr: src.ptr, dtype: src.dtype, shape: pShape, strides: order.map((d) => src.strides[d]) }, {
      ptr: tmp.ptr,
      dtype: cd,
      shape: pShape,
      strides: tStrides,
    });
    const { lib, plans } = this.#fft();
    const batch = total / (2 * n);
    const plan = plans.get(cd === "float64" ? CUFFT_TYPE.Z2Z : CUFFT_TYPE.C2C, n, batch);
    const dir = inverse ? CUFFT_DIRECTION.INVERSE : CUFFT_DIRECTION.FORWARD;
    const tp = BigInt(tmp.ptr);
    if (cd === "float64") lib.check("cufftExecZ2Z", lib.sym.cufftExecZ2Z(plan, tp, tp, dir));
    else lib.check("cufftExecC2C", lib.sym.cufftExecC2C(plan, tp, tp, dir));
    const oStrides = rowMajor(x.shape);
    this.#copyRaw(
      { ptr: tmp.ptr, dtype: cd, shape: pShape, strides: tStrides },
      { ptr: out.ptr, dtype, shape: pShape, strides: order.map((d) => oStrides[d]) },
      inverse ? 1 / n : 1,
    );
    this.free(tmp);
    return out;
  }

  /** Real-to-complex DFT along `axis`: n reals give n/2+1 complex pairs. */
  rfft(x: View, axis: number, dtype: DType): DeviceBuffer {
    if (dtype === "int32") throw new DTypeError("rfft", "int32 output; use a float dtype");
    const rank = x.shape.length;
    const ax = normAxis(axis, rank, "rfft");
    const n = x.shape[ax];
    const h = Math.floor(n / 2) + 1;
    const outShape = [...x.shape.slice(0, ax), h, ...x.shape.slice(ax + 1), 2];
    const total = numel(outShape);
    if (n === 0 && total > 0) throw new ArgumentError("rfft", "axis of length 0");
    const out = this.#newBuffer(n === 0 ? 0 : total, dtype);
    if (n === 0 || total === 0) return out;
    const cd: DType = dtype === "float64" ? "float64" : "float32";
    const order = permutedOrder(rank, ax);
    const src = this.#raw(x, "rfft");
    const pShape = order.map((d) => x.shape[d]);
    const batch = numel(pShape) / n;
    const tin = this.#newBuffer(batch * n, cd);
    this.#copyRaw({ ptr: src.ptr, dtype: src.dtype, shape: pShape, strides: order.map((d) => src.strides[d]) }, {
      ptr: tin.ptr,
      dtype: cd,
      shape: pShape,
      strides: rowMajor(pShape),
    });
    const tout = this.#newBuffer(batch * h * 2, cd);
    const { lib, plans } = this.#fft();
    const plan = plans.get(cd === "float64" ? CUFFT_TYPE.D2Z : CUFFT_TYPE.R2C, n, batch);
    if (cd === "float64") lib.check("cufftExecD2Z", lib.sym.cufftExecD2Z(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
    else lib.check("cufftExecR2C", lib.sym.cufftExecR2C(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
    const oOrder = [...order, rank];
    const oShapeP = oOrder.map((d) => outShape[d]);
    const oStrides = rowMajor(outShape);
    this.#copyRaw(
      { ptr: tout.ptr, dtype: cd, shape: oShapeP, strides: rowMajor(oShapeP) },
      { ptr: out.ptr, dtype, shape: oShapeP, strides: oOrder.map((d) => oStrides[d]) },
    );
    this.free(tin);
    this.free(tout);
    return out;
  }

  /** Complex-to-real inverse DFT along `axis` producing `n` reals (divides by n). */
  irfft(x: View, axis: number, n: number, dtype: DType): DeviceBuffer {
    if (dtype === "int32") throw new DTypeError("irfft", "int32 output; use a float dtype");
    const rank = x.shape.length;
    if (rank < 2 || x.shape[rank - 1] !== 2) throw new ArgumentError("irfft", "expected a trailing axis of size 2");
    const ax = normAxis(axis, rank - 1, "irfft");
    if (!Number.isInteger(n) || n < 1) throw new ArgumentError("irfft", `bad length ${n}`);
    const h = Math.floor(n / 2) + 1;
    const m = x.shape[ax];
    const outShape = [...x.shape.slice(0, ax), n, ...x.shape.slice(ax + 1, rank - 1)];
    const total = numel(outShape);
    const out = this.#newBuffer(total, dtype);
    if (total === 0) return out;
    const cd: DType = dtype === "float64" ? "float64" : "float32";
    const order = permutedOrder(rank - 1, ax);
    const batch = total / n;
    const tin = this.#newBuffer(batch * h * 2, cd);
    if (m < h) this.#memset0(tin.ptr, tin.bytes);
    const mm = Math.min(m, h);
    if (mm > 0) {
      const src = this.#raw(x, "irfft");
      const inOrder = [...order, rank - 1];
      const pShape = inOrder.map((d) => (d === ax ? mm : x.shape[d]));
      const fullShape = inOrder.map((d) => (d === ax ? h : x.shape[d]));
      this.#copyRaw(
        { ptr: src.ptr, dtype: src.dtype, shape: pShape, strides: inOrder.map((d) => src.strides[d]) },
        { ptr: tin.ptr, dtype: cd, shape: pShape, strides: rowMajor(fullShape) },
      );
    }
    const tout = this.#newBuffer(total, cd);
    const { lib, plans } = this.#fft();
    const plan = plans.get(cd === "float64" ? CUFFT_TYPE.Z2D : CUFFT_TYPE.C2R, n, batch);
    if (cd === "float64") lib.check("cufftExecZ2D", lib.sym.cufftExecZ2D(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
    else lib.check("cufftExecC2R", lib.sym.cufftExecC2R(plan, BigInt(tin.ptr), BigInt(tout.ptr)));
    const pOut = order.map((d) => outShape[d]);
    const oStrides = rowMajor(outShape);
    this.#copyRaw(
      { ptr: tout.ptr, dtype: cd, shape: pOut, strides: rowMajor(pOut) },
      { ptr: out.ptr, dtype, shape: pOut, strides: order.map((d) => oStrides[d]) },
      1 / n,
    );
    this.free(tin);
    this.free(tout);
    return out;
  }

  // ---------------------------------------------------------------- Backend: banded operators

  /**
   * The banded operator `op` along `axis` (+ `add`) in one launch of kernels/stencil.cu (see
   * `Backend.stencil` and ./stencil.ts); sums in float64 in the CPU backend's order.
   */
  stencil(x: View, axis: number, op: BandedOperator, add: View | null, dtype: DType): DeviceBuffer {
    if (dtype !== "float32" && dtype !== "float64" && dtype !== "bfloat16") {
      throw new DTypeError("stencil", `${dtype} output; use a float dtype`);
    }
    const ax = normAxis(axis, x.shape.length, "stencil");
    const size = numel(x.shape);
    const out = this.#newBuffer(size, dtype);
    if (size === 0) return out;
    const coefs = bandCoefficients(op);
    let { raw, temp } = this.#as(x, dtype, "stencil");
    let plan = planStencil(raw.shape, raw.strides, ax);
    if (!plan) {
      const m = this.#materialize(raw, dtype);
      this.#release(temp);
      ({ raw, temp } = m);
      plan = planStencil(raw.shape, raw.strides, ax)!;
    }
    let addPtr = 0;
    const addTemps: (CudaBuffer | null)[] = [];
    if (add) {
      const a = this.#as(add, dtype, "stencil");
      const c = this.#contig(a.raw);
      addPtr = c.raw.ptr;
      addTemps.push(a.temp, c.temp);
    }
    const p = this.#params;
    p.ptr(0, raw.ptr);
    p.ptr(1, out.ptr);
    p.ptr(2, addPtr);
    p.u32s(3, plan.dims);
    p.strides8(4, plan.strides);
    p.u32s(5, bandWords(op));
    p.f64s(6, coefs); // struct BandCoefs (2 KiB) runs on through slot 13: it must stay the last parameter
    this.#launch(
      this.#fn("stencil", `stencil_${SFX[dtype]}`),
      Math.max(1, Math.min(plan.tiles, this.#maxBlocks)),
      STENCIL_THREADS,
    );
    this.#release(temp);
    for (const t of addTemps) this.#release(t);
    return out;
  }

  // ---------------------------------------------------------------- Backend: memory

  /** Bytes in live buffers, their peak, and bytes cached for reuse. */
  memory(): MemoryStats {
    const s = this.#alloc.stats();
    return { current: s.current, peak: s.peak, cached: s.cached };
  }

  /** The allocator's full counters (reserved bytes, cache hits and misses). */
  allocatorStats(): AllocatorStats {
    return this.#alloc.stats();
  }

  /** Resets `peak` to `current`. */
  resetPeak(): void {
    this.#alloc.resetPeak();
  }

  /** Frees every cached block back to the driver; returns the bytes released. */
  releaseCached(): number {
    return this.#alloc.releaseCached();
  }

  /** Returns a buffer's memory to the cache (no-op when already freed). */
  free(buffer: DeviceBuffer): void {
    if (!(buffer instanceof CudaBuffer) || buffer.backend !== this || buffer.freed) return;
    buffer.freed = true;
    this.#alloc.free(buffer.ptr, buffer.bytes);
    buffer.ptr = 0;
  }

  /** Waits for every queued launch and copy. */
  synchronize(): void {
    const s = this.#drv.sym.cuStreamSynchronize(this.#stream);
    if (s !== 0) this.#drv.check("cuStreamSynchronize", s);
  }

  /** Low-level handles (benchmarks, interop). */
  get raw(): CudaRaw {
    return {
      driver: this.#drv,
      stream: this.#stream,
      cublas: () => this.#blas(),
      kernel: (family, name) => this.#fn(family, name),
      params: this.#params,
      launch: (fn, blocks, threads) => this.#launch(fn, blocks, threads),
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
    const drv = this.#drv;
    const out = new BigUint64Array(1);
    drv.check("cuEventCreate", drv.sym.cuEventCreate(out, 0));
    const e0 = Deno.UnsafePointer.create(out[0]);
    drv.check("cuEventCreate", drv.sym.cuEventCreate(out, 0));
    const e1 = Deno.UnsafePointer.create(out[0]);
    try {
      drv.check("cuEventRecord", drv.sym.cuEventRecord(e0, this.#stream));
      fn();
      drv.check("cuEventRecord", drv.sym.cuEventRecord(e1, this.#stream));
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
    if (this.#disposed) return;
    try {
      this.synchronize();
    } catch (e) {
      if (!(e instanceof PatchworkError)) throw e;
    }
    this.#cufft?.plans.clear();
    if (this.#cublas) this.#cublas.lib.sym.cublasDestroy_v2(this.#cublas.handle);
    this.#alloc.releaseCached();
    for (const mods of this.#modules.values()) for (const m of mods) this.#drv.sym.cuModuleUnload(m);
    this.#modules.clear();
    this.#fns.clear();
    this.#drv.sym.cuStreamDestroy_v2(this.#stream);
    this.#drv.sym.cuDevicePrimaryCtxRelease_v2(this.device);
    this.#disposed = true;
  }
}

/** How a matrix operand is laid out for cuBLAS. */
interface MatLayout {
  rowMajor: boolean;
  ld: number;
}

/** Row-major (unit column stride) or column-major (unit row stride) layout of the last two axes. */
function matLayout(v: Raw, rows: number, cols: number): MatLayout | null {
  const r = v.shape.length;
  const sr = v.strides[r - 2], sc = v.strides[r - 1];
  if ((cols === 1 || sc === 1) && (rows === 1 || sr >= Math.max(1, cols)) && sr < 2 ** 31) {
    return { rowMajor: true, ld: rows === 1 ? Math.max(1, cols) : sr };
  }
  if ((rows === 1 || sr === 1) && (cols === 1 || sc >= Math.max(1, rows)) && sc < 2 ** 31) {
    return { rowMajor: false, ld: cols === 1 ? Math.max(1, rows) : sc };
  }
  return null;
}

/** The batch axes as one strided batch, or null when they do not collapse to one. */
function batchLayout(
  batchShape: readonly number[],
  sa: readonly number[],
  sb: readonly number[],
): { count: number; sa: number; sb: number } | null {
  const nb = batchShape.length;
  if (nb === 0) return { count: 1, sa: 0, sb: 0 };
  const c = collapse(batchShape, [sa.slice(0, nb), sb.slice(0, nb)]);
  if (c.shape.length !== 1) return null;
  const a = c.strides[0][0], b = c.strides[1][0];
  if (a < 0 || b < 0) return null;
  return { count: c.shape[0], sa: a, sb: b };
}

/** Axis order [every axis but `ax`, ax] over `rank` axes. */
function permutedOrder(rank: number, ax: number): number[] {
  const o: number[] = [];
  for (let d = 0; d < rank; d++) if (d !== ax) o.push(d);
  o.push(ax);
  return o;
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

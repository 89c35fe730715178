/**
 * What every op family of the CUDA backend shares: one device's primary context and stream, the
 * caching allocator, kernel lookup by name and launches, and buffers and strided operands given
 * by raw address (the copies between them are in `transfer.ts`). The op families (`elementwise.ts`, `reduce.ts`,
 * `matmul.ts`, `fft.ts`, `indexing.ts`, `optim.ts`, `stencil.ts`, `linalg.ts`) are functions of a
 * {@link CudaDevice}; `backend.ts` puts them together behind the `Backend` interface.
 *
 * @module
 */

import type { Backend, DeviceBuffer, DeviceCounts, View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { ArgumentError, DeviceError } from "../../tensor/errors.ts";
import { CachingAllocator } from "./allocator.ts";
import { KERNEL_PARTS, KernelCompiler, type KernelFamily, type KernelSources, unitName } from "./compiler.ts";
import { type Cublas, loadCublas } from "./cublas.ts";
import { type Cufft, FftPlanCache, loadCufft } from "./cufft.ts";
import { CU_DEVICE_ATTRIBUTE, CU_FUNC_ATTRIBUTE, CU_STREAM_NON_BLOCKING, type Driver, loadDriver } from "./driver.ts";
import { CudaError } from "./errors.ts";
import { cstr } from "./libraries.ts";
import { type CompiledKernel, loadNvrtc } from "./nvrtc.ts";
import { KernelParams } from "./params.ts";
import type { LinalgOperand } from "./linalg.ts";

/**
 * The suffix of each storage type in kernel names (`unary_exp_f32`).
 *
 * @example
 * ```ts
 * import { SFX } from "./device.ts";
 * SFX.bfloat16; // "bf16"
 * ```
 */
export const SFX: Readonly<Record<DType, string>> = { float32: "f32", float64: "f64", bfloat16: "bf16", int32: "i32" };

/**
 * Bytes per element of each storage type.
 *
 * @example
 * ```ts
 * import { ITEM } from "./device.ts";
 * ITEM.bfloat16; // 2
 * ```
 */
export const ITEM: Readonly<Record<DType, number>> = { float32: 4, float64: 8, bfloat16: 2, int32: 4 };

const CUDA_ERROR_NOT_FOUND = 500;

/**
 * The type reductions and atomics accumulate a storage type in: float32 for bfloat16, float64
 * for int32.
 *
 * @example
 * ```ts
 * import { accDtype } from "./device.ts";
 * accDtype("bfloat16"); // "float32"
 * ```
 */
export function accDtype(dtype: DType): DType {
  return dtype === "bfloat16" ? "float32" : dtype === "int32" ? "float64" : dtype;
}

/**
 * A buffer in device memory owned by a CUDA backend.
 *
 * @example
 * ```ts
 * import { createCudaBackend } from "./backend.ts";
 * // const cuda = await createCudaBackend(); const buf = cuda.full(4, 1, "float32"); buf.size; // 4
 * ```
 */
export class CudaBuffer implements DeviceBuffer {
  /** The owning backend. */
  readonly backend: Backend;
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
  constructor(backend: Backend, size: number, dtype: DType, ptr: number, bytes: number) {
    this.backend = backend;
    this.size = size;
    this.dtype = dtype;
    this.ptr = ptr;
    this.bytes = bytes;
  }
}

/**
 * A strided window given by raw address: the internal currency of the op families (the linear
 * algebra's operands are the same).
 *
 * @example
 * ```ts
 * import type { Raw } from "./device.ts";
 * const r: Raw = { ptr: 0x7f0000000000, dtype: "float32", shape: [2, 3], strides: [1, 2] };
 * ```
 */
export type Raw = LinalgOperand;

/**
 * A view as a {@link Raw} of the wanted dtype, and the converted contiguous copy it was made
 * from (to free once the launch that reads it is queued), if any.
 *
 * @example
 * ```ts
 * import type { Operand } from "./device.ts";
 * // const { raw, temp }: Operand = operand(dev, view, "float32", "exp"); ...; dev.release(temp);
 * ```
 */
export interface Operand {
  /** The operand. */
  readonly raw: Raw;
  /** A temporary buffer behind it, or null. */
  readonly temp: CudaBuffer | null;
}

/**
 * One device as the op families see it. Not public API: everything here bypasses the checks of
 * the tensor layer.
 *
 * @example
 * ```ts
 * import { CudaDevice } from "./device.ts";
 * // const dev = new CudaDevice(backend, 0, sources, undefined);
 * // dev.launch(dev.kernel("copy", "fill_u64"), 1, 256);
 * ```
 */
export class CudaDevice {
  /** The backend that owns the buffers made here. */
  readonly owner: Backend;
  /** The driver library. */
  readonly drv: Driver;
  /** The stream every launch and copy is queued on. */
  readonly stream: Deno.PointerValue;
  /** The parameter block the next launch passes. */
  readonly params: KernelParams = new KernelParams();
  /** What was queued and waited for since the device opened (the backend's `deviceCounts`). */
  readonly counts: { -readonly [K in keyof DeviceCounts]: number } = {
    launches: 0,
    libraryCalls: 0,
    copies: 0,
    uploads: 0,
    syncs: 0,
  };
  /** Device ordinal. */
  readonly ordinal: number;
  /** Device name, compute capability, memory and multiprocessor count. */
  readonly description: string;
  /** Compute capability as major*10+minor. */
  readonly arch: number;
  /** Streaming multiprocessors. */
  readonly multiprocessors: number;
  /** Device memory in bytes. */
  readonly totalMemory: number;
  /** Most blocks a grid-stride launch uses. */
  readonly maxBlocks: number;
  /** Opt-in limit of dynamic shared memory per block (bytes). */
  readonly maxShared: number;
  /** The caching allocator. */
  readonly alloc: CachingAllocator;
  /** The kernel compiler (NVRTC through a disk cache). */
  readonly compiler: KernelCompiler;
  /** Set once disposed. */
  disposed = false;
  readonly #ctx: Deno.PointerValue;
  readonly #modules = new Map<KernelFamily, Deno.PointerValue[]>();
  readonly #fns = new Map<string, Deno.PointerValue>();
  readonly #fnOut = new BigUint64Array(1);
  readonly #sharedRaised = new Set<Deno.PointerValue>();
  #cublas: { lib: Cublas; handle: Deno.PointerValue } | undefined;
  #cufft: { lib: Cufft; plans: FftPlanCache } | undefined;

  /**
   * Opens the driver, device `ordinal` (default `$PATCHWORK_CUDA_DEVICE` or 0), its primary
   * context, a stream, and NVRTC with the kernel `sources` (read once the device is open) and the
   * kernel cache in `cacheDir` (null: no disk cache; undefined: the default directory).
   */
  constructor(
    owner: Backend,
    ordinal: number | undefined,
    sources: () => KernelSources,
    cacheDir: string | null | undefined,
  ) {
    this.owner = owner;
    let drv: Driver;
    try {
      drv = loadDriver();
    } catch (e) {
      if (e instanceof CudaError) throw new DeviceError("cuda", `the CUDA driver is unusable: ${e.message}`);
      throw e;
    }
    this.drv = drv;
    const i32 = new Int32Array(1);
    drv.check("cuDeviceGetCount", drv.sym.cuDeviceGetCount(i32));
    if (i32[0] === 0) throw new DeviceError("cuda", "no CUDA device found");
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
    this.ordinal = ordinal;
    const attr = (a: number): number => {
      drv.check("cuDeviceGetAttribute", drv.sym.cuDeviceGetAttribute(i32, a, dev));
      return i32[0];
    };
    this.arch = attr(CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MAJOR) * 10 +
      attr(CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MINOR);
    this.multiprocessors = attr(CU_DEVICE_ATTRIBUTE.MULTIPROCESSOR_COUNT);
    this.maxBlocks = this.multiprocessors * 8;
    this.maxShared = attr(CU_DEVICE_ATTRIBUTE.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
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
    this.stream = Deno.UnsafePointer.create(out[0]);
    this.alloc = new CachingAllocator(drv, () => this.synchronize());
    this.compiler = new KernelCompiler(loadNvrtc(), this.arch, sources(), cacheDir);
  }

  // ---------------------------------------------------------------- kernels

  /** Compiles (or reads from the cache) and loads every kernel family, compiling in parallel. */
  async compileAll(threads?: number): Promise<void> {
    const images = await this.compiler.buildAll(threads);
    for (const family of Object.keys(KERNEL_PARTS) as KernelFamily[]) {
      if (this.#modules.has(family)) continue;
      const mods: Deno.PointerValue[] = [];
      for (let part = 0; part < KERNEL_PARTS[family]; part++) {
        const img = images.get(unitName({ family, part }));
        mods.push(this.#loadModule(img ?? this.compiler.build({ family, part })));
      }
      this.#modules.set(family, mods);
    }
  }

  #loadModule(img: CompiledKernel): Deno.PointerValue {
    let image = img.image;
    if (img.kind === "ptx" && image[image.length - 1] !== 0) {
      const z = new Uint8Array(image.length + 1);
      z.set(image);
      image = z;
    }
    const out = new BigUint64Array(1);
    this.drv.check("cuModuleLoadData", this.drv.sym.cuModuleLoadData(out, image));
    return Deno.UnsafePointer.create(out[0]);
  }

  /** The function handle of kernel `name` in kernels/`family`.cu (compiling the family at first use). */
  kernel(family: KernelFamily, name: string): Deno.PointerValue {
    const hit = this.#fns.get(name);
    if (hit !== undefined) return hit;
    let mods = this.#modules.get(family);
    if (!mods) {
      mods = [];
      for (let part = 0; part < KERNEL_PARTS[family]; part++) {
        mods.push(this.#loadModule(this.compiler.build({ family, part })));
      }
      this.#modules.set(family, mods);
    }
    const nameC = cstr(name);
    for (const m of mods) {
      const status = this.drv.sym.cuModuleGetFunction(this.#fnOut, m, nameC);
      if (status === 0) {
        const f = Deno.UnsafePointer.create(this.#fnOut[0]);
        this.#fns.set(name, f);
        return f;
      }
      if (status !== CUDA_ERROR_NOT_FOUND) this.drv.check("cuModuleGetFunction", status);
    }
    throw new DeviceError("cuda", `kernel ${name} not found in kernels/${family}.cu`);
  }

  /** Launches `fn` on the stream with `blocks` × `threads`, the current parameters and `shared` bytes. */
  launch(fn: Deno.PointerValue, blocks: number, threads: number, shared = 0): void {
    if (shared > 48 * 1024 && !this.#sharedRaised.has(fn)) {
      this.drv.check(
        "cuFuncSetAttribute",
        this.drv.sym.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE.MAX_DYNAMIC_SHARED_SIZE_BYTES, this.maxShared),
      );
      this.#sharedRaised.add(fn);
    }
    this.counts.launches++;
    const status = this.drv.sym.cuLaunchKernel(
      fn,
      blocks,
      1,
      1,
      threads,
      1,
      1,
      shared,
      this.stream,
      this.params.pointers,
      null,
    );
    if (status !== 0) this.drv.check("cuLaunchKernel", status);
  }

  /** Blocks of `threads` for `work` items of a grid-stride kernel (at most `maxBlocks`). */
  grid(work: number, threads = 256): number {
    const b = Math.ceil(work / threads);
    return b < 1 ? 1 : b > this.maxBlocks ? this.maxBlocks : b;
  }

  /** The cuBLAS library and this device's handle, bound to the stream (created at first use). */
  blas(): { lib: Cublas; handle: Deno.PointerValue } {
    this.counts.libraryCalls++;
    if (!this.#cublas) {
      const lib = loadCublas();
      this.#cublas = { lib, handle: lib.create(this.stream) };
    }
    return this.#cublas;
  }

  /** The cuFFT library and a plan cache on the stream (created at first use). */
  fft(): { lib: Cufft; plans: FftPlanCache } {
    this.counts.libraryCalls++;
    if (!this.#cufft) {
      const lib = loadCufft();
      this.#cufft = { lib, plans: new FftPlanCache(lib, this.stream) };
    }
    return this.#cufft;
  }

  // ---------------------------------------------------------------- buffers and operands

  /** A new (uninitialised) buffer of `size` elements. */
  newBuffer(size: number, dtype: DType): CudaBuffer {
    if (!Number.isInteger(size) || size < 0) throw new ArgumentError("cuda alloc", `bad size ${size}`);
    if (this.disposed) throw new DeviceError("cuda", "backend was disposed");
    const bytes = size * ITEM[dtype];
    return new CudaBuffer(this.owner, size, dtype, this.alloc.alloc(bytes), bytes);
  }

  /** `b` as a live buffer of this device, or a DeviceError naming `op`. */
  buffer(b: DeviceBuffer, op: string): CudaBuffer {
    if (!(b instanceof CudaBuffer) || b.backend !== this.owner) {
      throw new DeviceError(op, `buffer belongs to the ${b.backend?.name ?? "unknown"} backend, not this cuda backend`);
    }
    if (b.freed) throw new DeviceError(op, "buffer was freed");
    return b;
  }

  /** A view by raw address. */
  raw(v: View, op: string): Raw {
    const b = this.buffer(v.buffer, op);
    return { ptr: b.ptr + v.offset * ITEM[b.dtype], dtype: b.dtype, shape: v.shape, strides: v.strides };
  }

  /** Frees a temporary (stream-ordered: queued work still sees it). */
  release(t: CudaBuffer | null): void {
    if (t) this.free(t);
  }

  /** Returns a buffer's memory to the cache (no-op when already freed). */
  free(buffer: CudaBuffer): void {
    if (buffer.freed) return;
    buffer.freed = true;
    this.alloc.free(buffer.ptr, buffer.bytes);
    buffer.ptr = 0;
  }

  /** Waits for every queued launch and copy. */
  synchronize(): void {
    this.counts.syncs++;
    const s = this.drv.sym.cuStreamSynchronize(this.stream);
    if (s !== 0) this.drv.check("cuStreamSynchronize", s);
  }

  /** Releases the stream, cuBLAS/cuFFT state, the kernel modules, cached memory and the context reference. */
  dispose(): void {
    this.#cufft?.plans.clear();
    if (this.#cublas) this.#cublas.lib.sym.cublasDestroy_v2(this.#cublas.handle);
    this.alloc.releaseCached();
    for (const mods of this.#modules.values()) for (const m of mods) this.drv.sym.cuModuleUnload(m);
    this.#modules.clear();
    this.#fns.clear();
    this.drv.sym.cuStreamDestroy_v2(this.stream);
    this.drv.sym.cuDevicePrimaryCtxRelease_v2(this.ordinal);
    this.disposed = true;
  }
}

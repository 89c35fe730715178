/**
 * The CUDA backend of patchwork: {@link createCudaBackend} (or `new CudaBackend()`) gives a
 * {@link CudaBackend} implementing the tensor layer's `Backend` on an NVIDIA GPU through Deno FFI.
 * Nothing is loaded at import time. Needs `--allow-ffi` (and read/env access for the kernel
 * sources, the kernel cache and the library search).
 *
 * @example
 * ```ts
 * import { createCudaBackend } from "./mod.ts";
 * // const cuda = await createCudaBackend();
 * // cuda.description; // "NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB, 132 SMs)"
 * ```
 *
 * @module
 */

export { createCudaBackend, CudaBackend, type CudaBackendOptions, CudaBuffer, type CudaRaw } from "./backend.ts";
export { type AllocatorStats, CachingAllocator, sizeClass } from "./allocator.ts";
export { CudaLinalg, type CudaLinalgHost, type LinalgOperand } from "./linalg.ts";
export { CudaError, formatBytes, OutOfMemoryError } from "./errors.ts";
export { type Cublas, CUBLAS_SYMBOLS, type CublasSymbols } from "./cublas.ts";
export { type Driver, DRIVER_SYMBOLS, type DriverSymbols } from "./driver.ts";
export type { KernelParams } from "./params.ts";
export {
  candidatePaths,
  type CudaLibraryName,
  ffiAllowed,
  LIBRARY_SPECS,
  type OpenedLibrary,
  openLibrary,
} from "./libraries.ts";
export {
  defaultCacheDir,
  KERNEL_FAMILIES,
  kernelCacheDir,
  type KernelCacheStats,
  type KernelFamily,
  type KernelSources,
  loadKernelSources,
  loadKernelSourcesSync,
} from "./compiler.ts";

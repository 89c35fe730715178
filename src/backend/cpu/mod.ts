/**
 * The CPU backend, the default everywhere: typed arrays in a shared WebAssembly heap, SIMD
 * kernels on every thread.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./mod.ts";
 * const cpu = new CpuBackend();
 * cpu.name; // "cpu"
 * ```
 *
 * @module
 */

export { CpuBackend, CpuBuffer } from "./cpu_backend.ts";
export type { NumArray, StorageArray } from "./buffer.ts";

/**
 * The CPU backend: TypeScript on typed arrays, the default everywhere.
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

/**
 * The CPU backend's WebAssembly module: every kernel family assembled into one module at first
 * use, compiled once and instantiated on each thread over the shared heap memory.
 *
 * @module
 */

import { Module } from "./asm.ts";
import { addElementwiseKernels } from "./elementwise.ts";
import { addFftKernels } from "./fft.ts";
import { addMatmulKernels } from "./matmul.ts";
import { addOptimKernels } from "./optim.ts";
import { addReduceKernels } from "./reduce.ts";
import { addStencilKernels } from "./stencil.ts";

/** Pages the module declares as its memory's maximum (16 GiB, the heap's limit). */
const MAX_PAGES = 262144;

let compiled: { module: WebAssembly.Module; names: string[] } | undefined;

/**
 * The compiled kernel module and the names of its parallel kernels, in a fixed order.
 *
 * @example
 * ```ts
 * import { kernelModule } from "./kernels.ts";
 * kernelModule().names.includes("matmul_f32"); // true
 * ```
 */
export function kernelModule(): { module: WebAssembly.Module; names: string[] } {
  if (compiled) return compiled;
  const m = new Module();
  m.importMemory(1, MAX_PAGES, true);
  addMatmulKernels(m);
  addReduceKernels(m);
  addFftKernels(m);
  addStencilKernels(m);
  addElementwiseKernels(m);
  addOptimKernels(m);
  const module = new WebAssembly.Module(m.encode() as Uint8Array<ArrayBuffer>);
  const names = WebAssembly.Module.exports(module).map((e) => e.name);
  compiled = { module, names };
  return compiled;
}

// Shared by the CUDA test files: the CPU reference backend, the CUDA backend when one is usable
// (else every GPU test registers as ignored, with the reason printed once per file), and
// row-major views (the generic helpers are in helpers.ts).

import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { createCudaBackend, type CudaBackend, ffiAllowed } from "../src/backend/cuda/mod.ts";
import type { DeviceBuffer, View } from "../src/tensor/backend.ts";
import { rowMajor } from "./helpers.ts";

/** The CPU backend the GPU results are compared with. */
export const cpu = new CpuBackend();

let backend: CudaBackend | undefined;
let reason = "";
if (!ffiAllowed()) {
  reason = "no --allow-ffi";
} else {
  try {
    backend = await createCudaBackend();
  } catch (e) {
    reason = (e as Error).message.split("\n")[0];
  }
}

/** The CUDA backend, or undefined without a usable GPU. */
export const cuda: CudaBackend | undefined = backend;

/** Prints which device a test file runs on, or why its GPU tests are ignored. */
export function announce(file: string, extra = ""): void {
  if (!cuda) console.log(`${file}: CUDA unavailable (${reason}); GPU tests are ignored`);
  else console.log(`${file}: ${cuda.description}${extra}`);
}

/** Registers a test that needs the GPU (ignored without one), its name prefixed by `prefix`. */
export function gpuTester(prefix: string): (name: string, fn: (g: CudaBackend) => void | Promise<void>) => void {
  return (name, fn) =>
    Deno.test({
      name: `${prefix}: ${name}`,
      ignore: cuda === undefined,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: () => fn(cuda!),
    });
}

/** The whole buffer as a contiguous view of `shape`. */
export function whole(buf: DeviceBuffer, shape: readonly number[]): View {
  return { buffer: buf, shape, strides: rowMajor(shape), offset: 0 };
}

// Shared by the CUDA test files: the CPU reference backend, the CUDA backend when one is usable
// (else every GPU test registers as ignored, with the reason printed once per file), a seeded
// random stream, and row-major views.

import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { createCudaBackend, type CudaBackend, ffiAllowed } from "../src/backend/cuda/mod.ts";
import type { DeviceBuffer, View } from "../src/tensor/backend.ts";

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

/** A seeded uniform stream on [0, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` seeded uniform numbers on [lo, hi). */
export function randomData(n: number, seed: number, lo = -3, hi = 3): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major strides of a shape. */
export function rowMajor(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** The whole buffer as a contiguous view of `shape`. */
export function whole(buf: DeviceBuffer, shape: readonly number[]): View {
  return { buffer: buf, shape, strides: rowMajor(shape), offset: 0 };
}

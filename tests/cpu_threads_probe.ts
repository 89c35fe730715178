// Prints a digest of CPU kernel results on seeded inputs; cpu_simd_test.ts runs it under several
// PATCHWORK_THREADS values and requires the same bits from each.

import { CpuBackend } from "../src/backend/cpu/mod.ts";
import type { View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import { contiguousStrides } from "../src/tensor/shape.ts";

const cpu = new CpuBackend();

function input(shape: number[], dtype: DType, seed: number): View {
  const size = shape.reduce((a, b) => a * b, 1);
  return { buffer: cpu.random("normal", size, seed, 0, dtype), shape, strides: contiguousStrides(shape), offset: 0 };
}

/** FNV-1a over the result's bytes. */
function digest(view: View): string {
  const data = cpu.toHost(view);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

for (const dtype of ["float32", "float64"] as const) {
  const a = input([3, 200, 300], dtype, 1);
  const b = input([300, 270], dtype, 2);
  const bb = { ...b, shape: [3, 300, 270], strides: [0, ...b.strides] };
  const shape = [3, 200, 270];
  const c = cpu.matmul(a, bb, dtype);
  console.log(`matmul ${dtype} ${digest({ buffer: c, shape, strides: contiguousStrides(shape), offset: 0 })}`);
}

for (const dtype of ["float32", "float64"] as const) {
  const x = input([3000, 700], dtype, 3); // column sums in several bands of rows
  const rows = cpu.reduce("sum", { ...x, shape: [2_100_000], strides: [1] }, [0], dtype);
  console.log(`sum ${dtype} ${digest({ buffer: rows, shape: [1], strides: [1], offset: 0 })}`);
  const cols = cpu.reduce("sum", x, [0], dtype);
  console.log(`column sum ${dtype} ${digest({ buffer: cols, shape: [700], strides: [1], offset: 0 })}`);
  const s = cpu.softmax(x, 1, false, dtype);
  console.log(`softmax ${dtype} ${digest({ buffer: s, shape: x.shape, strides: x.strides, offset: 0 })}`);
}

for (const dtype of ["float32", "float64"] as const) {
  const x = input([4, 64, 32, 16], dtype, 4); // channels last, as the Fourier layers lay them out
  const spec = cpu.rfft(x, 1, dtype);
  const shape = [4, 33, 32, 16, 2];
  console.log(`rfft ${dtype} ${digest({ buffer: spec, shape, strides: contiguousStrides(shape), offset: 0 })}`);
}

const none = { rows: 0, cols: 0, values: [] };
const d2 = {
  n: 200,
  lo: -1,
  stencil: [1, -2, 1],
  periodic: false,
  head: { rows: 1, cols: 2, values: [-2, 1] },
  tail: none,
};
for (const dtype of ["float32", "float64"] as const) {
  for (const [shape, axis] of [[[300, 200], 1], [[200, 300], 0]] as [number[], number][]) {
    const x = input(shape, dtype, 5);
    const y = cpu.stencil(x, axis, d2, null, dtype);
    console.log(
      `stencil ${dtype} axis ${axis} ${digest({ buffer: y, shape, strides: contiguousStrides(shape), offset: 0 })}`,
    );
  }
}

/**
 * Throughput of the CPU backend's hot loops, printed as a markdown table.
 *
 * - matmul: `matmulKernel` on square row-major n × n × n products (GFLOP/s = 2n³ / time), and the
 *   same product through `CpuBackend.matmul` (which also allocates the result).
 * - elementwise: `CpuBackend.binary` (add of two vectors, of a transposed matrix and a matrix, and
 *   a vector times a number) and `CpuBackend.unary` (exp, sigmoid, gelu) on 2²² elements, in GB/s
 *   of traffic (arrays read and written).
 *
 * Each figure is the best of several timed repetitions after warm-up. Run with
 * `deno run -A bench/cpu_ops.ts` (`--elementwise` for the elementwise rows alone).
 *
 * @module
 */

import { matmulKernel } from "../src/backend/cpu/matmul.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import type { Backend, DeviceBuffer, View } from "../src/tensor/backend.ts";

type Float = "float32" | "float64";

/**
 * Best wall time in milliseconds of at least `reps` timed calls of `fn` (more while less than
 * 300 ms have been timed), after at least `warmup` untimed calls and 300 ms of warm-up so the JIT
 * has optimised the hot loops; `after` runs outside the timing after each call (to free results).
 */
function bestOf(fn: () => unknown, warmup: number, reps: number, after?: (result: unknown) => void): number {
  const warmStart = performance.now();
  for (let i = 0; i < warmup || performance.now() - warmStart < 300; i++) {
    const result = fn();
    after?.(result);
  }
  let best = Infinity;
  let total = 0;
  for (let i = 0; i < reps || total < 300; i++) {
    const t0 = performance.now();
    const result = fn();
    const t = performance.now() - t0;
    after?.(result);
    best = Math.min(best, t);
    total += t;
  }
  return best;
}

/** CPU model name from /proc/cpuinfo, or "unknown" where it cannot be read. */
function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const line = info.split("\n").find((l) => l.startsWith("model name"));
    return line ? line.slice(line.indexOf(":") + 1).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

function randomArray(dtype: Float, size: number): Float32Array | Float64Array {
  const x = dtype === "float32" ? new Float32Array(size) : new Float64Array(size);
  for (let i = 0; i < size; i++) x[i] = Math.random() - 0.5;
  return x;
}

function view(buffer: DeviceBuffer, shape: number[]): View {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  return { buffer, shape, strides, offset: 0 };
}

interface Row {
  op: string;
  dtype: Float;
  size: string;
  value: number;
  unit: string;
  ms: number;
}

const rows: Row[] = [];

function report(row: Row): void {
  rows.push(row);
  console.error(`  ${row.op} ${row.dtype} ${row.size}: ${row.value.toFixed(2)} ${row.unit}`);
}

function benchMatmul(backend: Backend | undefined): void {
  for (const dtype of ["float32", "float64"] as const) {
    for (const n of [256, 512, 1024]) {
      const a = randomArray(dtype, n * n);
      const b = randomArray(dtype, n * n);
      const out = dtype === "float32" ? new Float32Array(n * n) : new Float64Array(n * n);
      const reps = n >= 1024 ? 3 : 5;
      const warmup = n >= 1024 ? 1 : 3;
      const flops = 2 * n ** 3;
      const ms = bestOf(() => matmulKernel(a, 0, n, 1, b, 0, n, 1, out, 0, n, n, n), warmup, reps);
      report({ op: "matmulKernel", dtype, size: `${n}×${n}×${n}`, value: flops / ms / 1e6, unit: "GFLOP/s", ms });
      if (backend) {
        const va = view(backend.fromHost(a, dtype), [n, n]);
        const vb = view(backend.fromHost(b, dtype), [n, n]);
        const msB = bestOf(
          () => backend.matmul(va, vb, dtype),
          warmup,
          reps,
          (r) => backend.free(r as DeviceBuffer),
        );
        report({
          op: "CpuBackend.matmul",
          dtype,
          size: `${n}×${n}×${n}`,
          value: flops / msB / 1e6,
          unit: "GFLOP/s",
          ms: msB,
        });
        backend.free(va.buffer);
        backend.free(vb.buffer);
      }
    }
  }
}

function benchElementwise(backend: Backend): void {
  const n = 1 << 22;
  const side = 1 << 11;
  for (const dtype of ["float32", "float64"] as const) {
    const bytes = dtype === "float32" ? 4 : 8;
    const va = view(backend.fromHost(randomArray(dtype, n), dtype), [n]);
    const vb = view(backend.fromHost(randomArray(dtype, n), dtype), [n]);
    const free = (r: unknown) => backend.free(r as DeviceBuffer);
    const gbps = (op: string, arrays: number, fn: () => DeviceBuffer) => {
      const ms = bestOf(fn, 3, 10, free);
      report({ op, dtype, size: `${n}`, value: (arrays * n * bytes) / ms / 1e6, unit: "GB/s", ms });
    };
    gbps("binary add", 3, () => backend.binary("add", va, vb, [n], dtype));
    gbps("binary mul (scalar)", 2, () => backend.binary("mul", va, 0.5, [n], dtype));
    // The transpose of a square matrix: a strided walk through `a`.
    const at = { ...va, shape: [side, side], strides: [1, side] };
    gbps(
      "binary add (transposed)",
      3,
      () => backend.binary("add", at, { ...vb, shape: [side, side] }, [side, side], dtype),
    );
    gbps("unary exp", 2, () => backend.unary("exp", va, dtype));
    gbps("unary sigmoid", 2, () => backend.unary("sigmoid", va, dtype));
    gbps("unary gelu", 2, () => backend.unary("gelu", va, dtype));
    backend.free(va.buffer);
    backend.free(vb.buffer);
  }
}

if (import.meta.main) {
  const backend = new CpuBackend();
  console.log(`# patchwork CPU backend benchmark`);
  console.log();
  console.log(`- date: ${new Date().toISOString()}`);
  console.log(`- CPU: ${cpuModel()} (navigator.hardwareConcurrency = ${navigator.hardwareConcurrency})`);
  console.log(`- OS: ${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`);
  console.log(`- Deno ${Deno.version.deno}, V8 ${Deno.version.v8}; single-threaded`);
  console.log();
  if (!Deno.args.includes("--elementwise")) benchMatmul(backend);
  benchElementwise(backend);
  console.log(`| op | dtype | size | throughput | best time (ms) |`);
  console.log(`|---|---|---|---:|---:|`);
  for (const r of rows) {
    console.log(`| ${r.op} | ${r.dtype} | ${r.size} | ${r.value.toFixed(2)} ${r.unit} | ${r.ms.toFixed(3)} |`);
  }
}

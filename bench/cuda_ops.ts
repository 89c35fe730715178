// CUDA backend benchmarks: memory-bound kernels against a device-to-device copy measured in the
// same run, matmul through our API against cuBLAS called directly, and the dispatch overhead of a
// chain of small ops (through the backend and through the tensor layer). Prints markdown tables.
//
//   deno run -A bench/cuda_ops.ts            (PATCHWORK_BENCH_ELEMENTS overrides 256 Mi)

import { createCudaBackend, type CudaBackend } from "../src/backend/cuda/mod.ts";
import { CUBLAS_COMPUTE, CUBLAS_GEMM_DEFAULT, CUBLAS_OP, CUDA_R } from "../src/backend/cuda/cublas.ts";
import type { DeviceBuffer, View } from "../src/tensor/backend.ts";
import { contiguousStrides } from "../src/tensor/shape.ts";
import type { DType } from "../src/tensor/dtype.ts";

const g: CudaBackend = await createCudaBackend();
const N = Number(Deno.env.get("PATCHWORK_BENCH_ELEMENTS") ?? 256 * 2 ** 20);

function view(buf: DeviceBuffer, shape: readonly number[]): View {
  return { buffer: buf, shape, strides: contiguousStrides(shape), offset: 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median device milliseconds of `fn` over `reps` runs after `warm` warm-ups. */
function timeIt(fn: () => void, reps = 10, warm = 2): number {
  for (let i = 0; i < warm; i++) fn();
  g.synchronize();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) ts.push(g.time(fn));
  return median(ts);
}

console.log(`# patchwork CUDA benchmarks\n`);
console.log(`device: ${g.description}; date: ${new Date().toISOString()}; kernels: ${JSON.stringify(g.kernelCache)}\n`);

// ------------------------------------------------------------------ bandwidth
{
  const rows: string[] = [];
  for (const dtype of ["float32", "bfloat16"] as DType[]) {
    const isz = dtype === "float32" ? 4 : 2;
    const x = g.random("uniform", N, 1, 0, dtype);
    const y = g.random("uniform", N, 2, 0, dtype);
    const out = g.full(N, 0, dtype);
    const vx = view(x, [N]), vy = view(y, [N]), vo = view(out, [N]);
    const copyMs = timeIt(() => g.copy(vx, vo));
    const copyBw = (2 * N * isz) / copyMs / 1e6;
    rows.push(`| D2D copy | ${dtype} | ${N} | ${copyMs.toFixed(3)} | ${copyBw.toFixed(0)} | 100% |`);
    const line = (name: string, bytes: number, fn: () => DeviceBuffer) => {
      const ms = timeIt(() => g.free(fn()));
      const bw = bytes / ms / 1e6;
      rows.push(
        `| ${name} | ${dtype} | ${N} | ${ms.toFixed(3)} | ${bw.toFixed(0)} | ${(100 * bw / copyBw).toFixed(1)}% |`,
      );
    };
    line("add", 3 * N * isz, () => g.binary("add", vx, vy, [N], dtype));
    line("gelu", 2 * N * isz, () => g.unary("gelu", vx, dtype));
    for (const L of [1024, 4096]) {
      line(`softmax rows of ${L}`, 2 * N * isz, () => g.softmax(view(x, [N / L, L]), 1, false, dtype));
    }
    line("sum (all)", N * isz, () => g.reduce("sum", vx, [0], dtype));
    for (const b of [x, y, out]) g.free(b);
    g.releaseCached();
  }
  console.log(`## Memory-bound kernels vs device-to-device copy (GB/s counts bytes read + written)\n`);
  console.log(`| op | dtype | elements | ms (median of 10) | GB/s | % of copy |`);
  console.log(`| --- | --- | --- | --- | --- | --- |`);
  for (const r of rows) console.log(r);
  console.log();
}

// ------------------------------------------------------------------ matmul
{
  const rows: string[] = [];
  const { lib, handle } = g.raw.cublas();
  const one32 = new Float32Array([1]), zero32 = new Float32Array([0]);
  for (const n of [4096, 8192]) {
    for (const mode of ["fp32", "tf32", "bf16"] as const) {
      const dtype: DType = mode === "bf16" ? "bfloat16" : "float32";
      const a = g.random("normal", n * n, 3, 0, dtype), b = g.random("normal", n * n, 4, 0, dtype);
      const c = g.full(n * n, 0, dtype);
      const flop = 2 * n ** 3;
      g.allowTF32 = mode === "tf32";
      const reps = n === 8192 ? 5 : 10;
      const ours = timeIt(() => g.free(g.matmul(view(a, [n, n]), view(b, [n, n]), dtype)), reps);
      g.allowTF32 = false;
      const ap = BigInt((a as unknown as { ptr: number }).ptr);
      const bp = BigInt((b as unknown as { ptr: number }).ptr);
      const cp = BigInt((c as unknown as { ptr: number }).ptr);
      const direct = timeIt(() => {
        if (mode === "fp32") {
          lib.check(
            "cublasSgemmStridedBatched",
            lib.sym.cublasSgemmStridedBatched(
              handle,
              CUBLAS_OP.N,
              CUBLAS_OP.N,
              n,
              n,
              n,
              one32,
              bp,
              n,
              0n,
              ap,
              n,
              0n,
              zero32,
              cp,
              n,
              0n,
              1,
            ),
          );
        } else {
          const t = mode === "bf16" ? CUDA_R.BF16 : CUDA_R.F32;
          const comp = mode === "tf32" ? CUBLAS_COMPUTE.F32_FAST_TF32 : CUBLAS_COMPUTE.F32;
          lib.check(
            "cublasGemmStridedBatchedEx",
            lib.sym.cublasGemmStridedBatchedEx(
              handle,
              CUBLAS_OP.N,
              CUBLAS_OP.N,
              n,
              n,
              n,
              one32,
              bp,
              t,
              n,
              0n,
              ap,
              t,
              n,
              0n,
              zero32,
              cp,
              t,
              n,
              0n,
              1,
              comp,
              CUBLAS_GEMM_DEFAULT,
            ),
          );
        }
      }, reps);
      rows.push(
        `| ${n} | ${mode} | ${ours.toFixed(2)} | ${(flop / ours / 1e9).toFixed(1)} | ${direct.toFixed(2)} | ${
          (flop / direct / 1e9).toFixed(1)
        } | ${(100 * direct / ours).toFixed(1)}% |`,
      );
      for (const x of [a, b, c]) g.free(x);
    }
  }
  console.log(`## Matmul: our API vs cuBLAS called directly (same buffers, random normal data)\n`);
  console.log(`| n | mode | ours ms | ours TFLOP/s | cuBLAS ms | cuBLAS TFLOP/s | ours / cuBLAS speed |`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
  for (const r of rows) console.log(r);
  console.log();
}

// ------------------------------------------------------------------ dispatch overhead
{
  const rows: string[] = [];
  const ops = 10_000, n = 1024;
  // Backend level: x = x + 1, freeing the previous buffer (allocator reuse), then one read.
  for (let round = 0; round < 3; round++) {
    let x = g.full(n, 0, "float32");
    g.synchronize();
    const t0 = performance.now();
    for (let i = 0; i < ops; i++) {
      const y = g.binary("add", view(x, [n]), 1, [n], "float32");
      g.free(x);
      x = y;
    }
    const host = performance.now() - t0;
    const v = g.toHost(view(x, [n]))[0];
    const total = performance.now() - t0;
    g.free(x);
    if (round > 0) {
      rows.push(
        `| backend.binary(add) chain${v === ops ? "" : ` (WRONG RESULT ${v})`} | ${ops} | ${
          (1000 * host / ops).toFixed(2)
        } | ${(1000 * total / ops).toFixed(2)} |`,
      );
    }
  }
  // The floor: cuLaunchKernel through FFI with prepared parameters (same kernel, same size).
  {
    const x = g.full(n, 0, "float32"), y = g.full(n, 0, "float32");
    const raw = g.raw;
    const fn = raw.kernel("elementwise", "binary_add_f32");
    const p = raw.params;
    for (let round = 0; round < 3; round++) {
      p.ptr(0, (x as unknown as { ptr: number }).ptr);
      p.ptr(1, 0);
      p.ptr(2, (y as unknown as { ptr: number }).ptr);
      p.u64(3, n);
      p.f64(4, 0);
      p.f64(5, 1);
      p.u32(6, 2);
      g.synchronize();
      const t0 = performance.now();
      for (let i = 0; i < ops; i++) raw.launch(fn, 1, 256);
      const host = performance.now() - t0;
      g.synchronize();
      const total = performance.now() - t0;
      if (round > 0) {
        rows.push(
          `| raw cuLaunchKernel (FFI floor) | ${ops} | ${(1000 * host / ops).toFixed(2)} | ${
            (1000 * total / ops).toFixed(2)
          } |`,
        );
      }
    }
    g.free(x);
    g.free(y);
  }
  // Tensor layer, when present.
  try {
    const T = await import("../src/tensor/mod.ts");
    T.setDefaultBackend(g);
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      let host = 0;
      const v = T.tidy(() => {
        let x = T.zeros([n]);
        for (let i = 0; i < ops; i++) {
          const y = T.add(x, 1);
          x.dispose();
          x = y;
        }
        host = performance.now() - t0;
        return x.toArray() as number[];
      });
      const total = performance.now() - t0;
      if (round > 0) {
        rows.push(
          `| tensor add chain (tidy)${v[0] === ops ? "" : ` (WRONG RESULT ${v[0]})`} | ${ops} | ${
            (1000 * host / ops).toFixed(2)
          } | ${(1000 * total / ops).toFixed(2)} |`,
        );
      }
    }
  } catch (e) {
    rows.push(`| tensor add chain | - | failed: ${(e as Error).message.split("\n")[0]} | |`);
  }
  console.log(`## Dispatch overhead: chains of ${ops} ops on ${n}-element float32 tensors\n`);
  console.log(`| path | ops | µs/op host (enqueue) | µs/op end to end |`);
  console.log(`| --- | --- | --- | --- |`);
  for (const r of rows) console.log(r);
  console.log();
}

g.dispose();

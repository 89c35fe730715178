// Batched Cholesky + two triangular solves on the CUDA backend (the Levenberg–Marquardt hot path:
// factor JᵀJ + λD, then solve L·y = g and Lᵀ·x = y), float32, against cuSOLVER's potrfBatched +
// potrsBatched and potrfBatched + cuBLAS trsmBatched ×2 on the same data. Prints a markdown table.
//
//   deno run -A bench/cuda_linalg.ts
//
// "GPU µs" is the median over CUDA events around one call (launch gaps included); "wall µs" is the
// mean host time per call over 200 back-to-back calls ended by one synchronisation (what a solver
// loop that never reads back would see). cuSOLVER factors in place, so its inputs are copied back
// before each timed call, outside the timing.

import { createCudaBackend, type CudaBackend, type CudaBuffer } from "../src/backend/cuda/mod.ts";
import { CUBLAS_DIAG, CUBLAS_OP, CUBLAS_SIDE } from "../src/backend/cuda/cublas.ts";
import { CUBLAS_FILL, type Cusolver, loadCusolver } from "../src/backend/cuda/cusolver.ts";
import type { DeviceBuffer, View } from "../src/tensor/backend.ts";
import { contiguousStrides } from "../src/tensor/shape.ts";
import { uniformStream as rng } from "../src/train/random.ts";

const g: CudaBackend = await createCudaBackend();
const REPS = 50;

function view(buf: DeviceBuffer, shape: readonly number[]): View {
  return { buffer: buf, shape, strides: contiguousStrides(shape), offset: 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** B symmetric positive-definite matrices M·Mᵀ/n + I and B right-hand sides. */
function problem(B: number, n: number): { a: Float32Array; b: Float32Array } {
  const r = rng(B * 1000 + n);
  const a = new Float32Array(B * n * n);
  const m = new Float64Array(n * n);
  for (let t = 0; t < B; t++) {
    for (let i = 0; i < n * n; i++) m[i] = 2 * r() - 1;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += m[i * n + k] * m[j * n + k];
        s = s / n + (i === j ? 1 : 0);
        a[t * n * n + i * n + j] = s;
        a[t * n * n + j * n + i] = s;
      }
    }
  }
  return { a, b: Float32Array.from({ length: B * n }, () => 2 * r() - 1) };
}

/** Median GPU µs of `fn` (after warm-ups); `before` runs outside the timed region. */
function gpuMicros(fn: () => void, before?: () => void): number {
  for (let i = 0; i < 5; i++) {
    before?.();
    fn();
  }
  g.synchronize();
  const ts: number[] = [];
  for (let i = 0; i < REPS; i++) {
    before?.();
    ts.push(g.time(fn) * 1000);
  }
  return median(ts);
}

/** Mean host µs per call over 200 calls and one synchronisation. */
function wallMicros(fn: () => void): number {
  for (let i = 0; i < 20; i++) fn();
  g.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) fn();
  g.synchronize();
  return ((performance.now() - t0) * 1000) / 200;
}

let solver: { lib: Cusolver; handle: Deno.PointerValue } | undefined;
let solverNote = "";
try {
  const lib = loadCusolver();
  solver = { lib, handle: lib.create(g.raw.stream) };
  solverNote = `cuSOLVER from ${lib.path}`;
} catch (e) {
  solverNote = `cuSOLVER unavailable: ${(e as Error).message.split("\n")[0]}`;
}

console.log(`# Batched Cholesky + 2 triangular solves (float32)\n`);
console.log(`device: ${g.description}; date: ${new Date().toISOString()}; ${solverNote}\n`);
console.log(
  `| B | n | ours GPU µs | ours wall µs | cholesky GPU µs | one solve GPU µs | cuSOLVER potrf+potrs GPU µs | ` +
    `potrf + cuBLAS trsm×2 GPU µs | max rel. diff of x |`,
);
console.log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- |`);

const lower = { lower: true, transpose: false, unitDiagonal: false };
const upper = { lower: true, transpose: true, unitDiagonal: false };
const drv = g.raw.driver;
const one32 = new Float32Array([1]);

for (const [B, n] of [[4, 64], [16, 64], [64, 64], [256, 64], [4096, 64], [64, 32], [64, 128], [16, 256]]) {
  const { a, b } = problem(B, n);
  const A = g.fromHost(a, "float32") as CudaBuffer;
  const Bv = g.fromHost(b, "float32") as CudaBuffer;
  const va = view(A, [B, n, n]), vb = view(Bv, [B, n, 1]);
  let xOurs: Float32Array | undefined;
  const ours = (keep = false) => {
    const { factor, info } = g.linalg.cholesky(va, "float32");
    const l = view(factor, [B, n, n]);
    const y = g.linalg.triangularSolve(l, vb, lower, "float32");
    const x = g.linalg.triangularSolve(l, view(y, [B, n, 1]), upper, "float32");
    if (keep) xOurs = g.toHost(view(x, [B, n])) as Float32Array;
    for (const buf of [factor, info, y, x]) g.free(buf);
  };
  ours(true);
  const oursGpu = gpuMicros(() => ours());
  const oursWall = wallMicros(() => ours());
  const cholGpu = gpuMicros(() => {
    const r = g.linalg.cholesky(va, "float32");
    g.free(r.factor);
    g.free(r.info);
  });
  const solveGpu = gpuMicros(() => g.free(g.linalg.triangularSolve(va, vb, lower, "float32")));

  let potrs = "n/a", trsm = "n/a", diff = "n/a";
  if (solver) {
    const { lib, handle } = solver;
    const W = g.fromHost(a, "float32") as CudaBuffer;
    const X = g.fromHost(b, "float32") as CudaBuffer;
    const ptrs = (base: number, step: number) => {
      const p = new BigUint64Array(B);
      for (let t = 0; t < B; t++) p[t] = BigInt(base + t * step);
      return g.fromHost(new Float64Array(p.buffer), "float64") as CudaBuffer;
    };
    const wp = ptrs(W.ptr, n * n * 4), xp = ptrs(X.ptr, n * 4);
    const info = g.full(B + 1, 0, "int32") as CudaBuffer;
    const restore = () => {
      drv.check(
        "cuMemcpyDtoDAsync_v2",
        drv.sym.cuMemcpyDtoDAsync_v2(BigInt(W.ptr), BigInt(A.ptr), BigInt(a.length * 4), g.raw.stream),
      );
      drv.check(
        "cuMemcpyDtoDAsync_v2",
        drv.sym.cuMemcpyDtoDAsync_v2(BigInt(X.ptr), BigInt(Bv.ptr), BigInt(b.length * 4), g.raw.stream),
      );
    };
    // Row-major lower = column-major upper: A = UᵀU with U = Lᵀ in memory.
    const potrf = () =>
      lib.check(
        "cusolverDnSpotrfBatched",
        lib.sym.cusolverDnSpotrfBatched(handle, CUBLAS_FILL.UPPER, n, BigInt(wp.ptr), n, BigInt(info.ptr), B),
      );
    const viaPotrs = () => {
      potrf();
      lib.check(
        "cusolverDnSpotrsBatched",
        lib.sym.cusolverDnSpotrsBatched(
          handle,
          CUBLAS_FILL.UPPER,
          n,
          1,
          BigInt(wp.ptr),
          n,
          BigInt(xp.ptr),
          n,
          BigInt(info.ptr + 4 * B),
          B,
        ),
      );
    };
    potrs = gpuMicros(viaPotrs, restore).toFixed(1);
    restore();
    viaPotrs();
    const xRef = g.toHost(view(X, [B, n])) as Float32Array;
    let worst = 0, scale = 0;
    for (let i = 0; i < xRef.length; i++) {
      worst = Math.max(worst, Math.abs(xRef[i] - xOurs![i]));
      scale = Math.max(scale, Math.abs(xRef[i]));
    }
    diff = (worst / scale).toExponential(1);
    const blas = g.raw.cublas();
    const strsm = blas.lib.sym.cublasStrsmBatched;
    if (strsm) {
      const viaTrsm = () => {
        potrf();
        // L·y = b is Uᵀ·y = b; Lᵀ·x = y is U·x = y (column-major U).
        for (const op of [CUBLAS_OP.T, CUBLAS_OP.N]) {
          blas.lib.check(
            "cublasStrsmBatched",
            strsm(
              blas.handle,
              CUBLAS_SIDE.LEFT,
              CUBLAS_FILL.UPPER,
              op,
              CUBLAS_DIAG.NON_UNIT,
              n,
              1,
              one32,
              BigInt(wp.ptr),
              n,
              BigInt(xp.ptr),
              n,
              B,
            ),
          );
        }
      };
      trsm = gpuMicros(viaTrsm, restore).toFixed(1);
    }
    for (const buf of [W, X, wp, xp, info]) g.free(buf);
  }
  console.log(
    `| ${B} | ${n} | ${oursGpu.toFixed(1)} | ${oursWall.toFixed(1)} | ${cholGpu.toFixed(1)} | ${
      solveGpu.toFixed(1)
    } | ` +
      `${potrs} | ${trsm} | ${diff} |`,
  );
  g.free(A);
  g.free(Bv);
}
if (solver) solver.lib.destroy(solver.handle);

console.log(`\n## The other primitives (float32, GPU µs per call, median of ${REPS})\n`);
console.log(`| B | n | lu | luSolve, 1 rhs | qr (n × n) | triangularSolve, n rhs |`);
console.log(`| --- | --- | --- | --- | --- | --- |`);
for (const [B, n] of [[64, 64], [4096, 16], [16, 256]]) {
  const { a, b } = problem(B, n);
  const A = g.fromHost(a, "float32");
  const Bv = g.fromHost(b, "float32");
  const va = view(A, [B, n, n]), vb = view(Bv, [B, n, 1]);
  const f = g.linalg.lu(va, "float32");
  const lu = gpuMicros(() => {
    const r = g.linalg.lu(va, "float32");
    for (const buf of [r.lu, r.pivots, r.info]) g.free(buf);
  });
  const luSolve = gpuMicros(() =>
    g.free(g.linalg.luSolve(view(f.lu, [B, n, n]), view(f.pivots, [B, n]), vb, false, "float32"))
  );
  const qr = gpuMicros(() => {
    const r = g.linalg.qr(va, "float32");
    g.free(r.q);
    g.free(r.r);
  });
  const trsm = gpuMicros(() => g.free(g.linalg.triangularSolve(va, va, lower, "float32")));
  console.log(`| ${B} | ${n} | ${lu.toFixed(1)} | ${luSolve.toFixed(1)} | ${qr.toFixed(1)} | ${trsm.toFixed(1)} |`);
  for (const buf of [A, Bv, f.lu, f.pivots, f.info]) g.free(buf);
}

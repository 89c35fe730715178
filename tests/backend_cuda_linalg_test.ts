// The CUDA backend's dense linear algebra (Backend.linalg) against the CPU backend's: Cholesky,
// triangular solves, LU, LU solves and thin QR on well-conditioned, ill-conditioned, singular,
// indefinite and non-finite batches; contiguous, transposed, broadcast, reversed and padded
// views; float32 and float64; batch shapes of several axes; orders that take each kernel path
// (registers, shared memory, opt-in shared memory, global workspace, right-hand sides in chunks).
// Without a usable GPU (no libcuda, no device, or no --allow-ffi) every test is registered as
// ignored.

import assert from "node:assert/strict";
import { announce, cpu, gpuTester, whole } from "./cuda_helpers.ts";
import { assertClose, numel, rng, rowMajor } from "./helpers.ts";
import type { CudaBackend } from "../src/backend/cuda/mod.ts";
import type { DeviceBuffer, TriangularSolveOptions, View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";

announce("backend_cuda_linalg_test");
const gpuTest = gpuTester("cuda linalg");

// ------------------------------------------------------------------ data

/** `count` matrices of `rows × cols` from `one(t, r)` (row-major), concatenated. */
function batchOf(count: number, size: number, one: (t: number) => Float64Array): Float64Array {
  const out = new Float64Array(count * size);
  for (let t = 0; t < count; t++) out.set(one(t), t * size);
  return out;
}

function randomMatrix(r: () => number, rows: number, cols: number): Float64Array {
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = 2 * r() - 1;
  return a;
}

/** L·Lᵀ for lower-triangular L with the given diagonal and small random entries below it. */
function spdFromDiagonal(r: () => number, diag: readonly number[]): Float64Array {
  const n = diag.length;
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) l[i * n + j] = (2 * r() - 1) * 0.5 * Math.min(diag[i], diag[j]);
    l[i * n + i] = diag[i];
  }
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k <= j; k++) s += l[i * n + k] * l[j * n + k];
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  return a;
}

/** Well-conditioned SPD: M·Mᵀ/n + I. */
function spd(r: () => number, n: number): Float64Array {
  const m = randomMatrix(r, n, n);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += m[i * n + k] * m[j * n + k];
      s /= n;
      if (i === j) s += 1;
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  return a;
}

/** Triangular-friendly: diagonal in ±[1, 2], off-diagonal entries of size 1/n. */
function triangularish(r: () => number, n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) a[i * n + j] = i === j ? (r() < 0.5 ? -1 : 1) * (1 + r()) : (2 * r() - 1) / n;
  }
  return a;
}

// ------------------------------------------------------------------ layouts

type Kind = "contiguous" | "transposed" | "broadcast" | "reversed" | "padded" | "batchReversed";

interface Layout {
  base: number;
  strides: number[];
  offset: number;
}

/** Storage of a view of `shape` ([...batch, rows, cols]) laid out as `kind`. */
function layoutOf(kind: Kind, shape: readonly number[]): Layout {
  const r = shape.length;
  const rows = shape[r - 2], cols = shape[r - 1];
  switch (kind) {
    case "contiguous":
      return { base: numel(shape), strides: rowMajor(shape), offset: 0 };
    case "transposed": {
      const st = rowMajor([...shape.slice(0, r - 2), cols, rows]);
      return { base: numel(shape), strides: [...st.slice(0, r - 2), 1, rows], offset: 0 };
    }
    case "broadcast": {
      if (r < 3) return layoutOf("contiguous", shape);
      const st = rowMajor(shape.slice(1));
      return { base: numel(shape.slice(1)), strides: [0, ...st], offset: 0 };
    }
    case "reversed": {
      const st = rowMajor(shape);
      const strides = st.map((s, d) => (d === 0 || d === r - 1 ? -s : s));
      const offset = (shape[0] - 1) * st[0] + (r > 1 ? shape[r - 1] - 1 : 0);
      return { base: numel(shape), strides, offset: Math.max(0, offset) };
    }
    case "padded": {
      const st = rowMajor([...shape.slice(0, r - 1), cols + 2]);
      return { base: numel([...shape.slice(0, r - 1), cols + 2]) + 3, strides: st, offset: 3 };
    }
    case "batchReversed": {
      // Batch axes stored in the opposite order, so no two of them merge.
      const nb = r - 2;
      const strides = new Array<number>(r);
      strides[r - 1] = 1;
      strides[r - 2] = cols;
      let acc = rows * cols;
      for (let d = 0; d < nb; d++) {
        strides[d] = acc;
        acc *= shape[d];
      }
      return { base: numel(shape), strides, offset: 0 };
    }
  }
}

interface Pair {
  cpu: View;
  gpu: View;
}

/** The logical row-major `data` of `shape` stored as `kind`, on both backends. */
function pairOf(g: CudaBackend, data: Float64Array, shape: readonly number[], dtype: DType, kind: Kind): Pair {
  const l = layoutOf(kind, shape);
  const base = new Float64Array(l.base);
  const idx = new Array<number>(shape.length).fill(0);
  for (let lin = 0; lin < data.length; lin++) {
    let pos = l.offset;
    for (let d = 0; d < shape.length; d++) pos += idx[d] * l.strides[d];
    base[pos] = data[lin];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  const make = (b: DeviceBuffer): View => ({ buffer: b, shape, strides: l.strides, offset: l.offset });
  return { cpu: make(cpu.fromHost(base, dtype)), gpu: make(g.fromHost(base, dtype)) };
}

function intPairOf(g: CudaBackend, data: Int32Array, shape: readonly number[]): Pair {
  const view = (b: DeviceBuffer): View => ({ buffer: b, shape, strides: rowMajor(shape), offset: 0 });
  return { cpu: view(cpu.fromHost(data, "int32")), gpu: view(g.fromHost(data, "int32")) };
}

function freePair(g: CudaBackend, p: Pair): void {
  g.free(p.gpu.buffer);
  cpu.free(p.cpu.buffer);
}

// ------------------------------------------------------------------ comparisons

const TOL = {
  well: { float32: 5e-7, float64: 1e-11 },
  ill: { float32: 2e-6, float64: 1e-7 },
} as const;

function tolFor(kind: "well" | "ill", dtype: DType): number {
  return dtype === "float64" ? TOL[kind].float64 : TOL[kind].float32;
}

/** Reads a GPU and a CPU buffer of `shape` and compares them; frees both. */
function compare(
  g: CudaBackend,
  gb: DeviceBuffer,
  cb: DeviceBuffer,
  shape: readonly number[],
  tol: number | "exact",
  what: string,
): void {
  const got = g.toHost(whole(gb, shape));
  const want = cpu.toHost(whole(cb, shape));
  if (tol === "exact") {
    assert.equal(got.length, want.length, what);
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
        assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]} (bit-exact expected)`);
      }
    }
  } else assertClose(got, want, { rtol: tol, scale: "max", floor: 1e-300, equalNaN: true }, what);
  g.free(gb);
  cpu.free(cb);
}

const DTYPES: DType[] = ["float32", "float64"];
const KINDS: Kind[] = ["contiguous", "transposed", "broadcast", "reversed", "padded"];

// ------------------------------------------------------------------ Cholesky

type CholCase = "well" | "ill" | "indefinite" | "singular" | "nan";

function cholData(c: CholCase, count: number, n: number, seed: number): Float64Array {
  const r = rng(seed);
  return batchOf(count, n * n, (t) => {
    if (c === "ill") {
      const diag = Array.from({ length: n }, (_, i) => Math.pow(1e-4, n === 1 ? 0 : i / (n - 1)));
      return spdFromDiagonal(r, diag);
    }
    const a = spd(r, n);
    if (t % 3 === 2 && c !== "well") return a; // some entries of a failing batch succeed
    const k = Math.floor(r() * n);
    if (c === "indefinite") a[k * n + k] = -1;
    else if (c === "singular") {
      for (let j = 0; j < n; j++) a[k * n + j] = a[j * n + k] = 0;
    } else if (c === "nan") a[k * n + Math.floor(r() * (k + 1))] = NaN;
    return a;
  });
}

function checkCholesky(
  g: CudaBackend,
  c: CholCase,
  batch: number[],
  n: number,
  dtype: DType,
  kind: Kind,
  seed: number,
) {
  const shape = [...batch, n, n];
  const p = pairOf(g, cholData(c, numel(batch), n, seed), shape, dtype, kind);
  const got = g.linalg.cholesky(p.gpu, dtype);
  const want = cpu.linalg.cholesky(p.cpu, dtype);
  const what = `cholesky ${c} ${dtype} ${kind} [${shape}]`;
  compare(g, got.info, want.info, batch, "exact", `${what} info`);
  compare(g, got.factor, want.factor, shape, tolFor(c === "ill" ? "ill" : "well", dtype), `${what} factor`);
  freePair(g, p);
}

gpuTest("cholesky matches the CPU on every kernel path (orders 1 to 200)", (g) => {
  let seed = 1;
  for (const dtype of DTYPES) {
    for (const n of [1, 2, 5, 31, 32, 33, 64, 65, 100, 128, 129, 150, 200]) {
      checkCholesky(g, "well", [3], n, dtype, "contiguous", seed++);
    }
  }
});

gpuTest("cholesky: ill-conditioned, indefinite, singular and NaN batches (info exact)", (g) => {
  let seed = 100;
  for (const dtype of DTYPES) {
    for (const c of ["ill", "indefinite", "singular", "nan"] as CholCase[]) {
      for (const n of [4, 32, 64, 100, 150]) checkCholesky(g, c, [6], n, dtype, "contiguous", seed++);
    }
  }
});

gpuTest("cholesky: both step bodies of the register kernels (one-wave and many-wave batches)", (g) => {
  let seed = 150;
  for (const dtype of DTYPES) {
    for (const n of [20, 64]) {
      checkCholesky(g, "indefinite", [5], n, dtype, "contiguous", seed++);
      checkCholesky(g, "indefinite", [300], n, dtype, "contiguous", seed++);
      checkCholesky(g, "well", [2, 200], n, dtype, "transposed", seed++);
    }
  }
});

gpuTest("cholesky: strided, broadcast, reversed and padded views, several batch axes", (g) => {
  let seed = 200;
  for (const dtype of DTYPES) {
    for (const kind of KINDS) {
      for (const n of [3, 40, 64]) checkCholesky(g, "indefinite", [2, 3], n, dtype, kind, seed++);
    }
    checkCholesky(g, "well", [2, 2, 2, 2, 2, 2, 2, 2, 2], 3, dtype, "batchReversed", seed++);
  }
});

// ------------------------------------------------------------------ triangular solves

const TRI_OPTIONS: TriangularSolveOptions[] = [];
for (const lower of [true, false]) {
  for (const transpose of [false, true]) {
    for (const unitDiagonal of [false, true]) TRI_OPTIONS.push({ lower, transpose, unitDiagonal });
  }
}

function checkTriangular(
  g: CudaBackend,
  batch: number[],
  n: number,
  k: number,
  o: TriangularSolveOptions,
  dtype: DType,
  kinds: [Kind, Kind],
  seed: number,
  zeroDiagonal = false,
): void {
  const r = rng(seed);
  const count = numel(batch);
  const aData = batchOf(count, n * n, () => {
    const a = triangularish(r, n);
    // The diagonal entry solved last becomes zero: infinities, not an error.
    if (zeroDiagonal) {
      const last = (o.lower !== o.transpose) ? n - 1 : 0;
      a[last * n + last] = 0;
    }
    return a;
  });
  const bData = batchOf(count, n * k, () => randomMatrix(r, n, k));
  const a = pairOf(g, aData, [...batch, n, n], dtype, kinds[0]);
  const b = pairOf(g, bData, [...batch, n, k], dtype, kinds[1]);
  const got = g.linalg.triangularSolve(a.gpu, b.gpu, o, dtype);
  const want = cpu.linalg.triangularSolve(a.cpu, b.cpu, o, dtype);
  const what = `triangularSolve ${JSON.stringify(o)} ${dtype} ${kinds} [${batch}] n=${n} k=${k}`;
  compare(g, got, want, [...batch, n, k], tolFor("well", dtype), what);
  freePair(g, a);
  freePair(g, b);
}

gpuTest("triangularSolve: every lower/transpose/unit combination, orders 1 to 200", (g) => {
  let seed = 300;
  for (const dtype of DTYPES) {
    for (const o of TRI_OPTIONS) {
      for (const [n, k] of [[1, 1], [7, 3], [32, 1], [33, 2], [64, 1], [65, 5], [130, 1], [200, 2]]) {
        checkTriangular(g, [2], n, k, o, dtype, ["contiguous", "contiguous"], seed++);
      }
    }
  }
});

gpuTest("triangularSolve: right-hand sides in chunks, strided operands, several batch axes", (g) => {
  let seed = 400;
  for (const dtype of DTYPES) {
    // 150² doubles leave room for only some of the 100 right-hand sides: several passes.
    checkTriangular(g, [2], 150, 100, TRI_OPTIONS[0], dtype, ["contiguous", "contiguous"], seed++);
    checkTriangular(g, [2], 150, 100, TRI_OPTIONS[7], dtype, ["transposed", "padded"], seed++);
    for (let i = 0; i < KINDS.length; i++) {
      for (const o of [TRI_OPTIONS[i % 8], TRI_OPTIONS[(i + 3) % 8]]) {
        checkTriangular(g, [2, 3], 20, 4, o, dtype, [KINDS[i], KINDS[(i + 2) % KINDS.length]], seed++);
        checkTriangular(g, [3, 2], 64, 1, o, dtype, [KINDS[(i + 1) % KINDS.length], KINDS[i]], seed++);
      }
    }
  }
});

gpuTest("triangularSolve: a zero on the diagonal gives the CPU's infinities", (g) => {
  let seed = 500;
  for (const dtype of DTYPES) {
    for (const o of TRI_OPTIONS.filter((x) => !x.unitDiagonal)) {
      checkTriangular(g, [2], 40, 2, o, dtype, ["contiguous", "contiguous"], seed++, true);
    }
  }
});

// ------------------------------------------------------------------ LU

type LuCase = "random" | "ties" | "singular" | "ill" | "nan";

function luData(c: LuCase, count: number, n: number, seed: number): Float64Array {
  const r = rng(seed);
  return batchOf(count, n * n, (t) => {
    if (c === "ties") return Float64Array.from({ length: n * n }, () => Math.floor(r() * 5) - 2);
    if (c === "ill") {
      const a = randomMatrix(r, n, n);
      for (let j = 0; j < n; j++) {
        const s = Math.pow(1e-6, n === 1 ? 0 : j / (n - 1));
        for (let i = 0; i < n; i++) a[i * n + j] *= s;
      }
      return a;
    }
    const a = randomMatrix(r, n, n);
    if (c === "singular" && t % 2 === 0) {
      const k = Math.floor(r() * n);
      for (let i = 0; i < n; i++) a[i * n + k] = 0;
    }
    if (c === "nan" && t % 2 === 0) a[Math.floor(r() * n * n)] = NaN;
    return a;
  });
}

function checkLu(g: CudaBackend, c: LuCase, batch: number[], n: number, dtype: DType, kind: Kind, seed: number) {
  const shape = [...batch, n, n];
  const p = pairOf(g, luData(c, numel(batch), n, seed), shape, dtype, kind);
  const got = g.linalg.lu(p.gpu, dtype);
  const want = cpu.linalg.lu(p.cpu, dtype);
  const what = `lu ${c} ${dtype} ${kind} [${shape}]`;
  compare(g, got.info, want.info, batch, "exact", `${what} info`);
  compare(g, got.pivots, want.pivots, [...batch, n], "exact", `${what} pivots`);
  compare(g, got.lu, want.lu, shape, "exact", `${what} lu`);
  freePair(g, p);
}

gpuTest("lu is bit-identical to the CPU's (factors, pivots, info) on every path", (g) => {
  let seed = 600;
  for (const dtype of DTYPES) {
    for (const n of [1, 2, 8, 31, 33, 64, 100, 170, 200]) checkLu(g, "random", [3], n, dtype, "contiguous", seed++);
    for (const c of ["ties", "singular", "ill", "nan"] as LuCase[]) {
      for (const n of [3, 16, 64]) checkLu(g, c, [4], n, dtype, "contiguous", seed++);
    }
    for (const kind of KINDS) checkLu(g, "ties", [2, 3], 12, dtype, kind, seed++);
    checkLu(g, "random", [2, 2, 2, 2, 2, 2, 2, 2, 2], 3, dtype, "batchReversed", seed++);
  }
});

// ------------------------------------------------------------------ LU solve

function checkLuSolve(
  g: CudaBackend,
  batch: number[],
  n: number,
  k: number,
  transpose: boolean,
  dtype: DType,
  kinds: [Kind, Kind],
  seed: number,
): void {
  const r = rng(seed);
  const count = numel(batch);
  const a = pairOf(g, luData("random", count, n, seed), [...batch, n, n], dtype, "contiguous");
  const fg = g.linalg.lu(a.gpu, dtype);
  const fc = cpu.linalg.lu(a.cpu, dtype);
  // Re-lay the factors out as asked (the same values on both backends).
  const luHost = cpu.toHost(whole(fc.lu, [...batch, n, n]));
  const lu = pairOf(g, Float64Array.from(luHost), [...batch, n, n], dtype, kinds[0]);
  const piv = intPairOf(g, cpu.toHost(whole(fc.pivots, [...batch, n])) as Int32Array, [...batch, n]);
  const b = pairOf(g, batchOf(count, n * k, () => randomMatrix(r, n, k)), [...batch, n, k], dtype, kinds[1]);
  const got = g.linalg.luSolve(lu.gpu, piv.gpu, b.gpu, transpose, dtype);
  const want = cpu.linalg.luSolve(lu.cpu, piv.cpu, b.cpu, transpose, dtype);
  const what = `luSolve transpose=${transpose} ${dtype} ${kinds} [${batch}] n=${n} k=${k}`;
  compare(g, got, want, [...batch, n, k], tolFor("ill", dtype), what);
  for (const x of [fg.lu, fg.pivots, fg.info]) g.free(x);
  for (const x of [fc.lu, fc.pivots, fc.info]) cpu.free(x);
  for (const x of [a, lu, piv, b]) freePair(g, x);
}

gpuTest("luSolve matches the CPU: both transposes, chunks, workspace, strided operands", (g) => {
  let seed = 700;
  for (const dtype of DTYPES) {
    for (const transpose of [false, true]) {
      for (const [n, k] of [[1, 1], [8, 3], [33, 1], [64, 1], [64, 8], [150, 100], [200, 2]]) {
        checkLuSolve(g, [2], n, k, transpose, dtype, ["contiguous", "contiguous"], seed++);
      }
      for (let i = 0; i < KINDS.length; i++) {
        checkLuSolve(g, [2, 3], 10, 3, transpose, dtype, [KINDS[i], KINDS[(i + 1) % KINDS.length]], seed++);
      }
    }
  }
});

// ------------------------------------------------------------------ QR

type QrCase = "random" | "zeroColumn" | "ill";

function qrData(c: QrCase, count: number, m: number, n: number, seed: number): Float64Array {
  const r = rng(seed);
  return batchOf(count, m * n, () => {
    const a = randomMatrix(r, m, n);
    if (c === "zeroColumn" && n > 1) {
      const k = Math.floor(r() * n);
      for (let i = 0; i < m; i++) a[i * n + k] = 0;
    }
    if (c === "ill") {
      for (let j = 0; j < n; j++) {
        const s = Math.pow(1e-4, n === 1 ? 0 : j / (n - 1));
        for (let i = 0; i < m; i++) a[i * n + j] *= s;
      }
    }
    return a;
  });
}

function checkQr(
  g: CudaBackend,
  c: QrCase,
  batch: number[],
  m: number,
  n: number,
  dtype: DType,
  kind: Kind,
  seed: number,
) {
  const shape = [...batch, m, n];
  const p = pairOf(g, qrData(c, numel(batch), m, n, seed), shape, dtype, kind);
  const got = g.linalg.qr(p.gpu, dtype);
  const want = cpu.linalg.qr(p.cpu, dtype);
  const what = `qr ${c} ${dtype} ${kind} [${shape}]`;
  // Orthonormal columns on the GPU result itself.
  const q = g.toHost(whole(got.q, shape));
  const count = numel(batch);
  let worst = 0;
  for (let t = 0; t < count; t++) {
    for (let a = 0; a < n; a++) {
      for (let b = 0; b <= a; b++) {
        let s = 0;
        for (let i = 0; i < m; i++) s += q[t * m * n + i * n + a] * q[t * m * n + i * n + b];
        worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
      }
    }
  }
  assert.ok(worst < (dtype === "float32" ? 1e-5 : 1e-12), `${what}: |QᵀQ − I| = ${worst}`);
  const tol = c === "ill" ? tolFor("ill", dtype) : tolFor("well", dtype);
  compare(g, got.r, want.r, [...batch, n, n], tol, `${what} r`);
  compare(g, got.q, want.q, shape, tol, `${what} q`);
  freePair(g, p);
}

gpuTest("qr matches the CPU (signs included) on shared-memory and workspace paths", (g) => {
  let seed = 800;
  for (const dtype of DTYPES) {
    for (const [m, n] of [[1, 1], [5, 3], [8, 8], [40, 17], [64, 64], [130, 30], [100, 100], [2000, 16]]) {
      checkQr(g, "random", [2], m, n, dtype, "contiguous", seed++);
    }
    for (const c of ["zeroColumn", "ill"] as QrCase[]) {
      for (const [m, n] of [[6, 6], [50, 20], [64, 64]]) checkQr(g, c, [3], m, n, dtype, "contiguous", seed++);
    }
    for (const kind of KINDS) checkQr(g, "random", [2, 3], 9, 5, dtype, kind, seed++);
  }
});

// ------------------------------------------------------------------ shapes, dtypes, large batches

gpuTest("empty batches and order-0 matrices", (g) => {
  for (const dtype of DTYPES) {
    const empty = pairOf(g, new Float64Array(0), [0, 3, 3], dtype, "contiguous");
    const ch = g.linalg.cholesky(empty.gpu, dtype);
    assert.equal(ch.factor.size, 0);
    assert.equal(ch.info.size, 0);
    const zero = pairOf(g, new Float64Array(0), [2, 0, 0], dtype, "contiguous");
    const c0 = g.linalg.cholesky(zero.gpu, dtype);
    assert.deepEqual([...g.toHost(whole(c0.info, [2]))], [0, 0]);
    const l0 = g.linalg.lu(zero.gpu, dtype);
    assert.deepEqual([...g.toHost(whole(l0.info, [2]))], [0, 0]);
    const thin = pairOf(g, new Float64Array(0), [2, 4, 0], dtype, "contiguous");
    const q0 = g.linalg.qr(thin.gpu, dtype);
    assert.equal(q0.q.size, 0);
    assert.equal(q0.r.size, 0);
    const t0 = g.linalg.triangularSolve(zero.gpu, zero.gpu, TRI_OPTIONS[0], dtype);
    assert.equal(t0.size, 0);
    for (const b of [ch.factor, ch.info, c0.factor, c0.info, l0.lu, l0.pivots, l0.info, q0.q, q0.r, t0]) g.free(b);
    for (const x of [empty, zero, thin]) freePair(g, x);
  }
});

gpuTest("a float64 operand factorised as float32 (converted on the device)", (g) => {
  const n = 16;
  const data = cholData("well", 4, n, 900);
  const p = pairOf(g, data, [4, n, n], "float64", "transposed");
  const got = g.linalg.cholesky(p.gpu, "float32");
  const want = cpu.linalg.cholesky(p.cpu, "float32");
  assert.equal(got.factor.dtype, "float32");
  compare(g, got.info, want.info, [4], "exact", "info");
  compare(g, got.factor, want.factor, [4, n, n], TOL.well.float32, "factor");
  freePair(g, p);
});

gpuTest("4096 small matrices in one call each (Cholesky, two solves, LU, QR)", (g) => {
  const B = 4096, n = 8;
  for (const dtype of DTYPES) {
    const a = pairOf(g, cholData("indefinite", B, n, 901), [B, n, n], dtype, "contiguous");
    const got = g.linalg.cholesky(a.gpu, dtype);
    const want = cpu.linalg.cholesky(a.cpu, dtype);
    const r = rng(902);
    const b = pairOf(g, batchOf(B, n, () => randomMatrix(r, n, 1)), [B, n, 1], dtype, "contiguous");
    const lg = whole(got.factor, [B, n, n]), lc = whole(want.factor, [B, n, n]);
    const o1 = { lower: true, transpose: false, unitDiagonal: false };
    const o2 = { lower: true, transpose: true, unitDiagonal: false };
    const yg = g.linalg.triangularSolve(lg, b.gpu, o1, dtype), yc = cpu.linalg.triangularSolve(lc, b.cpu, o1, dtype);
    const xg = g.linalg.triangularSolve(lg, whole(yg, [B, n, 1]), o2, dtype);
    const xc = cpu.linalg.triangularSolve(lc, whole(yc, [B, n, 1]), o2, dtype);
    compare(g, got.info, want.info, [B], "exact", `${dtype} info`);
    compare(g, xg, xc, [B, n, 1], tolFor("well", dtype) * 10, `${dtype} x`);
    compare(g, got.factor, want.factor, [B, n, n], tolFor("well", dtype), `${dtype} factor`);
    g.free(yg);
    cpu.free(yc);
    freePair(g, b);
    checkLu(g, "random", [B], n, dtype, "contiguous", 903);
    checkQr(g, "random", [B / 4], 8, 6, dtype, "contiguous", 904);
    freePair(g, a);
  }
});

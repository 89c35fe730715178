// The CPU backend's native layer: the WebAssembly assembler, the shared heap, the thread pool and
// the SIMD kernels, each against an independent reference (closed forms, naive loops in float64,
// the same computation on one thread in another process).

import assert from "node:assert/strict";
import { type Expr, type Fn, type Local, Module } from "../src/backend/cpu/wasm/asm.ts";
import { expF64x2, logF64x2 } from "../src/backend/cpu/wasm/vmath.ts";
import { heapAddress, heapAlloc, heapFree, heapMemory, heapStats } from "../src/backend/cpu/heap.ts";
import { matmulBatch } from "../src/backend/cpu/matmul.ts";
import { rfftInto } from "../src/backend/cpu/fft_ops.ts";
import { copyStrided } from "../src/backend/cpu/elementwise.ts";
import { stencilInto } from "../src/backend/cpu/stencil.ts";
import { hasSimd } from "../src/backend/cpu/wasm/elementwise.ts";
import { BINARY_OPS, type BinaryOp, UNARY_OPS, type UnaryOp } from "../src/tensor/op_defs.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import type { BandedOperator, ReduceOp, View } from "../src/tensor/backend.ts";
import { numel, randomData, rng, rowMajor } from "./helpers.ts";

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

function heapRandom(C: Ctor, n: number, seed: number): Float32Array | Float64Array {
  const r = rng(seed);
  const x = heapAlloc(C, n, false);
  for (let i = 0; i < n; i++) x[i] = 2 * r() - 1;
  return x;
}

// ---------------------------------------------------------------------------------------------
// assembler

Deno.test("asm: loops, i64 addresses and fused SIMD multiply-adds compute what they say", () => {
  const memory = heapMemory()!;
  const m = new Module();
  m.importMemory(1, 262144, true);
  // dot(x, y, n): Σ x[i]·y[i] over float64 pairs, two lanes at a time, then the lanes summed.
  m.func("dot", ["i64", "i64", "i32"], ["f64"], (f, [x, y, n]) => {
    const i = f.local("i32"), acc = f.local("v128");
    f.set(acc, f.f64x2.splat(0));
    f.for(i, 0, n, 2, () => {
      const off = f.i64.extend_i32_s(f.i32.mul(i, 8));
      f.set(acc, f.f64x2.relaxed_madd(f.v128.load(f.i64.add(x, off)), f.v128.load(f.i64.add(y, off)), acc));
    });
    f.push(f.f64.add(f.f64x2.extract_lane(acc, 0), f.f64x2.extract_lane(acc, 1)), "f64");
  });
  m.func("triangle", ["i32"], ["i32"], (f, [n]) => {
    const i = f.local("i32"), s = f.local("i32");
    f.for(i, 1, f.i32.add(n, 1), 1, () => f.inc(s, i));
    f.push(s);
  });
  const exports = m.instantiate(memory).exports as {
    dot: (x: bigint, y: bigint, n: number) => number;
    triangle: (n: number) => number;
  };
  const x = heapAlloc(Float64Array, 64, false), y = heapAlloc(Float64Array, 64, false);
  for (let i = 0; i < 64; i++) [x[i], y[i]] = [i, 1 / (i + 1)];
  let want = 0;
  for (let i = 0; i < 64; i++) want += x[i] * y[i];
  assert.ok(Math.abs(exports.dot(BigInt(x.byteOffset), BigInt(y.byteOffset), 64) - want) < 1e-12);
  assert.equal(exports.triangle(100), 5050);
  assert.equal(exports.triangle(0), 0);
  heapFree(x);
  heapFree(y);
});

// ---------------------------------------------------------------------------------------------
// heap

Deno.test("heap: aligned blocks, zeroed on request, reused and coalesced after free", () => {
  const n = 3 << 18; // 3 MiB of float32: larger than any block earlier tests freed
  const a = heapAlloc(Float32Array, n, false);
  const b = heapAlloc(Float64Array, 10, true);
  assert.ok(heapAddress(a) > 0 && heapAddress(a) % 64 === 0);
  assert.ok(heapAddress(b) % 64 === 0);
  assert.ok(b.every((v) => v === 0));
  assert.equal(heapAddress(new Float32Array(4)), -1, "an ordinary array is not in the heap");
  a.fill(7);
  const at = heapAddress(a);
  heapFree(a);
  const c = heapAlloc(Float32Array, n, true);
  assert.equal(heapAddress(c), at, "a freed block is reused");
  assert.ok(c.every((v) => v === 0), "zero requested: no trace of the previous contents");
  // Two freed neighbours merge into one block that a larger request can take.
  const d = heapAlloc(Float32Array, n, false);
  const e = heapAlloc(Float32Array, n, false);
  assert.equal(heapAddress(e), heapAddress(d) + 4 * n, "blocks from the top are consecutive");
  heapFree(d);
  heapFree(e);
  const f = heapAlloc(Float32Array, 2 * n, false);
  assert.equal(heapAddress(f), heapAddress(d), "coalesced neighbours serve a request neither could alone");
  const before = heapStats();
  heapFree(f);
  heapFree(c);
  heapFree(b);
  assert.ok(heapStats().used < before.used);
  heapFree(b); // a second free is ignored
  assert.equal(heapAlloc(Float64Array, 0, false).length, 0);
});

Deno.test("heap: views survive the memory growing", () => {
  const small = heapAlloc(Float64Array, 4, false);
  small.set([1, 2, 3, 4]);
  const reserved = heapStats().reserved;
  const big = heapAlloc(Float64Array, reserved / 8 + 1, false); // forces growth
  assert.ok(heapStats().reserved > reserved);
  assert.deepEqual(Array.from(small), [1, 2, 3, 4]);
  assert.ok(heapAddress(small) > 0, "a view made before growing is still recognised");
  heapFree(big);
  heapFree(small);
});

// ---------------------------------------------------------------------------------------------
// matmul on the SIMD kernel

interface Mat {
  data: Float32Array | Float64Array;
  offset: number;
  rs: number;
  cs: number;
}

/** A rows × cols matrix in the heap laid out as "row", "col", "padded", "reversed" or "broadcast". */
function matrix(C: Ctor, rows: number, cols: number, layout: string, seed: number): Mat {
  const [rs, cs, size, offset] = layout === "row"
    ? [cols, 1, rows * cols, 0]
    : layout === "col"
    ? [1, rows, rows * cols, 0]
    : layout === "padded"
    ? [cols + 5, 1, rows * (cols + 5), 0]
    : layout === "reversed"
    ? [-cols, -1, rows * cols, rows * cols - 1]
    : [0, 1, cols, 0];
  return { data: heapRandom(C, size, seed), offset, rs, cs };
}

function naive(a: Mat, b: Mat, m: number, n: number, k: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a.data[a.offset + i * a.rs + p * a.cs] * b.data[b.offset + p * b.rs + j * b.cs];
      out[i * n + j] = s;
    }
  }
  return out;
}

function checkSimdMatmul(C: Ctor, m: number, n: number, k: number, aLayout: string, bLayout: string): void {
  const a = matrix(C, m, k, aLayout, m + 7 * k);
  const b = matrix(C, k, n, bLayout, n + 11 * k);
  const want = naive(a, b, m, n, k);
  // Sums of k products of numbers in [-1, 1): float32 accumulation errs by at most ~k·eps.
  const tol = (C === Float32Array ? 2 ** -23 : 2 ** -52) * 2 * k;
  // The WebAssembly kernel, and OpenBLAS where it is installed.
  for (const useBlas of [false, true]) {
    const out = heapAlloc(C, m * n, false).fill(NaN);
    matmulBatch(a.data, [a.offset], a.rs, a.cs, b.data, [b.offset], b.rs, b.cs, out, m, n, k, useBlas);
    const what = `${C.name} ${m}×${n}×${k} a:${aLayout} b:${bLayout}${useBlas ? " (OpenBLAS if present)" : ""}`;
    for (let i = 0; i < m * n; i++) {
      if (!(Math.abs(out[i] - want[i]) <= tol)) assert.fail(`${what}: entry ${i} is ${out[i]}, want ${want[i]}`);
    }
    heapFree(out);
  }
  for (const x of [a.data, b.data]) heapFree(x);
}

Deno.test("matmulBatch: SIMD kernel on block edges, remainders and several k slices", () => {
  const shapes: [number, number, number][] = [
    [17, 33, 29],
    [6, 8, 256],
    [120, 256, 256],
    [121, 257, 257],
    [250, 130, 600],
    [5, 300, 40],
  ];
  for (const C of [Float32Array, Float64Array]) {
    for (const [m, n, k] of shapes) checkSimdMatmul(C, m, n, k, "row", "row");
  }
});

Deno.test("matmulBatch: SIMD kernel on transposed, padded, reversed and broadcast operands", () => {
  const layouts = ["row", "col", "padded", "reversed", "broadcast"];
  for (const C of [Float32Array, Float64Array]) {
    for (const al of layouts) for (const bl of layouts) checkSimdMatmul(C, 37, 41, 70, al, bl);
  }
});

Deno.test("matmulBatch: a batch with its own and shared operands; bfloat16-style operands outside the heap", () => {
  const [m, n, k, count] = [30, 20, 50, 5];
  for (const C of [Float32Array, Float64Array]) {
    const a = heapRandom(C, count * m * k, 3);
    const b = heapRandom(C, k * n, 4); // one B for the whole batch
    const out = heapAlloc(C, count * m * n, false);
    const aOffsets = Array.from({ length: count }, (_, t) => t * m * k);
    matmulBatch(a, aOffsets, k, 1, b, new Array(count).fill(0), n, 1, out, m, n, k);
    const plain = new C(b); // the same B outside the heap is copied in
    const out2 = heapAlloc(C, count * m * n, false);
    matmulBatch(a, aOffsets, k, 1, plain, new Array(count).fill(0), n, 1, out2, m, n, k);
    assert.deepEqual(out2, out);
    for (let t = 0; t < count; t++) {
      const want = naive({ data: a, offset: t * m * k, rs: k, cs: 1 }, { data: b, offset: 0, rs: n, cs: 1 }, m, n, k);
      const tol = (C === Float32Array ? 2 ** -23 : 2 ** -52) * 2 * k;
      for (let i = 0; i < m * n; i++) assert.ok(Math.abs(out[t * m * n + i] - want[i]) <= tol);
    }
    for (const x of [a, b, out, out2]) heapFree(x);
  }
});

// ---------------------------------------------------------------------------------------------
// threads: the same bits whatever the thread count

/** Runs tests/cpu_threads_probe.ts with `PATCHWORK_THREADS=threads` and returns what it prints. */
async function probe(threads: number, blas: "on" | "off"): Promise<string> {
  const url = new URL("./cpu_threads_probe.ts", import.meta.url);
  const env: Record<string, string> = { PATCHWORK_THREADS: String(threads) };
  if (blas === "off") env.PATCHWORK_BLAS = "off";
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", url.pathname],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, `probe with ${threads} threads failed`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("threads: kernels give bit-identical results on 1, 2 and 3 threads (with OpenBLAS where present, and without)", async () => {
  for (const blas of ["on", "off"] as const) {
    const one = await probe(1, blas);
    assert.match(one, /matmul/);
    assert.equal(await probe(2, blas), one, `2 threads, system BLAS ${blas}`);
    assert.equal(await probe(3, blas), one, `3 threads, system BLAS ${blas}`);
  }
});

// ---------------------------------------------------------------------------------------------
// vectorised exp and log against Math.exp and Math.log

/** Distance in units in the last place between two doubles of one sign. */
function ulps(a: number, b: number): number {
  const v = new Float64Array([a, b]);
  const i = new BigInt64Array(v.buffer);
  const d = i[0] - i[1];
  return Number(d < 0n ? -d : d);
}

function vectorFunction(emit: (f: Fn, x: Expr, out: Local) => void): (x: Float64Array) => void {
  const m = new Module();
  m.importMemory(1, 262144, true);
  m.func("map", ["i64", "i32"], [], (f, [p, n]) => {
    const i = f.local("i32"), y = f.local("v128"), a = f.local("i64");
    f.for(i, 0, n, 2, () => {
      f.set(a, f.i64.add(p, f.i64.extend_i32_s(f.i32.mul(i, 8))));
      emit(f, f.v128.load(a), y);
      f.v128.store(a, y);
    });
  });
  const map = m.instantiate(heapMemory()!).exports.map as (p: bigint, n: number) => void;
  return (x) => map(BigInt(heapAddress(x)), x.length);
}

Deno.test("vmath: exp and log within 1 ulp of Math.exp and Math.log, special values exact", () => {
  const r = rng(11);
  const n = 1 << 16;
  const xs = heapAlloc(Float64Array, n, false);
  const specials = [0, -0, 1, -1, 709.78, 709.79, 710, -708.4, -745.1, -745.2, Infinity, -Infinity, NaN, 5e-324, 1e308];
  const expArgs = Array.from({ length: n }, (_, i) => i < specials.length ? specials[i] : (2 * r() - 1) * 750);
  xs.set(expArgs);
  vectorFunction(expF64x2)(xs);
  expArgs.forEach((x, i) => {
    const want = Math.exp(x);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(xs[i]), `exp(${x})`);
    else assert.ok(ulps(xs[i], want) <= 1, `exp(${x}) = ${xs[i]}, Math.exp gives ${want}`);
  });
  const logArgs = Array.from(
    { length: n },
    (_, i) => i < specials.length ? specials[i] : Math.exp((2 * r() - 1) * 740),
  );
  xs.set(logArgs);
  vectorFunction(logF64x2)(xs);
  logArgs.forEach((x, i) => {
    const want = Math.log(x);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(xs[i]), `log(${x})`);
    else assert.ok(ulps(xs[i], want) <= 1, `log(${x}) = ${xs[i]}, Math.log gives ${want}`);
  });
  heapFree(xs);
});

// ---------------------------------------------------------------------------------------------
// reductions and softmax through the backend, against float64 loops

const cpu = new CpuBackend();

function fromData(data: number[], shape: number[], dtype: "float32" | "float64"): View {
  return { buffer: cpu.fromHost(data, dtype), shape, strides: rowMajor(shape), offset: 0 };
}

/** Reference reduction in float64 over the given axes of a row-major array. */
function naiveReduce(op: ReduceOp, data: ArrayLike<number>, shape: number[], axes: number[]): number[] {
  const outShape = shape.map((n, d) => (axes.includes(d) ? 1 : n));
  const outStrides = rowMajor(outShape);
  const init = { sum: 0, prod: 1, max: -Infinity, min: Infinity }[op];
  const out = new Array(numel(outShape)).fill(init);
  const idx = new Array(shape.length).fill(0);
  for (let i = 0; i < data.length; i++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (!axes.includes(d)) o += idx[d] * outStrides[d];
    const v = data[i];
    if (op === "sum") out[o] += v;
    else if (op === "prod") out[o] *= v;
    else if (v !== v || out[o] !== out[o]) out[o] = NaN;
    else out[o] = op === "max" ? Math.max(out[o], v) : Math.min(out[o], v);
    for (let d = shape.length - 1; d >= 0 && ++idx[d] === shape[d]; d--) idx[d] = 0;
  }
  return out;
}

Deno.test("reduce: SIMD rows and columns (chunked, banded, with tails) match float64 loops", () => {
  const cases: [number[], number[]][] = [
    [[70001], [0]], // one long row: several chunks
    [[37, 1000], [1]], // rows
    [[1300, 7], [0]], // columns: several bands, narrow
    [[3, 600, 2100], [1]], // columns wider than one job's
    [[5, 33, 4], [1]],
    [[6, 5, 9], [0, 1]], // merged leading axes
    [[6, 5, 9], [1, 2]], // merged trailing axes
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [shape, axes] of cases) {
      for (const op of ["sum", "max", "min", "prod"] as const) {
        const data = randomData(
          numel(shape),
          shape.length * 17 + axes[0],
          op === "prod" ? 0.9 : -3,
          op === "prod" ? 1.1 : 3,
        );
        if (op === "max" && shape[0] === 37) data[500] = NaN; // NaN propagates
        const x = fromData(data, shape, dtype);
        const stored = cpu.toHost(x); // the values as stored in dtype
        const got = cpu.toHost({
          buffer: cpu.reduce(op, x, axes, dtype),
          shape: [numel(shape.map((n, d) => (axes.includes(d) ? 1 : n)))],
          strides: [1],
          offset: 0,
        });
        const want = naiveReduce(op, stored, shape, axes);
        const n = axes.reduce((p, a) => p * shape[a], 1);
        const tol = (dtype === "float32" ? 2 ** -24 : 2 ** -50) * (op === "sum" ? 3 * Math.sqrt(n) * 3 : 4);
        want.forEach((w, i) => {
          const what = `${op} ${dtype} ${shape} over ${axes}: entry ${i}`;
          if (Number.isNaN(w)) assert.ok(Number.isNaN(got[i]), what);
          else assert.ok(Math.abs(got[i] - w) <= tol * Math.max(1, Math.abs(w)), `${what}: ${got[i]} vs ${w}`);
        });
        cpu.free(x.buffer);
      }
    }
  }
});

Deno.test("softmax: SIMD rows match float64 loops, with -Infinity, huge logits and log-softmax", () => {
  for (const dtype of ["float32", "float64"] as const) {
    for (const [rows, n] of [[3, 1], [5, 7], [40, 333], [2, 9000]]) {
      const data = randomData(rows * n, n, -20, 20);
      data[0] = -Infinity;
      if (n > 2) data[n + 1] = 1e30;
      const x = fromData(data, [rows, n], dtype);
      const stored = cpu.toHost(x);
      for (const log of [false, true]) {
        const got = cpu.toHost({ buffer: cpu.softmax(x, 1, log, dtype), shape: [rows * n], strides: [1], offset: 0 });
        for (let r = 0; r < rows; r++) {
          const row = Array.from(stored.subarray(r * n, r * n + n));
          const m = Math.max(...row);
          const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
          row.forEach((v, j) => {
            const want = log ? v - m - Math.log(s) : Math.exp(v - m) / s;
            const g = got[r * n + j];
            const what = `${dtype} ${rows}×${n} log=${log} [${r}, ${j}]`;
            if (Number.isNaN(want)) assert.ok(Number.isNaN(g), what); // a row of only -Infinity
            else if (want === -Infinity) assert.equal(g, -Infinity, what);
            else {assert.ok(
                Math.abs(g - want) <= (dtype === "float32" ? 3e-7 : 1e-14) * Math.max(1, Math.abs(want)),
                `${what}: ${g} vs ${want}`,
              );}
          });
        }
      }
      cpu.free(x.buffer);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// FFT along strided axes, against the naive DFT and the TypeScript transform

/** Naive DFT of a complex line (float64), unnormalised forward or 1/n inverse. */
function naiveDft(re: number[], im: number[], inverse: boolean): [number[], number[]] {
  const n = re.length, sign = inverse ? 1 : -1;
  const outRe: number[] = [], outIm: number[] = [];
  for (let k = 0; k < n; k++) {
    let sr = 0, si = 0;
    for (let j = 0; j < n; j++) {
      const a = (sign * 2 * Math.PI * ((j * k) % n)) / n;
      sr += re[j] * Math.cos(a) - im[j] * Math.sin(a);
      si += re[j] * Math.sin(a) + im[j] * Math.cos(a);
    }
    outRe.push(inverse ? sr / n : sr);
    outIm.push(inverse ? si / n : si);
  }
  return [outRe, outIm];
}

Deno.test("fft: SIMD transforms along channels-last axes match the naive DFT and the TypeScript path bit for bit", () => {
  for (const dtype of ["float32", "float64"] as const) {
    for (const n of [1, 2, 4, 21, 32, 64]) {
      // Real signals [2, n, 3] (channels last); transform along axis 1.
      const shape = [2, n, 3];
      const data = randomData(numel(shape), n + 5);
      const x = fromData(data, shape, dtype);
      const stored = cpu.toHost(x);
      const h = Math.floor(n / 2) + 1;
      const spec = cpu.rfft(x, 1, dtype);
      const specShape = [2, h, 3, 2];
      const got = cpu.toHost({ buffer: spec, shape: specShape, strides: rowMajor(specShape), offset: 0 });
      const back = cpu.toHost({
        buffer: cpu.irfft({ buffer: spec, shape: specShape, strides: rowMajor(specShape), offset: 0 }, 1, n, dtype),
        shape,
        strides: rowMajor(shape),
        offset: 0,
      });
      const full = cpu.toHost({
        buffer: cpu.fft({ buffer: spec, shape: specShape, strides: rowMajor(specShape), offset: 0 }, 1, false, dtype),
        shape: specShape,
        strides: rowMajor(specShape),
        offset: 0,
      });
      const tol = dtype === "float32" ? 1e-5 : 1e-12;
      for (let b = 0; b < 2; b++) {
        for (let c = 0; c < 3; c++) {
          const line = Array.from({ length: n }, (_, j) => stored[(b * n + j) * 3 + c]);
          const [wr, wi] = naiveDft(line, new Array(n).fill(0), false);
          for (let k = 0; k < h; k++) {
            const at = ((b * h + k) * 3 + c) * 2;
            assert.ok(
              Math.abs(got[at] - wr[k]) <= tol * n && Math.abs(got[at + 1] - wi[k]) <= tol * n,
              `rfft ${dtype} n=${n}`,
            );
          }
          for (let j = 0; j < n; j++) {
            assert.ok(Math.abs(back[(b * n + j) * 3 + c] - line[j]) <= tol * 4, `irfft(rfft) ${dtype} n=${n}`);
          }
          const specRe = Array.from({ length: h }, (_, k) => got[((b * h + k) * 3 + c) * 2]);
          const specIm = Array.from({ length: h }, (_, k) => got[((b * h + k) * 3 + c) * 2 + 1]);
          const [fr, fi] = naiveDft(specRe, specIm, false);
          for (let k = 0; k < h; k++) {
            const at = ((b * h + k) * 3 + c) * 2;
            assert.ok(
              Math.abs(full[at] - fr[k]) <= tol * n * n && Math.abs(full[at + 1] - fi[k]) <= tol * n * n,
              `fft ${dtype} n=${n}`,
            );
          }
        }
      }
      // The TypeScript transform (arrays outside the heap) gives the same bits.
      const plainOut = dtype === "float32" ? new Float32Array(got.length) : new Float64Array(got.length);
      const plainX = {
        data: dtype === "float32" ? new Float32Array(stored) : new Float64Array(stored),
        offset: 0,
        strides: rowMajor(shape),
      };
      rfftInto(plainX, shape, 1, plainOut);
      assert.deepEqual(Array.from(plainOut), Array.from(got), `rfft ${dtype} n=${n}: SIMD and TypeScript paths differ`);
      cpu.free(x.buffer);
      cpu.free(spec);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// stencils against the dense operator and the TypeScript path

/** The dense n × n matrix of a banded operator (its definition in src/tensor/backend.ts). */
function denseOf(op: BandedOperator): number[][] {
  const { n, lo, stencil, periodic, head, tail } = op;
  const m = Array.from({ length: n }, () => new Array(n).fill(0));
  for (let i = 0; i < n; i++) {
    if (i < head.rows) { for (let c = 0; c < head.cols; c++) m[i][c] += head.values[i * head.cols + c]; }
    else if (i >= n - tail.rows) {
      const r = i - (n - tail.rows);
      for (let c = 0; c < tail.cols; c++) m[i][n - tail.cols + c] += tail.values[r * tail.cols + c];
    } else {
      stencil.forEach((s, k) => {
        const col = i + lo + k;
        if (periodic) m[i][((col % n) + n) % n] += s;
        else if (col >= 0 && col < n) m[i][col] += s;
      });
    }
  }
  return m;
}

Deno.test("stencil: SIMD kernel matches the dense operator and the TypeScript path bit for bit", () => {
  const none = { rows: 0, cols: 0, values: [] };
  const ops: BandedOperator[] = [
    { n: 9, lo: -1, stencil: [1, -2, 1], periodic: true, head: none, tail: none },
    { n: 9, lo: -2, stencil: [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12], periodic: false, head: none, tail: none },
    {
      n: 9,
      lo: -1,
      stencil: [-0.5, 0, 0.5],
      periodic: false,
      head: { rows: 1, cols: 3, values: [-1.5, 2, -0.5] },
      tail: { rows: 1, cols: 3, values: [0.5, -2, 1.5] },
    },
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const op of ops) {
      const dense = denseOf(op);
      for (const [shape, axis] of [[[3, 9], 1], [[9, 5], 0], [[2, 9, 4], 1]] as [number[], number][]) {
        const x = fromData(randomData(numel(shape), 3), shape, dtype);
        const add = fromData(randomData(numel(shape), 4), shape, dtype);
        const xs = cpu.toHost(x), as = cpu.toHost(add);
        const got = cpu.toHost({
          buffer: cpu.stencil(x, axis, op, add, dtype),
          shape: [numel(shape)],
          strides: [1],
          offset: 0,
        });
        const outer = numel(shape.slice(0, axis)), inner = numel(shape.slice(axis + 1)), n = shape[axis];
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < n; i++) {
            for (let j = 0; j < inner; j++) {
              const at = (o * n + i) * inner + j;
              let want = as[at];
              for (let c = 0; c < n; c++) want += dense[i][c] * xs[(o * n + c) * inner + j];
              const tol = (dtype === "float32" ? 2e-6 : 1e-14) * 10;
              assert.ok(
                Math.abs(got[at] - want) <= tol,
                `${dtype} n=${n} ${shape} axis ${axis} [${o},${i},${j}]: ${got[at]} vs ${want}`,
              );
            }
          }
        }
        const C = dtype === "float32" ? Float32Array : Float64Array;
        const plain = new C(numel(shape));
        stencilInto(op, { data: new C(xs), offset: 0, strides: rowMajor(shape) }, shape, axis, {
          data: new C(as),
          offset: 0,
          strides: rowMajor(shape),
        }, plain);
        assert.deepEqual(
          Array.from(got),
          Array.from(plain),
          `${dtype} ${shape} axis ${axis}: SIMD and TypeScript paths differ`,
        );
        cpu.free(x.buffer);
        cpu.free(add.buffer);
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------
// elementwise ops against their scalar definitions (src/tensor/op_defs.ts)

const SPECIALS = [
  0,
  -0,
  1,
  -1,
  0.5,
  -2.5,
  1e-310,
  -1e-310,
  3e38,
  -3e38,
  1e300,
  700,
  -700,
  30,
  -30,
  Infinity,
  -Infinity,
  NaN,
];

function elementwiseInputs(n: number, seed: number, positive = false): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    if (i < SPECIALS.length) return positive ? Math.abs(SPECIALS[i]) : SPECIALS[i];
    const v = (r() - 0.5) * [2, 20, 200][i % 3];
    return positive ? Math.abs(v) : v;
  });
}

/** Units in the last place of `dtype` between `got` and `want` (0 when both NaN). */
function ulpsIn(dtype: "float32" | "float64", got: number, want: number): number {
  if (Number.isNaN(got) || Number.isNaN(want)) return Number.isNaN(got) && Number.isNaN(want) ? 0 : Infinity;
  if (got === want) return 0;
  if (dtype === "float64") return Math.sign(got) === Math.sign(want) ? ulps(got, want) : Infinity;
  const b = new Int32Array(new Float32Array([got, want]).buffer);
  return Math.abs(b[0] - b[1]);
}

Deno.test("elementwise: SIMD unary ops match their definitions (exact ops bit for bit, the others within 2 ulp)", () => {
  const exact = new Set(["neg", "abs", "sqrt", "floor", "reciprocal", "relu", "rsqrt"]);
  for (const dtype of ["float32", "float64"] as const) {
    for (const op of Object.keys(UNARY_OPS) as UnaryOp[]) {
      if (!hasSimd("unary", op)) continue;
      const n = 70_003; // several jobs and a tail
      const data = elementwiseInputs(n, op.length, op === "log" || op === "sqrt" || op === "rsqrt");
      const x = fromData(data, [n], dtype);
      const stored = cpu.toHost(x);
      const got = cpu.toHost({ buffer: cpu.unary(op, x, dtype), shape: [n], strides: [1], offset: 0 });
      const round = dtype === "float32" ? Math.fround : (v: number) => v;
      const limit = exact.has(op) ? 0 : 2;
      for (let i = 0; i < n; i++) {
        const want = round(UNARY_OPS[op].f(stored[i]));
        const d = ulpsIn(dtype, got[i], want);
        // Where a definition cancels (1 + tanh(u) for u ≪ 0 in the tanh GELUs) its own
        // double-precision result is only good to a few ulp of its terms: allow that error too.
        const x = Math.abs(stored[i]);
        const terms = op === "gelu_tanh_grad" ? 1 + x * (1 + 0.134 * x * x) : x;
        const cancels = Math.abs(got[i] - want) <= 4 * 2 ** -52 * Math.max(1, terms);
        if (d > limit && !cancels) {
          assert.fail(`${op} ${dtype}(${stored[i]}) = ${got[i]}, the definition gives ${want} (${d} ulp)`);
        }
      }
      cpu.free(x.buffer);
    }
  }
});

Deno.test("elementwise: SIMD binary ops match their definitions bit for bit, on rows, broadcasts and constants", () => {
  for (const dtype of ["float32", "float64"] as const) {
    for (const op of Object.keys(BINARY_OPS) as BinaryOp[]) {
      if (!hasSimd("binary", op)) continue;
      const [rows, n] = [37, 1001];
      const a = fromData(elementwiseInputs(rows * n, 1), [rows, n], dtype);
      const bias = fromData(elementwiseInputs(n, 2), [n], dtype);
      const as = cpu.toHost(a), bs = cpu.toHost(bias);
      const biasView = { ...bias, shape: [rows, n], strides: [0, 1] }; // broadcast over rows
      const cases: [string, View | number, View | number, (i: number) => [number, number]][] = [
        ["rows + broadcast row", a, biasView, (i) => [as[i], bs[i % n]]],
        ["broadcast row + rows", biasView, a, (i) => [bs[i % n], as[i]]],
        ["rows + constant", a, 0.75, (i) => [as[i], 0.75]],
        ["constant + rows", -3, a, (i) => [-3, as[i]]],
        ["rows + rows", a, a, (i) => [as[i], as[i]]],
      ];
      for (const [what, x, y, pick] of cases) {
        const got = cpu.toHost({
          buffer: cpu.binary(op, x, y, [rows, n], dtype),
          shape: [rows * n],
          strides: [1],
          offset: 0,
        });
        const round = dtype === "float32" ? Math.fround : (v: number) => v;
        for (let i = 0; i < rows * n; i++) {
          const [u, v] = pick(i).map(round);
          const want = round(BINARY_OPS[op].f(u, v));
          if (!Object.is(got[i], want)) {
            assert.fail(`${op} ${dtype} ${what}: (${u}, ${v}) gives ${got[i]}, want ${want}`);
          }
        }
      }
      cpu.free(a.buffer);
      cpu.free(bias.buffer);
    }
  }
});

Deno.test("copy: strided copies (transposes, every other element, padded rows, reversed axes) move every element's bits", () => {
  for (const C of [Float32Array, Float64Array, Int32Array]) {
    for (const shape of [[70001], [37, 1001], [5, 6, 7], [3, 4, 5, 6]]) {
      for (const read of ["transposed", "every other"]) {
        const size = numel(shape);
        const src = heapAlloc(C, size, false);
        for (let i = 0; i < size; i++) src[i] = i * 3 + 1;
        // A reversed permutation of the source's axes (left to the loop: a cache line apart), or every other
        // element of its last axis (the copy kernel); the first axis reversed in both.
        const rm = rowMajor(shape);
        const last = shape.length - 1;
        const halve = (p: number) => read === "every other" && p === last;
        const perm = read === "transposed" ? shape.map((_, d) => last - d) : shape.map((_, d) => d);
        const viewShape = perm.map((p) => (halve(p) ? Math.ceil(shape[p] / 2) : shape[p]));
        const viewStrides = perm.map((p, d) => (d === 0 ? -1 : 1) * rm[p] * (halve(p) ? 2 : 1));
        const offset = (viewShape[0] - 1) * rm[perm[0]] * (halve(perm[0]) ? 2 : 1);
        const count = numel(viewShape);
        const dst = heapAlloc(C, count, false).fill(0);
        copyStrided(
          { data: src, offset, strides: viewStrides },
          { data: dst, offset: 0, strides: rowMajor(viewShape) },
          viewShape,
        );
        const idx = new Array(viewShape.length).fill(0);
        for (let i = 0; i < count; i++) {
          let at = offset;
          idx.forEach((v, d) => (at += v * viewStrides[d]));
          if (dst[i] !== src[at]) assert.fail(`${C.name} ${shape} ${read}: element ${i} is ${dst[i]}, want ${src[at]}`);
          for (let d = idx.length - 1; d >= 0 && ++idx[d] === viewShape[d]; d--) idx[d] = 0;
        }
        heapFree(src);
        heapFree(dst);
      }
    }
  }
});

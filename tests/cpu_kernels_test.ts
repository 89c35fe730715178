import assert from "node:assert/strict";
import { matmulKernel } from "../src/backend/cpu/matmul.ts";
import { fftKernel } from "../src/backend/cpu/fft.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Deterministic pseudo-random numbers in [-1, 1) (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

function randomArray(C: Ctor, size: number, seed: number): Float32Array | Float64Array {
  const r = rng(seed);
  const x = new C(size);
  for (let i = 0; i < size; i++) x[i] = r();
  return x;
}

interface Operand {
  data: Float32Array | Float64Array;
  offset: number;
  rowStride: number;
  colStride: number;
}

/**
 * Lays out a rows × cols matrix inside a larger buffer with the given layout:
 * "row" (row-major), "col" (column-major, i.e. a transposed view), "padded" (row-major with a
 * padded leading dimension), "reversed" (negative strides), "broadcast" (row stride 0).
 */
function operand(C: Ctor, rows: number, cols: number, layout: string, offset: number, seed: number): Operand {
  let rowStride: number, colStride: number, size: number, base: number;
  switch (layout) {
    case "row":
      rowStride = cols, colStride = 1, size = rows * cols, base = 0;
      break;
    case "col":
      rowStride = 1, colStride = rows, size = rows * cols, base = 0;
      break;
    case "padded":
      rowStride = cols + 3, colStride = 1, size = rows * (cols + 3), base = 0;
      break;
    case "reversed":
      rowStride = -cols, colStride = -1, size = rows * cols, base = rows * cols - 1;
      break;
    case "broadcast":
      rowStride = 0, colStride = 1, size = cols, base = 0;
      break;
    default:
      throw new Error(layout);
  }
  const data = randomArray(C, size + offset + 2, seed);
  return { data, offset: offset + base, rowStride, colStride };
}

function naiveMatmul(a: Operand, b: Operand, m: number, n: number, k: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s += a.data[a.offset + i * a.rowStride + p * a.colStride] *
          b.data[b.offset + p * b.rowStride + j * b.colStride];
      }
      out[i * n + j] = s;
    }
  }
  return out;
}

function checkMatmul(
  C: Ctor,
  m: number,
  n: number,
  k: number,
  aLayout = "row",
  bLayout = "row",
  offsets: [number, number, number] = [0, 0, 0],
): void {
  const a = operand(C, m, k, aLayout, offsets[0], 1 + m * 7 + k);
  const b = operand(C, k, n, bLayout, offsets[1], 2 + n * 11 + k);
  const outOffset = offsets[2];
  const out = new C(outOffset + m * n + 3).fill(12345);
  matmulKernel(
    a.data,
    a.offset,
    a.rowStride,
    a.colStride,
    b.data,
    b.offset,
    b.rowStride,
    b.colStride,
    out,
    outOffset,
    m,
    n,
    k,
  );
  const want = naiveMatmul(a, b, m, n, k);
  const tol = C === Float32Array ? 2e-6 : 1e-13;
  const what = `${C.name} ${m}×${n}×${k} a:${aLayout} b:${bLayout} offsets ${offsets}`;
  for (let i = 0; i < outOffset; i++) assert.equal(out[i], 12345, `${what}: wrote before the window`);
  for (let i = outOffset + m * n; i < out.length; i++) assert.equal(out[i], 12345, `${what}: wrote past the window`);
  for (let idx = 0; idx < m * n; idx++) {
    const got = out[outOffset + idx];
    // Entries are sums of k products of numbers in [-1, 1): scale the tolerance by k.
    const err = Math.abs(got - want[idx]);
    if (!(err <= tol * Math.max(1, k))) {
      assert.fail(`${what}: entry ${idx} is ${got}, want ${want[idx]} (error ${err})`);
    }
  }
}

const CTORS: Ctor[] = [Float32Array, Float64Array];

// ---------------------------------------------------------------------------------------------
// matmul

Deno.test("matmulKernel: tiny and odd shapes match the naive triple loop", () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 1, 5],
    [1, 7, 1],
    [7, 1, 1],
    [2, 3, 4],
    [3, 3, 3],
    [4, 4, 4],
    [5, 5, 5],
    [7, 13, 5],
    [13, 7, 9],
    [8, 8, 8],
    [9, 10, 11],
    [1, 64, 64],
    [64, 1, 64],
    [64, 64, 1],
    [2, 100, 50],
    [100, 3, 50],
    [17, 23, 2],
  ];
  for (const C of CTORS) for (const [m, n, k] of shapes) checkMatmul(C, m, n, k);
});

Deno.test("matmulKernel: blocked sizes and block edges match the naive triple loop", () => {
  const shapes: [number, number, number][] = [
    [65, 129, 33],
    [128, 128, 256],
    [129, 130, 257], // one past MC, a ragged NR edge and one past KC
    [33, 47, 600], // three kc blocks
    [300, 5, 20],
    [6, 300, 20],
  ];
  for (const C of CTORS) for (const [m, n, k] of shapes) checkMatmul(C, m, n, k);
});

Deno.test("matmulKernel: n wider than one packed panel of B", () => {
  checkMatmul(Float64Array, 5, 2100, 3);
  checkMatmul(Float32Array, 6, 4100, 7);
});

Deno.test("matmulKernel: transposed, padded, reversed and broadcast strides", () => {
  const layouts = ["row", "col", "padded", "reversed"];
  const shapes: [number, number, number][] = [
    [3, 5, 2],
    [7, 13, 5],
    [37, 29, 41],
    [65, 129, 33],
  ];
  for (const C of CTORS) {
    for (const [m, n, k] of shapes) {
      for (const la of layouts) for (const lb of layouts) checkMatmul(C, m, n, k, la, lb);
    }
    checkMatmul(C, 20, 30, 40, "broadcast", "row");
    checkMatmul(C, 20, 30, 40, "row", "broadcast");
  }
});

Deno.test("matmulKernel: offsets into all three arrays", () => {
  for (const C of CTORS) {
    checkMatmul(C, 7, 13, 5, "row", "col", [3, 5, 7]);
    checkMatmul(C, 65, 129, 33, "col", "row", [11, 1, 4]);
    checkMatmul(C, 2, 2, 2, "padded", "padded", [1, 2, 3]);
  }
});

Deno.test("matmulKernel: k = 0 writes zeros; m = 0 or n = 0 writes nothing", () => {
  for (const C of CTORS) {
    const out = new C(2 + 12 + 2).fill(7);
    matmulKernel(new C(0), 0, 0, 1, new C(0), 0, 4, 1, out, 2, 3, 4, 0);
    assert.deepEqual(Array.from(out), [7, 7, ...new Array(12).fill(0), 7, 7]);
    const untouched = new C(4).fill(7);
    matmulKernel(new C(4), 0, 1, 1, new C(4), 0, 1, 1, untouched, 0, 0, 4, 1);
    matmulKernel(new C(4), 0, 1, 1, new C(4), 0, 1, 1, untouched, 0, 4, 0, 1);
    assert.deepEqual(Array.from(untouched), [7, 7, 7, 7]);
  }
});

Deno.test("matmulKernel: the JSDoc example", () => {
  const out = new Float64Array(4);
  matmulKernel(
    new Float64Array([1, 2, 3, 4, 5, 6]),
    0,
    3,
    1,
    new Float64Array([1, 0, 0, 1, 1, 1]),
    0,
    2,
    1,
    out,
    0,
    2,
    2,
    3,
  );
  assert.deepEqual(Array.from(out), [4, 5, 10, 11]);
});

Deno.test("matmulKernel: float32 is accumulated in double precision", () => {
  // One large term then 4096 terms of 1e-4: summed in float32 each small term is below half an
  // ulp of 1e4 and is lost (the result would be 1e4). Accumulated in doubles and rounded once
  // per 256-deep block of k, the result is within a few float32 ulps of the exact sum.
  const k = 4097;
  const a = new Float32Array(8 * k).fill(1);
  const b = new Float32Array(k * 8).fill(1e-4);
  for (let j = 0; j < 8; j++) b[j] = 1e4; // first row large
  const out = new Float32Array(64);
  matmulKernel(a, 0, k, 1, b, 0, 8, 1, out, 0, 8, 8, k);
  const want = Math.fround(1e4) + (k - 1) * Math.fround(1e-4);
  for (const v of out) assert.ok(Math.abs(v - want) / want < 1e-6, `${v} vs ${want}`);
});

// ---------------------------------------------------------------------------------------------
// FFT

function naiveDft(re: Float64Array, im: Float64Array, inverse: boolean): [Float64Array, Float64Array] {
  const n = re.length;
  const outRe = new Float64Array(n), outIm = new Float64Array(n);
  const sign = inverse ? 1 : -1;
  for (let k = 0; k < n; k++) {
    let sr = 0, si = 0;
    for (let j = 0; j < n; j++) {
      // Exact reduction of the angle keeps the reference accurate for large n.
      const angle = (sign * 2 * Math.PI * ((j * k) % n)) / n;
      const c = Math.cos(angle), s = Math.sin(angle);
      sr += re[j] * c - im[j] * s;
      si += re[j] * s + im[j] * c;
    }
    outRe[k] = inverse ? sr / n : sr;
    outIm[k] = inverse ? si / n : si;
  }
  return [outRe, outIm];
}

function randomSignal(n: number, seed: number): [Float64Array, Float64Array] {
  return [
    randomArray(Float64Array, n, seed) as Float64Array,
    randomArray(Float64Array, n, seed + 1000) as Float64Array,
  ];
}

function maxAbs(...xs: Float64Array[]): number {
  let m = 0;
  for (const x of xs) for (const v of x) m = Math.max(m, Math.abs(v));
  return m;
}

function maxDiff(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const FFT_SIZES = [...Array.from({ length: 40 }, (_, i) => i + 1), 63, 64, 65, 100, 127, 128, 255, 256, 1000, 1024];

Deno.test("fftKernel: forward and inverse match the naive DFT", () => {
  for (const n of FFT_SIZES) {
    for (const inverse of [false, true]) {
      const [re, im] = randomSignal(n, n * 3 + (inverse ? 1 : 0));
      const [wantRe, wantIm] = naiveDft(re, im, inverse);
      fftKernel(re, im, inverse);
      const scale = maxAbs(wantRe, wantIm);
      const err = Math.max(maxDiff(re, wantRe), maxDiff(im, wantIm)) / scale;
      assert.ok(err < 1e-13, `n=${n} inverse=${inverse}: relative error ${err}`);
    }
  }
});

Deno.test("fftKernel: round trip restores the signal", () => {
  for (const n of [...FFT_SIZES, 4096, 3000, 4099]) {
    const [re0, im0] = randomSignal(n, 77 + n);
    const re = re0.slice(), im = im0.slice();
    fftKernel(re, im, false);
    fftKernel(re, im, true);
    const err = Math.max(maxDiff(re, re0), maxDiff(im, im0));
    assert.ok(err < 1e-14, `n=${n}: round-trip error ${err}`);
  }
});

Deno.test("fftKernel: Parseval's theorem", () => {
  for (const n of [1, 2, 3, 10, 64, 100, 128, 1000, 2048]) {
    const [re, im] = randomSignal(n, 5 * n);
    let energy = 0;
    for (let i = 0; i < n; i++) energy += re[i] * re[i] + im[i] * im[i];
    fftKernel(re, im, false);
    let spectral = 0;
    for (let i = 0; i < n; i++) spectral += re[i] * re[i] + im[i] * im[i];
    const rel = Math.abs(spectral / n - energy) / energy;
    assert.ok(rel < 1e-13, `n=${n}: Parseval mismatch ${rel}`);
  }
});

Deno.test("fftKernel: known transforms (impulse, constant, pure tone)", () => {
  for (const n of [1, 5, 8, 100, 128]) {
    // Impulse at 0 → all ones.
    const re = new Float64Array(n), im = new Float64Array(n);
    re[0] = 1;
    fftKernel(re, im, false);
    for (let k = 0; k < n; k++) {
      assert.ok(Math.abs(re[k] - 1) < 1e-14 && Math.abs(im[k]) < 1e-14, `impulse n=${n} k=${k}`);
    }
    // Constant → n at 0.
    re.fill(1), im.fill(0);
    fftKernel(re, im, false);
    assert.ok(Math.abs(re[0] - n) < 1e-12 * n);
    for (let k = 1; k < n; k++) assert.ok(Math.abs(re[k]) < 1e-12 && Math.abs(im[k]) < 1e-12, `constant n=${n}`);
    // e^{2πi 3j/n} → n at k = 3 (mod n).
    for (let j = 0; j < n; j++) {
      re[j] = Math.cos((2 * Math.PI * ((3 * j) % n)) / n);
      im[j] = Math.sin((2 * Math.PI * ((3 * j) % n)) / n);
    }
    fftKernel(re, im, false);
    for (let k = 0; k < n; k++) {
      const want = k === 3 % n ? n : 0;
      assert.ok(Math.abs(re[k] - want) < 1e-12 * n && Math.abs(im[k]) < 1e-12 * n, `tone n=${n} k=${k}`);
    }
  }
});

Deno.test("fftKernel: the JSDoc example and argument checks", () => {
  const re = new Float64Array([1, 2, 3]), im = new Float64Array(3);
  fftKernel(re, im, false);
  const h = Math.sqrt(3) / 2;
  assert.ok(maxDiff(re, new Float64Array([6, -1.5, -1.5])) < 1e-14);
  assert.ok(maxDiff(im, new Float64Array([0, h, -h])) < 1e-14);
  fftKernel(re, im, true);
  assert.ok(maxDiff(re, new Float64Array([1, 2, 3])) < 1e-14 && maxAbs(im) < 1e-14);
  assert.throws(() => fftKernel(new Float64Array(3), new Float64Array(4), false), RangeError);
  const empty = new Float64Array(0);
  fftKernel(empty, new Float64Array(0), true); // n = 0 is a no-op
});

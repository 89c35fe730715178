import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { philox4x32_10 } from "../src/backend/cpu/random.ts";
import { erf as cpuErf } from "../src/tensor/math.ts";
import type { DeviceBuffer, View } from "../src/tensor/backend.ts";
import type { BinaryOp, UnaryOp } from "../src/tensor/op_defs.ts";
import { type DType, fromBFloat16Bits, toBFloat16Bits } from "../src/tensor/dtype.ts";
import { ArgumentError, DeviceError } from "../src/tensor/errors.ts";
import { assertClose, numel, rowMajor } from "./helpers.ts";

const cpu = new CpuBackend();

// ---------------------------------------------------------------------------------------------
// Plain reference helpers (deliberately naive).

/** Every multi-index of `shape` in row-major order. */
function* indices(shape: readonly number[]): Generator<number[]> {
  const n = numel(shape);
  for (let f = 0; f < n; f++) {
    const idx: number[] = [];
    let r = f;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r = Math.floor(r / shape[d]);
    }
    yield idx;
  }
}

function at(data: ArrayLike<number>, strides: readonly number[], offset: number, idx: readonly number[]): number {
  let p = offset;
  for (let d = 0; d < idx.length; d++) p += idx[d] * strides[d];
  return data[p];
}

/** The elements a view sees, row-major, read naively from host data. */
function readRef(
  data: ArrayLike<number>,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
): number[] {
  const out: number[] = [];
  for (const idx of indices(shape)) out.push(at(data, strides, offset, idx));
  return out;
}

function view(buffer: DeviceBuffer, shape: readonly number[], strides?: readonly number[], offset = 0): View {
  return { buffer, shape, strides: strides ?? rowMajor(shape), offset };
}

function host(buffer: DeviceBuffer, shape: readonly number[] = [buffer.size]): number[] {
  return Array.from(cpu.toHost(view(buffer, shape)));
}

/** Deterministic pseudo-random numbers for test inputs. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function randn(n: number, seed: number, scale = 2): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

function bf16(x: number): number {
  return fromBFloat16Bits(toBFloat16Bits(x));
}

// A 60-element float64 data set read through the sample views below by many tests.
const DATA = randn(60, 1);

/** Views of a 60-element buffer: contiguous [3,4,5], permuted, reversed, an offset slice, a broadcast. */
const SAMPLE_VIEWS: readonly { name: string; shape: number[]; strides: number[]; offset: number }[] = [
  { name: "contiguous", shape: [3, 4, 5], strides: [20, 5, 1], offset: 0 },
  { name: "permuted", shape: [5, 3, 4], strides: [1, 20, 5], offset: 0 },
  { name: "reversed", shape: [3, 4, 5], strides: [-20, 5, -1], offset: 44 },
  { name: "slice", shape: [2, 2, 3], strides: [20, 10, 2], offset: 21 },
  { name: "broadcast", shape: [3, 4, 5], strides: [0, 5, 0], offset: 2 },
];

// ---------------------------------------------------------------------------------------------

Deno.test("fromHost/toHost round-trip every dtype", () => {
  const vals = [1.5, -2.25, 3, 1e-3];
  const f64 = cpu.fromHost(vals, "float64");
  assert.deepEqual(host(f64), vals);
  assert.ok(cpu.toHost(view(f64, [4])) instanceof Float64Array);
  const f32 = cpu.fromHost(new Float64Array(vals), "float32");
  assert.deepEqual(host(f32), vals.map(Math.fround));
  assert.ok(cpu.toHost(view(f32, [4])) instanceof Float32Array);
  const i32 = cpu.fromHost([1.9, -1.9, 7, 2 ** 31], "int32");
  assert.deepEqual(host(i32), [1, -1, 7, -(2 ** 31)]);
  assert.ok(cpu.toHost(view(i32, [4])) instanceof Int32Array);
  // bfloat16 from floats rounds; from Uint16Array takes raw bits; reads back as Float32Array.
  const b = cpu.fromHost([1, 1.00390625, 1.01171875, 3.14159], "bfloat16");
  const back = cpu.toHost(view(b, [4]));
  assert.ok(back instanceof Float32Array);
  assert.deepEqual(Array.from(back), [1, 1, 1.015625, 3.140625]);
  const raw = cpu.fromHost(new Uint16Array([0x3f80, 0xc000, 0x7f80]), "bfloat16");
  assert.deepEqual(host(raw), [1, -2, Infinity]);
  // A Uint16Array given for another dtype is still bfloat16 bits.
  assert.deepEqual(host(cpu.fromHost(new Uint16Array([0x3fc0]), "float64")), [1.5]);
});

Deno.test("toHost reads strided, reversed and broadcast views", () => {
  const buf = cpu.fromHost(DATA, "float64");
  for (const v of SAMPLE_VIEWS) {
    const got = Array.from(cpu.toHost(view(buf, v.shape, v.strides, v.offset)));
    assert.deepEqual(got, readRef(DATA, v.shape, v.strides, v.offset), v.name);
  }
});

Deno.test("full and arange", () => {
  assert.deepEqual(host(cpu.full(3, 2.5, "float32")), [2.5, 2.5, 2.5]);
  assert.deepEqual(host(cpu.full(2, -2.7, "int32")), [-2, -2]);
  assert.deepEqual(host(cpu.full(2, 1.00390625, "bfloat16")), [1, 1]);
  assert.deepEqual(host(cpu.arange(4, 1, 0.5, "float64")), [1, 1.5, 2, 2.5]);
  assert.deepEqual(host(cpu.arange(4, 0, -1.5, "int32")), [0, -1, -3, -4]);
  assert.deepEqual(host(cpu.arange(3, 0, 0.1, "float32")), [0, 0.1, 0.2].map((_, i) => Math.fround(i * 0.1)));
  assert.deepEqual(host(cpu.arange(0, 0, 1, "float32")), []);
});

// ---------------------------------------------------------------------------------------------
// Unary

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const UNARY_REF: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => (x > 0 ? x : 0),
  gelu: (x) => 0.5 * x * (1 + cpuErf(x / Math.SQRT2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))),
  silu: (x) => x / (1 + Math.exp(-x)),
  softplus: (x) => Math.log(1 + Math.exp(x)),
  erf: cpuErf,
  reciprocal: (x) => 1 / x,
  floor: Math.floor,
  gelu_grad: (x) => 0.5 * (1 + cpuErf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI),
  gelu_tanh_grad: (x) => {
    const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
  },
};
const POSITIVE_ONLY = new Set<UnaryOp>(["log", "sqrt", "rsqrt"]);

Deno.test("unary ops match references on every view kind (float64)", () => {
  const pos = DATA.map((v) => Math.abs(v) + 0.1);
  const bufAny = cpu.fromHost(DATA, "float64");
  const bufPos = cpu.fromHost(pos, "float64");
  for (const op of Object.keys(UNARY_REF) as UnaryOp[]) {
    const data = POSITIVE_ONLY.has(op) ? pos : DATA;
    const buf = POSITIVE_ONLY.has(op) ? bufPos : bufAny;
    for (const v of SAMPLE_VIEWS) {
      const out = cpu.unary(op, view(buf, v.shape, v.strides, v.offset), "float64");
      const expected = readRef(data, v.shape, v.strides, v.offset).map(UNARY_REF[op]);
      assertClose(host(out), expected, { atol: 1e-15, rtol: 1e-14, equalNaN: true }, `${op} ${v.name}`);
      cpu.free(out);
    }
  }
});

Deno.test("unary float32 results are the float64 results rounded once", () => {
  const x = randn(1000, 7, 5).map(Math.fround);
  const buf = cpu.fromHost(x, "float32");
  for (const op of Object.keys(UNARY_REF) as UnaryOp[]) {
    const input = POSITIVE_ONLY.has(op) ? cpu.unary("abs", view(buf, [1000]), "float32") : buf;
    const xs = host(input);
    const got = host(cpu.unary(op, view(input, [1000]), "float32"));
    const want = xs.map((v) => Math.fround(UNARY_REF[op](v)));
    assertClose(got, want, { atol: 1e-30, rtol: 2 ** -23, equalNaN: true }, op);
  }
  // Simple ops are exact.
  const exact = host(cpu.unary("exp", view(buf, [1000]), "float32"));
  assert.deepEqual(exact, x.map((v) => Math.fround(Math.exp(v))));
});

Deno.test("erf is accurate to double precision", () => {
  // Reference values (erf to 17 significant digits).
  const cases: [number, number][] = [
    [0, 0],
    [1e-10, 1.1283791670955126e-10],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [0.84375, 0.7672256612323416],
    [1, 0.8427007929497149],
    [1.25, 0.9229001282564583],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [2.5, 0.999593047982555],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
    [5, 0.9999999999984626],
    [6, 1],
  ];
  for (const [x, e] of cases) {
    assert.ok(Math.abs(cpuErf(x) - e) <= 4e-16 * Math.abs(e), `erf(${x}) = ${cpuErf(x)}, expected ${e}`);
    assert.equal(cpuErf(-x), -cpuErf(x));
  }
  assert.ok(Number.isNaN(cpuErf(NaN)));
  assert.equal(cpuErf(Infinity), 1);
  assert.equal(cpuErf(-Infinity), -1);
});

Deno.test("sigmoid, softplus, silu are stable for large |x|", () => {
  const buf = cpu.fromHost([-1000, -50, 0, 50, 1000], "float64");
  const v = view(buf, [5]);
  const sig = host(cpu.unary("sigmoid", v, "float64"));
  assertClose(sig, [0, 1 / (1 + Math.exp(50)), 0.5, 1 / (1 + Math.exp(-50)), 1], { rtol: 1e-15, equalNaN: true });
  const sp = host(cpu.unary("softplus", v, "float64"));
  assertClose(sp, [0, Math.log1p(Math.exp(-50)), Math.LN2, 50 + Math.log1p(Math.exp(-50)), 1000], {
    rtol: 1e-15,
    equalNaN: true,
  });
  const si = host(cpu.unary("silu", v, "float64"));
  assert.ok(si.every(Number.isFinite));
  assert.equal(si[4], 1000);
  assert.equal(Math.abs(si[0]), 0);
});

Deno.test("unary on int32 and bfloat16", () => {
  const i = cpu.fromHost([-(2 ** 31), -3, 0, 5], "int32");
  assert.deepEqual(host(cpu.unary("neg", view(i, [4]), "int32")), [-(2 ** 31), 3, 0, -5]);
  assert.deepEqual(host(cpu.unary("abs", view(i, [4]), "int32")), [-(2 ** 31), 3, 0, 5]);
  assert.deepEqual(host(cpu.unary("sign", view(i, [4]), "int32")), [-1, -1, 0, 1]);
  const b = cpu.fromHost([0.5, 1, 2, -3], "bfloat16");
  const got = host(cpu.unary("exp", view(b, [4]), "bfloat16"));
  assert.deepEqual(got, [0.5, 1, 2, -3].map((x) => bf16(Math.fround(Math.exp(x)))));
  // bfloat16 strided input.
  const rev = host(cpu.unary("neg", view(b, [2], [-2], 3), "float32"));
  assert.deepEqual(rev, [3, -1]);
});

// ---------------------------------------------------------------------------------------------
// Binary and where

const BINARY_REF: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.pow(a, b),
  maximum: (a, b) => Math.max(a, b),
  minimum: (a, b) => Math.min(a, b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

Deno.test("binary ops match references with strided, broadcast and constant operands", () => {
  // Quantise so comparisons hit ties; keep a positive for pow.
  const aData = DATA.map((v) => Math.round(v * 2) / 2);
  const bData = randn(60, 2).map((v) => Math.round(v * 2) / 2);
  const aPos = aData.map((v) => Math.abs(v) + 0.5);
  for (const op of Object.keys(BINARY_REF) as BinaryOp[]) {
    const aHost = op === "pow" ? aPos : aData;
    const a = cpu.fromHost(aHost, "float64");
    const b = cpu.fromHost(bData, "float64");
    for (const va of SAMPLE_VIEWS) {
      for (const vb of SAMPLE_VIEWS) {
        if (va.shape.join() !== vb.shape.join()) continue;
        const out = cpu.binary(
          op,
          view(a, va.shape, va.strides, va.offset),
          view(b, vb.shape, vb.strides, vb.offset),
          va.shape,
          "float64",
        );
        const ra = readRef(aHost, va.shape, va.strides, va.offset);
        const rb = readRef(bData, vb.shape, vb.strides, vb.offset);
        assertClose(
          host(out),
          ra.map((x, i) => BINARY_REF[op](x, rb[i])),
          { rtol: 1e-15, equalNaN: true },
          `${op} ${va.name}/${vb.name}`,
        );
      }
    }
    // Constants on either side.
    const left = cpu.binary(op, 1.5, view(a, [60]), [60], "float64");
    assertClose(
      host(left),
      aHost.map((x) => BINARY_REF[op](1.5, x)),
      { rtol: 1e-15, equalNaN: true },
      `${op} const-left`,
    );
    const right = cpu.binary(op, view(a, [3, 20]), 0.5, [3, 20], "float64");
    assertClose(
      host(right, [60]),
      aHost.map((x) => BINARY_REF[op](x, 0.5)),
      { rtol: 1e-15, equalNaN: true },
      `${op} const-right`,
    );
  }
});

Deno.test("binary float32 fast paths agree with the generic path", () => {
  const n = 257;
  const x = randn(n, 3).map(Math.fround);
  const y = randn(n, 4).map((v) => Math.fround(v + 3));
  const a = cpu.fromHost(x, "float32");
  const b = cpu.fromHost(y, "float32");
  for (const op of Object.keys(BINARY_REF) as BinaryOp[]) {
    const want = x.map((v, i) => Math.fround(BINARY_REF[op](v, y[i])));
    assertClose(host(cpu.binary(op, view(a, [n]), view(b, [n]), [n], "float32")), want, { equalNaN: true }, `${op} vv`);
    const wantC = x.map((v) => Math.fround(BINARY_REF[op](v, Math.fround(0.1))));
    assertClose(host(cpu.binary(op, view(a, [n]), 0.1, [n], "float32")), wantC, { equalNaN: true }, `${op} vc`);
    const wantL = y.map((v) => Math.fround(BINARY_REF[op](Math.fround(0.3), v)));
    assertClose(host(cpu.binary(op, 0.3, view(b, [n]), [n], "float32")), wantL, { equalNaN: true }, `${op} cv`);
    // Row broadcast [n/1] against a [2, n] view: lines with stride-0 rows.
    const out = host(cpu.binary(op, view(a, [2, n], [0, 1]), view(b, [2, n], [0, 1]), [2, n], "float32"), [2 * n]);
    assertClose(out, [...want, ...want], { equalNaN: true }, `${op} broadcast rows`);
  }
});

Deno.test("binary comparisons produce 1/0 in the output dtype", () => {
  const a = cpu.fromHost([1, 2, NaN, 4], "float32");
  const b = cpu.fromHost([1, 3, NaN, 0], "float32");
  assert.deepEqual(host(cpu.binary("eq", view(a, [4]), view(b, [4]), [4], "int32")), [1, 0, 0, 0]);
  assert.deepEqual(host(cpu.binary("ne", view(a, [4]), view(b, [4]), [4], "float32")), [0, 1, 1, 1]);
  assert.deepEqual(host(cpu.binary("lt", view(a, [4]), view(b, [4]), [4], "float64")), [0, 1, 0, 0]);
  assert.deepEqual(host(cpu.binary("ge", view(a, [4]), 2, [4], "float32")), [0, 1, 0, 1]);
  // pow follows C: pow(1, y) = 1 for any y, pow(-1, ±inf) = 1, pow(x, 0) = 1.
  const p = cpu.fromHost([1, 1, -1, NaN, -8, 0], "float64");
  const q = cpu.fromHost([NaN, Infinity, -Infinity, 0, 1 / 3, -1], "float64");
  const pw = host(cpu.binary("pow", view(p, [6]), view(q, [6]), [6], "float64"));
  assert.deepEqual(pw.slice(0, 4), [1, 1, 1, 1]);
  assert.ok(Number.isNaN(pw[4]));
  assert.equal(pw[5], Infinity);
  // maximum/minimum propagate NaN.
  const mx = host(cpu.binary("maximum", view(a, [4]), view(b, [4]), [4], "float32"));
  assert.deepEqual(mx.slice(0, 2), [1, 3]);
  assert.ok(Number.isNaN(mx[2]));
});

Deno.test("int32 arithmetic wraps like C", () => {
  const big = 2 ** 31 - 1;
  const a = cpu.fromHost([big, -(2 ** 31), 7, -7, 100000, 3, 5, -(2 ** 31)], "int32");
  const b = cpu.fromHost([1, -1, 2, 2, 100000, 0, -2, -1], "int32");
  const va = view(a, [8]);
  const vb = view(b, [8]);
  const wrap = (x: number) => x | 0;
  const ah = host(a);
  const bh = host(b);
  assert.deepEqual(host(cpu.binary("add", va, vb, [8], "int32")), ah.map((x, i) => wrap(x + bh[i])));
  assert.deepEqual(host(cpu.binary("sub", va, vb, [8], "int32")), ah.map((x, i) => wrap(x - bh[i])));
  assert.deepEqual(host(cpu.binary("mul", va, vb, [8], "int32")), ah.map((x, i) => Math.imul(x, bh[i])));
  // Division truncates toward zero; x/0 gives 0; INT_MIN / -1 wraps to INT_MIN.
  assert.deepEqual(host(cpu.binary("div", va, vb, [8], "int32")), [big, -(2 ** 31), 3, -3, 1, 0, -2, -(2 ** 31)]);
  assert.equal(host(cpu.binary("add", va, 1, [8], "int32"))[0], -(2 ** 31));
  const p = cpu.fromHost([2, 3, -2, 2, 5], "int32");
  const e = cpu.fromHost([31, 4, 3, 32, -1], "int32");
  assert.deepEqual(host(cpu.binary("pow", view(p, [5]), view(e, [5]), [5], "int32")), [-(2 ** 31), 81, -8, 0, 0]);
});

Deno.test("bfloat16 binary ops compute in float32 and round on store", () => {
  const x = [1, 1.0078125, 3.5, -2.25, 100];
  const y = [0.00390625, 0.0078125, 1.0078125, 7, 0.3];
  const a = cpu.fromHost(x, "bfloat16");
  const b = cpu.fromHost(y, "bfloat16");
  const xb = x.map(bf16);
  const yb = y.map(bf16);
  for (const op of ["add", "sub", "mul", "div"] as BinaryOp[]) {
    const got = host(cpu.binary(op, view(a, [5]), view(b, [5]), [5], "bfloat16"));
    assert.deepEqual(got, xb.map((v, i) => bf16(Math.fround(BINARY_REF[op](v, yb[i])))), op);
  }
  // Mixed: bfloat16 input, float32 output keeps the full float32 result.
  const got = host(cpu.binary("add", view(a, [5]), view(b, [5]), [5], "float32"));
  assert.deepEqual(got, xb.map((v, i) => Math.fround(v + yb[i])));
});

Deno.test("where picks a for nonzero cond, with broadcasts and constants", () => {
  const cond = cpu.fromHost([1, 0, 2, 0, -1, 0], "int32");
  const a = cpu.fromHost([10, 20, 30], "float64");
  const b = cpu.fromHost([-1, -2, -3, -4, -5, -6], "float64");
  // cond [2,3]; a broadcast over rows; b transposed view of a [3,2] buffer.
  const out = cpu.where(view(cond, [2, 3]), view(a, [2, 3], [0, 1]), view(b, [2, 3], [1, 2]), [2, 3], "float64");
  assert.deepEqual(host(out), [10, -3, 30, -2, 20, -6]);
  const c2 = cpu.where(view(cond, [6]), 7, view(b, [6], [-1], 5), [6], "float32");
  assert.deepEqual(host(c2), [7, -5, 7, -3, 7, -1]);
  const c3 = cpu.where(view(cond, [6]), 1.5, -1.5, [6], "float64");
  assert.deepEqual(host(c3), [1.5, -1.5, 1.5, -1.5, 1.5, -1.5]);
  const fc = cpu.fromHost([0, NaN, 0.5], "float32");
  assert.deepEqual(host(cpu.where(view(fc, [3]), 1, 0, [3], "int32")), [0, 1, 1]);
});

// ---------------------------------------------------------------------------------------------
// Reductions

function reduceRef(
  op: "sum" | "max" | "min" | "prod",
  data: number[],
  shape: number[],
  axes: number[],
): number[] {
  const outShape = shape.map((n, d) => (axes.includes(d) ? 1 : n));
  const os = rowMajor(outShape);
  const init = { sum: 0, prod: 1, max: -Infinity, min: Infinity }[op];
  const out = new Array(numel(outShape)).fill(init);
  let f = 0;
  for (const idx of indices(shape)) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) o += axes.includes(d) ? 0 : idx[d] * os[d];
    const v = data[f++];
    if (op === "sum") out[o] += v;
    else if (op === "prod") out[o] *= v;
    else if (op === "max") out[o] = Math.max(out[o], v);
    else out[o] = Math.min(out[o], v);
  }
  return out;
}

Deno.test("reduce over arbitrary axis sets on every view kind", () => {
  const buf = cpu.fromHost(DATA.map((v) => v / 2 + 1), "float64");
  const hostData = DATA.map((v) => v / 2 + 1);
  const axisSets = [[], [0], [1], [2], [0, 2], [1, 2], [0, 1, 2]];
  for (const op of ["sum", "max", "min", "prod"] as const) {
    for (const v of SAMPLE_VIEWS) {
      const seen = readRef(hostData, v.shape, v.strides, v.offset);
      for (const axes of axisSets) {
        const out = cpu.reduce(op, view(buf, v.shape, v.strides, v.offset), axes, "float64");
        assertClose(
          host(out),
          reduceRef(op, seen, v.shape, axes),
          { atol: 1e-13, rtol: 1e-13, equalNaN: true },
          `${op} ${v.name} [${axes}]`,
        );
      }
    }
  }
});

Deno.test("float32 sums accumulate in float64", () => {
  const n = 1_000_000;
  const x = new Float32Array(n).fill(0.1);
  const out = host(cpu.reduce("sum", view(cpu.fromHost(x, "float32"), [n]), [0], "float32"));
  assert.equal(out[0], Math.fround(Math.fround(0.1) * n));
  // Naive float32 accumulation would be far off.
  let naive = Math.fround(0);
  for (let i = 0; i < n; i++) naive = Math.fround(naive + x[i]);
  assert.notEqual(naive, out[0]);
});

Deno.test("reduce: int32 wraps, NaN propagates through max/min, empty axes give identities", () => {
  const i = cpu.fromHost([2 ** 30, 2 ** 30, 2 ** 30, 3], "int32");
  assert.deepEqual(host(cpu.reduce("sum", view(i, [4]), [0], "int32")), [(3 * 2 ** 30 + 3) | 0]);
  assert.deepEqual(host(cpu.reduce("prod", view(i, [2, 2]), [0], "int32"), [2]), [0, Math.imul(2 ** 30, 3)]);
  assert.deepEqual(host(cpu.reduce("max", view(i, [2, 2]), [1], "int32"), [2]), [2 ** 30, 2 ** 30]);
  const f = cpu.fromHost([1, NaN, 3, 4], "float32");
  const mx = host(cpu.reduce("max", view(f, [2, 2]), [1], "float32"), [2]);
  assert.ok(Number.isNaN(mx[0]));
  assert.equal(mx[1], 4);
  const mn = host(cpu.reduce("min", view(f, [4]), [0], "float32"));
  assert.ok(Number.isNaN(mn[0]));
  const empty = cpu.fromHost([], "float32");
  assert.deepEqual(host(cpu.reduce("sum", view(empty, [2, 0], [0, 1]), [1], "float32"), [2]), [0, 0]);
  assert.deepEqual(host(cpu.reduce("prod", view(empty, [0]), [0], "float64")), [1]);
  const bf = cpu.fromHost([1, 2, 3, 0.0078125], "bfloat16");
  assert.deepEqual(host(cpu.reduce("sum", view(bf, [4]), [0], "bfloat16")), [bf16(6.0078125)]);
});

Deno.test("argReduce returns the first extreme index as int32", () => {
  const buf = cpu.fromHost([1, 5, 5, 0, 2, 2, 9, 9, -1, 3, -1, 0], "float64");
  // [3,4] contiguous.
  const am = cpu.argReduce("argmax", view(buf, [3, 4]), 1);
  assert.equal(am.dtype, "int32");
  assert.deepEqual(host(am, [3]), [1, 2, 1]);
  assert.deepEqual(host(cpu.argReduce("argmin", view(buf, [3, 4]), 1), [3]), [3, 0, 0]);
  assert.deepEqual(host(cpu.argReduce("argmax", view(buf, [3, 4]), 0), [4]), [1, 0, 1, 1]);
  // Transposed view [4,3] and reversed axis.
  assert.deepEqual(host(cpu.argReduce("argmax", view(buf, [4, 3], [1, 4]), 1), [4]), [1, 0, 1, 1]);
  assert.deepEqual(host(cpu.argReduce("argmax", view(buf, [4], [-1], 3), 0), [1]), [1]);
  // Against a reference on random data and every sample view.
  const b2 = cpu.fromHost(DATA, "float64");
  for (const v of SAMPLE_VIEWS) {
    for (let axis = 0; axis < 3; axis++) {
      const seen = readRef(DATA, v.shape, v.strides, v.offset);
      const outShape = v.shape.map((n, d) => (d === axis ? 1 : n));
      const expected: number[] = [];
      for (const idx of indices(outShape)) {
        let best = -Infinity;
        let arg = 0;
        for (let j = 0; j < v.shape[axis]; j++) {
          const full = idx.slice();
          full[axis] = j;
          const val = seen[full.reduce((acc, x, d) => acc + x * rowMajor(v.shape)[d], 0)];
          if (val > best) {
            best = val;
            arg = j;
          }
        }
        expected.push(arg);
      }
      assert.deepEqual(host(cpu.argReduce("argmax", view(b2, v.shape, v.strides, v.offset), axis)), expected, v.name);
    }
  }
  const nan = cpu.fromHost([1, NaN, 5, NaN], "float32");
  assert.deepEqual(host(cpu.argReduce("argmax", view(nan, [4]), 0)), [1]);
  assert.deepEqual(host(cpu.argReduce("argmin", view(nan, [4]), 0)), [1]);
});

function softmaxRef(seen: number[], shape: number[], axis: number, log: boolean): number[] {
  const out = new Array(seen.length).fill(0);
  const rm = rowMajor(shape);
  const outer = shape.map((n, d) => (d === axis ? 1 : n));
  for (const idx of indices(outer)) {
    const pos: number[] = [];
    for (let j = 0; j < shape[axis]; j++) {
      const full = idx.slice();
      full[axis] = j;
      pos.push(full.reduce((acc, x, d) => acc + x * rm[d], 0));
    }
    const m = Math.max(...pos.map((p) => seen[p]));
    const s = pos.reduce((acc, p) => acc + Math.exp(seen[p] - m), 0);
    for (const p of pos) out[p] = log ? seen[p] - m - Math.log(s) : Math.exp(seen[p] - m) / s;
  }
  return out;
}

Deno.test("softmax and log-softmax along any axis of any view", () => {
  const buf = cpu.fromHost(DATA, "float64");
  for (const v of SAMPLE_VIEWS) {
    const seen = readRef(DATA, v.shape, v.strides, v.offset);
    for (let axis = 0; axis < 3; axis++) {
      for (const log of [false, true]) {
        const out = cpu.softmax(view(buf, v.shape, v.strides, v.offset), axis, log, "float64");
        assertClose(
          host(out),
          softmaxRef(seen, v.shape, axis, log),
          { atol: 1e-15, rtol: 1e-14, equalNaN: true },
          `${v.name} axis ${axis} log ${log}`,
        );
      }
    }
  }
});

Deno.test("softmax is stable for large inputs and handles -Infinity", () => {
  const buf = cpu.fromHost([1000, 1001, 999, -Infinity, 0, 0], "float32");
  const s = host(cpu.softmax(view(buf, [2, 3]), 1, false, "float32"), [6]);
  const e = [Math.exp(-1), 1, Math.exp(-2)];
  const z = e[0] + e[1] + e[2];
  assertClose(s.slice(0, 3), e.map((x) => Math.fround(x / z)), { rtol: 2 ** -23, equalNaN: true });
  assertClose(s.slice(3), [0, 0.5, 0.5], { equalNaN: true });
  const ls = host(cpu.softmax(view(buf, [2, 3]), 1, true, "float64"), [6]);
  assertClose(ls.slice(0, 3), [-1, 0, -2].map((x) => x - Math.log(z)), { rtol: 1e-14, equalNaN: true });
  assert.equal(ls[3], -Infinity);
  assertClose(ls.slice(4), [-Math.LN2, -Math.LN2], { rtol: 1e-15, equalNaN: true });
  const huge = cpu.fromHost([-1e30, 1e30, 3e38], "float32");
  const h = host(cpu.softmax(view(huge, [3]), 0, false, "float32"));
  assert.deepEqual(h, [0, 0, 1]);
});

Deno.test("cumsum along an axis of strided views; int32 wraps", () => {
  const buf = cpu.fromHost(DATA, "float64");
  for (const v of SAMPLE_VIEWS) {
    const seen = readRef(DATA, v.shape, v.strides, v.offset);
    const rm = rowMajor(v.shape);
    for (let axis = 0; axis < 3; axis++) {
      const expected = seen.slice();
      for (const idx of indices(v.shape)) {
        if (idx[axis] === 0) continue;
        const p = idx.reduce((acc, x, d) => acc + x * rm[d], 0);
        expected[p] = expected[p - rm[axis]] + seen[p];
      }
      const out = cpu.cumsum(view(buf, v.shape, v.strides, v.offset), axis, "float64");
      assertClose(host(out), expected, { atol: 1e-14, rtol: 1e-14, equalNaN: true }, `${v.name} axis ${axis}`);
    }
  }
  const i = cpu.fromHost([2 ** 30, 2 ** 30, 2 ** 30, 1], "int32");
  assert.deepEqual(host(cpu.cumsum(view(i, [4]), 0, "int32")), [
    2 ** 30,
    2 ** 31 | 0,
    (3 * 2 ** 30) | 0,
    (3 * 2 ** 30 + 1) | 0,
  ]);
});

// ---------------------------------------------------------------------------------------------
// matmul

function matmulRef(
  a: number[],
  aShape: number[],
  b: number[],
  bShape: number[],
): number[] {
  const r = aShape.length;
  const [m, k] = aShape.slice(r - 2);
  const n = bShape[r - 1];
  const batch = numel(aShape.slice(0, r - 2));
  const out: number[] = [];
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[t * m * k + i * k + p] * b[t * k * n + p * n + j];
        out.push(s);
      }
    }
  }
  return out;
}

Deno.test("matmul: batched, broadcast batch, transposed and reversed operands (float64, float32)", () => {
  for (const dtype of ["float64", "float32"] as const) {
    const [B, m, k, n] = [3, 5, 7, 4];
    const aData = randn(B * m * k, 11);
    const bData = randn(B * k * n, 12);
    const a = cpu.fromHost(aData, dtype);
    const b = cpu.fromHost(bData, dtype);
    const aHost = host(a);
    const bHost = host(b);
    // a: [B, m, k] contiguous; b: [B, k, n] broadcast over batch (stride 0), transposed storage [n, k].
    const aView = view(a, [B, m, k]);
    const bView = view(b, [B, k, n], [0, 1, k], 0);
    const out = cpu.matmul(aView, bView, dtype);
    const aSeen = readRef(aHost, aView.shape, aView.strides, aView.offset);
    const bSeen = readRef(bHost, bView.shape, bView.strides, bView.offset);
    const tol = dtype === "float64" ? 1e-13 : 1e-5;
    assertClose(
      host(out),
      matmulRef(aSeen, [B, m, k], bSeen, [B, k, n]),
      { atol: tol, rtol: tol, equalNaN: true },
      `${dtype} broadcast`,
    );
    // Reversed batch axis and transposed a.
    const aT = view(a, [B, m, k], [-(m * k), 1, m], (B - 1) * m * k);
    const bR = view(b, [B, k, n], [k * n, n, 1], 0);
    const out2 = cpu.matmul(aT, bR, dtype);
    const aSeen2 = readRef(aHost, aT.shape, aT.strides, aT.offset);
    const bSeen2 = readRef(bHost, bR.shape, bR.strides, bR.offset);
    assertClose(
      host(out2),
      matmulRef(aSeen2, [B, m, k], bSeen2, [B, k, n]),
      { atol: tol, rtol: tol, equalNaN: true },
      `${dtype} transposed`,
    );
  }
  // Plain 2-D and a k = 0 product.
  const a = cpu.fromHost([1, 2, 3, 4, 5, 6], "float64");
  const b = cpu.fromHost([1, 0, 0, 1, 1, 1], "float64");
  assert.deepEqual(host(cpu.matmul(view(a, [2, 3]), view(b, [3, 2]), "float64")), [4, 5, 10, 11]);
  const z = cpu.matmul(view(a, [2, 0], [0, 1]), view(b, [0, 2], [0, 1]), "float32");
  assert.deepEqual(host(z), [0, 0, 0, 0]);
});

Deno.test("matmul: bfloat16 widens to float32 and rounds; int32 wraps; mixed input dtypes", () => {
  const x = [1.5, -2, 0.0078125, 3, 1, 1];
  const y = [1, 2, 3, 4, 5, 6];
  const a = cpu.fromHost(x, "bfloat16");
  const b = cpu.fromHost(y, "bfloat16");
  const got = host(cpu.matmul(view(a, [2, 3]), view(b, [3, 2]), "bfloat16"));
  const want = matmulRef(x.map(bf16), [2, 3], y.map(bf16), [3, 2]).map((v) => bf16(Math.fround(v)));
  assert.deepEqual(got, want);
  const ia = cpu.fromHost([2 ** 16, 3, 1, 1], "int32");
  const ib = cpu.fromHost([2 ** 16, 1, 2, 2], "int32");
  const ir = host(cpu.matmul(view(ia, [2, 2]), view(ib, [2, 2]), "int32"));
  assert.deepEqual(ir, [(2 ** 32 + 6) | 0, (2 ** 16 + 6) | 0, 2 ** 16 + 2, 3]);
  // float32 operands with a float64 result.
  const fa = cpu.fromHost([0.1, 0.2], "float32");
  const fb = cpu.fromHost([0.3, 0.4], "float32");
  const mixed = host(cpu.matmul(view(fa, [1, 2]), view(fb, [2, 1]), "float64"));
  assertClose(mixed, [Math.fround(0.1) * Math.fround(0.3) + Math.fround(0.2) * Math.fround(0.4)], {
    rtol: 1e-15,
    equalNaN: true,
  });
});

// ---------------------------------------------------------------------------------------------
// gather / scatterAdd

function gatherRef(x: number[], xShape: number[], axis: number, index: number[], iShape: number[]): number[] {
  const xs = rowMajor(xShape);
  const out: number[] = [];
  let f = 0;
  for (const idx of indices(iShape)) {
    const src = idx.slice();
    src[axis] = index[f++];
    out.push(x[src.reduce((acc, v, d) => acc + v * xs[d], 0)]);
  }
  return out;
}

function scatterRef(shape: number[], axis: number, index: number[], iShape: number[], src: number[]): number[] {
  const os = rowMajor(shape);
  const out = new Array(numel(shape)).fill(0);
  let f = 0;
  for (const idx of indices(iShape)) {
    const dst = idx.slice();
    dst[axis] = index[f];
    out[dst.reduce((acc, v, d) => acc + v * os[d], 0)] += src[f];
    f++;
  }
  return out;
}

Deno.test("gather follows torch.gather on every axis, with strided x and index", () => {
  const x = cpu.fromHost(DATA, "float64");
  const r = lcg(5);
  for (const v of SAMPLE_VIEWS) {
    const seen = readRef(DATA, v.shape, v.strides, v.offset);
    for (let axis = 0; axis < 3; axis++) {
      // index shape: smaller than x on the other axes, any size along axis.
      const iShape = v.shape.map((n, d) => (d === axis ? 6 : Math.max(1, n - 1)));
      const iData = Array.from({ length: numel(iShape) }, () => Math.floor(r() * v.shape[axis]));
      const idxBuf = cpu.fromHost(iData, "int32");
      const out = cpu.gather(view(x, v.shape, v.strides, v.offset), axis, view(idxBuf, iShape), "float64");
      assert.deepEqual(host(out), gatherRef(seen, v.shape, axis, iData, iShape), `${v.name} axis ${axis}`);
      // Reversed (non-contiguous) index view.
      const rev = iShape.map((_, d) => (d === 0 ? -rowMajor(iShape)[0] : rowMajor(iShape)[d]));
      const revOff = (iShape[0] - 1) * rowMajor(iShape)[0];
      const revSeen = readRef(iData, iShape, rev, revOff);
      const out2 = cpu.gather(
        view(x, v.shape, v.strides, v.offset),
        axis,
        view(idxBuf, iShape, rev, revOff),
        "float32",
      );
      assert.deepEqual(
        host(out2),
        gatherRef(seen, v.shape, axis, revSeen, iShape).map(Math.fround),
        `${v.name} axis ${axis} reversed index`,
      );
    }
  }
});

Deno.test("scatterAdd follows torch.scatter_add (duplicates accumulate)", () => {
  const r = lcg(9);
  const shape = [3, 4, 5];
  for (let axis = 0; axis < 3; axis++) {
    const iShape = shape.map((n, d) => (d === axis ? 7 : n - 1));
    const iData = Array.from({ length: numel(iShape) }, () => Math.floor(r() * shape[axis]));
    const srcData = randn(numel(iShape), 21 + axis);
    const idx = cpu.fromHost(iData, "int32");
    const src = cpu.fromHost(srcData, "float64");
    const out = cpu.scatterAdd(shape, axis, view(idx, iShape), view(src, iShape), "float64");
    assertClose(host(out), scatterRef(shape, axis, iData, iShape, srcData), {
      atol: 1e-14,
      rtol: 1e-14,
      equalNaN: true,
    }, `axis ${axis}`);
    // Broadcast src (stride 0) and float32 output.
    const one = cpu.fromHost([1], "float32");
    const cnt = cpu.scatterAdd(shape, axis, view(idx, iShape), view(one, iShape, iShape.map(() => 0)), "float32");
    assertClose(
      host(cnt),
      scatterRef(shape, axis, iData, iShape, iData.map(() => 1)),
      { equalNaN: true },
      `counts axis ${axis}`,
    );
  }
  const ii = cpu.fromHost([0, 0, 1], "int32");
  const si = cpu.fromHost([2 ** 31 - 1, 1, 5], "int32");
  assert.deepEqual(host(cpu.scatterAdd([2], 0, view(ii, [3]), view(si, [3]), "int32")), [-(2 ** 31), 5]);
});

Deno.test("gather/scatterAdd reject out-of-range indices with ArgumentError", () => {
  const x = cpu.fromHost([1, 2, 3, 4, 5, 6], "float32");
  const bad = cpu.fromHost([0, 3], "int32");
  assert.throws(
    () => cpu.gather(view(x, [2, 3]), 1, view(bad, [1, 2]), "float32"),
    (e: unknown) =>
      e instanceof ArgumentError && e.op === "gather" && /index 3/.test(e.message) && /\[0, 2\]/.test(e.message),
  );
  const neg = cpu.fromHost([-1], "int32");
  assert.throws(
    () => cpu.scatterAdd([2, 3], 0, view(neg, [1, 1]), view(x, [1, 1]), "float32"),
    (e: unknown) =>
      e instanceof ArgumentError && e.op === "scatterAdd" && /index -1/.test(e.message) &&
      /\[0, 1\]/.test(e.message),
  );
});

// ---------------------------------------------------------------------------------------------
// copy

Deno.test("copy: strided source into a strided window with dtype conversion", () => {
  const src = cpu.fromHost([1.7, -1.7, 2.5, -2.5, 1e10, NaN], "float64");
  const dst = cpu.full(12, 0, "int32");
  // src [2,3] transposed into a column window of a [4,3] buffer... write dst[1:3, :] reversed rows.
  cpu.copy(view(src, [2, 3]), view(dst, [2, 3], [-3, 1], 6));
  assert.deepEqual(host(dst), [0, 0, 0, -2, 1410065408, 0, 1, -1, 2, 0, 0, 0]);
  // float64 -> bfloat16 -> float32
  const b = cpu.full(3, 0, "bfloat16");
  cpu.copy(view(cpu.fromHost([1.00390625, 3.14159, -0.1], "float64"), [3]), view(b, [3]));
  assert.deepEqual(host(b), [1, 3.140625, bf16(-0.1)]);
  const f = cpu.full(3, 0, "float32");
  cpu.copy(view(b, [3], [-1], 2), view(f, [3]));
  assert.deepEqual(host(f), [bf16(-0.1), 3.140625, 1]);
  // bfloat16 -> bfloat16 keeps bits.
  const b2 = cpu.full(3, 0, "bfloat16");
  cpu.copy(view(b, [3]), view(b2, [3]));
  assert.deepEqual(host(b2), host(b));
  // Broadcast source.
  const g = cpu.full(4, 0, "float32");
  cpu.copy(view(cpu.fromHost([7], "float32"), [2, 2], [0, 0]), view(g, [2, 2]));
  assert.deepEqual(host(g), [7, 7, 7, 7]);
});

Deno.test("copy handles overlapping source and destination in one buffer", () => {
  const buf = cpu.fromHost([0, 1, 2, 3, 4, 5], "float32");
  cpu.copy(view(buf, [5], [1], 0), view(buf, [5], [1], 1));
  assert.deepEqual(host(buf), [0, 0, 1, 2, 3, 4]);
  cpu.copy(view(buf, [6], [-1], 5), view(buf, [6]));
  assert.deepEqual(host(buf), [4, 3, 2, 1, 0, 0]);
});

// ---------------------------------------------------------------------------------------------
// Random numbers

Deno.test("Philox4x32-10 matches Random123 known-answer vectors", () => {
  // Random123 tests/kat_vectors, "philox4x32 10" lines: counter[4] key[2] -> output[4].
  const kat: [number[], number[], number[]][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  const out = new Uint32Array(4);
  for (const [c, k, want] of kat) {
    philox4x32_10(c[0], c[1], c[2], c[3], k[0], k[1], out);
    assert.deepEqual(Array.from(out), want);
  }
});

Deno.test("random follows the documented Philox stream exactly", () => {
  const seed = 2 ** 40 + 12345; // exercises both key words
  const offset = 2 ** 32 - 3; // exercises the counter's high word
  const n = 8;
  const u = host(cpu.random("uniform", n, seed, offset, "float64"));
  const z = host(cpu.random("normal", n, seed, offset, "float64"));
  const w = new Uint32Array(4);
  const k0 = seed % 2 ** 32;
  const k1 = Math.floor(seed / 2 ** 32);
  for (let i = 0; i < n; i++) {
    const c = offset + i;
    philox4x32_10(c % 2 ** 32, Math.floor(c / 2 ** 32), 0, 0, k0, k1, w);
    const u1 = (w[0] + 0.5) * 2 ** -32;
    const u2 = (w[1] + 0.5) * 2 ** -32;
    assert.equal(u[i], u1);
    assert.equal(z[i], Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
  }
  // float32 and bfloat16 store the float64 values rounded once.
  assert.deepEqual(host(cpu.random("uniform", n, seed, offset, "float32")), u.map(Math.fround));
  assert.deepEqual(host(cpu.random("normal", n, seed, offset, "bfloat16")), z.map(bf16));
});

Deno.test("random is deterministic and offsets shift the stream", () => {
  for (const kind of ["uniform", "normal"] as const) {
    const a = host(cpu.random(kind, 100, 7, 0, "float32"));
    const b = host(cpu.random(kind, 100, 7, 0, "float32"));
    assert.deepEqual(a, b);
    const shifted = host(cpu.random(kind, 95, 7, 5, "float32"));
    assert.deepEqual(shifted, a.slice(5));
    const other = host(cpu.random(kind, 100, 8, 0, "float32"));
    assert.notDeepEqual(other, a);
    // Seeds that agree mod 2^32 still differ (the high word is the second key word).
    assert.notDeepEqual(
      host(cpu.random(kind, 10, 7 + 2 ** 32, 0, "float64")),
      host(cpu.random(kind, 10, 7, 0, "float64")),
    );
  }
  assert.throws(() => cpu.random("uniform", 1, -1, 0, "float32"), ArgumentError);
  assert.throws(() => cpu.random("uniform", 1, 0.5, 0, "float32"), ArgumentError);
});

Deno.test("uniform and normal moments", () => {
  const n = 200_000;
  const u = cpu.toHost(view(cpu.random("uniform", n, 123, 0, "float64"), [n]));
  let m = 0;
  let v = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of u) {
    m += x;
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  m /= n;
  for (const x of u) v += (x - m) ** 2;
  v /= n;
  assert.ok(lo > 0 && hi < 1);
  assert.ok(Math.abs(m - 0.5) < 0.005, `uniform mean ${m}`);
  assert.ok(Math.abs(v - 1 / 12) < 0.002, `uniform var ${v}`);
  const z = cpu.toHost(view(cpu.random("normal", n, 456, 0, "float32"), [n]));
  m = 0;
  v = 0;
  for (const x of z) m += x;
  m /= n;
  for (const x of z) v += (x - m) ** 2;
  v /= n;
  assert.ok(Math.abs(m) < 0.01, `normal mean ${m}`);
  assert.ok(Math.abs(v - 1) < 0.02, `normal var ${v}`);
});

// ---------------------------------------------------------------------------------------------
// FFT

function dftRef(re: number[], im: number[], inverse: boolean): [number[], number[]] {
  const n = re.length;
  const sgn = inverse ? 1 : -1;
  const or: number[] = [];
  const oi: number[] = [];
  for (let k = 0; k < n; k++) {
    let sr = 0;
    let si = 0;
    for (let j = 0; j < n; j++) {
      const t = (sgn * 2 * Math.PI * ((j * k) % n)) / n;
      sr += re[j] * Math.cos(t) - im[j] * Math.sin(t);
      si += re[j] * Math.sin(t) + im[j] * Math.cos(t);
    }
    or.push(inverse ? sr / n : sr);
    oi.push(inverse ? si / n : si);
  }
  return [or, oi];
}

Deno.test("fft matches a naive DFT along any axis of strided complex views", () => {
  // Complex [4, 6, 2] (4x6 complex), read through a transposed view [6, 4, 2].
  const data = randn(48, 31);
  const buf = cpu.fromHost(data, "float64");
  const shape = [6, 4, 2];
  const strides = [2, 12, 1];
  const seen = readRef(data, shape, strides, 0);
  const re = seen.filter((_, i) => i % 2 === 0);
  const im = seen.filter((_, i) => i % 2 === 1);
  for (const inverse of [false, true]) {
    for (let axis = 0; axis < 2; axis++) {
      const cs = [6, 4];
      // Build per-line complex transforms.
      const rs = rowMajor(cs);
      const expectedRe = new Array(24).fill(0);
      const expectedIm = new Array(24).fill(0);
      const outer = cs.map((n, d) => (d === axis ? 1 : n));
      for (const idx of indices(outer)) {
        const pos: number[] = [];
        for (let j = 0; j < cs[axis]; j++) pos.push(idx.reduce((a, v, d) => a + (d === axis ? j : v) * rs[d], 0));
        const [fr, fi] = dftRef(pos.map((p) => re[p]), pos.map((p) => im[p]), inverse);
        pos.forEach((p, j) => {
          expectedRe[p] = fr[j];
          expectedIm[p] = fi[j];
        });
      }
      const out = host(cpu.fft(view(buf, shape, strides, 0), axis, inverse, "float64"));
      const expected = expectedRe.flatMap((r, i) => [r, expectedIm[i]]);
      assertClose(out, expected, { atol: 1e-12, rtol: 1e-12, equalNaN: true }, `axis ${axis} inverse ${inverse}`);
    }
  }
});

Deno.test("rfft and irfft follow numpy.fft conventions", () => {
  for (const n of [1, 2, 5, 8, 9]) {
    const x = randn(3 * n, 40 + n);
    const buf = cpu.fromHost(x, "float64");
    const h = Math.floor(n / 2) + 1;
    // rfft along axis 1 of [3, n] and along axis 0 of the transposed [n, 3] view.
    const spec = cpu.rfft(view(buf, [3, n]), 1, "float64");
    const expected: number[] = [];
    for (let r = 0; r < 3; r++) {
      const [fr, fi] = dftRef(x.slice(r * n, r * n + n), new Array(n).fill(0), false);
      for (let k = 0; k < h; k++) expected.push(fr[k], fi[k]);
    }
    assertClose(host(spec), expected, { atol: 1e-12, rtol: 1e-12, equalNaN: true }, `rfft n=${n}`);
    const specT = cpu.rfft(view(buf, [n, 3], [1, n]), 0, "float64");
    const specTHost = host(specT, [h, 3, 2]);
    for (let r = 0; r < 3; r++) {
      for (let k = 0; k < h; k++) {
        assertClose(
          [specTHost[(k * 3 + r) * 2], specTHost[(k * 3 + r) * 2 + 1]],
          expected.slice((r * h + k) * 2, (r * h + k) * 2 + 2),
          { atol: 1e-12, rtol: 1e-12, equalNaN: true },
        );
      }
    }
    // Round trip.
    const back = cpu.irfft(view(spec, [3, h, 2]), 1, n, "float64");
    assertClose(host(back), x, { atol: 1e-12, rtol: 1e-12, equalNaN: true }, `irfft n=${n}`);
    const backT = cpu.irfft(view(specT, [h, 3, 2]), 0, n, "float32");
    const bt = host(backT, [n, 3]);
    for (let r = 0; r < 3; r++) {
      for (let j = 0; j < n; j++) {
        assertClose([bt[j * 3 + r]], [Math.fround(x[r * n + j])], { atol: 1e-6, rtol: 1e-6, equalNaN: true });
      }
    }
  }
});

Deno.test("irfft ignores the imaginary parts of DC and Nyquist, and zero-pads short input", () => {
  // n = 4: entries X0..X2 with junk imaginary parts on X0 and X2.
  const spec = cpu.fromHost([10, 99, -2, 2, -2, -99], "float64");
  const out = host(cpu.irfft(view(spec, [3, 2]), 0, 4, "float64"));
  // Hermitian full spectrum: [10, -2+2i, -2, -2-2i].
  const [re] = dftRef([10, -2, -2, -2], [0, 2, 0, -2], true);
  assertClose(out, re, { atol: 1e-14, rtol: 1e-14, equalNaN: true });
  // n = 6 from only 2 given entries: X2, X3 treated as zero.
  const short = cpu.fromHost([6, 0, 1, 1], "float64");
  const out6 = host(cpu.irfft(view(short, [2, 2]), 0, 6, "float64"));
  const [re6] = dftRef([6, 1, 0, 0, 0, 1], [0, 1, 0, 0, 0, -1], true);
  assertClose(out6, re6, { atol: 1e-14, rtol: 1e-14, equalNaN: true });
  // n = 3 from 4 given entries: extras ignored.
  const long = cpu.fromHost([3, 0, 1, 2, 50, 60, 70, 80], "float64");
  const out3 = host(cpu.irfft(view(long, [4, 2]), 0, 3, "float64"));
  const [re3] = dftRef([3, 1, 1], [0, 2, -2], true);
  assertClose(out3, re3, { atol: 1e-14, rtol: 1e-14, equalNaN: true });
});

// ---------------------------------------------------------------------------------------------
// Memory statistics and buffer life cycle

Deno.test("memory statistics count live buffers; free is idempotent", () => {
  const b = new CpuBackend();
  assert.deepEqual(b.memory(), { current: 0, peak: 0, cached: 0 });
  const x = b.full(10, 1, "float32"); // 40 bytes
  const y = b.full(10, 1, "float64"); // 80 bytes
  const z = b.full(10, 1, "bfloat16"); // 20 bytes
  assert.deepEqual(b.memory(), { current: 140, peak: 140, cached: 0 });
  b.free(y);
  assert.equal(b.memory().current, 60);
  b.free(y);
  assert.equal(b.memory().current, 60, "double free must not decrement twice");
  assert.equal(b.memory().peak, 140);
  b.resetPeak();
  assert.equal(b.memory().peak, 60);
  const w = b.unary("exp", view(x, [10]), "int32"); // 40 bytes
  assert.deepEqual(b.memory(), { current: 100, peak: 100, cached: 0 });
  b.free(w);
  b.free(x);
  b.free(z);
  assert.equal(b.memory().current, 0);
  assert.throws(() => b.unary("exp", view(x, [10]), "float32"), DeviceError);
  // A buffer of another backend instance cannot be freed or read here.
  const other = new CpuBackend().full(1, 0, "float32");
  assert.throws(() => b.free(other), DeviceError);
  b.synchronize();
  assert.equal(b.name, "cpu");
  assert.ok(b.description.length > 0);
});

Deno.test("scalar (rank-0) views and size-1 axes", () => {
  const s = cpu.fromHost([3], "float32");
  assert.deepEqual(host(cpu.unary("neg", view(s, [], []), "float32")), [-3]);
  assert.deepEqual(host(cpu.binary("add", view(s, [], []), 2, [], "float32")), [5]);
  assert.deepEqual(host(cpu.reduce("sum", view(s, [], []), [], "float32")), [3]);
  const ones = cpu.fromHost([1, 2], "float64");
  assert.deepEqual(host(cpu.unary("neg", view(ones, [1, 1, 2], [7, 9, 1]), "float64")), [-1, -2]);
  assert.deepEqual(host(cpu.unary("neg", view(ones, [1, 1], [5, 5], 1), "float64")), [-2]);
});

Deno.test("random rejects int32", () => {
  assert.throws(() => cpu.random("uniform", 1, 0, 0, "int32" as DType));
});

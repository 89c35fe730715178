// The CPU backend's vectorised sin, cos and erf against scalar implementations: Math.sin and
// Math.cos for arguments of every magnitude up to the kernels' range, next to multiples of π/2
// (where the reduction cancels) and beyond the range (where the backend computes them another
// way); erf against the scalar fdlibm erf at the bounds of its intervals and in the subnormals.
// float32 exp, sigmoid, silu and tanh (on float32 lanes) against their float64 definitions
// rounded to float32, over an even sample of every float32 bit pattern and every pattern near
// the bounds of their ranges; float32 softmax against the float64 softmax of the same inputs,
// element by element.

import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { simdLimit } from "../src/backend/cpu/wasm/elementwise.ts";
import { Module } from "../src/backend/cpu/wasm/asm.ts";
import { expF32x4 } from "../src/backend/cpu/wasm/vmath32.ts";
import { heapAddress, heapAlloc, heapFree, heapMemory } from "../src/backend/cpu/heap.ts";
import { erf } from "../src/tensor/math.ts";
import { UNARY_OPS, type UnaryOp } from "../src/tensor/op_defs.ts";
import { rng } from "./helpers.ts";

const cpu = new CpuBackend();

/** Units in the last place of `dtype` between `got` and `want` (0 when both NaN; opposite signs count as far). */
function ulpsIn(dtype: "float32" | "float64", got: number, want: number): number {
  if (Number.isNaN(got) || Number.isNaN(want)) return Number.isNaN(got) && Number.isNaN(want) ? 0 : Infinity;
  if (Object.is(got, want)) return 0;
  const bits = dtype === "float64"
    ? new BigInt64Array(new Float64Array([got, want]).buffer)
    : new BigInt64Array([...new Int32Array(new Float32Array([got, want]).buffer)].map(BigInt));
  const d = bits[0] - bits[1];
  return Number(d < 0n ? -d : d);
}

/** Arguments: random magnitudes 10^-12 … 8·10^5 of both signs, and doubles next to k·π/2. */
function arguments_(n: number): number[] {
  const r = rng(17);
  const xs = [0, -0, 1e-300, -5e-324, Math.PI, -Math.PI / 2, Math.PI / 4, 2 * Math.PI];
  while (xs.length < n / 2) xs.push((r() < 0.5 ? -1 : 1) * 10 ** (-12 + 17.9 * r()));
  const scratch = new Float64Array(1), bits = new BigInt64Array(scratch.buffer);
  while (xs.length < n) {
    scratch[0] = Math.round(r() * 5e5) * (Math.PI / 2);
    bits[0] += BigInt(Math.round((r() - 0.5) * 8));
    xs.push(scratch[0]);
  }
  return xs;
}

Deno.test("sin, cos: SIMD kernels within 1 ulp of Math.sin and Math.cos up to their range, every argument beyond it exact", () => {
  const limit = simdLimit("sin")!;
  for (const dtype of ["float32", "float64"] as const) {
    const round = dtype === "float32" ? Math.fround : (v: number) => v;
    const inRange = arguments_(100_001);
    assert.ok(Math.max(...inRange.map(Math.abs)) <= limit);
    // Beyond the range: the whole tensor goes the other way when one job's argument does.
    const beyond = [...inRange.slice(0, 5000), 1e7, -3e38, Infinity, -Infinity, NaN, 1e300];
    for (const [what, data] of [["in range", inRange], ["beyond", beyond]] as const) {
      for (const [op, fn] of [["sin", Math.sin], ["cos", Math.cos]] as const) {
        const x = { buffer: cpu.fromHost(data, dtype), shape: [data.length], strides: [1], offset: 0 };
        const stored = cpu.toHost(x);
        const got = cpu.toHost({ buffer: cpu.unary(op, x, dtype), shape: [data.length], strides: [1], offset: 0 });
        let worst = 0;
        for (let i = 0; i < data.length; i++) {
          const want = round(fn(stored[i]));
          const d = ulpsIn(dtype, got[i], want);
          if (d > 1) assert.fail(`${op} ${dtype}(${stored[i]}) = ${got[i]}, Math.${op} gives ${want} (${d} ulp)`);
          worst = Math.max(worst, d);
        }
        if (what === "beyond") assert.equal(worst, 0, `${op} ${dtype} beyond the range: the scalar path`);
        cpu.free(x.buffer);
      }
    }
  }
});

Deno.test("erf: SIMD kernel within 1 ulp of the scalar erf on both sides of each interval's bounds, tiny and huge", () => {
  const bounds = [0, 2 ** -1022, 2 ** -28, 0.84375, 1.25, 1 / 0.35, 6];
  const xs: number[] = [5e-324, -1e-310, 1e300, Infinity, -Infinity, NaN];
  const scratch = new Float64Array(1), bits = new BigInt64Array(scratch.buffer);
  for (const b of bounds) {
    for (let d = -40; d <= 40; d++) {
      scratch[0] = b;
      bits[0] += BigInt(d * (b === 0 ? 1 : 1e6));
      xs.push(scratch[0], -scratch[0]);
    }
  }
  for (const dtype of ["float32", "float64"] as const) {
    const round = dtype === "float32" ? Math.fround : (v: number) => v;
    const x = { buffer: cpu.fromHost(xs, dtype), shape: [xs.length], strides: [1], offset: 0 };
    const stored = cpu.toHost(x);
    const got = cpu.toHost({ buffer: cpu.unary("erf", x, dtype), shape: [xs.length], strides: [1], offset: 0 });
    for (let i = 0; i < xs.length; i++) {
      const want = round(erf(stored[i]));
      const d = ulpsIn(dtype, got[i], want);
      if (d > 1) assert.fail(`erf ${dtype}(${stored[i]}) = ${got[i]}, the scalar erf gives ${want} (${d} ulp)`);
    }
    cpu.free(x.buffer);
  }
});

/** `n` consecutive float32 bit patterns from `x`'s, `n/2` of them below it. */
function around(x: number, n: number): number[] {
  const bits = new Int32Array(new Float32Array([x]).buffer)[0];
  const out = new Float32Array(new Int32Array(Array.from({ length: n }, (_, i) => bits - n / 2 + i)).buffer);
  return Array.from(out);
}

/** The float32 kernel of `op` on `xs` (values rounded to float32), with the inputs as stored. */
function unary32(op: UnaryOp, xs: ArrayLike<number>): { stored: Float32Array; got: Float32Array } {
  const data = Float32Array.from(xs);
  const x = { buffer: cpu.fromHost(data, "float32"), shape: [data.length], strides: [1], offset: 0 };
  const y = cpu.unary(op, x, "float32");
  const got = cpu.toHost({ buffer: y, shape: [data.length], strides: [1], offset: 0 }) as Float32Array;
  cpu.free(x.buffer);
  cpu.free(y);
  return { stored: data, got };
}

/** `expF32x4` (the float32-lane exp of softmax) on `xs`, four lanes at a time, in a module of its own. */
function expLanes32(xs: ArrayLike<number>): { stored: Float32Array; got: Float32Array } {
  const m = new Module();
  m.importMemory(1, 262144, true);
  m.func("map", ["i64", "i32"], [], (f, [p, n]) => {
    const i = f.local("i32"), y = f.local("v128"), a = f.local("i64");
    f.for(i, 0, n, 4, () => {
      f.set(a, f.i64.add(p, f.i64.extend_i32_s(f.i32.mul(i, 4))));
      expF32x4(f, f.v128.load(a), y);
      f.v128.store(a, y);
    });
  });
  const map = m.instantiate(heapMemory()!).exports.map as (p: bigint, n: number) => void;
  const data = heapAlloc(Float32Array, Math.ceil(xs.length / 4) * 4, true);
  data.set(Float32Array.from(xs));
  const stored = data.slice(0, xs.length);
  map(BigInt(heapAddress(data)), data.length);
  const got = data.slice(0, xs.length);
  heapFree(data);
  return { stored, got };
}

/** The largest float32. */
const FLT_MAX = 2 ** 128 * (1 - 2 ** -24);

/**
 * Where each float32 kernel's result changes regime: exp overflows (88.72…), turns subnormal
 * (−87.34), reaches the smallest subnormal (−103.28) and rounds to 0 (−103.97), rounds to 1
 * (|x| ≈ 2^-24); sigmoid and silu likewise for negative x, and where 1/(1 + e^−x) rounds to 1
 * (16.6); tanh where it returns x (2^-12) and where it rounds to ±1 (9.01).
 */
const BOUNDS: Record<"exp" | "sigmoid" | "silu" | "tanh", number[]> = {
  exp: [88.7228391, -87.336544, -103.278931, -103.972084, 2 ** -24, -(2 ** -25)],
  sigmoid: [-87.336544, -103.278931, -103.972084, 16.635532, 2 ** -24],
  silu: [-87.336544, -98.6, -103.972084, -108.9, 16.635532, 2 ** -24],
  tanh: [2 ** -12, -(2 ** -12), 0.55, 9.010913, -9.010913],
};

/** Every result within 1 ulp of the definition rounded to float32, ±∞ exactly, and most results correctly rounded. */
function checkWithin1Ulp(
  what: string,
  definition: (x: number) => number,
  { stored, got }: { stored: Float32Array; got: Float32Array },
): void {
  let worst = 0, inexact = 0;
  for (let i = 0; i < stored.length; i++) {
    const x = stored[i], want = Math.fround(definition(x));
    const d = ulpsIn("float32", got[i], want);
    if (d > 1) assert.fail(`${what} float32(${x}) = ${got[i]}, the definition rounded gives ${want} (${d} ulp)`);
    // ±∞ exactly where the rounded result is (exp's largest finite result is far below FLT_MAX).
    if (Math.abs(got[i]) === Infinity || Math.abs(want) === Infinity) assert.equal(got[i], want, `${what}(${x})`);
    worst = Math.max(worst, d);
    if (d !== 0) inexact++;
  }
  assert.ok(worst <= 1, what);
  // A kernel that keeps 1 ulp only by luck would miss far more often than one rounding step in a few.
  assert.ok(inexact < 0.05 * stored.length, `${what}: ${inexact} of ${stored.length} results not correctly rounded`);
}

Deno.test("exp, sigmoid, silu, tanh float32 and softmax's float32-lane exp: within 1 ulp of the correctly rounded value over every 2^10-th bit pattern and at every bound", () => {
  // Every 2^10-th bit pattern (low bits varying from one to the next): all signs, exponents, NaNs, infinities.
  const sample = new Int32Array(1 << 22).map((_, i) => i * 1024 + ((i * 613) & 1023));
  for (const [op, bounds] of Object.entries(BOUNDS) as ["exp" | "sigmoid" | "silu" | "tanh", number[]][]) {
    const xs = Array.from(new Float32Array(sample.buffer));
    for (const bound of bounds) xs.push(...around(bound, 8192));
    xs.push(0, -0, Infinity, -Infinity, NaN, FLT_MAX, -FLT_MAX, 2 ** -149, -(2 ** -149), 2 ** -126, 1, -1, 88, -88);
    checkWithin1Ulp(op, UNARY_OPS[op].f, unary32(op, xs));
    if (op === "exp") checkWithin1Ulp("softmax's exp (expF32x4)", Math.exp, expLanes32(xs));
  }
  const special = (op: UnaryOp) =>
    Array.from(unary32(op, [0, -0, -Infinity, Infinity, NaN, 89, 1000, -110, -1000]).got);
  const same = (got: number[], want: number[], what: string) =>
    got.forEach((g, i) => assert.ok(Object.is(g, want[i]), `${what}: [${i}] is ${g}, want ${want[i]}`));
  same(special("exp"), [1, 1, 0, Infinity, NaN, Infinity, Infinity, 0, 0], "exp of ±0, ±∞, NaN, beyond the range");
  same(special("sigmoid"), [0.5, 0.5, 0, 1, NaN, 1, 1, 0, 0], "sigmoid");
  same(special("silu"), [0, -0, NaN, Infinity, NaN, 89, 1000, -0, -0], "silu (−∞·0 is NaN, as defined)");
  same(special("tanh"), [0, -0, -1, 1, NaN, 1, 1, -1, -1], "tanh");
});

Deno.test("softmax float32: every probability, down to the subnormals, within 3 ulp of the float64 softmax of the same inputs", () => {
  const r = rng(23);
  for (const [rows, n, spread] of [[64, 1000, 8], [16, 4099, 60], [8, 5, 120], [3, 1, 1]]) {
    const data = Float32Array.from({ length: rows * n }, () => (r() - 0.5) * 2 * spread);
    data[0] = -Infinity;
    if (n > 3) data[n + 2] = 3e38; // one huge logit: its row is one-hot
    const x = { buffer: cpu.fromHost(data, "float32"), shape: [rows, n], strides: [n, 1], offset: 0 };
    const y = cpu.softmax(x, 1, false, "float32");
    const got = cpu.toHost({ buffer: y, shape: [rows * n], strides: [1], offset: 0 });
    for (let row = 0; row < rows; row++) {
      const v = Array.from(data.subarray(row * n, row * n + n));
      const m = Math.max(...v);
      const s = v.reduce((a, t) => a + Math.exp(t - m), 0);
      v.forEach((t, j) => {
        const want = Math.fround(Math.exp(t - m) / s), g = got[row * n + j];
        const d = ulpsIn("float32", g, want);
        if (d > 3) {
          assert.fail(`softmax float32 ${rows}×${n} [${row}, ${j}] (logit ${t}, max ${m}) = ${g}, want ${want}`);
        }
      });
    }
    cpu.free(x.buffer);
    cpu.free(y);
  }
});

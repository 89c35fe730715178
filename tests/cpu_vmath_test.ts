// The CPU backend's vectorised sin, cos and erf against scalar implementations: Math.sin and
// Math.cos for arguments of every magnitude up to the kernels' range, next to multiples of π/2
// (where the reduction cancels) and beyond the range (where the backend computes them another
// way); erf against the scalar fdlibm erf at the bounds of its intervals and in the subnormals.

import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { simdLimit } from "../src/backend/cpu/wasm/elementwise.ts";
import { erf } from "../src/tensor/math.ts";
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

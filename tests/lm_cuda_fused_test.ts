// The CUDA kernels of the language-model primitives (kernels/attention.cu, norms.cu, rotary.cu,
// swiglu.cu, cross_entropy.cu) against the CPU paths (src/backend/cpu/fused.ts, themselves checked
// against compositions of ordinary ops in lm_fused_test.ts): attention forward and backward with
// grouped-query heads, a causal mask at a query offset into a longer key prefix and a sliding
// window, head widths 64 and 128, several key tiles; float64 (to rounding), float32 and bfloat16
// (inputs rounded to bfloat16 on both sides; the GPU keeps float accumulators). Without a usable
// GPU every test is registered as ignored.

import { announce, cpu, cuda, gpuTester, whole } from "./cuda_helpers.ts";
import { assertClose, randomData } from "./helpers.ts";
import type { Backend, DeviceBuffer, View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import type { AttentionShape, AttentionSpec } from "../src/tensor/fused_primitives.ts";

announce("lm_cuda_fused_test");
const gpuTest = gpuTester("cuda fused");

// Relative to the largest expected value of each output: the CPU path computes in float64 and
// rounds once; the GPU accumulates in float (float32, bfloat16) or double.
const TOL: Record<string, { rtol: number; scale: "max" }> = {
  float64: { rtol: 1e-12, scale: "max" },
  float32: { rtol: 1e-5, scale: "max" },
  bfloat16: { rtol: 1e-2, scale: "max" },
};

/** The same host data on a backend, as a contiguous view. */
function put(b: Backend, data: number[], shape: number[], dtype: DType): View {
  return whole(b.fromHost(dtype === "int32" ? Int32Array.from(data) : Float64Array.from(data), dtype), shape);
}

function read(b: Backend, buf: DeviceBuffer, shape: number[]): number[] {
  return Array.from(b.toHost(whole(buf, shape)));
}

/** Runs `fn` on both backends with the same inputs and compares every output. */
function compare(
  dtype: DType,
  what: string,
  inputs: [number[], number[], DType?][],
  fn: (b: Backend, views: View[]) => [DeviceBuffer, number[]][],
): void {
  const run = (b: Backend) => {
    const views = inputs.map(([d, s, t]) => put(b, d, s, t ?? dtype));
    return fn(b, views).map(([buf, shape]) => read(b, buf, shape));
  };
  const want = run(cpu);
  const got = run(cuda!);
  got.forEach((g, i) => assertClose(g, want[i], TOL[dtype], `${what} ${dtype}: output ${i}`));
}

const CASES: [AttentionShape, AttentionSpec][] = [
  [{ b: 2, hq: 8, hkv: 2, tq: 40, tk: 300, d: 64, dv: 64 }, {
    scale: 0.125,
    causal: true,
    queryOffset: 260,
    window: null,
  }],
  [{ b: 1, hq: 4, hkv: 4, tq: 1, tk: 129, d: 128, dv: 128 }, {
    scale: 0.088,
    causal: true,
    queryOffset: 128,
    window: null,
  }],
  [{ b: 1, hq: 6, hkv: 3, tq: 33, tk: 97, d: 32, dv: 48 }, { scale: 0.2, causal: true, queryOffset: 64, window: 21 }],
  [{ b: 1, hq: 2, hkv: 1, tq: 17, tk: 23, d: 16, dv: 16 }, {
    scale: 0.25,
    causal: false,
    queryOffset: 6,
    window: null,
  }],
];

for (const dtype of ["float64", "float32", "bfloat16"] as const) {
  gpuTest(`attention forward and backward (${dtype})`, () => {
    for (const [n, [s, spec]] of CASES.entries()) {
      const sizes = [
        s.b * s.hq * s.tq * s.d,
        s.b * s.hkv * s.tk * s.d,
        s.b * s.hkv * s.tk * s.dv,
        s.b * s.hq * s.tq * s.dv,
      ];
      const shapes = [[s.b, s.hq, s.tq, s.d], [s.b, s.hkv, s.tk, s.d], [s.b, s.hkv, s.tk, s.dv], [
        s.b,
        s.hq,
        s.tq,
        s.dv,
      ]];
      const inputs = sizes.map((m, i) => [randomData(m, 100 * n + i, -2, 2), shapes[i]] as [number[], number[]]);
      compare(dtype, `attention case ${n}`, inputs, (b, [q, k, v, g]) => {
        const f = b.fused!;
        const r = f.attention(q, k, v, s, spec, dtype);
        const lseShape = [s.b, s.hq, s.tq];
        const out = whole(r.out, shapes[3]);
        const lse = whole(r.lse, lseShape);
        const d = f.attentionBackward(q, k, v, out, lse, g, s, spec, dtype);
        return [[r.out, shapes[3]], [r.lse, lseShape], [d.dq, shapes[0]], [d.dk, shapes[1]], [d.dv, shapes[2]]];
      });
    }
  });

  gpuTest(`RMSNorm, rotary, SwiGLU and the cross-entropy slices (${dtype})`, () => {
    const [rows, d] = [37, 96];
    const x = randomData(rows * d, 1, -2, 2), w = randomData(d, 2), g = randomData(rows * d, 3);
    compare(dtype, "rmsNorm", [[x, [rows, d]], [w, [d]], [g, [rows, d]]], (b, [xv, wv, gv]) => {
      const r = b.fused!.rmsNorm(xv, wv, d, 1e-5, dtype);
      const back = b.fused!.rmsNormBackward(xv, wv, whole(r.rstd, [rows]), gv, d, dtype);
      return [[r.y, [rows, d]], [back.dx, [rows, d]], [back.dw, [d]]];
    });
    const [t, hd] = [5, 64];
    const angles = Array.from({ length: t * hd }, (_, i) => Math.floor(i / hd) * 0.37 + (i % (hd / 2)) * 0.05);
    compare(
      dtype,
      "rotary",
      [[randomData(6 * t * hd, 4), [6 * t, hd]], [angles.map(Math.cos), [t, hd]], [angles.map(Math.sin), [t, hd]]],
      (b, [xv, c, sn]) => [
        [b.fused!.rotary(xv, c, sn, t, hd, 1, dtype), [6 * t, hd]],
        [b.fused!.rotary(xv, c, sn, t, hd, -1, dtype), [6 * t, hd]],
      ],
    );
    compare(
      dtype,
      "swiglu",
      [[x, [rows, d]], [g, [rows, d]], [w.concat(x).slice(0, rows * d), [rows, d]]],
      (b, [a, u, gy]) => {
        const back = b.fused!.swigluBackward(a, u, gy, dtype);
        return [[b.fused!.swiglu(a, u, dtype), [rows, d]], [back.dgate, [rows, d]], [back.dup, [rows, d]]];
      },
    );
    if (dtype === "bfloat16") return; // the slices work in float32 or float64
    const [n, size] = [19, 300];
    const cols = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -1 : (i * 37) % size));
    const m = randomData(n, 5), l = randomData(n, 6, 0.5, 2), picked = randomData(n, 7);
    compare(
      dtype,
      "crossEntropySlice",
      [[randomData(n * size, 8, -4, 4), [n, size]], [cols, [n], "int32"], [m, [n]], [l, [n]], [picked, [n]]],
      (b, [z, c, mv, lv, pv]) => {
        const r = b.fused!.crossEntropySlice(z, c, mv, lv, pv, size, dtype);
        return [[r.m, [n]], [r.l, [n]], [r.picked, [n]], [
          b.fused!.crossEntropySliceBackward(z, c, mv, lv, size, dtype),
          [n, size],
        ]];
      },
    );
  });
}

// Fused finite-difference stencils on the CUDA backend (Backend.stencil, kernels/stencil.cu) against
// a device-to-device copy of the same field (the bandwidth ceiling) and against the composed
// narrow/concat/roll formulas `diff` used before (about ten kernels and temporaries per
// derivative). Every timing is the median over runs of 10 back-to-back calls (so host enqueue
// overlaps device work), divided by 10. Prints a markdown table.
//
//   deno run -A bench/cuda_stencil.ts

import { createCudaBackend } from "../src/backend/cuda/mod.ts";
import {
  ArgumentError,
  type BandedOperator,
  bandedOperator,
  concat,
  type DType,
  narrow,
  randn,
  roll,
  setDefaultBackend,
  type Tensor,
  tidy,
  type View,
} from "../src/tensor/mod.ts";
import { type AxisName, diff, type Grid, Grid2D, laplacian } from "../src/pde/mod.ts";

const g = await createCudaBackend();
setDefaultBackend(g);
const CALLS = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median device milliseconds of one call of `fn` (runs of CALLS calls, after warm-up). */
function timeIt(fn: () => void, reps = 7, warm = 2): number {
  const batch = () => {
    for (let i = 0; i < CALLS; i++) fn();
  };
  for (let i = 0; i < warm; i++) batch();
  g.synchronize();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) ts.push(g.time(batch) / CALLS);
  return median(ts);
}

/** The composed implementation of `diff` that the fused stencil replaced. */
function composedDiff(u: Tensor, grid: Grid, axis: AxisName, order: 1 | 2): Tensor {
  const a = grid.axis(axis);
  const dim = u.ndim + grid.axisFromEnd(axis, true);
  const h = a.spacing, n = a.n;
  if (a.periodic) {
    const next = roll(u, -1, dim), prev = roll(u, 1, dim);
    return order === 1 ? next.sub(prev).mul(1 / (2 * h)) : next.sub(u.mul(2)).add(prev).mul(1 / (h * h));
  }
  const at = (i: number, len = 1) => narrow(u, dim, i, len);
  if (order === 1) {
    const c = 1 / (2 * h);
    const left = at(1).mul(4).sub(at(0).mul(3)).sub(at(2)).mul(c);
    const inner = at(2, n - 2).sub(at(0, n - 2)).mul(c);
    const right = at(n - 1).mul(3).sub(at(n - 2).mul(4)).add(at(n - 3)).mul(c);
    return concat([left, inner, right], dim);
  }
  if (n < 4) throw new ArgumentError("bench", "too few points");
  const c = 1 / (h * h);
  const left = at(0).mul(2).sub(at(1).mul(5)).add(at(2).mul(4)).sub(at(3)).mul(c);
  const inner = at(2, n - 2).sub(at(1, n - 2).mul(2)).add(at(0, n - 2)).mul(c);
  const right = at(n - 1).mul(2).sub(at(n - 2).mul(5)).add(at(n - 3).mul(4)).sub(at(n - 4)).mul(c);
  return concat([left, inner, right], dim);
}

/** The operator `diff` applies along `axis` (same coefficients as src/pde/finite_difference.ts). */
function operatorOf(grid: Grid, axis: AxisName, order: 1 | 2): BandedOperator {
  const a = grid.axis(axis);
  const c = order === 1 ? 1 / (2 * a.spacing) : 1 / (a.spacing * a.spacing);
  const sc = (r: number[]) => r.map((v) => v * c);
  return bandedOperator({
    n: a.n,
    lo: -1,
    stencil: sc(order === 1 ? [-1, 0, 1] : [1, -2, 1]),
    periodic: a.periodic,
    head: a.periodic ? [] : [sc(order === 1 ? [-3, 4, -1] : [2, -5, 4, -1])],
    tail: a.periodic ? [] : [sc(order === 1 ? [1, -4, 3] : [-1, 4, -5, 2])],
  });
}

interface Case {
  label: string;
  grid: Grid2D;
  batch: number;
  dtype: DType;
  ops: ([AxisName, 1 | 2] | "laplacian")[];
}

const cases: Case[] = [
  {
    label: "[6, 101, 1024, 16] float64, bounded",
    grid: new Grid2D({ nt: 101, x: { n: 1024 }, y: { n: 16 } }),
    batch: 6,
    dtype: "float64",
    ops: [["t", 1], ["t", 2], ["x", 1], ["x", 2], ["y", 2], "laplacian"],
  },
  {
    label: "[4, 64, 64, 64] float32, periodic x, y",
    grid: new Grid2D({ nt: 64, x: { n: 64, periodic: true }, y: { n: 64, periodic: true } }),
    batch: 4,
    dtype: "float32",
    ops: [["t", 1], ["x", 1], ["x", 2], ["y", 1], ["y", 2], "laplacian"],
  },
];

console.log(`# Fused finite-difference stencils (CUDA)\n`);
console.log(`device: ${g.description}; date: ${new Date().toISOString()}\n`);
console.log(
  `GB/s counts the bytes the fused passes move (a derivative reads and writes the field once; the ` +
    `Laplacian is two passes, the second also reading ∂²u/∂x²: 5 field-sizes). "kernel" calls ` +
    `Backend.stencil directly; "diff" is the tensor op; "composed" the narrow/concat/roll version.\n`,
);
console.log(
  `| field | derivative | copy GB/s | kernel ms | kernel GB/s | % of copy | diff ms | composed ms | composed / diff |`,
);
console.log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- |`);
for (const c of cases) {
  const shape = [c.batch, ...c.grid.shape];
  const u = randn(shape, { dtype: c.dtype, seed: 1 }).keep();
  const size = u.size;
  const isz = c.dtype === "float64" ? 8 : 4;
  const out = g.full(size, 0, c.dtype);
  const outView: View = { buffer: out, shape, strides: u.strides, offset: 0 };
  const copyMs = timeIt(() => g.copy(u, outView));
  const copyBw = (2 * size * isz) / copyMs / 1e6;
  for (const spec of c.ops) {
    let name: string, bytes: number;
    let kernel: () => void, fused: () => void, composed: () => void;
    if (spec === "laplacian") {
      name = "∇² (x + y)";
      bytes = 5 * size * isz;
      const ox = operatorOf(c.grid, "x", 2), oy = operatorOf(c.grid, "y", 2);
      const dx = u.ndim + c.grid.axisFromEnd("x", true), dy = u.ndim + c.grid.axisFromEnd("y", true);
      kernel = () => {
        const uxx = g.stencil(u, dx, ox, null, c.dtype);
        const lap = g.stencil(u, dy, oy, { buffer: uxx, shape, strides: u.strides, offset: 0 }, c.dtype);
        g.free(uxx);
        g.free(lap);
      };
      fused = () => tidy(() => void laplacian(u, c.grid));
      composed = () => tidy(() => void composedDiff(u, c.grid, "x", 2).add(composedDiff(u, c.grid, "y", 2)));
    } else {
      const [axis, order] = spec;
      name = order === 1 ? `∂/∂${axis}` : `∂²/∂${axis}²`;
      bytes = 2 * size * isz;
      const op = operatorOf(c.grid, axis, order);
      const dim = u.ndim + c.grid.axisFromEnd(axis, true);
      kernel = () => g.free(g.stencil(u, dim, op, null, c.dtype));
      fused = () => tidy(() => void diff(u, c.grid, axis, order));
      composed = () => tidy(() => void composedDiff(u, c.grid, axis, order));
    }
    const kMs = timeIt(kernel), fMs = timeIt(fused), cMs = timeIt(composed);
    const bw = bytes / kMs / 1e6;
    console.log(
      `| ${c.label} | ${name} | ${copyBw.toFixed(0)} | ${kMs.toFixed(4)} | ${bw.toFixed(0)} | ${
        (100 * bw / copyBw).toFixed(1)
      }% | ${fMs.toFixed(4)} | ${cMs.toFixed(4)} | ${(cMs / fMs).toFixed(1)}× |`,
    );
  }
  g.free(out);
  u.dispose();
  g.releaseCached();
}
console.log();
g.dispose();

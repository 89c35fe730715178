// The CUDA backend's banded operators (Backend.stencil, kernels/stencil.cu) against the CPU
// backend's: finite-difference operators and their transposes, periodic and bounded, random
// boundary blocks; float32, float64 and bfloat16; contiguous, offset, column-major (copied first),
// reversed and broadcast views along every axis; with and without an addend; every tile shape
// (long lines, wide inner axes, lines shorter than a block). Then finite differences and their
// first and second derivatives through the tensor layer on both backends. Both backends sum in
// float64 in the same order and round once, so results agree to the last bit; the tolerances
// only allow one rounding of slack. Without a usable GPU (no libcuda, no device, or no
// --allow-ffi) every test is registered as ignored.

import assert from "node:assert/strict";
import { announce, cpu, gpuTester, whole } from "./cuda_helpers.ts";
import { assertClose, numel, randomData, rowMajor } from "./helpers.ts";
import type { Backend, BandedOperator, DeviceBuffer, View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import { DeviceError } from "../src/tensor/errors.ts";
import { bandedOperator, hvp, type Tensor, tensor, transposeBanded, vjp } from "../src/tensor/mod.ts";
import { type AxisName, diff, type Grid, Grid1D, Grid2D, laplacian } from "../src/pde/mod.ts";

announce("backend_cuda_stencil_test");
const gpuTest = gpuTester("cuda stencil");

// ------------------------------------------------------------------ helpers

/** Largest Σ_j |A[i, j]| over the rows (from the operator's definition). */
function rowAbsMax(op: BandedOperator): number {
  const { n, lo, stencil: s, periodic, head, tail } = op;
  let best = 0;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    if (i < head.rows) { for (let c = 0; c < head.cols; c++) sum += Math.abs(head.values[i * head.cols + c]); }
    else if (i >= n - tail.rows) {
      const r = i - (n - tail.rows);
      for (let c = 0; c < tail.cols; c++) sum += Math.abs(tail.values[r * tail.cols + c]);
    } else {
      for (let k = 0; k < s.length; k++) {
        const col = i + lo + k;
        if (periodic || (col >= 0 && col < n)) sum += Math.abs(s[k]);
      }
    }
    best = Math.max(best, sum);
  }
  return best;
}

/** Relative precision allowed per dtype: one rounding of the result (results are expected bit-equal). */
const EPS: Record<DType, number> = { float64: 4e-16, float32: 1.2e-7, bfloat16: 8e-3, int32: 0 };

/** A strided layout of `shape` over a base buffer of `base` elements. */
interface Layout {
  kind: string;
  base: number;
  strides: number[];
  offset: number;
}

/** Contiguous, offset, column-major (groups that do not merge: copied first), reversed along `axis`, broadcast. */
function layoutsOf(shape: readonly number[], axis: number): Layout[] {
  const n = numel(shape);
  const rm = rowMajor(shape);
  const out: Layout[] = [
    { kind: "contiguous", base: n, strides: rm, offset: 0 },
    { kind: "offset", base: n + 5, strides: rm, offset: 5 },
  ];
  if (shape.length > 1) {
    const cm: number[] = [];
    let acc = 1;
    for (let d = 0; d < shape.length; d++) {
      cm[d] = acc;
      acc *= shape[d];
    }
    out.push({ kind: "column-major", base: n, strides: cm, offset: 0 });
    const b = axis === 0 ? shape.length - 1 : 0; // a non-operator axis read with stride 0
    const bs = rowMajor(shape.map((e, d) => (d === b ? 1 : e))).map((s, d) => (d === b ? 0 : s));
    out.push({ kind: "broadcast", base: n / shape[b], strides: bs, offset: 0 });
  }
  const neg = [...rm];
  neg[axis] = -rm[axis];
  out.push({ kind: "reversed", base: n, strides: neg, offset: (shape[axis] - 1) * rm[axis] });
  return out;
}

/** Runs `stencil` on both backends from the same host data and compares. */
function compareStencil(
  g: Backend,
  op: BandedOperator,
  shape: readonly number[],
  axis: number,
  layout: Layout,
  dtype: DType,
  addKind: "none" | "contiguous" | "broadcast",
  seed: number,
  srcDType: DType = dtype,
): void {
  const data = randomData(layout.base, seed);
  const cb = cpu.fromHost(data, srcDType), gb = g.fromHost(data, srcDType);
  const view = (buffer: DeviceBuffer): View => ({ buffer, shape, strides: layout.strides, offset: layout.offset });
  let cAdd: View | null = null, gAdd: View | null = null;
  const temps: [Backend, DeviceBuffer][] = [[cpu, cb], [g, gb]];
  if (addKind !== "none") {
    const addShape = addKind === "broadcast" ? shape.map((e, d) => (d === axis ? e : 1)) : shape;
    const addData = randomData(numel(addShape), seed + 1);
    const ca = cpu.fromHost(addData, dtype), ga = g.fromHost(addData, dtype);
    const strides = rowMajor(addShape).map((s, d) => (addShape[d] === shape[d] ? s : 0));
    cAdd = { buffer: ca, shape, strides, offset: 0 };
    gAdd = { buffer: ga, shape, strides, offset: 0 };
    temps.push([cpu, ca], [g, ga]);
  }
  const want = cpu.toHost(whole(cpu.stencil(view(cb), axis, op, cAdd, dtype), shape));
  const gotBuf = g.stencil(view(gb), axis, op, gAdd, dtype);
  assert.equal(gotBuf.dtype, dtype);
  assert.equal(gotBuf.size, numel(shape));
  const got = g.toHost(whole(gotBuf, shape));
  g.free(gotBuf);
  for (const [b, buf] of temps) b.free(buf);
  const scale = 3 * rowAbsMax(op) + (addKind === "none" ? 0 : 3);
  const what = `${dtype} n=${op.n} lo=${op.lo} [${shape}] axis ${axis} ${layout.kind} add ${addKind}`;
  assertClose(got, want, { atol: EPS[dtype] * scale, rtol: EPS[dtype] }, what);
}

function fd(n: number, order: 1 | 2, periodic: boolean, h = 0.1): BandedOperator {
  const c = order === 1 ? 1 / (2 * h) : 1 / (h * h);
  const sc = (r: number[]) => r.map((v) => v * c);
  const interior = order === 1 ? [-1, 0, 1] : [1, -2, 1];
  if (periodic) return bandedOperator({ n, lo: -1, stencil: sc(interior), periodic: true });
  return bandedOperator({
    n,
    lo: -1,
    stencil: sc(interior),
    head: [sc(order === 1 ? [-3, 4, -1] : [2, -5, 4, -1])],
    tail: [sc(order === 1 ? [1, -4, 3] : [-1, 4, -5, 2])],
  });
}

function operatorsFor(n: number): BandedOperator[] {
  const ops = [fd(n, 1, false), fd(n, 2, false), fd(n, 1, true), fd(n, 2, true, 0.37)];
  ops.push(transposeBanded(ops[0]), transposeBanded(ops[1]));
  // Positive offset and two-row blocks; an empty stencil with blocks only; a wide wrapped stencil.
  ops.push(bandedOperator({ n, lo: 1, stencil: [1.5, -0.25], head: [[1, 2], [3, 4]], tail: [[0.5, 0.75]] }));
  ops.push(bandedOperator({ n, lo: 0, stencil: [], head: [[1, -1, 2]], tail: [[2], [3]] }));
  ops.push(bandedOperator({ n, lo: -3, stencil: [1, -2, 0.5, 3, -1, 0.25, 2], periodic: true }));
  return ops;
}

// ------------------------------------------------------------------ the primitive

gpuTest("agrees with the CPU backend: every dtype, operator, axis and layout, with and without an addend", (g) => {
  let seed = 1;
  for (const n of [5, 37]) {
    for (const op of operatorsFor(n)) {
      for (
        const [shape, axis] of [[[n], 0], [[3, n], 1], [[n, 5], 0], [[2, n, 33], 1], [[4, 3, n], 2], [
          [2, 3, n, 2],
          2,
        ]] as [number[], number][]
      ) {
        for (const layout of layoutsOf(shape, axis)) {
          for (const dtype of ["float32", "float64", "bfloat16"] as DType[]) {
            compareStencil(g, op, shape, axis, layout, dtype, "none", seed++);
          }
          compareStencil(g, op, shape, axis, layout, "float64", "contiguous", seed++);
          compareStencil(g, op, shape, axis, layout, "float32", "broadcast", seed++);
        }
      }
    }
  }
  // A float64 input with a float32 result (converted first), and a bfloat16 addend.
  const op = fd(9, 2, false);
  const layout = layoutsOf([4, 9], 1)[0];
  compareStencil(g, op, [4, 9], 1, layout, "float32", "none", 999, "float64");
  compareStencil(g, op, [4, 9], 1, layout, "bfloat16", "contiguous", 1000);
});

gpuTest("every tile shape: long lines, wide and narrow inner axes, lines shorter than a block", (g) => {
  let seed = 5000;
  const cases: [number[], number, DType, boolean][] = [
    [[3, 3000], 1, "float64", false], // inner 1: several 1024-row tiles per line
    [[5000, 3], 0, "float32", false], // inner 3: 4-wide tiles
    [[2, 300, 70], 1, "float64", false], // inner 70: 32-wide tiles, partial last one
    [[6, 101, 64, 16], 1, "float64", false], // the PDE layout along t ...
    [[6, 101, 64, 16], 2, "float64", false], // ... and along x
    [[4, 64, 64, 64], 1, "float32", true], // periodic 3-D, each axis
    [[4, 64, 64, 64], 2, "float32", true],
    [[4, 64, 64, 64], 3, "float32", true],
    [[1000, 7], 1, "bfloat16", false], // short lines: 256 / 8 lines per block
    [[1, 1, 4], 2, "float32", false],
  ];
  for (const [shape, axis, dtype, periodic] of cases) {
    const n = shape[axis];
    const layout = layoutsOf(shape, axis)[0];
    for (const order of [1, 2] as const) {
      const op = fd(n, order, periodic, 1 / n);
      compareStencil(g, op, shape, axis, layout, dtype, "none", seed++);
      compareStencil(g, transposeBanded(op), shape, axis, layout, dtype, "broadcast", seed++);
    }
  }
});

gpuTest("empty views, and operators beyond the coefficient limit are refused", (g) => {
  const op = fd(4, 1, false);
  const e = g.fromHost([], "float32");
  const out = g.stencil({ buffer: e, shape: [0, 4], strides: [4, 1], offset: 0 }, 1, op, null, "float32");
  assert.equal(out.size, 0);
  g.free(out);
  g.free(e);
  const none = { rows: 0, cols: 0, values: [] };
  const big: BandedOperator = {
    n: 300,
    lo: 0,
    stencil: new Array(257).fill(1),
    periodic: true,
    head: none,
    tail: none,
  };
  const x = g.full(300, 1, "float32");
  assert.throws(() => g.stencil(whole(x, [300]), 0, big, null, "float32"), DeviceError);
  g.free(x);
});

// ------------------------------------------------------------------ through the tensor layer

function field(backend: Backend, shape: readonly number[], dtype: DType, seed: number): Tensor {
  return tensor(randomData(numel(shape), seed), { shape, dtype, backend });
}

function compareTensors(got: Tensor, want: Tensor, rtol: number, what: string): void {
  const w = want.toTypedArray();
  let scale = 0;
  for (const v of w) scale = Math.max(scale, Math.abs(v));
  assertClose(got.toTypedArray(), w, { atol: rtol * scale, rtol }, what);
}

gpuTest("diff, laplacian and their first and second derivatives agree with the CPU", (g) => {
  const grids: [string, Grid][] = [
    ["1D bounded", new Grid1D({ nt: 9, x: { n: 40 } })],
    ["1D periodic", new Grid1D({ nt: 7, x: { n: 33, periodic: true } })],
    ["2D", new Grid2D({ nt: 5, x: { n: 12, periodic: true }, y: { n: 10 } })],
  ];
  let seed = 7000;
  for (const [name, grid] of grids) {
    const axes: AxisName[] = grid instanceof Grid2D ? ["t", "x", "y"] : ["t", "x"];
    for (const dtype of ["float64", "float32"] as DType[]) {
      // float32 results pass through many roundings in the backward passes: allow a few ulps of the largest value.
      const rtol = dtype === "float64" ? 1e-13 : 1e-5;
      const shape = [2, ...grid.shape];
      const s = seed++;
      const uc = field(cpu, shape, dtype, s), ug = field(g, shape, dtype, s);
      const vc = field(cpu, shape, dtype, s + 1), vg = field(g, shape, dtype, s + 1);
      for (const axis of axes) {
        for (const order of [1, 2] as const) {
          const what = `${name} ${dtype} d${order}/d${axis}`;
          compareTensors(diff(ug, grid, axis, order), diff(uc, grid, axis, order), rtol, what);
          // Strided input: stored [nt, 2, ...], read as [2, nt, ...].
          const swapped = [grid.shape[0], 2, ...grid.shape.slice(1)];
          const sc = field(cpu, swapped, dtype, s + 2).transpose(0, 1);
          const sg = field(g, swapped, dtype, s + 2).transpose(0, 1);
          compareTensors(diff(sg, grid, axis, order), diff(sc, grid, axis, order), rtol, `${what} (strided)`);
        }
      }
      compareTensors(laplacian(ug, grid), laplacian(uc, grid), rtol, `${name} ${dtype} laplacian`);
      // A residual-like function of u: first derivative by VJP, second by a Hessian-vector product.
      const f = (u: Tensor) =>
        diff(u, grid, "t").add(u.mul(diff(u, grid, "x"))).sub(laplacian(u, grid).mul(0.1)).mul(u).sum();
      const [, backC] = vjp(f, uc);
      const [, backG] = vjp(f, ug);
      const oneC = tensor(1, { dtype, backend: cpu }), oneG = tensor(1, { dtype, backend: g });
      compareTensors(backG(oneG)[0], backC(oneC)[0], rtol, `${name} ${dtype} gradient`);
      compareTensors(hvp(f, ug, vg), hvp(f, uc, vc), rtol, `${name} ${dtype} Hessian-vector product`);
    }
  }
});

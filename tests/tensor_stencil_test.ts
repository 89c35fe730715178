/**
 * Banded operators along an axis (`stencil`, `bandedOperator`, `transposeBanded`) and the
 * finite differences built on them: the op against dense matrices on every axis and on strided
 * views, the exact transpose (entry by entry and ⟨Ax, y⟩ = ⟨x, Aᵀy⟩), validation, gradchecks to
 * second order, `diff`/`laplacian` against the composed narrow/concat/roll formulas they replaced,
 * and the CUDA launch planning (kernels/stencil.cu emulated thread by thread, so the tile
 * mapping and parameter packing are checked without a GPU).
 */

import assert from "node:assert/strict";
import {
  ArgumentError,
  type BandedOperator,
  bandedOperator,
  concat,
  type DType,
  gradcheck,
  MAX_BANDED_COEFFICIENTS,
  narrow,
  permute,
  roll,
  ShapeError,
  stencil,
  type Tensor,
  tensor,
  transposeBanded,
} from "../mod.ts";
import { type AxisName, diff, dx, dxx, dyy, type Grid, Grid1D, Grid2D, laplacian } from "../src/pde/mod.ts";
import { bandCoefficients, bandWords, planStencil, STENCIL_THREADS } from "../src/backend/cuda/stencil.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import { assertClose, numel, rng, rowMajor } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function hostData(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => 2 * r() - 1);
}

function f64(shape: readonly number[], seed: number): Tensor {
  return tensor(hostData(numel(shape), seed), { shape, dtype: "float64" });
}

/** The operator as a dense n × n matrix, straight from its definition. */
function denseOf(op: BandedOperator): Float64Array {
  const { n, lo, stencil: s, periodic, head, tail } = op;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    if (i < head.rows) {
      for (let c = 0; c < head.cols; c++) a[i * n + c] += head.values[i * head.cols + c];
    } else if (i >= n - tail.rows) {
      const r = i - (n - tail.rows);
      for (let c = 0; c < tail.cols; c++) a[i * n + n - tail.cols + c] += tail.values[r * tail.cols + c];
    } else {
      for (let k = 0; k < s.length; k++) {
        let col = i + lo + k;
        if (periodic) col = ((col % n) + n) % n;
        else if (col < 0 || col >= n) continue;
        a[i * n + col] += s[k];
      }
    }
  }
  return a;
}

/** Dense `A` applied along `axis` of row-major host data of `shape`, plus Σ|A||x| per output (for tolerances). */
function applyDense(
  a: Float64Array,
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
): { y: Float64Array; mag: Float64Array } {
  const n = shape[axis];
  const st = rowMajor(shape)[axis];
  const y = new Float64Array(x.length);
  const mag = new Float64Array(x.length);
  for (let e = 0; e < x.length; e++) {
    const i = Math.floor(e / st) % n;
    const base = e - i * st;
    let acc = 0, m = 0;
    for (let j = 0; j < n; j++) {
      const v = a[i * n + j] * x[base + j * st];
      acc += v;
      m += Math.abs(v);
    }
    y[e] = acc;
    mag[e] = m;
  }
  return { y, mag };
}

/** Random valid operators: periodic and bounded, blocks of many sizes, offsets on both sides, empty stencils. */
function randomOperators(count: number, seed: number): BandedOperator[] {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const coef = () => Math.round((4 * r() - 2) * 8) / 8 || 0.5;
  const ops: BandedOperator[] = [];
  while (ops.length < count) {
    const n = int(1, 13);
    const periodic = r() < 0.3;
    const w = int(0, 5);
    const lo = int(-4, 3);
    const stencil = Array.from({ length: w }, coef);
    const hr = periodic ? 0 : int(0, Math.min(3, n));
    const tr = periodic ? 0 : int(0, Math.min(3, n - hr));
    const hc = int(hr > 0 ? 1 : 0, n), tc = int(tr > 0 ? 1 : 0, n);
    const block = (rows: number, cols: number) =>
      Array.from({ length: rows }, () => Array.from({ length: cols }, coef));
    ops.push(bandedOperator({ n, lo, stencil, periodic, head: block(hr, hc), tail: block(tr, tc) }));
  }
  return ops;
}

/** Finite-difference-like operators of every kind (one-sided walls, periodic), for n = 3…12. */
function fdOperators(): BandedOperator[] {
  const ops: BandedOperator[] = [];
  for (let n = 3; n <= 12; n++) {
    ops.push(bandedOperator({ n, lo: -1, stencil: [-0.5, 0, 0.5], head: [[-1.5, 2, -0.5]], tail: [[0.5, -2, 1.5]] }));
    ops.push(bandedOperator({ n, lo: -1, stencil: [1, -2, 1], periodic: true }));
    if (n >= 4) {
      ops.push(bandedOperator({ n, lo: -1, stencil: [1, -2, 1], head: [[2, -5, 4, -1]], tail: [[-1, 4, -5, 2]] }));
    }
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// The op against dense matrices

Deno.test("stencil equals the dense operator along every axis, on strided views, with an addend", () => {
  const ops = [...fdOperators(), ...randomOperators(60, 7)];
  let seed = 100;
  for (const op of ops) {
    const a = denseOf(op);
    const n = op.n;
    for (let axis = 0; axis < 3; axis++) {
      const shape = [3, 2, 4];
      shape[axis] = n;
      // Contiguous, permuted (non-mergeable strides), reversed along the axis, and a step-2 slice.
      const host = hostData(numel(shape), seed++);
      const base = tensor(host, { shape, dtype: "float64" });
      const perm = [2, 0, 1];
      const inv = [1, 2, 0];
      const permuted = permute(
        tensor(permute(base, perm).toTypedArray(), {
          shape: perm.map((d) => shape[d]),
          dtype: "float64",
        }),
        inv,
      );
      const reversed = tensor(base.flip(axis).toTypedArray(), { shape, dtype: "float64" }).flip(axis);
      const wide = [...shape];
      wide[2] = 2 * shape[2];
      const sliced = tensor(hostData(numel(wide), seed++), { shape: wide, dtype: "float64" }).slice([
        null,
        null,
        [0, null, 2],
      ]);
      const views: [string, Tensor][] = [
        ["contiguous", base],
        ["permuted", permuted],
        ["reversed", reversed],
        ["sliced", sliced],
      ];
      for (const [kind, x] of views) {
        const xs = x.toTypedArray();
        const { y, mag } = applyDense(a, xs, shape, axis);
        const what = `${kind} n=${n} lo=${op.lo} w=${op.stencil.length} axis ${axis}`;
        assertClose(stencil(x, op, axis), y, { atol: mag.map((m) => 1e-14 * (1 + m)) }, what);
        // Negative axis, and an addend broadcast along the other axes.
        const addShape = shape.map((d, k) => (k === axis ? d : 1));
        const addHost = hostData(n, seed++);
        const addend = tensor(addHost, { shape: addShape, dtype: "float64" });
        const want = y.map((v, e) => v + addHost[Math.floor(e / rowMajor(shape)[axis]) % n]);
        assertClose(stencil(x, op, axis - 3, { add: addend }), want, { atol: mag.map((m) => 1e-14 * (2 + m)) }, what);
      }
    }
  }
});

Deno.test("float32 and bfloat16 stencils are the float64 sums rounded once", () => {
  const ops = [...fdOperators().slice(-3), ...randomOperators(10, 8)];
  for (const op of ops) {
    const shape = [4, op.n, 3];
    const x64 = f64(shape, op.n);
    for (const dtype of ["float32", "bfloat16"] as DType[]) {
      const x = x64.cast(dtype);
      const xs = Float64Array.from(x.toTypedArray());
      const { y, mag } = applyDense(denseOf(op), xs, shape, 1);
      const got = stencil(x, op, 1);
      assert.equal(got.dtype, dtype);
      const eps = dtype === "float32" ? 2 ** -24 : 2 ** -8;
      // One rounding of the result, plus the float64 summation order.
      assertClose(got, y, { atol: mag.map((m) => 1e-14 * m), rtol: eps }, `${dtype} n=${op.n}`);
    }
    // int32 computes in float32.
    const xi = tensor([...Array(op.n).keys()].map((v) => v - 2), { dtype: "int32" });
    assert.equal(stencil(xi, op).dtype, "float32");
  }
});

// ---------------------------------------------------------------------------------------------
// The transpose

Deno.test("transposeBanded is the exact transpose, ⟨Ax, y⟩ = ⟨x, Aᵀy⟩, and memoised both ways", () => {
  for (const op of [...fdOperators(), ...randomOperators(200, 9)]) {
    const n = op.n;
    const t = transposeBanded(op);
    assert.equal(transposeBanded(t), op);
    assert.equal(transposeBanded(op), t);
    assert.equal(t.head.rows + t.tail.rows <= n, true);
    const a = denseOf(op), at = denseOf(t);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        // Entries of repeated periodic taps are summed in another order: allow one rounding.
        const err = Math.abs(at[j * n + i] - a[i * n + j]);
        assert.ok(err <= 1e-15 * Math.abs(a[i * n + j]), `n=${n} lo=${op.lo}: Aᵀ[${j},${i}]`);
      }
    }
    const x = f64([5, n], n + 1), y = f64([5, n], n + 2);
    const lhs = stencil(x, op, 1).mul(y).sum().item();
    const rhs = x.mul(stencil(y, t, 1)).sum().item();
    const scale = x.abs().sum().item() * y.abs().max().item() * Math.max(1, ...a.map(Math.abs));
    assert.ok(Math.abs(lhs - rhs) <= 1e-13 * scale, `n=${n}: ⟨Ax,y⟩ ${lhs} vs ⟨x,Aᵀy⟩ ${rhs}`);
  }
  // With one-sided walls the transpose has more, wider dense rows: 4 × 5 at each end for d²/dx² on 8 points.
  const d2 = bandedOperator({ n: 8, lo: -1, stencil: [1, -2, 1], head: [[2, -5, 4, -1]], tail: [[-1, 4, -5, 2]] });
  const t2 = transposeBanded(d2);
  assert.deepEqual([t2.head.rows, t2.head.cols, t2.tail.rows, t2.tail.cols, t2.lo], [4, 5, 4, 5, -1]);
  assert.deepEqual(t2.head.values.slice(0, 5), [2, 1, 0, 0, 0]);
});

Deno.test("bandedOperator and stencil reject invalid operators and shapes", () => {
  const good = { n: 5, lo: -1, stencil: [1, -2, 1] };
  assert.throws(() => bandedOperator({ ...good, n: 2.5 }), ArgumentError);
  assert.throws(() => bandedOperator({ ...good, lo: 0.5 }), ArgumentError);
  assert.throws(() => bandedOperator({ ...good, stencil: [1, NaN] }), ArgumentError);
  assert.throws(() => bandedOperator({ ...good, periodic: true, head: [[1]] }), ArgumentError);
  assert.throws(() => bandedOperator({ ...good, head: [[1, 2], [3]] }), ArgumentError);
  assert.throws(() => bandedOperator({ ...good, head: [[1, 2, 3, 4, 5, 6]] }), ArgumentError);
  assert.throws(() => bandedOperator({ ...good, head: [[1], [1], [1]], tail: [[1], [1], [1]] }), ArgumentError);
  assert.throws(
    () => bandedOperator({ n: 300, lo: 0, stencil: new Array(MAX_BANDED_COEFFICIENTS + 1).fill(1) }),
    ArgumentError,
  );
  // Fits itself, but its transpose (16 + 1 dense rows of 16) does not.
  const wide = Array.from({ length: 15 }, () => new Array(16).fill(1));
  assert.throws(
    () => bandedOperator({ n: 40, lo: 0, stencil: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], head: wide }),
    ArgumentError,
  );
  // A hand-written object is validated on first use.
  const none = { rows: 0, cols: 0, values: [] };
  const bad: BandedOperator = {
    n: 5,
    lo: -1,
    stencil: [1, 1],
    periodic: false,
    head: { rows: 1, cols: 2, values: [1] },
    tail: none,
  };
  assert.throws(() => stencil(f64([5], 1), bad), ArgumentError);
  const op = bandedOperator(good);
  assert.throws(() => stencil(f64([2, 4], 1), op, 1), ShapeError);
  assert.throws(() => stencil(f64([2, 5], 1), op, 2), ArgumentError);
  assert.throws(() => stencil(f64([2, 5], 1), op, 1, { add: f64([3, 5], 2) }), ShapeError);
  assert.throws(() => stencil(f64([2, 5], 1), op, 1, { add: f64([2, 2, 5], 2) }), ShapeError);
});

Deno.test("stencil passes gradcheck to second order (x and the addend, every kind of operator)", () => {
  const ops = [
    bandedOperator({ n: 5, lo: -1, stencil: [-0.5, 0, 0.5], head: [[-1.5, 2, -0.5]], tail: [[0.5, -2, 1.5]] }),
    bandedOperator({ n: 5, lo: -2, stencil: [1, -3, 0.5, 2], periodic: true }),
    bandedOperator({ n: 6, lo: 1, stencil: [1, -1], head: [[1, 2], [3, 4]], tail: [[0.5]] }),
  ];
  for (const op of ops) {
    const x = f64([2, op.n, 3], op.n);
    const b = f64([op.n, 1], 2 * op.n);
    gradcheck((u) => stencil(u, op, 1), [x], { secondOrder: true });
    gradcheck((u, v) => stencil(u.mul(u), op, 1, { add: v }).mul(u), [x, b], { secondOrder: true });
    gradcheck((u) => stencil(stencil(u, op, 1), op, 1).sum(2), [x.transpose(0, 2)], { secondOrder: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Finite differences against the composed formulas they replaced

/** The composed narrow/concat/roll implementation of `diff` before the fused stencil. */
function composedDiff(u: Tensor, grid: Grid, axis: AxisName, order: 1 | 2, withTime = true): Tensor {
  grid.checkField("diff", u, withTime);
  const a = grid.axis(axis);
  const dim = u.ndim + grid.axisFromEnd(axis, withTime);
  const h = a.spacing;
  const n = a.n;
  if (order !== 1 && order !== 2) throw new ArgumentError("diff", `order must be 1 or 2, got ${order}`);
  if (a.periodic) {
    if (n < 3) throw new ArgumentError("diff", `periodic axis ${axis} needs at least 3 points, has ${n}`);
    const next = roll(u, -1, dim);
    const prev = roll(u, 1, dim);
    return order === 1 ? next.sub(prev).mul(1 / (2 * h)) : next.sub(u.mul(2)).add(prev).mul(1 / (h * h));
  }
  const at = (i: number, len = 1) => narrow(u, dim, i, len);
  if (order === 1) {
    if (n < 3) throw new ArgumentError("diff", `bounded axis ${axis} needs at least 3 points for d/d${axis}, has ${n}`);
    const c = 1 / (2 * h);
    const left = at(1).mul(4).sub(at(0).mul(3)).sub(at(2)).mul(c);
    const inner = at(2, n - 2).sub(at(0, n - 2)).mul(c);
    const right = at(n - 1).mul(3).sub(at(n - 2).mul(4)).add(at(n - 3)).mul(c);
    return concat([left, inner, right], dim);
  }
  if (n < 4) throw new ArgumentError("diff", `bounded axis ${axis} needs at least 4 points for d²/d${axis}², has ${n}`);
  const c = 1 / (h * h);
  const left = at(0).mul(2).sub(at(1).mul(5)).add(at(2).mul(4)).sub(at(3)).mul(c);
  const inner = at(2, n - 2).sub(at(1, n - 2).mul(2)).add(at(0, n - 2)).mul(c);
  const right = at(n - 1).mul(2).sub(at(n - 2).mul(5)).add(at(n - 3).mul(4)).sub(at(n - 4)).mul(c);
  return concat([left, inner, right], dim);
}

function assertSameField(got: Tensor, want: Tensor, scale: number, what: string): void {
  assert.deepEqual(got.shape, want.shape, what);
  const w = want.toTypedArray();
  assertClose(got.toTypedArray(), w, { atol: 1e-13 * scale }, what);
}

Deno.test("diff equals the composed formulas: every axis and order, periodic and bounded, batch and strided input", () => {
  const grids: [string, Grid][] = [
    ["1D bounded", new Grid1D({ nt: 6, t: [0, 2], x: { n: 7, range: [-1, 2] } })],
    ["1D periodic", new Grid1D({ nt: 5, x: { n: 9, periodic: true } })],
    ["1D cell", new Grid1D({ nt: 4, x: { n: 6, centering: "cell" } })],
    ["2D mixed", new Grid2D({ nt: 4, x: { n: 6, periodic: true }, y: { n: 5, range: [0, 2] } })],
    ["2D bounded", new Grid2D({ nt: 5, x: { n: 4 }, y: { n: 7 } })],
  ];
  let seed = 500;
  for (const [name, g] of grids) {
    const axes: AxisName[] = g instanceof Grid2D ? ["t", "x", "y"] : ["t", "x"];
    const shape = [2, 3, ...g.shape];
    // Contiguous, and the same field laid out [nt, 2, rest..., 3] then permuted back (strided).
    const u = f64(shape, seed++);
    const r = shape.length;
    const perm = [2, 0, ...Array.from({ length: r - 3 }, (_, k) => 3 + k), 1];
    const inv = perm.map((_, k) => perm.indexOf(k));
    const stored = tensor(permute(u, perm).toTypedArray(), { shape: perm.map((d) => shape[d]), dtype: "float64" });
    const strided = permute(stored, inv);
    assert.equal(strided.isContiguous, false);
    for (const axis of axes) {
      const h = g.axis(axis).spacing;
      for (const order of [1, 2] as const) {
        const scale = order === 1 ? 8 / h : 12 / (h * h);
        const want = composedDiff(u, g, axis, order);
        const what = `${name} d${order}/d${axis}`;
        assertSameField(diff(u, g, axis, order), want, scale, what);
        assertSameField(diff(strided, g, axis, order), want, scale, `${what} (strided)`);
        assertSameField(diff(narrow(u, 1, 1, 2), g, axis, order), narrow(want, 1, 1, 2), scale, `${what} (slice)`);
        if (axis !== "t") {
          // A field at one time: [...batch, nx(, ny)].
          const u0 = narrow(u, 2, 1, 1).squeeze(2);
          assertSameField(
            diff(u0, g, axis, order, { withTime: false }),
            composedDiff(u0, g, axis, order, false),
            scale,
            `${what} (no time axis)`,
          );
        }
      }
    }
    const scale = 24 / Math.min(g.axis("x").spacing, g instanceof Grid2D ? g.axis("y").spacing : Infinity) ** 2;
    const lapWant = g instanceof Grid2D
      ? composedDiff(u, g, "x", 2).add(composedDiff(u, g, "y", 2))
      : composedDiff(u, g, "x", 2);
    assertSameField(laplacian(u, g), lapWant, scale, `${name} laplacian`);
    assertSameField(laplacian(strided, g), lapWant, scale, `${name} laplacian (strided)`);
  }
});

Deno.test("diff keeps the errors of the composed version for too-few points and bad orders", () => {
  const cases: [Grid, AxisName, 1 | 2][] = [
    [new Grid1D({ nt: 3, x: { n: 3 } }), "x", 2],
    [new Grid1D({ nt: 2, x: { n: 3 } }), "t", 1],
    [new Grid1D({ nt: 3, x: { n: 2, periodic: true } }), "x", 1],
    [new Grid1D({ nt: 3, x: { n: 3 } }), "x", 3 as 2],
  ];
  for (const [g, axis, order] of cases) {
    const u = f64(g.shape, 1);
    let message = "";
    try {
      composedDiff(u, g, axis, order);
    } catch (e) {
      message = (e as Error).message;
    }
    assert.ok(message.startsWith("diff: "), message);
    assert.throws(() => diff(u, g, axis, order), (e: unknown) => e instanceof ArgumentError && e.message === message);
  }
});

Deno.test("diff and laplacian pass gradcheck to second order (strided input, every axis)", () => {
  const g1 = new Grid1D({ nt: 4, x: { n: 5 } });
  const g2 = new Grid2D({ nt: 3, x: { n: 4, periodic: true }, y: { n: 5 } });
  const u1 = f64([4, 2, 5], 11).transpose(0, 1); // [2, 4, 5], not contiguous
  const u2 = f64([2, 3, 4, 5], 12);
  const opts = { secondOrder: true };
  gradcheck((u) => diff(u, g1, "t", 2).add(dx(u, g1).mul(u)), [u1], opts);
  gradcheck((u) => dxx(u.mul(u), g1), [u1], opts);
  gradcheck((u) => laplacian(u, g2), [u2], opts);
  gradcheck((u) => dyy(u, g2).mul(diff(u, g2, "t")), [u2], opts);
});

// ---------------------------------------------------------------------------------------------
// CUDA launch planning, checked by emulating kernels/stencil.cu on the host

/** Runs the stencil kernel's thread mapping and arithmetic for every thread of `blocks` blocks. */
function emulateKernel(
  x: Float64Array,
  xOffset: number,
  shape: readonly number[],
  strides: readonly number[],
  axis: number,
  op: BandedOperator,
  add: Float64Array | null,
  blocks: number,
): { y: Float64Array; writes: Int32Array } {
  const plan = planStencil(shape, strides, axis);
  assert.ok(plan, "plan");
  const [outer, nU, inner, lj, li, rows, tilesI, tilesJ, tiles] = plan.dims;
  const [s0, s1, s2] = plan.strides;
  const words = bandWords(op);
  const k = bandCoefficients(op);
  const m = {
    lo: words[0] | 0,
    w: words[1],
    periodic: words[2],
    hr: words[3],
    hc: words[4],
    tr: words[5],
    tc: words[6],
  };
  const y = new Float64Array(numel(shape));
  const writes = new Int32Array(y.length);
  const n = nU;
  const row = (xl: number, i: number): number => {
    let acc = 0;
    if (i < m.hr) {
      const c0 = m.w + i * m.hc;
      for (let q = 0; q < m.hc; q++) acc += k[c0 + q] * x[xl + q * s1];
      return acc;
    }
    const t0 = n - m.tr;
    if (i >= t0) {
      const c0 = m.w + m.hr * m.hc + (i - t0) * m.tc;
      for (let q = 0; q < m.tc; q++) acc += k[c0 + q] * x[xl + (n - m.tc + q) * s1];
      return acc;
    }
    let col = i + m.lo;
    if (col >= 0 && col + m.w <= n) {
      for (let q = 0; q < m.w; q++) acc += k[q] * x[xl + (col + q) * s1];
    } else if (m.periodic) {
      col %= n;
      if (col < 0) col += n;
      for (let q = 0; q < m.w; q++) {
        acc += k[q] * x[xl + col * s1];
        if (++col === n) col = 0;
      }
    } else {
      for (let q = 0; q < m.w; q++, col++) if (col >= 0 && col < n) acc += k[q] * x[xl + col * s1];
    }
    return acc;
  };
  const tjN = 1 << lj, tiN = 1 << li;
  const toN = STENCIL_THREADS >> (lj + li);
  const span = rows << li;
  for (let b = 0; b < blocks; b++) {
    for (let tid = 0; tid < STENCIL_THREADS; tid++) {
      const tx = tid & (tjN - 1), ty = (tid >> lj) & (tiN - 1), tz = tid >> (lj + li);
      for (let t = b; t < tiles; t += blocks) {
        const r = Math.floor(t / tilesJ);
        const j = (t - r * tilesJ) * tjN + tx;
        const q = Math.floor(r / tilesI);
        const i0 = (r - q * tilesI) * span + ty;
        const o = q * toN + tz;
        if (o >= outer || j >= inner) continue;
        const xl = xOffset + o * s0 + j * s2;
        const base = o * n * inner + j;
        for (let rr = 0, i = i0; rr < rows && i < n; rr++, i += tiN) {
          let acc = row(xl, i);
          const e = base + i * inner;
          if (add) acc += add[e];
          y[e] = acc;
          writes[e]++;
        }
      }
    }
  }
  return { y, writes };
}

Deno.test("cuda stencil planning: the emulated kernel writes every element once and matches the CPU backend", () => {
  const cpu = new CpuBackend();
  const ops = [...fdOperators().filter((o) => o.n === 7 || o.n === 12), ...randomOperators(12, 13)];
  // Long axes: several tiles along the rows (and partial last tiles) in every layout.
  for (const n of [37, 100, 1500]) {
    ops.push(bandedOperator({ n, lo: -1, stencil: [1, -2, 1], head: [[2, -5, 4, -1]], tail: [[-1, 4, -5, 2]] }));
    ops.push(bandedOperator({ n, lo: -2, stencil: [1, -1, 3, 0.5, 2], periodic: true }));
  }
  let seed = 900;
  for (const op of ops) {
    const n = op.n;
    const cases: { shape: number[]; axis: number; perm?: number[] }[] = n > 100
      ? [{ shape: [2, n], axis: 1 }, { shape: [n, 3], axis: 0 }]
      : [
        { shape: [n], axis: 0 },
        { shape: [3, n], axis: 1 },
        { shape: [n, 40], axis: 0 },
        { shape: [2, n, 5], axis: 1 },
        { shape: [5, 3, n], axis: 2, perm: [2, 0, 1] }, // a strided layout whose groups still merge
        { shape: [2, 3, n, 33], axis: 2 },
        { shape: [70, n], axis: 1 },
      ];
    for (const c of cases) {
      const total = numel(c.shape);
      const xHost = hostData(total + 3, seed++);
      // A view at offset 3 with row-major strides, or with the given axis order in memory.
      let strides = rowMajor(c.shape);
      if (c.perm) {
        const ps = rowMajor(c.perm.map((d) => c.shape[d]));
        strides = c.shape.map((_, d) => ps[c.perm!.indexOf(d)]);
      }
      const addHost = hostData(total, seed++);
      const plan = planStencil(c.shape, strides, c.axis);
      if (!plan) {
        assert.ok(c.perm, "only the permuted layout may need a copy");
        continue;
      }
      const view = { buffer: cpu.fromHost(xHost, "float64"), shape: c.shape, strides, offset: 3 };
      const addView = {
        buffer: cpu.fromHost(addHost, "float64"),
        shape: c.shape,
        strides: rowMajor(c.shape),
        offset: 0,
      };
      for (const withAdd of [false, true]) {
        const want = cpu.toHost({
          buffer: cpu.stencil(view, c.axis, op, withAdd ? addView : null, "float64"),
          shape: c.shape,
          strides: rowMajor(c.shape),
          offset: 0,
        });
        const blockCounts: number[] = [1, 3, Math.min(plan.tiles, 1056)];
        for (const blocks of blockCounts) {
          const { y, writes } = emulateKernel(xHost, 3, c.shape, strides, c.axis, op, withAdd ? addHost : null, blocks);
          const what = `n=${n} lo=${op.lo} shape [${c.shape}] axis ${c.axis} blocks ${blocks}`;
          assert.ok(writes.every((w) => w === 1), `${what}: every element written once`);
          assert.deepEqual(y, want, what);
        }
      }
    }
  }
});

Deno.test("cuda stencil planning: groups, tiles and parameter packing", () => {
  // [6, 101, 1024, 16] along t: outer 6, n 101, inner 16384; 32 inner × 8 rows × 4 rows per thread.
  const p = planStencil([6, 101, 1024, 16], rowMajor([6, 101, 1024, 16]), 1)!;
  assert.deepEqual(p.dims, [6, 101, 16384, 5, 3, 4, 4, 512, 6 * 4 * 512]);
  assert.deepEqual(p.strides, [101 * 16384, 16384, 1]);
  // Innermost axis of 64: lines of 64 threads, 4 lines per block.
  const q = planStencil([4, 64, 64, 64], rowMajor([4, 64, 64, 64]), 3)!;
  assert.deepEqual(q.dims, [4 * 64 * 64, 64, 1, 0, 6, 1, 1, 1, 4 * 64 * 64 / 4]);
  // Size-1 axes merge into anything; non-mergeable groups ask for a copy.
  assert.deepEqual(planStencil([1, 5, 1], [99, 3, 77], 1)!.strides, [0, 3, 0]);
  assert.equal(planStencil([2, 3, 4], [1, 8, 2], 2), null);
  assert.equal(planStencil([2, 3, 4], [12, 4, 1], 0)!.strides[2], 1);
  assert.deepEqual(planStencil([3, 4], [-4, 1], 1)!.strides, [-4, 1, 0]);
  // Operator words and coefficients in kernel order.
  const op = bandedOperator({ n: 9, lo: -2, stencil: [1, 2, 3], head: [[4, 5], [6, 7]], tail: [[8, 9, 10]] });
  assert.deepEqual(bandWords(op), [2 ** 32 - 2, 3, 0, 2, 2, 1, 3]);
  assert.deepEqual(bandCoefficients(op), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

/**
 * src/pde grids, finite differences, point sampling and the batched tridiagonal solver: geometry,
 * exactness on polynomials, observed convergence orders on smooth functions, gradchecks, seeded
 * sampling without replacement (whole grid and expert boxes), wall and initial point sets.
 */

import assert from "node:assert/strict";
import { ArgumentError, gradcheck, ShapeError, type Tensor, tensor } from "../mod.ts";
import {
  applyDerivative,
  blockRegions,
  boundaryPoints,
  diff,
  dt,
  dx,
  dxx,
  dxy,
  dy,
  dyy,
  gatherPoints,
  Grid1D,
  Grid2D,
  initialPoints,
  laplacian,
  PointSampler,
  solveTridiagonal,
  unravelIndices,
} from "../src/pde/mod.ts";
import { rng } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** float64 field on a grid from a function of the coordinates, with optional batch axes. */
function field(
  grid: Grid1D | Grid2D,
  f: (t: number, x: number, y: number) => number,
  batch: number[] = [],
): Tensor {
  const ts = grid.t.points();
  const xs = grid.x.points();
  const ys = grid instanceof Grid2D ? grid.y.points() : new Float64Array([0]);
  const per = ts.length * xs.length * ys.length;
  const reps = batch.reduce((a, b) => a * b, 1);
  const host = new Float64Array(per * reps);
  for (let r = 0; r < reps; r++) {
    let k = r * per;
    for (const t of ts) for (const x of xs) for (const y of ys) host[k++] = (r + 1) * f(t, x, y);
  }
  return tensor(host, { shape: [...batch, ...grid.shape], dtype: "float64" });
}

function maxAbs(t: Tensor): number {
  return t.abs().max().item();
}

function maxErr(a: Tensor, b: Tensor): number {
  return maxAbs(a.sub(b));
}

function seededF64(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const next = () => r() - 0.5;
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float64Array.from({ length: n }, next), { shape, dtype: "float64" });
}

// ---------------------------------------------------------------------------------------------
// Grids

Deno.test("Grid1D: node, cell and periodic axes, coordinates and layout", () => {
  const g = new Grid1D({ nt: 11, t: [0, 5], x: { n: 5 } });
  assert.deepEqual(g.shape, [11, 5]);
  assert.equal(g.t.spacing, 0.5);
  assert.equal(g.x.spacing, 0.25);
  assert.deepEqual([...g.x.points()], [0, 0.25, 0.5, 0.75, 1]);
  const cell = new Grid1D({ nt: 3, x: { n: 4, centering: "cell" } });
  assert.deepEqual([...cell.x.points()], [0.125, 0.375, 0.625, 0.875]);
  assert.equal(cell.x.spacing, 0.25);
  const per = new Grid1D({ nt: 3, x: { n: 4, periodic: true, range: [0, 2] } });
  assert.deepEqual([...per.x.points()], [0, 0.5, 1, 1.5]);
  const { t, x } = g.coordinates({ dtype: "float64" });
  assert.deepEqual(t.shape, [11, 5]);
  assert.deepEqual((t.toArray() as number[][])[3], [1.5, 1.5, 1.5, 1.5, 1.5]);
  assert.deepEqual((x.toArray() as number[][])[7], [0, 0.25, 0.5, 0.75, 1]);
  assert.equal(g.axisFromEnd("t"), -2);
  assert.equal(g.axisFromEnd("x"), -1);
  assert.equal(g.axisFromEnd("x", false), -1);
  assert.deepEqual(g.resized({ nx: 9 }).shape, [11, 9]);
  assert.equal(g.resized({ nx: 9 }).x.spacing, 0.125);
});

Deno.test("Grid2D: shapes, coordinates and argument errors", () => {
  const g = new Grid2D({ nt: 4, t: [0, 3], x: { n: 8, periodic: true }, y: { n: 5, range: [-1, 1] } });
  assert.deepEqual(g.shape, [4, 8, 5]);
  assert.deepEqual(g.spaceShape, [8, 5]);
  assert.equal(g.size, 160);
  assert.equal(g.axisFromEnd("t"), -3);
  assert.equal(g.axisFromEnd("y", false), -1);
  const c = g.coordinates({ dtype: "float64" });
  const y = c.y.toArray() as number[][][];
  assert.deepEqual(y[2][3], [-1, -0.5, 0, 0.5, 1]);
  assert.equal((c.x.toArray() as number[][][])[1][3][4], 3 / 8);
  assert.throws(() => new Grid1D({ nt: 0, x: { n: 4 } }), ArgumentError);
  assert.throws(() => new Grid1D({ nt: 3, x: { n: 4, range: [1, 0] } }), ArgumentError);
  assert.throws(() => g.axis("z" as "x"), ArgumentError);
  assert.throws(() => new Grid1D({ nt: 3, x: { n: 4 } }).axis("y"), ArgumentError);
  assert.throws(() => dx(tensor([[1, 2, 3]], { dtype: "float64" }), new Grid1D({ nt: 2, x: { n: 3 } })), ShapeError);
});

// ---------------------------------------------------------------------------------------------
// Finite differences: exactness

Deno.test("finite differences are exact on quadratics (first) and cubics (second), walls included", () => {
  const g = new Grid1D({ nt: 6, t: [0, 2], x: { n: 7, range: [-1, 2] } });
  const q = field(g, (t, x) => 1 + 2 * x - 3 * x * x + t * t - 0.5 * t, [2]);
  assert.ok(maxErr(dx(q, g), field(g, (_t, x) => 2 - 6 * x, [2])) < 1e-11);
  assert.ok(maxErr(dt(q, g), field(g, (t) => 2 * t - 0.5, [2])) < 1e-11);
  const c = field(g, (t, x) => x * x * x - 2 * x * x + t * t * t, [2]);
  assert.ok(maxErr(dxx(c, g), field(g, (_t, x) => 6 * x - 4, [2])) < 1e-10);
  assert.ok(maxErr(diff(c, g, "t", 2), field(g, (t) => 6 * t, [2])) < 1e-10);
  // Cell-centred axes are uniform too.
  const gc = new Grid1D({ nt: 3, x: { n: 6, centering: "cell" } });
  assert.ok(maxErr(dxx(field(gc, (_t, x) => x * x * x), gc), field(gc, (_t, x) => 6 * x)) < 1e-9);
  // 2D: mixed derivative and Laplacian on bounded axes.
  const g2 = new Grid2D({ nt: 4, x: { n: 6 }, y: { n: 5, range: [0, 2] } });
  const p = field(g2, (t, x, y) => x * y + x * x * y - y * y * y + t * x);
  assert.ok(maxErr(dxy(p, g2), field(g2, (_t, x) => 1 + 2 * x)) < 1e-10);
  assert.ok(maxErr(laplacian(p, g2), field(g2, (_t, _x, y) => 2 * y - 6 * y)) < 1e-9);
  const pq = field(g2, (_t, x, y) => x * y * y - 2 * y * y + x);
  assert.ok(maxErr(dy(pq, g2), field(g2, (_t, x, y) => 2 * x * y - 4 * y)) < 1e-10);
  assert.ok(maxErr(dyy(p, g2), field(g2, (_t, _x, y) => -6 * y)) < 1e-9);
  // Fields without a time axis.
  const xs = Array.from(g.x.points());
  const u0 = tensor([xs.map((x) => x * x), xs.map((x) => 3 * x)], { dtype: "float64" });
  const want = tensor([xs.map((x) => 2 * x), xs.map(() => 3)], { dtype: "float64" });
  assert.ok(maxErr(dx(u0, g, { withTime: false }), want) < 1e-10);
  assert.throws(() => dt(u0, g), ShapeError);
});

Deno.test("periodic stencils wrap around: the discrete symbols on Fourier modes are exact", () => {
  const n = 12;
  const g = new Grid2D({ nt: 3, x: { n, periodic: true }, y: { n: 8, periodic: true, range: [0, 2] } });
  const h = 1 / n;
  const k = 2 * Math.PI * 3;
  const u = field(g, (_t, x, y) => Math.sin(k * x) * Math.cos(Math.PI * y));
  const d1 = field(g, (_t, x, y) => (Math.sin(k * h) / h) * Math.cos(k * x) * Math.cos(Math.PI * y));
  const d2 = field(g, (_t, x, y) => (-(2 - 2 * Math.cos(k * h)) / (h * h)) * Math.sin(k * x) * Math.cos(Math.PI * y));
  assert.ok(maxErr(dx(u, g), d1) < 1e-10);
  assert.ok(maxErr(dxx(u, g), d2) < 1e-9);
  // applyDerivative composes the same stencils.
  assert.ok(maxErr(applyDerivative(u, g, { x: 2, y: 1 }), dy(dxx(u, g), g)) < 1e-12);
  assert.ok(maxErr(applyDerivative(u, g, { laplacian: true }), dxx(u, g).add(dyy(u, g))) < 1e-12);
  assert.equal(applyDerivative(u, g, {}), u);
});

// ---------------------------------------------------------------------------------------------
// Finite differences: convergence order

function order(errors: number[]): number[] {
  return errors.slice(1).map((e, i) => Math.log2(errors[i] / e));
}

Deno.test("finite differences converge at second order on smooth functions (max error, walls included)", () => {
  const f = (x: number) => Math.exp(x) * Math.sin(3 * x);
  const f1 = (x: number) => Math.exp(x) * (Math.sin(3 * x) + 3 * Math.cos(3 * x));
  const f2 = (x: number) => Math.exp(x) * (-8 * Math.sin(3 * x) + 6 * Math.cos(3 * x));
  const e1: number[] = [];
  const e2: number[] = [];
  const ep: number[] = [];
  const et: number[] = [];
  for (const n of [33, 65, 129, 257]) {
    const g = new Grid1D({ nt: n, t: [0, 1], x: { n } });
    const u = field(g, (t, x) => f(x) + Math.cos(2 * t));
    e1.push(maxErr(dx(u, g), field(g, (_t, x) => f1(x))));
    e2.push(maxErr(dxx(u, g), field(g, (_t, x) => f2(x))));
    et.push(maxErr(dt(u, g), field(g, (t) => -2 * Math.sin(2 * t))));
    const gp = new Grid1D({ nt: 3, x: { n: n - 1, periodic: true } });
    const up = field(gp, (_t, x) => Math.exp(Math.sin(2 * Math.PI * x)));
    const want = field(gp, (_t, x) => {
      const s = Math.sin(2 * Math.PI * x);
      const c = Math.cos(2 * Math.PI * x);
      return Math.exp(s) * 4 * Math.PI * Math.PI * (c * c - s);
    });
    ep.push(maxErr(dxx(up, gp), want));
  }
  for (const [name, errs] of [["d/dx", e1], ["d²/dx²", e2], ["d/dt", et], ["periodic d²/dx²", ep]] as const) {
    const p = order(errs);
    console.log(`  ${name}: errors ${errs.map((e) => e.toExponential(2))}, orders ${p.map((q) => q.toFixed(2))}`);
    assert.ok(p.every((q) => q > 1.85 && q < 2.2), `${name}: observed orders ${p.map((q) => q.toFixed(2))}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Finite differences: gradients

Deno.test("finite-difference operators pass gradcheck (float64, first and second order)", () => {
  const g1 = new Grid1D({ nt: 4, x: { n: 5 } });
  const gp = new Grid1D({ nt: 4, x: { n: 5, periodic: true } });
  const g2 = new Grid2D({ nt: 3, x: { n: 4, periodic: true }, y: { n: 4 } });
  const u1 = seededF64([2, 4, 5], 1);
  const u2 = seededF64([3, 4, 4], 2);
  const opts = { secondOrder: true };
  gradcheck((u) => dx(u, g1), [u1], opts);
  gradcheck((u) => dxx(u, g1), [u1], opts);
  gradcheck((u) => dt(u, g1), [u1], opts);
  gradcheck((u) => dxx(u, gp).add(dx(u, gp)), [u1], opts);
  gradcheck((u) => laplacian(u, g2).add(dxy(u, g2)), [u2], opts);
  // A nonlinear residual through the stencils: u_t + u·u_x − 0.1·u_xx.
  gradcheck((u) => dt(u, gp).add(u.mul(dx(u, gp))).sub(dxx(u, gp).mul(0.1)), [u1], opts);
});

Deno.test("finite differences reject too-short axes with ArgumentError", () => {
  const g = new Grid1D({ nt: 3, x: { n: 3 } });
  const u = seededF64([3, 3], 3);
  assert.throws(() => dxx(u, g), ArgumentError);
  assert.throws(() => diff(u, g, "x", 3 as 2), ArgumentError);
  assert.doesNotThrow(() => dx(u, g));
});

// ---------------------------------------------------------------------------------------------
// Sampling

Deno.test("PointSampler: seeded, distinct, sorted, fresh each step, uniform", () => {
  const g = new Grid1D({ nt: 10, x: { n: 20 } });
  const a = new PointSampler(g, { seed: 5 });
  const b = new PointSampler(g, { seed: 5 });
  const first = a.nextHost(50);
  assert.deepEqual([...first], [...b.nextHost(50)]);
  assert.equal(new Set(first).size, 50);
  assert.ok(first.every((v, i) => v >= 0 && v < 200 && (i === 0 || first[i - 1] < v)));
  assert.notDeepEqual([...a.nextHost(50)], [...first]);
  assert.notDeepEqual([...new PointSampler(g, { seed: 6 }).nextHost(50)], [...first]);
  // All points when m = size.
  assert.deepEqual([...new PointSampler([3, 4]).nextHost(12)], Array.from({ length: 12 }, (_, i) => i));
  assert.throws(() => a.next(201), ArgumentError);
  // Uniformity: 400 draws of 20 points out of 100; each point's count ~ Binomial(400, 0.2).
  const s = new PointSampler([10, 10], { seed: 11 });
  const counts = new Array(100).fill(0);
  for (let r = 0; r < 400; r++) for (const i of s.nextHost(20)) counts[i]++;
  const chi2 = counts.reduce((acc, c) => acc + (c - 80) ** 2 / (80 * 0.8), 0);
  assert.ok(chi2 < 160, `chi² = ${chi2.toFixed(1)} over 100 cells`); // mean 99, sd ≈ 14
  const idx = a.next(7);
  assert.equal(idx.dtype, "int32");
  assert.deepEqual(idx.shape, [7]);
});

Deno.test("PointSampler: subdomain boxes (expert blocks), global and local indexing", () => {
  const g = new Grid2D({ nt: 6, x: { n: 8, periodic: true }, y: { n: 8, periodic: true } });
  const regions = blockRegions(g.shape, [1, 2, 2]);
  assert.equal(regions.length, 4);
  assert.deepEqual(regions[1], [[0, 6], [0, 4], [4, 8]]);
  assert.deepEqual(blockRegions([101, 1024], [1, 4])[3], [[0, 101], [768, 1024]]);
  assert.deepEqual(blockRegions([10], [3]), [[[0, 4]], [[4, 7]], [[7, 10]]]);
  const seen = new Set<number>();
  regions.forEach((region, k) => {
    const s = new PointSampler(g, { seed: k, region });
    assert.equal(s.size, 96);
    const pts = s.nextHost(96); // the whole box
    const [it, ix, iy] = unravelIndices(pts, g.shape);
    for (let j = 0; j < pts.length; j++) {
      assert.ok(it[j] >= region[0][0] && it[j] < region[0][1]);
      assert.ok(ix[j] >= region[1][0] && ix[j] < region[1][1]);
      assert.ok(iy[j] >= region[2][0] && iy[j] < region[2][1]);
      seen.add(pts[j]);
    }
    const local = new PointSampler(g, { seed: k, region, indexing: "local" }).nextHost(10);
    const global = new PointSampler(g, { seed: k, region }).nextHost(10);
    const [lt, lx, ly] = unravelIndices(local, [6, 4, 4]);
    const back = local.map((_, j) => ((lt[j] + region[0][0]) * 8 + lx[j] + region[1][0]) * 8 + ly[j] + region[2][0]);
    assert.deepEqual([...back].sort((p, q) => p - q), [...global]);
  });
  assert.equal(seen.size, g.size); // the blocks tile the grid
  assert.throws(() => new PointSampler(g, { region: [[0, 6], [0, 9], [0, 8]] }), ArgumentError);
});

Deno.test("initial and wall point sets, and gathering a field at points", () => {
  const g = new Grid1D({ nt: 3, x: { n: 4 } });
  assert.deepEqual(initialPoints(g).toArray(), [0, 1, 2, 3]);
  assert.deepEqual(boundaryPoints(g, "x", "low").toArray(), [0, 4, 8]);
  assert.deepEqual(boundaryPoints(g, "x", "high").toArray(), [3, 7, 11]);
  assert.deepEqual(boundaryPoints(g, "x", "high", { skipInitial: true }).toArray(), [7, 11]);
  const g2 = new Grid2D({ nt: 2, x: { n: 3 }, y: { n: 2 } });
  assert.deepEqual(boundaryPoints(g2, "x", "high").toArray(), [4, 5, 10, 11]);
  assert.deepEqual(boundaryPoints(g2, "y", "low").toArray(), [0, 2, 4, 6, 8, 10]);
  const u = tensor(Float64Array.from({ length: 24 }, (_, i) => i), { shape: [2, 3, 4], dtype: "float64" });
  const pts = tensor(Int32Array.from([0, 5, 11]), { dtype: "int32" });
  assert.deepEqual(gatherPoints(u, g, pts).toArray(), [[0, 5, 11], [12, 17, 23]]);
  gradcheck((v) => gatherPoints(v, g, pts).square(), [seededF64([2, 3, 4], 9)]);
});

// ---------------------------------------------------------------------------------------------
// Tridiagonal solves

Deno.test("solveTridiagonal (parallel cyclic reduction) matches a dense solve for every n", () => {
  for (const n of [1, 2, 3, 5, 8, 13, 32, 33]) {
    const a = seededF64([3, n], 10 + n);
    const c = seededF64([3, n], 20 + n);
    const b = a.abs().add(c.abs()).add(1.5); // diagonally dominant
    const x = seededF64([3, n], 30 + n);
    // d = T·x
    const xa = x.toTypedArray();
    const [A, B, C] = [a, b, c].map((t) => t.toTypedArray());
    const d = new Float64Array(3 * n);
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < n; i++) {
        const k = r * n + i;
        d[k] = B[k] * xa[k] + (i > 0 ? A[k] * xa[k - 1] : 0) + (i < n - 1 ? C[k] * xa[k + 1] : 0);
      }
    }
    const got = solveTridiagonal(a, b, c, tensor(d, { shape: [3, n], dtype: "float64" }));
    assert.ok(maxErr(got, x) < 1e-12, `n = ${n}`);
  }
  const a = seededF64([5], 1);
  const c = seededF64([5], 2);
  const b = a.abs().add(c.abs()).add(2);
  gradcheck((bb, dd) => solveTridiagonal(a, bb, c, dd), [b, seededF64([2, 5], 3)]);
});

import assert from "node:assert/strict";
import {
  ArgumentError,
  enableGrad,
  noGrad,
  NonFiniteError,
  pde,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  train,
  useBackend,
} from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";
import { ImplicitAdjoint } from "../src/solve/adjoint.ts";
import { assertClose } from "./helpers.ts";

useBackend("cpu");
const f64 = { dtype: "float64" as const };

/** Periodic heat with the mollifier: no IC or BC rows, so M = N points make a square system. */
function periodicHeat(nt = 9, nx = 16, n = 6) {
  const heat = new pde.Heat1D({ boundary: "periodic", kappa: 0.05, modes: 3 });
  const grid = heat.grid({ nt, nx });
  const layer = new pde.HardConstraint({
    problem: heat,
    grid,
    basis: n,
    initialCondition: "mollifier",
    solver: new LevenbergMarquardt({ atol: 1e-13, rtol: 1e-13, maxSteps: 100 }),
  });
  return { heat, grid, layer };
}

Deno.test("hard constraint: the PDE residual vanishes at the sampled points (linear and Navier–Stokes)", () => {
  const { heat, grid, layer } = periodicHeat();
  const phi = randn([2, 9, 16, 6], { ...f64, seed: 1 });
  const u0 = heat.initialConditions(2, grid, f64);
  const points = new pde.Router(grid, [1, 1]).sample(6, [3, 0]);
  const { u, result } = noGrad(() => layer.forward(phi, u0, points));
  assert.deepEqual(result.status, ["converged", "converged"]);
  for (const r of result.residualNorm) assert.ok(r < 1e-9, `‖r‖ = ${r}`);
  // The finite-difference residual of the stitched u at those points is the solver's residual.
  const atPoints = pde.gatherPoints(heat.residual(u, grid), grid, tensor(points[0], { dtype: "int32" }));
  assert.ok(atPoints.abs().max().item() < 1e-9);
  // …and the mollifier keeps the initial condition exactly.
  assert.ok(heat.initialResidual(u, grid, u0).abs().max().item() < 1e-12);

  // Nonlinear, with derived fields (velocity from vorticity), mean-free mollified basis.
  const ns = new pde.NavierStokes2D({ nu: 1e-3 });
  const g2 = ns.grid({ nt: 5, nx: 8, T: 0.2 });
  const nsLayer = new pde.HardConstraint({
    problem: ns,
    grid: g2,
    basis: 8,
    initialCondition: "mollifier",
    meanFree: true,
    solver: new LevenbergMarquardt({ atol: 1e-12, rtol: 1e-12, maxSteps: 200 }),
  });
  assert.deepEqual(nsLayer.symbols.map((s) => s.name), ["w_t", "u", "w_x", "v", "w_y", "lap_w"]);
  const w0 = ns.initialConditions(1, g2, f64);
  const pts = new pde.Router(g2, [1, 1, 1]).sample(8, [0, 0]);
  const out = noGrad(() => nsLayer.forward(randn([1, 5, 8, 8, 8], { ...f64, seed: 2 }).mul(0.1), w0, pts));
  assert.equal(out.result.status[0], "converged");
  const r = pde.gatherPoints(ns.residual(out.u, g2), g2, tensor(pts[0], { dtype: "int32" }));
  assert.ok(r.abs().max().item() < 1e-8, `NS residual at the points ${r.abs().max().item()}`);
});

Deno.test("hard constraint: implicit gradient w.r.t. the basis equals finite differences", () => {
  // Zero-residual case (square system): the Gauss–Newton adjoint is exact.
  const { heat, grid, layer } = periodicHeat(7, 12, 5);
  const u0 = heat.initialConditions(1, grid, f64);
  const points = new pde.Router(grid, [1, 1]).sample(5, [1, 1]);
  const weight = randn([1, 7, 12], { ...f64, seed: 4 });
  const lossOf = (phi: Tensor) => layer.forward(phi, u0, points).u.mul(weight).sum();
  const phi0 = randn([1, 7, 12, 5], { ...f64, seed: 5 });
  const phi = phi0.clone().requireGrad();
  enableGrad(() => lossOf(phi)).backward();
  const g = phi.grad!;
  for (let trial = 0; trial < 3; trial++) {
    const v = randn(phi0.shape, { ...f64, seed: 10 + trial });
    const eps = 1e-6;
    const fd = noGrad(() => (lossOf(phi0.add(v.mul(eps))).item() - lossOf(phi0.sub(v.mul(eps))).item()) / (2 * eps));
    const an = g.mul(v).sum().item();
    assert.ok(Math.abs(fd - an) <= 1e-6 * (1 + Math.abs(fd)), `direction ${trial}: FD ${fd} vs implicit ${an}`);
  }

  // Overdetermined rows (initial and wall rows, non-zero residual): the exact-Hessian adjoint.
  const heatD = new pde.Heat1D({ kappa: 0.05, modes: 3 });
  const gridD = heatD.grid({ nt: 7, nx: 10 });
  const exact = new pde.HardConstraint({
    problem: heatD,
    grid: gridD,
    basis: 4,
    solver: new LevenbergMarquardt({ atol: 1e-14, rtol: 1e-14, maxSteps: 200 }),
    adjoint: new ImplicitAdjoint({ hessian: "exact" }),
  });
  const u0d = heatD.initialConditions(1, gridD, f64);
  const ptsD = new pde.Router(gridD, [1, 1]).sample(8, [2, 2]);
  const wD = randn([1, 7, 10], { ...f64, seed: 6 });
  const lossD = (phi: Tensor) => exact.forward(phi, u0d, ptsD).u.mul(wD).sum();
  const p0 = randn([1, 7, 10, 4], { ...f64, seed: 7 }).mul(0.3);
  const p = p0.clone().requireGrad();
  enableGrad(() => lossD(p)).backward();
  const v = randn(p0.shape, { ...f64, seed: 8 });
  const eps = 1e-6;
  const fd = noGrad(() => (lossD(p0.add(v.mul(eps))).item() - lossD(p0.sub(v.mul(eps))).item()) / (2 * eps));
  const an = p.grad!.mul(v).sum().item();
  assert.ok(Math.abs(fd - an) <= 1e-5 * (1 + Math.abs(fd)), `exact-Hessian adjoint: FD ${fd} vs implicit ${an}`);
});

function dirichletSetup(experts: number[], n = 6, points = 24, conditions: "global" | "local" = "global") {
  const heat = new pde.Heat1D({ kappa: 0.05, modes: 3 });
  const grid = heat.grid({ nt: 11, nx: 16 });
  const layer = new pde.HardConstraint({
    problem: heat,
    grid,
    basis: n,
    conditions,
    solver: new LevenbergMarquardt({ atol: 1e-12, rtol: 1e-12, maxSteps: 100 }),
  });
  const moe = new pde.MixtureOfExperts({ constraint: layer, experts, points, seed: 3 });
  const u0 = heat.initialConditions(2, grid, { ...f64, seed: 2 });
  const loss = (u: Tensor) => pde.pdeLoss(heat, grid, u, u0).loss;
  return { heat, grid, layer, moe, u0, loss };
}

Deno.test("router: every grid point belongs to exactly one expert; stitched u matches each expert's field", () => {
  const { grid, layer, moe, u0 } = dirichletSetup([2, 2]);
  const router = moe.router;
  const table = router.assign();
  assert.equal(table.length, grid.size);
  const counts = new Array(router.count).fill(0);
  table.forEach((k, i) => {
    assert.equal(router.expertOf(i), k);
    counts[k]++;
  });
  counts.forEach((c, k) => assert.equal(c, router.regionSize(k)));
  assert.equal(counts.reduce((a, b) => a + b, 0), grid.size);
  // Sampled points stay in their expert's box and are distinct.
  const pts = moe.samplePoints(7);
  pts.forEach((p, k) => {
    assert.equal(new Set(p).size, p.length);
    for (const i of p) assert.equal(table[i], k);
  });
  assert.deepEqual(moe.samplePoints(7), pts); // a pure function of (seed, step)
  // Uneven splits: remainders go to the first blocks.
  assert.deepEqual(new pde.Router([11, 16], [2, 3]).regions[0], [[0, 6], [0, 6]]);

  const phi = randn([2, 11, 16, 6], { ...f64, seed: 9 });
  const out = noGrad(() => moe.forward(phi, u0, pts));
  router.regions.forEach((region, k) => {
    const block = noGrad(() => layer.expertField(out.features, out.w.narrow(0, 2 * k, 2), region));
    let part = out.u;
    region.forEach(([a, z], i) => part = part.narrow(1 + i, a, z - a));
    assertClose(part.toTypedArray(), block.toTypedArray(), { atol: 1e-14, rtol: 1e-14, scale: "max" }, `expert ${k}`);
  });
});

Deno.test("MoE with K = 1 equals PI-HC (loss, prediction and gradients)", () => {
  const { layer, moe, u0, loss } = dirichletSetup([1, 1], 6, 40);
  const phi0 = randn([2, 11, 16, 6], { ...f64, seed: 11 });
  const pts = moe.samplePoints(0);
  const a = phi0.clone().requireGrad();
  const hc = enableGrad(() => layer.forward(a, u0, pts));
  const la = enableGrad(() => loss(hc.u));
  la.backward();
  const b = phi0.clone().requireGrad();
  const step = moe.lossAndBackward(b, u0, pts, loss);
  assert.ok(Math.abs(step.loss - la.item()) <= 1e-12 * la.item());
  assertClose(step.u.toTypedArray(), hc.u.toTypedArray(), { atol: 1e-12, rtol: 1e-12, scale: "max" }, "u");
  assertClose(b.grad!.toTypedArray(), a.grad!.toTypedArray(), { atol: 1e-8, rtol: 1e-8, scale: "max" }, "∂L/∂Φ");
});

Deno.test("expert-by-expert backward (independentBackward) equals one backward through all experts", () => {
  for (const conditions of ["global", "local"] as const) {
    const { moe, u0, loss, grid, layer } = dirichletSetup([2, 2], 6, 24, conditions);
    const net = new pde.PdeNetwork(grid, 6, { width: 6, modes: 3, layers: 2, fc: 8, seed: 1 });
    const pts = moe.samplePoints(1);
    // One graph through every expert (the batched solve's implicit adjoint).
    const ref = enableGrad(() => loss(moe.forward(net.forward(u0), u0, pts).u));
    ref.backward();
    const want = net.parameters().map((p) => p.grad!.toTypedArray().slice());
    net.zeroGrad();
    // Expert by expert.
    const watch = new train.Stopwatch();
    const step = moe.lossAndBackward(net.forward(u0), u0, pts, loss, { onPhase: watch.lap });
    assert.ok(Math.abs(step.loss - ref.item()) <= 1e-12 * ref.item());
    assert.equal(step.solve.problems, 8);
    net.parameters().forEach((p, i) =>
      assertClose(
        p.grad!.toTypedArray(),
        want[i],
        { atol: 1e-8, rtol: 1e-8, scale: "max" },
        `${conditions}: parameter ${i}`,
      )
    );
    assert.ok(watch.ms.solve > 0 && watch.ms.experts > 0);
    // Local conditions: an expert keeps only the initial and wall rows inside its box.
    const rows = layer.layout(pts, moe.router.regions);
    if (conditions === "local") {
      const kept = [0, 1, 2, 3].map((k) =>
        rows.mask!.subarray(k * rows.rows, (k + 1) * rows.rows).reduce((a, b) => a + b)
      );
      // Expert 0 (early times, left half): 24 points + 8 initial rows + 5 left-wall rows (t1..t5).
      assert.deepEqual(kept, [24 + 8 + 5, 24 + 8 + 5, 24 + 5, 24 + 5]);
    } else {
      assert.equal(rows.mask, null);
    }
  }
});

/** Per expert of a split along x only, a `[nt, nx]` mask of the columns `cols(k)`. */
function columnMasks(grid: pde.Grid, count: number, cols: (k: number) => number[]): Tensor[] {
  const [nt, nx] = grid.shape;
  return Array.from({ length: count }, (_, k) => {
    const m = new Float64Array(nt * nx);
    for (const c of cols(k)) for (let t = 0; t < nt; t++) m[t * nx + c] = 1;
    return tensor(m, f64).reshape(grid.shape);
  });
}

Deno.test("expert-owned residual: expert-by-expert backward equals one graph through every expert's own field", () => {
  const { moe, u0, grid, layer, heat } = dirichletSetup([1, 2], 6, 24);
  const net = new pde.PdeNetwork(grid, 6, { width: 6, modes: 3, layers: 2, fc: 8, seed: 1 });
  const pts = moe.samplePoints(2);
  const b = u0.shape[0];
  const whole = grid.shape.map((n): [number, number] => [0, n]);
  // 16 columns split 8 | 8: boxes 0..7 and 8..15; each halo is the neighbour's first column.
  const masks = columnMasks(grid, 2, (k) => Array.from({ length: 8 }, (_, i) => 8 * k + i));
  const halos = columnMasks(grid, 2, (k) => [k === 0 ? 8 : 7]);
  const weights = { interface: 3 };
  // One graph: each expert's field Φ·w_k on the whole grid, its residual kept on its own box.
  const ref = enableGrad(() => {
    const out = moe.forward(net.forward(u0), u0, pts);
    const fields = masks.map((_, k) => layer.expertField(out.features, out.w.narrow(0, k * b, b), whole));
    const terms = pde.pdeLoss(heat, grid, out.u, u0, weights, { fields, masks, halos });
    // The owned residual differs from the stitched one: the stitched u jumps between the experts.
    const stitched = pde.pdeLoss(heat, grid, out.u, u0).pde.item();
    assert.ok(Math.abs(stitched - terms.pde.item()) > 1e-6 * stitched);
    // The interface term, by hand: RMS over both halo columns of the two fields' difference.
    const diff = fields[0].sub(fields[1]).toTypedArray();
    let sq = 0;
    for (let s = 0; s < b; s++) {
      for (let t = 0; t < 11; t++) for (const c of [7, 8]) sq += diff[(s * 11 + t) * 16 + c] ** 2;
    }
    assertClose(
      [terms.interface!.item()],
      [Math.sqrt(sq / (b * 11 * 2))],
      { atol: 1e-12, rtol: 1e-12, scale: "max" },
      "interface term",
    );
    assert.ok(terms.interface!.item() > 0);
    return terms.loss;
  });
  ref.backward();
  const want = net.parameters().map((p) => p.grad!.toTypedArray().slice());
  net.zeroGrad();
  let given: pde.ExpertFields | undefined;
  const step = moe.lossAndBackward(
    net.forward(u0),
    u0,
    pts,
    (u, experts) => {
      given = experts;
      return pde.pdeLoss(heat, grid, u, u0, weights, experts).loss;
    },
  );
  // The mixture's own masks and halos are the ones written out above.
  given!.masks.forEach((m, k) => assert.deepEqual(m.toTypedArray(), masks[k].toTypedArray()));
  given!.halos.forEach((h, k) => assert.deepEqual(h.toTypedArray(), halos[k].toTypedArray()));
  assert.ok(Math.abs(step.loss - ref.item()) <= 1e-12 * ref.item());
  net.parameters().forEach((p, i) =>
    assertClose(p.grad!.toTypedArray(), want[i], { atol: 1e-8, rtol: 1e-8, scale: "max" }, `parameter ${i}`)
  );
  // A residual that is the same for every expert reduces to the stitched one, with no interface term.
  const u = heat.generateDataset({ n: 1, nx: 16, nt: 11, dtype: "float64" }).u;
  const u1 = u.narrow(1, 0, 1).squeeze(1);
  const same = pde.pdeLoss(heat, grid, u, u1, weights, { fields: [u, u], masks, halos });
  assertClose([same.pde.item()], [pde.pdeLoss(heat, grid, u, u1).pde.item()], {
    atol: 1e-14,
    rtol: 1e-14,
    scale: "max",
  }, "same fields");
  assert.ok(same.interface!.item() < 1e-14);
  assert.throws(() => pde.pdeLoss(heat, grid, u, u0, {}, { fields: [u], masks, halos }), ArgumentError);
  assert.throws(
    () => pde.pdeLoss(heat, grid, u, u0, { interface: -1 }),
    (e: unknown) =>
      e instanceof ArgumentError && /weights.interface must be a finite number ≥ 0, got -1/.test(e.message),
  );
  assert.throws(
    () => pde.createMethod("moe", { problem: heat, grid, residual: "blocks" as never }),
    (e: unknown) => e instanceof ArgumentError && /residual must be "expert" or "stitched"/.test(e.message),
  );
});

Deno.test("expert halos: the neighbours' cells one step beyond each box, across a periodic wrap too", () => {
  const { heat, grid, layer } = periodicHeat(9, 16, 6);
  const moe = new pde.MixtureOfExperts({ constraint: layer, experts: [2, 2], points: 8, seed: 1 });
  const u0 = heat.initialConditions(1, grid, f64);
  let halos: readonly Tensor[] = [];
  moe.lossAndBackward(randn([1, 9, 16, 6], { ...f64, seed: 4 }), u0, moe.samplePoints(0), (u, experts) => {
    halos = experts.halos;
    return u.square().mean();
  });
  // Boxes: t 0..4 | 5..8, x 0..7 | 8..15. Expert 0's halo: t = 5 under its columns (expert 2),
  // x = 8 and, across the periodic wrap, x = 15 beside its rows (expert 1); never a diagonal cell.
  const want = new Set<number>();
  for (let x = 0; x < 8; x++) want.add(5 * 16 + x);
  for (let t = 0; t < 5; t++) want.add(t * 16 + 8).add(t * 16 + 15);
  const got = halos[0].toTypedArray();
  got.forEach((v, i) => assert.equal(v, want.has(i) ? 1 : 0, `cell t ${Math.floor(i / 16)}, x ${i % 16}`));
  // Every halo cell belongs to another expert, and each box's cells next to a split are some halo.
  assert.equal(halos.length, 4);
  halos.forEach((h, k) => h.toTypedArray().forEach((v, i) => v && assert.notEqual(moe.router.expertOf(i), k)));
});

Deno.test("bad input gives typed errors with clear messages", () => {
  const { layer, moe, u0, grid } = dirichletSetup([1, 2], 6, 24);
  // An expert with fewer sampled points than basis functions.
  assert.throws(
    () => new pde.MixtureOfExperts({ constraint: layer, experts: [1, 2], points: 4 }),
    (e: unknown) => e instanceof ArgumentError && /4 points but there are N = 6 basis functions/.test(e.message),
  );
  assert.throws(
    () => layer.layout([Int32Array.from([1, 2, 3])]),
    (e: unknown) => e instanceof ArgumentError && /at least N/.test(e.message),
  );
  // More points than an expert's box holds.
  assert.throws(
    () => new pde.MixtureOfExperts({ constraint: layer, experts: [1, 2], points: 100 }),
    (e: unknown) => e instanceof ArgumentError && /has only 88 grid points/.test(e.message),
  );
  // Grid / network shape mismatches.
  assert.throws(
    () => layer.features(randn([2, 11, 15, 6], f64), u0),
    (e: unknown) => e instanceof ShapeError && /expected \[B, 11, 16, 6\]/.test(e.message),
  );
  assert.throws(
    () => layer.features(randn([2, 11, 16, 5], f64), u0),
    (e: unknown) => e instanceof ShapeError && /built for N = 6/.test(e.message),
  );
  assert.throws(() => new pde.PdeNetwork(grid, 4, { width: 4, modes: 2 }).forward(randn([2, 15])), ShapeError);
  assert.throws(() => pde.parseExperts("1x2", 3), ArgumentError);
  // NaN in the basis: the solves say so.
  const bad = randn([2, 11, 16, 6], f64).mul(tensor([1, 1, 1, 1, 1, NaN], f64));
  assert.throws(
    () => moe.predict(bad, u0, moe.samplePoints(0)),
    (e: unknown) => e instanceof NonFiniteError && /NaN or Inf/.test(e.message),
  );
  // Non-converged solves: reported, or raised with strict.
  const tight = new pde.HardConstraint({
    problem: layer.problem,
    grid,
    basis: 6,
    solver: new LevenbergMarquardt({ atol: 1e-15, rtol: 1e-15, maxSteps: 1 }),
  });
  const lax = new pde.MixtureOfExperts({ constraint: tight, experts: [1, 2], points: 24 });
  const phi = randn([2, 11, 16, 6], f64);
  const p = lax.predict(phi, u0, lax.samplePoints(0));
  assert.ok(p.solve.converged < p.solve.problems);
  assert.match(p.solve.failed[0].status, /max_steps/);
  const strict = new pde.MixtureOfExperts({ constraint: tight, experts: [1, 2], points: 24, strict: true });
  assert.throws(
    () => strict.predict(phi, u0, strict.samplePoints(0)),
    (e: unknown) => e instanceof pde.ExpertSolveError && /expert 0 sample 0: max_steps/.test(e.message),
  );
  // NaN in the data.
  assert.throws(
    () => pde.checkFinite("train.u0", tensor([[0, 1], [NaN, 2]])),
    (e: unknown) => e instanceof NonFiniteError && /sample 1/.test(e.message),
  );
});

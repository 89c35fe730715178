/**
 * The built-in PDE problems and their reference solvers: convergence under refinement at the
 * expected order (error against a finer solution or an exact one), conservation and energy checks,
 * the finite-difference residual of the reference solutions shrinking at second order, boundary
 * conditions, seeded datasets, and the random fields the initial conditions come from.
 *
 * Grids are small so each test takes at most a few seconds on one CPU core.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../mod.ts";
import {
  Burgers1D,
  DiffusionSorption,
  gaussianRandomField2D,
  type Grid1D,
  type Grid2D,
  Heat1D,
  Heat2D,
  NavierStokes2D,
  parseResidual,
  periodicKernelField2D,
} from "../src/pde/mod.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function maxAbs(t: Tensor): number {
  return t.abs().max().item();
}

function rms(t: Tensor): number {
  return t.square().mean().sqrt().item();
}

function ratios(errors: number[]): number[] {
  return errors.slice(1).map((e, i) => errors[i] / e);
}

function report(name: string, errors: number[]): number[] {
  const r = ratios(errors);
  console.log(
    `  ${name}: errors ${errors.map((e) => e.toExponential(2)).join(", ")}; ratios ${r.map((q) => q.toFixed(2))}`,
  );
  return r;
}

function inRange(values: number[], lo: number, hi: number, what: string): void {
  assert.ok(values.every((v) => v > lo && v < hi), `${what}: ${values.map((v) => v.toFixed(2))} not in (${lo}, ${hi})`);
}

/** A float64 field [1, nx(, ny)] from a function of the space coordinates. */
function onGrid1(grid: Grid1D, f: (x: number) => number): Tensor {
  return tensor([Array.from(grid.x.points(), f)], { dtype: "float64" });
}

function onGrid2(grid: Grid2D, f: (x: number, y: number) => number): Tensor {
  const xs = grid.x.points();
  const ys = grid.y.points();
  const host = new Float64Array(xs.length * ys.length);
  xs.forEach((x, i) => ys.forEach((y, j) => (host[i * ys.length + j] = f(x, y))));
  return tensor(host, { shape: [1, xs.length, ys.length], dtype: "float64" });
}

/** The interior of a 1D field [.., nt, nx]: drops `k` points at each end of every axis. */
function interior(t: Tensor, k: number): Tensor {
  let out = t;
  for (const axis of [-2, -1]) out = out.narrow(axis, k, out.shape[out.ndim + axis] - 2 * k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The built-ins are written as expressions

Deno.test("built-in problems parse their residuals through the user path", () => {
  const problems = [new Heat1D(), new Burgers1D(), new Heat2D(), new DiffusionSorption(), new NavierStokes2D()];
  for (const p of problems) {
    const again = parseResidual(p.residualSource, {
      fields: p.fields,
      parameters: p.parameters,
      definitions: p.definitions,
      dims: p.dims,
    });
    assert.equal(p.expression.text, again.text, p.name);
    assert.ok(p.expression.unknowns.length > 0);
  }
  const ds = new DiffusionSorption();
  assert.deepEqual(ds.parameters, { D: 5e-4, phi: 0.29, rho_s: 2880, k_f: 3.5e-4, n_f: 0.874 });
  assert.deepEqual(ds.grid().shape, [101, 1024]);
  assert.equal(ds.grid().t.spacing, 5);
  const ns = new NavierStokes2D();
  assert.deepEqual(ns.parameters, { nu: 1e-4, F: 0 });
  assert.deepEqual(ns.grid().shape, [64, 64, 64]);
  assert.equal(ns.grid().t.end, 5);
  assert.deepEqual(new NavierStokes2D({ preset: "fno" }).parameters, { nu: 1e-3, F: 0.1 });
});

// ---------------------------------------------------------------------------------------------
// Heat 1D

Deno.test("heat 1D: Crank–Nicolson converges at second order to the exact solution; exact residual O(h²)", () => {
  for (const boundary of ["dirichlet", "periodic"] as const) {
    const heat = new Heat1D({ boundary, modes: 3 });
    const errs: number[] = [];
    const res: number[] = [];
    for (const n of [32, 64, 128]) {
      const g = heat.grid({ nx: boundary === "dirichlet" ? n + 1 : n, nt: n / 2 + 1, T: 0.1 });
      const u0 = heat.initialConditions(2, g, { dtype: "float64", seed: 1 });
      const exact = heat.solve(u0, g);
      errs.push(maxAbs(heat.solve(u0, g, { method: "crank-nicolson", steps: 4 }).sub(exact)));
      // Inside: on the walls the sine series has u = u_xx = u_xxxx = 0, so the one-sided stencil's
      // error is a higher-order term there and the wall values converge faster than the rest.
      const r = heat.residual(exact, g);
      res.push(maxAbs(boundary === "dirichlet" ? r.narrow(-1, 1, g.x.n - 2) : r));
    }
    inRange(report(`heat ${boundary} CN error`, errs), 3.5, 4.5, "CN ratios");
    inRange(report(`heat ${boundary} FD residual of exact`, res), 3.3, 4.7, "residual ratios");
  }
});

Deno.test("heat 1D: exact solver reproduces modes, holds the walls, conserves the periodic mean, dissipates energy", () => {
  const heat = new Heat1D({ kappa: 0.1 });
  const g = heat.grid({ nx: 33, nt: 5, T: 0.4 });
  const u0 = onGrid1(g, (x) => Math.sin(Math.PI * x) - 0.5 * Math.sin(3 * Math.PI * x));
  const u = heat.solve(u0, g);
  const ts = g.t.points();
  const want = tensor(
    [Array.from(ts, (t) =>
      Array.from(
        g.x.points(),
        (x) =>
          Math.exp(-0.1 * Math.PI ** 2 * t) * Math.sin(Math.PI * x) -
          0.5 * Math.exp(-0.9 * Math.PI ** 2 * t) * Math.sin(3 * Math.PI * x),
      ))],
    { dtype: "float64" },
  );
  assert.ok(maxAbs(u.sub(want)) < 1e-12);
  const bc = heat.boundaryResiduals(u, g);
  assert.ok(maxAbs(bc.left) < 1e-12 && maxAbs(bc.right) < 1e-12);
  const per = new Heat1D({ boundary: "periodic" });
  const gp = per.grid({ nx: 32, nt: 6 });
  const up = per.solve(per.initialConditions(3, gp, { dtype: "float64", seed: 2 }), gp);
  const mean = up.mean(-1).toTypedArray();
  const energy = up.square().mean(-1).toTypedArray();
  for (let s = 0; s < 3; s++) {
    for (let j = 1; j < 6; j++) {
      assert.ok(Math.abs(mean[s * 6 + j] - mean[s * 6]) < 1e-12);
      assert.ok(energy[s * 6 + j] < energy[s * 6 + j - 1]);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Burgers 1D

Deno.test("Burgers: fourth order in time, spectral in space, mean conserved, energy decays", () => {
  const b = new Burgers1D({ nu: 0.02 });
  const g = b.grid({ nx: 64, nt: 3, T: 0.4 });
  const u0 = b.initialConditions(2, g, { dtype: "float64", seed: 3 });
  const ref = b.solve(u0, g, { steps: 320 });
  const errs = [10, 20, 40].map((steps) => maxAbs(b.solve(u0, g, { steps }).sub(ref)));
  inRange(report("Burgers IFRK4 time error", errs), 11, 20, "time ratios");
  // Space: the same initial condition on 16, 32, 48 points against 96 (all sample the same sines).
  const smooth = new Burgers1D({ nu: 0.05 });
  const fine = smooth.grid({ nx: 96, nt: 3, T: 0.4 });
  const uf = smooth.solve(smooth.initialConditions(1, fine, { dtype: "float64", seed: 3 }), fine, { steps: 80 });
  const spaceErrs = [16, 32, 48].map((nx) => {
    const gc = smooth.grid({ nx, nt: 3, T: 0.4 });
    const uc = smooth.solve(smooth.initialConditions(1, gc, { dtype: "float64", seed: 3 }), gc, { steps: 80 });
    return maxAbs(uc.sub(uf.slice([null, null, [0, null, 96 / nx]])));
  });
  const r = report("Burgers spectral space error", spaceErrs);
  assert.ok(r[0] > 50 && r[1] > 50, "faster than any fixed order");
  const mean = ref.mean(-1).toTypedArray();
  const energy = ref.square().mean(-1).toTypedArray();
  for (let s = 0; s < 2; s++) {
    for (let j = 1; j < 3; j++) {
      assert.ok(Math.abs(mean[s * 3 + j] - mean[s * 3]) < 1e-13);
      assert.ok(energy[s * 3 + j] < energy[s * 3 + j - 1]);
    }
  }
});

Deno.test("Burgers: the finite-difference residual of the reference solution shrinks at second order", () => {
  const b = new Burgers1D({ nu: 0.05 });
  const res = [32, 64, 128].map((nx) => {
    const g = b.grid({ nx, nt: nx + 1, T: 0.25 });
    const u0 = onGrid1(g, (x) => 0.3 * (Math.sin(2 * Math.PI * x) + 0.5 * Math.cos(4 * Math.PI * x)));
    return maxAbs(b.residual(b.solve(u0, g, { steps: 2 }), g));
  });
  inRange(report("Burgers FD residual", res), 3.3, 4.7, "residual ratios");
  const d = b.generateDataset({ n: 3, seed: 7, nx: 32, solveNx: 64, nt: 5, T: 0.2, dtype: "float64", batchSize: 2 });
  assert.deepEqual(d.u.shape, [3, 5, 32]);
  assert.deepEqual(d.u0.shape, [3, 32]);
  assert.ok(maxAbs(d.u.narrow(1, 0, 1).squeeze(1).sub(d.u0)) < 1e-12);
  const again = b.generateDataset({ n: 3, seed: 7, nx: 32, solveNx: 64, nt: 5, T: 0.2, dtype: "float64" });
  assert.ok(maxAbs(again.u.sub(d.u)) < 1e-12);
});

// ---------------------------------------------------------------------------------------------
// Heat 2D

Deno.test("heat 2D: exact on Fourier modes, residual O(h²), mean conserved", () => {
  const heat = new Heat2D({ kappa: 0.02 });
  const g = heat.grid({ nx: 16, nt: 4, T: 0.5 });
  const u = heat.solve(onGrid2(g, (x, y) => Math.sin(2 * Math.PI * x) * Math.cos(4 * Math.PI * y) + 1), g);
  const ts = g.t.points();
  const decay = (t: number) => Math.exp(-0.02 * 20 * Math.PI * Math.PI * t);
  const want = tensor(
    Array.from(ts, (t) => (onGrid2(g, (x, y) => decay(t) * Math.sin(2 * Math.PI * x) * Math.cos(4 * Math.PI * y) + 1)
      .squeeze(0).toArray())) as number[][][],
    { dtype: "float64" },
  );
  assert.ok(maxAbs(u.squeeze(0).sub(want)) < 1e-12);
  const res = [16, 32, 64].map((n) => {
    const gg = heat.grid({ nx: n, nt: n + 1, T: 0.5 });
    const u0 = onGrid2(gg, (x, y) => Math.exp(0.5 * Math.sin(2 * Math.PI * x) + 0.3 * Math.cos(2 * Math.PI * y)));
    return maxAbs(heat.residual(heat.solve(u0, gg), gg));
  });
  inRange(report("heat 2D FD residual", res), 3.3, 4.7, "residual ratios");
  const d = heat.generateDataset({ n: 2, seed: 1, nx: 16, nt: 3, dtype: "float64" });
  const m = d.u.mean([2, 3]).toTypedArray();
  assert.ok(Math.abs(m[1] - m[0]) < 1e-12 && Math.abs(m[5] - m[3]) < 1e-12);
});

// ---------------------------------------------------------------------------------------------
// Diffusion–sorption

/** Cell averages of groups of `f` fine cells (restriction to a coarser cell-centred grid). */
function restrict(u: Tensor, f: number): Tensor {
  const s = u.shape;
  return u.reshape([...s.slice(0, -1), s[s.length - 1] / f, f]).mean(-1);
}

Deno.test("diffusion–sorption: BDF2 is second order in time", () => {
  const ds = new DiffusionSorption();
  const g = ds.grid({ nx: 32, nt: 4, T: 30 });
  const u0 = ds.initialConditions(2, g, { dtype: "float64", seed: 0 });
  const ref = ds.solve(u0, g, { steps: 160 });
  const errs = [10, 20, 40].map((steps) => maxAbs(ds.solve(u0, g, { steps }).sub(ref)));
  inRange(report("diffusion-sorption BDF2 time error", errs), 3.4, 4.8, "time ratios");
});

Deno.test("diffusion–sorption: first order in space with PDEBench's ghost cells, second with face conditions", () => {
  const ds = new DiffusionSorption();
  const T = 20;
  for (const [boundary, lo, hi] of [["pdebench", 1.6, 2.6], ["face", 3.4, 5.2]] as const) {
    const gf = ds.grid({ nx: 256, nt: 3, T });
    const uf = ds.solve(ds.initialConditions(1, gf, { dtype: "float64", seed: 4 }), gf, { steps: 40, boundary });
    const errs = [16, 32, 64].map((nx) => {
      const g = ds.grid({ nx, nt: 3, T });
      const u = ds.solve(ds.initialConditions(1, g, { dtype: "float64", seed: 4 }), g, { steps: 40, boundary });
      return rms(u.sub(restrict(uf, 256 / nx)));
    });
    inRange(report(`diffusion-sorption space error (${boundary})`, errs), lo, hi, `${boundary} ratios`);
  }
});

Deno.test("diffusion–sorption: bounds, monotone inflow, boundary conditions and interior residual", () => {
  const ds = new DiffusionSorption();
  const bcMax: Record<string, number[]> = { left: [], right: [] };
  for (const nx of [32, 128]) {
    const d = ds.generateDataset({ n: 2, seed: 3, nx, nt: 11, T: 100, dtype: "float64" });
    const u = d.u;
    assert.deepEqual(u.shape, [2, 11, nx]);
    const level = d.u0.toTypedArray();
    assert.ok(level[0] > 0 && level[0] < 0.2 && level[0] === level[nx - 1]);
    assert.ok(u.min().item() >= 0 && u.max().item() <= 1);
    // The concentration next to the inflow rises monotonically towards 1.
    const first = u.narrow(2, 0, 1).toTypedArray();
    for (let j = 1; j < 11; j++) assert.ok(first[j] > first[j - 1] && first[j] > 0.5 && first[j] < 1);
    // The wall conditions hold at PDEBench's ghost centres, one cell outside the first and last
    // centres: extrapolated there (u − h·u_x − 1, u + (h + D)·u_x) the residuals vanish faster than
    // dx, while u − 1 at the first centre itself misses by about h/2·u_x.
    const bc = ds.boundaryResiduals(u, d.grid);
    for (const k of ["left", "right"]) bcMax[k].push(maxAbs(bc[k].narrow(1, 2, 9)));
    const atCentre = maxAbs(u.narrow(1, 2, 9).narrow(2, 0, 1).sub(1));
    assert.ok(maxAbs(bc.left.narrow(1, 2, 9)) < 0.1 * atCentre, "ghost-centre residual ≪ first-centre miss");
    // The FD residual u_t − D/R(u)·u_xx is small inside, after the initial layer.
    const r = interior(ds.residual(u, d.grid).narrow(1, 2, 9), 2);
    const ut = interior((ds.terms(u, d.grid).u_t as Tensor).narrow(1, 2, 9), 2);
    assert.ok(maxAbs(r) < 0.05 * maxAbs(ut), `residual ${maxAbs(r)} vs u_t ${maxAbs(ut)}`);
  }
  inRange(ratios(bcMax.left), 12, Infinity, "left wall residual shrinks faster than dx²·(3/4)");
  inRange(ratios(bcMax.right), 12, Infinity, "right wall residual shrinks faster than dx²·(3/4)");
});

// ---------------------------------------------------------------------------------------------
// Navier–Stokes

Deno.test("Navier–Stokes: exact decay of a single-shell vorticity, with and without forcing", () => {
  for (const F of [0, 0.1]) {
    const ns = new NavierStokes2D({ nu: 0.01, forcing: F });
    const g = ns.grid({ nx: 16, nt: 3, T: 1 });
    const w0f = (x: number, y: number) => Math.cos(2 * Math.PI * (x + y)) + 0.5 * Math.sin(2 * Math.PI * (x - y));
    const lam = 0.01 * 8 * Math.PI * Math.PI; // ν|k|², |k|² = 8π² on the shell
    const exact = (t: number) =>
      onGrid2(g, (x, y) => {
        const s = 2 * Math.PI * (x + y);
        return Math.exp(-lam * t) * w0f(x, y) + ((1 - Math.exp(-lam * t)) / lam) * F * (Math.sin(s) + Math.cos(s));
      });
    const errs = [0.05, 0.025].map((dt) => {
      const w = ns.solve(onGrid2(g, w0f), g, { dt });
      return maxAbs(w.narrow(1, 2, 1).squeeze(1).sub(exact(1)));
    });
    assert.ok(errs[0] < 1e-4, `forcing ${F}: error ${errs[0]}`);
    inRange(report(`NS shell (F = ${F}) Crank–Nicolson error`, errs), 3.5, 4.5, "CN ratios");
  }
});

Deno.test("Navier–Stokes: first order in time (explicit advection), spectral in space", () => {
  const ns = new NavierStokes2D({ nu: 1e-3, forcing: 0.1, initial: { kind: "fno-grf" } });
  const g = ns.grid({ nx: 32, nt: 2, T: 0.2 });
  const w0 = ns.initialConditions(1, g, { dtype: "float64", seed: 1 });
  const ref = ns.solve(w0, g, { dt: 5e-4 });
  const errs = [0.02, 0.01, 0.005].map((dt) => maxAbs(ns.solve(w0, g, { dt }).sub(ref)));
  inRange(report("NS time error (FNO scheme)", errs), 1.7, 2.4, "time ratios");
  // Space: a smooth band-limited start, solved on 8, 16 and 32 points against 64.
  const ns2 = new NavierStokes2D({ nu: 1e-2 });
  const start = (x: number, y: number) =>
    Math.sin(2 * Math.PI * x) * Math.cos(2 * Math.PI * 2 * y) + 0.7 * Math.cos(2 * Math.PI * (x + y));
  const solveAt = (n: number) => {
    const gg = ns2.grid({ nx: n, nt: 2, T: 0.3 });
    return ns2.solve(onGrid2(gg, start), gg, { dt: 0.01 }).narrow(1, 1, 1);
  };
  const fine = solveAt(64);
  const spaceErrs = [8, 16, 32].map((n) =>
    maxAbs(solveAt(n).sub(fine.slice([null, null, [0, null, 64 / n], [0, null, 64 / n]])))
  );
  const r = report("NS space error", spaceErrs);
  assert.ok(r[0] > 10 && spaceErrs[2] < 1e-8, "spectral convergence");
});

Deno.test("Navier–Stokes: zero mean, decaying enstrophy without forcing, FD residual O(h²)", () => {
  const ns = new NavierStokes2D({ nu: 1e-3 });
  const d = ns.generateDataset({ n: 2, seed: 5, nx: 32, nt: 5, T: 0.4, dt: 2e-3, dtype: "float64" });
  assert.deepEqual(d.u.shape, [2, 5, 32, 32]);
  assert.ok(maxAbs(d.u.mean([2, 3])) < 1e-12);
  const ens = d.u.square().mean([2, 3]).toTypedArray();
  for (let s = 0; s < 2; s++) for (let j = 1; j < 5; j++) assert.ok(ens[s * 5 + j] < ens[s * 5 + j - 1]);
  const again = ns.generateDataset({ n: 2, seed: 5, nx: 32, nt: 5, T: 0.4, dt: 2e-3, dtype: "float64", batchSize: 1 });
  assert.ok(maxAbs(again.u.sub(d.u)) < 1e-12);
  // FD residual of the reference solution (a smooth start, 2 solver steps per output interval).
  const smooth = new NavierStokes2D({ nu: 1e-2 });
  const res = [16, 32, 64].map((n) => {
    const g = smooth.grid({ nx: n, nt: n / 4 + 1, T: 0.5 });
    const w0 = onGrid2(
      g,
      (x, y) => Math.sin(2 * Math.PI * x) * Math.cos(4 * Math.PI * y) + Math.cos(2 * Math.PI * (x + y)),
    );
    const w = smooth.solve(w0, g, { dt: g.t.spacing / 16 });
    return maxAbs(smooth.residual(w, g));
  });
  inRange(report("NS FD residual", res), 3.0, 4.8, "residual ratios");
});

Deno.test("Navier–Stokes datasets: FNO preset solved fine and subsampled, with forcing", () => {
  const ns = new NavierStokes2D({ preset: "fno" });
  const d = ns.generateDataset({ n: 2, seed: 0, nx: 16, solveNx: 32, nt: 3, T: 0.2, dt: 1e-2 });
  assert.deepEqual(d.u.shape, [2, 3, 16, 16]);
  assert.equal(d.u.dtype, "float32");
  assert.deepEqual(d.u0.shape, [2, 16, 16]);
  assert.ok(maxAbs(d.u.narrow(1, 0, 1).squeeze(1).sub(d.u0)) < 1e-6);
  assert.deepEqual(d.parameters, { nu: 1e-3, F: 0.1 });
});

// ---------------------------------------------------------------------------------------------
// Random fields

Deno.test("random fields: seeded, mean-free FNO GRF; periodic kernel with the right covariance", () => {
  const a = gaussianRandomField2D(2, 16, { seed: 1, dtype: "float64" });
  const b = gaussianRandomField2D(2, 16, { seed: 1, dtype: "float64" });
  assert.ok(maxAbs(a.sub(b)) === 0);
  assert.ok(maxAbs(a.mean([1, 2])) < 1e-12);
  assert.ok(maxAbs(a) > 0.01);
  // Empirical covariance of the periodic-kernel field against exp(−2 sin²(πr)/ℓ²) per axis.
  const n = 400;
  const s = 16;
  const w = periodicKernelField2D(n, s, { seed: 2, lengthScale: 0.8, dtype: "float64" }).toTypedArray();
  const k = (r: number) => Math.exp((-2 * Math.sin(Math.PI * r) ** 2) / 0.64);
  for (const [dx, dy] of [[0, 0], [4, 0], [8, 8], [2, 5]]) {
    let acc = 0;
    for (let m = 0; m < n; m++) {
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < s; j++) {
          acc += w[(m * s + i) * s + j] * w[(m * s + ((i + dx) % s)) * s + ((j + dy) % s)];
        }
      }
    }
    const cov = acc / (n * s * s);
    const want = k(dx / s) * k(dy / s);
    assert.ok(Math.abs(cov - want) < 0.1, `lag (${dx}, ${dy}): ${cov.toFixed(3)} vs ${want.toFixed(3)}`);
  }
});

/**
 * discreteSolution (src/pde/discrete_solution.ts): the field minimising a physics loss's own
 * residuals. Checked against independent facts: on the heat equation its distance from the exact
 * solution falls at second order under refinement (the finite differences' order); on
 * diffusion–sorption the objective's gradient vanishes at the result (autodiff through the same
 * residuals, no colouring) and the objective lies below the reference data's; bad input gets
 * typed errors.
 */

import assert from "node:assert/strict";
import { ArgumentError, grad, type Tensor } from "../mod.ts";
import { Burgers1D, DiffusionSorption, discreteSolution, Heat1D, NavierStokes2D, pdeLoss } from "../src/pde/mod.ts";

function relativeL2(a: Tensor, b: Tensor): number {
  return a.sub(b).norm().div(b.norm()).item();
}

Deno.test("discreteSolution: heat equation, second-order convergence to the exact solution", () => {
  const heat = new Heat1D();
  const errors: number[] = [];
  for (const [nt, nx] of [[17, 32], [33, 64], [65, 128]]) {
    const data = heat.generateDataset({ n: 2, nt, nx, T: 0.1, seed: 3, dtype: "float64" });
    const sol = discreteSolution(heat, data.grid, data.u0);
    assert.ok(sol.converged.every((c) => c), `${nt}×${nx}: converged ${sol.converged}`);
    assert.ok(
      sol.iterations <= 4,
      `a linear problem needs one Gauss–Newton step (and one to confirm), took ${sol.iterations}`,
    );
    errors.push(relativeL2(sol.u, data.u));
  }
  for (let k = 1; k < errors.length; k++) {
    const ratio = errors[k - 1] / errors[k];
    assert.ok(
      ratio > 3.5,
      `at least second order: error ratio ${ratio.toFixed(2)} per halving (errors ${
        errors.map((e) => e.toExponential(2))
      })`,
    );
  }
});

Deno.test("discreteSolution: diffusion–sorption, a stationary point of the loss below the reference's", () => {
  const ds = new DiffusionSorption();
  const T = 50;
  const data = ds.generateDataset({ n: 2, nx: 48, nt: 11, T, seed: 2, dtype: "float64" });
  const weights = { pde: T, ic: 1, bc: 1 };
  const sol = discreteSolution(ds, data.grid, data.u0, { weights, init: data.u });
  assert.ok(sol.converged.every((c) => c), `converged ${sol.converged} after ${sol.iterations}`);
  assert.deepEqual(sol.reach, { t: 2, x: 3 }); // central inside, second-order one-sided rows at the ends
  assert.equal(sol.bandwidth, 2 * 3 * 11 + 2 * 2);
  // The objective, written independently of the colouring: squared weighted RMS terms.
  const objective = (u: Tensor) => {
    const l = pdeLoss(ds, data.grid, u, data.u0, weights);
    return l.pde.mul(T).square().add(l.ic!.square()).add(l.bc!.square());
  };
  const at = (u: Tensor) => objective(u).item();
  // The gradient away from u = 0, where R(u) ∝ |u|^(n_f − 1) has a kink the minimum may sit on
  // (the coarse grid's discrete solution dips below 0 at the corner): Gauss–Newton stalls at such a
  // point with the objective converged and the smooth part of the gradient ~1e-4 of its start.
  const gradNorm = (u: Tensor) => (grad(objective)(u) as Tensor).mul(u.abs().gt(1e-8).cast("float64")).norm().item();
  assert.ok(at(sol.u) < at(data.u), `objective ${at(sol.u)} at the solution vs ${at(data.u)} at the reference`);
  const g = gradNorm(sol.u);
  const g0 = gradNorm(data.u);
  assert.ok(g < 1e-3 * g0, `gradient ${g.toExponential(2)} at the solution vs ${g0.toExponential(2)} at the reference`);
  // Per-sample objectives add up to the batch's (pdeLoss averages over the batch).
  const total = sol.loss.reduce((a, b) => a + b, 0) / sol.loss.length;
  assert.ok(Math.abs(total - at(sol.u)) < 1e-10 * at(sol.u), `${total} vs ${at(sol.u)}`);
  // From a cold start (u0 at every time) to a minimum as deep: the kink at u = 0 leaves a few
  // equally good fields that differ where the corner's undershoot crosses 0.
  const cold = discreteSolution(ds, data.grid, data.u0, { weights });
  const gap = Math.abs(at(cold.u) - at(sol.u)) / at(sol.u);
  assert.ok(gap < 1e-3, `cold start's objective ${at(cold.u)} vs ${at(sol.u)}`);
  assert.ok(relativeL2(cold.u, sol.u) < 0.02, `cold start lands ${relativeL2(cold.u, sol.u)} away`);
});

Deno.test("discreteSolution: typed errors for periodic, 2-D and mis-shaped input", () => {
  const burgers = new Burgers1D();
  const pg = burgers.grid({ nt: 5, nx: 16 });
  assert.throws(
    () => discreteSolution(burgers, pg, burgers.initialConditions(1, pg, { dtype: "float64" })),
    (e: unknown) => e instanceof ArgumentError && /periodic/.test(String(e)),
  );
  const ns = new NavierStokes2D();
  const g2 = ns.grid({ nt: 4, nx: 8 });
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => discreteSolution(ns as any, g2 as any, ns.initialConditions(1, g2, { dtype: "float64" })),
    (e: unknown) => e instanceof ArgumentError && /1D\+t/.test(String(e)),
  );
  const ds = new DiffusionSorption();
  const g = ds.grid({ nt: 5, nx: 16, T: 10 });
  const u0 = ds.initialConditions(2, g, { dtype: "float64" });
  assert.throws(
    () => discreteSolution(ds, g, u0.reshape([32])),
    (e: unknown) => e instanceof ArgumentError && /u0 must be/.test(String(e)),
  );
  assert.throws(
    () => discreteSolution(ds, g, u0, { weights: { pde: 0, ic: 0, bc: 0 } }),
    (e: unknown) => e instanceof ArgumentError && /nothing to solve/.test(String(e)),
  );
  assert.throws(() => discreteSolution(ds, g, u0, { weights: { pde: -1 } }), ArgumentError);
  assert.throws(() => discreteSolution(ds, g, u0, { maxIterations: 0 }), ArgumentError);
});

// Expert sampling in PI-HC-MoE (SpaCO's reweighting on the independent experts): the expectation of
// the sampled gradient over every possible draw, each weighted by its probability, equals the
// gradient of the step that back-propagates every expert.

import assert from "node:assert/strict";
import { ArgumentError, pde, randn, type Tensor, useBackend } from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";
import { assertClose } from "./helpers.ts";

useBackend("cpu");
const f64 = { dtype: "float64" as const };

function setup(sampledExperts?: number) {
  const heat = new pde.Heat1D({ boundary: "periodic", kappa: 0.05, modes: 3 });
  const grid = heat.grid({ nt: 9, nx: 16 });
  const constraint = new pde.HardConstraint({
    problem: heat,
    grid,
    basis: 6,
    initialCondition: "mollifier",
    solver: new LevenbergMarquardt({ atol: 1e-13, rtol: 1e-13, maxSteps: 100 }),
  });
  const moe = new pde.MixtureOfExperts({ constraint, experts: [1, 4], points: 8, seed: 3, sampledExperts });
  const u0 = heat.initialConditions(2, grid, f64);
  const phi = randn([2, 9, 16, 6], { ...f64, seed: 5 }).requireGrad();
  const loss = (u: Tensor) => pde.pdeLoss(heat, grid, u, u0).loss;
  return { moe, u0, phi, loss };
}

function subsets(k: number, t: number): number[][] {
  return Array.from({ length: 1 << k }, (_, m) => [...Array(k).keys()].filter((i) => m & (1 << i)))
    .filter((s) => s.length === t);
}

Deno.test("expert sampling: the expectation over every draw of t of K experts is the full gradient", () => {
  const { moe, u0, phi, loss } = setup();
  const points = moe.samplePoints(0);
  const full = moe.lossAndBackward(phi, u0, points, loss);
  assert.deepEqual(full.backpropagated, [0, 1, 2, 3]);
  const exact = Float64Array.from(phi.grad!.toTypedArray());
  phi.zeroGrad();
  for (const t of [1, 2, 3]) {
    const draws = subsets(4, t);
    const mean = new Float64Array(exact.length);
    let differs = 0;
    for (const subset of draws) {
      const step = moe.lossAndBackward(phi, u0, points, loss, { sampling: { mode: "fixed", count: t, subset } });
      assert.equal(step.loss, full.loss, "the loss is the whole loss");
      assert.deepEqual(step.backpropagated, subset);
      const g = phi.grad!.toTypedArray();
      g.forEach((v, i) => (mean[i] += v / draws.length));
      differs = Math.max(differs, ...Array.from(g, (v, i) => Math.abs(v - exact[i])));
      phi.zeroGrad();
    }
    assertClose(mean, exact, { atol: 1e-12, rtol: 1e-10, scale: "max" }, `t = ${t} of 4`);
    assert(differs > 1e-6, "a single draw is not the full gradient");
  }
});

Deno.test("expert sampling: sampledExperts draws t experts per step, seeded by the step; bad counts are refused", () => {
  const { moe, u0, phi, loss } = setup(2);
  assert.deepEqual(moe.expertSampling(4), moe.expertSampling(4));
  assert.notDeepEqual(moe.expertSampling(4), moe.expertSampling(5));
  const picked = new Set<string>();
  for (let step = 0; step < 6; step++) {
    const out = moe.lossAndBackward(phi, u0, moe.samplePoints(step), loss, { sampling: moe.expertSampling(step) });
    assert.equal(out.backpropagated.length, 2);
    picked.add(out.backpropagated.join(","));
    phi.zeroGrad();
  }
  assert(picked.size > 1, "the draws change with the step");
  assert.equal(setup().moe.expertSampling(0), undefined);
  assert.throws(() => setup(5), (e: Error) => e instanceof ArgumentError && e.message.includes("sampledExperts"));
});

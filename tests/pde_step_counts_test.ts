// Launches and synchronisations of one Navier–Stokes PI-HC-MoE training step, counted on the
// backend (each primitive is at least one GPU launch, each host read one wait for the device) and
// pinned phase by phase at a small size: a change that adds primitives or host reads to the step
// fails here and must be justified by lowering the pins with the change that earns it.

import assert from "node:assert/strict";
import { BackendCounter, type BackendCounts, pde, subtractCounts, tidy } from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";

/** Primitives and host reads per phase of the step (fno forward inside "features"). */
const PINS = {
  features: { primitives: 66, hostReads: 0 }, // network forward (2 Fourier layers), basis fields; points drawn on the host
  head: { primitives: 139, hostReads: 2 }, // every expert's field, the stitched u, the loss and ū; loss and metric
  experts: { primitives: 997, hostReads: 8 }, // 4 implicit backward passes, 2 reads each (loss, singular check)
  upstream: { primitives: 124, hostReads: 0 }, // the features' and the network's backward (with recompute)
};
/** Primitives of the batched Levenberg–Marquardt solve per iteration (mean over the problems). */
const SOLVE_PRIMITIVES_PER_ITERATION = 121;

Deno.test("a PI-HC-MoE Navier–Stokes step: primitives and host reads per phase are pinned", () => {
  const ns = new pde.NavierStokes2D({ preset: "pihcmoe" });
  const data = ns.generateDataset({ n: 2, nx: 8, nt: 8, T: 1, dt: 1e-3, dtype: "float64", seed: 0 });
  const method = pde.createMethod("moe", {
    problem: ns,
    grid: data.grid,
    basis: 6,
    experts: [1, 2, 2],
    points: 40,
    network: { width: 4, modes: 3, layers: 2, fc: 8, dtype: "float64", checkpoint: true },
    constraint: {
      initialCondition: "mollifier",
      mollifierScale: 0.005,
      meanFree: true,
      solver: new LevenbergMarquardt({ atol: 1e-6, rtol: 1e-6, maxSteps: 20 }),
    },
  });
  const step = (s: number) => {
    const counter = new BackendCounter().start();
    let last = counter.read();
    const phases: Record<string, BackendCounts> = {};
    const stats = tidy(() =>
      method.lossAndGrad({ u0: data.u0, u: data.u }, s, {
        onPhase: (p) => {
          const now = counter.read();
          phases[p] = subtractCounts(now, last);
          last = now;
        },
      })
    );
    counter.stop();
    return { stats, phases };
  };
  step(0); // constants (DFT matrices, masks, coordinates) are made once
  const { stats, phases } = step(1);
  for (const [phase, pin] of Object.entries(PINS)) {
    const c = phases[phase];
    assert.ok(c.primitives <= pin.primitives, `${phase}: ${c.primitives} primitives (pinned at ${pin.primitives})`);
    assert.ok(c.hostReads <= pin.hostReads, `${phase}: ${c.hostReads} host reads (pinned at ${pin.hostReads})`);
  }
  const iterations = stats.solverIterations!;
  assert.ok(iterations > 0);
  const perIteration = phases.solve.primitives / iterations;
  assert.ok(
    perIteration <= SOLVE_PRIMITIVES_PER_ITERATION,
    `solve: ${perIteration.toFixed(1)} primitives per iteration (pinned at ${SOLVE_PRIMITIVES_PER_ITERATION})`,
  );
  // One packed read per iteration, plus the start and the stationarity tests.
  assert.ok(phases.solve.hostReads <= 2 * Math.ceil(iterations) + 10, `solve: ${phases.solve.hostReads} host reads`);
});

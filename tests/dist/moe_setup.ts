// The PI-HC-MoE runs of the expert-sharding tests: the heat equation on a 17 × 24 grid, four
// experts along x, a small float64 FNO, batches of 3. The rank scripts run them with their shard
// of the experts; the tests run them whole in one process.

import * as pde from "../../src/pde/mod.ts";
import { SGD } from "../../src/optim/mod.ts";

function setup() {
  const heat = new pde.Heat1D({ kappa: 0.02, modes: 4 });
  const data = heat.generateDataset({ n: 6, nx: 24, nt: 17, seed: 3, dtype: "float64" });
  const method = pde.createMethod("moe", {
    problem: heat,
    grid: data.grid,
    basis: 8,
    experts: [1, 4],
    points: 40,
    seed: 5,
    network: { width: 8, modes: 6, layers: 2, fc: 16, seed: 1, dtype: "float64" },
    constraint: { initialCondition: "mollifier" },
  });
  return { method, data };
}

/** The method (seeded: every rank and the test build the same network) and one batch of 3. */
export function moeStep(): { method: pde.TrainingMethod; batch: pde.PdeBatch } {
  const { method, data } = setup();
  return { method, batch: pde.batchOf(data, [0, 1, 2]) };
}

/** Options of `pde.train` for 3 SGD steps of batch 3 (no test set: nothing but training). */
export function moeTraining(): pde.TrainOptions {
  const { method, data } = setup();
  return { method, optimizer: new SGD(method.model, { lr: 1e-2 }), train: data, steps: 3, batchSize: 3, logEvery: 1 };
}

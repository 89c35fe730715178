/**
 * The 1D heat equation u_t = κ u_xx (κ = 0.02, u = 0 on both walls) learned from initial
 * conditions to solutions by four methods with the same FNO and data: data-only regression, the
 * soft constraint (PI-SC), the hard constraint (PI-HC) and the hard-constraint mixture of experts
 * (PI-HC-MoE, two experts split in time by default). Runs on the CPU in under two minutes (on the GPU
 * when `PATCHWORK_BACKEND` or auto-detection picks it) and writes out/heat_1d/report.html and out/heat_1d/metrics.json.
 *
 *   deno task demo
 *   deno run -A examples/heat_1d.ts --method moe --experts 2x2 --points 96 --steps 300
 *
 * The hard-constraint layer keeps the initial condition exactly (u = u0 + (t/T)·Φw, the
 * mollifier) and solves for w at the sampled points with the walls' conditions as extra rows.
 *
 * @module
 */

import { pde } from "../mod.ts";
import { ONE_D_DEFAULTS, runExample, view1D } from "./pde_runner.ts";

const heat = new pde.Heat1D({ kappa: 0.02, modes: 4 });

await runExample({
  name: "heat_1d",
  title: "Heat equation u_t = 0.02 u_xx",
  problem: heat,
  defaults: {
    ...ONE_D_DEFAULTS,
    experts: "2x1",
    points: 128,
    steps: 150,
    nt: 21,
    nx: 32,
  },
  data: (o) => ({
    train: heat.generateDataset({ n: o.train, nt: o.nt, nx: o.nx, seed: 0, dtype: o.dtype }),
    test: heat.generateDataset({ n: o.test, nt: o.nt, nx: o.nx, seed: 1, dtype: o.dtype }),
  }),
  constraint: () => ({ initialCondition: "mollifier" }),
  view: (u, grid, router) => view1D(u, grid, router, "Test sample 0, u(t, x)"),
});

/**
 * 1D diffusion–sorption (PDEBench; PI-HC-MoE's first benchmark): u_t = D/R(u)·u_xx with
 * Freundlich sorption, u(0, t) = 1, u + D·u_x = 0 at x = 1, constant initial conditions
 * u0 ~ U(0, 0.2), on x ∈ (0, 1) (cell centres), t ∈ [0, 500] s. Trains data-only, PI-SC, PI-HC
 * and PI-HC-MoE with the same FNO and data, and writes out/diffusion_sorption/report.html and
 * metrics.json.
 *
 * Experts: 4 along x (`--experts 1x4`), as the paper. The initial and wall rows enter every
 * expert's solve with weight 1 against the PDE rows (`--row-weight`, as the reference code); with
 * the rows scaled down by 1/T (T = 500 s) instead (`--row-weight 0.002 --residual stitched`), 1×4
 * experts stalled at 76% relative L2 error at the paper's sizes after 400 steps (bench/RESULTS.md,
 * run A). PI-HC-MoE's loss takes the PDE residual at each point from the field of the expert
 * owning it (`--residual expert`, the default here): on the paper's 1024 cells the stitched field's
 * jumps between experts, differentiated twice in x, swamp a stitched residual (70% error after 1500
 * steps). An owned residual alone never sees how the experts meet (29% after 1261 steps, the error
 * right of the first interface); `--interface 100` (the default here) weighs the RMS mismatch of
 * neighbouring experts' fields on the cells either side of each interface: 6.4% after 637 steps
 * (weights 1, 10, 300, 1000: 11%, 9.3%, 7.5%, 41%), 4.55% after 2400 (PI-HC: 4.04%) and 3.81% after
 * 3905 of the paper's 4000 (PI-HC: 3.85% after 4000; paper: 3.60% and 7.55%; bench/RESULTS.md). The grid's own
 * floor under any physics-trained method is about 1.3% here (`pde.discreteSolution`, bench/pde_floor.ts). On the CPU-sized defaults (64 cells, 200 steps) PI-HC
 * reaches about 5.3% and PI-HC-MoE about 5.3% (5.8% without the interface term).
 *
 *   deno run -A examples/diffusion_sorption.ts                      # CPU sizes (a few minutes)
 *   deno run -A examples/diffusion_sorption.ts --method moe --experts 1x4 --nx 1024 --nt 101 --points 20000 \
 *     --basis 16 --width 64 --layers 5 --fc 128 --steps 4000 --batch 6 --lr 1e-3 --train 8000 --test 1000
 *                                                                 # the paper's sizes (GPU)
 *   deno run -A examples/diffusion_sorption.ts --data 1D_diff-sorp_NA_NA.h5 --train 8000 --test 1000 …
 *                                                                 # PDEBench's own solutions
 *
 * `--data` trains on the first `--train` samples of PDEBench's file and tests on its last `--test`
 * (`pde.readDiffusionSorption`), averaged onto `--nx` cells and every r-th of its 101 times: `--nx`
 * must divide 1024 and `--nt − 1` divide 100.
 *
 * The initial and boundary conditions enter every expert's solve as rows (as the reference code);
 * `--ic mollifier` makes the initial condition exact instead, and `--conditions local` gives each
 * expert only the rows inside its own box.
 *
 * @module
 */

import { pde } from "../mod.ts";
import { dataFlags, ONE_D_DEFAULTS, readSplit, runExample, view1D } from "./pde_runner.ts";

const ds = new pde.DiffusionSorption();
const T = 500;

await runExample({
  name: "diffusion_sorption",
  title: "Diffusion–sorption (PDEBench)",
  problem: ds,
  extraFlags: {
    ic: { type: "choice", choices: ["rows", "mollifier"], default: "rows", help: "how the initial condition enters" },
    conditions: {
      type: "choice",
      choices: ["global", "local"],
      default: "global",
      help: "initial and wall rows: every expert's, or only those in its box",
    },
    rowWeight: {
      type: "number",
      default: 1,
      min: 0,
      help: "weight of the initial and wall rows against the PDE rows (u/s) in each expert's solve",
    },
    ...dataFlags("PDEBench's 1D_diff-sorp_NA_NA.h5"),
  },
  defaults: {
    ...ONE_D_DEFAULTS,
    experts: "1x4",
    points: 256,
    steps: 200,
    nt: 26,
    nx: 64,
  },
  data: (o, { data, testData }) =>
    data
      ? readSplit(
        o,
        { data, testData },
        (path, range) =>
          pde.readDiffusionSorption(path, { grid: ds.grid({ nx: o.nx, nt: o.nt, T }), dtype: o.dtype, ...range }),
      )
      : {
        train: ds.generateDataset({ n: o.train, nt: o.nt, nx: o.nx, T, seed: 0, dtype: o.dtype }),
        test: ds.generateDataset({ n: o.test, nt: o.nt, nx: o.nx, T, seed: 1, dtype: o.dtype }),
      },
  // The residual is in units of u per second: weigh it by T against the initial and wall terms.
  // The interface weight: how hard neighbouring experts' fields must meet (see above).
  loss: { pde: T, ic: 1, bc: 1, interface: 100 },
  // On 1024 cells split in space the jumps between experts swamp a stitched residual (see above).
  residual: "expert",
  constraint: (_, flags) => ({
    initialCondition: flags.ic,
    conditions: flags.conditions,
    weights: { ic: flags.rowWeight, bc: flags.rowWeight },
    initialGuess: flags.ic === "mollifier" ? 0 : 1,
  }),
  view: (u, grid, router) => view1D(u, grid, router, "Test sample 0, concentration u(t, x)"),
});

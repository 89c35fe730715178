/**
 * The discretisation floor under physics-trained methods: for each grid, the relative L2 distance
 * from the reference solution of the field that minimises the training loss's own residuals
 * (`pde.discreteSolution`), on the examples' test initial conditions. A method trained on the
 * physics loss alone (PI-SC, PI-HC, PI-HC-MoE) is pulled towards that field, so its test error
 * against the reference cannot be expected below this figure on that grid. Prints a markdown table.
 *
 *   deno run -A bench/pde_floor.ts                                    # diffusion–sorption, CPU grids
 *   deno run -A bench/pde_floor.ts --grids 1024x101 --samples 4       # PDEBench's grid (a few minutes a sample)
 *   deno run -A bench/pde_floor.ts --problem heat --grids 64x26,128x51 --T 0.1
 *
 * Flags: --problem ds|heat, --grids (comma list of NXxNT), --T (final time; ds 500 s, heat 1),
 * --samples (test initial conditions, the first of the examples' test set: seed 1), --test (size of
 * the test set they are drawn from, default the examples' 16 for CPU grids and 100 at 1024 cells),
 * --maxiter. The loss weights are the examples': diffusion–sorption weighs the residual (u/s) by T
 * against the initial and wall terms; heat weighs all three 1.
 *
 * @module
 */

import { pde, type Tensor, tidy, train } from "../mod.ts";

const flags = train.parseFlags(
  {
    problem: { type: "choice", choices: ["ds", "heat"], default: "ds", help: "diffusion–sorption or heat 1D" },
    grids: { type: "string", help: "comma list of NXxNT (default ds 64x26,256x51; heat 64x26,128x51)" },
    T: { type: "number", min: 0, help: "final time (default ds 500 s, heat 1)" },
    samples: { type: "integer", default: 3, min: 1, help: "test initial conditions" },
    test: { type: "integer", min: 1, help: "size of the test set they come from (default 16; 100 at 1024 cells)" },
    maxiter: { type: "integer", default: 50, min: 1, help: "Gauss–Newton iteration limit" },
  },
  Deno.args,
  { usage: "deno run -A bench/pde_floor.ts [flags]" },
);
const problemName = flags.problem;
const problem = problemName === "ds" ? new pde.DiffusionSorption() : new pde.Heat1D();
const T = flags.T ?? (problemName === "ds" ? 500 : 1);
const samples = flags.samples;
const maxIterations = flags.maxiter;
const grids = (flags.grids ?? (problemName === "ds" ? "64x26,256x51" : "64x26,128x51")).split(",").map((s) => {
  const [nx, nt] = s.split("x").map(Number);
  if (!Number.isInteger(nx) || !Number.isInteger(nt) || nx < 4 || nt < 3) throw new Error(`--grids: bad grid ${s}`);
  return { nx, nt };
});
const weights = problemName === "ds" ? { pde: T, ic: 1, bc: 1 } : { pde: 1, ic: 1, bc: 1 };

const stats = (v: number[]) => {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return `${(100 * mean).toFixed(2)}% ± ${(100 * sd).toFixed(2)}%`;
};
const perSample = (a: Tensor, b: Tensor) =>
  Array.from(tidy(() => a.sub(b).square().sum([1, 2]).sqrt().div(b.square().sum([1, 2]).sqrt())).toTypedArray());

console.log(
  `${problemName === "ds" ? "diffusion–sorption" : "heat 1D"}, T = ${T}, loss weights ${JSON.stringify(weights)}`,
);
console.log(
  "| grid (nx × nt) | dt | samples | floor: discrete solution vs reference | loss there / at the reference | Gauss–Newton steps | s |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const { nx, nt } of grids) {
  const test = Math.max(flags.test ?? (nx >= 1024 ? 100 : 16), samples);
  const start = performance.now();
  const data = problem.generateDataset({ n: test, nx, nt, T, seed: 1, dtype: "float64" });
  const u = data.u.narrow(0, 0, samples);
  const u0 = data.u0.narrow(0, 0, samples);
  const sol = pde.discreteSolution(problem, data.grid, u0, { weights, init: u, maxIterations });
  const lossAt = (field: Tensor) => {
    const l = pde.pdeLoss(problem, data.grid, field, u0, weights);
    return l.loss.item();
  };
  const floor = perSample(sol.u, u);
  const seconds = (performance.now() - start) / 1000;
  console.log(
    `| ${nx} × ${nt} | ${(T / (nt - 1)).toPrecision(3)} | ${samples} | ${stats(floor)} | ${
      lossAt(sol.u).toExponential(3)
    } / ${lossAt(u).toExponential(3)} | ${sol.iterations} | ${seconds.toFixed(0)} |`,
  );
}

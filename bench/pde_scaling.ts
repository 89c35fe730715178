/**
 * PI-HC-MoE scaling (the paper's Figs. 4 and 6): training-step time and inference time for
 * K = 1, 2, 4, 8 experts and M sampled points in total (M/K per expert), with the share of the
 * step spent in the batched expert solve plus the experts' implicit backward passes. Prints a
 * markdown table.
 *
 *   deno run -A bench/pde_scaling.ts                                  # CPU-sized defaults
 *   deno run -A bench/pde_scaling.ts --problem ds --nx 1024 --nt 101 --points 5000,10000,20000,40000 \
 *     --experts 1,2,4,8 --basis 16 --width 64 --layers 5 --batch 6     # the paper's diffusion–sorption sizes (GPU)
 *   deno run -A bench/pde_scaling.ts --problem ns --nx 64 --nt 64 --basis 64 --width 64 --layers 8 --batch 2
 *
 * Flags: --problem ds|ns|heat, --experts (list of K), --points (list of total M), --nx, --nt,
 * --basis, --width, --modes, --layers, --fc, --batch, --reps, --warmup, --maxiter, --dtype, --recompute
 * (activation checkpointing of the Fourier layers), --residual stitched|expert and --interface W (how
 * the loss takes the PDE residual; default stitched, as the recorded tables; the diffusion–sorption
 * example trains with `--residual expert --interface 100`). The problems are set up as the examples
 * set them.
 * K experts split the first space axis (1D) or x then y (2D: 2 = 1×2×1, 4 = 1×2×2, 8 = 2×2×2).
 *
 * @module
 */

import { type DType, memory, pde, resetPeakMemory, tidy } from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";

const flags = pde.parseFlags(Deno.args, [
  "problem",
  "experts",
  "points",
  "nx",
  "nt",
  "basis",
  "width",
  "modes",
  "layers",
  "fc",
  "batch",
  "reps",
  "warmup",
  "maxiter",
  "dtype",
  "recompute",
  "residual",
  "interface",
]);
const list = (name: string, fallback: string) =>
  String(flags[name] ?? fallback).split(",").map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a comma list of positive integers`);
    return v;
  });
const problemName = String(flags.problem ?? "ds");
const int = (name: string, v: number) => pde.numberFlag(flags, name, v, { integer: true, min: 1 });
const dtype = String(flags.dtype ?? "float64") as DType;
const experts = list("experts", "1,2,4,8");
const points = list("points", problemName === "ns" ? "2000,4000" : "2000,4000,8000");
const batch = int("batch", 2);
const reps = int("reps", 3);
const warmup = pde.numberFlag(flags, "warmup", 1, { integer: true, min: 0 });
const basis = int("basis", 16);

let problem: pde.PdeProblem;
let data: pde.Dataset;
let constraint: Omit<pde.HardConstraintOptions, "problem" | "grid" | "basis">;
if (problemName === "ds") {
  const ds = new pde.DiffusionSorption();
  problem = ds;
  data = ds.generateDataset({ n: batch, nx: int("nx", 256), nt: int("nt", 51), dtype, seed: 0 });
  constraint = { initialGuess: 1, weights: { ic: 1, bc: 1 } };
} else if (problemName === "ns") {
  const ns = new pde.NavierStokes2D({ preset: "pihcmoe" });
  problem = ns;
  data = ns.generateDataset({ n: batch, nx: int("nx", 32), nt: int("nt", 16), T: 5, dt: 1e-3, dtype, seed: 0 });
  constraint = { initialCondition: "mollifier", mollifierScale: 0.005, meanFree: true };
} else if (problemName === "heat") {
  const heat = new pde.Heat1D({ kappa: 0.02, modes: 4 });
  problem = heat;
  data = heat.generateDataset({ n: batch, nx: int("nx", 256), nt: int("nt", 51), dtype, seed: 0 });
  constraint = { initialCondition: "mollifier" };
} else {
  throw new Error(`--problem must be ds, ns or heat, got ${problemName}`);
}
const grid = data.grid;
const rank = grid.shape.length;
const residual = String(flags.residual ?? "stitched");
if (residual !== "stitched" && residual !== "expert") {
  throw new Error(`--residual must be stitched or expert, got ${residual}`);
}
const interfaceWeight = pde.numberFlag(flags, "interface", 0, { min: 0 });
const split = (k: number): number[] => {
  if (rank === 2) return [1, k];
  const parts = [1, 1, 1];
  let rest = k;
  for (const axis of [1, 2, 0, 1, 2, 0]) {
    if (rest % 2 !== 0) break;
    parts[axis] *= 2;
    rest /= 2;
  }
  if (rest !== 1) parts[1] *= rest;
  return parts;
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const MiB = 2 ** 20;
console.log(
  `# PI-HC-MoE scaling: ${problem.name}, grid ${grid.shape.join("×")}, batch ${batch}, N = ${basis}, ${dtype}, ` +
    `${residual} residual${interfaceWeight ? `, interface weight ${interfaceWeight}` : ""}, ` +
    `median of ${reps} (after ${warmup} warm-up)\n`,
);
console.log(
  "| K | split | M total | M / expert | step s | solve + implicit bwd s | share | inference s | LM iters | peak MiB | speed-up vs K=1 (train / infer) |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const m of points) {
  let base: { step: number; infer: number } | null = null;
  for (const k of experts) {
    const parts = split(k);
    const per = Math.floor(m / k);
    const region = Math.min(...new pde.Router(grid, parts).regions.map((r) => r.reduce((s, [a, b]) => s * (b - a), 1)));
    if (per > region || per < basis) {
      console.log(
        `| ${k} | ${parts.join("×")} | ${m} | ${per} | — (an expert's box holds ${region} points) | | | | | | |`,
      );
      continue;
    }
    const method = pde.createMethod("moe", {
      problem,
      grid,
      basis,
      experts: parts,
      points: per,
      network: {
        width: int("width", 16),
        modes: int("modes", 8),
        layers: int("layers", 3),
        fc: int("fc", 32),
        dtype,
        checkpoint: flags.recompute === true,
      },
      constraint: {
        ...constraint,
        solver: new LevenbergMarquardt({ atol: 1e-6, rtol: 1e-6, maxSteps: int("maxiter", 50) }),
      },
      residual,
      loss: { interface: interfaceWeight },
    });
    const steps: number[] = [];
    const core: number[] = [];
    const infer: number[] = [];
    const iters: number[] = [];
    resetPeakMemory();
    for (let r = 0; r < warmup + reps; r++) {
      const t0 = performance.now();
      const st = tidy(() => {
        method.model.zeroGrad();
        const s = method.lossAndGrad({ u0: data.u0, u: data.u }, r);
        method.model.parameters()[0].grad?.toTypedArray(); // synchronise
        return s;
      });
      const dt = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      tidy(() => method.predict(data.u0).u.toTypedArray());
      const di = (performance.now() - t1) / 1000;
      if (r < warmup) continue;
      steps.push(dt);
      core.push(((st.timings?.solve ?? 0) + (st.timings?.experts ?? 0)) / 1000);
      infer.push(di);
      iters.push(st.solverIterations ?? 0);
    }
    method.model.zeroGrad();
    const step = median(steps);
    const c = median(core);
    const inf = median(infer);
    base ??= k === experts[0] ? { step, infer: inf } : null;
    const speed = base ? `${(base.step / step).toFixed(2)} / ${(base.infer / inf).toFixed(2)}` : "";
    console.log(
      `| ${k} | ${parts.join("×")} | ${m} | ${per} | ${step.toFixed(3)} | ${c.toFixed(3)} | ${
        ((100 * c) / step).toFixed(0)
      }% | ${inf.toFixed(3)} | ${median(iters).toFixed(1)} | ${(memory().peak / MiB).toFixed(0)} | ${speed} |`,
    );
  }
}

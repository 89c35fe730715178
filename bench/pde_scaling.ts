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
 * (activation checkpointing of the Fourier layers), --spectral dft|fft (the Fourier layers by
 * truncated DFTs and the fused mixing, or by full FFTs: the new and the old path), --precision
 * full|mixed (mixed: the network in float32, TF32 on a GPU, the solve in --dtype), --residual stitched|expert and --interface W (how
 * the loss takes the PDE residual; default stitched, as the recorded tables; the diffusion–sorption
 * example trains with `--residual expert --interface 100`). The problems are set up as the examples
 * set them.
 * K experts split the first space axis (1D) or x then y (2D: 2 = 1×2×1, 4 = 1×2×2, 8 = 2×2×2).
 *
 * After the timed steps one more step runs under a `BackendCounter` (untimed): "prims / step" is the
 * primitives the step asks of the backend (each at least one GPU launch), "LM prims / iter" those of
 * one solver iteration, "reads / step" its host reads (each a wait for the device); on CUDA,
 * "launches / syncs" is the device's own count (kernels + library calls, stream synchronisations).
 *
 * @module
 */

import {
  BackendCounter,
  type BackendCounts,
  type DType,
  getDefaultBackend,
  memory,
  pde,
  resetPeakMemory,
  subtractCounts,
  tidy,
  train,
} from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";

const flags = train.parseFlags(
  {
    problem: { type: "choice", choices: ["ds", "ns", "heat"], default: "ds", help: "the problem" },
    experts: { type: "integers", default: [1, 2, 4, 8], min: 1, help: "expert counts K" },
    points: { type: "integers", min: 1, help: "total sampled points M (default ns 2000,4000; else 2000,4000,8000)" },
    nx: { type: "integer", min: 1, help: "space points per axis (default ds/heat 256, ns 32)" },
    nt: { type: "integer", min: 1, help: "time points (default ds/heat 51, ns 16)" },
    basis: { type: "integer", default: 16, min: 1, help: "basis functions N" },
    width: { type: "integer", default: 16, min: 1, help: "FNO width" },
    modes: { type: "integer", default: 8, min: 1, help: "FNO modes" },
    layers: { type: "integer", default: 3, min: 1, help: "FNO layers" },
    fc: { type: "integer", default: 32, min: 1, help: "FNO projection width" },
    batch: { type: "integer", default: 2, min: 1, help: "batch size" },
    reps: { type: "integer", default: 3, min: 1, help: "timed repetitions" },
    warmup: { type: "integer", default: 1, min: 0, help: "untimed repetitions first" },
    maxiter: { type: "integer", default: 50, min: 1, help: "Levenberg–Marquardt iteration limit" },
    dtype: { type: "choice", choices: ["float32", "float64"], default: "float64", help: "compute dtype" },
    recompute: { type: "boolean", help: "activation checkpointing of the Fourier layers" },
    spectral: { type: "choice", choices: ["dft", "fft"], default: "dft", help: "how the Fourier layers compute" },
    precision: {
      type: "choice",
      choices: ["full", "mixed"],
      default: "full",
      help: "mixed: the network in float32/TF32",
    },
    residual: { type: "choice", choices: ["stitched", "expert"], default: "stitched", help: "PI-HC-MoE's residual" },
    interface: { type: "number", default: 0, min: 0, help: "weight of the interface term (with --residual expert)" },
  },
  Deno.args,
  { usage: "deno run -A bench/pde_scaling.ts [flags]" },
);
const problemName = flags.problem;
const dtype: DType = flags.dtype;
const experts = flags.experts;
const points = flags.points ?? (problemName === "ns" ? [2000, 4000] : [2000, 4000, 8000]);
const batch = flags.batch;
const reps = flags.reps;
const warmup = flags.warmup;
const basis = flags.basis;
const mixed = flags.precision === "mixed";
if (mixed) {
  const backend = getDefaultBackend() as { allowTF32?: boolean };
  if ("allowTF32" in backend) backend.allowTF32 = true;
}

let problem: pde.PdeProblem;
let data: pde.Dataset;
let constraint: Omit<pde.HardConstraintOptions, "problem" | "grid" | "basis">;
if (problemName === "ds") {
  const ds = new pde.DiffusionSorption();
  problem = ds;
  data = ds.generateDataset({ n: batch, nx: flags.nx ?? 256, nt: flags.nt ?? 51, dtype, seed: 0 });
  constraint = { initialGuess: 1, weights: { ic: 1, bc: 1 } };
} else if (problemName === "ns") {
  const ns = new pde.NavierStokes2D({ preset: "pihcmoe" });
  problem = ns;
  data = ns.generateDataset({ n: batch, nx: flags.nx ?? 32, nt: flags.nt ?? 16, T: 5, dt: 1e-3, dtype, seed: 0 });
  constraint = { initialCondition: "mollifier", mollifierScale: 0.005, meanFree: true };
} else {
  const heat = new pde.Heat1D({ kappa: 0.02, modes: 4 });
  problem = heat;
  data = heat.generateDataset({ n: batch, nx: flags.nx ?? 256, nt: flags.nt ?? 51, dtype, seed: 0 });
  constraint = { initialCondition: "mollifier" };
}
const grid = data.grid;
const rank = grid.shape.length;
const residual = flags.residual;
const interfaceWeight = flags.interface;
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
    `spectral ${flags.spectral}, precision ${flags.precision}${flags.recompute ? ", recompute" : ""}, ` +
    `median of ${reps} (after ${warmup} warm-up)\n`,
);
console.log(
  "| K | split | M total | M / expert | step s | solve + implicit bwd s | share | inference s | LM iters | peak MiB | speed-up vs K=1 (train / infer) | prims / step | LM prims / iter | reads / step | launches / syncs |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const m of points) {
  let base: { step: number; infer: number } | null = null;
  for (const k of experts) {
    const parts = split(k);
    const per = Math.floor(m / k);
    const region = Math.min(...new pde.Router(grid, parts).regions.map((r) => r.reduce((s, [a, b]) => s * (b - a), 1)));
    if (per > region || per < basis) {
      console.log(
        `| ${k} | ${
          parts.join("×")
        } | ${m} | ${per} | — (an expert's box holds ${region} points) | | | | | | | | | | |`,
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
        width: flags.width,
        modes: flags.modes,
        layers: flags.layers,
        fc: flags.fc,
        dtype: mixed ? "float32" : dtype,
        outputDtype: dtype,
        spectral: flags.spectral,
        checkpoint: flags.recompute,
      },
      constraint: {
        ...constraint,
        solver: new LevenbergMarquardt({ atol: 1e-6, rtol: 1e-6, maxSteps: flags.maxiter }),
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
      const watch = new train.Stopwatch();
      const st = tidy(() => {
        method.model.zeroGrad();
        const s = method.lossAndGrad({ u0: data.u0, u: data.u }, r, { onPhase: watch.lap });
        method.model.parameters()[0].grad?.toTypedArray(); // synchronise
        return s;
      });
      const dt = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      tidy(() => method.predict(data.u0).u.toTypedArray());
      const di = (performance.now() - t1) / 1000;
      if (r < warmup) continue;
      steps.push(dt);
      core.push(((watch.ms.solve ?? 0) + (watch.ms.experts ?? 0)) / 1000);
      infer.push(di);
      iters.push(st.solverIterations ?? 0);
    }
    const counts = countStep(method, warmup + reps);
    method.model.zeroGrad();
    const step = median(steps);
    const c = median(core);
    const inf = median(infer);
    base ??= k === experts[0] ? { step, infer: inf } : null;
    const speed = base ? `${(base.step / step).toFixed(2)} / ${(base.infer / inf).toFixed(2)}` : "";
    console.log(
      `| ${k} | ${parts.join("×")} | ${m} | ${per} | ${step.toFixed(3)} | ${c.toFixed(3)} | ${
        ((100 * c) / step).toFixed(0)
      }% | ${inf.toFixed(3)} | ${median(iters).toFixed(1)} | ${
        (memory().peak / MiB).toFixed(0)
      } | ${speed} | ${counts} |`,
    );
  }
}

/** One more step, untimed, under a backend counter: the count columns of the table. */
function countStep(method: pde.TrainingMethod, stepIndex: number): string {
  const counter = new BackendCounter().start();
  let before = counter.read();
  let solve: BackendCounts | null = null;
  const st = tidy(() => {
    method.model.zeroGrad();
    const s = method.lossAndGrad({ u0: data.u0, u: data.u }, stepIndex, {
      onPhase: (p) => {
        const now = counter.read();
        if (p === "solve") solve = subtractCounts(now, before);
        before = now;
      },
    });
    method.model.parameters()[0].grad?.toTypedArray();
    return s;
  });
  const c = counter.stop();
  const perIteration = solve && st.solverIterations ? (solve as BackendCounts).primitives / st.solverIterations : NaN;
  const device = c.device ? `${c.device.launches + c.device.libraryCalls} / ${c.device.syncs}` : "—";
  return `${c.primitives} | ${perIteration.toFixed(0)} | ${c.hostReads} | ${device}`;
}

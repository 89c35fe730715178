/**
 * Multi-process scaling of a training step: seconds per step and throughput of the Navier–Stokes
 * PI-HC-MoE step (`--task ns`; the batch split over the ranks, or with `--parallel experts` the
 * experts) or a chunk-wise language-model step (`--task lm`; the batch's rows split over the
 * ranks, SeCO by default), gradients reduced by `dist.DataParallel`; or adjoint sharding of the
 * SSM language model (`--task ssm`; every rank on the same rows, the K layers split over the ranks
 * by `lm.shardedSSMBackward`, the gradients gathered by `lm.gatherSSMGradients`). Run it under the
 * launcher with 1 and then N processes: the throughput ratio is the scaling. Rank 0 prints a line
 * and, with `--json FILE`, appends one JSON record.
 *
 *   deno task launch --nproc 2 bench/dist_scaling.ts --task ns                     # CPU-sized
 *   PATCHWORK_BACKEND=cuda deno task launch --nproc 2 bench/dist_scaling.ts --task ns --nx 64 --nt 64 \
 *     --experts 1x2x2 --points 20000 --basis 64 --width 64 --modes 8 --layers 8 --fc 256 --batch 4 --recompute
 *   PATCHWORK_BACKEND=cuda deno task launch --nproc 2 bench/dist_scaling.ts --task lm --preset llama-3.2-1b \
 *     --dtype bfloat16 --seq 4096 --chunk 512 --rows 4
 *   deno task launch --nproc 2 bench/dist_scaling.ts --task ssm --preset small --seq 64 --rows 1   # CPU-sized
 *
 * @module
 */

import { dist, type DType, lm, optim, pde, tidy, train } from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";
import { cpuUsage } from "node:process";

const flags = train.parseFlags(
  {
    task: { type: "choice", choices: ["ns", "lm", "ssm"], default: "ns", help: "the step timed" },
    parallel: { type: "choice", choices: ["batch", "experts"], default: "batch", help: "what ns splits over ranks" },
    reps: { type: "integer", default: 3, min: 1, help: "timed steps" },
    warmup: { type: "integer", default: 1, min: 0, help: "untimed steps first" },
    json: { type: "string", help: "append rank 0's record to this JSON-lines file" },
    nx: { type: "integer", default: 16, min: 4, help: "ns: space points per axis" },
    nt: { type: "integer", default: 9, min: 4, help: "ns: time points" },
    experts: { type: "string", default: "1x2x2", help: "ns: expert split" },
    points: { type: "integer", default: 64, min: 1, help: "ns: sampled points per expert" },
    basis: { type: "integer", default: 16, min: 1, help: "ns: basis functions" },
    width: { type: "integer", default: 8, min: 1, help: "ns: FNO width" },
    modes: { type: "integer", default: 4, min: 1, help: "ns: FNO modes" },
    layers: { type: "integer", default: 2, min: 1, help: "ns: FNO layers" },
    fc: { type: "integer", default: 16, min: 1, help: "ns: FNO projection width" },
    batch: { type: "integer", default: 4, min: 1, help: "ns: samples per step over all ranks" },
    maxiter: { type: "integer", default: 50, min: 1, help: "ns: Levenberg–Marquardt iteration limit" },
    recompute: { type: "boolean", help: "ns: recompute the Fourier layers in backward" },
    preset: {
      type: "string",
      default: "tiny",
      help: `lm: model shape (${Object.keys(lm.PRESETS).join(", ")}); ssm: (${Object.keys(lm.SSM_PRESETS).join(", ")})`,
    },
    seq: { type: "integer", default: 256, min: 2, help: "lm: tokens per row" },
    chunk: { type: "integer", default: 64, min: 1, help: "lm: chunk size" },
    method: { type: "choice", choices: [...lm.CHUNK_METHODS], default: "seco", help: "lm: gradient method" },
    rows: { type: "integer", default: 4, min: 1, help: "lm: rows per step over all ranks; ssm: rows of every rank" },
    grad: {
      type: "choice",
      choices: ["adjoint", "adjoint-exact", "truncated"],
      default: "adjoint",
      help: "ssm: gradient method",
    },
    window: {
      type: "integer",
      min: 1,
      help: "ssm: T̄, the VJPs kept per step (truncated: required; adjoint: optional)",
    },
    depth: { type: "integer", min: 1, help: "ssm: layers K (default the preset's; a multiple of the ranks)" },
    pieces: { type: "integer", default: 4096, min: 1, help: "ssm: VJPs per batched launch" },
    dtype: { type: "choice", choices: ["float32", "float64", "bfloat16"], help: "dtype (ns float64, lm float32)" },
  },
  Deno.args,
  { usage: "deno task launch --nproc N bench/dist_scaling.ts [flags]" },
);

const group = await dist.initProcessGroup();
const { rank, size } = group;
const say = rank === 0 ? console.log : () => {};

/** One step of the task on this rank's share: returns the items it stands for (over all ranks). */
function setup(): { model: dist.DataParallel; step: () => number; items: string; opt: optim.Optimizer } {
  if (flags.task === "ns") {
    const dtype = (flags.dtype ?? "float64") as DType;
    const ns = new pde.NavierStokes2D({ preset: "pihcmoe" });
    // PI-HC-MoE trains on the PDE residual: the step needs only initial conditions, no solutions.
    const grid = ns.grid({ nx: flags.nx, nt: flags.nt, T: 5 });
    const u0 = ns.initialConditions(flags.batch, grid, { dtype, seed: 0 });
    const method = pde.createMethod("moe", {
      problem: ns,
      grid,
      basis: flags.basis,
      experts: pde.parseExperts(flags.experts, grid.shape.length),
      points: flags.points,
      network: {
        width: flags.width,
        modes: flags.modes,
        layers: flags.layers,
        fc: flags.fc,
        dtype,
        seed: 0,
        checkpoint: flags.recompute,
      },
      constraint: {
        initialCondition: "mollifier",
        mollifierScale: 0.005,
        meanFree: true,
        solver: new LevenbergMarquardt({ atol: 1e-6, rtol: 1e-6, maxSteps: flags.maxiter }),
      },
    });
    const parallel = new dist.DataParallel(method.model, group);
    const byExperts = flags.parallel === "experts";
    const shard = byExperts ? dist.shardExperts(group, method.router!.count) : undefined;
    const [a, b] = byExperts ? [0, flags.batch] : parallel.share(flags.batch, { even: true });
    const mine = u0.narrow(0, a, b - a);
    let s = 0;
    return {
      model: parallel,
      opt: new optim.Adam(method.model, { lr: 1e-4 }),
      items: "samples",
      step: () => {
        method.lossAndGrad({ u0: mine, u: mine }, s++, shard && { shard });
        parallel.reduceGradients({ op: byExperts ? "sum" : "avg" });
        return flags.batch;
      },
    };
  }
  if (flags.task === "ssm") return ssmSetup();
  const config = lm.PRESETS[flags.preset];
  if (!config) throw new Error(`unknown preset ${flags.preset}`);
  const model = new lm.LlamaForCausalLM(config, { seed: 0, dtype: (flags.dtype ?? "float32") as DType });
  const parallel = new dist.DataParallel(model, group);
  const [a, b] = parallel.share(flags.rows, { even: true });
  const rows = Array.from(
    { length: b - a },
    (_, r) => Array.from({ length: flags.seq + 1 }, (_, i) => ((a + r) * 7919 + i * 104729) % config.vocabSize),
  );
  return {
    model: parallel,
    opt: new optim.AdamW(model.parameters(), { lr: 1e-5 }),
    items: "tokens",
    step: () => {
      lm.chunkedGradients(model, [rows], { method: flags.method as lm.ChunkMethod, chunkSize: flags.chunk });
      parallel.reduceGradients();
      return flags.rows * flags.seq;
    },
  };
}

/** Adjoint sharding: every rank on the same rows, its K/Υ layers' VJPs, then the gradients gathered. */
function ssmSetup(): { model: dist.DataParallel; step: () => number; items: string; opt: optim.Optimizer } {
  const preset = lm.SSM_PRESETS[flags.preset];
  if (!preset) throw new Error(`unknown SSM preset ${flags.preset}`);
  const config = lm.ssmConfig({ ...preset, numLayers: flags.depth ?? preset.numLayers });
  const model = new lm.SSMForCausalLM(config, { seed: 0, dtype: (flags.dtype ?? "float32") as DType });
  const rows = Array.from(
    { length: flags.rows },
    (_, r) => Array.from({ length: flags.seq + 1 }, (_, i) => (r * 7919 + i * 104729) % config.vocabSize),
  );
  const options = { method: flags.grad as lm.SSMGradientMethod, window: flags.window, piecesPerLaunch: flags.pieces };
  return {
    model: new dist.DataParallel(model, group),
    opt: new optim.AdamW(model.parameters(), { lr: 1e-4 }),
    items: "tokens",
    step: () => {
      lm.shardedSSMBackward(group, model, rows, options);
      lm.gatherSSMGradients(group, model);
      return flags.rows * flags.seq;
    },
  };
}

const { model, step, items, opt } = setup();
const run = () =>
  tidy(() => {
    opt.zeroGrad();
    const n = step();
    opt.step();
    return n;
  });
for (let i = 0; i < flags.warmup; i++) run();
group.barrier();
const t0 = performance.now(), cpu0 = cpuUsage();
let count = 0;
for (let i = 0; i < flags.reps; i++) count += run();
model.parameters[0].toTypedArray(); // the last update has finished
const cpu = cpuUsage(cpu0);
group.barrier();
const seconds = (performance.now() - t0) / 1000 / flags.reps;
// The busiest rank's processor time per step: what a step takes when every rank has its own cores.
const cpuSeconds = group.allReduceNumbers([(cpu.user + cpu.system) / 1e6 / flags.reps], "max")[0];
const record = {
  task: flags.task === "ssm" ? `ssm ${flags.grad}` : flags.task,
  nproc: size,
  parallel: flags.task === "ns" ? flags.parallel : flags.task === "ssm" ? "layers" : "batch",
  backend: group.backend,
  secondsPerStep: seconds,
  itemsPerSecond: count / flags.reps / seconds,
  cpuSecondsPerStep: cpuSeconds,
  items,
  args: Deno.args.join(" "),
};
say(
  `${record.task} on ${size} process${size > 1 ? "es" : ""} (${group.backend}, ${record.parallel}): ` +
    `${seconds.toFixed(3)} s/step, ${record.itemsPerSecond.toFixed(1)} ${items}/s, ` +
    `busiest rank ${cpuSeconds.toFixed(3)} processor s/step`,
);
if (rank === 0 && flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(record) + "\n", { append: true });
await group.destroy();

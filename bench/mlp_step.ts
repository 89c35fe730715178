// End-to-end GPU benchmark (issue "CUDA backend", benchmark 4): one training step — forward,
// backward, AdamW — of an MLP of `--layers` Linear layers width→width (bias, an activation between
// layers, none after the last), batch `--batch`, MSE loss against a random target, in
//   bf16: bfloat16 parameters, activations and gradients; AdamW keeps float32 master weights and
//         float32 moments (one fused update per parameter); the loss is computed in float32;
//   fp32: float32 throughout, TF32 off (full-precision SGEMM).
// bench/mlp_step_torch.py is the same model in PyTorch eager (bf16 autocast + fp32 AdamW, and fp32
// with TF32 off) with the same timing, printing the same table.
//
// Timing: after warm-up steps, `--repeats` blocks of `--steps` steps, each block between two CUDA
// events (so host-side gaps count); ms/step is the median block over its steps. Each step runs in
// tidy(), so memory is flat from step to step; peak memory is the allocator's peak over the timed
// steps. Effective TFLOP/s uses the usual estimate 6·P·B flops per step (P parameters, B batch
// rows: 2·P·B forward, 4·P·B backward), like the PyTorch script.
//
//   PATCHWORK_BACKEND=cuda deno run -A bench/mlp_step.ts [--layers 8] [--width 4096] [--batch 4096]
//     [--act gelu|gelu_tanh|relu] [--modes bf16,fp32] [--steps 10] [--repeats 3] [--warmup 3]
//     [--no-breakdown] [--composite]
//   deno run -A bench/mlp_step.ts --cpu --layers 2 --width 64 --batch 32   (smoke test on the CPU)
//
// --composite adds rows with AdamW's composite (unfused) update, for comparison.

import type { CudaBackend } from "../src/backend/cuda/mod.ts";

interface Args {
  layers: number;
  width: number;
  batch: number;
  act: "gelu" | "gelu_tanh" | "relu";
  modes: ("bf16" | "fp32")[];
  steps: number;
  repeats: number;
  warmup: number;
  breakdown: boolean;
  composite: boolean;
  cpu: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    layers: 8,
    width: 4096,
    batch: 4096,
    act: "gelu",
    modes: ["bf16", "fp32"],
    steps: 10,
    repeats: 3,
    warmup: 3,
    breakdown: true,
    composite: false,
    cpu: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const s = argv[++i];
      if (s === undefined) throw new Error(`${k} needs a value`);
      return s;
    };
    const int = () => {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 1) throw new Error(`${k} needs a positive integer`);
      return n;
    };
    switch (k) {
      case "--layers":
        a.layers = int();
        break;
      case "--width":
        a.width = int();
        break;
      case "--batch":
        a.batch = int();
        break;
      case "--steps":
        a.steps = int();
        break;
      case "--repeats":
        a.repeats = int();
        break;
      case "--warmup":
        a.warmup = int();
        break;
      case "--act": {
        const s = v();
        if (s !== "gelu" && s !== "gelu_tanh" && s !== "relu") throw new Error(`--act: gelu, gelu_tanh or relu`);
        a.act = s;
        break;
      }
      case "--modes": {
        const ms = v().split(",");
        if (!ms.every((m) => m === "bf16" || m === "fp32")) throw new Error(`--modes: a list of bf16, fp32`);
        a.modes = ms as Args["modes"];
        break;
      }
      case "--no-breakdown":
        a.breakdown = false;
        break;
      case "--composite":
        a.composite = true;
        break;
      case "--cpu":
        a.cpu = true;
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  return a;
}

let args: Args;
try {
  args = parseArgs(Deno.args);
} catch (e) {
  console.error(`bench/mlp_step.ts: ${(e as Error).message}`);
  Deno.exit(2);
}

const chosen = Deno.env.get("PATCHWORK_BACKEND");
if (chosen !== "cuda" && !args.cpu) {
  console.error(
    "bench/mlp_step.ts times the CUDA backend: run it with PATCHWORK_BACKEND=cuda " +
      `(got ${chosen === undefined ? "no PATCHWORK_BACKEND" : `PATCHWORK_BACKEND=${chosen}`}; ` +
      "--cpu runs a small smoke test on the CPU instead)",
  );
  Deno.exit(2);
}
let pw: typeof import("../mod.ts");
try {
  pw = await import("../mod.ts");
} catch (e) {
  console.error(`bench/mlp_step.ts: the CUDA backend did not start: ${(e as Error).message}`);
  Deno.exit(1);
}
const { nn, optim, noGrad, randn, tidy } = pw;
type Tensor = import("../mod.ts").Tensor;
const backend = pw.getDefaultBackend();
const cuda = backend.name === "cuda" ? backend as CudaBackend : undefined;
if (!cuda && !args.cpu) {
  console.error(`bench/mlp_step.ts: PATCHWORK_BACKEND=cuda but the default backend is ${backend.name}`);
  Deno.exit(1);
}

/** Milliseconds of device work queued by `fn` (CUDA events), or wall clock after a sync on the CPU. */
function time(fn: () => void): number {
  if (cuda) return cuda.time(fn);
  backend.synchronize();
  const t0 = performance.now();
  fn();
  backend.synchronize();
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median ms per call of `fn` over `repeats` blocks of `n` calls, after `warm` calls. */
function perCall(fn: () => void, n: number, repeats: number, warm: number): number {
  for (let i = 0; i < warm; i++) fn();
  backend.synchronize();
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    ms.push(
      time(() => {
        for (let i = 0; i < n; i++) fn();
      }) / n,
    );
  }
  return median(ms);
}

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);

interface Row {
  mode: string;
  ms: number;
  tflops: number;
  peak: number;
  host: number;
  loss: string;
}

interface Breakdown {
  mode: string;
  step: number;
  forward: number;
  forwardBackward: number;
  optimizer: number;
  gemms: number;
  gemmCount: number;
  host: number;
}

function run(mode: "bf16" | "fp32", fused: boolean): { row: Row; breakdown?: Breakdown } {
  const { layers, width, batch } = args;
  const dtype = mode === "bf16" ? "bfloat16" : "float32";
  if (cuda) cuda.allowTF32 = false; // fp32 means full float32 products (bf16 GEMMs ignore it)
  const sizes = Array.from({ length: layers + 1 }, () => width);
  const net = new nn.MLP(sizes, { activation: args.act, dtype, seed: 0 });
  const opt = new optim.AdamW(net, { lr: 1e-4, weightDecay: 0.01, fused });
  const x = randn([batch, width], { dtype, seed: 1 }).keep();
  const y = randn([batch, width], { seed: 2 }).keep(); // float32 target
  const params = net.numParameters();
  const lossOf = () => net.forward(x).cast("float32").sub(y).square().mean();
  const step = (): Tensor =>
    tidy(() => {
      const loss = lossOf();
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss;
    });

  const losses: Tensor[] = [];
  for (let i = 0; i < args.warmup; i++) losses.push(step());
  backend.synchronize();
  pw.resetPeakMemory();
  const blocks: number[] = [];
  const hosts: number[] = [];
  for (let r = 0; r < args.repeats; r++) {
    blocks.push(
      time(() => {
        const t0 = performance.now();
        for (let i = 0; i < args.steps; i++) losses.push(step());
        hosts.push((performance.now() - t0) / args.steps);
      }) / args.steps,
    );
  }
  const peak = pw.memory().peak;
  const ms = median(blocks);
  const lossValues = [losses[0], losses[args.warmup], losses.at(-1)!].map((l) => l.item());
  for (const l of losses) l.dispose();
  if (!lossValues.every(Number.isFinite)) throw new Error(`${mode}: the loss is not finite: ${lossValues}`);
  const label = `${mode === "bf16" ? "bf16 params, fp32 master AdamW" : "fp32, TF32 off"}${
    fused ? "" : " (composite AdamW)"
  }`;
  const row: Row = {
    mode: label,
    ms,
    tflops: (6 * params * batch) / (ms * 1e9),
    peak,
    host: median(hosts),
    loss: lossValues.map((l) => l.toPrecision(4)).join(" → "),
  };

  let breakdown: Breakdown | undefined;
  if (args.breakdown && fused) {
    const n = Math.max(2, Math.ceil(args.steps / 2));
    const forward = perCall(() => tidy(() => void lossOf()), n, args.repeats, 1);
    const forwardBackward = perCall(
      () =>
        tidy(() => {
          lossOf().backward();
          opt.zeroGrad();
        }),
      n,
      args.repeats,
      1,
    );
    tidy(() => lossOf().backward()); // gradients for the optimiser-only timing
    const optimizer = perCall(() => opt.step(), n, args.repeats, 1);
    opt.zeroGrad();
    // The step's matrix products alone, same shapes and layouts: per layer h·Wᵀ, the weight
    // gradient gᵀ·h, and (all but the first layer) the input gradient g·W.
    const weights = net.parameters().filter((p) => p.ndim === 2);
    const g = randn([batch, width], { dtype, seed: 3 }).keep();
    const gemms = perCall(
      () =>
        noGrad(() =>
          tidy(() => {
            weights.forEach((w, i) => {
              x.matmul(w.transpose());
              g.transpose().matmul(x);
              if (i > 0) g.matmul(w);
            });
          })
        ),
      n,
      args.repeats,
      1,
    );
    g.dispose();
    breakdown = {
      mode,
      step: ms,
      forward,
      forwardBackward,
      optimizer,
      gemms,
      gemmCount: 3 * weights.length - 1,
      host: row.host,
    };
  }
  x.dispose();
  y.dispose();
  opt.zeroGrad();
  for (const p of net.parameters()) p.dispose();
  for (const t of opt.stateDict().tensors.values()) t.dispose();
  return { row, breakdown };
}

const rows: Row[] = [];
const breakdowns: Breakdown[] = [];
for (const mode of args.modes) {
  for (const fused of args.composite ? [true, false] : [true]) {
    const { row, breakdown } = run(mode, fused);
    rows.push(row);
    if (breakdown) breakdowns.push(breakdown);
    if (cuda) cuda.releaseCached();
  }
}

const P = args.layers * (args.width * args.width + args.width);
console.log(`# patchwork MLP training step (forward, backward, AdamW)\n`);
console.log(
  `device: ${backend.description}; date: ${new Date().toISOString()}; ` +
    `MLP ${args.layers} × Linear(${args.width} → ${args.width}) with ${args.act}, batch ${args.batch}, ` +
    `${P.toLocaleString("en")} parameters; MSE loss (float32); AdamW lr 1e-4, weight decay 0.01; ` +
    `${args.warmup} warm-up steps, median of ${args.repeats} blocks of ${args.steps} steps timed with ` +
    `${cuda ? "CUDA events" : "the wall clock"}\n`,
);
console.log(
  `| impl | mode | ms/step | TFLOP/s (6·P·B/t) | peak memory GiB | host enqueue ms/step | loss (first → timed → last) |`,
);
console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
for (const r of rows) {
  console.log(
    `| patchwork | ${r.mode} | ${r.ms.toFixed(2)} | ${r.tflops.toFixed(1)} | ${gib(r.peak)} | ${
      r.host.toFixed(2)
    } | ${r.loss} |`,
  );
}
console.log();
if (breakdowns.length) {
  console.log(`## Where the time goes (ms; each part timed on its own, median of ${args.repeats} blocks)\n`);
  console.log(`| impl | mode | step | forward (+loss) | forward + backward | AdamW step | GEMMs alone | GEMM share |`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |`);
  for (const b of breakdowns) {
    console.log(
      `| patchwork | ${b.mode} | ${b.step.toFixed(2)} | ${b.forward.toFixed(2)} | ${b.forwardBackward.toFixed(2)} | ${
        b.optimizer.toFixed(2)
      } | ${b.gemms.toFixed(2)} (${b.gemmCount}) | ${(100 * b.gemms / b.step).toFixed(0)}% |`,
    );
  }
  console.log();
}

/**
 * The shared driver of the PDE examples (`heat_1d.ts`, `diffusion_sorption.ts`,
 * `navier_stokes_2d.ts`): reads the flags, makes the data, trains each requested method (data-only,
 * PI-SC, PI-HC, PI-HC-MoE) with the same network and data, evaluates them on the test set, and
 * writes `out/<name>/report.html` (plotly: truth / prediction / error fields with the expert
 * boundaries, loss and error curves, a table of metrics) and `out/<name>/metrics.json`.
 *
 * Flags (every example): `--method data|soft|hard|moe|all` (or a comma list), `--experts 1x2`,
 * `--points` (per expert), `--steps`, `--basis`, `--width`, `--modes`, `--layers`, `--fc`,
 * `--batch`, `--lr`, `--train`, `--test` (sample counts), `--nt`, `--nx`, `--seed`, `--dtype`,
 * `--maxiter`, `--tol`, `--log-every`, `--checkpoint-every`, `--out`, `--resume`, `--max-seconds`
 * (wall-clock budget per method: training stops after the step that reaches it), `--residual
 * stitched|expert` (how PI-HC-MoE's loss evaluates the PDE residual), `--interface W` (with
 * `--residual expert`: the weight of the term making neighbouring experts' fields meet), `--recompute`
 * (activation checkpointing of the Fourier layers: less memory, one more forward pass of compute),
 * `--nproc N` (N processes, one per GPU, started by the launcher) with `--parallel batch|experts`
 * (each step's batch split over them, or PI-HC-MoE's experts), `--precision full|mixed` (mixed: the
 * network in float32, TF32 matrix products on a GPU, the solve and the loss in `--dtype`),
 * `--spectral dft|fft` (how the Fourier layers compute).
 *
 * @module
 */

import { join } from "node:path";
import {
  ArgumentError,
  dist,
  type DType,
  getDefaultBackend,
  memory,
  optim,
  pde,
  type Tensor,
  train,
  viz,
} from "../mod.ts";
import { LevenbergMarquardt } from "../src/solve/mod.ts";

/** Sizes an example starts from (each overridable by a flag). */
export interface ExampleDefaults {
  /** Methods to run ("all" or a comma list). */
  method: string;
  /** Expert split for "moe". */
  experts: string;
  /** Sampled points per expert. */
  points: number;
  /** Training steps. */
  steps: number;
  /** Basis functions N. */
  basis: number;
  /** FNO width, modes, layers, projection width. */
  width: number;
  modes: number;
  layers: number;
  fc: number;
  /** Batch size, learning rate (decayed ×0.1 over the run), sample counts. */
  batch: number;
  lr: number;
  train: number;
  test: number;
  /** Grid sizes. */
  nt: number;
  nx: number;
  /** Levenberg–Marquardt iteration limit and tolerance. */
  maxiter: number;
  tol: number;
  /** Progress line every this many steps. */
  logEvery: number;
  /** Compute dtype. */
  dtype: DType;
}

/** The network and training sizes of the 1-D examples (heat, diffusion–sorption) on the CPU. */
export const ONE_D_DEFAULTS = {
  method: "all",
  basis: 16,
  width: 16,
  modes: 8,
  layers: 3,
  fc: 32,
  batch: 4,
  lr: 3e-3,
  train: 32,
  test: 16,
  maxiter: 50,
  tol: 1e-6,
  logEvery: 25,
  dtype: "float64",
} as const satisfies Partial<ExampleDefaults>;

/** A 2-D view of a solution for the report. */
export interface FieldView {
  /** The field, rows along the plot's y axis. */
  field: Tensor;
  /** Coordinates of the columns and rows. */
  x: Float64Array;
  y: Float64Array;
  xTitle: string;
  yTitle: string;
  /** Expert boundaries in those coordinates. */
  boundaries: { x?: number[]; y?: number[] };
  /** What the view shows. */
  caption: string;
}

/** What an example supplies. */
export interface ExampleSpec<G extends pde.Grid, X extends train.FlagSpecs = Record<never, never>> {
  /** Directory name under out/. */
  name: string;
  /** Report title. */
  title: string;
  /** Defaults. */
  defaults: ExampleDefaults;
  /** Extra flags the example reads (their values reach `data` and `constraint`). */
  extraFlags?: X;
  /** The problem. */
  problem: pde.PdeProblem<G>;
  /** Training and test data on the example's grid (generated, or read: see {@link readSplit}). */
  data: (o: ExampleDefaults, extra: train.FlagValues<X>) => Split<G> | Promise<Split<G>>;
  /** Settings of the hard-constraint layer. */
  constraint: (
    o: ExampleDefaults,
    extra: train.FlagValues<X>,
  ) => Omit<pde.HardConstraintOptions<G>, "problem" | "grid" | "basis">;
  /** Weights of the physics loss. */
  loss?: pde.PdeLossWeights;
  /** How PI-HC-MoE's loss evaluates the PDE residual by default (`--residual` overrides). */
  residual?: "stitched" | "expert";
  /** Extra network settings. */
  network?: pde.PdeNetworkOptions;
  /** How a sample `[nt, ...space]` is drawn, with the router for boundaries. */
  view: (u: Tensor, grid: G, router: pde.Router | null) => FieldView;
}

/** Training and test solutions on one grid. */
export interface Split<G extends pde.Grid> {
  train: pde.Dataset<G>;
  test: pde.Dataset<G>;
}

/**
 * The flags of an example that can read its solutions from files, `--data` and `--test-data`
 * (`what`: the files it reads).
 */
export function dataFlags(what: string) {
  return {
    data: {
      type: "string",
      help: `${what}: train on its first --train samples and test on its last --test instead of generated solutions`,
    },
    testData: { type: "string", help: "with --data: test on the first --test samples of this file instead" },
  } as const;
}

/**
 * Training and test solutions read by `read` (a reader of `pde`, on the example's grid): the first
 * `--train` samples of `--data`, and the last `--test` of it (or the first of `--test-data`).
 */
export async function readSplit<G extends pde.Grid>(
  o: ExampleDefaults,
  files: { data: string; testData?: string },
  read: (path: string, range: { start: number; count: number }) => Promise<pde.FileDataset<G>>,
): Promise<Split<G>> {
  const test = await read(files.testData ?? files.data, { start: files.testData ? 0 : -o.test, count: o.test });
  if (!files.testData && o.train > test.start) {
    throw new ArgumentError(
      "flags",
      `--train ${o.train} and --test ${o.test} overlap: ${files.data} holds ${test.total} samples; ask for at most ` +
        `${test.total} together, or give the test samples with --test-data`,
    );
  }
  const trainData = await read(files.data, { start: 0, count: o.train });
  const range = (d: pde.FileDataset<G>) =>
    `samples ${d.start}–${d.start + d.u.shape[0] - 1} of ${d.total} in ${d.file}`;
  console.log(`training on ${range(trainData)}; testing on ${range(test)}`);
  return { train: trainData, test };
}

/** The flags every example reads, with the example's defaults. */
function commonFlags(d: ExampleDefaults, spec: { residual?: "stitched" | "expert"; loss?: pde.PdeLossWeights }) {
  const int = (v: number, help: string, min = 1) => ({ type: "integer", default: v, min, help }) as const;
  const num = (v: number, help: string) => ({ type: "number", default: v, min: 0, help }) as const;
  return {
    method: {
      type: "string",
      default: d.method,
      help: `methods: ${pde.METHOD_KINDS.join(", ")}, all, or a comma list`,
    },
    experts: { type: "string", default: d.experts, help: "PI-HC-MoE's split: parts along t, x(, y), e.g. 1x2" },
    points: int(d.points, "sampled PDE points per expert and step"),
    steps: int(d.steps, "training steps per method", 0),
    basis: int(d.basis, "basis functions N of the hard-constraint methods"),
    width: int(d.width, "FNO width"),
    modes: int(d.modes, "FNO Fourier modes per axis"),
    layers: int(d.layers, "FNO Fourier layers"),
    fc: int(d.fc, "FNO projection width"),
    batch: int(d.batch, "samples per step"),
    lr: num(d.lr, "learning rate (decayed ×0.1 over the run)"),
    train: int(d.train, "training solutions"),
    test: int(d.test, "test solutions"),
    nt: int(d.nt, "time points", 4),
    nx: int(d.nx, "space points per axis", 4),
    maxiter: int(d.maxiter, "Levenberg–Marquardt iteration limit"),
    tol: num(d.tol, "Levenberg–Marquardt tolerance (atol = rtol)"),
    logEvery: int(d.logEvery, "progress line every this many steps (0: only the last)", 0),
    dtype: { type: "choice", choices: ["float32", "float64"], default: d.dtype, help: "compute dtype" },
    seed: int(0, "seed of the network, the points and the batch order", 0),
    out: { type: "string", default: "out", help: "output directory (report, metrics, checkpoints, logs)" },
    checkpointEvery: int(50, "checkpoint every this many steps (and at the end)", 0),
    resume: { type: "boolean", help: "continue each method from its newest checkpoint" },
    recompute: { type: "boolean", help: "recompute the Fourier layers in backward (less memory)" },
    precision: {
      type: "choice",
      choices: ["full", "mixed"],
      default: "full",
      help: "full: everything in --dtype; mixed: the network in float32 (TF32 on a GPU), solve and loss in --dtype",
    },
    spectral: {
      type: "choice",
      choices: ["dft", "fft"],
      default: "dft",
      help: "Fourier layers by truncated DFTs and the fused mixing, or by full FFTs",
    },
    nproc: int(1, "processes (one per GPU); more than 1 restarts this script under the launcher"),
    parallel: {
      type: "choice",
      choices: ["batch", "experts"],
      default: "batch",
      help: "with several processes: split each step's batch (data parallel) or PI-HC-MoE's experts",
    },
    maxSeconds: { type: "number", min: 0, help: "wall-clock budget per method (default none)" },
    sampledExperts: int(0, "PI-HC-MoE: experts back-propagated per step, drawn and reweighted (0: all)", 0),
    residual: {
      type: "choice",
      choices: ["stitched", "expert"],
      default: spec.residual ?? "stitched",
      help: "PI-HC-MoE's PDE residual: of the stitched field, or of each point's own expert",
    },
    interface: {
      type: "number",
      min: 0,
      help: `weight of the experts' interface term (default ${
        spec.loss?.interface ?? 0
      } with --residual expert, else 0)`,
    },
  } as const;
}

/** Lets float32 matrix products use TF32 tensor cores where the backend can (the CUDA backend's `allowTF32`). */
function allowTF32(): void {
  const backend = getDefaultBackend() as { allowTF32?: boolean };
  if ("allowTF32" in backend) backend.allowTF32 = true;
}

function methods(spec: string): pde.MethodKind[] {
  const list = spec === "all" ? [...pde.METHOD_KINDS] : spec.split(",").map((s) => s.trim());
  for (const m of list) {
    if (!pde.METHOD_KINDS.includes(m as pde.MethodKind)) {
      throw new ArgumentError(
        "flags",
        `--method must be one of ${pde.METHOD_KINDS.join(", ")} or "all" (a comma list works), got "${m}"`,
      );
    }
  }
  return list as pde.MethodKind[];
}

const sci = (v: number, d = 2) => (Number.isFinite(v) ? v.toExponential(d) : String(v));

/** Runs an example: trains, evaluates, reports. Returns the metrics written to metrics.json. */
export async function runExample<G extends pde.Grid, const X extends train.FlagSpecs = Record<never, never>>(
  spec: ExampleSpec<G, X>,
  args: readonly string[] = Deno.args,
): Promise<Record<string, unknown>> {
  const common = commonFlags(spec.defaults, spec);
  // One parse over both sets (so an unknown flag is caught); the example's own values go to it.
  const all = train.parseFlags({ ...common, ...spec.extraFlags } as typeof common, args, {
    usage: `deno run -A examples/${spec.name}.ts [flags]`,
    description: spec.title,
  });
  const group = await dist.launchOrJoin(all.nproc, args);
  const say = (group?.rank ?? 0) === 0 ? console.log : () => {};
  const values = all as Record<string, unknown>;
  const extra = Object.fromEntries(Object.keys(spec.extraFlags ?? {}).map((k) => [k, values[k]])) as train.FlagValues<
    X
  >;
  const o: ExampleDefaults = {
    method: all.method,
    experts: all.experts,
    points: all.points,
    steps: all.steps,
    basis: all.basis,
    width: all.width,
    modes: all.modes,
    layers: all.layers,
    fc: all.fc,
    batch: all.batch,
    lr: all.lr,
    train: all.train,
    test: all.test,
    nt: all.nt,
    nx: all.nx,
    maxiter: all.maxiter,
    tol: all.tol,
    logEvery: all.logEvery,
    dtype: all.dtype,
  };
  const seed = all.seed;
  const outDir = join(all.out, spec.name);
  const kinds = methods(o.method);
  const residual = all.residual;
  // The example's interface weight belongs to its owned residual; a stitched one has none unless asked.
  const interfaceWeight = all.interface ?? (residual === "expert" ? spec.loss?.interface ?? 0 : 0);
  const started = performance.now();

  const t0 = performance.now();
  const { train: trainData, test } = await spec.data(o, extra);
  const grid = trainData.grid;
  say(
    `${spec.title}: grid ${grid.axes.map((a) => `${a.name} ${a.n}`).join(" × ")}, ${
      trainData.u0.shape[0]
    } training and ` +
      `${test.u0.shape[0]} test solutions (${((performance.now() - t0) / 1000).toFixed(1)} s to generate or read)`,
  );
  const experts = pde.parseExperts(o.experts, grid.shape.length);
  const network: pde.PdeNetworkOptions = {
    width: o.width,
    modes: o.modes,
    layers: o.layers,
    fc: o.fc,
    dtype: all.precision === "mixed" ? "float32" : o.dtype,
    outputDtype: o.dtype,
    spectral: all.spectral,
    seed,
    checkpoint: all.recompute,
    ...(spec.network ?? {}),
  };
  // Mixed precision: float32 matrix products on TF32 tensor cores where the backend has them.
  if (all.precision === "mixed") allowTF32();
  const solver = new LevenbergMarquardt({ atol: o.tol, rtol: o.tol, maxSteps: o.maxiter });
  const results: Record<string, unknown> = {};
  const summary: Record<string, string | number>[] = [];
  const report = new viz.Report(spec.title, {
    subtitle: `${
      grid.axes.map((a) => `${a.name} ${a.n}`).join(" × ")
    } grid · ${o.steps} steps · N = ${o.basis} basis ` +
      `functions · ${o.points} points per expert · seed ${seed}`,
  });
  const sections: (() => void)[] = [];
  for (const kind of kinds) {
    const method = pde.createMethod(kind, {
      problem: spec.problem,
      grid,
      network,
      basis: o.basis,
      experts,
      points: o.points,
      seed,
      constraint: { ...spec.constraint(o, extra), solver },
      loss: { ...spec.loss, interface: interfaceWeight },
      residual,
      sampledExperts: kind === "moe" && all.sampledExperts > 0 ? all.sampledExperts : undefined,
    });
    say(`\n== ${method.label}: ${method.model.numParameters()} parameters`);
    const optimizer = new optim.Adam(method.model, {
      lr: optim.exponentialDecay({ lr: o.lr, gamma: 0.1, every: Math.max(1, o.steps) }),
    });
    const run = await pde.train({
      method,
      optimizer,
      train: trainData,
      test,
      steps: o.steps,
      batchSize: Math.min(o.batch, trainData.u0.shape[0]),
      seed,
      logEvery: o.logEvery,
      evalEvery: Math.max(o.logEvery, Math.round(o.steps / 10)),
      checkpointDir: join(outDir, "checkpoints", kind),
      checkpointEvery: all.checkpointEvery,
      resume: all.resume,
      maxSeconds: all.maxSeconds,
      distributed: group && group.size > 1
        ? {
          parallel: new dist.DataParallel(method.model, group),
          split: all.parallel === "experts" && kind === "moe" ? "experts" : "batch",
        }
        : undefined,
      writers: [
        new train.JsonLinesWriter(join(outDir, "logs", `${kind}.jsonl`)),
        new train.TensorBoardWriter(join(outDir, "tensorboard", kind)),
      ],
    });
    const m = pde.evaluate(method, test, { batchSize: o.batch, keep: 1 });
    const line = `${method.label}: test relative L2 ${sci(m.relL2.mean)} ± ${sci(m.relL2.std)}, residual ${
      sci(m.residual)
    } (reference solution ${sci(m.referenceResidual)}), ${run.step} steps at ${
      run.secondsPerStep.toFixed(3)
    } s/step, inference ${m.inference.secondsPerBatch.toFixed(3)} s per batch of ${m.inference.batchSize}`;
    say(line);
    summary.push({
      method: method.label,
      "test rel. L2": m.relL2.mean,
      "± std": m.relL2.std,
      "PDE residual": m.residual,
      "s / step": run.secondsPerStep,
      "inference s / batch": m.inference.secondsPerBatch,
      parameters: method.model.numParameters(),
    });
    results[kind] = {
      config: method.config(),
      metrics: {
        relL2: { mean: m.relL2.mean, std: m.relL2.std, perSample: m.relL2.perSample },
        residual: m.residual,
        referenceResidual: m.referenceResidual,
        trainSecondsPerStep: run.secondsPerStep,
        trainSeconds: run.seconds,
        steps: run.step,
        stoppedBy: run.stoppedBy,
        inference: m.inference,
        solve: m.solve ?? null,
      },
      history: run.history,
    };
    const truth = test.u.narrow(0, 0, 1).squeeze(0);
    const pred = m.predictions!.squeeze(0);
    const tv = spec.view(truth, grid, method.router);
    const pv = spec.view(pred, grid, method.router);
    const hist = run.history.map((h) => ({
      step: h.step,
      loss: h.loss,
      "PDE residual": h.residual,
      ...(h.interface === undefined ? {} : { "interface mismatch": h.interface }),
      "test rel. L2": h.testError,
    }));
    sections.push(() => {
      report.section(method.label)
        .text(
          `${tv.caption}. Test relative L2 error **${sci(m.relL2.mean)}** ± ${
            sci(m.relL2.std)
          } over ${m.samples} samples.`,
        )
        .fieldComparison(tv.field, pv.field, {
          x: tv.x,
          y: tv.y,
          xTitle: tv.xTitle,
          yTitle: tv.yTitle,
          boundaries: tv.boundaries,
        })
        .curves(hist);
    });
  }
  const mem = memory();
  report.section("Summary").table(summary, { title: "test set", digits: 3 });
  report.text(
    `Every method uses the same FNO (${o.layers} layers, width ${o.width}, ${o.modes} modes) and the same data. ` +
      "The hard-constraint methods train on the PDE residual alone (no solution data); the data-only baseline " +
      `regresses the solutions. Peak backend memory ${(mem.peak / 2 ** 20).toFixed(1)} MiB.`,
  );
  for (const s of sections) s();
  const metrics = {
    example: spec.name,
    problem: { name: spec.problem.name, parameters: spec.problem.parameters, residual: spec.problem.residualSource },
    grid: Object.fromEntries(grid.axes.map((a) => [a.name, { n: a.n, range: [a.start, a.end], periodic: a.periodic }])),
    options: { ...o, seed, experts },
    methods: results,
    seconds: (performance.now() - started) / 1000,
  };
  await group?.destroy();
  if ((group?.rank ?? 0) !== 0) return metrics;
  const reportPath = await report.save(join(outDir, "report.html"));
  await train.writeJson(join(outDir, "metrics.json"), metrics);
  say(`\nwrote ${reportPath} and ${join(outDir, "metrics.json")} (${metrics.seconds.toFixed(1)} s in all)`);
  say(
    `curves per method: ${join(outDir, "logs")}/*.jsonl; tensorboard --logdir ${join(outDir, "tensorboard")}`,
  );
  return metrics;
}

/** The usual view of a 1D+t field: t up, x across, expert boundaries in both. */
export function view1D(u: Tensor, grid: pde.Grid, router: pde.Router | null, caption: string): FieldView {
  return {
    field: u,
    x: grid.x.points(),
    y: grid.t.points(),
    xTitle: "x",
    yTitle: "t",
    boundaries: router ? { x: router.boundaries(grid, "x"), y: router.boundaries(grid, "t") } : {},
    caption,
  };
}

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
 * (activation checkpointing of the Fourier layers: less memory, one more forward pass of compute).
 *
 * @module
 */

import { join } from "node:path";
import { type DType, memory, optim, pde, type Tensor, viz } from "../mod.ts";
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
export interface ExampleSpec<G extends pde.Grid> {
  /** Directory name under out/. */
  name: string;
  /** Report title. */
  title: string;
  /** Defaults. */
  defaults: ExampleDefaults;
  /** Extra flags the example reads. */
  extraFlags?: readonly string[];
  /** The problem. */
  problem: pde.PdeProblem<G>;
  /** Training and test data on the example's grid. */
  data: (o: ExampleDefaults, flags: pde.Flags) => { train: pde.Dataset<G>; test: pde.Dataset<G> };
  /** Settings of the hard-constraint layer. */
  constraint: (
    o: ExampleDefaults,
    flags: pde.Flags,
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

const COMMON_FLAGS = [
  "method",
  "experts",
  "points",
  "steps",
  "basis",
  "width",
  "modes",
  "layers",
  "fc",
  "batch",
  "lr",
  "train",
  "test",
  "nt",
  "nx",
  "seed",
  "dtype",
  "maxiter",
  "tol",
  "log-every",
  "checkpoint-every",
  "out",
  "resume",
  "recompute",
  "max-seconds",
  "residual",
  "interface",
  "help",
];

/** Reads the flags over the defaults. */
function options(flags: pde.Flags, d: ExampleDefaults): ExampleDefaults {
  const int = (name: string, v: number, min = 1) => pde.numberFlag(flags, name, v, { integer: true, min });
  const num = (name: string, v: number) => pde.numberFlag(flags, name, v, { min: 0 });
  const dtype = String(flags.dtype ?? d.dtype);
  if (dtype !== "float32" && dtype !== "float64") throw new Error(`--dtype must be float32 or float64, got ${dtype}`);
  return {
    method: String(flags.method ?? d.method),
    experts: String(flags.experts ?? d.experts),
    points: int("points", d.points),
    steps: int("steps", d.steps, 0),
    basis: int("basis", d.basis),
    width: int("width", d.width),
    modes: int("modes", d.modes),
    layers: int("layers", d.layers),
    fc: int("fc", d.fc),
    batch: int("batch", d.batch),
    lr: num("lr", d.lr),
    train: int("train", d.train),
    test: int("test", d.test),
    nt: int("nt", d.nt, 4),
    nx: int("nx", d.nx, 4),
    maxiter: int("maxiter", d.maxiter),
    tol: num("tol", d.tol),
    logEvery: int("log-every", d.logEvery, 0),
    dtype,
  };
}

function methods(spec: string): pde.MethodKind[] {
  const list = spec === "all" ? [...pde.METHOD_KINDS] : spec.split(",").map((s) => s.trim());
  for (const m of list) {
    if (!pde.METHOD_KINDS.includes(m as pde.MethodKind)) {
      throw new Error(
        `--method must be one of ${pde.METHOD_KINDS.join(", ")} or "all" (a comma list works), got "${m}"`,
      );
    }
  }
  return list as pde.MethodKind[];
}

const sci = (v: number, d = 2) => (Number.isFinite(v) ? v.toExponential(d) : String(v));

/** Runs an example: trains, evaluates, reports. Returns the metrics written to metrics.json. */
export async function runExample<G extends pde.Grid>(
  spec: ExampleSpec<G>,
  args: readonly string[] = Deno.args,
): Promise<Record<string, unknown>> {
  const flags = pde.parseFlags(args, [...COMMON_FLAGS, ...(spec.extraFlags ?? [])]);
  if (flags.help) {
    console.log(`usage: deno run -A examples/${spec.name}.ts [flags]\n\nflags (defaults):`);
    for (const [k, v] of Object.entries(spec.defaults)) {
      console.log(`  --${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} ${v}`);
    }
    console.log("  --seed 0  --out out  --checkpoint-every 50  --resume  --recompute  --max-seconds (none)");
    console.log(`  --residual ${spec.residual ?? "stitched"}  --interface ${spec.loss?.interface ?? 0}`);
    return {};
  }
  const o = options(flags, spec.defaults);
  const seed = pde.numberFlag(flags, "seed", 0, { integer: true, min: 0 });
  const outDir = join(String(flags.out ?? "out"), spec.name);
  const kinds = methods(o.method);
  const ckptEvery = pde.numberFlag(flags, "checkpoint-every", 50, { integer: true, min: 0 });
  const residual = String(flags.residual ?? spec.residual ?? "stitched") as "stitched" | "expert";
  // The example's interface weight belongs to its owned residual; a stitched one has none unless asked.
  const interfaceWeight = pde.numberFlag(flags, "interface", residual === "expert" ? spec.loss?.interface ?? 0 : 0, {
    min: 0,
  });
  const started = performance.now();

  const t0 = performance.now();
  const { train, test } = spec.data(o, flags);
  const grid = train.grid;
  console.log(
    `${spec.title}: grid ${grid.axes.map((a) => `${a.name} ${a.n}`).join(" × ")}, ${train.u0.shape[0]} training and ` +
      `${test.u0.shape[0]} test solutions (${((performance.now() - t0) / 1000).toFixed(1)} s to generate)`,
  );
  const experts = pde.parseExperts(o.experts, grid.shape.length);
  const network: pde.PdeNetworkOptions = {
    width: o.width,
    modes: o.modes,
    layers: o.layers,
    fc: o.fc,
    dtype: o.dtype,
    seed,
    checkpoint: flags.recompute === true,
    ...(spec.network ?? {}),
  };
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
      constraint: { ...spec.constraint(o, flags), solver },
      loss: { ...spec.loss, interface: interfaceWeight },
      residual,
    });
    console.log(`\n== ${method.label}: ${method.model.numParameters()} parameters`);
    const optimizer = new optim.Adam(method.model, {
      lr: optim.exponentialDecay({ lr: o.lr, gamma: 0.1, every: Math.max(1, o.steps) }),
    });
    const run = await pde.train({
      method,
      optimizer,
      train,
      test,
      steps: o.steps,
      batchSize: Math.min(o.batch, train.u0.shape[0]),
      seed,
      logEvery: o.logEvery,
      evalEvery: Math.max(o.logEvery, Math.round(o.steps / 10)),
      checkpointDir: join(outDir, "checkpoints", kind),
      checkpointEvery: ckptEvery,
      resume: flags.resume === true,
      maxSeconds: flags["max-seconds"] === undefined ? undefined : pde.numberFlag(flags, "max-seconds", 0, { min: 0 }),
    });
    const m = pde.evaluate(method, test, { batchSize: o.batch, keep: 1 });
    const line = `${method.label}: test relative L2 ${sci(m.relL2.mean)} ± ${sci(m.relL2.std)}, residual ${
      sci(m.residual)
    } (reference solution ${sci(m.referenceResidual)}), ${run.step} steps at ${
      run.secondsPerStep.toFixed(3)
    } s/step, inference ${m.inference.secondsPerBatch.toFixed(3)} s per batch of ${m.inference.batchSize}`;
    console.log(line);
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
  const reportPath = await report.save(join(outDir, "report.html"));
  await pde.writeJson(join(outDir, "metrics.json"), metrics);
  console.log(`\nwrote ${reportPath} and ${join(outDir, "metrics.json")} (${metrics.seconds.toFixed(1)} s in all)`);
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

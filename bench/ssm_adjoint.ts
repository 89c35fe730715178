/**
 * Adjoint sharding against back-propagation on the selective SSM language model (src/lm/ssm.ts,
 * src/lm/adjoint_sharding.ts). Four parts, each printing a markdown table:
 *
 * - `cost` (default): peak memory above the model's own and time of one gradient against the
 *   sequence length T, for backprop, the paper's adjoint sharding, the exact sharded form and the
 *   truncated form (window `--window`); the ratio of backprop's peak to adjoint sharding's beside
 *   the paper's "up to 3×". The quadratic forms (T(T+1)/2 VJPs per layer) stop at `--max-quadratic`.
 * - `deviation`: the paper's form against backprop per parameter group (relative error in the
 *   L2 norm, cosine similarity), for K layers in `--layers`, float64; at initialisation and after
 *   `--trained` backprop steps on a byte-level copy of this repository's README.
 * - `truncation`: the truncated form's error against the exact gradient as T̄ goes from 1 to T.
 * - `training`: the runs of examples/train_ssm_lm.ts in `--runs` (their metrics.jsonl) side by
 *   side: final and best validation loss, speed, VJPs per step.
 *
 * `--html PATH` also writes the part's curves as a self-contained plotly report (truncation,
 * training).
 *
 *   deno run -A bench/ssm_adjoint.ts                                    # cost, T = 1K … 16K
 *   deno run -A bench/ssm_adjoint.ts --part deviation --layers 1,2,4,8 --length 128 --trained 200
 *   deno run -A bench/ssm_adjoint.ts --part truncation --layers 2 --length 256 --html out/ssm_truncation.html
 *   deno run -A bench/ssm_adjoint.ts --part training --runs out/ssm_runs/backprop,out/ssm_runs/w16 \
 *     --html out/ssm_training.html
 *
 * On a GPU (the same tables; memory is the device's bytes), T up to 64K, alone or in the GPU pass:
 *
 *   PATCHWORK_BACKEND=cuda deno run -A bench/ssm_adjoint.ts \
 *     --lengths 1024,2048,4096,8192,16384,32768,65536 --max-quadratic 32768 --rows 65536
 *   SSM_ARGS="--lengths 1024,2048,4096,8192,16384,32768,65536 --max-quadratic 32768 --rows 65536" \
 *     bench/gpu_lm_pass.sh ssm
 *
 * `--rows` sets the trade: a launch's buffers grow with it (about 0.9 GiB at 262144 rows on an
 * H200, where T = 4096 took 0.42 s for adjoint sharding) and the launches fall with it; the
 * sharded forms' memory falls below backprop's only once T is large against the rows.
 *
 * @module
 */

import { lm, memory, optim, resetPeakMemory, tidy, train, viz } from "../mod.ts";

const flags = train.parseFlags(
  {
    part: {
      type: "choice",
      choices: ["cost", "deviation", "truncation", "training"],
      default: "cost",
      help: "what to measure",
    },
    lengths: { type: "integers", default: [1024, 2048, 4096, 8192, 16384], min: 2, help: "cost: lengths T" },
    methods: { type: "string", default: lm.SSM_GRADIENT_METHODS.join(","), help: "cost: gradients (comma-separated)" },
    window: { type: "integer", default: 256, min: 1, help: "cost: the truncated form's window T̄" },
    maxQuadratic: { type: "integer", default: 4096, min: 1, help: "cost: longest T for adjoint and adjoint-exact" },
    layers: { type: "integers", default: [2], min: 1, help: "layers K (deviation: each)" },
    length: { type: "integer", default: 128, min: 2, help: "deviation, truncation: the length T" },
    trained: { type: "integer", default: 0, min: 0, help: "deviation: also after this many backprop steps" },
    hidden: { type: "integer", default: 32, min: 1, help: "width P" },
    state: { type: "integer", default: 8, min: 1, help: "state width N" },
    rows: { type: "integer", default: 4096, min: 1, help: "VJPs per batched launch" },
    seed: { type: "integer", default: 0, min: 0, help: "weights and data seed" },
    runs: { type: "string", default: "", help: "training: output folders of train_ssm_lm.ts (comma-separated)" },
    html: { type: "string", help: "truncation, training: also write the curves to this HTML report" },
  },
  Deno.args,
  { usage: "deno run -A bench/ssm_adjoint.ts [flags]" },
);

const MiB = 2 ** 20;

function config(layers: number): lm.SSMConfig {
  return lm.ssmConfig({ vocabSize: 259, hiddenSize: flags.hidden, stateSize: flags.state, numLayers: layers });
}

/** Byte tokens of the README, repeated to `width` and offset by `seed`. */
const text = new lm.ByteTokenizer().encode(await Deno.readTextFile(new URL("../README.md", import.meta.url)));
function sequence(width: number, seed: number): number[][] {
  return [Array.from({ length: width }, (_, i) => text[(seed * 997 + i) % text.length])];
}

/** Each parameter's gradient (zeros where there is none), by name. */
function gradientsOf(model: lm.SSMForCausalLM, options: lm.SSMBackwardOptions, seq: number[][]) {
  model.zeroGrad();
  const result = lm.ssmBackward(model, seq, options);
  const grads = new Map<string, Float64Array>();
  for (const [name, p] of model.namedParameters()) {
    grads.set(name, p.grad ? Float64Array.from(p.grad.toTypedArray()) : new Float64Array(p.size));
  }
  return { result, grads };
}

const GROUPS: [string, RegExp][] = [
  ["embedding", /^embed_tokens/],
  ["layer norms", /^layers\.\d+\.norm/],
  ["𝒜 (a_proj)", /a_proj/],
  ["ℬ (b_proj)", /b_proj/],
  ["𝒞 (c_proj)", /c_proj/],
  ["head (norm, Ω)", /^(norm|lm_head)/],
];

/** Relative L2 error and cosine similarity of `got` against `want`, over the parameters named by `pick`. */
function compare(got: Map<string, Float64Array>, want: Map<string, Float64Array>, pick: RegExp) {
  let dot = 0, gg = 0, ww = 0, dd = 0;
  for (const [name, w] of want) {
    if (!pick.test(name)) continue;
    const g = got.get(name)!;
    for (let i = 0; i < w.length; i++) {
      dot += g[i] * w[i];
      gg += g[i] * g[i];
      ww += w[i] * w[i];
      dd += (g[i] - w[i]) ** 2;
    }
  }
  return { rel: Math.sqrt(dd / ww), cos: gg === 0 ? 0 : dot / Math.sqrt(gg * ww) };
}

const fmt = (
  x: number,
) => (x === 0 ? "0" : Math.abs(x) >= 0.01 && Math.abs(x) < 1000 ? x.toPrecision(3) : x.toExponential(2));

function cost(): void {
  const methods = flags.methods.split(",") as lm.SSMGradientMethod[];
  // Warm-up: each method once on a short sequence (compilation, the backend's first allocations).
  for (const method of methods) {
    const model = new lm.SSMForCausalLM(config(1), { seed: flags.seed });
    tidy(() =>
      lm.ssmBackward(model, sequence(65, flags.seed), { method, window: method === "truncated" ? 8 : undefined })
    );
  }
  for (const layers of flags.layers) {
    console.log(
      `\nK = ${layers}, P = ${flags.hidden}, N = ${flags.state}, float32, batch 1, ${flags.rows} VJPs per launch`,
    );
    console.log("| T | gradient | VJPs 𝒜/layer | launches/layer | peak MiB (above weights) | seconds |");
    console.log("|---|---|---|---|---|---|");
    for (const length of flags.lengths) {
      const peaks: Record<string, number> = {};
      for (const method of methods) {
        if ((method === "adjoint" || method === "adjoint-exact") && length > flags.maxQuadratic) continue;
        const model = new lm.SSMForCausalLM(config(layers), { seed: flags.seed });
        const seq = sequence(length + 1, flags.seed);
        const window = method === "truncated" ? Math.min(flags.window, length) : undefined;
        const base = memory().current;
        resetPeakMemory();
        const t0 = performance.now();
        const r = tidy(() => lm.ssmBackward(model, seq, { method, window, piecesPerLaunch: flags.rows }));
        const seconds = (performance.now() - t0) / 1000;
        const peak = (memory().peak - base) / MiB;
        peaks[method] = peak;
        const v = r.vjps[0];
        console.log(
          `| ${length} | ${method}${window ? ` T̄=${window}` : ""} | ${v ? v.a : "—"} | ${v ? v.launches : "—"} | ` +
            `${peak.toFixed(1)} | ${seconds.toFixed(2)} |`,
        );
        model.parameters().forEach((p) => (p.grad = null));
      }
      // Backprop's peak over each sharded form's (the paper's "up to 3×" is backprop over adjoint sharding).
      for (const method of methods.filter((m) => m !== "backprop" && peaks[m] && peaks.backprop)) {
        console.log(
          `| ${length} | backprop / ${method} peak | | | ${(peaks.backprop / peaks[method]).toFixed(2)}× | |`,
        );
      }
    }
  }
}

function trainBriefly(model: lm.SSMForCausalLM, steps: number): void {
  const opt = new optim.AdamW(model.parameters(), { lr: 3e-3 });
  for (let s = 0; s < steps; s++) {
    tidy(() => {
      opt.zeroGrad();
      lm.ssmBackward(model, sequence(flags.length + 1, flags.seed + 1 + s), { method: "backprop" });
      opt.step();
    });
  }
}

function deviation(): void {
  const seq = sequence(flags.length + 1, flags.seed);
  console.log(
    `\nThe paper's form against backprop: P = ${flags.hidden}, N = ${flags.state}, T = ${flags.length}, float64`,
  );
  console.log(`| K | weights | ${GROUPS.map(([g]) => `${g} rel / cos`).join(" | ")} | exact form, max rel |`);
  console.log(`|---|---|${GROUPS.map(() => "---|").join("")}---|`);
  for (const layers of flags.layers) {
    const model = new lm.SSMForCausalLM(config(layers), { seed: flags.seed, dtype: "float64" });
    for (const stage of flags.trained > 0 ? [0, flags.trained] : [0]) {
      if (stage > 0) trainBriefly(model, stage);
      const ref = gradientsOf(model, { method: "backprop" }, seq).grads;
      const paper = gradientsOf(model, { method: "adjoint", piecesPerLaunch: flags.rows }, seq).grads;
      const exact = gradientsOf(model, { method: "adjoint-exact", piecesPerLaunch: flags.rows }, seq).grads;
      const cells = GROUPS.map(([, re]) => compare(paper, ref, re)).map((c) => `${fmt(c.rel)} / ${fmt(c.cos)}`);
      const worst = Math.max(...GROUPS.map(([, re]) => compare(exact, ref, re).rel));
      console.log(
        `| ${layers} | ${stage ? `after ${stage} steps` : "initial"} | ${cells.join(" | ")} | ${fmt(worst)} |`,
      );
    }
  }
}

function truncation(): viz.Series[] {
  const seq = sequence(flags.length + 1, flags.seed);
  const all = /./;
  const series: viz.Series[] = [];
  for (const layers of flags.layers) {
    const model = new lm.SSMForCausalLM(config(layers), { seed: flags.seed, dtype: "float64" });
    const exact = gradientsOf(model, { method: "adjoint-exact", piecesPerLaunch: flags.rows }, seq).grads;
    console.log(
      `\nTruncated against exact: K = ${layers}, P = ${flags.hidden}, N = ${flags.state}, T = ${flags.length}`,
    );
    console.log(`| T̄ | VJPs 𝒜/layer | rel | cos | ${GROUPS.map(([g]) => `${g} rel`).join(" | ")} |`);
    console.log(`|---|---|---|---|${GROUPS.map(() => "---|").join("")}`);
    const curve = { name: `K = ${layers}: relative error`, x: [] as number[], y: [] as number[] };
    for (let w = 1; w < 2 * flags.length; w *= 2) {
      const window = Math.min(w, flags.length);
      const got = gradientsOf(model, { method: "truncated", window, piecesPerLaunch: flags.rows }, seq);
      const c = compare(got.grads, exact, all);
      const groups = GROUPS.map(([, re]) => fmt(compare(got.grads, exact, re).rel));
      console.log(`| ${window} | ${got.result.vjps[0].a} | ${fmt(c.rel)} | ${fmt(c.cos)} | ${groups.join(" | ")} |`);
      curve.x.push(window);
      curve.y.push(c.rel);
    }
    series.push(curve);
  }
  return series;
}

interface RunRecord {
  step: number;
  loss: number;
  valLoss?: number;
  unigramLoss?: number;
  tokensPerSecond: number;
  vjps?: number;
}

/** The runs' metrics side by side; their loss curves. */
async function training(report: viz.Report | null): Promise<void> {
  const dirs = flags.runs.split(",").filter((d) => d);
  if (!dirs.length) throw new Error("--part training needs --runs DIR,DIR,… (output folders of train_ssm_lm.ts)");
  const runs = await Promise.all(dirs.map(async (dir) => {
    const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
    return {
      name: dir.split("/").findLast((p) => p) ?? dir,
      records: text.trim().split("\n").map((l) => JSON.parse(l) as RunRecord),
    };
  }));
  const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    "| run | steps | training loss (last) | validation loss (last) | best | unigram | tok/s (median) | VJPs/step |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const { name, records } of runs) {
    const evals = records.filter((r) => r.valLoss !== undefined);
    if (!evals.length) throw new Error(`${name}: no validation loss in metrics.jsonl (run with --eval-every)`);
    const last = records.at(-1)!, lastEval = evals.at(-1)!;
    console.log(
      `| ${name} | ${last.step} | ${last.loss.toFixed(4)} | ${lastEval.valLoss!.toFixed(4)} | ` +
        `${Math.min(...evals.map((r) => r.valLoss!)).toFixed(4)} | ${lastEval.unigramLoss!.toFixed(4)} | ` +
        `${Math.round(median(records.map((r) => r.tokensPerSecond)))} | ${fmt(last.vjps ?? 0)} |`,
    );
  }
  report?.lineChart(
    runs.map(({ name, records }) => {
      const evals = records.filter((r) => r.valLoss !== undefined);
      return { name, x: evals.map((r) => r.step), y: evals.map((r) => r.valLoss!) };
    }),
    { title: "validation loss (nats/token)", xTitle: "step" },
  ).lineChart(
    runs.map(({ name, records }) => ({ name, x: records.map((r) => r.step), y: records.map((r) => r.loss) })),
    { title: "training loss (nats/token)", xTitle: "step" },
  );
}

const report = flags.html ? new viz.Report("Adjoint sharding of a selective SSM", { subtitle: flags.part }) : null;
if (flags.part === "cost") cost();
else if (flags.part === "deviation") deviation();
else if (flags.part === "truncation") {
  report?.lineChart(truncation(), { title: "truncated against exact gradient", xTitle: "T̄", logX: true });
} else await training(report);
if (report) console.log(`\nwrote ${await report.save(flags.html!)}`);

/**
 * Chunk-wise training against the sequence length, SpaCO's gradient against SeCO's, and SpaCO's
 * effectiveness (bench/RESULTS.md). Every part runs on the default backend (the CPU, or the GPU
 * with PATCHWORK_BACKEND=cuda).
 *
 * Part `memory`: one model and chunk size; for each length L and method (full backprop, per-layer
 * checkpointing, SeCO, SpaCO with t = k/8), the peak memory of an optimiser step and its time. The
 * column "beyond" is the peak minus the weights, the trained parameters' gradients and optimiser
 * state, the key/value cache and its gradient — what SeCO keeps flat. A row that fails (out of
 * memory) says so and the others go on.
 *
 * Part `time`: full backprop, SeCO and SpaCO (t = k/8; its loss estimated from the drawn chunks,
 * and with `exactLoss`, every chunk's loss computed as the paper's code does) timed in turn, round
 * after round (the fastest of each kept), so that the ratios hold on shared cores; SeCO's forward
 * pass (every chunk's keys and values) timed on its own.
 *
 * Part `gradient`: at one length, SeCO's gradient against full backprop's, then `--draws` SpaCO
 * estimates for t = k/4, k/8, k/16 with each compensation: their mean error and cosine against the
 * exact gradient, the relative variance E‖ĝ − g‖²/‖g‖², and the error of their mean over its
 * standard error (about 1 when the estimate is unbiased, far above when it is not).
 *
 * Part `effectiveness`: the paper's experiment scaled down — the same model trained from scratch
 * on the same batches of the Brown corpus (bytes) by full backprop, SeCO and SpaCO at t = k/4,
 * k/8, k/16 (both compensations): the final training and held-out losses, and the loss curves as
 * a self-contained plotly page (`--html`).
 *
 * CPU (bench/RESULTS.md):
 *
 *   deno run -A bench/lm_chunked.ts --part memory
 *   deno run -A bench/lm_chunked.ts --part time
 *   deno run -A bench/lm_chunked.ts --part gradient
 *   deno run -A bench/lm_chunked.ts --part effectiveness
 *
 * GPU (the paper's settings: Llama shapes in bfloat16, LoRA r = 8 on q_proj and v_proj, chunk 128,
 * PG-19-like lengths up to 16K; the effectiveness part from scratch at L = 4096):
 *
 *   PATCHWORK_BACKEND=cuda deno run -A bench/lm_chunked.ts --part memory --preset llama-3-8b \
 *     --dtype bfloat16 --lora-r 8 --lengths 1024,2048,4096,8192,16384 --chunk 128 --repeats 3
 *   PATCHWORK_BACKEND=cuda deno run -A bench/lm_chunked.ts --part gradient --preset llama-3.2-1b \
 *     --grad-len 4096 --grad-chunk 128 --draws 32
 *   PATCHWORK_BACKEND=cuda deno run -A bench/lm_chunked.ts --part effectiveness --preset llama-3.2-1b \
 *     --dtype bfloat16 --seq-len 4096 --eff-chunk 128 --batch 4 --steps 500 --lr 3e-4
 *
 * bench/lm_chunked_scale.ts times the same methods at the paper's scale beside PyTorch's SeCO.
 */

import { Generator, itemSize, lm, memory, nn, optim, resetPeakMemory, train, viz } from "../mod.ts";
import { deviceLine, timed } from "./lm_bench_util.ts";

const flags = train.parseFlags(
  {
    part: {
      type: "choice",
      choices: ["memory", "time", "gradient", "effectiveness", "all"],
      default: "all",
      help: "what to measure",
    },
    preset: { type: "string", default: "tiny", help: `model shape (${Object.keys(lm.PRESETS).join(", ")})` },
    dtype: { type: "choice", choices: ["float32", "bfloat16", "float64"], default: "float32", help: "weights" },
    loraR: { type: "integer", default: 0, min: 0, help: "LoRA rank on q_proj, v_proj (alpha 2r; 0: all weights)" },
    lengths: { type: "integers", default: [1024, 2048, 4096, 8192, 16384], min: 2, help: "memory: lengths" },
    chunk: { type: "integer", default: 128, min: 1, help: "memory: tokens per chunk" },
    repeats: { type: "integer", default: 2, min: 1, help: "memory: timed steps per row below 8K (fastest kept)" },
    timeLengths: { type: "integers", default: [1024, 2048, 4096], min: 2, help: "time: lengths" },
    rounds: { type: "integer", default: 6, min: 1, help: "time: rounds of the three methods (fastest kept)" },
    gradLen: { type: "integer", default: 1024, min: 2, help: "gradient: sequence length" },
    gradChunk: { type: "integer", default: 32, min: 1, help: "gradient: tokens per chunk" },
    draws: { type: "integer", default: 24, min: 2, help: "gradient: SpaCO draws per setting" },
    seqLen: { type: "integer", default: 512, min: 2, help: "effectiveness: sequence length" },
    effChunk: { type: "integer", default: 32, min: 1, help: "effectiveness: tokens per chunk (k = 16)" },
    batch: { type: "integer", default: 2, min: 1, help: "effectiveness: sequences per step" },
    steps: { type: "integer", default: 150, min: 1, help: "effectiveness: optimiser steps" },
    lr: { type: "number", default: 3e-3, min: 0, help: "effectiveness: peak learning rate" },
    evalEvery: { type: "integer", default: 25, min: 1, help: "effectiveness: steps between held-out losses" },
    html: { type: "string", default: "out/lm_chunked_effectiveness.html", help: "effectiveness: loss curves" },
  },
  Deno.args,
  { usage: "deno run -A bench/lm_chunked.ts [flags]" },
);

const MiB = 2 ** 20;
const dtype = flags.dtype;
const shape = lm.preset(flags.preset);

/** The preset at the chosen dtype, long enough for `length`; LoRA adapters with --lora-r. */
function makeModel(length: number, vocabSize = shape.vocabSize): lm.LlamaForCausalLM {
  const config = lm.llamaConfig({
    ...shape,
    vocabSize,
    maxPositionEmbeddings: Math.max(shape.maxPositionEmbeddings, length),
  });
  const model = new lm.LlamaForCausalLM(config, { seed: 0, dtype });
  if (flags.loraR > 0) nn.applyLora(model, { r: flags.loraR, alpha: 2 * flags.loraR, targets: ["q_proj", "v_proj"] });
  return model;
}

const trained = (model: lm.LlamaForCausalLM) => model.parameters().filter((p) => p.requiresGrad);

function optimizer(model: lm.LlamaForCausalLM, lr: optim.LearningRate): optim.AdamW {
  return new optim.AdamW(trained(model), { lr, betas: [0.9, 0.95], weightDecay: 0.05 });
}

/** SpaCO's t for k chunks: k/f rounded, one at least. */
const sampled = (k: number, f: number) => Math.max(1, Math.round(k / f));

function spaco(t: number, compensation: "unbiased" | "paper", exactLoss = false): lm.ChunkedOptions {
  return { method: "spaco", spacoChunks: t, compensation, exactLoss };
}

function describe(model: lm.LlamaForCausalLM): string {
  const c = model.config;
  const lora = flags.loraR > 0 ? `LoRA r = ${flags.loraR} on q_proj, v_proj` : "all weights trained";
  return `${flags.preset} Llama (${c.numHiddenLayers} layers, width ${c.hiddenSize}, ${c.numAttentionHeads} heads / ` +
    `${c.numKeyValueHeads} key-value heads, vocabulary ${c.vocabSize}, ${model.numParameters()} parameters), ` +
    `${dtype}, ${lora}, AdamW; ${deviceLine()}`;
}

/** The 1-, 5- and 15-minute load averages (Linux), or a dash: the cores may be shared. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(", ");
  } catch {
    return "—";
  }
}

async function memoryPart(): Promise<void> {
  const longest = Math.max(...flags.lengths);
  const model = makeModel(longest);
  const c = model.config, bytes = itemSize(dtype);
  const gradBytes = trained(model).reduce((a, p) => a + bytes * p.size, 0);
  const kv = (l: number) => c.numHiddenLayers * 2 * c.numKeyValueHeads * c.headDim * l * bytes;
  const corpus = await lm.loadCorpus("brown", new lm.ByteTokenizer(), { seqLen: longest });
  console.log(
    `memory and time per step: ${describe(model)}; batch 1, chunk ${flags.chunk}; load average ${loadAverage()}\n`,
  );
  console.log("| L | method | peak MiB | beyond weights+grads+Adam+KV+KV-grad, MiB | s/step | tokens/s |");
  console.log("|---|---|---|---|---|---|");
  const opt = optimizer(model, 1e-5);
  // One step first, so the optimiser state exists before any row is measured.
  lm.chunkedGradients(model, [[[...corpus.train.get(0).subarray(0, flags.chunk + 1)]]], { chunkSize: flags.chunk });
  opt.step();
  const rows = new Map<string, { beyond: number; seconds: number }>();
  for (const length of flags.lengths) {
    const seq = [Array.from(corpus.train.get(0).subarray(0, length + 1))];
    const k = Math.ceil(length / flags.chunk);
    const methods: [string, lm.ChunkedOptions][] = [
      ["full", { method: "full" }],
      ["checkpoint", { method: "checkpoint" }],
      ["seco", { method: "seco" }],
      [`spaco t=${sampled(k, 8)}`, spaco(sampled(k, 8), "unbiased")],
    ];
    for (const [name, o] of methods) {
      let best = Infinity, peak = 0, base = 0;
      try {
        for (let r = 0; r < (length < 8192 ? flags.repeats : 1); r++) {
          opt.zeroGrad();
          base = memory().current; // weights and optimiser state
          resetPeakMemory();
          const step = () => (lm.chunkedGradients(model, [seq], { ...o, chunkSize: flags.chunk }), opt.step());
          best = Math.min(best, timed(step).seconds);
          peak = memory().peak - base;
        }
      } catch (e) {
        opt.zeroGrad();
        console.log(`| ${length} | ${name} | failed: ${(e as Error).message.slice(0, 100)} | | | |`);
        continue;
      }
      const beyond = peak - gradBytes - 2 * kv(length);
      rows.set(`${length} ${name.split(" ")[0]}`, { beyond, seconds: best });
      console.log(
        `| ${length} | ${name} | ${((peak + base) / MiB).toFixed(1)} | ${(beyond / MiB).toFixed(2)} | ` +
          `${best.toFixed(3)} | ${(length / best).toFixed(0)} |`,
      );
    }
  }
  const seco = flags.lengths.map((l) => rows.get(`${l} seco`)?.beyond).filter((b) => b !== undefined);
  const spread = (Math.max(...seco) - Math.min(...seco)) / Math.min(...seco);
  const ratio = (a: string, b: string, l: number) => {
    const x = rows.get(`${l} ${a}`), y = rows.get(`${l} ${b}`);
    return x && y ? (x.seconds / y.seconds).toFixed(2) : "—";
  };
  console.log(
    `\nSeCO's memory beyond weights, gradients, optimiser state, K/V and K/V gradients varies by ` +
      `${(100 * spread).toFixed(1)}% across L (goal ≤ 10%); SeCO/full time by L: ` +
      `${flags.lengths.map((l) => ratio("seco", "full", l)).join(", ")} (goal ≤ 1.4); ` +
      `SpaCO (t = k/8)/SeCO time at L = ${longest}: ${ratio("spaco", "seco", longest)} (goal ≤ 0.4); ` +
      `load average at the end ${loadAverage()}`,
  );
}

/**
 * Full backprop, SeCO and SpaCO (t = k/8) timed in turn, round after round, so that the load of
 * shared cores weighs on each alike; the fastest of each, and SeCO's forward pass (the part SpaCO
 * keeps whole) on its own.
 */
async function timePart(): Promise<void> {
  const longest = Math.max(...flags.timeLengths);
  const model = makeModel(longest);
  const corpus = await lm.loadCorpus("brown", new lm.ByteTokenizer(), { seqLen: longest });
  console.log(
    `\ngradient time, the methods in turn (fastest of ${flags.rounds} rounds after one): ${describe(model)}; ` +
      `batch 1, chunk ${flags.chunk}; load average ${loadAverage()}\n`,
  );
  console.log(
    "| L | full s | full's forward s | SeCO s | SeCO's forward s | SpaCO s | SpaCO, exact loss s | SeCO/full | " +
      "SpaCO/SeCO | SpaCO, exact loss/SeCO |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const length of flags.timeLengths) {
    const seq = [Array.from(corpus.train.get(0).subarray(0, length + 1))];
    const k = Math.ceil(length / flags.chunk);
    const methods: [string, lm.ChunkedOptions][] = [
      ["full", { method: "full" }],
      ["seco", { method: "seco" }],
      ["spaco", spaco(sampled(k, 8), "unbiased")],
      ["spaco exact", spaco(sampled(k, 8), "unbiased", true)],
    ];
    const best = new Map<string, number>();
    const keep = (key: string, seconds: number) => best.set(key, Math.min(best.get(key) ?? Infinity, seconds));
    for (let r = 0; r <= flags.rounds; r++) {
      for (const [name, o] of methods) {
        // The forward pass ends with the last chunk's (full backprop: its one graph's).
        const last = o.method === "full" ? 0 : k - 1;
        let forward = 0;
        const t0 = performance.now();
        const onChunk = ({ index, phase }: { index: number; phase: string }) => {
          if (phase === "forward" && index === last) forward = (performance.now() - t0) / 1000;
        };
        const { seconds } = timed(() => lm.chunkedBackward(model, seq, { ...o, chunkSize: flags.chunk, onChunk }));
        model.zeroGrad();
        if (r === 0) continue; // warm-up
        keep(name, seconds);
        keep(`${name} forward`, forward);
      }
    }
    const s = (key: string) => best.get(key)!;
    console.log(
      `| ${length} | ${s("full").toFixed(3)} | ${s("full forward").toFixed(3)} | ${s("seco").toFixed(3)} | ` +
        `${s("seco forward").toFixed(3)} | ${s("spaco").toFixed(3)} | ${s("spaco exact").toFixed(3)} | ` +
        `${(s("seco") / s("full")).toFixed(2)} | ${(s("spaco") / s("seco")).toFixed(2)} | ` +
        `${(s("spaco exact") / s("seco")).toFixed(2)} |`,
    );
  }
  console.log(`\nload average at the end ${loadAverage()}`);
}

/** The trained parameters' gradients as one float64 vector, cleared. */
function takeGradient(model: lm.LlamaForCausalLM): Float64Array {
  const params = trained(model);
  const out = new Float64Array(params.reduce((a, p) => a + p.size, 0));
  let at = 0;
  for (const p of params) {
    if (p.grad) out.set(p.grad.toTypedArray(), at);
    at += p.size;
  }
  model.zeroGrad();
  return out;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i], 0);
const distance = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]) ** 2, 0));

async function gradientPart(): Promise<void> {
  const model = makeModel(flags.gradLen);
  const corpus = await lm.loadCorpus("brown", new lm.ByteTokenizer(), { seqLen: flags.gradLen });
  const seq = [[...corpus.train.get(0)]];
  const c = flags.gradChunk, k = Math.ceil(flags.gradLen / c);
  const gradient = (
    o: lm.ChunkedOptions,
  ) => (lm.chunkedBackward(model, seq, { ...o, chunkSize: c }), takeGradient(model));
  const exact = gradient({ method: "seco" });
  const full = gradient({ method: "full" });
  const norm = Math.sqrt(dot(exact, exact));
  console.log(
    `\ngradients at initialisation: ${describe(model)}; one sequence of L = ${flags.gradLen}, chunk ${c} ` +
      `(k = ${k}); SeCO against full backprop: ‖g_SeCO − g_full‖/‖g_full‖ = ` +
      `${(distance(exact, full) / Math.sqrt(dot(full, full))).toExponential(2)}\n`,
  );
  console.log(
    "| SpaCO | draws | mean ‖ĝ − g‖/‖g‖ | mean cos(ĝ, g) | E‖ĝ − g‖²/‖g‖² | ‖mean − g‖/‖g‖ | " +
      "‖mean − g‖ / standard error | best c: ‖c·mean − g‖/‖g‖ | s/draw |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const compensation of ["unbiased", "paper"] as const) {
    for (const f of [4, 8, 16]) {
      const t = sampled(k, f);
      const generator = new Generator(1);
      const mean = new Float64Array(exact.length);
      const draws: Float64Array[] = [];
      let seconds = 0;
      for (let d = 0; d < flags.draws; d++) {
        seconds += timed(() => draws.push(gradient({ ...spaco(t, compensation), generator }))).seconds;
        draws[d].forEach((x, i) => (mean[i] += x / flags.draws));
      }
      const errors = draws.map((g) => distance(g, exact) / norm);
      const cosines = draws.map((g) => dot(g, exact) / (norm * Math.sqrt(dot(g, g))));
      const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      // tr Σ / N estimated from the spread of the draws about their mean.
      const spreadSq = draws.reduce((a, g) => a + distance(g, mean) ** 2, 0) / (flags.draws * (flags.draws - 1));
      // The paper's estimate is the gradient up to a factor at best: its error after the best one.
      const factor = dot(mean, exact) / dot(mean, mean);
      const offBy = (scale: number) => distance(mean.map((x) => scale * x), exact) / norm;
      const cells = [
        `t = k/${f} = ${t}, ${compensation}`,
        flags.draws,
        avg(errors).toFixed(3),
        avg(cosines).toFixed(3),
        avg(errors.map((e) => e * e)).toFixed(3),
        offBy(1).toFixed(3),
        (offBy(1) * norm / Math.sqrt(spreadSq)).toFixed(2),
        `${factor.toFixed(2)}: ${offBy(factor).toFixed(3)}`,
        (seconds / flags.draws).toFixed(3),
      ];
      console.log(`| ${cells.join(" | ")} |`);
    }
  }
}

/** The mean of each window of `w` values ending at each point. */
function movingAverage(xs: readonly number[], w: number): number[] {
  let sum = 0;
  return xs.map((x, i) => {
    sum += x - (i >= w ? xs[i - w] : 0);
    return sum / Math.min(i + 1, w);
  });
}

async function effectivenessPart(): Promise<void> {
  const tokenizer = new lm.ByteTokenizer();
  const corpus = await lm.loadCorpus("brown", tokenizer, { seqLen: flags.seqLen });
  const k = Math.ceil(flags.seqLen / flags.effChunk);
  const heldOut = Array.from(
    { length: Math.min(16, corpus.validation.length) },
    (_, i) => [...corpus.validation.get(i)],
  );
  const runs: [string, lm.ChunkedOptions][] = [["full backprop", { method: "full" }], ["SeCO (exact)", {
    method: "seco",
  }]];
  for (const compensation of ["unbiased", "paper"] as const) {
    for (const f of [4, 8, 16]) {
      // Every chunk's loss, as the paper's code computes it: the training curves are exact.
      runs.push([`SpaCO t = k/${f} = ${sampled(k, f)}, ${compensation}`, spaco(sampled(k, f), compensation, true)]);
    }
  }
  const unigram = lm.unigramCrossEntropy(corpus.train, corpus.validation, tokenizer.vocabSize);
  const header =
    `Brown corpus (bytes), ${flags.preset} shape from scratch, L = ${flags.seqLen}, chunk ${flags.effChunk} ` +
    `(k = ${k}), batch ${flags.batch}, ${flags.steps} steps, AdamW (0.9, 0.95), weight decay 0.05, lr ${flags.lr} with 1% ` +
    `warm-up then cosine to 0, gradients clipped to norm 1; the same batches for every run; unigram held-out loss ` +
    `${unigram.toFixed(4)} nats/byte`;
  console.log(`\n${header}\n`);
  console.log("| gradient | training loss, mean of the last 10% of steps | held-out loss | s/step |");
  console.log("|---|---|---|---|");
  const curves: viz.Series[] = [], held: viz.Series[] = [];
  for (const [name, o] of runs) {
    const model = makeModel(flags.seqLen, tokenizer.vocabSize);
    const schedule = optim.warmupCosine({
      peakLr: flags.lr,
      warmupSteps: Math.round(flags.steps / 100),
      totalSteps: flags.steps,
    });
    const opt = optimizer(model, schedule);
    const generator = o.method === "spaco" ? new Generator(1) : undefined;
    const losses: number[] = [], evalSteps: number[] = [], evals: number[] = [];
    const evaluate = (step: number) => {
      evalSteps.push(step);
      evals.push(lm.evaluateLoss(model, heldOut, { chunkSize: flags.effChunk }));
    };
    let seconds = 0;
    for (let step = 0; step < flags.steps; step++) {
      if (step % flags.evalEvery === 0) evaluate(step);
      seconds += timed(() => {
        opt.zeroGrad();
        const batch = lm.batchAt(corpus.train, flags.batch, 0, step);
        losses.push(lm.chunkedGradients(model, [batch], { ...o, chunkSize: flags.effChunk, generator }).loss);
        optim.clipGradNorm(trained(model), 1);
        opt.step();
      }).seconds;
    }
    evaluate(flags.steps);
    const tail = losses.slice(-Math.max(1, Math.round(flags.steps / 10)));
    const final = tail.reduce((a, b) => a + b, 0) / tail.length;
    console.log(
      `| ${name} | ${final.toFixed(4)} | ${evals.at(-1)!.toFixed(4)} | ${(seconds / flags.steps).toFixed(3)} |`,
    );
    curves.push({ name, y: movingAverage(losses, 10) });
    held.push({ name, x: evalSteps, y: evals });
  }
  const report = new viz.Report("Chunk-wise training: exact gradients and SpaCO", { subtitle: header })
    .lineChart(curves, { title: "training loss (mean of the last 10 steps)", xTitle: "step", yTitle: "nats/byte" })
    .lineChart([...held, { name: "unigram", x: [0, flags.steps], y: [unigram, unigram] }], {
      title: "held-out loss",
      xTitle: "step",
      yTitle: "nats/byte",
    });
  console.log(`\nloss curves: ${await report.save(flags.html)}`);
}

if (flags.part === "memory" || flags.part === "all") await memoryPart();
if (flags.part === "time" || flags.part === "all") await timePart();
if (flags.part === "gradient" || flags.part === "all") await gradientPart();
if (flags.part === "effectiveness" || flags.part === "all") await effectivenessPart();

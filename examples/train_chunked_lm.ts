/**
 * Chunk-wise language-model training from the command line (SeCO / SpaCO, Li et al. 2025): a
 * Llama from scratch, or a Hugging Face checkpoint folder fine-tuned with LoRA, on sequences cut
 * into chunks so that one chunk's activations are alive at a time in the backward pass.
 *
 *   deno task lm-demo      # a tiny Llama from scratch on the Brown corpus, CPU, under 3 minutes
 *   deno run -A examples/train_chunked_lm.ts --model models/Qwen2.5-0.5B --data texts/ \
 *     --seq-len 16384 --chunk 128 --method spaco --spaco-chunks 16 --lora-r 8 --steps 500
 *
 * `--help` lists the flags. Writes metrics.jsonl, TensorBoard events, checkpoints (model or
 * adapter, optimiser, step, random streams; `--resume` continues exactly) and report.html to `--out`.
 */

import { dist, Generator, lm, nn, optim, train, viz } from "../mod.ts";

const flags = train.parseFlags(
  {
    model: { type: "string", help: "Hugging Face model folder to fine-tune (LoRA unless --lora-r 0)" },
    config: {
      type: "choice",
      choices: ["tiny", "0.5b", "1b", "8b"],
      default: "tiny",
      help: "shape of a model from scratch",
    },
    data: { type: "string", default: "brown", help: "a .txt or .jsonl file, a folder of them, or brown (npm)" },
    seqLen: { type: "integer", default: 1024, min: 2, help: "tokens per training sequence (L)" },
    chunk: { type: "integer", default: 128, min: 1, help: "tokens per chunk" },
    method: { type: "choice", choices: lm.CHUNK_METHODS, default: "seco", help: "how the gradient is computed" },
    spacoChunks: { type: "integer", min: 1, help: "spaco: chunks back-propagated per sequence, t (default k/8)" },
    compensation: { type: "choice", choices: ["unbiased", "paper"], default: "unbiased", help: "spaco's factors" },
    batch: { type: "integer", default: 1, min: 1, help: "sequences per micro-batch" },
    gradAccum: { type: "integer", default: 1, min: 1, help: "micro-batches per optimiser step" },
    lr: { type: "number", default: 1e-3, min: 0, help: "peak learning rate (warm-up, then cosine to 0)" },
    warmup: { type: "number", default: 0.01, min: 0, max: 1, help: "warm-up share of the steps" },
    weightDecay: { type: "number", default: 0.05, min: 0, help: "AdamW weight decay (betas 0.9, 0.95)" },
    clip: { type: "number", default: 1, min: 0, help: "gradient norm clipping (0: none)" },
    loraR: { type: "integer", default: 8, min: 0, help: "LoRA rank with --model (0: full fine-tuning)" },
    loraAlpha: { type: "number", default: 16, min: 0, help: "LoRA alpha" },
    loraTargets: { type: "string", default: "q_proj,v_proj", help: "LoRA target projections" },
    steps: { type: "integer", default: 200, min: 0, help: "optimiser steps" },
    maxSeconds: { type: "number", min: 0, help: "stop after the step that reaches this wall time" },
    logEvery: { type: "integer", default: 10, min: 0, help: "progress line and metrics every this many steps" },
    evalEvery: { type: "integer", default: 50, min: 0, help: "validation loss every this many steps" },
    evalSequences: { type: "integer", default: 8, min: 1, help: "held-out sequences per evaluation" },
    checkpointEvery: { type: "integer", default: 0, min: 0, help: "checkpoint every this many steps (0: at the end)" },
    resume: { type: "boolean", help: "continue from the newest checkpoint in --out" },
    out: { type: "string", default: "out/chunked_lm", help: "output folder" },
    seed: { type: "integer", default: 0, min: 0, help: "seed of the weights, data order and SpaCO draws" },
    nproc: { type: "integer", default: 1, min: 1, help: "processes (one per GPU), each taking a share of every batch" },
  },
  Deno.args,
  { usage: "deno run -A examples/train_chunked_lm.ts [flags]" },
);

// Several processes: relaunched under the launcher; rank 0 alone prints and writes.
const group = await dist.launchOrJoin(flags.nproc);
const say = (group?.rank ?? 0) === 0 ? console.log : () => {};

// The model and its tokenizer: a checkpoint folder (LoRA), or a preset shape from scratch.
const presets = { tiny: "tiny", "0.5b": "qwen2.5-0.5b", "1b": "llama-3.2-1b", "8b": "llama-3-8b" } as const;
const tokenizer = flags.model ? await lm.HFTokenizer.fromFolder(flags.model) : new lm.ByteTokenizer();
const shape = lm.preset(presets[flags.config]);
const model = flags.model ? await lm.loadPretrained(flags.model) : new lm.LlamaForCausalLM(
  lm.llamaConfig({
    ...shape,
    vocabSize: tokenizer.vocabSize,
    maxPositionEmbeddings: Math.max(shape.maxPositionEmbeddings, flags.seqLen),
  }),
  { seed: flags.seed },
);
const lora = flags.model !== undefined && flags.loraR > 0;
if (lora) nn.applyLora(model, { r: flags.loraR, alpha: flags.loraAlpha, targets: flags.loraTargets.split(",") });
// Checkpoints hold the adapters alone when there are some, else the whole model.
const adapters = { stateDict: () => new Map([...model.stateDict()].filter(([k]) => k.includes(".lora_"))) };
const saved = lora
  ? { ...adapters, loadStateDict: (d: nn.StateDict) => model.loadStateDict(d, { strict: false }) }
  : model;

// Data: documents → tokens joined with EOS → sequences of L + 1; a step's batches follow from its index.
const corpus = await lm.loadCorpus(flags.data, tokenizer, { seqLen: flags.seqLen, seed: flags.seed });
const held = corpus.validation;
const heldOut = Array.from({ length: Math.min(flags.evalSequences, held.length) }, (_, i) => [...held.get(i)]);
const unigram = lm.unigramCrossEntropy(corpus.train, held, tokenizer.vocabSize);
const k = Math.ceil(flags.seqLen / flags.chunk), t = flags.spacoChunks ?? Math.max(1, Math.round(k / 8));
const spaco = flags.method === "spaco";
say(
  `${model.numParameters({ trainableOnly: true })} trained parameters; ${corpus.train.length} training and ` +
    `${held.length} held-out sequences of ${flags.seqLen} tokens; ${flags.method}${
      spaco ? `, ${t} of ${k} chunks` : ""
    }` +
    `; the unigram model's held-out loss: ${unigram.toFixed(4)}`,
);

const optimizer = new optim.AdamW(model.parameters().filter((p) => p.requiresGrad), {
  lr: optim.warmupCosine({
    peakLr: flags.lr,
    warmupSteps: Math.round(flags.warmup * flags.steps),
    totalSteps: flags.steps,
  }),
  betas: [0.9, 0.95],
  weightDecay: flags.weightDecay,
});
// Random streams saved with every checkpoint: SpaCO's draws and the adapters' dropout masks.
const draws = new Generator(flags.seed);
const streams = [draws, ...[...model.modules()].filter((m) => m instanceof nn.Dropout).map((d) => d.generator)];
const random: train.Resumable<number[]> = {
  state: () => streams.map((g) => g.offset),
  restore: (s) => s.forEach((offset, i) => (streams[i].offset = offset)),
};
const options: lm.ChunkedOptions = { method: flags.method, chunkSize: flags.chunk };
if (spaco) Object.assign(options, { spacoChunks: t, compensation: flags.compensation, generator: draws });

const parallel = group && new dist.DataParallel(model, group); // gradients averaged over the ranks
const out = (name: string) => `${flags.out}/${name}`;
const result = await train.trainLoop({
  model: saved,
  optimizer,
  steps: flags.steps,
  maxSeconds: flags.maxSeconds,
  clipGradNorm: flags.clip,
  step: (s) => {
    const micro = Array.from({ length: flags.gradAccum }, (_, m) => {
      const rows = lm.batchAt(corpus.train, flags.batch, flags.seed, s * flags.gradAccum + m);
      return parallel ? rows.slice(...parallel.share(rows.length, { even: true })) : rows;
    });
    const r = lm.chunkedGradients(model, micro, options);
    parallel?.reduceGradients();
    const [loss, tokens] = parallel ? [parallel.mean(r.loss), r.tokens * parallel.group.size] : [r.loss, r.tokens];
    return { loss, items: tokens, sums: { msPerChunk: (1000 * r.seconds) / r.chunks, lr: optimizer.lr } };
  },
  evaluate: () => ({ valLoss: lm.evaluateLoss(model, heldOut, { chunkSize: flags.chunk }), unigramLoss: unigram }),
  describe: (r) => ({
    parts: [`lr ${train.sci(r.lr)}`, `${r.msPerChunk.toFixed(1)} ms/chunk`]
      .concat(r.valLoss === undefined ? [] : [`val ${r.valLoss.toFixed(4)} (unigram ${unigram.toFixed(4)})`]),
  }),
  unit: { key: "tokensPerSecond", label: "tok" },
  logEvery: flags.logEvery,
  evalEvery: flags.evalEvery,
  checkpointDir: out("checkpoints"),
  checkpointEvery: flags.checkpointEvery,
  resume: flags.resume,
  states: { random },
  writers: [new train.JsonLinesWriter(out("metrics.jsonl")), new train.TensorBoardWriter(out("tensorboard"))],
  group: group ?? undefined,
}).catch((e) => {
  if (!(e instanceof train.TrainingDivergedError)) throw e;
  console.error(e.message); // NaN or divergence: the last good checkpoint stays current
  Deno.exit(1);
});

await group?.destroy();
if ((group?.rank ?? 0) !== 0) Deno.exit(0);
const last = result.history.findLast((r) => r.valLoss !== undefined);
console.log(`validation loss ${last?.valLoss.toFixed(4)} vs the unigram model's ${unigram.toFixed(4)} nats/token`);
if (lora) await lm.saveAdapter(model, out("adapter"), { baseModel: flags.model });
const title = `${flags.method}, L = ${flags.seqLen}, chunk ${flags.chunk}, ${flags.model ?? flags.config}`;
// Losses (training, validation, unigram) in one chart; tokens/s, memory and times in the other.
const report = new viz.Report("Chunk-wise language-model training", { subtitle: title }).curves(result.history);
console.log(`wrote ${await report.save(out("report.html"))}, metrics.jsonl and tensorboard/ in ${flags.out}`);

/**
 * Trains a selective state-space language model (src/lm/ssm.ts) from scratch on text, with the
 * gradient by back-propagation through the scan or by adjoint sharding (Xu et al. 2025):
 *
 *   --grad backprop        one graph over the sequence (exact)
 *   --grad adjoint         the paper's adjoint sharding: each layer's input held constant (exact for one layer only)
 *   --grad adjoint-exact   the same independent VJPs, the cotangent carried layer by layer (exact)
 *   --grad truncated       adjoint-exact keeping the VJPs within --window steps of each output, T̄ (default T/8)
 *
 *   deno run -A examples/train_ssm_lm.ts --seq-len 128 --batch 4 --steps 300 --grad adjoint-exact
 *   deno run -A examples/train_ssm_lm.ts --grad truncated --window 32 --out out/ssm_w32 --resume
 *
 * `--help` lists the flags. Writes metrics.jsonl, TensorBoard events, checkpoints (model, optimiser,
 * step; `--resume` continues exactly), report.html and the trained model (`model/`: config.json and
 * model.safetensors, read back by `lm.loadSSM`) to `--out`.
 */

import { ArgumentError, lm, noGrad, optim, tidy, train, viz } from "../mod.ts";

const flags = train.parseFlags(
  {
    config: { type: "choice", choices: Object.keys(lm.SSM_PRESETS), default: "tiny", help: "shape of the model" },
    data: { type: "string", default: "brown", help: "a .txt or .jsonl file, a folder of them, or brown (npm)" },
    seqLen: { type: "integer", default: 256, min: 2, help: "tokens per training sequence (T)" },
    grad: {
      type: "choice",
      choices: lm.SSM_GRADIENT_METHODS,
      default: "adjoint-exact",
      help: "how the gradient is computed",
    },
    window: { type: "integer", min: 1, help: "truncated (or adjoint): VJPs kept per output step, T̄ (default T/8)" },
    pieces: { type: "integer", default: 4096, min: 1, help: "VJPs per batched launch" },
    batch: { type: "integer", default: 4, min: 1, help: "sequences per micro-batch" },
    gradAccum: { type: "integer", default: 1, min: 1, help: "micro-batches per optimiser step" },
    lr: { type: "number", default: 3e-3, min: 0, help: "peak learning rate (warm-up, then cosine to 0)" },
    warmup: { type: "number", default: 0.05, min: 0, max: 1, help: "warm-up share of the steps" },
    weightDecay: { type: "number", default: 0.05, min: 0, help: "AdamW weight decay (betas 0.9, 0.95)" },
    clip: { type: "number", default: 1, min: 0, help: "gradient norm clipping (0: none)" },
    steps: { type: "integer", default: 300, min: 0, help: "optimiser steps" },
    maxSeconds: { type: "number", min: 0, help: "stop after the step that reaches this wall time" },
    logEvery: { type: "integer", default: 10, min: 0, help: "progress line and metrics every this many steps" },
    evalEvery: { type: "integer", default: 50, min: 0, help: "validation loss every this many steps" },
    evalSequences: { type: "integer", default: 32, min: 1, help: "held-out sequences per evaluation" },
    checkpointEvery: { type: "integer", default: 0, min: 0, help: "checkpoint every this many steps (0: at the end)" },
    resume: { type: "boolean", help: "continue from the newest checkpoint in --out" },
    dtype: { type: "choice", choices: ["float32", "float64"], default: "float32", help: "parameter dtype" },
    out: { type: "string", default: "out/ssm_lm", help: "output folder" },
    seed: { type: "integer", default: 0, min: 0, help: "seed of the weights, the held-out split and the data order" },
  },
  Deno.args,
  { usage: "deno run -A examples/train_ssm_lm.ts [flags]" },
);
const truncates = flags.grad === "truncated" || flags.grad === "adjoint";
if (flags.window !== undefined && !truncates) {
  throw new ArgumentError("flags", `--window applies to --grad truncated or adjoint, not ${flags.grad}: drop it`);
}
const window = flags.grad === "truncated" ? flags.window ?? Math.max(1, Math.round(flags.seqLen / 8)) : flags.window;

// Data: documents → bytes joined with EOS → sequences of T + 1; a step's batches follow from its index.
const tokenizer = new lm.ByteTokenizer();
const corpus = await lm.loadCorpus(flags.data, tokenizer, { seqLen: flags.seqLen, seed: flags.seed });
const held = corpus.validation;
const heldOut = Array.from({ length: Math.min(flags.evalSequences, held.length) }, (_, i) => [...held.get(i)]);
const unigram = lm.unigramCrossEntropy(corpus.train, held, tokenizer.vocabSize);
const config = lm.ssmConfig({ ...lm.SSM_PRESETS[flags.config], vocabSize: tokenizer.vocabSize });
const model = new lm.SSMForCausalLM(config, { seed: flags.seed, dtype: flags.dtype });
console.log(
  `${model.numParameters()} parameters (K ${config.numLayers}, P ${config.hiddenSize}, N ${config.stateSize}); ` +
    `${corpus.train.length} training and ${held.length} held-out sequences of ${flags.seqLen} tokens; ` +
    `${flags.grad}${window ? `, T̄ = ${window}` : ""}; the unigram model's held-out loss: ${unigram.toFixed(4)}`,
);

const optimizer = new optim.AdamW(model.parameters(), {
  lr: optim.warmupCosine({
    peakLr: flags.lr,
    warmupSteps: Math.round(flags.warmup * flags.steps),
    totalSteps: flags.steps,
  }),
  betas: [0.9, 0.95],
  weightDecay: flags.weightDecay,
});
const tokensPerStep = flags.gradAccum * flags.batch * flags.seqLen;
const options: lm.SSMBackwardOptions = { method: flags.grad, window, piecesPerLaunch: flags.pieces };

const out = (name: string) => `${flags.out}/${name}`;
const result = await train.trainLoop({
  model,
  optimizer,
  steps: flags.steps,
  maxSeconds: flags.maxSeconds,
  clipGradNorm: flags.clip,
  step: (s) => {
    let lossSum = 0, vjps = 0;
    for (let m = 0; m < flags.gradAccum; m++) {
      const batch = lm.batchAt(corpus.train, flags.batch, flags.seed, s * flags.gradAccum + m);
      const r = lm.ssmBackward(model, batch, { ...options, scale: 1 / tokensPerStep });
      lossSum += r.lossSum;
      vjps += r.vjps.reduce((a, v) => a + v.a + v.b + v.c, 0);
    }
    return { loss: lossSum / tokensPerStep, items: tokensPerStep, sums: { vjps, lr: optimizer.lr } };
  },
  evaluate: () => {
    const losses = heldOut.map((seq) =>
      noGrad(() => tidy(() => model.loss([seq.slice(0, -1)], [seq.slice(1)]).loss.item()))
    );
    return { valLoss: losses.reduce((a, b) => a + b, 0) / losses.length, unigramLoss: unigram };
  },
  describe: (r) => ({
    parts: [`lr ${train.sci(r.lr)}`, `${train.sci(r.vjps)} VJPs`]
      .concat(r.valLoss === undefined ? [] : [`val ${r.valLoss.toFixed(4)} (unigram ${unigram.toFixed(4)})`]),
  }),
  unit: { key: "tokensPerSecond", label: "tok" },
  logEvery: flags.logEvery,
  evalEvery: flags.evalEvery,
  checkpointDir: out("checkpoints"),
  checkpointEvery: flags.checkpointEvery,
  resume: flags.resume,
  writers: [new train.JsonLinesWriter(out("metrics.jsonl")), new train.TensorBoardWriter(out("tensorboard"))],
}).catch((e) => {
  if (!(e instanceof train.TrainingDivergedError)) throw e;
  console.error(e.message); // NaN or divergence: the last good checkpoint stays current
  Deno.exit(1);
});

const last = result.history.findLast((r) => r.valLoss !== undefined);
console.log(`validation loss ${last?.valLoss.toFixed(4)} vs the unigram model's ${unigram.toFixed(4)} nats/token`);
await lm.saveSSM(model, out("model"));
const title = `${flags.grad}${window ? ` (T̄ = ${window})` : ""}, T = ${flags.seqLen}, ${flags.config}`;
// Losses (training, validation, unigram) in one chart; tokens/s, memory and the VJP count in the other.
const report = new viz.Report("State-space language-model training", { subtitle: title }).curves(result.history);
console.log(`wrote ${await report.save(out("report.html"))}, metrics.jsonl, tensorboard/ and model/ in ${flags.out}`);

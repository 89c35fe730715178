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

import { Generator, lm, nn, train } from "../mod.ts";
import { finishLM, lmOptimizer, LMRanks, lmTrainingFlags, loadTrainingData, trainLM } from "./lm_script.ts";

const flags = train.parseFlags(
  {
    model: { type: "string", help: "Hugging Face model folder to fine-tune (LoRA unless --lora-r 0)" },
    config: {
      type: "choice",
      choices: ["tiny", "0.5b", "1b", "8b"],
      default: "tiny",
      help: "shape of a model from scratch",
    },
    chunk: { type: "integer", default: 128, min: 1, help: "tokens per chunk" },
    method: { type: "choice", choices: lm.CHUNK_METHODS, default: "seco", help: "how the gradient is computed" },
    spacoChunks: { type: "integer", min: 1, help: "spaco: chunks back-propagated per sequence, t (default k/8)" },
    compensation: { type: "choice", choices: ["unbiased", "paper"], default: "unbiased", help: "spaco's factors" },
    exactLoss: {
      type: "boolean",
      default: false,
      help:
        "spaco: every chunk's loss (a whole forward pass for each chunk not drawn); default the drawn chunks' estimate",
    },
    loraR: { type: "integer", default: 8, min: 0, help: "LoRA rank with --model (0: full fine-tuning)" },
    loraAlpha: { type: "number", default: 16, min: 0, help: "LoRA alpha" },
    loraTargets: { type: "string", default: "q_proj,v_proj", help: "LoRA target projections" },
    ...lmTrainingFlags({
      length: "L",
      seqLen: 1024,
      batch: 1,
      lr: 1e-3,
      warmup: 0.01,
      steps: 200,
      evalSequences: 8,
      out: "out/chunked_lm",
      seedHelp: "seed of the weights, data order and SpaCO draws",
    }),
  },
  Deno.args,
  { usage: "deno run -A examples/train_chunked_lm.ts [flags]" },
);

// Several processes: relaunched under the launcher; rank 0 alone prints and writes.
const ranks = await LMRanks.join(flags);

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

const { corpus, heldOut, unigram } = await loadTrainingData(flags, tokenizer);
const k = Math.ceil(flags.seqLen / flags.chunk), t = flags.spacoChunks ?? Math.max(1, Math.round(k / 8));
const spaco = flags.method === "spaco";
ranks.say(
  `${model.numParameters({ trainableOnly: true })} trained parameters; ${corpus.train.length} training and ` +
    `${corpus.validation.length} held-out sequences of ${flags.seqLen} tokens; ${flags.method}${
      spaco ? `, ${t} of ${k} chunks${flags.exactLoss ? "" : " (the training loss estimated from them)"}` : ""
    }` +
    `; the unigram model's held-out loss: ${unigram.toFixed(4)}`,
);

const optimizer = lmOptimizer(model.parameters().filter((p) => p.requiresGrad), flags);
// Random streams saved with every checkpoint: SpaCO's draws and the adapters' dropout masks.
const draws = new Generator(flags.seed);
const streams = [draws, ...[...model.modules()].filter((m) => m instanceof nn.Dropout).map((d) => d.generator)];
const random: train.Resumable<number[]> = {
  state: () => streams.map((g) => g.offset),
  restore: (s) => s.forEach((offset, i) => (streams[i].offset = offset)),
};
const options: lm.ChunkedOptions = { method: flags.method, chunkSize: flags.chunk };
if (spaco) {
  Object.assign(options, {
    spacoChunks: t,
    compensation: flags.compensation,
    generator: draws,
    exactLoss: flags.exactLoss,
  });
}

ranks.wrap(model); // gradients averaged over the ranks
const result = await trainLM(flags, {
  model: saved,
  optimizer,
  step: (s) => {
    const micro = Array.from(
      { length: flags.gradAccum },
      (_, m) => ranks.share(lm.batchAt(corpus.train, flags.batch, flags.seed, s * flags.gradAccum + m)),
    );
    const r = lm.chunkedGradients(model, micro, options);
    const { loss, items } = ranks.reduce(r.loss, r.tokens);
    return { loss, items, sums: { msPerChunk: (1000 * r.seconds) / r.chunks, lr: optimizer.lr } };
  },
  valLoss: () => lm.evaluateLoss(model, heldOut, { chunkSize: flags.chunk }),
  parts: (r) => [`${r.msPerChunk.toFixed(1)} ms/chunk`],
  unigram,
  states: { random },
  ranks,
});

if (lora) await lm.saveAdapter(model, `${flags.out}/adapter`, { baseModel: flags.model });
await finishLM(flags, result, unigram, {
  title: "Chunk-wise language-model training",
  subtitle: `${flags.method}, L = ${flags.seqLen}, chunk ${flags.chunk}, ${flags.model ?? flags.config}`,
});

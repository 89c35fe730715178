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

import { ArgumentError, lm, noGrad, tidy, train } from "../mod.ts";
import { finishLM, lmOptimizer, LMRanks, lmTrainingFlags, loadTrainingData, trainLM } from "./lm_script.ts";

const flags = train.parseFlags(
  {
    config: { type: "choice", choices: Object.keys(lm.SSM_PRESETS), default: "tiny", help: "shape of the model" },
    grad: {
      type: "choice",
      choices: lm.SSM_GRADIENT_METHODS,
      default: "adjoint-exact",
      help: "how the gradient is computed",
    },
    window: { type: "integer", min: 1, help: "truncated (or adjoint): VJPs kept per output step, T̄ (default T/8)" },
    pieces: { type: "integer", default: 4096, min: 1, help: "VJPs per batched launch" },
    dtype: { type: "choice", choices: ["float32", "float64"], default: "float32", help: "parameter dtype" },
    ...lmTrainingFlags({
      length: "T",
      seqLen: 256,
      batch: 4,
      lr: 3e-3,
      warmup: 0.05,
      steps: 300,
      evalSequences: 32,
      out: "out/ssm_lm",
      seedHelp: "seed of the weights, the held-out split and the data order",
    }),
  },
  Deno.args,
  { usage: "deno run -A examples/train_ssm_lm.ts [flags]" },
);
const truncates = flags.grad === "truncated" || flags.grad === "adjoint";
if (flags.window !== undefined && !truncates) {
  throw new ArgumentError("flags", `--window applies to --grad truncated or adjoint, not ${flags.grad}: drop it`);
}
const window = flags.grad === "truncated" ? flags.window ?? Math.max(1, Math.round(flags.seqLen / 8)) : flags.window;

// Several processes: relaunched under the launcher; rank 0 alone prints and writes.
const ranks = await LMRanks.join(flags);

// Bytes joined with EOS → sequences of T + 1.
const tokenizer = new lm.ByteTokenizer();
const { corpus, heldOut, unigram } = await loadTrainingData(flags, tokenizer);
const config = lm.ssmConfig({ ...lm.SSM_PRESETS[flags.config], vocabSize: tokenizer.vocabSize });
const model = new lm.SSMForCausalLM(config, { seed: flags.seed, dtype: flags.dtype });
ranks.say(
  `${model.numParameters()} parameters (K ${config.numLayers}, P ${config.hiddenSize}, N ${config.stateSize}); ` +
    `${corpus.train.length} training and ${corpus.validation.length} held-out sequences of ${flags.seqLen} tokens; ` +
    `${flags.grad}${window ? `, T̄ = ${window}` : ""}; the unigram model's held-out loss: ${unigram.toFixed(4)}`,
);

const optimizer = lmOptimizer(model.parameters(), flags);
const options: lm.SSMBackwardOptions = { method: flags.grad, window, piecesPerLaunch: flags.pieces };
ranks.wrap(model); // gradients averaged over the ranks

const result = await trainLM(flags, {
  model,
  optimizer,
  step: (s) => {
    // This rank's rows of each micro-batch; the gradient of its mean loss, averaged over the ranks.
    const micro = Array.from(
      { length: flags.gradAccum },
      (_, m) => ranks.share(lm.batchAt(corpus.train, flags.batch, flags.seed, s * flags.gradAccum + m)),
    );
    const tokens = micro.length * micro[0].length * flags.seqLen;
    let lossSum = 0, vjps = 0;
    for (const batch of micro) {
      const r = lm.ssmBackward(model, batch, { ...options, scale: 1 / tokens });
      lossSum += r.lossSum;
      vjps += r.vjps.reduce((a, v) => a + v.a + v.b + v.c, 0);
    }
    const { loss, items } = ranks.reduce(lossSum / tokens, tokens);
    return { loss, items, sums: { vjps: vjps * ranks.size, lr: optimizer.lr } }; // the whole batch's VJPs
  },
  valLoss: () => {
    const losses = heldOut.map((seq) =>
      noGrad(() => tidy(() => model.loss([seq.slice(0, -1)], [seq.slice(1)]).loss.item()))
    );
    return losses.reduce((a, b) => a + b, 0) / losses.length;
  },
  parts: (r) => [`${train.sci(r.vjps)} VJPs`],
  unigram,
  ranks,
});

await lm.saveSSM(model, `${flags.out}/model`);
await finishLM(flags, result, unigram, {
  title: "State-space language-model training",
  subtitle: `${flags.grad}${window ? ` (T̄ = ${window})` : ""}, T = ${flags.seqLen}, ${flags.config}`,
  also: ["model/"],
});

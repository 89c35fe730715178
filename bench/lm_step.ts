// One training step of a Llama shape against PyTorch eager (bench/torch_train_step.py): random
// weights in bfloat16, batch × L random tokens, the whole sequence back-propagated (fused
// attention, RMSNorm, rotary, SwiGLU and the sliced cross-entropy on the GPU), AdamW with its
// float32 master copies of the bfloat16 parameters (β = 0.9, 0.95, weight decay 0.1).
// tokens/s = batch·L / median step seconds after --warmup steps; peak = the backend's highest
// tensor bytes during the timed steps. With --torch (torch_train_step.py's JSON lines) the table
// puts PyTorch's recipes beside ours and the ratio ours/PyTorch of tokens/s (the goal: ≥ 0.9).
//
//   python3 bench/torch_train_step.py --shape llama-3.2-1b --seq 2048 --json out/step.jsonl
//   PATCHWORK_BACKEND=cuda deno run -A bench/lm_step.ts --torch out/step.jsonl --json out/step.jsonl
//   deno run -A bench/lm_step.ts --shape tiny --seq 64 --steps 2 --warmup 1     # CPU check

import { type DType, lm, memory, optim, resetPeakMemory, tensor, tidy, train } from "../mod.ts";
import { appendJsonLine, deviceLine, median, ratio, readJsonLines, rowMatches, timed } from "./lm_bench_util.ts";

const flags = train.parseFlags(
  {
    shape: { type: "choice", choices: Object.keys(lm.PRESETS), default: "llama-3.2-1b", help: "model preset" },
    seq: { type: "integer", default: 2048, min: 2, help: "tokens per row (L)" },
    batch: { type: "integer", default: 1, min: 1, help: "rows per step" },
    steps: { type: "integer", default: 10, min: 1, help: "timed steps (median)" },
    warmup: { type: "integer", default: 3, min: 0, help: "untimed steps first" },
    maxSeconds: { type: "number", default: 150, min: 0, help: "stop timing steps after this long (2 at least)" },
    dtype: { type: "choice", choices: ["bfloat16", "float32"], default: "bfloat16", help: "parameter dtype" },
    sliceSize: { type: "integer", default: 8192, min: 1, help: "vocabulary rows per slice of the loss" },
    torch: { type: "string", help: "PyTorch's JSON lines (bench/torch_train_step.py --json)" },
    json: { type: "string", help: "append our row here" },
  },
  Deno.args,
  { usage: "deno run -A bench/lm_step.ts [flags]" },
);

const config = lm.preset(flags.shape);
const dtype = flags.dtype as DType;
const model = new lm.LlamaForCausalLM(config, { seed: 0, dtype });
const opt = new optim.AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.1 });
const { batch, seq } = flags;
// Two batches of random tokens (a fixed linear congruential stream), alternated as torch does.
let state = 1;
const ids = () =>
  Int32Array.from({ length: batch * (seq + 1) }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % config.vocabSize;
  });
const batches = [ids(), ids()].map((data) => {
  const all = tensor(data, { shape: [batch, seq + 1], dtype: "int32" });
  return { input: all.narrow(1, 0, seq).contiguous(), target: all.narrow(1, 1, seq).contiguous() };
});

const step = (i: number) =>
  tidy(() => {
    const { input, target } = batches[i % 2];
    const { loss } = model.loss(input, target, { sliceSize: flags.sliceSize });
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });

console.log(`# training step, ${flags.shape} (${model.numParameters()} parameters), ${dtype}: ${deviceLine()}`);
const losses: number[] = [];
for (let i = 0; i < flags.warmup; i++) losses.push(timed(() => step(i)).value);
resetPeakMemory();
const times: number[] = [];
const began = performance.now();
for (let i = flags.warmup; i < flags.warmup + flags.steps; i++) {
  const { seconds, value } = timed(() => step(i));
  times.push(seconds);
  losses.push(value);
  if (times.length >= 2 && (performance.now() - began) / 1000 > flags.maxSeconds) break;
}
const peakGiB = memory().peak / 2 ** 30;
const seconds = median(times);
const tokensPerS = (batch * seq) / seconds;

const theirs = readJsonLines(flags.torch).filter((r) =>
  rowMatches(r, { impl: "torch", shape: flags.shape, batch, seq })
);
console.log("| impl | recipe | tokens/step | step s (median) | tokens/s | peak GiB | ours/this tokens/s |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
const gib = (x: unknown) => (typeof x === "number" ? x.toFixed(1) : "—");
console.log(
  `| patchwork | ${dtype}, float32 masters | ${batch * seq} | ${seconds.toFixed(4)} | ${tokensPerS.toFixed(0)} | ` +
    `${gib(peakGiB)} | — |`,
);
for (const r of theirs) {
  const t = r.tokens_per_s as number;
  console.log(
    `| PyTorch eager | ${r.recipe} | ${batch * seq} | ${(r.seconds as number).toFixed(4)} | ${t.toFixed(0)} | ` +
      `${gib(r.peak_gib)} | ${ratio(tokensPerS, t)} |`,
  );
}
console.log(`losses (first steps): ${losses.slice(0, 3).map((l) => l.toFixed(4)).join(", ")}`);
appendJsonLine(flags.json, {
  impl: "patchwork",
  shape: flags.shape,
  dtype,
  batch,
  seq,
  seconds,
  steps: times.length,
  tokens_per_s: tokensPerS,
  peak_gib: peakGiB,
  losses: losses.slice(0, 3),
  params: model.numParameters(),
  ratio_to_torch: Object.fromEntries(theirs.map((r) => [r.recipe, tokensPerS / (r.tokens_per_s as number)])),
  device: deviceLine(),
});

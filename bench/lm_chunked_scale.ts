// SeCO and SpaCO at the paper's scale against PyTorch (bench/torch_seco.py): a Llama-3-8B shape in
// bfloat16 with random weights, LoRA r = 8 (α 16) on q_proj and v_proj, AdamW on the adapters, one
// sequence of L tokens per iteration, by
//
// - `full`: one graph over the sequence, one backward pass, the fused attention;
// - `checkpoint`: the same with every decoder layer recomputed in the backward pass;
// - `seco:C`: lm.chunkedBackward's SeCO with chunks of C tokens (exact);
// - `spaco:C:T`: SpaCO, T of the chunks back-propagated, the paper's relay factors (min(k/T, 2)).
//
// For each method the lengths run in order after one warm-up iteration at --warmup-len; a length
// that runs out of device memory ends the method's list, and with --longest the search goes on
// (doubling past the last length, one bisection after a failure) while the method's share of
// --budget seconds lasts; a length whose predicted time exceeds what is left is skipped. Seconds
// per iteration are wall-clock, the device drained at both ends; peak = the backend's highest
// tensor bytes. With --torch (torch_seco.py's JSON lines) each row shows PyTorch's figures.
//
//   python3 bench/torch_seco.py --model hf --longest --json out/seco.jsonl
//   PATCHWORK_BACKEND=cuda deno run -A bench/lm_chunked_scale.ts --longest --torch out/seco.jsonl \
//     --json out/seco.jsonl
//   deno run -A bench/lm_chunked_scale.ts --shape tiny --lengths 256,512 --warmup-len 128   # CPU check

import { Generator, lm, memory, nn, optim, resetPeakMemory, tensor, tidy, train } from "../mod.ts";
import { appendJsonLine, deviceLine, outOfMemory, readJsonLines, rowMatches, timed } from "./lm_bench_util.ts";

const flags = train.parseFlags(
  {
    shape: { type: "choice", choices: Object.keys(lm.PRESETS), default: "llama-3-8b", help: "model preset" },
    lengths: { type: "integers", default: [16384, 32768, 65536], min: 2, help: "sequence lengths, in order" },
    methods: {
      type: "string",
      default: "full,checkpoint,seco:128,seco:256,spaco:256:8",
      help: "full, checkpoint, seco:C, spaco:C:T (comma-separated)",
    },
    longest: { type: "boolean", help: "look past the lengths for the longest that trains" },
    maxLen: { type: "integer", default: 262144, min: 2, help: "the longest length tried" },
    warmupLen: { type: "integer", default: 2048, min: 2, help: "length of each method's warm-up iteration" },
    budget: { type: "number", default: 300, min: 0, help: "seconds for all methods" },
    dtype: { type: "choice", choices: ["bfloat16", "float32"], default: "bfloat16", help: "model dtype" },
    torch: { type: "string", help: "PyTorch's JSON lines (bench/torch_seco.py --json)" },
    json: { type: "string", help: "append one JSON line per row here" },
  },
  Deno.args,
  { usage: "deno run -A bench/lm_chunked_scale.ts [flags]" },
);

/** A method's spelling parsed: what lm.chunkedBackward (or the plain graph) is given. */
interface Method {
  name: string;
  kind: "full" | "checkpoint" | "seco" | "spaco";
  chunk: number;
  sampled: number;
}

function parseMethod(text: string): Method {
  const [kind, c, t] = text.split(":");
  const chunk = Number(c ?? 0), sampled = Number(t ?? 0);
  const ok = ((kind === "full" || kind === "checkpoint") && c === undefined) ||
    (kind === "seco" && chunk > 0 && t === undefined) || (kind === "spaco" && chunk > 0 && sampled > 0);
  if (!ok || !Number.isInteger(chunk) || !Number.isInteger(sampled)) {
    throw new Error(`unknown method "${text}": write full, checkpoint, seco:C or spaco:C:T`);
  }
  return { name: text, kind: kind as Method["kind"], chunk, sampled };
}

const methods = flags.methods.split(",").map(parseMethod);
const t0 = performance.now();
// Positions past the preset's max_position_embeddings are allowed, as torch_seco.py's config does.
const longest = Math.max(flags.maxLen, ...flags.lengths);
const preset = lm.preset(flags.shape);
const config = { ...preset, maxPositionEmbeddings: Math.max(preset.maxPositionEmbeddings, longest + 1) };
const model = new lm.LlamaForCausalLM(config, { seed: 0, dtype: flags.dtype as "bfloat16" | "float32" });
nn.applyLora(model, { r: 8, alpha: 16, targets: ["q_proj", "v_proj"] });
const adapters = model.parameters().filter((p) => p.requiresGrad);
const opt = new optim.AdamW(adapters, { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.05 });
const draws = new Generator(0);
console.log(
  `# ${flags.shape} (${(model.numParameters() / 1e9).toFixed(2)} B parameters, ` +
    `${model.numParameters({ trainableOnly: true })} trainable), ${flags.dtype}, LoRA r 8 on q/v; ` +
    `built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${deviceLine()}`,
);

// One sequence of random tokens (a fixed linear congruential stream), cut to each length.
let state = 1;
const ids = Int32Array.from({ length: longest + 1 }, () => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state % config.vocabSize;
});

/** One iteration: the gradient of the mean token cross-entropy by `m`, then one AdamW step. */
function iteration(m: Method, length: number): number {
  opt.zeroGrad();
  const tokens = tensor(ids.subarray(0, length + 1), { shape: [1, length + 1], dtype: "int32" });
  try {
    if (m.kind === "full" || m.kind === "checkpoint") {
      // The model's own attention (fused on the GPU) over the whole sequence.
      return tidy(() => {
        const input = tokens.narrow(1, 0, length), target = tokens.narrow(1, 1, length);
        const { loss } = model.loss(input, target, { reduction: "sum", checkpointLayers: m.kind === "checkpoint" });
        const value = loss.item() / length;
        loss.mul(1 / length).backward();
        opt.step();
        return value;
      });
    }
    const spaco = m.kind === "spaco"
      ? { spacoChunks: m.sampled, compensation: "paper" as const, cap: 2, generator: draws }
      : {};
    return tidy(() => {
      const r = lm.chunkedBackward(model, tokens, { method: m.kind, chunkSize: m.chunk, ...spaco });
      opt.step();
      return r.lossSum / r.tokens;
    });
  } finally {
    tokens.dispose();
    opt.zeroGrad();
  }
}

const theirs = readJsonLines(flags.torch).filter((r) => r.impl === "torch" && r.shape === flags.shape);
const cell = (x: unknown, digits: number) => (typeof x === "number" ? x.toFixed(digits) : "—");
console.log("| impl | method | L | s/iteration | peak GiB | loss | PyTorch s/iteration | PyTorch peak GiB |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");

function row(m: Method, length: number, status: string, seconds?: number, peak?: number, loss?: number) {
  const t = theirs.find((r) => rowMatches(r, { method: m.name, length }));
  console.log(
    `| patchwork | ${m.name} | ${length} | ${seconds === undefined ? status : seconds.toFixed(2)} | ` +
      `${cell(peak, 1)} | ${cell(loss, 4)} | ${
        t ? cell(t.seconds, 2) === "—" ? t.status : cell(t.seconds, 2) : "—"
      } | ` +
      `${cell(t?.peak_gib, 1)} |`,
  );
  appendJsonLine(flags.json, {
    impl: "patchwork",
    shape: flags.shape,
    method: m.name,
    length,
    status,
    seconds: seconds ?? null,
    peak_gib: peak ?? null,
    loss: loss ?? null,
    device: deviceLine(),
  });
}

/** Runs `m` at `length`: seconds, peak GiB and loss, or null when the device ran out of memory. */
function attempt(m: Method, length: number): { seconds: number; peak: number; loss: number } | null {
  resetPeakMemory();
  try {
    const { seconds, value } = timed(() => iteration(m, length));
    return { seconds, peak: memory().peak / 2 ** 30, loss: value };
  } catch (e) {
    if (outOfMemory(e)) return null;
    throw e;
  }
}

methods.forEach((m, n) => {
  const budget = (flags.budget - (performance.now() - t0) / 1000) / (methods.length - n);
  const began = performance.now();
  // Kernels compiled, buffers cached (SpaCO's warm-up long enough for its T chunks).
  attempt(m, Math.max(Math.min(flags.lengths[0], flags.warmupLen), m.chunk * m.sampled));
  let last: [number, number] | null = null, ok = 0, failed: number | null = null;
  const todo = [...flags.lengths];
  while (todo.length) {
    const length = todo.shift()!;
    const left = budget - (performance.now() - began) / 1000;
    const predicted = last ? last[1] * (length / last[0]) ** 1.7 : 0;
    if (predicted > left) {
      row(m, length, `skipped (about ${predicted.toFixed(0)} s > ${left.toFixed(0)} s left)`);
      break;
    }
    const r = attempt(m, length);
    if (!r) {
      failed = length;
      row(m, length, "out of memory");
      const mid = Math.floor((ok + (length - ok) / 2) / 1024) * 1024;
      if (flags.longest && ok && length - ok > flags.lengths[0] / 2 && mid > ok) {
        todo.splice(0, todo.length, mid);
        continue;
      }
      break;
    }
    row(m, length, "ok", r.seconds, r.peak, r.loss);
    last = [length, r.seconds];
    ok = Math.max(ok, length);
    if (!todo.length && flags.longest && failed === null && length * 2 <= flags.maxLen) todo.push(length * 2);
  }
  console.log(`longest trained by ${m.name}: ${ok || "none"}${failed ? "" : " (no out-of-memory reached)"}`);
});
console.log(
  "paper (Li et al. 2025, Llama-3-8B + LoRA on one 24 GB RTX 3090): 16K tokens trained; " +
    "SeCO[256] ≈ 23 s/iteration, SpaCO[256] ≈ 8.5 s/iteration at ~15K tokens",
);

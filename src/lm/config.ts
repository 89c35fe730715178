/**
 * Configurations of Llama-family decoders, read from and written to Hugging Face `config.json`
 * (Llama 2 and 3 with Llama 3.1/3.2's `llama3` rope scaling, Mistral, Qwen2/Qwen2.5), and presets
 * with the shapes of released models so benchmarks need no download.
 *
 * @module
 */

import { ArgumentError, PatchworkError } from "../tensor/mod.ts";

/**
 * A `config.json` that names an architecture patchwork does not implement, lacks a field, or
 * holds a value out of range.
 *
 * @example
 * ```ts
 * import { configFromHF, ConfigError } from "./config.ts";
 * try {
 *   configFromHF({ model_type: "gpt2" });
 * } catch (e) {
 *   e instanceof ConfigError; // true: "config: unknown model_type "gpt2" ..."
 * }
 * ```
 */
export class ConfigError extends PatchworkError {}

/**
 * How rotary frequencies are stretched for contexts longer than the model was trained on:
 * `linear` divides every frequency by `factor`; `llama3` (Llama 3.1/3.2) divides the low
 * frequencies by `factor`, keeps the high ones and blends in between.
 *
 * @example
 * ```ts
 * import type { RopeScaling } from "./config.ts";
 * const s: RopeScaling = {
 *   type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192,
 * };
 * ```
 */
export type RopeScaling =
  | { readonly type: "linear"; readonly factor: number }
  | {
    readonly type: "llama3";
    readonly factor: number;
    readonly lowFreqFactor: number;
    readonly highFreqFactor: number;
    readonly originalMaxPositionEmbeddings: number;
  };

/** The architectures a config may name (their Hugging Face `model_type`). */
export type ModelType = "llama" | "mistral" | "qwen2";

/**
 * The shape and numerics of a Llama-family decoder (Hugging Face field names in camelCase).
 *
 * @example
 * ```ts
 * import { llamaConfig } from "./config.ts";
 * const c = llamaConfig({ vocabSize: 256, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
 *   numAttentionHeads: 4, numKeyValueHeads: 2 });
 * c.headDim; // 8
 * ```
 */
export interface LlamaConfig {
  /** Architecture (Hugging Face `model_type`). */
  readonly modelType: ModelType;
  /** Vocabulary size (rows of the embedding and of the LM head). */
  readonly vocabSize: number;
  /** Width of the residual stream. */
  readonly hiddenSize: number;
  /** Width of the SwiGLU MLP. */
  readonly intermediateSize: number;
  /** Number of decoder layers. */
  readonly numHiddenLayers: number;
  /** Query heads. */
  readonly numAttentionHeads: number;
  /** Key/value heads (grouped-query attention when fewer than the query heads). */
  readonly numKeyValueHeads: number;
  /** Width of one head. */
  readonly headDim: number;
  /** Longest sequence the rotary embeddings are meant for. */
  readonly maxPositionEmbeddings: number;
  /** Epsilon of the RMS norms. */
  readonly rmsNormEps: number;
  /** Base of the rotary frequencies. */
  readonly ropeTheta: number;
  /** Rotary frequency scaling, or null. */
  readonly ropeScaling: RopeScaling | null;
  /** Bias on the query, key and value projections (Qwen2). */
  readonly attentionBias: boolean;
  /** Bias on the output projection. */
  readonly outputBias: boolean;
  /** Bias on the MLP projections. */
  readonly mlpBias: boolean;
  /** The LM head shares the embedding's weight. */
  readonly tieWordEmbeddings: boolean;
  /** Standard deviation of the initial weights. */
  readonly initializerRange: number;
  /** Keys further back than this many positions are not attended to (Mistral), or null. */
  readonly slidingWindow: number | null;
  /** Token id that starts a sequence, or null. */
  readonly bosTokenId: number | null;
  /** Token ids that end a sequence. */
  readonly eosTokenIds: readonly number[];
  /** Token id used for padding, or null. */
  readonly padTokenId: number | null;
}

const POSITIVE_INTS = [
  "vocabSize",
  "hiddenSize",
  "intermediateSize",
  "numHiddenLayers",
  "numAttentionHeads",
  "numKeyValueHeads",
  "headDim",
  "maxPositionEmbeddings",
] as const;

/**
 * Checks a config's values and relations (head counts dividing, positive sizes, eps and theta
 * positive, rope scaling well formed). Returns it, or throws a {@link ConfigError} naming the field.
 *
 * @example
 * ```ts
 * import { PRESETS, validateConfig } from "./config.ts";
 * validateConfig(PRESETS["qwen2.5-0.5b"]);
 * ```
 */
export function validateConfig(c: LlamaConfig): LlamaConfig {
  const bad = (field: string, detail: string): never => {
    throw new ConfigError("config", `${field} ${detail}`);
  };
  if (!["llama", "mistral", "qwen2"].includes(c.modelType)) bad("modelType", `"${c.modelType}" is not supported`);
  for (const k of POSITIVE_INTS) {
    const v = c[k];
    if (!Number.isSafeInteger(v) || v <= 0) bad(k, `must be a positive integer, got ${v}`);
  }
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) {
    bad("numKeyValueHeads", `(${c.numKeyValueHeads}) must divide numAttentionHeads (${c.numAttentionHeads})`);
  }
  if (c.headDim % 2 !== 0) bad("headDim", `must be even for rotary embeddings, got ${c.headDim}`);
  if (!(c.rmsNormEps > 0)) bad("rmsNormEps", `must be positive, got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 1) || !Number.isFinite(c.ropeTheta)) {
    bad("ropeTheta", `must be a finite number > 1, got ${c.ropeTheta}`);
  }
  if (!(c.initializerRange >= 0)) bad("initializerRange", `must be non-negative, got ${c.initializerRange}`);
  if (c.slidingWindow !== null && (!Number.isSafeInteger(c.slidingWindow) || c.slidingWindow <= 0)) {
    bad("slidingWindow", `must be a positive integer or null, got ${c.slidingWindow}`);
  }
  const s = c.ropeScaling;
  if (s) {
    if (!(s.factor >= 1)) bad("ropeScaling.factor", `must be ≥ 1, got ${s.factor}`);
    if (s.type === "llama3") {
      if (!(s.lowFreqFactor > 0 && s.highFreqFactor > s.lowFreqFactor)) {
        bad("ropeScaling", `needs 0 < lowFreqFactor < highFreqFactor, got ${s.lowFreqFactor} and ${s.highFreqFactor}`);
      }
      if (!Number.isSafeInteger(s.originalMaxPositionEmbeddings) || s.originalMaxPositionEmbeddings <= 0) {
        bad("ropeScaling.originalMaxPositionEmbeddings", `must be a positive integer`);
      }
    }
  }
  for (const [k, v] of [["bosTokenId", c.bosTokenId], ["padTokenId", c.padTokenId]] as const) {
    if (v !== null && (!Number.isInteger(v) || v < 0 || v >= c.vocabSize)) {
      bad(k, `must be a token id below vocabSize ${c.vocabSize}, got ${v}`);
    }
  }
  for (const v of c.eosTokenIds) {
    if (!Number.isInteger(v) || v < 0 || v >= c.vocabSize) bad("eosTokenIds", `holds ${v}, outside the vocabulary`);
  }
  return c;
}

/**
 * The fields a config must give; the rest default as in Hugging Face transformers.
 *
 * @example
 * ```ts
 * import type { ConfigInit } from "./config.ts";
 * const init: ConfigInit = { vocabSize: 100, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1,
 *   numAttentionHeads: 2 };
 * ```
 */
export type ConfigInit =
  & Pick<LlamaConfig, "vocabSize" | "hiddenSize" | "intermediateSize" | "numHiddenLayers" | "numAttentionHeads">
  & Partial<LlamaConfig>;

/**
 * A validated config from the required sizes, with Llama's defaults for the rest (key/value heads
 * = query heads, head width = hidden / heads, eps 1e-6, theta 10000, no biases, untied head).
 *
 * @example
 * ```ts
 * import { llamaConfig } from "./config.ts";
 * llamaConfig({ vocabSize: 256, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
 *   numAttentionHeads: 4 }).numKeyValueHeads; // 4
 * ```
 */
export function llamaConfig(init: ConfigInit): LlamaConfig {
  const heads = init.numAttentionHeads;
  return validateConfig({
    modelType: "llama",
    numKeyValueHeads: heads,
    headDim: Math.floor(init.hiddenSize / heads),
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    attentionBias: false,
    outputBias: false,
    mlpBias: false,
    tieWordEmbeddings: false,
    initializerRange: 0.02,
    slidingWindow: null,
    bosTokenId: null,
    eosTokenIds: [],
    padTokenId: null,
    ...init,
  });
}

/**
 * A parsed JSON object (a `config.json`).
 *
 * @example
 * ```ts
 * import type { Json } from "./config.ts";
 * const j: Json = { model_type: "llama" };
 * ```
 */
export type Json = Record<string, unknown>;

function field(json: Json, key: string, kind: "number" | "boolean", fallback?: unknown): unknown {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new ConfigError("config", `missing field "${key}"`);
    return fallback;
  }
  if ((kind === "number" ? typeof v !== "number" : typeof v !== "boolean")) {
    throw new ConfigError("config", `field "${key}" must be a ${kind}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function ropeScalingFromHF(raw: unknown): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "object") throw new ConfigError("config", `rope_scaling must be an object or null`);
  const r = raw as Json;
  const type = r.rope_type ?? r.type;
  if (type === "default") return null;
  const factor = field(r, "factor", "number") as number;
  if (type === "linear") return { type, factor };
  if (type === "llama3") {
    return {
      type,
      factor,
      lowFreqFactor: field(r, "low_freq_factor", "number") as number,
      highFreqFactor: field(r, "high_freq_factor", "number") as number,
      originalMaxPositionEmbeddings: field(r, "original_max_position_embeddings", "number") as number,
    };
  }
  throw new ConfigError("config", `rope_scaling type ${JSON.stringify(type)} is not supported (linear, llama3)`);
}

function idList(v: unknown, key: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.some((x) => !Number.isInteger(x))) throw new ConfigError("config", `${key} must be token ids, got ${v}`);
  return list as number[];
}

const ARCHITECTURES: Record<string, ModelType> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
};

/**
 * Reads a Hugging Face `config.json` object (Llama, Mistral, Qwen2). An unknown `model_type` or
 * architecture, a missing size, or a value out of range raises a {@link ConfigError} naming it.
 *
 * @example
 * ```ts
 * import { configFromHF } from "./config.ts";
 * const c = configFromHF({
 *   model_type: "qwen2", vocab_size: 1000, hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
 * });
 * c.attentionBias; // true: Qwen2 has biases on q, k and v
 * ```
 */
export function configFromHF(json: Json): LlamaConfig {
  if (json === null || typeof json !== "object") throw new ConfigError("config", "config.json must hold an object");
  const archs = json.architectures;
  const arch = Array.isArray(archs) ? archs.find((a) => typeof a === "string" && a in ARCHITECTURES) : undefined;
  const modelType = (json.model_type ?? (arch ? ARCHITECTURES[arch] : undefined)) as string | undefined;
  if (modelType === undefined) throw new ConfigError("config", `missing field "model_type"`);
  if (!["llama", "mistral", "qwen2"].includes(modelType)) {
    throw new ConfigError(
      "config",
      `unknown model_type ${JSON.stringify(modelType)}${archs ? ` (architectures ${JSON.stringify(archs)})` : ""}; ` +
        `supported: llama, mistral, qwen2`,
    );
  }
  if (json.hidden_act !== undefined && json.hidden_act !== "silu") {
    throw new ConfigError("config", `hidden_act ${JSON.stringify(json.hidden_act)} is not supported (silu)`);
  }
  if (modelType === "qwen2" && json.use_sliding_window === true) {
    throw new ConfigError("config", "use_sliding_window: true is not supported for qwen2");
  }
  const num = (k: string, d?: unknown) => field(json, k, "number", d) as number;
  // transformers 5 writes the rotary settings as one object (rope_parameters: rope_theta, rope_type
  // and the scaling's fields); earlier versions wrote rope_theta and rope_scaling beside the rest.
  const rp = json.rope_parameters;
  if (rp !== undefined && rp !== null && (typeof rp !== "object" || Array.isArray(rp))) {
    throw new ConfigError("config", `rope_parameters must be an object, got ${JSON.stringify(rp)}`);
  }
  const ropeParameters = (rp ?? null) as Json | null;
  const bool = (k: string, d: boolean) => field(json, k, "boolean", d) as boolean;
  const hidden = num("hidden_size");
  const heads = num("num_attention_heads");
  const qwen = modelType === "qwen2";
  const window = modelType === "mistral" ? (json.sliding_window ?? null) : null;
  return validateConfig({
    modelType: modelType as ModelType,
    vocabSize: num("vocab_size"),
    hiddenSize: hidden,
    intermediateSize: num("intermediate_size"),
    numHiddenLayers: num("num_hidden_layers"),
    numAttentionHeads: heads,
    numKeyValueHeads: num("num_key_value_heads", heads),
    headDim: num("head_dim", Math.floor(hidden / heads)),
    maxPositionEmbeddings: num("max_position_embeddings", 2048),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    ropeTheta: ropeParameters === null
      ? num("rope_theta", 10000)
      : field(ropeParameters, "rope_theta", "number", json.rope_theta ?? 10000) as number,
    ropeScaling: ropeScalingFromHF(json.rope_scaling ?? ropeParameters),
    attentionBias: qwen || bool("attention_bias", false),
    outputBias: !qwen && bool("attention_bias", false),
    mlpBias: bool("mlp_bias", false),
    tieWordEmbeddings: bool("tie_word_embeddings", false),
    initializerRange: num("initializer_range", 0.02),
    slidingWindow: window as number | null,
    bosTokenId: (json.bos_token_id ?? null) as number | null,
    eosTokenIds: idList(json.eos_token_id, "eos_token_id"),
    padTokenId: (json.pad_token_id ?? null) as number | null,
  });
}

/**
 * The Hugging Face `config.json` object of a config (what `configFromHF` reads back, and what
 * transformers' `AutoConfig` reads).
 *
 * @example
 * ```ts
 * import { configFromHF, configToHF, PRESETS } from "./config.ts";
 * configFromHF(configToHF(PRESETS["llama-3.2-1b"])).ropeScaling?.type; // "llama3"
 * ```
 */
export function configToHF(c: LlamaConfig, torchDtype = "float32"): Json {
  const arch = Object.entries(ARCHITECTURES).find(([, t]) => t === c.modelType)![0];
  const s = c.ropeScaling;
  const eos = c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds.length ? [...c.eosTokenIds] : null;
  const json: Json = {
    architectures: [arch],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    hidden_act: "silu",
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: s === null ? null : s.type === "linear" ? { rope_type: "linear", factor: s.factor } : {
      rope_type: "llama3",
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositionEmbeddings,
    },
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    bos_token_id: c.bosTokenId,
    eos_token_id: eos,
    pad_token_id: c.padTokenId,
    torch_dtype: torchDtype,
  };
  if (c.modelType === "qwen2") json.use_sliding_window = false;
  else {
    json.attention_bias = c.outputBias;
    json.mlp_bias = c.mlpBias;
  }
  if (c.modelType === "mistral") json.sliding_window = c.slidingWindow;
  return json;
}

/**
 * Configs with the shapes of released models (weights random, for benchmarks and tests) and a
 * tiny one: `tiny` (2 layers, width 64, the byte tokenizer's 259 tokens), `qwen2.5-0.5b`, `llama-3.2-1b`,
 * `llama-3-8b`.
 *
 * @example
 * ```ts
 * import { PRESETS } from "./config.ts";
 * PRESETS["llama-3-8b"].numKeyValueHeads; // 8
 * ```
 */
export const PRESETS: Readonly<Record<string, LlamaConfig>> = {
  tiny: llamaConfig({
    vocabSize: 259,
    hiddenSize: 64,
    intermediateSize: 176,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    maxPositionEmbeddings: 4096,
    rmsNormEps: 1e-5,
  }),
  "qwen2.5-0.5b": llamaConfig({
    modelType: "qwen2",
    vocabSize: 151936,
    hiddenSize: 896,
    intermediateSize: 4864,
    numHiddenLayers: 24,
    numAttentionHeads: 14,
    numKeyValueHeads: 2,
    maxPositionEmbeddings: 32768,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    attentionBias: true,
    tieWordEmbeddings: true,
    bosTokenId: 151643,
    eosTokenIds: [151643],
  }),
  "llama-3.2-1b": llamaConfig({
    vocabSize: 128256,
    hiddenSize: 2048,
    intermediateSize: 8192,
    numHiddenLayers: 16,
    numAttentionHeads: 32,
    numKeyValueHeads: 8,
    maxPositionEmbeddings: 131072,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3",
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    },
    tieWordEmbeddings: true,
    bosTokenId: 128000,
    eosTokenIds: [128001],
  }),
  "llama-3-8b": llamaConfig({
    vocabSize: 128256,
    hiddenSize: 4096,
    intermediateSize: 14336,
    numHiddenLayers: 32,
    numAttentionHeads: 32,
    numKeyValueHeads: 8,
    maxPositionEmbeddings: 8192,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    bosTokenId: 128000,
    eosTokenIds: [128001],
  }),
};

/**
 * A preset by name (case-insensitive), or an {@link ArgumentError} listing the names.
 *
 * @example
 * ```ts
 * import { preset } from "./config.ts";
 * preset("Qwen2.5-0.5B").hiddenSize; // 896
 * ```
 */
export function preset(name: string): LlamaConfig {
  const c = PRESETS[name.toLowerCase()];
  if (!c) {
    throw new ArgumentError("preset", `unknown preset "${name}"; choose one of ${Object.keys(PRESETS).join(", ")}`);
  }
  return c;
}

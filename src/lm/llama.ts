/**
 * The Llama-family decoder (Llama 2/3, Mistral, Qwen2) as Hugging Face's transformers defines it,
 * with its parameter names (`model.layers.0.self_attn.q_proj.weight`, …) so checkpoints load by
 * name. The key/value cache is a value passed in and returned, as in candle's llama.rs:
 * `forward(tokens, { cache, position }) → { logits, cache }`.
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  checkpoint,
  DTypeError,
  fmtShape,
  Generator,
  ShapeError,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
import {
  Embedding,
  fusedRmsNorm,
  fusedSwiglu,
  type Implementation,
  init,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  scaledDotProductAttention,
} from "../nn/mod.ts";
import type { Initializer, TensorModule } from "../nn/mod.ts";
import type { DType } from "../tensor/mod.ts";
import { appendLayerCache, checkCache, type KVCache, type LayerCache } from "./cache.ts";
import { type LlamaConfig, validateConfig } from "./config.ts";
import { linearCrossEntropy, type LinearCrossEntropyOptions } from "./loss.ts";
import { applyRotary, rotaryTables } from "./rope.ts";

/**
 * Options of {@link LlamaForCausalLM}'s constructor.
 *
 * @example
 * ```ts
 * import type { ModelOptions } from "./llama.ts";
 * const o: ModelOptions = { seed: 0, dtype: "float64" };
 * ```
 */
export interface ModelOptions {
  /** Seed of the initial weights (normal with std `initializerRange`, as Hugging Face). Default 0. */
  seed?: number;
  /** `random` (default) as above, or `zeros`: no random draws, for weights about to be loaded. */
  weights?: "random" | "zeros";
  /**
   * Attention, RMSNorm, rotary, SwiGLU and the loss's slices: `auto` (default; the backend's fused
   * kernels where it prefers them), `fused` or `composed` (see `src/nn/fused.ts`).
   */
  implementation?: Implementation;
  /** Parameter dtype. Default float32. */
  dtype?: DType;
  /** Backend of the parameters. Default: the default backend. */
  backend?: Backend;
}

/**
 * Options of a forward pass.
 *
 * @example
 * ```ts
 * import type { ForwardOptions } from "./llama.ts";
 * const o: ForwardOptions = { cache: [], position: 0 };
 * ```
 */
export interface ForwardOptions {
  /** Keys and values of the positions before these tokens (none by default). */
  cache?: KVCache | null;
  /** Position of the first token. Default: the cache's length (it must equal it when a cache is given). */
  position?: number;
  /**
   * Attention used in place of {@link scaledDotProductAttention} (a memory-efficient one, or one
   * that also reads keys and values held elsewhere). It must attend causally, the queries being the
   * last positions of the keys, within the config's sliding window.
   */
  attention?: AttentionFunction;
  /**
   * Gradient checkpointing: keep only each layer's input and recompute the layer in the backward
   * pass (one layer's activations alive at a time, for one more forward). No cache is returned.
   */
  checkpointLayers?: boolean;
}

/**
 * An attention for {@link ForwardOptions}: the rotated queries `[B, Hq, T, D]`, this layer's keys
 * and values `[B, Hkv, Tk, D]` (the cache's and these tokens') and the layer's index, to the
 * attention output `[B, Hq, T, D]`.
 *
 * @example
 * ```ts
 * import type { AttentionFunction } from "./llama.ts";
 * import { scaledDotProductAttention } from "../nn/mod.ts";
 * const plain: AttentionFunction = (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true });
 * ```
 */
export type AttentionFunction = (q: Tensor, keys: Tensor, values: Tensor, layer: number) => Tensor;

/**
 * Tokens as a model accepts them: an int32 tensor `[batch, length]` (or `[length]`), or numbers.
 *
 * @example
 * ```ts
 * import type { TokenInput } from "./llama.ts";
 * const t: TokenInput = [[1, 2, 3]];
 * ```
 */
export type TokenInput = Tensor | readonly number[] | readonly (readonly number[])[];

/**
 * Tokens as an int32 `[batch, length]` tensor on `backend`, checked: rows of one length, integer
 * ids inside `[0, vocab)`, at least one token; errors name `op`.
 *
 * @example
 * ```ts
 * import { tokenTensor } from "./llama.ts";
 * tokenTensor("model", [1, 2, 3], 10).shape; // [1, 3]
 * ```
 */
export function tokenTensor(op: string, input: TokenInput, vocab: number, backend?: Backend): Tensor {
  let ids: Int32Array;
  let shape: number[];
  if (Array.isArray(input)) {
    const rows = (input.length && Array.isArray(input[0]) ? input : [input]) as readonly (readonly number[])[];
    const len = rows[0]?.length ?? 0;
    if (rows.some((r) => !Array.isArray(r) || r.length !== len)) {
      throw new ShapeError(op, "token rows must be arrays of one length (pad them first)");
    }
    shape = [rows.length, len];
    ids = Int32Array.from(rows.flat());
    if (rows.flat().some((v) => !Number.isInteger(v))) throw new ArgumentError(op, "token ids must be integers");
  } else {
    const t = input as Tensor;
    if (t.dtype !== "int32") throw new DTypeError(op, `tokens must be int32, got ${t.dtype}`);
    if (t.ndim !== 1 && t.ndim !== 2) {
      throw new ShapeError(op, `tokens must be [batch, length] or [length], got ${fmtShape(t.shape)}`);
    }
    shape = t.ndim === 1 ? [1, t.shape[0]] : [...t.shape];
    ids = t.toTypedArray() as Int32Array;
  }
  if (shape[1] === 0) throw new ShapeError(op, "no tokens to run");
  const bad = ids.findIndex((v) => v < 0 || v >= vocab);
  if (bad >= 0) {
    throw new ArgumentError(op, `token id ${ids[bad]} at position ${bad} is outside the vocabulary [0, ${vocab})`);
  }
  if (!Array.isArray(input) && (backend === undefined || (input as Tensor).backend === backend)) {
    return (input as Tensor).reshape(shape);
  }
  return tensor(ids, { shape, dtype: "int32", backend });
}

interface Init {
  generator: Generator;
  dtype: DType;
  backend?: Backend;
  std: number;
  zeros: boolean;
  implementation: Implementation;
}

function normalInit(o: Init): Initializer {
  return (s, io) => (o.zeros ? init.zeros(s, io) : init.normal(s, { ...io, std: o.std }));
}

/** An RMSNorm module's computation, through the fused op. */
function norm(m: RMSNorm, x: Tensor, implementation: Implementation): Tensor {
  return fusedRmsNorm(x, m.weight!, m.eps, implementation);
}

function linear(inF: number, outF: number, bias: boolean, o: Init): Linear {
  return new Linear(inF, outF, {
    bias,
    generator: o.generator,
    dtype: o.dtype,
    backend: o.backend,
    weightInit: normalInit(o),
    biasInit: (s, io) => init.zeros(s, io),
  });
}

/** Grouped-query self-attention with rotary embeddings (Hugging Face `LlamaAttention`). */
export class LlamaAttention extends Module {
  /** Query projection. */
  q_proj: TensorModule;
  /** Key projection. */
  k_proj: TensorModule;
  /** Value projection. */
  v_proj: TensorModule;
  /** Output projection. */
  o_proj: TensorModule;
  readonly #config: LlamaConfig;
  readonly #impl: Implementation;

  /** The layer's projections, initialised from `o`. */
  constructor(config: LlamaConfig, o: Init) {
    super();
    this.#config = config;
    this.#impl = o.implementation;
    const { hiddenSize: d, numAttentionHeads: hq, numKeyValueHeads: hkv, headDim: hd } = config;
    this.q_proj = this.module("q_proj", linear(d, hq * hd, config.attentionBias, o));
    this.k_proj = this.module("k_proj", linear(d, hkv * hd, config.attentionBias, o));
    this.v_proj = this.module("v_proj", linear(d, hkv * hd, config.attentionBias, o));
    this.o_proj = this.module("o_proj", linear(hq * hd, d, config.outputBias, o));
  }

  /**
   * Attends `x` `[B, T, D]` over the cached positions and its own (with `attention`, when given);
   * returns the output and the extended cache.
   */
  forward(
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    cache?: LayerCache,
    attention?: (q: Tensor, keys: Tensor, values: Tensor) => Tensor,
  ): { output: Tensor; cache: LayerCache } {
    const { numAttentionHeads: hq, headDim: hd } = this.#config;
    const [b, t] = x.shape;
    const impl = this.#impl;
    const q = applyRotary(this.#heads(this.q_proj.forward(x), hq), cos, sin, impl);
    const next = this.keysValues(x, cos, sin, cache);
    const window = this.#config.slidingWindow;
    const a = attention
      ? attention(q, next.keys, next.values)
      : scaledDotProductAttention(q, next.keys, next.values, { causal: true, window, implementation: impl });
    return { output: this.o_proj.forward(a.transpose(1, 2).reshape([b, t, hq * hd])), cache: next };
  }

  /** The cache extended by the keys (rotated) and values of `x` `[B, T, D]`, without the attention. */
  keysValues(x: Tensor, cos: Tensor, sin: Tensor, cache?: LayerCache): LayerCache {
    const hkv = this.#config.numKeyValueHeads;
    const k = applyRotary(this.#heads(this.k_proj.forward(x), hkv), cos, sin, this.#impl);
    return appendLayerCache(cache, k, this.#heads(this.v_proj.forward(x), hkv));
  }

  /** `[B, T, h·headDim]` → `[B, h, T, headDim]`. */
  #heads(y: Tensor, h: number): Tensor {
    const [b, t] = y.shape;
    return y.reshape([b, t, h, this.#config.headDim]).transpose(1, 2);
  }
}

/** The SwiGLU feed-forward block `down(silu(gate(x)) · up(x))` (Hugging Face `LlamaMLP`). */
export class LlamaMLP extends Module {
  /** Gate projection. */
  gate_proj: TensorModule;
  /** Up projection. */
  up_proj: TensorModule;
  /** Down projection. */
  down_proj: TensorModule;
  readonly #impl: Implementation;

  /** The block's projections, initialised from `o`. */
  constructor(config: LlamaConfig, o: Init) {
    super();
    this.#impl = o.implementation;
    const { hiddenSize: d, intermediateSize: f, mlpBias } = config;
    this.gate_proj = this.module("gate_proj", linear(d, f, mlpBias, o));
    this.up_proj = this.module("up_proj", linear(d, f, mlpBias, o));
    this.down_proj = this.module("down_proj", linear(f, d, mlpBias, o));
  }

  /** `down(silu(gate(x)) · up(x))`. */
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(fusedSwiglu(this.gate_proj.forward(x), this.up_proj.forward(x), this.#impl));
  }
}

/** One pre-norm decoder layer: attention and MLP, each around a residual connection. */
export class LlamaDecoderLayer extends Module {
  /** Attention. */
  readonly self_attn: LlamaAttention;
  /** Feed-forward block. */
  readonly mlp: LlamaMLP;
  /** Norm before attention. */
  readonly input_layernorm: RMSNorm;
  /** Norm before the MLP. */
  readonly post_attention_layernorm: RMSNorm;
  readonly #impl: Implementation;

  /** A layer of `config`, initialised from `o`. */
  constructor(config: LlamaConfig, o: Init) {
    super();
    this.#impl = o.implementation;
    const norm = { eps: config.rmsNormEps, dtype: o.dtype, backend: o.backend };
    this.self_attn = this.module("self_attn", new LlamaAttention(config, o));
    this.mlp = this.module("mlp", new LlamaMLP(config, o));
    this.input_layernorm = this.module("input_layernorm", new RMSNorm(config.hiddenSize, norm));
    this.post_attention_layernorm = this.module("post_attention_layernorm", new RMSNorm(config.hiddenSize, norm));
  }

  /** The layer on `x` `[B, T, D]` with its cache (and `attention` in place of the default one). */
  forward(
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    cache?: LayerCache,
    attention?: (q: Tensor, keys: Tensor, values: Tensor) => Tensor,
  ): { output: Tensor; cache: LayerCache } {
    const a = this.self_attn.forward(norm(this.input_layernorm, x, this.#impl), cos, sin, cache, attention);
    const h = x.add(a.output);
    return { output: h.add(this.mlp.forward(norm(this.post_attention_layernorm, h, this.#impl))), cache: a.cache };
  }

  /** The layer's cache extended by the keys and values of `x` `[B, T, D]`, without its output. */
  keysValues(x: Tensor, cos: Tensor, sin: Tensor, cache?: LayerCache): LayerCache {
    return this.self_attn.keysValues(norm(this.input_layernorm, x, this.#impl), cos, sin, cache);
  }
}

/** The decoder stack without its head (Hugging Face `LlamaModel`: `embed_tokens`, `layers`, `norm`). */
export class LlamaModel extends Module {
  /** Token embeddings. */
  readonly embed_tokens: Embedding;
  /** Decoder layers. */
  readonly layers: ModuleList<LlamaDecoderLayer>;
  /** Final norm. */
  readonly norm: RMSNorm;

  /** The stack of `config`, initialised from `o`. */
  constructor(config: LlamaConfig, o: Init) {
    super();
    this.embed_tokens = this.module(
      "embed_tokens",
      new Embedding(config.vocabSize, config.hiddenSize, {
        generator: o.generator,
        dtype: o.dtype,
        backend: o.backend,
        init: normalInit(o),
      }),
    );
    const layers = Array.from({ length: config.numHiddenLayers }, () => new LlamaDecoderLayer(config, o));
    this.layers = this.module("layers", new ModuleList(layers));
    this.norm = this.module(
      "norm",
      new RMSNorm(config.hiddenSize, { eps: config.rmsNormEps, dtype: o.dtype, backend: o.backend }),
    );
  }
}

/**
 * A causal language model: {@link LlamaModel} and an LM head (`lm_head`, or the embedding's
 * weight when `tieWordEmbeddings`). Parameters carry Hugging Face's names.
 *
 * @example
 * ```ts
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
 * const a = model.forward([[1, 2, 3, 4]]);            // logits [1, 4, 259]
 * const b = model.forward([[5]], { cache: a.cache }); // the next token, at position 4
 * b.logits.shape; // [1, 1, 259]
 * ```
 */
export class LlamaForCausalLM extends Module {
  /** The configuration. */
  readonly config: LlamaConfig;
  /** The decoder stack. */
  readonly model: LlamaModel;
  /** The LM head (null when tied to the embedding). */
  lm_head: TensorModule | null;
  /** Which implementation of the fused ops runs (see {@link ModelOptions}). */
  readonly implementation: Implementation;

  /** A model of `config` with weights initialised as Hugging Face does (seeded). */
  constructor(config: LlamaConfig, options: ModelOptions = {}) {
    super();
    this.config = validateConfig(config);
    const o: Init = {
      generator: new Generator(options.seed ?? 0),
      dtype: options.dtype ?? "float32",
      backend: options.backend,
      std: config.initializerRange,
      zeros: options.weights === "zeros",
      implementation: options.implementation ?? "auto",
    };
    this.implementation = o.implementation;
    this.model = this.module("model", new LlamaModel(config, o));
    this.lm_head = config.tieWordEmbeddings
      ? null
      : this.module("lm_head", linear(config.hiddenSize, config.vocabSize, false, o));
  }

  /** The weight of the LM head `[vocab, hidden]` (the embedding's when tied). */
  get headWeight(): Tensor {
    if (this.lm_head === null) return this.model.embed_tokens.weight;
    if (this.lm_head instanceof Linear) return this.lm_head.weight;
    throw new ArgumentError("LlamaForCausalLM", "the LM head is wrapped (by an adapter); it has no plain weight");
  }

  /** Tokens as an int32 `[batch, length]` tensor on the model's backend, checked against the vocabulary. */
  tokens(input: TokenInput): Tensor {
    return tokenTensor("LlamaForCausalLM", input, this.config.vocabSize, this.model.embed_tokens.weight.backend);
  }

  /** The final hidden states `[B, T, hidden]` (after the last norm) and the extended cache. */
  hidden(input: TokenInput, options: ForwardOptions = {}): { hidden: Tensor; cache: KVCache } {
    const { x, cache } = this.#decode(input, options, false);
    return { hidden: norm(this.model.norm, x, this.implementation), cache };
  }

  /**
   * The cache extended by these tokens' keys and values, every layer's, and no more: the last
   * layer's queries, attention, output projection and MLP, the final norm and the head — which
   * only the outputs need — are not computed. What a chunk's first pass needs when its loss is
   * left to a later pass.
   *
   * @example
   * ```ts
   * import { LlamaForCausalLM } from "./llama.ts";
   * import { PRESETS } from "./config.ts";
   * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
   * const { cache } = model.keysValues([[1, 2, 3, 4]]);
   * cache[1].keys.shape; // [1, 2, 4, 16]: the last layer's keys, as forward() gives them
   * ```
   */
  keysValues(input: TokenInput, options: Omit<ForwardOptions, "checkpointLayers"> = {}): { cache: KVCache } {
    if ((options as ForwardOptions).checkpointLayers) {
      throw new ArgumentError("LlamaForCausalLM.keysValues", "checkpointLayers returns no cache; leave it out");
    }
    return { cache: this.#decode(input, options, true).cache };
  }

  /** The layers on the tokens; `cacheOnly`: the last layer's keys and values only (x: its input). */
  #decode(input: TokenInput, options: ForwardOptions, cacheOnly: boolean): { x: Tensor; cache: KVCache } {
    const tokens = this.tokens(input);
    const past = checkCache(options.cache, this.config.numHiddenLayers);
    const position = options.position ?? past;
    if (past > 0 && position !== past) {
      throw new ArgumentError("LlamaForCausalLM", `position ${position} differs from the cache's length ${past}`);
    }
    const w = this.model.embed_tokens.weight;
    const { cos, sin } = rotaryTables(this.config, position, tokens.shape[1], { dtype: w.dtype, backend: w.backend });
    let x = this.model.embed_tokens.forward(tokens);
    const cache: LayerCache[] = [];
    const layers = [...this.model.layers];
    for (const [i, layer] of layers.entries()) {
      if (cacheOnly && i === layers.length - 1) {
        cache.push(layer.keysValues(x, cos, sin, options.cache?.[i]));
        break;
      }
      const attend = options.attention;
      const attention = attend && ((q: Tensor, k: Tensor, v: Tensor) => attend(q, k, v, i));
      if (options.checkpointLayers) {
        x = checkpoint((h: Tensor) => layer.forward(h, cos, sin, options.cache?.[i], attention).output)(x);
        continue;
      }
      const out = layer.forward(x, cos, sin, options.cache?.[i], attention);
      x = out.output;
      cache.push(out.cache);
    }
    return { x, cache };
  }

  /** Logits `[B, T, vocab]` of the tokens and the cache extended by them. */
  forward(input: TokenInput, options: ForwardOptions = {}): { logits: Tensor; cache: KVCache } {
    const { hidden, cache } = this.hidden(input, options);
    const logits = this.lm_head ? this.lm_head.forward(hidden) : hidden.matmul(this.headWeight.transpose());
    return { logits, cache };
  }

  /**
   * Token cross-entropy of the next-token predictions against `targets` (same shape as the
   * tokens; `ignoreIndex` skips positions), computed from the hidden states slice by slice of the
   * vocabulary ({@link linearCrossEntropy}) so the full logits never exist. Returns the loss and
   * the extended cache.
   */
  loss(
    input: TokenInput,
    targets: TokenInput,
    options: ForwardOptions & LinearCrossEntropyOptions = {},
  ): { loss: Tensor; cache: KVCache } {
    const { hidden, cache } = this.hidden(input, options);
    const t = Array.isArray(targets) ? (targets as (number | readonly number[])[]).flat() : targets as Tensor;
    if (this.lm_head !== null && !(this.lm_head instanceof Linear)) {
      throw new ArgumentError(
        "LlamaForCausalLM.loss",
        "the LM head is wrapped by an adapter; use forward() and crossEntropy",
      );
    }
    const implementation = options.implementation ?? this.implementation;
    return { loss: linearCrossEntropy(hidden, this.headWeight, t, { ...options, implementation }), cache };
  }
}

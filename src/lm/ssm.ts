/**
 * A selective diagonal state-space language model (the model of Xu et al. 2025, "Adjoint sharding
 * for very long context training of state space models"): K residual layers
 *
 * ```text
 * x[t] = RMSNorm_k(y_{k−1}[t])                                    (ŷ_{k−1}, the layer's input)
 * a[t] = σ(W_a x[t] + b_a) ∈ (0, 1)^N                            A[t] = diag(a[t])   (𝒜_k)
 * B[t] = reshape(W_B x[t] + b_B, [N, P])                                              (ℬ_k)
 * C[t] = reshape(W_C x[t] + b_C, [P, N])                                              (𝒞_k)
 * h[t] = A[t] h[t − 1] + B[t] x[t],   h[−1] = 0 (or a carried state)
 * y_k[t] = y_{k−1}[t] + C[t] h[t]
 * ```
 *
 * on token embeddings y_0, and logits `o[t] = Ω RMSNorm(y_K[t])`. The recurrence is one
 * differentiable scan ({@link linearScan}); the last state of each layer is returned, so a long
 * sequence can be run block by block (or generated token by token) with the state carried.
 *
 * @module
 */

import { Generator, ShapeError, type Tensor, tensor } from "../tensor/mod.ts";
import { Embedding, init, Linear, Module, ModuleList, RMSNorm } from "../nn/mod.ts";
import type { Backend, DType } from "../tensor/mod.ts";
import { ConfigError } from "./config.ts";
import { type TokenInput, tokenTensor } from "./llama.ts";
import { linearCrossEntropy, type LinearCrossEntropyOptions } from "./loss.ts";
import { linearScan } from "./ssm_scan.ts";

/**
 * The shape and initialisation of an {@link SSMForCausalLM}.
 *
 * @example
 * ```ts
 * import { ssmConfig } from "./ssm.ts";
 * const c = ssmConfig({ vocabSize: 259, hiddenSize: 32, stateSize: 8, numLayers: 2 });
 * c.decayRange; // [0.9, 0.999]
 * ```
 */
export interface SSMConfig {
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Width P of the residual stream (and of each layer's input x). */
  readonly hiddenSize: number;
  /** State width N of each layer. */
  readonly stateSize: number;
  /** Number of layers K. */
  readonly numLayers: number;
  /** RMSNorm epsilon. */
  readonly rmsNormEps: number;
  /** Standard deviation of the initial weights (normal). */
  readonly initializerRange: number;
  /** Initial decays a (through the bias of 𝒜): spread geometrically in 1 − a over this range. */
  readonly decayRange: readonly [number, number];
}

/**
 * The fields an {@link SSMConfig} must give; the rest default (eps 1e-5, weights std 0.02, initial
 * decays from 0.9 to 0.999).
 *
 * @example
 * ```ts
 * import type { SSMConfigInit } from "./ssm.ts";
 * const c: SSMConfigInit = { vocabSize: 100, hiddenSize: 16, stateSize: 4, numLayers: 1 };
 * ```
 */
export type SSMConfigInit =
  & Pick<SSMConfig, "vocabSize" | "hiddenSize" | "stateSize" | "numLayers">
  & Partial<SSMConfig>;

/**
 * A validated {@link SSMConfig}; a size that is not a positive integer, a non-positive eps, a
 * negative std or a decay range outside (0, 1) is a {@link ConfigError} naming the field.
 *
 * @example
 * ```ts
 * import { ssmConfig } from "./ssm.ts";
 * ssmConfig({ vocabSize: 259, hiddenSize: 32, stateSize: 8, numLayers: 4 }).rmsNormEps; // 1e-5
 * ```
 */
export function ssmConfig(initial: SSMConfigInit): SSMConfig {
  const c: SSMConfig = {
    rmsNormEps: 1e-5,
    initializerRange: 0.02,
    decayRange: [0.9, 0.999],
    ...initial,
  };
  const bad = (field: string, detail: string): never => {
    throw new ConfigError("ssmConfig", `${field} ${detail}`);
  };
  for (const k of ["vocabSize", "hiddenSize", "stateSize", "numLayers"] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] <= 0) bad(k, `must be a positive integer, got ${c[k]}`);
  }
  if (!(c.rmsNormEps > 0)) bad("rmsNormEps", `must be positive, got ${c.rmsNormEps}`);
  if (!(c.initializerRange >= 0)) bad("initializerRange", `must be non-negative, got ${c.initializerRange}`);
  const [lo, hi] = c.decayRange ?? [];
  if (!(lo > 0 && hi < 1 && lo <= hi)) bad("decayRange", `must be [lo, hi] with 0 < lo ≤ hi < 1, got [${lo}, ${hi}]`);
  return c;
}

/**
 * Preset configs: `tiny` (the byte tokenizer's 259 ids, width 32, state 8, 2 layers) for tests and
 * the CPU, `small` (width 64, state 16, 4 layers).
 *
 * @example
 * ```ts
 * import { SSM_PRESETS } from "./ssm.ts";
 * SSM_PRESETS.tiny.numLayers; // 2
 * ```
 */
export const SSM_PRESETS: Readonly<Record<string, SSMConfig>> = {
  tiny: ssmConfig({ vocabSize: 259, hiddenSize: 32, stateSize: 8, numLayers: 2 }),
  small: ssmConfig({ vocabSize: 259, hiddenSize: 64, stateSize: 16, numLayers: 4 }),
};

/**
 * Options of {@link SSMForCausalLM}'s constructor.
 *
 * @example
 * ```ts
 * import type { SSMModelOptions } from "./ssm.ts";
 * const o: SSMModelOptions = { seed: 1, dtype: "float64" };
 * ```
 */
export interface SSMModelOptions {
  /** Seed of the initial weights. Default 0. */
  seed?: number;
  /** Parameter dtype. Default float32. */
  dtype?: DType;
  /** Backend of the parameters. Default: the default backend. */
  backend?: Backend;
}

/**
 * The recurrent state of a model between two calls: each layer's last h `[batch, N]`.
 *
 * @example
 * ```ts
 * import type { SSMState } from "./ssm.ts";
 * const none: SSMState = [];
 * ```
 */
export type SSMState = readonly Tensor[];

interface Init {
  generator: Generator;
  dtype: DType;
  backend?: Backend;
  std: number;
}

/** A Linear with normal weights; `bias` false (none), true (zeros) or its initial values. */
function linear(inF: number, outF: number, o: Init, bias: boolean | readonly number[] = true): Linear {
  return new Linear(inF, outF, {
    bias: bias !== false,
    generator: o.generator,
    dtype: o.dtype,
    backend: o.backend,
    weightInit: (s, io) => init.normal(s, { ...io, std: o.std }),
    biasInit: (s, io) =>
      typeof bias === "boolean" ? init.zeros(s, io) : tensor([...bias], { dtype: io?.dtype, backend: io?.backend }),
  });
}

/** Initial decays: 1 − a geometric from 1 − lo to 1 − hi over the state, as logits of a. */
function decayLogits(n: number, [lo, hi]: readonly [number, number]): number[] {
  return Array.from({ length: n }, (_, i) => {
    const f = n === 1 ? 0 : i / (n - 1);
    const a = 1 - (1 - lo) * ((1 - hi) / (1 - lo)) ** f;
    return Math.log(a / (1 - a));
  });
}

/**
 * The selective SSM of one layer: the networks 𝒜, ℬ, 𝒞 of the input x and the scan.
 *
 * @example
 * ```ts
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * import { randn } from "../tensor/mod.ts";
 * const mixer = new SSMForCausalLM(SSM_PRESETS.tiny).layers.at(0).mixer;
 * const x = randn([1, 5, 32]);
 * const h = mixer.states(x, null); // [1, 5, 8]
 * mixer.readout(x, h).shape; // [1, 5, 32]
 * ```
 */
export class SSMMixer extends Module {
  /** 𝒜: decay logits `[N]` of x. */
  readonly a_proj: Linear;
  /** ℬ: the input matrix B `[N, P]` of x, flattened. */
  readonly b_proj: Linear;
  /** 𝒞: the output matrix C `[P, N]` of x, flattened. */
  readonly c_proj: Linear;
  readonly #n: number;
  readonly #p: number;

  /** The networks of `config`, initialised from `o`. */
  constructor(config: SSMConfig, o: Init) {
    super();
    const { hiddenSize: p, stateSize: n } = config;
    this.#n = n;
    this.#p = p;
    this.a_proj = this.module("a_proj", linear(p, n, o, decayLogits(n, config.decayRange)));
    this.b_proj = this.module("b_proj", linear(p, n * p, o));
    this.c_proj = this.module("c_proj", linear(p, p * n, o));
  }

  /** The decays a = σ(𝒜(x)) `[..., N]` of inputs x `[..., P]`. */
  decay(x: Tensor): Tensor {
    return this.a_proj.forward(x).sigmoid();
  }

  /** What enters the state, B(x)·x `[..., N]`, for inputs x `[..., P]`. */
  drive(x: Tensor): Tensor {
    const b = this.b_proj.forward(x);
    return b.reshape([...x.shape.slice(0, -1), this.#n, this.#p]).matmul(x.unsqueeze(-1)).squeeze(-1);
  }

  /** The output C(x)·h `[..., P]` for inputs x `[..., P]` and states h `[..., N]`. */
  readout(x: Tensor, h: Tensor): Tensor {
    const c = this.c_proj.forward(x);
    return c.reshape([...x.shape.slice(0, -1), this.#p, this.#n]).matmul(h.unsqueeze(-1)).squeeze(-1);
  }

  /** States h `[B, T, N]` of inputs x `[B, T, P]` from `initial` `[B, N]` (zeros when null). */
  states(x: Tensor, initial: Tensor | null): Tensor {
    return linearScan(this.decay(x), this.drive(x), { initial });
  }
}

/**
 * One residual layer: `y + C·h` with h the scan of RMSNorm(y).
 *
 * @example
 * ```ts
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * import { randn } from "../tensor/mod.ts";
 * const layer = new SSMForCausalLM(SSM_PRESETS.tiny).layers.at(0);
 * const { output, states } = layer.forward(randn([2, 5, 32])); // [2, 5, 32] and [2, 5, 8]
 * ```
 */
export class SSMLayer extends Module {
  /** The norm giving the layer's input x. */
  readonly norm: RMSNorm;
  /** The selective SSM. */
  readonly mixer: SSMMixer;

  /** A layer of `config`, initialised from `o`. */
  constructor(config: SSMConfig, o: Init) {
    super();
    this.norm = this.module("norm", new RMSNorm(config.hiddenSize, norm(config, o)));
    this.mixer = this.module("mixer", new SSMMixer(config, o));
  }

  /** The layer on `y` `[B, T, P]` from `initial` states `[B, N]`: its output and every state `[B, T, N]`. */
  forward(y: Tensor, initial: Tensor | null = null): { output: Tensor; states: Tensor } {
    const x = this.norm.forward(y);
    const states = this.mixer.states(x, initial);
    return { output: y.add(this.mixer.readout(x, states)), states };
  }
}

function norm(config: SSMConfig, o: Init) {
  return { eps: config.rmsNormEps, dtype: o.dtype, backend: o.backend };
}

/** The last step `[B, N]` of states `[B, T, N]`. */
function lastState(states: Tensor): Tensor {
  return states.narrow(1, states.shape[1] - 1, 1).squeeze(1);
}

/**
 * The selective diagonal SSM language model (see the module comment). Parameter names:
 * `embed_tokens`, `layers.k.norm`, `layers.k.mixer.{a,b,c}_proj`, `norm`, `lm_head` (Ω).
 *
 * @example
 * ```ts
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny, { seed: 0 });
 * const a = model.forward([[1, 2, 3]]);
 * const b = model.forward([[4]], { state: a.state }); // continues the same sequence
 * b.logits.shape; // [1, 1, 259]
 * ```
 */
export class SSMForCausalLM extends Module {
  /** The configuration. */
  readonly config: SSMConfig;
  /** Token embeddings (y_0). */
  readonly embed_tokens: Embedding;
  /** The K layers. */
  readonly layers: ModuleList<SSMLayer>;
  /** The final norm (ŷ_K). */
  readonly norm: RMSNorm;
  /** Ω: hidden states to logits. */
  readonly lm_head: Linear;

  /** A model of `config` with seeded normal weights. */
  constructor(config: SSMConfig, options: SSMModelOptions = {}) {
    super();
    this.config = ssmConfig(config);
    const o: Init = {
      generator: new Generator(options.seed ?? 0),
      dtype: options.dtype ?? "float32",
      backend: options.backend,
      std: this.config.initializerRange,
    };
    const { vocabSize: v, hiddenSize: p, numLayers: k } = this.config;
    this.embed_tokens = this.module(
      "embed_tokens",
      new Embedding(v, p, {
        generator: o.generator,
        dtype: o.dtype,
        backend: o.backend,
        init: (s, io) => init.normal(s, { ...io, std: o.std }),
      }),
    );
    this.layers = this.module("layers", new ModuleList(Array.from({ length: k }, () => new SSMLayer(this.config, o))));
    this.norm = this.module("norm", new RMSNorm(p, norm(this.config, o)));
    this.lm_head = this.module("lm_head", linear(p, v, o, false));
  }

  /** Tokens as an int32 `[batch, length]` tensor on the model's backend, checked against the vocabulary. */
  tokens(input: TokenInput): Tensor {
    return tokenTensor("SSMForCausalLM", input, this.config.vocabSize, this.embed_tokens.weight.backend);
  }

  /** The residual stream y_K `[B, T, P]` (before the final norm) and each layer's last state. */
  residual(input: TokenInput, options: { state?: SSMState | null } = {}): { residual: Tensor; state: Tensor[] } {
    const tokens = this.tokens(input);
    const past = checkState(options.state, this.config, tokens.shape[0]);
    let y = this.embed_tokens.forward(tokens);
    const state: Tensor[] = [];
    for (const [k, layer] of [...this.layers].entries()) {
      const out = layer.forward(y, past?.[k] ?? null);
      y = out.output;
      state.push(lastState(out.states));
    }
    return { residual: y, state };
  }

  /** Logits `[B, T, vocab]` of the tokens and the state after them. */
  forward(input: TokenInput, options: { state?: SSMState | null } = {}): { logits: Tensor; state: Tensor[] } {
    const { residual, state } = this.residual(input, options);
    return { logits: this.lm_head.forward(this.norm.forward(residual)), state };
  }

  /**
   * Token cross-entropy of the next-token predictions against `targets` (shaped like the tokens),
   * the vocabulary walked in slices ({@link linearCrossEntropy}); and the state after the tokens.
   */
  loss(
    input: TokenInput,
    targets: TokenInput,
    options: { state?: SSMState | null } & LinearCrossEntropyOptions = {},
  ): { loss: Tensor; state: Tensor[] } {
    const { residual, state } = this.residual(input, options);
    return { loss: this.head(residual, targets, options), state };
  }

  /** The loss of a residual stream y_K `[B, T, P]` against `targets`: Ω·RMSNorm(y_K) through the cross-entropy. */
  head(residual: Tensor, targets: TokenInput, options: LinearCrossEntropyOptions = {}): Tensor {
    const t = Array.isArray(targets) ? (targets as (number | readonly number[])[]).flat() : targets as Tensor;
    const { ignoreIndex, reduction, sliceSize } = options;
    return linearCrossEntropy(this.norm.forward(residual), this.lm_head.weight, t, {
      ignoreIndex,
      reduction,
      sliceSize,
    });
  }
}

function checkState(state: SSMState | null | undefined, c: SSMConfig, batch: number): SSMState | null {
  if (!state || state.length === 0) return null;
  const ok = state.length === c.numLayers &&
    state.every((h) => h.ndim === 2 && h.shape[0] === batch && h.shape[1] === c.stateSize);
  if (!ok) {
    throw new ShapeError(
      "SSMForCausalLM",
      `state must hold ${c.numLayers} tensors [${batch}, ${c.stateSize}] (one per layer), got ` +
        `[${state.map((h) => `[${h.shape}]`).join(", ")}]`,
    );
  }
  return state;
}

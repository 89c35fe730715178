/**
 * Dense layers: {@link Linear} (`y = x·Wᵀ + b`, weight `[out, in]` as in PyTorch) and the
 * multi-layer perceptron {@link MLP}.
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  type DType,
  fmtShape,
  Generator,
  ShapeError,
  type Tensor,
} from "../tensor/mod.ts";
import { activation, type ActivationLike } from "./activation.ts";
import { ModuleList } from "./containers.ts";
import { type Initializer, uniform } from "./init.ts";
import { Module } from "./module.ts";

/**
 * Options shared by layers with random initial parameters.
 *
 * @example
 * ```ts
 * import type { LayerOptions } from "./linear.ts";
 * const options: LayerOptions = { seed: 42, dtype: "float64" };
 * ```
 */
export interface LayerOptions {
  /** Seed of the initial parameters (default 0: construction is deterministic). */
  seed?: number;
  /** Draw the initial parameters from this generator instead (advancing it). */
  generator?: Generator;
  /** Parameter dtype. Default float32. */
  dtype?: DType;
  /** Backend holding the parameters. Default: the default backend. */
  backend?: Backend;
}

/**
 * Options of {@link Linear}.
 *
 * @example
 * ```ts
 * import { Linear, type LinearOptions } from "./linear.ts";
 * import { xavierUniform } from "./init.ts";
 * const options: LinearOptions = { bias: false, weightInit: xavierUniform, seed: 0 };
 * new Linear(8, 4, options);
 * ```
 */
export interface LinearOptions extends LayerOptions {
  /** Learn an additive bias. Default true. */
  bias?: boolean;
  /** Weight initialiser (default PyTorch's: U(−1/√in, 1/√in), i.e. kaiming_uniform with a = √5). */
  weightInit?: Initializer;
  /** Bias initialiser (default U(−1/√in, 1/√in)). */
  biasInit?: Initializer;
}

function checkFeatures(op: string, name: string, n: number): void {
  if (!Number.isInteger(n) || n <= 0) throw new ArgumentError(op, `${name} must be a positive integer, got ${n}`);
}

/**
 * A fully connected layer `y = x·Wᵀ + b` over the last axis of `x` (any leading axes).
 *
 * @example
 * ```ts
 * import { Linear } from "./linear.ts";
 * import { randn } from "../tensor/mod.ts";
 * const fc = new Linear(3, 2, { seed: 0 });
 * fc.weight.shape; // [2, 3]
 * fc.forward(randn([5, 3])).shape; // [5, 2]
 * ```
 */
export class Linear extends Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** Weight, `[outFeatures, inFeatures]`. */
  readonly weight: Tensor;
  /** Bias, `[outFeatures]` (null without bias). */
  readonly bias: Tensor | null;

  /** A layer from `inFeatures` to `outFeatures`. */
  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkFeatures("Linear", "inFeatures", inFeatures);
    checkFeatures("Linear", "outFeatures", outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const generator = options.generator ?? new Generator(options.seed ?? 0);
    const init = { generator, dtype: options.dtype ?? "float32", backend: options.backend };
    const bound = 1 / Math.sqrt(inFeatures);
    const defaultInit: Initializer = (s, o) => uniform(s, { ...o, low: -bound, high: bound });
    this.weight = this.param("weight", (options.weightInit ?? defaultInit)([outFeatures, inFeatures], init));
    this.bias = options.bias ?? true
      ? this.param("bias", (options.biasInit ?? defaultInit)([outFeatures], init))
      : null;
  }

  /** `x·Wᵀ + b` for `x` of shape `[..., inFeatures]`. */
  forward(x: Tensor): Tensor {
    if (x.ndim === 0 || x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new ShapeError(
        "Linear",
        `expected input [..., ${this.inFeatures}], got ${fmtShape(x.shape)}`,
      );
    }
    const flat = x.ndim > 2 ? x.reshape([-1, this.inFeatures]) : x;
    let y = flat.matmul(this.weight.transpose());
    if (this.bias) y = y.add(this.bias);
    return x.ndim > 2 ? y.reshape([...x.shape.slice(0, -1), this.outFeatures]) : y;
  }

  /** `Linear(in → out)`. */
  override describe(): string {
    return `Linear(${this.inFeatures} → ${this.outFeatures}${this.bias ? "" : ", no bias"})`;
  }
}

/**
 * Options of {@link MLP}.
 *
 * @example
 * ```ts
 * import { MLP, type MLPOptions } from "./linear.ts";
 * const options: MLPOptions = { activation: "silu", finalActivation: "sigmoid", seed: 1 };
 * new MLP([4, 32, 1], options);
 * ```
 */
export interface MLPOptions extends LinearOptions {
  /** Activation between layers. Default "relu". */
  activation?: ActivationLike;
  /** Activation after the last layer. Default "identity". */
  finalActivation?: ActivationLike;
}

/**
 * A multi-layer perceptron: `Linear(sizes[0] → sizes[1])`, activation, …, `Linear(… → sizes.at(-1))`,
 * final activation. Layers are `layers.0`, `layers.1`, … (parameters `layers.0.weight`, …), all
 * drawn from one generator seeded by `seed` (default 0).
 *
 * @example
 * ```ts
 * import { MLP } from "./linear.ts";
 * import { randn } from "../tensor/mod.ts";
 * const net = new MLP([2, 32, 32, 1], { activation: "tanh", seed: 0 });
 * net.forward(randn([16, 2])).shape; // [16, 1]
 * net.numParameters(); // 2·32+32 + 32·32+32 + 32+1 = 1185
 * ```
 */
export class MLP extends Module {
  /** The layer widths, input first. */
  readonly sizes: readonly number[];
  /** The linear layers. */
  readonly layers: ModuleList<Linear>;
  readonly #act: (x: Tensor) => Tensor;
  readonly #final: (x: Tensor) => Tensor;
  readonly #actName: string;

  /** An MLP with the given layer widths (at least two: input and output). */
  constructor(sizes: readonly number[], options: MLPOptions = {}) {
    super();
    if (!Array.isArray(sizes) || sizes.length < 2) {
      throw new ArgumentError("MLP", `sizes must list at least the input and output widths, got [${sizes}]`);
    }
    sizes.forEach((n, i) => checkFeatures("MLP", `sizes[${i}]`, n));
    this.sizes = [...sizes];
    this.#act = activation(options.activation ?? "relu");
    this.#final = activation(options.finalActivation ?? "identity");
    this.#actName = typeof options.activation === "function" ? "custom" : options.activation ?? "relu";
    const generator = options.generator ?? new Generator(options.seed ?? 0);
    const layers: Linear[] = [];
    for (let i = 0; i + 1 < sizes.length; i++) {
      layers.push(new Linear(sizes[i], sizes[i + 1], { ...options, generator }));
    }
    this.layers = this.module("layers", new ModuleList(layers));
  }

  /** Runs the layers with the activations between them. */
  forward(x: Tensor): Tensor {
    let y = x;
    const n = this.layers.length;
    for (let i = 0; i < n; i++) {
      y = this.layers.at(i).forward(y);
      y = i < n - 1 ? this.#act(y) : this.#final(y);
    }
    return y;
  }

  /** `MLP([sizes], activation)`. */
  override describe(): string {
    return `MLP([${this.sizes.join(", ")}], ${this.#actName})`;
  }
}

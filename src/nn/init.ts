/**
 * Seeded initialisers. Each makes a new tensor of the given shape from a {@link Generator} (or a
 * seed; default seed 0, so an unseeded call is still deterministic) and the same seed gives the
 * same numbers on every backend.
 *
 * Fans follow PyTorch's layout, weight `[out, in, ...kernel]`: fan-in = in·∏kernel,
 * fan-out = out·∏kernel (a 1-D shape uses its length for both).
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  type DType,
  full,
  Generator,
  noGrad,
  rand,
  randn,
  type Tensor,
  tidy,
} from "../tensor/mod.ts";

/**
 * Where the random numbers come from and what the tensor is made of.
 *
 * @example
 * ```ts
 * import { type InitOptions, normal } from "./init.ts";
 * import { Generator } from "../tensor/mod.ts";
 * const options: InitOptions = { generator: new Generator(3), dtype: "float64" };
 * normal([4, 4], options);
 * ```
 */
export interface InitOptions {
  /** Draw from this generator (advancing it). Takes precedence over `seed`. */
  generator?: Generator;
  /** Draw from a fresh generator with this seed. Default 0. */
  seed?: number;
  /** Element type. Default float32. */
  dtype?: DType;
  /** Backend to create the tensor on. Default: the default backend. */
  backend?: Backend;
}

/**
 * Any function that makes an initial tensor of a shape (all the initialisers here qualify, and
 * modules accept one for their weights).
 *
 * @example
 * ```ts
 * import { type Initializer, xavierUniform } from "./init.ts";
 * const init: Initializer = (shape, o) => xavierUniform(shape, { ...o, gain: 5 / 3 });
 * ```
 */
export type Initializer = (shape: readonly number[], options?: InitOptions) => Tensor;

/**
 * Nonlinearities with a recommended gain (see {@link calculateGain}).
 *
 * @example
 * ```ts
 * import { calculateGain, type GainNonlinearity } from "./init.ts";
 * const nl: GainNonlinearity = "tanh";
 * calculateGain(nl); // 5/3
 * ```
 */
export type GainNonlinearity =
  | "linear"
  | "identity"
  | "conv"
  | "sigmoid"
  | "tanh"
  | "relu"
  | "leaky_relu"
  | "selu";

/**
 * `mode` of the Kaiming and variance-scaling initialisers: which fan sets the scale.
 *
 * @example
 * ```ts
 * import { type FanMode, varianceScaling } from "./init.ts";
 * const mode: FanMode = "fanAvg";
 * varianceScaling([8, 4], { mode });
 * ```
 */
export type FanMode = "fanIn" | "fanOut" | "fanAvg";

function generatorOf(options: InitOptions): Generator {
  return options.generator ?? new Generator(options.seed ?? 0);
}

function workDType(dtype: DType | undefined): DType {
  return dtype === "float64" ? "float64" : "float32";
}

function finish(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : t.cast(dtype);
}

function checkFinite(op: string, what: Record<string, number>): void {
  for (const [k, v] of Object.entries(what)) {
    if (!Number.isFinite(v)) throw new ArgumentError(op, `${k} must be a finite number, got ${v}`);
  }
}

/**
 * Fan-in and fan-out of a weight of `shape` (`[out, in, ...kernel]`).
 *
 * @example
 * ```ts
 * import { computeFans } from "./init.ts";
 * computeFans([64, 32]); // { fanIn: 32, fanOut: 64 }
 * computeFans([8, 4, 3, 3]); // { fanIn: 36, fanOut: 72 }
 * ```
 */
export function computeFans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 0) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0], fanOut: shape[0] };
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/**
 * The recommended gain for a nonlinearity (PyTorch's `calculate_gain`): 1 for linear and
 * sigmoid, 5/3 for tanh, √2 for relu, √(2/(1+a²)) for leaky_relu with slope `param` (default 0.01),
 * 3/4 for selu.
 *
 * @example
 * ```ts
 * import { calculateGain } from "./init.ts";
 * calculateGain("relu"); // 1.4142...
 * ```
 */
export function calculateGain(nonlinearity: GainNonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear":
    case "identity":
    case "conv":
    case "sigmoid":
      return 1;
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.SQRT2;
    case "leaky_relu": {
      const a = param ?? 0.01;
      return Math.sqrt(2 / (1 + a * a));
    }
    case "selu":
      return 3 / 4;
    default:
      throw new ArgumentError(
        "calculateGain",
        `unknown nonlinearity ${JSON.stringify(nonlinearity)}; expected linear, identity, conv, sigmoid, tanh, ` +
          "relu, leaky_relu or selu",
      );
  }
}

/**
 * Uniform numbers in (low, high) (default (0, 1)).
 *
 * @example
 * ```ts
 * import { uniform } from "./init.ts";
 * uniform([3, 4], { low: -1, high: 1, seed: 7 }).shape; // [3, 4]
 * ```
 */
export function uniform(
  shape: readonly number[],
  options: InitOptions & { low?: number; high?: number } = {},
): Tensor {
  const low = options.low ?? 0;
  const high = options.high ?? 1;
  checkFinite("uniform", { low, high });
  if (high < low) throw new ArgumentError("uniform", `high (${high}) must not be below low (${low})`);
  const dtype = options.dtype ?? "float32";
  const generator = generatorOf(options);
  return noGrad(() =>
    tidy(() => {
      const u = rand(shape, { generator, dtype: workDType(dtype), backend: options.backend });
      return finish(u.mul(high - low).add(low), dtype);
    })
  );
}

/**
 * Normal numbers with the given mean and standard deviation (default 0 and 1).
 *
 * @example
 * ```ts
 * import { normal } from "./init.ts";
 * normal([1000], { std: 0.02, seed: 1 }).shape; // [1000]
 * ```
 */
export function normal(
  shape: readonly number[],
  options: InitOptions & { mean?: number; std?: number } = {},
): Tensor {
  const mean = options.mean ?? 0;
  const std = options.std ?? 1;
  checkFinite("normal", { mean, std });
  if (std < 0) throw new ArgumentError("normal", `std must be non-negative, got ${std}`);
  const dtype = options.dtype ?? "float32";
  const generator = generatorOf(options);
  return noGrad(() =>
    tidy(() => {
      const z = randn(shape, { generator, dtype: workDType(dtype), backend: options.backend });
      return finish(z.mul(std).add(mean), dtype);
    })
  );
}

/**
 * A tensor filled with `value`.
 *
 * @example
 * ```ts
 * import { constant } from "./init.ts";
 * constant([2], { value: 0.1 }).toArray(); // [0.1, 0.1] (in float32)
 * ```
 */
export function constant(shape: readonly number[], options: InitOptions & { value?: number } = {}): Tensor {
  return full(shape, options.value ?? 0, { dtype: options.dtype ?? "float32", backend: options.backend });
}

/**
 * Zeros (the generator is not used).
 *
 * @example
 * ```ts
 * import { zeros } from "./init.ts";
 * zeros([3]).toArray(); // [0, 0, 0]
 * ```
 */
export function zeros(shape: readonly number[], options: InitOptions = {}): Tensor {
  return constant(shape, { ...options, value: 0 });
}

/**
 * Ones (the generator is not used).
 *
 * @example
 * ```ts
 * import { ones } from "./init.ts";
 * ones([3]).toArray(); // [1, 1, 1]
 * ```
 */
export function ones(shape: readonly number[], options: InitOptions = {}): Tensor {
  return constant(shape, { ...options, value: 1 });
}

function fanOf(op: string, shape: readonly number[], mode: FanMode): number {
  const { fanIn, fanOut } = computeFans(shape);
  const fan = mode === "fanIn" ? fanIn : mode === "fanOut" ? fanOut : mode === "fanAvg" ? (fanIn + fanOut) / 2 : NaN;
  if (Number.isNaN(fan)) {
    throw new ArgumentError(op, `mode must be "fanIn", "fanOut" or "fanAvg", got ${JSON.stringify(mode)}`);
  }
  if (fan <= 0) throw new ArgumentError(op, `cannot initialise a tensor with zero fan (shape [${shape}])`);
  return fan;
}

/**
 * Glorot/Xavier uniform: U(−b, b) with b = gain·√(6 / (fanIn + fanOut)).
 *
 * @example
 * ```ts
 * import { xavierUniform } from "./init.ts";
 * xavierUniform([64, 32], { gain: 5 / 3, seed: 0 }).shape; // [64, 32]
 * ```
 */
export function xavierUniform(shape: readonly number[], options: InitOptions & { gain?: number } = {}): Tensor {
  const gain = options.gain ?? 1;
  const { fanIn, fanOut } = computeFans(shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, { ...options, low: -bound, high: bound });
}

/**
 * Glorot/Xavier normal: N(0, σ²) with σ = gain·√(2 / (fanIn + fanOut)).
 *
 * @example
 * ```ts
 * import { xavierNormal } from "./init.ts";
 * xavierNormal([64, 32], { seed: 0 }).shape; // [64, 32]
 * ```
 */
export function xavierNormal(shape: readonly number[], options: InitOptions & { gain?: number } = {}): Tensor {
  const gain = options.gain ?? 1;
  const { fanIn, fanOut } = computeFans(shape);
  return normal(shape, { ...options, mean: 0, std: gain * Math.sqrt(2 / (fanIn + fanOut)) });
}

/**
 * Options of the Kaiming (He) initialisers.
 *
 * @example
 * ```ts
 * import { kaimingNormal, type KaimingOptions } from "./init.ts";
 * const options: KaimingOptions = { nonlinearity: "leaky_relu", a: 0.1, mode: "fanOut", seed: 2 };
 * kaimingNormal([64, 32], options);
 * ```
 */
export interface KaimingOptions extends InitOptions {
  /** Negative slope of a leaky ReLU (used when `nonlinearity` is leaky_relu). Default 0. */
  a?: number;
  /** Preserve the variance of activations ("fanIn", default) or of gradients ("fanOut"). */
  mode?: "fanIn" | "fanOut";
  /** The nonlinearity that follows (sets the gain). Default "leaky_relu" (with a = 0: relu's √2). */
  nonlinearity?: GainNonlinearity;
}

function kaimingStd(op: string, shape: readonly number[], options: KaimingOptions): number {
  const gain = calculateGain(options.nonlinearity ?? "leaky_relu", options.a ?? 0);
  return gain / Math.sqrt(fanOf(op, shape, options.mode ?? "fanIn"));
}

/**
 * Kaiming/He uniform: U(−b, b) with b = gain·√(3 / fan).
 *
 * @example
 * ```ts
 * import { kaimingUniform } from "./init.ts";
 * kaimingUniform([128, 64], { nonlinearity: "relu", seed: 0 }).shape; // [128, 64]
 * ```
 */
export function kaimingUniform(shape: readonly number[], options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd("kaimingUniform", shape, options);
  return uniform(shape, { ...options, low: -bound, high: bound });
}

/**
 * Kaiming/He normal: N(0, σ²) with σ = gain / √fan.
 *
 * @example
 * ```ts
 * import { kaimingNormal } from "./init.ts";
 * kaimingNormal([128, 64], { nonlinearity: "relu", mode: "fanOut", seed: 0 }).shape; // [128, 64]
 * ```
 */
export function kaimingNormal(shape: readonly number[], options: KaimingOptions = {}): Tensor {
  return normal(shape, { ...options, mean: 0, std: kaimingStd("kaimingNormal", shape, options) });
}

/**
 * JAX's `variance_scaling`: variance `scale / fan` with a normal or uniform distribution
 * (`lecunNormal` is scale 1, fanIn, normal; Glorot is scale 1, fanAvg).
 *
 * @example
 * ```ts
 * import { varianceScaling } from "./init.ts";
 * varianceScaling([32, 16], { scale: 2, mode: "fanIn", distribution: "uniform", seed: 3 }).shape; // [32, 16]
 * ```
 */
export function varianceScaling(
  shape: readonly number[],
  options: InitOptions & { scale?: number; mode?: FanMode; distribution?: "normal" | "uniform" } = {},
): Tensor {
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new ArgumentError("varianceScaling", `scale must be positive, got ${scale}`);
  const std = Math.sqrt(scale / fanOf("varianceScaling", shape, options.mode ?? "fanIn"));
  const distribution = options.distribution ?? "normal";
  if (distribution === "normal") return normal(shape, { ...options, mean: 0, std });
  if (distribution === "uniform") {
    return uniform(shape, { ...options, low: -Math.sqrt(3) * std, high: Math.sqrt(3) * std });
  }
  throw new ArgumentError("varianceScaling", `distribution must be "normal" or "uniform", got ${distribution}`);
}

/**
 * LeCun normal: N(0, 1/fanIn) (the Flax default for dense kernels).
 *
 * @example
 * ```ts
 * import { lecunNormal } from "./init.ts";
 * lecunNormal([32, 16], { seed: 0 }).shape; // [32, 16]
 * ```
 */
export function lecunNormal(shape: readonly number[], options: InitOptions = {}): Tensor {
  return varianceScaling(shape, { ...options, scale: 1, mode: "fanIn", distribution: "normal" });
}

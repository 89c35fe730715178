/**
 * Normalisation over the trailing axes: {@link LayerNorm} and {@link RMSNorm}, as modules and as
 * functions ({@link layerNorm}, {@link rmsNorm}). Statistics use the population variance
 * (correction 0), as PyTorch does.
 *
 * @module
 */

import { ArgumentError, fmtShape, ShapeError, type Tensor } from "../tensor/mod.ts";
import { ones, zeros } from "./init.ts";
import type { LayerOptions } from "./linear.ts";
import { Module } from "./module.ts";

function normShape(op: string, shape: number | readonly number[]): number[] {
  const s = typeof shape === "number" ? [shape] : [...shape];
  if (s.length === 0 || s.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new ArgumentError(op, `normalizedShape must be positive integers, got [${s}]`);
  }
  return s;
}

function checkInput(op: string, x: Tensor, shape: readonly number[]): number[] {
  const tail = x.shape.slice(x.ndim - shape.length);
  if (x.ndim < shape.length || tail.some((d, i) => d !== shape[i])) {
    throw new ShapeError(op, `expected input [..., ${shape.join(", ")}], got ${fmtShape(x.shape)}`);
  }
  return shape.map((_, i) => x.ndim - shape.length + i);
}

/**
 * `(x − mean) / √(var + eps) · weight + bias` over the trailing `normalizedShape` axes of `x`
 * (population variance). `weight` and `bias` are optional and shaped like `normalizedShape`.
 *
 * @example
 * ```ts
 * import { layerNorm } from "./norm.ts";
 * import { tensor } from "../tensor/mod.ts";
 * layerNorm(tensor([[1, 2, 3]]), [3]).toArray(); // [[-1.2247, 0, 1.2247]]
 * ```
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const shape = normShape("layerNorm", normalizedShape);
  const axes = checkInput("layerNorm", x, shape);
  const mu = x.mean(axes, true);
  const centred = x.sub(mu);
  const variance = centred.square().mean(axes, true);
  let y = centred.mul(variance.add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}

/**
 * `x / √(mean(x²) + eps) · weight (+ bias)` over the trailing `normalizedShape` axes of `x`.
 *
 * @example
 * ```ts
 * import { rmsNorm } from "./norm.ts";
 * import { tensor } from "../tensor/mod.ts";
 * rmsNorm(tensor([[3, 4]]), [2], null, null, 0).toArray(); // [[0.8485, 1.1314]]
 * ```
 */
export function rmsNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-6,
): Tensor {
  const shape = normShape("rmsNorm", normalizedShape);
  const axes = checkInput("rmsNorm", x, shape);
  let y = x.mul(x.square().mean(axes, true).add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}

/**
 * Options of {@link LayerNorm} and {@link RMSNorm}.
 *
 * @example
 * ```ts
 * import { LayerNorm, type NormOptions } from "./norm.ts";
 * const options: NormOptions = { eps: 1e-6, bias: false, dtype: "float64" };
 * new LayerNorm(32, options);
 * ```
 */
export interface NormOptions extends Omit<LayerOptions, "seed" | "generator"> {
  /** Added to the variance (mean square) before the square root. LayerNorm 1e-5, RMSNorm 1e-6. */
  eps?: number;
  /** Learn a scale (`weight`, initialised to ones). Default true. */
  elementwiseAffine?: boolean;
  /** Learn a shift (`bias`, initialised to zeros). Default true for LayerNorm, false for RMSNorm. */
  bias?: boolean;
}

/** What LayerNorm and RMSNorm share: the normalised shape, eps and the optional affine parameters. */
export abstract class NormBase extends Module {
  /** The trailing shape normalised over. */
  readonly normalizedShape: readonly number[];
  /** The epsilon. */
  readonly eps: number;
  /** Learnable scale (null without `elementwiseAffine`). */
  readonly weight: Tensor | null;
  /** Learnable shift (null without it). */
  readonly bias: Tensor | null;

  /** Sets up the shared state; `op` names the subclass in errors, `eps`/`bias` are its defaults. */
  constructor(
    op: string,
    normalizedShape: number | readonly number[],
    options: NormOptions,
    eps: number,
    bias: boolean,
  ) {
    super();
    this.normalizedShape = normShape(op, normalizedShape);
    this.eps = options.eps ?? eps;
    if (!(this.eps >= 0)) throw new ArgumentError(op, `eps must be non-negative, got ${this.eps}`);
    const affine = options.elementwiseAffine ?? true;
    const o = { dtype: options.dtype ?? "float32", backend: options.backend };
    this.weight = affine ? this.param("weight", ones(this.normalizedShape, o)) : null;
    this.bias = affine && (options.bias ?? bias) ? this.param("bias", zeros(this.normalizedShape, o)) : null;
  }

  /** A one-line summary: class, normalised shape and eps. */
  override describe(): string {
    return `${this.constructor.name}([${this.normalizedShape}], eps=${this.eps})`;
  }
}

/**
 * Layer normalisation over the trailing `normalizedShape` axes, with a learnable scale and shift.
 *
 * @example
 * ```ts
 * import { LayerNorm } from "./norm.ts";
 * import { randn } from "../tensor/mod.ts";
 * const ln = new LayerNorm(16);
 * ln.forward(randn([4, 16])).shape; // [4, 16]
 * ```
 */
export class LayerNorm extends NormBase {
  /** Normalises over the trailing axes `normalizedShape` (a number means one axis). */
  constructor(normalizedShape: number | readonly number[], options: NormOptions = {}) {
    super("LayerNorm", normalizedShape, options, 1e-5, true);
  }

  /** Normalises `x` (shape `[..., ...normalizedShape]`). */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/**
 * Root-mean-square normalisation over the trailing `normalizedShape` axes, with a learnable scale
 * (and an optional shift, off by default).
 *
 * @example
 * ```ts
 * import { RMSNorm } from "./norm.ts";
 * import { randn } from "../tensor/mod.ts";
 * new RMSNorm(16).forward(randn([4, 16])).shape; // [4, 16]
 * ```
 */
export class RMSNorm extends NormBase {
  /** Normalises over the trailing axes `normalizedShape` (a number means one axis). */
  constructor(normalizedShape: number | readonly number[], options: NormOptions = {}) {
    super("RMSNorm", normalizedShape, options, 1e-6, false);
  }

  /** Normalises `x` (shape `[..., ...normalizedShape]`). */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

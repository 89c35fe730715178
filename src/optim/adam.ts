/**
 * Adam (with coupled L2 weight decay, as `torch.optim.Adam`) and AdamW (decoupled weight decay,
 * as `torch.optim.AdamW`), with bias correction.
 *
 * @module
 */

import { ArgumentError, checkNumber, checkOneOf, describe, type Tensor, zerosLike } from "../tensor/mod.ts";
import { type BaseOptions, Optimizer, type ParamGroup, type Params, type ParamState } from "./optimizer.ts";

/**
 * Options of {@link Adam} and {@link AdamW}.
 *
 * @example
 * ```ts
 * import { Adam, type AdamOptions } from "./adam.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const options: Partial<AdamOptions> = { lr: 3e-4, betas: [0.9, 0.95], weightDecay: 0.1, decoupledWeightDecay: true };
 * new Adam([zeros([4]).requireGrad()], options);
 * ```
 */
export interface AdamOptions extends BaseOptions {
  /** Decay rates (β₁, β₂) of the first and second moments. Default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Added to the denominator. Default 1e-8. */
  eps: number;
  /** Weight decay λ. Default 0 for Adam, 0.01 for AdamW. */
  weightDecay: number;
  /**
   * Decoupled weight decay (AdamW: θ ← θ(1 − lr·λ) before the update) instead of adding λθ to the
   * gradient (Adam). Default false for Adam, true for AdamW.
   */
  decoupledWeightDecay: boolean;
  /**
   * Update each parameter with the backend's fused Adam primitive when it has one (one pass over
   * parameter, gradient and moments instead of about twenty elementwise ops; the same arithmetic,
   * see `OptimPrimitives.adam`). Default true; false always uses the composite update.
   */
  fused: boolean;
}

type AdamArgs = Partial<AdamOptions>;

/**
 * Adam. Per step t (counted per parameter), with g the gradient:
 *
 * ```text
 * g ← g + λθ                  (weightDecay, coupled)   |  θ ← θ(1 − lr·λ)   (decoupled, AdamW)
 * m ← β₁m + (1 − β₁)g
 * v ← β₂v + (1 − β₂)g²
 * θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 * ```
 *
 * @example
 * ```ts
 * import { Adam } from "./adam.ts";
 * import { MLP } from "../nn/linear.ts";
 * import { warmupCosine } from "./schedule.ts";
 * const net = new MLP([2, 64, 1]);
 * const opt = new Adam(net, { lr: warmupCosine({ peakLr: 1e-3, warmupSteps: 100, totalSteps: 5000 }) });
 * ```
 */
export class Adam extends Optimizer<AdamOptions> {
  /** The options an `Adam` takes when not given (AdamW: weight decay 0.01, decoupled). */
  static readonly defaults: Readonly<AdamOptions> = Object.freeze({
    lr: 1e-3,
    betas: [0.9, 0.999] as const,
    eps: 1e-8,
    weightDecay: 0,
    decoupledWeightDecay: false,
    fused: true,
  });

  /** Slots: `exp_avg` (m) and `exp_avg_sq` (v). */
  protected readonly slots = ["exp_avg", "exp_avg_sq"] as const;

  /** Adam over `params` (a module, tensors, named tensors or groups), with `Adam.defaults`. */
  constructor(params: Params | ParamGroup<AdamOptions>[], options: AdamArgs = {}) {
    super(params, (new.target as typeof Adam).defaults, options);
  }

  /** Checks betas ∈ [0, 1)², eps > 0, weight decay ≥ 0 and the flags. */
  protected validate(o: AdamOptions): void {
    const name = this.constructor.name;
    if (!Array.isArray(o.betas) || o.betas.length !== 2) {
      throw new ArgumentError(name, `betas must be a pair [β₁, β₂] in [0, 1), got ${describe(o.betas)}`);
    }
    o.betas.forEach((b, i) => checkNumber(name, `betas[${i}]`, b, { min: 0, max: 1, maxOpen: true }));
    checkNumber(name, "eps", o.eps, { min: 0, minOpen: true });
    checkNumber(name, "weightDecay", o.weightDecay, { min: 0 });
    checkOneOf(name, "decoupledWeightDecay", o.decoupledWeightDecay, [true, false]);
    checkOneOf(name, "fused", o.fused, [true, false]);
  }

  /** The whole update through `backend.optim.adam` when the backend has it and the tensors fit. */
  protected override fusedUpdate(
    p: ParamState,
    param: Tensor,
    grad: Tensor,
    lowPrecision: Tensor | null,
    lr: number,
    o: AdamOptions,
  ): boolean {
    const fused = param.backend.optim;
    if (!o.fused || !fused) return false;
    const dtype = param.dtype;
    const gradOk = grad.dtype === dtype || (dtype === "float32" && grad.dtype === "bfloat16");
    if ((dtype !== "float32" && dtype !== "float64") || !gradOk) return false;
    if (lowPrecision && lowPrecision.dtype !== "bfloat16") return false;
    const m = this.slot(p, "exp_avg", () => zerosLike(param));
    const v = this.slot(p, "exp_avg_sq", () => zerosLike(param));
    const fits = (t: Tensor) => t.isContiguous && t.backend === param.backend;
    if (![param, grad, m, v].every(fits) || m.dtype !== dtype || v.dtype !== dtype) return false;
    if (lowPrecision && !fits(lowPrecision)) return false;
    fused.adam(param, grad, m, v, lowPrecision, {
      lr,
      beta1: o.betas[0],
      beta2: o.betas[1],
      eps: o.eps,
      weightDecay: o.weightDecay,
      decoupled: o.decoupledWeightDecay,
      step: p.steps,
    });
    return true;
  }

  /** One Adam(W) update. */
  protected update(p: ParamState, param: Tensor, grad: Tensor, lr: number, o: AdamOptions): Tensor {
    const [b1, b2] = o.betas;
    const t = p.steps;
    let base = param;
    let g = grad;
    if (o.weightDecay !== 0) {
      if (o.decoupledWeightDecay) base = param.mul(1 - lr * o.weightDecay);
      else g = g.add(param.mul(o.weightDecay));
    }
    const m = this.slot(p, "exp_avg", () => zerosLike(param));
    const v = this.slot(p, "exp_avg_sq", () => zerosLike(param));
    m.assign(m.mul(b1).add(g.mul(1 - b1)));
    v.assign(v.mul(b2).add(g.mul(g).mul(1 - b2)));
    const bc1 = 1 - b1 ** t;
    const bc2 = 1 - b2 ** t;
    const denom = v.sqrt().div(Math.sqrt(bc2)).add(o.eps);
    return base.sub(m.div(denom).mul(lr / bc1));
  }
}

/**
 * AdamW: Adam with decoupled weight decay (default λ = 0.01), as `torch.optim.AdamW`.
 *
 * @example
 * ```ts
 * import { AdamW } from "./adam.ts";
 * import { MLP } from "../nn/linear.ts";
 * const net = new MLP([2, 64, 1]);
 * const opt = new AdamW(net, { lr: 3e-4, weightDecay: 0.1 });
 * ```
 */
export class AdamW extends Adam {
  /** The options an `AdamW` takes when not given: Adam's, with weight decay 0.01, decoupled. */
  static override readonly defaults: Readonly<AdamOptions> = Object.freeze({
    ...Adam.defaults,
    weightDecay: 0.01,
    decoupledWeightDecay: true,
  });
}

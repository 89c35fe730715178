/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
 * following PyTorch's `torch.optim.SGD` exactly.
 *
 * @module
 */

import { ArgumentError, checkNumber, checkOneOf, type Tensor } from "../tensor/mod.ts";
import { type BaseOptions, Optimizer, type ParamGroup, type Params, type ParamState } from "./optimizer.ts";

/**
 * Options of {@link SGD}.
 *
 * @example
 * ```ts
 * import { SGD, type SGDOptions } from "./sgd.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const options: Partial<SGDOptions> & { lr: number } = { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 };
 * new SGD([zeros([3]).requireGrad()], options);
 * ```
 */
export interface SGDOptions extends BaseOptions {
  /** Momentum factor μ. Default 0. */
  momentum: number;
  /** Dampening τ of the momentum. Default 0. */
  dampening: number;
  /** L2 penalty λ added to the gradient (λ·θ). Default 0. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). Default false. */
  nesterov: boolean;
}

/**
 * SGD. Per step, with g the gradient:
 *
 * ```text
 * g ← g + λθ                                   (weightDecay)
 * b ← g (first step), else μb + (1 − τ)g       (momentum)
 * g ← g + μb (nesterov), else b
 * θ ← θ − lr·g
 * ```
 *
 * @example
 * ```ts
 * import { SGD } from "./sgd.ts";
 * import { MLP } from "../nn/linear.ts";
 * const net = new MLP([2, 16, 1]);
 * const opt = new SGD(net, { lr: 0.01, momentum: 0.9, nesterov: true });
 * ```
 */
export class SGD extends Optimizer<SGDOptions> {
  /** Slot: `momentum_buffer` (when momentum > 0). */
  protected readonly slots = ["momentum_buffer"] as const;

  /** SGD over `params` (a module, tensors, named tensors or groups). */
  constructor(
    params: Params | ParamGroup<SGDOptions>[],
    options: Partial<SGDOptions> & { lr: SGDOptions["lr"] },
  ) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false }, options);
  }

  /** Checks momentum ∈ [0, 1), dampening ∈ [0, 1], weight decay ≥ 0 and the Nesterov flag. */
  protected validate(o: SGDOptions): void {
    checkNumber("SGD", "momentum", o.momentum, { min: 0, max: 1, maxOpen: true });
    checkNumber("SGD", "dampening", o.dampening, { min: 0, max: 1 });
    checkNumber("SGD", "weightDecay", o.weightDecay, { min: 0 });
    checkOneOf("SGD", "nesterov", o.nesterov, [true, false]);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new ArgumentError("SGD", "Nesterov momentum needs momentum > 0 and dampening 0");
    }
  }

  /** One SGD update. */
  protected update(p: ParamState, param: Tensor, grad: Tensor, lr: number, o: SGDOptions): Tensor {
    let g = o.weightDecay !== 0 ? grad.add(param.mul(o.weightDecay)) : grad;
    if (o.momentum !== 0) {
      let buf = p.state.get("momentum_buffer");
      if (!buf) {
        buf = this.slot(p, "momentum_buffer", () => g.clone());
      } else {
        buf.assign(buf.mul(o.momentum).add(o.dampening === 0 ? g : g.mul(1 - o.dampening)));
      }
      g = o.nesterov ? g.add(buf.mul(o.momentum)) : buf;
    }
    return param.sub(g.mul(lr));
  }
}

// The tiny float64 regression of the data-parallel tests: a tanh MLP, a fixed batch of 8, the
// mean squared error, and Adam steps. The rank script trains it on its share of the batch; the
// test trains it on the whole batch in one process.

import { MLP } from "../../src/nn/mod.ts";
import { Adam } from "../../src/optim/mod.ts";
import { randn, type Tensor } from "../../src/tensor/mod.ts";

/** The batch: inputs [8, 3] and targets [8, 2]. */
export function tinyBatch(): { x: Tensor; y: Tensor } {
  return { x: randn([8, 3], { dtype: "float64", seed: 11 }), y: randn([8, 2], { dtype: "float64", seed: 12 }) };
}

/** The model; ranks other than 0 start from other seeds (data parallelism must broadcast rank 0's). */
export function tinyModel(seed: number): MLP {
  return new MLP([3, 16, 16, 2], { activation: "tanh", seed, dtype: "float64" });
}

/**
 * Trains `net` for `steps` Adam steps on rows [a, b) of the batch; `reduce` runs between backward
 * and the update. Returns the first step's gradients and the loss of each step.
 */
export function tinyTraining(
  net: MLP,
  [a, b]: [number, number],
  steps: number,
  reduce: () => void = () => {},
): { grads: number[][]; losses: number[] } {
  const { x, y } = tinyBatch();
  const opt = new Adam(net, { lr: 1e-2 });
  let grads: number[][] = [];
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const loss = net.forward(x.narrow(0, a, b - a)).sub(y.narrow(0, a, b - a)).square().mean();
    loss.backward();
    reduce();
    if (s === 0) grads = net.parameters().map((p) => Array.from(p.grad!.toTypedArray()));
    losses.push(loss.item());
    opt.step();
  }
  return { grads, losses };
}

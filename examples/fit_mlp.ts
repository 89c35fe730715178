/**
 * Fits f(x) = sin(2πx)·e^(−x) on [0, 1] with a small MLP, Adam and a warm-up + cosine schedule,
 * then reports the relative L2 error on a held-out grid. Runs on the CPU in a few seconds.
 *
 *   deno task demo
 *
 * @module
 */

import { linspace, nn, noGrad, optim, rand, type Tensor, tidy, useBackend } from "../mod.ts";

useBackend("cpu");
const f = (x: Tensor) => x.mul(2 * Math.PI).sin().mul(x.neg().exp());

const steps = 3000;
const net = new nn.MLP([1, 32, 32, 1], { activation: "tanh", seed: 0 });
const schedule = optim.warmupCosine({ peakLr: 1e-2, warmupSteps: 100, totalSteps: steps, minLr: 1e-4 });
const opt = new optim.Adam(net, { lr: schedule });
const xTest = linspace(0, 1, 1001).reshape([-1, 1]);
const yTest = f(xTest);
console.log(`${net.numParameters()} parameters; ${steps} steps of Adam on batches of 256 points`);

let t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => {
    const x = rand([256, 1], { seed: step }); // a fresh uniform sample each step
    const loss = net.forward(x).sub(f(x)).square().mean();
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });
  if (step % 250 === 0) {
    const rate = 250 / ((performance.now() - t0) / 1000);
    console.log(
      `step ${String(step).padStart(4)}  loss ${loss.toExponential(3)}  lr ${schedule(step - 1).toExponential(2)}  ` +
        `${rate.toFixed(0)} steps/s`,
    );
    t0 = performance.now();
  }
}

const rel = noGrad(() =>
  tidy(() => net.forward(xTest).sub(yTest).square().sum().div(yTest.square().sum()).sqrt().item())
);
console.log(`test relative L2 error: ${rel.toExponential(3)}`);

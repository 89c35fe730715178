/**
 * Optimisers (SGD, Adam, AdamW), learning-rate schedules and gradient clipping.
 *
 * @example
 * ```ts
 * import { nn, optim, randn, tidy } from "../../mod.ts";
 * const net = new nn.MLP([1, 32, 1], { activation: "tanh", seed: 0 });
 * const opt = new optim.Adam(net, {
 *   lr: optim.warmupCosine({ peakLr: 1e-2, warmupSteps: 50, totalSteps: 1000, minLr: 1e-4 }),
 * });
 * const x = randn([64, 1], { seed: 1 });
 * for (let i = 0; i < 10; i++) {
 *   tidy(() => {
 *     net.forward(x).sub(x.sin()).square().mean().backward();
 *     optim.clipGradNorm(net, 1.0);
 *     opt.step();
 *     opt.zeroGrad();
 *   });
 * }
 * ```
 *
 * @module
 */

export * from "./optimizer.ts";
export * from "./sgd.ts";
export * from "./adam.ts";
export * from "./schedule.ts";
export * from "./clip.ts";

/**
 * The training machinery every script shares, below the PDE and language-model layers: the loop
 * with its hooks ({@link trainLoop}: steps, evaluation, checkpoints, time budget, NaN stop,
 * resume), checkpoints that resume exactly (model, optimiser, step, data position, random
 * state; atomic writes), typed command-line flags, the progress line, metrics writers (JSON lines
 * and TensorBoard event files) and the seeded host random stream.
 *
 * @example
 * ```ts
 * import { optim, nn, randn, train } from "../../mod.ts";
 * const flags = train.parseFlags({
 *   steps: { type: "integer", default: 200, min: 0, help: "optimiser steps" },
 *   resume: { type: "boolean", help: "continue from the newest checkpoint" },
 * }, Deno.args);
 * const net = new nn.MLP([1, 32, 1], { activation: "tanh", seed: 0 });
 * const x = randn([128, 1], { seed: 1 });
 * await train.trainLoop({
 *   model: net,
 *   optimizer: new optim.Adam(net, { lr: 1e-2 }),
 *   steps: flags.steps,
 *   step: () => {
 *     const loss = net.forward(x).sub(x.sin()).square().mean();
 *     loss.backward();
 *     return { loss: loss.item(), items: 128 };
 *   },
 *   unit: { key: "pointsPerSecond", label: "pts" },
 *   checkpointDir: "out/fit/checkpoints",
 *   resume: flags.resume,
 *   writers: [new train.TensorBoardWriter("out/fit/tensorboard")],
 * });
 * ```
 *
 * @module
 */

export * from "./loop.ts";
export * from "./checkpoint.ts";
export * from "./flags.ts";
export * from "./progress.ts";
export * from "./metrics.ts";
export * from "./tensorboard.ts";
export * from "./tfrecord.ts";
export * from "./random.ts";
export * from "./files.ts";

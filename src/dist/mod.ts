/**
 * Distributed work: process groups with NCCL on CUDA tensors and a TCP ring on the CPU, the
 * rendezvous that forms them, the launcher that starts one process per GPU, data-parallel
 * training with bucketed gradient all-reduce, and typed errors for dead or hung ranks.
 *
 * @example
 * ```ts
 * import { DataParallel, initProcessGroup } from "./mod.ts";
 * import { MLP } from "../nn/mod.ts";
 * // deno task launch --nproc 2 train.ts
 * const group = await initProcessGroup();
 * const net = new MLP([4, 16, 1], { seed: 0 });
 * const dp = new DataParallel(net, group); // parameters broadcast from rank 0
 * // each step: loss.backward() on this rank's shard, then dp.reduceGradients(), then the optimiser
 * await group.destroy();
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./env.ts";
export * from "./group.ts";
export * from "./init.ts";
export * from "./data_parallel.ts";
export * from "./shard.ts";
export { freePort, launch, type LaunchOptions, scriptCommand } from "./launch.ts";

/**
 * The local-backprop engine shared by the PDE experts and the sequence chunks: pieces that each
 * build their own graph and run their own backward pass, passing only what the rest of the
 * computation needs — gradients of shared tensors for independent pieces, gradients of states
 * for pieces in order.
 *
 * @example
 * ```ts
 * import { independentBackward, sequentialBackward } from "./mod.ts";
 * ```
 *
 * @module
 */

export * from "./independent.ts";
export * from "./sequential.ts";

/**
 * The local-backprop engine shared by the PDE experts and the sequence chunks: pieces that each
 * build their own graph and run their own backward pass, passing only what the rest of the
 * computation needs — gradients of shared tensors for independent pieces, gradients of states
 * (trees of tensors) for pieces in order — optionally for a drawn subset of the pieces only
 * (SpaCO), reweighted so that the gradient stays unbiased.
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
export type { BernoulliSampling, FixedSampling, PieceSampling, SamplingBase } from "./sampling.ts";
export { type TensorTree, treeLeaves, treeMap } from "./tree.ts";

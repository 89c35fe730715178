/**
 * Experts sharded over the ranks of a group (PI-HC-MoE's experts, as the reference code shards
 * the expert axis over devices): {@link shardExperts} gives each rank an equal, contiguous block
 * of the K experts and gathers every expert's coefficients from the ranks' blocks. Every rank runs
 * the network on the same batch; each solves and back-propagates only its experts; the loss is the
 * whole loss on every rank, and summing the ranks' gradients (`DataParallel.reduceGradients({ op:
 * "sum" })`) gives the unsharded gradient.
 *
 * @module
 */

import { ArgumentError, noGrad, type Tensor } from "../tensor/mod.ts";
import type { ProcessGroup } from "./group.ts";
import { shareOf } from "./ring.ts";

/**
 * A rank's experts and the gather of everyone's coefficients (the shape `pde.ExpertShard` takes).
 *
 * @example
 * ```ts
 * import type { ExpertBlock } from "./shard.ts";
 * const block: ExpertBlock = { experts: [0, 1], gather: (w) => w };
 * ```
 */
export interface ExpertBlock {
  /** This rank's experts, increasing. */
  readonly experts: readonly number[];
  /** `[K·B, N]` expert-major from this rank's `[experts.length·B, N]`. */
  gather(w: Tensor): Tensor;
}

/**
 * Rank r's block of `count` experts (`count` must be a multiple of the group's size) and the
 * all-gather that assembles every expert's coefficients.
 *
 * @example
 * ```ts
 * import { initProcessGroup, shardExperts } from "./mod.ts";
 * const group = await initProcessGroup();
 * const shard = shardExperts(group, 4); // on 2 ranks: experts [0, 1] on rank 0, [2, 3] on rank 1
 * // moe.lossAndBackward(phi, u0, points, loss, { shard });
 * await group.destroy();
 * ```
 */
export function shardExperts(group: ProcessGroup, count: number): ExpertBlock {
  if (!Number.isInteger(count) || count < 1 || count % group.size !== 0) {
    throw new ArgumentError(
      "shardExperts",
      `${count} experts do not split equally over ${group.size} ranks; use a multiple of ${group.size} experts`,
    );
  }
  const [a, b] = shareOf(count, group.rank, group.size);
  const experts = Array.from({ length: b - a }, (_, i) => a + i);
  return {
    experts,
    gather: (w) => {
      if (group.size === 1) return w;
      // [W, (K/W)·B, N]: ranks in order, each block expert-major, so the whole is expert-major.
      const all = group.allGather(w);
      const out = noGrad(() => all.reshape([all.shape[0] * all.shape[1], ...all.shape.slice(2)]));
      all.dispose();
      return out;
    },
  };
}

/**
 * Adjoint sharding across processes (Xu et al. 2025): the K layers of an {@link SSMForCausalLM}
 * split over the Υ ranks of a process group, rank r owning layers [rK/Υ, (r+1)K/Υ) and computing
 * their vector–Jacobian products with no communication once ∂l/∂y_K has been broadcast.
 *
 * One step ({@link shardedSSMBackward}):
 *
 * 1. Every rank runs the whole forward pass ({@link ssmTrace}) on the same tokens. The forward is
 *    one scan per layer, O(K·T) against the O(K·T²/Υ) VJPs a rank computes, and running it
 *    everywhere costs no communication; receiving the layer inputs instead would need the stream
 *    y_{k−1} `[B, T, P]` of every owned layer sent from the rank below, a chain of point-to-point
 *    transfers through every rank before any VJP could start.
 * 2. The last rank, which owns the final norm and Ω, computes the loss and ∂l/∂y_K (adding the
 *    head's gradients); the loss goes to every rank by one all-reduce of a number (a non-finite
 *    loss stops every rank with a {@link NonFiniteError} before any gradient is added there), then
 *    ∂l/∂y_K by one broadcast.
 * 3. Each rank computes its layers' VJPs ({@link ssmLayerBackward}) with no further collective:
 *    - `adjoint` (the paper's form): every layer's cotangent is ∂l/∂y_K, each layer's input held
 *      constant; rank 0, owning the embedding, gives it the residual path ∂l/∂y_K.
 *    - `adjoint-exact`: layer k's cotangent is the true ∂l/∂y_k. A rank first carries ∂l/∂y_K
 *      down through the layers above its block by back-propagation through their scans (only the
 *      input cotangent, O(T) per layer, no parameter gradient), then through its own layers by
 *      their VJPs; rank 0 ends at the embedding. The gradient equals full back-propagation.
 *
 * The parameter gradients of each layer live on its owner, the embedding's on rank 0, the head's
 * on the last rank; {@link gatherSSMGradients} copies every owner's to every rank (one broadcast
 * per rank), for an optimiser step that is the same everywhere. `truncated` is not sharded: its
 * cotangent below a layer comes from that layer's windowed VJPs, so a rank would have to compute
 * every layer above its own.
 *
 * The model must hold the same parameters on every rank (build it from one seed, or broadcast rank
 * 0's with `dist.DataParallel`).
 *
 * @module
 */

import {
  ArgumentError,
  checkInteger,
  checkOptions,
  concat,
  gradients,
  noGrad,
  NonFiniteError,
  type Tensor,
  tidy,
  zeros,
  zerosLike,
} from "../tensor/mod.ts";
import type { ProcessGroup } from "../dist/group.ts";
import {
  ssmBackward,
  type SSMBackwardOptions,
  type SSMBackwardResult,
  ssmHead,
  ssmLayerBackward,
  ssmTrace,
  type VJPCount,
} from "./adjoint_sharding.ts";
import type { TokenInput } from "./llama.ts";
import type { SSMForCausalLM } from "./ssm.ts";

/**
 * What a rank owns in {@link shardedSSMBackward}.
 *
 * @example
 * ```ts
 * import { ssmLayerShard } from "./sharded_adjoint.ts";
 * const s = ssmLayerShard(4, 1, 2); // rank 1 of 2, four layers
 * s.layers; // [2, 4]
 * ```
 */
export interface SSMLayerShard {
  /** The owned layers [first, end) (0-based, end exclusive). */
  readonly layers: readonly [number, number];
  /** Owns the token embedding (rank 0). */
  readonly embedding: boolean;
  /** Owns the final norm and Ω (the last rank). */
  readonly head: boolean;
}

/**
 * Rank `rank`'s share of `numLayers` layers over `size` ranks: K/Υ consecutive layers. K not a
 * multiple of Υ (which includes more ranks than layers) is an {@link ArgumentError} saying which
 * counts would do.
 *
 * @example
 * ```ts
 * import { ssmLayerShard } from "./sharded_adjoint.ts";
 * ssmLayerShard(6, 0, 3); // { layers: [0, 2], embedding: true, head: false }
 * ```
 */
export function ssmLayerShard(numLayers: number, rank: number, size: number): SSMLayerShard {
  const op = "shardedSSMBackward";
  if (size > numLayers) {
    throw new ArgumentError(
      op,
      `${size} ranks for ${numLayers} layers: every rank must own at least one layer; use at most ${numLayers} ranks`,
    );
  }
  if (numLayers % size !== 0) {
    throw new ArgumentError(
      op,
      `${numLayers} layers do not split equally over ${size} ranks (K/Υ consecutive layers each); ` +
        `use a number of ranks that divides ${numLayers}`,
    );
  }
  const per = numLayers / size;
  return { layers: [rank * per, (rank + 1) * per], embedding: rank === 0, head: rank === size - 1 };
}

/**
 * What {@link shardedSSMBackward} did on this rank.
 *
 * @example
 * ```ts
 * import type { ShardedSSMBackwardResult } from "./sharded_adjoint.ts";
 * const r: ShardedSSMBackwardResult = {
 *   lossSum: 710.2,
 *   tokens: 256,
 *   vjps: [],
 *   shard: { layers: [0, 2], embedding: true, head: false },
 * };
 * ```
 */
export interface ShardedSSMBackwardResult extends SSMBackwardResult {
  /** Per layer, the VJPs this rank computed (zeros for the layers it does not own). */
  vjps: VJPCount[];
  /** What this rank owns. */
  shard: SSMLayerShard;
}

/**
 * Adjoint sharding over the ranks of `group` (see the module comment): accumulates into the
 * `.grad` of the parameters this rank owns the gradient of `scale` × Σ token cross-entropy of
 * `sequences` (the same on every rank) by `method` `adjoint` or `adjoint-exact`; the options are
 * {@link ssmBackward}'s. On one rank it is `ssmBackward`. Every rank must call it at the same point.
 *
 * @example
 * ```ts
 * import { gatherSSMGradients, shardedSSMBackward } from "./sharded_adjoint.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * import { initProcessGroup } from "../dist/mod.ts";
 * // deno task launch --nproc 2 step.ts
 * const group = await initProcessGroup();
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny, { seed: 0 }); // the same on every rank
 * const seq = [Array.from({ length: 33 }, (_, i) => (i * 7) % 256)];
 * const r = shardedSSMBackward(group, model, seq, { method: "adjoint-exact" });
 * r.shard.layers; // rank 0: [0, 1], rank 1: [1, 2]
 * gatherSSMGradients(group, model); // every parameter's gradient on every rank
 * await group.destroy();
 * ```
 */
export function shardedSSMBackward(
  group: ProcessGroup,
  model: SSMForCausalLM,
  sequences: TokenInput,
  options: SSMBackwardOptions = {},
): ShardedSSMBackwardResult {
  const op = "shardedSSMBackward";
  checkOptions(op, options, ["method", "window", "piecesPerLaunch", "blockSize", "scale", "sliceSize"]);
  const method = options.method ?? "adjoint";
  if (method !== "adjoint" && method !== "adjoint-exact") {
    throw new ArgumentError(
      op,
      `method "${method}" is not sharded over ranks; use "adjoint" (the paper's form, with a window if wanted) or ` +
        `"adjoint-exact"`,
    );
  }
  const numLayers = model.layers.length;
  const shard = ssmLayerShard(numLayers, group.rank, group.size);
  if (group.size === 1) return { ...ssmBackward(model, sequences, { ...options, method }), shard };
  // The single-process checks, without its work: a zero-length window runs nothing.
  const all = model.tokens(sequences);
  const [batch, width] = all.shape;
  if (width < 2) throw new ArgumentError(op, `sequences need at least 2 tokens (inputs and their next), got ${width}`);
  const length = width - 1;
  if (options.window !== undefined && method !== "adjoint") {
    throw new ArgumentError(op, `window applies to method "adjoint", not "${method}"`);
  }
  const window = options.window === undefined ? length : checkInteger(op, "window", options.window, { min: 1 });
  const block = checkInteger(op, "blockSize", options.blockSize ?? 256, { min: 1 });
  const rows = checkInteger(op, "piecesPerLaunch", options.piecesPerLaunch ?? 4096, { min: 1 });
  const pass = { window, piecesPerLaunch: rows, blockSize: block, exact: method === "adjoint-exact" };
  const scale = options.scale ?? 1 / (batch * length);
  const lossOptions = { reduction: "sum" as const, sliceSize: options.sliceSize };
  const check = (value: number) => {
    if (!Number.isFinite(value)) throw new NonFiniteError(op, `the loss is ${value}; no gradient was added`);
    return value;
  };
  const vjps: VJPCount[] = Array.from({ length: numLayers }, () => ({ a: 0, b: 0, c: 0, launches: 0 }));
  try {
    return tidy(() => {
      const tokens = all.narrow(1, 0, length), targets = all.narrow(1, 1, length);
      const stored = ssmTrace(model, tokens, block);
      let top: Tensor | null = null;
      let lossSum = 0;
      if (shard.head) {
        try {
          ({ lossSum, delta: top } = ssmHead(model, stored.residual, targets, block, scale, lossOptions, check));
        } catch (e) {
          if (!(e instanceof NonFiniteError)) throw e;
          lossSum = NaN;
        }
      }
      lossSum = check(group.allReduceNumbers([shard.head ? lossSum : 0], "sum")[0]);
      top ??= zerosLike(stored.residual);
      group.broadcast(top, group.size - 1);
      // From here on, no collective: this rank's layers from ∂l/∂y_K alone.
      const [first, end] = shard.layers;
      let delta = pass.exact ? carryDown(model, stored, top, end) : top;
      for (let k = end - 1; k >= first; k--) {
        const next = ssmLayerBackward(model.layers.at(k), stored.inputs[k], stored.states[k], delta, pass);
        vjps[k] = next.vjps;
        if (next.delta !== delta) delta.dispose();
        delta = next.delta;
      }
      if (shard.embedding) model.embed_tokens.forward(tokens).backward(delta);
      return { lossSum, tokens: batch * length, vjps, shard };
    });
  } finally {
    all.dispose();
  }
}

/**
 * ∂l/∂y_end from ∂l/∂y_K: back-propagation through layers K … end + 1 for their input cotangent
 * only (each layer's scan re-run with recording; no parameter gradient is added).
 */
function carryDown(model: SSMForCausalLM, stored: { inputs: Tensor[] }, top: Tensor, end: number): Tensor {
  let delta = top;
  for (let k = model.layers.length - 1; k >= end; k--) {
    const next: Tensor = tidy(() => {
      const y = stored.inputs[k].detach().requireGrad();
      const [dy] = gradients([model.layers.at(k).forward(y).output], [delta], [y]) as Tensor[];
      return dy;
    });
    if (delta !== top) delta.dispose();
    delta = next;
  }
  return delta;
}

/**
 * Copies each parameter's gradient from the rank that owns it (see {@link ssmLayerShard}) to every
 * rank: after it every trainable parameter has on every rank the gradient {@link ssmBackward}
 * would have given (a parameter without a gradient on its owner gets zeros). One broadcast per
 * rank, of its owned gradients packed into one buffer per dtype run. Every rank must call it.
 *
 * @example
 * ```ts
 * import { gatherSSMGradients, shardedSSMBackward } from "./sharded_adjoint.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * import { initProcessGroup } from "../dist/mod.ts";
 * const group = await initProcessGroup();
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny, { seed: 0 });
 * shardedSSMBackward(group, model, [[1, 2, 3, 4, 5]]);
 * gatherSSMGradients(group, model);
 * model.layers.at(0).mixer.a_proj.weight.grad; // on every rank
 * await group.destroy();
 * ```
 */
export function gatherSSMGradients(group: ProcessGroup, model: SSMForCausalLM): void {
  if (group.size === 1) return;
  const numLayers = model.layers.length;
  for (let r = 0; r < group.size; r++) {
    const shard = ssmLayerShard(numLayers, r, group.size);
    const owned = [
      ...(shard.embedding ? model.embed_tokens.parameters() : []),
      ...[...model.layers].slice(...shard.layers).flatMap((l) => l.parameters()),
      ...(shard.head ? [...model.norm.parameters(), ...model.lm_head.parameters()] : []),
    ].filter((p) => p.requiresGrad && p.size > 0);
    if (owned.length === 0) continue;
    broadcastGradients(group, owned, r);
  }
}

/** Overwrites the `.grad` of `params` on every rank with root's, one flat buffer per dtype. */
function broadcastGradients(group: ProcessGroup, params: Tensor[], root: number): void {
  const dtypes = [...new Set(params.map((p) => p.dtype))];
  for (const dtype of dtypes) {
    const mine = params.filter((p) => p.dtype === dtype);
    // The root packs its gradients (zeros where it has none); the others only need the room.
    const flat = noGrad(() =>
      group.rank === root
        ? concat(mine.map((p) => (p.grad ?? zerosLike(p)).reshape([p.size])))
        : zeros([mine.reduce((n, p) => n + p.size, 0)], { dtype, backend: mine[0].backend })
    );
    group.broadcast(flat, root);
    let offset = 0;
    for (const p of mine) {
      p.grad = noGrad(() => flat.narrow(0, offset, p.size).reshape(p.shape));
      offset += p.size;
    }
  }
}

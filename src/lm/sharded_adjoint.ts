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
 *    - `truncated` (window T̄): the same, carrying down what the layers above give their inputs
 *      through their VJPs with window T̄. Those VJPs at one step i share the input x[i], so their
 *      input cotangent is one VJP with the summed cotangent Σ_{d<T̄} (C[i+d]ᵀδ[i+d]) ⊙ a[i+d] ⋯
 *      a[i+1]: T̄ elementwise passes and one pass through the layer, not its T̄·T VJPs.
 *
 * The parameter gradients of each layer live on its owner, the embedding's on rank 0, the head's
 * on the last rank; {@link gatherSSMGradients} copies every owner's to every rank (one broadcast
 * per rank), for an optimiser step that is the same everywhere. The gradients are those of
 * {@link ssmBackward} with the same method, whatever the number of ranks.
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
  fullLike,
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
  type SSMTrace,
  ssmTrace,
  type VJPCount,
} from "./adjoint_sharding.ts";
import type { TokenInput } from "./llama.ts";
import type { SSMForCausalLM, SSMLayer } from "./ssm.ts";

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
 * `sequences` (the same on every rank) by `method` `adjoint` (the default), `adjoint-exact` or
 * `truncated`; the options are {@link ssmBackward}'s. On one rank it is `ssmBackward`. Every rank must call it at the same point.
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
  if (method === "backprop") {
    throw new ArgumentError(
      op,
      `method "backprop" is one graph through every layer; shard "adjoint", "adjoint-exact" or "truncated"`,
    );
  }
  const numLayers = model.layers.length;
  const shard = ssmLayerShard(numLayers, group.rank, group.size);
  if (group.size === 1) return { ...ssmBackward(model, sequences, { ...options, method }), shard };
  // ssmBackward's checks, before any collective: every rank refuses alike.
  const all = model.tokens(sequences);
  const [batch, width] = all.shape;
  if (width < 2) throw new ArgumentError(op, `sequences need at least 2 tokens (inputs and their next), got ${width}`);
  const length = width - 1;
  if (method === "truncated" && options.window === undefined) {
    throw new ArgumentError(op, `method "truncated" needs a window (the VJPs kept per step, T̄)`);
  }
  if (options.window !== undefined && method === "adjoint-exact") {
    throw new ArgumentError(op, `window applies to methods "truncated" and "adjoint", not "${method}"`);
  }
  const window = options.window === undefined ? length : checkInteger(op, "window", options.window, { min: 1 });
  const block = checkInteger(op, "blockSize", options.blockSize ?? 256, { min: 1 });
  const rows = checkInteger(op, "piecesPerLaunch", options.piecesPerLaunch ?? 4096, { min: 1 });
  const pass = { window, piecesPerLaunch: rows, blockSize: block, exact: method !== "adjoint" };
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
      const through = method === "truncated" ? windowedCotangent(window) : scanCotangent;
      let delta = pass.exact ? carryDown(model, stored, top, end, through) : top;
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

/** The cotangent of a layer's input stream y_{k−1} from that of its output, δ, given its input and states. */
type Through = (layer: SSMLayer, input: Tensor, states: Tensor, delta: Tensor) => Tensor;

/**
 * ∂l/∂y_end from ∂l/∂y_K: `through` each of layers K … end + 1 in turn, for their input cotangent
 * only (no parameter gradient is added).
 */
function carryDown(model: SSMForCausalLM, stored: SSMTrace, top: Tensor, end: number, through: Through): Tensor {
  let delta = top;
  for (let k = model.layers.length - 1; k >= end; k--) {
    const next: Tensor = tidy(() => through(model.layers.at(k), stored.inputs[k], stored.states[k], delta));
    if (delta !== top) delta.dispose();
    delta = next;
  }
  return delta;
}

/** The exact form's: back-propagation through the layer (its scan re-run with recording). */
const scanCotangent: Through = (layer, input, _states, delta) => {
  const y = input.detach().requireGrad();
  return (gradients([layer.forward(y).output], [delta], [y]) as Tensor[])[0];
};

/**
 * The truncated form's: what its VJPs with window T̄ add into the layer's input, in one pass.
 * Every VJP through 𝒜 and ℬ at step i has the same input x[i], so their sum is one VJP with the
 * summed cotangent M[i] = Σ_{d<T̄} (C[i+d]ᵀδ[i+d]) ⊙ a[i+d] ⋯ a[i+1] (T̄ elementwise passes, the
 * running product of {@link ssmLayerBackward}'s diagonals); 𝒞's are one VJP with δ.
 */
function windowedCotangent(window: number): Through {
  return (layer, input, states, delta) => {
    const mixer = layer.mixer;
    const [batch, length, n] = states.shape;
    const y = input.detach().requireGrad();
    const x = layer.norm.forward(y);
    // The states' cotangent C[t]ᵀδ[t], then its running products down the diagonals d < T̄, summed.
    const hc = states.detach().requireGrad();
    const v = (gradients([mixer.readout(x.detach(), hc)], [delta], [hc]) as Tensor[])[0];
    const { sum, before } = noGrad(() => {
      const a = mixer.decay(x);
      let m = v, sum = v;
      for (let d = 1; d < Math.min(window, length); d++) {
        const [stepped, added] = tidy(() => {
          const stepped = m.narrow(1, 1, length - d).mul(a.narrow(1, 1, length - d));
          return [stepped, concat([sum.narrow(1, 0, length - d).add(stepped), sum.narrow(1, length - d, d)], 1)];
        });
        if (m !== v) m.dispose();
        if (sum !== v) sum.dispose();
        m = stepped;
        sum = added;
      }
      const first = zeros([batch, 1, n], { dtype: states.dtype, backend: states.backend });
      return { sum, before: length === 1 ? first : concat([first, states.narrow(1, 0, length - 1)], 1) };
    });
    const state = mixer.decay(x).mul(before).add(mixer.drive(x)).mul(sum).sum();
    const out = mixer.readout(x, states).mul(delta).sum();
    const [dy] = gradients([state.add(out)], [fullLike(out, 1)], [y]) as Tensor[];
    return delta.add(dy);
  };
}

/**
 * Copies each parameter's gradient from the rank that owns it (see {@link ssmLayerShard}) to every
 * rank: after it every trainable parameter has on every rank the gradient {@link ssmBackward}
 * would have given (a parameter without a gradient on its owner gets zeros). One broadcast per
 * rank, of its owned gradients packed into one buffer per dtype. Every rank must call it.
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

/**
 * Dependent pieces run in order — the chunks of a long sequence. Piece i reads the states that
 * earlier pieces handed on (a transformer chunk reads every earlier chunk's key/value cache; a
 * recurrent model reads only the last state), and returns its loss and its own state. A state is
 * a tree of tensors ({@link TensorTree}): one tensor, or arrays and plain objects of them, such as
 * a `[K, V]` pair per layer.
 *
 * {@link sequentialBackward} computes the gradient of Σᵢ Jᵢ while only one piece's activations are
 * alive (SeCO, Li et al. 2025):
 *
 * 1. forward every piece without recording, keeping only the states m′ᵢ;
 * 2. for i = k … 1: rebuild piece i's graph on detached copies of m′₁…m′ᵢ₋₁, back-propagate
 *    Jᵢ + ⟨mᵢ, Gᵢ⟩ (Gᵢ: the gradient of the later losses with respect to mᵢ, accumulated so far,
 *    one buffer per leaf of the state), which adds into the parameters' `.grad` and into
 *    G₁…Gᵢ₋₁; free the graph.
 *
 * The result equals one backward pass through the whole sequence. With `sampling` (SpaCO) only a
 * drawn subset of pieces is back-propagated, with the factors of {@link PieceSampling}: exactly
 * unbiased for Bernoulli draws, and for fixed-size draws with the default compensation when no
 * gradient path visits more free pieces than are drawn.
 *
 * A piece that will be rebuilt need not compute its loss in step 1 (only its state is needed
 * then): it may return `loss: null` there, and its loss is taken from its rebuilt graph. The check
 * that every loss is finite then happens in step 2, after later pieces added their gradients; with
 * `parameters` named, those gradients are set aside during step 2 and restored as they were when a
 * loss turns out non-finite, so that no gradient is ever added from a sequence with a non-finite
 * loss.
 *
 * @module
 */

import { ArgumentError, fullLike, gradients, noGrad, NonFiniteError, type Tensor, tidy } from "../tensor/mod.ts";
import { drawPieces, type PieceFactors, type PieceSampling } from "./sampling.ts";
import { assertSameTree, type TensorTree, treeLeaves, treeMap } from "./tree.ts";

/**
 * Which pass calls a piece: the first, without recording (`"forward"`; `rebuilt`: whether the
 * piece will be rebuilt for a backward pass — then it may return `loss: null`), or its rebuild for
 * the backward pass (`"rebuild"`, `rebuilt` true).
 *
 * @example
 * ```ts
 * import type { PieceCall } from "./sequential.ts";
 * const call: PieceCall = { phase: "forward", rebuilt: true };
 * ```
 */
export interface PieceCall {
  /** The first pass or the rebuild. */
  phase: "forward" | "rebuild";
  /** Whether the piece is (or will be) rebuilt for a backward pass. */
  rebuilt: boolean;
}

/**
 * One piece of a sequence: its loss and the state it hands on, from the states before it. In the
 * forward pass of a piece that will be rebuilt, the loss may be `null` (taken from the rebuild).
 */
export type SequentialPiece<S extends TensorTree = TensorTree> = (
  previous: readonly S[],
  index: number,
  call: PieceCall,
) => { loss: Tensor | null; state: S };

/** Options of {@link sequentialBackward}. */
export interface SequentialOptions {
  /** Back-propagate a drawn subset (SpaCO); default: every piece (SeCO). */
  sampling?: PieceSampling;
  /**
   * The tensors whose `.grad` the backward passes add into (the trained parameters). Needed when a
   * piece leaves its loss to its rebuild: their gradients are set aside during the backward pass
   * and restored unchanged if it fails (a non-finite loss, an error), added to on success. Memory:
   * nothing when they have no gradient yet; when they do (accumulating over several calls), the
   * set-aside gradients and the new ones are both held until the end — one more gradient-sized
   * buffer per parameter.
   */
  parameters?: readonly Tensor[];
  /**
   * `"all"` (default): every piece gives its loss (in the forward pass, or from its rebuild).
   * `"rebuilt"`: a piece that is not rebuilt may return no loss either — only the drawn pieces'
   * losses are computed, and {@link SequentialResult.estimate} is their unbiased estimate of the
   * total (SpaCO without the cost of every piece's loss).
   */
  losses?: "all" | "rebuilt";
  /**
   * Called after each piece's forward pass (`loss`: NaN when the piece left it to its rebuild, or
   * gave none) and after its backward pass.
   */
  onPiece?: (report: { index: number; loss: number; phase: "forward" | "backward" }) => void;
}

/** What {@link sequentialBackward} did. */
export interface SequentialResult {
  /**
   * Each piece's loss, from the forward pass or, where the forward pass left it, the rebuild;
   * NaN for a piece that gave none (with `losses: "rebuilt"`).
   */
  losses: number[];
  /**
   * Σ of the losses; with `losses: "rebuilt"`, Σ over the rebuilt pieces of loss/π (π: the
   * piece's inclusion probability), an unbiased estimate of it.
   */
  estimate: number;
  /** The pieces that were back-propagated, in the order they ran. */
  backpropagated: number[];
}

/** Gradient buffers of one state's leaves, by path depth (null: no gradient yet). */
type Buffers = Map<number, (Tensor | null)[]>;

/** Takes the gradient out of a leaf, owned by the caller (outside every tidy scope). */
function takeGrad(leaf: Tensor): Tensor | null {
  const g = leaf.grad;
  if (!g) return null;
  leaf.grad = null;
  return g.keep();
}

/**
 * Hands the buffers of one state at `depth` to its leaves as their `.grad`, so that a backward pass
 * adds into them (in place, for ops that write leaves' gradients block by block).
 */
function lend(buffers: Buffers, depth: number, leaves: Tensor[]): void {
  const grads = buffers.get(depth);
  if (!grads) return;
  buffers.delete(depth);
  grads.forEach((g, l) => {
    if (!g) return;
    leaves[l].grad = g;
    g.dispose();
  });
}

/** Takes the leaves' gradients back into the buffers at `depth`. */
function reclaim(buffers: Buffers, depth: number, leaves: Tensor[]): void {
  const grads = leaves.map(takeGrad);
  if (grads.some((g) => g)) buffers.set(depth, grads);
}

function scalarLoss(op: string, loss: Tensor, index: number): number {
  if (loss.size !== 1) {
    throw new ArgumentError(op, `piece ${index} returned a loss of shape [${loss.shape}]; a loss is one number`);
  }
  const value = loss.item();
  if (!Number.isFinite(value)) throw new NonFiniteError(op, `piece ${index} has a non-finite loss (${value})`);
  return value;
}

/**
 * Rebuilds piece i on detached copies of the earlier states and back-propagates its loss and the
 * gradient buffers of its own state, one pass per depth present; the gradients of the earlier
 * states go into their buffers at the next depth.
 */
function backwardPiece<S extends TensorTree>(
  op: string,
  piece: SequentialPiece<S>,
  i: number,
  states: readonly S[],
  buffers: Buffers[],
  factors: PieceFactors,
  relayTo: ReadonlySet<number>,
): number {
  const own = buffers[i];
  const depths = [...new Set([0, ...own.keys()])].sort((a, b) => a - b);
  const value = tidy(() => {
    // Only the states of pieces still to be back-propagated need a gradient.
    const past = states.slice(0, i).map((s, j) => (relayTo.has(j) ? treeMap(s, (t) => t.detach().requireGrad()) : s));
    const { loss, state } = piece(past, i, { phase: "rebuild", rebuilt: true });
    if (loss === null) throw new ArgumentError(op, `piece ${i} returned no loss when rebuilt for its backward pass`);
    const value = scalarLoss(op, loss, i);
    assertSameTree(state, states[i], op, `the state of piece ${i}, rebuilt for its backward pass,`);
    const out = treeLeaves(state, op);
    const pastLeaves = past.map((p) => treeLeaves(p, op));
    depths.forEach((d, n) => {
      const outputs: Tensor[] = [], cotangents: Tensor[] = [];
      if (d === 0 && loss.requiresGrad) {
        outputs.push(loss);
        cotangents.push(fullLike(loss, factors.loss));
      }
      const f = factors.relay(d);
      own.get(d)?.forEach((g, l) => {
        if (!g || !out[l].requiresGrad) return;
        outputs.push(out[l]);
        cotangents.push(f === 1 ? g : g.mul(f));
      });
      if (!outputs.length) return;
      const into = factors.next(d);
      pastLeaves.forEach((leaves, j) => relayTo.has(j) && lend(buffers[j], into, leaves));
      gradients(outputs, cotangents, "leaves", { retainGraph: n < depths.length - 1 });
      pastLeaves.forEach((leaves, j) => relayTo.has(j) && reclaim(buffers[j], into, leaves));
    });
    return value;
  });
  for (const grads of own.values()) grads.forEach((g) => g?.dispose());
  own.clear();
  return value;
}

/**
 * Takes the parameters' gradients aside; `restore(true)` adds them back into what the backward
 * passes accumulated, `restore(false)` drops that and puts them back as they were.
 */
function setAside(parameters: readonly Tensor[]): (kept: boolean) => void {
  const aside = parameters.map(takeGrad);
  return (kept) => {
    parameters.forEach((p, j) => {
      const g = aside[j];
      if (!kept) p.zeroGrad();
      if (!g) return;
      if (p.grad) p.accumulateGrad(g);
      else p.grad = g;
      g.dispose();
    });
  };
}

/**
 * Runs `count` dependent pieces with SeCO (exact) or SpaCO (sampled) local back-propagation;
 * parameter gradients accumulate into `.grad`. Returns the losses. A non-finite loss stops
 * before any gradient is applied (for a loss left to the rebuild: with `parameters` named, whose
 * gradients are then restored); a state that is not a tree of tensors, or whose structure,
 * shapes or dtypes differ between a piece's forward pass and its rebuilt graph, raises a typed
 * error.
 *
 * During the backward pass memory holds the states, their gradient buffers (one set, or one per
 * path depth for a fixed-size draw with the unbiased compensation) and one piece's graph. The
 * buffers of the earlier states are lent to the rebuilt piece as its leaves' `.grad`, so its
 * backward adds into them — in place, block by block, for an op that writes its leaf inputs'
 * gradients itself (the chunked attention with `leafGrads: "accumulate"`).
 *
 * @example
 * ```ts
 * import { sequentialBackward } from "./sequential.ts";
 * import { randn, type Tensor } from "../tensor/mod.ts";
 * const w = randn([3, 3], { seed: 1 }).requireGrad();
 * const xs = [0, 1, 2].map((i) => randn([2, 3], { seed: 10 + i }));
 * // Each piece hands on a [K, V] pair and reads all earlier pairs.
 * sequentialBackward(3, (past: readonly [Tensor, Tensor][], i) => {
 *   const k = xs[i].matmul(w), v = k.tanh();
 *   const context = past.reduce((acc, [pk, pv]) => acc.add(pk.mul(pv)), k);
 *   return { loss: context.square().mean(), state: [k, v] as [Tensor, Tensor] };
 * });
 * w.grad; // the gradient of the three losses' sum
 * ```
 */
export function sequentialBackward<S extends TensorTree>(
  count: number,
  piece: SequentialPiece<S>,
  options: SequentialOptions = {},
): SequentialResult {
  const op = "sequentialBackward";
  if (!Number.isInteger(count) || count < 1) {
    throw new ArgumentError(op, `needs a positive number of pieces, got ${count}`);
  }
  const draw = drawPieces(op, count, options.sampling, true);
  const relayTo = new Set(draw.chosen);
  const every = (options.losses ?? "all") === "all";
  if (!every && options.losses !== "rebuilt") {
    throw new ArgumentError(op, `losses must be "all" or "rebuilt", got ${JSON.stringify(options.losses)}`);
  }
  const states: S[] = [];
  const losses: number[] = [];
  let deferred = false;
  try {
    for (let i = 0; i < count; i++) {
      const rebuilt = relayTo.has(i);
      const { loss, state } = tidy(() => noGrad(() => piece(states, i, { phase: "forward", rebuilt })));
      const leaves = treeLeaves(state, op, `the state of piece ${i}`);
      states.push(state);
      leaves.forEach((l) => l.keep());
      let value = NaN;
      if (loss !== null) {
        value = scalarLoss(op, loss, i);
        loss.dispose();
      } else if (!rebuilt && every) {
        throw new ArgumentError(
          op,
          `piece ${i} is not rebuilt for a backward pass, so its forward pass must give its loss (or pass losses: "rebuilt")`,
        );
      } else if (rebuilt) {
        if (!options.parameters) {
          throw new ArgumentError(
            op,
            `piece ${i} left its loss to its rebuild; name the trained tensors in options.parameters, so that a non-finite loss found in the backward pass can restore their gradients`,
          );
        }
        deferred = true;
      }
      losses.push(value);
      options.onPiece?.({ index: i, loss: value, phase: "forward" });
    }
  } catch (e) {
    states.forEach((s) => treeLeaves(s).forEach((l) => l.dispose()));
    throw e;
  }
  const buffers: Buffers[] = states.map(() => new Map());
  const order = [...draw.chosen].reverse();
  const restore = deferred ? setAside(options.parameters!) : null;
  let done = false;
  try {
    for (const i of order) {
      losses[i] = backwardPiece(op, piece, i, states, buffers, draw.factors(i), relayTo);
      options.onPiece?.({ index: i, loss: losses[i], phase: "backward" });
    }
    done = true;
  } finally {
    restore?.(done);
    for (const b of buffers) for (const grads of b.values()) grads.forEach((g) => g?.dispose());
    states.forEach((s) => treeLeaves(s).forEach((l) => l.dispose()));
  }
  const estimate = every
    ? losses.reduce((a, b) => a + b, 0)
    : draw.chosen.reduce((a, i) => a + losses[i] / draw.inclusion(i), 0);
  return { losses, estimate, backpropagated: order };
}

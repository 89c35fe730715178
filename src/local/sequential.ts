/**
 * Dependent pieces run in order — the chunks of a long sequence. Piece i reads the states that
 * earlier pieces produced (a transformer chunk reads every earlier chunk's key/value cache; a
 * recurrent model reads only the last state), and returns its loss and its own state.
 *
 * {@link sequentialBackward} computes the gradient of Σᵢ Jᵢ while only one piece's activations are
 * alive (SeCO, Li et al. 2025):
 *
 * 1. forward every piece without recording, keeping only the states m′ᵢ;
 * 2. for i = k … 1: rebuild piece i's graph on detached copies of m′₁…m′ᵢ₋₁, back-propagate
 *    Jᵢ + ⟨mᵢ, Gᵢ⟩ (Gᵢ: the gradient of the later losses with respect to mᵢ, accumulated so far),
 *    which adds into the parameters' `.grad` and into G₁…Gᵢ₋₁; free the graph.
 *
 * The result equals one backward pass through the whole sequence.
 *
 * With `sampling` (SpaCO), only a random subset of pieces is back-propagated and the result is
 * reweighted to stay an unbiased estimate of the full gradient:
 * - `"bernoulli"` (default): each piece is kept independently with probability q; the loss of a
 *   kept piece and each hand-off of a state gradient are scaled by 1/q. A gradient path through
 *   p+1 pieces survives with probability q^(p+1) and is scaled by (1/q)^(p+1): exactly unbiased.
 * - `"fixed"`: exactly t of the k pieces are kept (as in the SpaCO paper), with the factor k/t on
 *   losses and hand-offs; unbiased for the direct terms, approximately so for longer paths (the
 *   exact factor for a path through p+1 pieces is k(k−1)…(k−p) / (t(t−1)…(t−p))).
 * `maxCompensation` caps the hand-off factor (the paper caps it at 2), trading bias for variance.
 *
 * @module
 */

import { ArgumentError, Generator, noGrad, NonFiniteError, rand, type Tensor, tidy } from "../tensor/mod.ts";

/** One piece of a sequence: its loss and the state it hands on, from the states before it. */
export type SequentialPiece = (previous: readonly Tensor[], index: number) => { loss: Tensor; state: Tensor };

/** SpaCO sampling of the pieces that are back-propagated. */
export interface PieceSampling {
  /** "bernoulli": keep each with probability `fraction`; "fixed": keep round(fraction·k) pieces. */
  mode?: "bernoulli" | "fixed";
  /** Share of pieces back-propagated, in (0, 1]. */
  fraction: number;
  /** Seed of the selection. */
  seed?: number;
  /** Largest factor applied to a state-gradient hand-off (default: none). */
  maxCompensation?: number;
  /** Always back-propagate the last piece (default false). */
  keepLast?: boolean;
  /** Back-propagate exactly these pieces instead of drawing them (the factors still follow `mode`). */
  subset?: readonly number[];
}

/** Options of {@link sequentialBackward}. */
export interface SequentialOptions {
  /** Back-propagate a sampled subset (SpaCO); default: every piece (SeCO). */
  sampling?: PieceSampling;
  /** Called after each piece's backward pass. */
  onPiece?: (report: { index: number; loss: number; phase: "forward" | "backward" }) => void;
}

/** What {@link sequentialBackward} did. */
export interface SequentialResult {
  /** Each piece's loss, from the forward pass. */
  losses: number[];
  /** The pieces that were back-propagated, in the order they ran. */
  backpropagated: number[];
}

function selectPieces(k: number, sampling: PieceSampling | undefined): { chosen: Set<number>; scale: number } {
  if (!sampling) return { chosen: new Set(Array.from({ length: k }, (_, i) => i)), scale: 1 };
  const { fraction } = sampling;
  if (!(fraction > 0 && fraction <= 1)) {
    throw new ArgumentError("sequentialBackward", `sampling.fraction must be in (0, 1], got ${fraction}`);
  }
  const gen = new Generator(sampling.seed ?? 0);
  const u = noGrad(() => rand([k], { generator: gen, dtype: "float64" }).toTypedArray());
  const chosen = new Set<number>();
  let scale: number;
  if ((sampling.mode ?? "bernoulli") === "bernoulli") {
    u.forEach((v, i) => v < fraction && chosen.add(i));
    scale = 1 / fraction;
  } else {
    const t = Math.max(1, Math.round(fraction * k));
    [...u.keys()].sort((a, b) => u[a] - u[b]).slice(0, t).forEach((i) => chosen.add(i));
    scale = k / t;
  }
  if (sampling.subset) {
    chosen.clear();
    for (const i of sampling.subset) {
      if (!Number.isInteger(i) || i < 0 || i >= k) {
        throw new ArgumentError("sequentialBackward", `subset index ${i} is outside 0..${k - 1}`);
      }
      chosen.add(i);
    }
  }
  if (sampling.keepLast) chosen.add(k - 1);
  return { chosen, scale };
}

/**
 * Runs `count` dependent pieces with SeCO (exact) or SpaCO (sampled, unbiased) local
 * back-propagation; parameter gradients accumulate into `.grad`. Returns the forward losses.
 * A non-finite loss stops before any gradient is applied.
 *
 * @example
 * ```ts
 * import { sequentialBackward } from "./sequential.ts";
 * // sequentialBackward(chunks.length, (caches, i) => model.chunk(chunks[i], caches));
 * // opt.step();
 * ```
 */
export function sequentialBackward(
  count: number,
  piece: SequentialPiece,
  options: SequentialOptions = {},
): SequentialResult {
  if (!Number.isInteger(count) || count < 1) {
    throw new ArgumentError("sequentialBackward", `needs a positive number of pieces, got ${count}`);
  }
  const states: Tensor[] = [];
  const losses: number[] = [];
  for (let i = 0; i < count; i++) {
    const { loss, state } = tidy(() => noGrad(() => piece(states, i)));
    const value = loss.item();
    if (!Number.isFinite(value)) {
      throw new NonFiniteError("sequentialBackward", `piece ${i} has a non-finite loss (${value})`);
    }
    losses.push(value);
    loss.dispose();
    states.push(state.keep());
    options.onPiece?.({ index: i, loss: value, phase: "forward" });
  }
  const { chosen, scale } = selectPieces(count, options.sampling);
  const handOff = Math.min(scale, options.sampling?.maxCompensation ?? Infinity);
  const stateGrads: (Tensor | null)[] = new Array(count).fill(null);
  const order: number[] = [];
  for (let i = count - 1; i >= 0; i--) {
    if (!chosen.has(i)) continue;
    order.push(i);
    const incoming = tidy(() => {
      const leaves = states.slice(0, i).map((s) => s.detach().requireGrad());
      const { loss, state } = piece(leaves, i);
      let objective = scale === 1 ? loss : loss.mul(scale);
      const g = stateGrads[i];
      if (g) objective = objective.add(state.mul(handOff === 1 ? g : g.mul(handOff)).sum());
      objective.backward();
      return leaves.map((l) => l.grad);
    });
    stateGrads[i]?.dispose();
    stateGrads[i] = null;
    incoming.forEach((g, j) => {
      if (!g) return;
      const prev = stateGrads[j];
      stateGrads[j] = prev ? prev.add(g).keep() : g.keep();
      if (prev) {
        prev.dispose();
        g.dispose();
      }
    });
    options.onPiece?.({ index: i, loss: losses[i], phase: "backward" });
  }
  stateGrads.forEach((g) => g?.dispose());
  states.forEach((s) => s.dispose());
  return { losses, backpropagated: order };
}

/**
 * Which pieces a sparse backward pass visits, and with what factors (SpaCO, Li et al. 2025).
 *
 * A draw gives every piece an inclusion probability π (1 for a piece listed in `always`). For
 * independent pieces the estimate Σ over drawn pieces of ∇Jᵢ/πᵢ is exactly unbiased. For pieces in
 * order a gradient reaches the parameters along paths through several pieces (a loss, then the
 * states it read, the states those read, …), and a path survives only when every piece on it is
 * drawn:
 *
 * - Bernoulli draws are independent, so a path through pieces P survives with probability Πᵢ∈P πᵢ
 *   and the factor 1/πᵢ on each piece's loss and relayed state gradient is exactly unbiased,
 *   whatever the paths.
 * - A fixed-size draw (t of k, uniformly without replacement; f of them always kept) keeps a path
 *   through s of the k − f free pieces with probability (t−f)(t−f−1)…(t−f−s+1) / ((k−f)(k−f−1)…(k−f−s+1)),
 *   which is not a product of per-piece factors. The `"unbiased"` compensation therefore keeps the
 *   relayed gradients apart by depth (the number of free pieces already on their path) and
 *   multiplies the (d+1)-th free piece of a path by (k−f−d)/(t−f−d): the product along a path is
 *   exactly the inverse of its survival probability. A piece runs one backward pass per depth that
 *   reaches it (at most t), and a state keeps one gradient buffer per depth. The estimate is
 *   exactly unbiased when no gradient path has more than t − f free pieces (an L-layer
 *   transformer's paths visit at most L + 1 chunks: each hop to earlier keys and values goes down
 *   a layer); longer paths are never drawn whole, so no weighting of the drawn pieces can account
 *   for them, and the estimate is then unbiased for the gradient of the paths it can keep.
 * - The `"paper"` compensation is the paper's Algorithm 2: losses unscaled, every relayed state
 *   gradient scaled by min(k/t, cap), cap 2 by default. One pass per piece, and **biased**: its
 *   expectation weighs a path through s pieces by (t/k)·(k/t)^(s−1)·(t−1)…(t−s+1)/((k−1)…(k−s+1)),
 *   about t/k of the gradient overall.
 *
 * @module
 */

import { ArgumentError, type Generator, noGrad, rand } from "../tensor/mod.ts";

/** Options common to every {@link PieceSampling}. */
export interface SamplingBase {
  /** Draw from this generator, advancing it (a training loop's own stream, saved with its checkpoints). */
  generator?: Generator;
  /** Draw from a fresh generator with this seed. Default: the global stream, which `manualSeed` sets. */
  seed?: number;
  /** Pieces back-propagated on every draw (inclusion probability 1, factor 1); `[count - 1]` keeps the last. */
  always?: readonly number[];
  /**
   * Back-propagate exactly these pieces instead of drawing them, with the factors of this sampling
   * (to enumerate the outcomes of a draw). They must be a possible outcome: every piece of
   * `always`, and for a fixed-size draw exactly `count` pieces.
   */
  subset?: readonly number[];
}

/** Each piece kept independently with probability π (one for all, or one per piece); exactly unbiased. */
export interface BernoulliSampling extends SamplingBase {
  /** Independent draws. */
  mode: "bernoulli";
  /** Inclusion probability in (0, 1]: one for every piece, or one per piece. */
  probability: number | readonly number[];
}

/** Exactly `count` pieces kept, drawn uniformly without replacement (those of `always` among them). */
export interface FixedSampling extends SamplingBase {
  /** A fixed number of pieces. */
  mode: "fixed";
  /** How many pieces are back-propagated (t), `always` included. */
  count: number;
  /**
   * `"unbiased"` (default): exact factors, the relayed gradients kept apart by path depth; exactly
   * unbiased when every gradient path has at most `count` − `always.length` free pieces.
   * `"paper"`: Algorithm 2 of the paper — losses unscaled, relayed state gradients scaled by
   * min(k/t, cap). It trades bias for variance: measured by enumerating every draw on float64
   * attention-like toys (3–5 chunks, 1–2 layers, t from the longest path to k − 1), the
   * expectation misses the gradient by 20–61% (relative L2 error), mostly the global factor t/k;
   * 0.9–7.4% remain after the best global rescaling (what an Adam-type optimiser sees).
   */
  compensation?: "unbiased" | "paper";
  /**
   * With `"paper"`: the largest relay factor (default 2, as in the paper's experiments). A cap
   * below k/t lowers the variance of long paths and adds bias.
   */
  cap?: number;
}

/** SpaCO sampling of the pieces that are back-propagated. */
export type PieceSampling = BernoulliSampling | FixedSampling;

/**
 * The factors of one drawn piece, for the gradient arriving at depth d: its loss is scaled by
 * `loss` (it enters at depth 0), a state gradient at depth d by `relay(d)`, and the gradients it
 * hands to earlier states go on at depth `next(d)`.
 */
export interface PieceFactors {
  loss: number;
  relay(depth: number): number;
  next(depth: number): number;
}

/**
 * An outcome of a draw: the pieces to back-propagate (ascending), the factors of each and each
 * piece's inclusion probability π (1 for a piece always kept, or without sampling).
 */
export interface Draw {
  chosen: number[];
  factors(index: number): PieceFactors;
  inclusion(index: number): number;
}

const ONE: PieceFactors = { loss: 1, relay: () => 1, next: (d) => d };

function constant(f: number): PieceFactors {
  return { loss: f, relay: () => f, next: () => 0 };
}

function indices(op: string, what: string, list: readonly number[], count: number): Set<number> {
  const out = new Set<number>();
  for (const i of list) {
    if (!Number.isInteger(i) || i < 0 || i >= count) {
      throw new ArgumentError(op, `${what} lists ${i}, which is not a piece index in 0..${count - 1}`);
    }
    out.add(i);
  }
  return out;
}

function probabilities(op: string, s: BernoulliSampling, count: number, always: Set<number>): number[] {
  const p = typeof s.probability === "number" ? new Array(count).fill(s.probability) : [...s.probability];
  if (p.length !== count) {
    throw new ArgumentError(op, `sampling.probability has ${p.length} entries for ${count} pieces`);
  }
  p.forEach((v, i) => {
    if (!(typeof v === "number" && v > 0 && v <= 1)) {
      throw new ArgumentError(op, `sampling.probability of piece ${i} must be in (0, 1], got ${v}`);
    }
  });
  return p.map((v, i) => (always.has(i) ? 1 : v));
}

/**
 * Draws the pieces to back-propagate under `sampling` (every piece, with factor 1, when it is
 * undefined) and gives their factors. `relayed` says whether state gradients pass between the
 * pieces (sequential pieces); without them only `"unbiased"` factors make sense.
 */
export function drawPieces(op: string, count: number, sampling: PieceSampling | undefined, relayed: boolean): Draw {
  const all = Array.from({ length: count }, (_, i) => i);
  if (!sampling) return { chosen: all, factors: () => ONE, inclusion: () => 1 };
  const always = indices(op, "sampling.always", sampling.always ?? [], count);
  const free = all.filter((i) => !always.has(i));
  const { generator, seed } = sampling;
  const u = noGrad(() => rand([count], { generator, seed, dtype: "float64" }).toTypedArray());
  let drawn: number[];
  let factors: (i: number) => PieceFactors;
  let inclusion: (i: number) => number;
  if (sampling.mode === "bernoulli") {
    const p = probabilities(op, sampling, count, always);
    drawn = all.filter((i) => u[i] < p[i]);
    factors = (i) => (p[i] === 1 ? ONE : constant(1 / p[i]));
    inclusion = (i) => p[i];
  } else if (sampling.mode === "fixed") {
    const t = sampling.count;
    if (!Number.isInteger(t) || t < Math.max(1, always.size) || t > count) {
      throw new ArgumentError(
        op,
        `sampling.count must be an integer in ${Math.max(1, always.size)}..${count} ` +
          `(${count} pieces, ${always.size} always kept), got ${t}`,
      );
    }
    const compensation = sampling.compensation ?? "unbiased";
    if (compensation !== "unbiased" && compensation !== "paper") {
      throw new ArgumentError(op, `sampling.compensation must be "unbiased" or "paper", got ${compensation}`);
    }
    if (compensation === "paper" && !relayed) {
      throw new ArgumentError(op, `compensation "paper" scales relayed state gradients, which ${op} has none of`);
    }
    const cap = sampling.cap ?? 2;
    if (sampling.cap !== undefined && compensation !== "paper") {
      throw new ArgumentError(op, `sampling.cap applies to compensation "paper" only (it would bias "unbiased")`);
    }
    if (!(cap >= 1)) throw new ArgumentError(op, `sampling.cap must be at least 1, got ${cap}`);
    const k = free.length, s = t - always.size;
    drawn = [...always, ...[...free].sort((a, b) => u[a] - u[b]).slice(0, s)];
    inclusion = (i) => (always.has(i) ? 1 : s / k);
    if (compensation === "paper") {
      const c = Math.min(count / t, cap);
      const paper: PieceFactors = { loss: 1, relay: () => c, next: () => 0 };
      factors = () => paper;
    } else {
      // The d-th free piece of a path (d free pieces after it) is drawn, given those d are, with
      // probability (s−d)/(k−d).
      const unbiased: PieceFactors = { loss: k / s, relay: (d) => (k - d) / (s - d), next: (d) => d + 1 };
      factors = (i) => (always.has(i) ? ONE : unbiased);
    }
  } else {
    throw new ArgumentError(
      op,
      `sampling.mode must be "bernoulli" or "fixed", got ${(sampling as { mode: unknown }).mode}`,
    );
  }
  if (sampling.subset) {
    const subset = indices(op, "sampling.subset", sampling.subset, count);
    const missing = [...always].filter((i) => !subset.has(i));
    if (missing.length) throw new ArgumentError(op, `sampling.subset must contain the always-kept pieces ${missing}`);
    if (sampling.mode === "fixed" && subset.size !== sampling.count) {
      throw new ArgumentError(op, `sampling.subset has ${subset.size} pieces but count is ${sampling.count}`);
    }
    drawn = [...subset];
  }
  return { chosen: drawn.sort((a, b) => a - b), factors, inclusion };
}

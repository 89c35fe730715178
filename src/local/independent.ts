/**
 * Independent pieces that share an upstream computation (the experts of a mixture, each reading
 * its part of one network output): each piece builds its own small graph on a detached copy of
 * the shared tensors, runs its own backward pass and frees its graph before the next piece
 * starts; the gradients it hands back are summed and then back-propagated once through the
 * shared computation. Peak memory is the shared graph plus one piece's graph, whatever the
 * number of pieces, and the parameter gradients equal those of one backward pass through
 * everything.
 *
 * With `sampling` only a drawn subset of the pieces runs, each drawn piece's loss scaled by 1/π
 * (π: its inclusion probability), so the gradient is an exactly unbiased estimate of the full one
 * for Bernoulli and fixed-size draws alike.
 *
 * @module
 */

import { ArgumentError, fullLike, gradients, NonFiniteError, type Tensor, tidy } from "../tensor/mod.ts";
import { drawPieces, type PieceSampling } from "./sampling.ts";

/** One independent piece: a scalar loss of (detached copies of) the shared tensors. */
export type IndependentPiece = (shared: Tensor[], index: number) => Tensor;

/** What one piece reported. */
export interface PieceReport {
  /** The piece's index. */
  index: number;
  /** Its loss value. */
  loss: number;
}

/** Options of {@link independentBackward}. */
export interface IndependentOptions {
  /** Called after each piece's backward pass (progress, memory probes). */
  onPiece?: (report: PieceReport) => void;
  /** Run a drawn subset of the pieces, each scaled by 1/π (unbiased); default: every piece. */
  sampling?: PieceSampling;
  /** Called once the pieces are done, before the summed gradient goes through the shared graph. */
  onPiecesDone?: () => void;
}

/** What {@link independentBackward} did. */
export interface IndependentResult {
  /** Each piece's loss; NaN for a piece that the sampling did not draw (it did not run). */
  losses: number[];
  /** The pieces that ran, in order. */
  backpropagated: number[];
  /** Σ over the pieces that ran of loss/π: the total loss when every piece runs, else an unbiased estimate of it. */
  estimate: number;
}

/**
 * Runs `pieces` one at a time on the shared tensors `shared` (outputs of a graph that requires
 * grad), each with its own forward and backward pass, then back-propagates the summed gradient
 * through the shared graph into the leaves' `.grad`. Returns each piece's loss (their sum is the
 * total loss), the pieces that ran and the loss estimate. With `sampling` only the drawn pieces run,
 * each scaled by 1/π. A non-finite loss stops before the shared graph is back-propagated.
 *
 * @example
 * ```ts
 * import { independentBackward } from "./independent.ts";
 * import { randn, type Tensor } from "../tensor/mod.ts";
 * const w = randn([3, 4], { seed: 1 }).requireGrad();
 * const phi = randn([5, 3], { seed: 2 }).matmul(w); // shared upstream
 * const experts = [0, 1].map((k) => ([p]: Tensor[]) => p.narrow(1, 2 * k, 2).square().mean());
 * // One of the two experts per step, its gradient doubled: unbiased.
 * const { estimate } = independentBackward([phi], experts, { sampling: { mode: "fixed", count: 1, seed: 7 } });
 * ```
 */
export function independentBackward(
  shared: Tensor[],
  pieces: readonly IndependentPiece[],
  options: IndependentOptions = {},
): IndependentResult {
  if (shared.length === 0) throw new ArgumentError("independentBackward", "needs at least one shared tensor");
  const draw = drawPieces("independentBackward", pieces.length, options.sampling, false);
  let total: Tensor[] | null = null;
  const losses: number[] = pieces.map(() => NaN);
  let estimate = 0;
  for (const index of draw.chosen) {
    const piece = pieces[index];
    const weight = draw.factors(index).loss;
    const grads: Tensor[] = tidy(() => {
      const leaves = shared.map((s) => s.detach().requireGrad());
      const loss = piece(leaves, index);
      if (loss.size !== 1) {
        throw new ArgumentError("independentBackward", `piece ${index} returned a loss of shape [${loss.shape}]`);
      }
      const value = loss.item();
      if (!Number.isFinite(value)) {
        throw new NonFiniteError("independentBackward", `piece ${index} has a non-finite loss (${value})`);
      }
      losses[index] = value;
      estimate += weight * value;
      loss.backward(weight === 1 ? undefined : fullLike(loss, weight));
      return leaves.map((l, i) => l.grad ?? shared[i].mul(0));
    });
    if (total === null) total = grads.map((g) => g.keep());
    else {
      const next: Tensor[] = total.map((t, i) => t.add(grads[i]).keep());
      total.forEach((t) => t.dispose());
      grads.forEach((g) => g.dispose());
      total = next;
    }
    options.onPiece?.({ index, loss: losses[index] });
  }
  options.onPiecesDone?.();
  if (total !== null) {
    const sum: Tensor[] = total;
    const live = shared.filter((s) => s.requiresGrad);
    if (live.length) {
      gradients(live, sum.filter((_, i) => shared[i].requiresGrad), "leaves");
    }
    sum.forEach((t) => t.dispose());
  }
  return { losses, backpropagated: draw.chosen, estimate };
}

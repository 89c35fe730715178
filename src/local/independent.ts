/**
 * Independent pieces that share an upstream computation (the experts of a mixture, each reading
 * its part of one network output): each piece builds its own small graph on a detached copy of
 * the shared tensors, runs its own backward pass and frees its graph before the next piece
 * starts; the gradients it hands back are summed and then back-propagated once through the
 * shared computation. Peak memory is the shared graph plus one piece's graph, whatever the
 * number of pieces, and the parameter gradients equal those of one backward pass through
 * everything.
 *
 * @module
 */

import { ArgumentError, gradients, NonFiniteError, type Tensor, tidy } from "../tensor/mod.ts";

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
}

/**
 * Runs `pieces` one at a time on the shared tensors `shared` (outputs of a graph that requires
 * grad), each with its own forward and backward pass, then back-propagates the summed gradient
 * through the shared graph into the leaves' `.grad`. Returns each piece's loss (the total loss is
 * their sum). A non-finite loss stops before any gradient is applied.
 *
 * @example
 * ```ts
 * import { independentBackward } from "./independent.ts";
 * // const phi = net.forward(x);                                  // shared upstream
 * // independentBackward([phi], experts.map((e) => ([p]) => e.loss(p)));
 * // opt.step();
 * ```
 */
export function independentBackward(
  shared: Tensor[],
  pieces: readonly IndependentPiece[],
  options: IndependentOptions = {},
): number[] {
  if (shared.length === 0) throw new ArgumentError("independentBackward", "needs at least one shared tensor");
  let total: Tensor[] | null = null;
  const losses: number[] = [];
  pieces.forEach((piece, index) => {
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
      losses.push(value);
      loss.backward();
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
  });
  if (total !== null) {
    const sum: Tensor[] = total;
    const live = shared.filter((s) => s.requiresGrad);
    if (live.length) {
      gradients(live, sum.filter((_, i) => shared[i].requiresGrad), "leaves");
    }
    sum.forEach((t) => t.dispose());
  }
  return losses;
}

// The parameters of the unused-parameter data-parallel test and each rank's loss: `used` enters
// every rank's loss, `one` rank 1's alone, `never` no rank's, and the empty `empty` rank 2's alone.
// Every coefficient is a small multiple of 1/2, so the sums over the ranks and their means over 3
// ranks are exact in float64.

import { type Tensor, tensor, zeros } from "../../src/tensor/mod.ts";

/** Fresh parameters `[used, one, never, empty]` (float64, the same values on every rank). */
export function unusedParams(): Tensor[] {
  const opts = { dtype: "float64", requiresGrad: true } as const;
  return [tensor([0.5, -1], opts), tensor([2, 1, -3], opts), tensor([4, -5], opts), zeros([0, 2], opts)];
}

/** Rank r's loss: used·[r + 1, 2(r + 1)], plus one·[3, −6, 1.5] on rank 1, plus Σ empty on rank 2. */
export function rankLoss([used, one, , empty]: Tensor[], rank: number): Tensor {
  const w = tensor([rank + 1, 2 * (rank + 1)], { dtype: "float64" });
  let loss = used.mul(w).sum();
  if (rank === 1) loss = loss.add(one.mul(tensor([3, -6, 1.5], { dtype: "float64" })).sum());
  if (rank === 2) loss = loss.add(empty.sum());
  return loss;
}

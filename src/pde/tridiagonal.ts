/**
 * Batched tridiagonal solves by parallel cyclic reduction (PCR): ⌈log₂ n⌉ rounds of whole-tensor
 * shifts and elementwise ops, so it runs as a handful of launches per round on the GPU and stays
 * differentiable. Stable without pivoting for diagonally dominant systems (the implicit diffusion
 * steps of the reference solvers).
 *
 * @module
 */

import { ArgumentError, broadcastShapes, narrow, pad, type Tensor } from "../tensor/mod.ts";

/** Value at i is `v[i − s]` (or `fill` for i < s), along the last axis. */
function fromLeft(v: Tensor, s: number, fill: number): Tensor {
  const n = v.shape[v.ndim - 1];
  return narrow(pad(v, [[s, 0]], "constant", fill), -1, 0, n);
}

/** Value at i is `v[i + s]` (or `fill` for i ≥ n − s), along the last axis. */
function fromRight(v: Tensor, s: number, fill: number): Tensor {
  const n = v.shape[v.ndim - 1];
  return narrow(pad(v, [[0, s]], "constant", fill), -1, s, n);
}

/**
 * Solves `a[i]·x[i−1] + b[i]·x[i] + c[i]·x[i+1] = d[i]` along the last axis for every leading index
 * (`a[0]` and `c[n−1]` are ignored). The four tensors broadcast together.
 *
 * @example
 * ```ts
 * import { solveTridiagonal } from "./mod.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const x = solveTridiagonal(tensor([0, -1, -1]), tensor([2, 2, 2]), tensor([-1, -1, 0]), tensor([1, 0, 1]));
 * x.toArray(); // [1, 1, 1]
 * ```
 */
export function solveTridiagonal(a: Tensor, b: Tensor, c: Tensor, d: Tensor): Tensor {
  const shape = broadcastShapes("solveTridiagonal", a.shape, b.shape, c.shape, d.shape);
  if (shape.length === 0) throw new ArgumentError("solveTridiagonal", "needs at least one axis");
  const n = shape[shape.length - 1];
  let A = a.expand(shape);
  let B = b.expand(shape);
  let C = c.expand(shape);
  let D = d.expand(shape);
  if (n > 1) {
    // a[0] and c[n−1] reach outside the system: zero them. In the rounds below, rows beyond the
    // ends act as identity rows (a = c = d = 0, b = 1).
    A = narrow(A, -1, 1, n - 1).pad([[1, 0]]);
    C = narrow(C, -1, 0, n - 1).pad([[0, 1]]);
  }
  for (let s = 1; s < n; s *= 2) {
    const alpha = A.div(fromLeft(B, s, 1)).neg();
    const gamma = C.div(fromRight(B, s, 1)).neg();
    const nA = alpha.mul(fromLeft(A, s, 0));
    const nC = gamma.mul(fromRight(C, s, 0));
    const nB = B.add(alpha.mul(fromLeft(C, s, 0))).add(gamma.mul(fromRight(A, s, 0)));
    const nD = D.add(alpha.mul(fromLeft(D, s, 0))).add(gamma.mul(fromRight(D, s, 0)));
    A = nA;
    B = nB;
    C = nC;
    D = nD;
  }
  return D.div(B);
}

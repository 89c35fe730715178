/**
 * The differentiable building blocks under `linear.ts` and the nonlinear solvers: raw batched
 * factorisations, and solves with a precomputed factorisation recorded so that both the matrix
 * and the right-hand side receive gradients (the backward pass reuses the factors: one
 * transposed solve). Internal to `src/solve` (not re-exported by its `mod.ts`).
 *
 * @module
 */

import { record } from "../tensor/autograd.ts";
import { matmul } from "../tensor/ops_matmul.ts";
import { transpose } from "../tensor/ops_shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { constantMatrix, linalgOf } from "./internal.ts";

/**
 * `op(A)⁻¹ b` for triangular A (not recorded): one batched backend call.
 *
 * @example
 * ```ts
 * import { rawTriangular } from "./factored.ts";
 * import { tensor } from "../tensor/mod.ts";
 * rawTriangular(tensor([[2, 0], [1, 4]]), tensor([[2], [9]]), true, false, false).toArray(); // [[1], [2]]
 * ```
 */
export function rawTriangular(
  a: Tensor,
  b: Tensor,
  lower: boolean,
  transposed: boolean,
  unitDiagonal: boolean,
): Tensor {
  return Tensor.fromBuffer(
    linalgOf("triangularSolve", a).triangularSolve(a, b, { lower, transpose: transposed, unitDiagonal }, b.dtype),
    [...b.shape],
    b.dtype,
  );
}

/** Flags of a triangular solve. */
export interface TriangularFlags {
  /** Lower (else upper) triangular. */
  lower: boolean;
  /** Solve with the transpose. */
  transpose: boolean;
  /** Unit diagonal, not read. */
  unitDiagonal: boolean;
}

/**
 * `op(A)⁻¹ b` for triangular A, recorded with inputs A and b (the gradient of A is masked to the
 * triangle read).
 *
 * @example
 * ```ts
 * import { triangularRecorded } from "./factored.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const l = tensor([[2, 0], [1, 4]]).requireGrad();
 * triangularRecorded(l, tensor([[2], [9]]), { lower: true, transpose: false, unitDiagonal: false }).sum().backward();
 * ```
 */
export function triangularRecorded(a: Tensor, b: Tensor, o: TriangularFlags): Tensor {
  const x = rawTriangular(a, b, o.lower, o.transpose, o.unitDiagonal);
  return record("triangularSolve", x, [a, b], [x], (g, needs) => {
    const gb = triangularRecorded(a, g, { ...o, transpose: !o.transpose });
    let ga: Tensor | null = null;
    if (needs[0]) {
      const outer = o.transpose ? matmul(x, transpose(gb)) : matmul(gb, transpose(x));
      const n = a.shape[a.ndim - 1];
      const kind = o.lower ? (o.unitDiagonal ? "strictTril" : "tril") : (o.unitDiagonal ? "strictTriu" : "triu");
      ga = outer.mul(constantMatrix(kind, n, a.dtype, a.backend)).neg();
    }
    return [ga, needs[1] ? gb : null];
  });
}

/**
 * Raw batched Cholesky (not recorded): the factor and the int32 info per matrix.
 *
 * @example
 * ```ts
 * import { rawCholesky } from "./factored.ts";
 * import { tensor } from "../tensor/mod.ts";
 * rawCholesky(tensor([[4, 2], [2, 5]])).factor.toArray(); // [[2, 0], [1, 2]]
 * ```
 */
export function rawCholesky(a: Tensor): { factor: Tensor; info: Tensor } {
  const { factor, info } = linalgOf("cholesky", a).cholesky(a, a.dtype);
  return {
    factor: Tensor.fromBuffer(factor, [...a.shape], a.dtype),
    info: Tensor.fromBuffer(info, a.shape.slice(0, -2), "int32"),
  };
}

/**
 * A factorisation of the matrix of a solve: LU (with pivots) or Cholesky.
 *
 * @example
 * ```ts
 * import type { Factor } from "./factored.ts";
 * // const f: Factor = { kind: "cholesky", l };
 * ```
 */
export type Factor =
  | { kind: "lu"; lu: Tensor; pivots: Tensor }
  | { kind: "cholesky"; l: Tensor };

function factorTensors(f: Factor): Tensor[] {
  return f.kind === "lu" ? [f.lu, f.pivots] : [f.l];
}

/**
 * `op(A)⁻¹ b` from a factorisation of A (not recorded).
 *
 * @example
 * ```ts
 * import { rawCholesky, rawFactoredSolve } from "./factored.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const l = rawCholesky(tensor([[4, 2], [2, 5]])).factor;
 * rawFactoredSolve({ kind: "cholesky", l }, tensor([[8], [13]]), false); // [[0.875], [2.25]]
 * ```
 */
export function rawFactoredSolve(f: Factor, b: Tensor, transposed: boolean): Tensor {
  if (f.kind === "lu") {
    return Tensor.fromBuffer(
      linalgOf("solve", b).luSolve(f.lu, f.pivots, b, transposed, b.dtype),
      [...b.shape],
      b.dtype,
    );
  }
  const y = rawTriangular(f.l, b, true, false, false);
  const x = rawTriangular(f.l, y, true, true, false);
  y.dispose();
  return x;
}

/**
 * `x = op(A)⁻¹ b` using a factorisation of A computed by the caller, recorded with inputs A and b
 * so that both receive gradients: `b̄ = op(A)⁻ᵀ x̄` (same factors), `Ā = −b̄ xᵀ` (`−x b̄ᵀ` when
 * transposed; symmetrised for Cholesky). The factorisation must be of A (plus any constant term).
 *
 * @example
 * ```ts
 * import { factoredSolve, rawCholesky } from "./factored.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const a = tensor([[4, 2], [2, 5]]).requireGrad();
 * const x = factoredSolve(a, { kind: "cholesky", l: rawCholesky(a).factor }, tensor([[8], [13]]), false);
 * x.sum().backward();
 * ```
 */
export function factoredSolve(a: Tensor, f: Factor, b: Tensor, transposed: boolean): Tensor {
  const x = rawFactoredSolve(f, b, transposed);
  return record("solve", x, [a, b], [x, ...factorTensors(f)], (g, needs) => {
    const gb = factoredSolve(a, f, g, !transposed);
    let ga: Tensor | null = null;
    if (needs[0]) {
      if (f.kind === "cholesky") {
        const o = matmul(gb, transpose(x));
        ga = o.add(transpose(o)).mul(-0.5);
      } else {
        ga = (transposed ? matmul(x, transpose(gb)) : matmul(gb, transpose(x))).neg();
      }
    }
    return [ga, needs[1] ? gb : null];
  });
}

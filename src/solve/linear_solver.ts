/**
 * Linear solvers as values (Lineax's `linear_solver=` option) for the normal equations of the
 * nonlinear solvers and the adjoint system of the implicit adjoint: {@link Cholesky} (symmetric
 * positive-definite systems such as JᵀJ + λD, the default) and {@link LU} (general systems, such
 * as an exact Hessian that may be indefinite), both on batches of dense `[B, N, N]` matrices, and
 * `BandedCholesky` (banded.ts) on batches of host banded matrices.
 *
 * A solver knows how its matrices are stored, so the iteration reads their diagonal, shifts it and
 * multiplies by them through the solver, whatever the storage. `factor` flags the problems whose
 * matrix is numerically singular: not factorisable, or a pivot ratio `min dᵢ / max dᵢ` (dᵢ = Lᵢᵢ²
 * for Cholesky, |Uᵢᵢ| for LU) at most `n·ε` — the scale of LAPACK's rank tests (max(m, n)·ε·max dᵢ).
 *
 * @module
 */

import { noGrad } from "../tensor/autograd.ts";
import { Tensor } from "../tensor/tensor.ts";
import { where } from "../tensor/ops_elementwise.ts";
import { matmul } from "../tensor/ops_matmul.ts";
import { type Factor, factoredSolve, rawCholesky } from "./factored.ts";
import { constantMatrix, diagonalView, epsilonOf, linalgOf } from "./internal.ts";

/**
 * A batch of factorised matrices: the flags of the problems whose matrix is numerically singular
 * (`bad`) or could not be factorised at all (`failed`), and solves with the factors.
 *
 * @example
 * ```ts
 * import { Cholesky } from "./linear_solver.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const a = tensor([[[4, 2], [2, 5]]], { dtype: "float64" });
 * const f = new Cholesky().factor(a);
 * f.solve(a, tensor([[8, 13]], { dtype: "float64" })).toArray(); // [[0.875, 2.25]]
 * ```
 */
export interface Factorization {
  /** 1 where the matrix is numerically singular (not factorisable, or a tiny pivot ratio), else 0; `[B]`. */
  readonly bad: Tensor;
  /** 1 where the factorisation broke down (the solve is meaningless there), else 0; `[B]`. */
  readonly failed: Tensor;
  /**
   * `A⁻¹ b` for b `[B, N]`, where A is the matrix that was factorised (`a` is passed again so
   * that a dense solve is recorded with inputs A and b: differentiable in both).
   */
  solve(a: Tensor, b: Tensor): Tensor;
}

/**
 * What the nonlinear solvers and the implicit adjoint need of a linear solver. `a` is the batch of
 * matrices in the solver's storage (`shape(B, N)`).
 *
 * @example
 * ```ts
 * import { Cholesky, type LinearSolver } from "./linear_solver.ts";
 * const s: LinearSolver = new Cholesky();
 * s.shape(8, 3); // [8, 3, 3]
 * ```
 */
export interface LinearSolver {
  /** Names the solver (for messages). */
  readonly kind: string;
  /** Whether its solves are recorded for autodiff (dense solvers: the unrolled adjoint needs it). */
  readonly differentiable: boolean;
  /** The storage shape of B matrices of order N. */
  shape(b: number, n: number): number[];
  /** The diagonals `[B, N]` (not recorded). */
  diagonal(a: Tensor): Tensor;
  /** `a + diag(d)` for d `[B, 1]` (one value per problem) or `[B, N]`; recorded in `a` where dense. */
  addDiagonal(a: Tensor, d: Tensor): Tensor;
  /** `A·v` for v `[B, N]` (not recorded). */
  mv(a: Tensor, v: Tensor): Tensor;
  /** `diag(s)·A·diag(s)` for s `[B, N]` (not recorded). */
  scale(a: Tensor, s: Tensor): Tensor;
  /** Factorises every matrix of the batch (not recorded). */
  factor(a: Tensor): Factorization;
}

function col(x: Tensor): Tensor {
  return x.unsqueeze(-1);
}

function uncol(x: Tensor): Tensor {
  return x.reshape(x.shape.slice(0, -1));
}

/** 1 where the pivot sizes `d` `[..., n]` have min dᵢ ≤ tol · max dᵢ. */
function tinyRatio(d: Tensor, tol: number): Tensor {
  return d.min(-1).le(d.max(-1).mul(tol));
}

/** A factorisation whose solves are recorded with inputs `a` and b. */
function recorded(f: Factor, bad: Tensor, failed: Tensor): Factorization {
  return { bad, failed, solve: (a, b) => uncol(factoredSolve(a, f, col(b), false)) };
}

/**
 * The dense storage `[B, N, N]` shared by {@link Cholesky} and {@link LU}: solves are recorded with
 * inputs A and b, so the unrolled adjoint differentiates through them.
 *
 * @example
 * ```ts
 * import { Cholesky, DenseSolver } from "./linear_solver.ts";
 * new Cholesky() instanceof DenseSolver; // true
 * ```
 */
export abstract class DenseSolver implements LinearSolver {
  /** Names the solver. */
  abstract readonly kind: string;
  /** Dense solves are recorded. */
  readonly differentiable = true;

  /** `[B, N, N]`. */
  shape(b: number, n: number): number[] {
    return [b, n, n];
  }

  /** The diagonals, as a view. */
  diagonal(a: Tensor): Tensor {
    return diagonalView(a.detach());
  }

  /** `a + diag(d)`, recorded in `a`. */
  addDiagonal(a: Tensor, d: Tensor): Tensor {
    const n = a.shape[a.ndim - 1];
    return a.add(constantMatrix("eye", n, a.dtype, a.backend).mul(noGrad(() => d.unsqueeze(-2))));
  }

  /** One batched matrix product. */
  mv(a: Tensor, v: Tensor): Tensor {
    return noGrad(() => uncol(matmul(a.detach(), col(v.detach()))));
  }

  /** `diag(s)·A·diag(s)`. */
  scale(a: Tensor, s: Tensor): Tensor {
    return noGrad(() => a.detach().mul(s.unsqueeze(-1)).mul(s.unsqueeze(-2)));
  }

  /** Factorises every matrix of the batch. */
  abstract factor(a: Tensor): Factorization;
}

/**
 * Cholesky factorisation of symmetric positive-definite matrices (only the lower triangle is
 * read): one batched backend call, then two triangular solves per right-hand side.
 *
 * @example
 * ```ts
 * import { Cholesky, GaussNewton } from "./mod.ts";
 * const gn = new GaussNewton({ linearSolver: new Cholesky() }); // the default
 * ```
 */
export class Cholesky extends DenseSolver {
  /** Names the solver. */
  readonly kind = "cholesky";

  /** Batched Cholesky; `bad` also where min Lᵢᵢ² ≤ n·ε·max Lᵢᵢ². */
  factor(a: Tensor): Factorization {
    const n = a.shape[a.ndim - 1];
    const { factor, info } = rawCholesky(a.detach());
    const { bad, failed } = noGrad(() => {
      const failed = info.gt(0).cast(a.dtype);
      const d = diagonalView(factor).square();
      return { bad: failed.maximum(tinyRatio(d, n * epsilonOf(a.dtype)).cast(a.dtype)), failed };
    });
    return recorded({ kind: "cholesky", l: factor }, bad, failed);
  }
}

/**
 * LU factorisation with partial pivoting of general square matrices: one batched backend call,
 * then one batched solve per right-hand side.
 *
 * @example
 * ```ts
 * import { ImplicitAdjoint, LU } from "./mod.ts";
 * const adjoint = new ImplicitAdjoint({ hessian: "exact", linearSolver: new LU() }); // the default for "exact"
 * ```
 */
export class LU extends DenseSolver {
  /** Names the solver. */
  readonly kind = "lu";

  /** Batched LU; `bad` also where min |Uᵢᵢ| ≤ n·ε·max |Uᵢᵢ|, `failed` where a pivot is exactly 0. */
  factor(a: Tensor): Factorization {
    const n = a.shape[a.ndim - 1];
    const ad = a.detach();
    const r = linalgOf("solve", ad).lu(ad, ad.dtype);
    const lu = Tensor.fromBuffer(r.lu, [...ad.shape], ad.dtype);
    const pivots = Tensor.fromBuffer(r.pivots, [...ad.shape.slice(0, -1)], "int32");
    const info = Tensor.fromBuffer(r.info, ad.shape.slice(0, -2), "int32");
    const { bad, failed } = noGrad(() => {
      const d = diagonalView(lu).abs();
      const bad = info.gt(0).cast(a.dtype).maximum(tinyRatio(d, n * epsilonOf(a.dtype)).cast(a.dtype));
      return { bad, failed: d.min(-1).eq(0).cast(a.dtype) };
    });
    info.dispose();
    return recorded({ kind: "lu", lu, pivots }, bad, failed);
  }
}

/** A factorisation with the Tikhonov fallback applied (see {@link regularizedFactor}). */
export interface RegularizedFactorization {
  /** The matrix that was factorised last (A, or A + τ·s·I where regularized). */
  matrix: Tensor;
  /** Its factorisation. */
  factorization: Factorization;
  /** 1 where the Tikhonov term was added, `[B]`. */
  regularized: Tensor;
  /** 1 where the system stayed singular, `[B]`. */
  singular: Tensor;
}

/**
 * Factorises `a` with `solver`; the problems whose matrix is numerically singular are factorised
 * again as `A + τ·s·I`, `s = max |diag A|` (1 when that is 0), τ = `relReg`. With `relReg = 0` they
 * are flagged singular instead. Reads one number to the host to learn whether a second pass is
 * needed.
 *
 * @example
 * ```ts
 * import { Cholesky, regularizedFactor } from "./linear_solver.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const f = regularizedFactor(new Cholesky(), tensor([[[1, 1], [1, 1]]], { dtype: "float64" }), 1e-8);
 * f.regularized.toArray(); // [1]
 * ```
 */
export function regularizedFactor(solver: LinearSolver, a: Tensor, relReg: number): RegularizedFactorization {
  const first = solver.factor(a);
  if (relReg <= 0 || noGrad(() => first.bad.max().item()) === 0) {
    const none = noGrad(() => first.bad.mul(0));
    return {
      matrix: a,
      factorization: first,
      regularized: relReg <= 0 ? none : first.bad,
      singular: relReg <= 0 ? first.bad : none,
    };
  }
  const tau = noGrad(() => {
    const md = solver.diagonal(a).abs().max(-1);
    return where(md.gt(0), md, 1).mul(relReg).mul(first.bad);
  });
  const a2 = solver.addDiagonal(a, noGrad(() => tau.unsqueeze(-1)));
  const second = solver.factor(a2);
  return { matrix: a2, factorization: second, regularized: first.bad, singular: second.failed };
}

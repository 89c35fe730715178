/**
 * Differentiable batched dense linear algebra: {@link cholesky}, {@link triangularSolve},
 * {@link solve} (LU with partial pivoting, or Cholesky), and the raw factorisations {@link lu} /
 * {@link luSolve} and {@link qr}; least squares is in `lstsq.ts`.
 *
 * Every matrix argument is `[...batch, n, n]` (or `[...batch, m, n]`), every right-hand side
 * `[...batch, n, k]` — a vector right-hand side is written `[..., n, 1]`, and a 1-D `b` of shape
 * `[n]` is taken as one column shared by the batch, the result then being `[...batch, n]`. Batch axes broadcast. The
 * backend runs one batched primitive per factorisation or solve (`Backend.linalg`).
 *
 * Gradients are written in tensor ops, so they compose with higher-order autodiff:
 *
 * - `x = op(A)⁻¹ b` (triangular, LU, Cholesky): `b̄ = op(A)⁻ᵀ x̄` (one transposed solve with the
 *   same factorisation), `Ā = −b̄ xᵀ` (`−x b̄ᵀ` for `op(A) = Aᵀ`), masked to the triangle read for
 *   triangular solves and symmetrised for Cholesky solves.
 * - `L = chol(A)`: `Ā = ½ (S + Sᵀ)`, `S = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹`, where Φ keeps the lower triangle and
 *   halves the diagonal. The Cholesky-based ops read only the lower triangle of A and return the
 *   symmetric gradient, i.e. the derivative along symmetric perturbations; build A symmetric
 *   (e.g. `X·Xᵀ + c·I`) when checking it by finite differences.
 * - `x = argmin ‖A x − b‖² + μ‖x‖²` (`lstsq.ts`): with `z = (AᵀA + μI)⁻¹ x̄` and `r = b − A x`,
 *   `b̄ = A z` and `Ā = r zᵀ − A z xᵀ`. With fewer rows than columns, `x = Aᵀy`,
 *   `(AAᵀ + μI) y = b` (the minimum-norm solution when μ = 0): with `w = (AAᵀ + μI)⁻¹ A x̄`,
 *   `b̄ = w` and `Ā = y (x̄ − Aᵀw)ᵀ − w xᵀ` (x̄ − Aᵀw is x̄'s part in A's null space when μ = 0).
 *
 * Failures are typed: a singular or numerically singular matrix (an exactly zero pivot, or a pivot
 * ratio at most n·ε — `min|uᵢᵢ| / max|uᵢᵢ|` for LU, `min Lᵢᵢ² / max Lᵢᵢ²` for Cholesky, the
 * scale of LAPACK's rank tests, max(m, n)·ε·max pivot; for Cholesky also a leading minor that is
 * not positive definite) raises a {@link SingularMatrixError} naming the op and the failing batch entries; NaN or
 * Inf in an input raises a `NonFiniteError`. Checking reads a few bytes per batch entry to the
 * host; pass `check: false` to skip it (failed entries then hold NaN or Inf). A `regularization`
 * μ ≥ 0 adds the Tikhonov term μI to the matrix. {@link cholesky} alone checks only that the
 * factorisation exists (LAPACK's potrf): its factor is that of A to rounding even when A is nearly
 * singular.
 *
 * @module
 */

import { isGradEnabled, noGrad, record } from "../tensor/autograd.ts";
import { ArgumentError, AutodiffError, ShapeError } from "../tensor/errors.ts";
import { fmtShape } from "../tensor/shape.ts";
import { checkTensor } from "../tensor/validate.ts";
import { tidy } from "../tensor/storage.ts";
import { Tensor } from "../tensor/tensor.ts";
import { transpose } from "../tensor/ops_shape.ts";
import { matmul } from "../tensor/ops_matmul.ts";
import { type Factor, factoredSolve, rawCholesky, type TriangularFlags, triangularRecorded } from "./factored.ts";
import {
  type BatchCheck,
  constantMatrix,
  diagonalView,
  epsilonOf,
  finish,
  linalgOf,
  nonFiniteMask,
  prepare,
  raiseFailures,
  solveDType,
  squareCheck,
  tinyPivots,
  withRegularization,
} from "./internal.ts";

/** Options of {@link triangularSolve}. */
export interface TriangularSolveOptions {
  /** A is lower triangular (default true); only that triangle is read. */
  lower?: boolean;
  /** Solve with Aᵀ (default false). */
  transpose?: boolean;
  /** Take the diagonal as ones, without reading it (default false). */
  unitDiagonal?: boolean;
  /** Raise on a zero diagonal or non-finite input (one small host read; default true). */
  check?: boolean;
}

/** Options shared by the factorising solvers. */
export interface SolveOptions {
  /** Tikhonov term μ ≥ 0 added as μI to the matrix (to AᵀA for `lstsq`). Default 0. */
  regularization?: number;
  /** Raise typed errors for singular / non-positive-definite / non-finite entries. Default true. */
  check?: boolean;
}

/** Options of {@link solve}. */
export interface LinearSolveOptions extends SolveOptions {
  /** "lu" (default; any nonsingular A) or "cholesky" (symmetric positive-definite A). */
  method?: "lu" | "cholesky";
}

// ------------------------------------------------------------------------------------- triangular

/**
 * Solves `op(A)·x = b` for triangular A `[..., n, n]` (`op(A)` is A or Aᵀ), differentiable in both.
 * Only the named triangle of A is read (and receives gradient).
 *
 * @example
 * ```ts
 * import { triangularSolve } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const l = tensor([[2, 0], [1, 4]]);
 * triangularSolve(l, tensor([[2], [9]])).toArray(); // [[1], [2]]
 * ```
 */
export function triangularSolve(a: Tensor, b: Tensor, options: TriangularSolveOptions = {}): Tensor {
  const op = "triangularSolve";
  const n = squareCheck(op, a);
  const p = prepare(op, a, b, n);
  const o: TriangularFlags = {
    lower: options.lower ?? true,
    transpose: options.transpose ?? false,
    unitDiagonal: options.unitDiagonal ?? false,
  };
  if (options.check ?? true) {
    const checks: BatchCheck[] = [
      { flags: nonFiniteMask(p.a, 2), what: "non-finite values (NaN or Inf) in A", kind: "nonfinite" },
      { flags: nonFiniteMask(p.b, 2), what: "non-finite values (NaN or Inf) in b", kind: "nonfinite" },
    ];
    if (!o.unitDiagonal) {
      checks.push({
        flags: noGrad(() => diagonalView(p.a).eq(0).max(-1)),
        what: "singular triangular matrix (zero on the diagonal)",
        kind: "singular",
      });
    }
    tidy(() => raiseFailures(op, p.batch, checks));
  }
  return finish(triangularRecorded(p.a, p.b, o), p.vector);
}

// --------------------------------------------------------------------------------------- cholesky

function choleskyBackward(l: Tensor, gl: Tensor): Tensor {
  const n = l.shape[l.ndim - 1];
  const p = matmul(transpose(l), gl).mul(constantMatrix("phi", n, l.dtype, l.backend));
  const y = triangularRecorded(l, p, { lower: true, transpose: true, unitDiagonal: false }); // L⁻ᵀ P
  const s = transpose(triangularRecorded(l, transpose(y), { lower: true, transpose: true, unitDiagonal: false }));
  return s.add(transpose(s)).mul(0.5);
}

/**
 * The Cholesky factor L (lower, `A = L·Lᵀ`) of symmetric positive-definite A `[..., n, n]`; only
 * the lower triangle of A is read. Differentiable (symmetric gradient, see the module doc).
 * Raises a `SingularMatrixError` naming the entries that are not positive definite.
 *
 * @example
 * ```ts
 * import { cholesky } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * cholesky(tensor([[4, 2], [2, 5]])).toArray(); // [[2, 0], [1, 2]]
 * ```
 */
export function cholesky(a: Tensor, options: SolveOptions = {}): Tensor {
  const op = "cholesky";
  squareCheck(op, a);
  const dtype = solveDType(op, a);
  const aa = a.dtype === dtype ? a : a.cast(dtype);
  const areg = withRegularization(aa, options.regularization ?? 0);
  const { factor, info } = noGrad(() => rawCholesky(areg));
  if (options.check ?? true) {
    tidy(() =>
      raiseFailures(op, aa.shape.slice(0, -2), [
        { flags: nonFiniteMask(aa, 2), what: "non-finite values (NaN or Inf) in A", kind: "nonfinite" },
        { flags: info, what: "matrix is not positive definite", kind: "singular" },
      ])
    );
  }
  info.dispose();
  return record("cholesky", factor, [aa], [factor], (g) => [choleskyBackward(factor, g)]);
}

// ------------------------------------------------------------------------------- factored solves

function factorize(op: string, a: Tensor, method: "lu" | "cholesky"): { f: Factor; checks: BatchCheck[] } {
  const linalg = linalgOf(op, a);
  const n = a.shape[a.ndim - 1];
  const tol = n * epsilonOf(a.dtype);
  if (method === "lu") {
    const r = linalg.lu(a, a.dtype);
    const batch = a.shape.slice(0, -2);
    const luT = Tensor.fromBuffer(r.lu, [...a.shape], a.dtype);
    const piv = Tensor.fromBuffer(r.pivots, [...batch, n], "int32");
    const info = Tensor.fromBuffer(r.info, batch, "int32");
    return {
      f: { kind: "lu", lu: luT, pivots: piv },
      checks: [
        { flags: info, what: "singular matrix (zero pivot)", kind: "singular" },
        {
          flags: tinyPivots(diagonalView(luT), tol),
          what: `numerically singular matrix (pivot ratio below n·ε = ${tol.toExponential(1)})`,
          kind: "singular",
        },
      ],
    };
  }
  const { factor, info } = rawCholesky(a);
  return {
    f: { kind: "cholesky", l: factor },
    checks: [
      { flags: info, what: "matrix is not positive definite", kind: "singular" },
      {
        flags: noGrad(() => tinyPivots(diagonalView(factor).square(), tol)),
        what: `numerically singular matrix (pivot ratio below n·ε = ${tol.toExponential(1)})`,
        kind: "singular",
      },
    ],
  };
}

/**
 * Solves `A·x = b` for square A `[..., n, n]` and b `[..., n, k]` (or `[n]`), differentiable in A
 * and b. `method: "lu"` (default) factorises with partial pivoting; `"cholesky"` assumes A is
 * symmetric positive definite (only its lower triangle is read). One batched factorisation and
 * one batched solve; the backward pass is one transposed solve with the same factors.
 *
 * @example
 * ```ts
 * import { solve } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * solve(tensor([[3, 1], [1, 2]]), tensor([9, 8])).toArray(); // [2, 3]
 * ```
 */
export function solve(a: Tensor, b: Tensor, options: LinearSolveOptions = {}): Tensor {
  const op = options.method === "cholesky" ? "choleskySolve" : "solve";
  const n = squareCheck(op, a);
  const p = prepare(op, a, b, n);
  const method = options.method ?? "lu";
  if (method !== "lu" && method !== "cholesky") {
    throw new ArgumentError(op, `method must be "lu" or "cholesky", got ${JSON.stringify(method)}`);
  }
  const areg = withRegularization(p.a, options.regularization ?? 0);
  const { f, checks } = noGrad(() => factorize(op, areg, method));
  if (options.check ?? true) {
    tidy(() =>
      raiseFailures(op, p.batch, [
        { flags: nonFiniteMask(p.a, 2), what: "non-finite values (NaN or Inf) in A", kind: "nonfinite" },
        { flags: nonFiniteMask(p.b, 2), what: "non-finite values (NaN or Inf) in b", kind: "nonfinite" },
        ...checks,
      ])
    );
  }
  for (const c of checks) c.flags.dispose();
  return finish(factoredSolve(p.a, f, p.b, false), p.vector);
}

/**
 * Solves `A·x = b` for symmetric positive-definite A (the matrix, not its factor) by Cholesky:
 * `solve(a, b, { ...options, method: "cholesky" })`.
 *
 * @example
 * ```ts
 * import { choleskySolve } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * choleskySolve(tensor([[4, 2], [2, 5]]), tensor([[8], [13]])).toArray(); // [[0.875], [2.25]]
 * ```
 */
export function choleskySolve(a: Tensor, b: Tensor, options: SolveOptions = {}): Tensor {
  return solve(a, b, { ...options, method: "cholesky" });
}

/** The raw LU factorisation returned by {@link lu}. */
export interface LuFactorization {
  /** U on and above the diagonal, unit-lower L below it; `[..., n, n]`. */
  lu: Tensor;
  /** 1-based LAPACK row interchanges, int32 `[..., n]`. */
  pivots: Tensor;
  /** int32 `[...batch]`: 0, or k > 0 when `U[k−1, k−1]` is exactly zero. */
  info: Tensor;
}

/**
 * LU factorisation with partial pivoting `P·A = L·U` (not differentiable: use {@link solve} for
 * gradients). Reports singular entries in `info` instead of raising.
 *
 * @example
 * ```ts
 * import { lu, luSolve } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const f = lu(tensor([[1, 2], [3, 4]]));
 * luSolve(f, tensor([5, 11])).toArray(); // [1, 2]
 * ```
 */
export function lu(a: Tensor): LuFactorization {
  const op = "lu";
  const n = squareCheck(op, a);
  const dtype = solveDType(op, a);
  if (a.requiresGrad && isGradEnabled()) {
    throw new AutodiffError(op, "lu is not differentiable; use solve() for a differentiable linear solve");
  }
  const aa = a.dtype === dtype ? a : a.cast(dtype);
  const r = linalgOf(op, aa).lu(aa, dtype);
  const batch = aa.shape.slice(0, -2);
  return {
    lu: Tensor.fromBuffer(r.lu, [...aa.shape], dtype),
    pivots: Tensor.fromBuffer(r.pivots, [...batch, n], "int32"),
    info: Tensor.fromBuffer(r.info, batch, "int32"),
  };
}

function luSolveRecorded(f: LuFactorization, b: Tensor, transposed: boolean): Tensor {
  const x = Tensor.fromBuffer(
    linalgOf("luSolve", b).luSolve(f.lu, f.pivots, b, transposed, b.dtype),
    [...b.shape],
    b.dtype,
  );
  return record("luSolve", x, [b], [f.lu, f.pivots], (g) => [luSolveRecorded(f, g, !transposed)]);
}

/**
 * Solves `A·x = b` (or `Aᵀ·x = b`) from an {@link lu} factorisation; differentiable in b only. The
 * batch shape of b must equal that of the factorisation. No singularity check (see `info`).
 *
 * @example
 * ```ts
 * import { lu, luSolve } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const f = lu(tensor([[1, 2], [3, 4]]));
 * luSolve(f, tensor([[7], [10]]), { transpose: true }).toArray(); // [[1], [2]]
 * ```
 */
export function luSolve(factorization: LuFactorization, b: Tensor, options: { transpose?: boolean } = {}): Tensor {
  const op = "luSolve";
  const f = factorization;
  const n = squareCheck(op, f?.lu);
  checkTensor(op, "b", b);
  const vector = b.ndim === 1;
  let bb = vector ? b.reshape([n, 1]) : b;
  solveDType(op, f.lu, bb);
  if (bb.dtype !== f.lu.dtype) bb = bb.cast(f.lu.dtype);
  const batch = f.lu.shape.slice(0, -2);
  if (bb.ndim !== f.lu.ndim || bb.shape[bb.ndim - 2] !== n || bb.shape.slice(0, -2).some((d, i) => d !== batch[i])) {
    throw new ShapeError(op, `b of shape ${fmtShape(b.shape)} does not fit the factorisation ${fmtShape(f.lu.shape)}`);
  }
  return finish(luSolveRecorded(f, bb, options.transpose ?? false), vector);
}

/**
 * Thin QR factorisation `A = Q·R` of A `[..., m, n]` with m ≥ n (Householder; R has a
 * non-negative diagonal). Not differentiable: use {@link lstsq} for gradients.
 *
 * @example
 * ```ts
 * import { qr } from "./linear.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const { q, r } = qr(tensor([[3], [4]]));
 * // q = [[0.6], [0.8]], r = [[5]]
 * ```
 */
export function qr(a: Tensor): { q: Tensor; r: Tensor } {
  const op = "qr";
  if (checkTensor(op, "A", a).ndim < 2) {
    throw new ShapeError(op, `needs a matrix [..., m, n], got shape ${fmtShape(a.shape)}`);
  }
  const [m, n] = a.shape.slice(-2);
  if (m < n) throw new ShapeError(op, `needs m ≥ n, got shape ${fmtShape(a.shape)}`);
  const dtype = solveDType(op, a);
  if (a.requiresGrad && isGradEnabled()) {
    throw new AutodiffError(op, "qr is not differentiable; use lstsq() for a differentiable least-squares solve");
  }
  const aa = a.dtype === dtype ? a : a.cast(dtype);
  const r = linalgOf(op, aa).qr(aa, dtype);
  const batch = aa.shape.slice(0, -2);
  return {
    q: Tensor.fromBuffer(r.q, [...batch, m, n], dtype),
    r: Tensor.fromBuffer(r.r, [...batch, n, n], dtype),
  };
}

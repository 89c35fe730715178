/**
 * Linear least squares `x = argmin ‖A·x − b‖² + μ‖x‖²` ({@link lstsq}), with a numerical rank
 * test that scales as LAPACK's and, on request, the minimum-norm solution A⁺b of a rank-deficient
 * A; and the rank estimate itself ({@link matrixRank}).
 *
 * **Rank.** A `[..., m, n]` is factorised `A = Q·R` (Householder, no pivoting); |Rⱼⱼ| is the
 * distance of column j from the span of the columns before it, so the columns with
 * `|Rⱼⱼ| > rcond·maxᵢ|Rᵢᵢ|` are independent of their predecessors and their count is the numerical
 * rank (an estimate: without column pivoting a nearly dependent set can hide behind large |Rⱼⱼ|).
 * `rcond` defaults to max(m, n)·ε, LAPACK's (and numpy's) cut-off. With the normal equations
 * (`method: "normal"`, G = AᵀA = LLᵀ, Lⱼⱼ = |Rⱼⱼ| in exact arithmetic) the test reads
 * `Lⱼⱼ² ≤ max(m, n)·ε·maxᵢ Lᵢᵢ²`: squaring the condition number loses that much more.
 *
 * **Minimum norm** (`minNorm: true`): with S the independent columns, A = A_S·C for the
 * coefficients C `[r, n]` of every column in the basis A_S (C = A_S⁺A). The least-squares
 * solutions are the x with C·x = y, y = A_S⁺b, and the shortest is `x = Cᵀ(CCᵀ)⁻¹y` — A⁺b. Both y
 * and C come from one QR solve of `[A_S; s·E] [y, C] = [b, A; 0, 0]` (E puts a unit on each
 * dropped column so the system keeps full rank), and CCᵀ ⪰ I (C holds an identity on S), so the
 * last solve is well conditioned. Differentiable in A and b (at constant rank).
 *
 * @module
 */

import { noGrad, record } from "../tensor/autograd.ts";
import { arange, zeros } from "../tensor/creation.ts";
import { ArgumentError, ShapeError } from "../tensor/errors.ts";
import type { DType } from "../tensor/dtype.ts";
import { fmtShape } from "../tensor/shape.ts";
import { checkTensor } from "../tensor/validate.ts";
import { tidy } from "../tensor/storage.ts";
import { Tensor } from "../tensor/tensor.ts";
import { where } from "../tensor/ops_elementwise.ts";
import { matmul } from "../tensor/ops_matmul.ts";
import { concat, expand, transpose } from "../tensor/ops_shape.ts";
import { SingularMatrixError } from "./errors.ts";
import { rawCholesky, rawTriangular } from "./factored.ts";
import {
  constantMatrix,
  diagonalView,
  epsilonOf,
  finish,
  linalgOf,
  nonFiniteMask,
  prepare,
  raiseFailures,
  solveDType,
  withRegularization,
} from "./internal.ts";
import { solve, type SolveOptions } from "./linear.ts";

/** Options of {@link lstsq}. */
export interface LstsqOptions extends SolveOptions {
  /**
   * "qr" (default: Householder QR of A — or of `[A; √μ I]` with regularization — accurate to the
   * condition number of A) or "normal" (Cholesky of AᵀA + μI: one n × n factorisation, cheapest
   * for tall A, but the condition number is squared).
   */
  method?: "qr" | "normal";
  /**
   * The relative rank cut-off: a column with |Rⱼⱼ| ≤ rcond·max|Rᵢᵢ| counts as dependent (with
   * `method: "normal"`, Lⱼⱼ² ≤ rcond·max Lᵢᵢ² of AᵀA = LLᵀ). Default max(m, n)·ε of the dtype.
   */
  rcond?: number;
  /**
   * For a rank-deficient A (and μ = 0): return the minimum-norm solution A⁺b (as numpy's `lstsq`
   * or torch's `driver="gelsd"`) instead of raising a `SingularMatrixError`. Default false.
   */
  minNorm?: boolean;
}

/** Options of {@link matrixRank}. */
export interface MatrixRankOptions {
  /** The relative cut-off on |Rⱼⱼ| (default max(m, n)·ε of the dtype). */
  rcond?: number;
}

function cutoff(op: string, rcond: number | undefined, m: number, n: number, dtype: DType): number {
  const tol = rcond ?? Math.max(m, n) * epsilonOf(dtype);
  if (!(tol >= 0) || !Number.isFinite(tol)) {
    throw new ArgumentError(op, `rcond must be a finite number ≥ 0, got ${rcond}`);
  }
  return tol;
}

/** 1 where |dⱼ| > tol·maxᵢ|dᵢ| (an independent column), over the diagonals `d` `[..., n]`. */
function independent(d: Tensor, tol: number): Tensor {
  return noGrad(() => {
    const abs = d.abs();
    return abs.gt(abs.max(-1, true).mul(tol)).cast(d.dtype);
  });
}

/** R of the thin QR of `a` `[..., m, n]` (not recorded). */
function rFactor(a: Tensor): Tensor {
  const n = a.shape[a.ndim - 1];
  const res = linalgOf("lstsq", a).qr(a, a.dtype);
  Tensor.fromBuffer(res.q, [...a.shape], a.dtype).dispose();
  return Tensor.fromBuffer(res.r, [...a.shape.slice(0, -2), n, n], a.dtype);
}

/**
 * The numerical rank of each matrix of A `[..., m, n]` (m ≥ n), int32 `[...batch]`: the number of
 * columns with |Rⱼⱼ| > rcond·max|Rᵢᵢ| in A = QR (see the module notes). Not differentiable.
 *
 * @example
 * ```ts
 * import { matrixRank } from "./lstsq.ts";
 * import { tensor } from "../tensor/mod.ts";
 * matrixRank(tensor([[1, 2], [2, 4], [3, 6]], { dtype: "float64" })).item(); // 1
 * ```
 */
export function matrixRank(a: Tensor, options: MatrixRankOptions = {}): Tensor {
  const op = "matrixRank";
  if (checkTensor(op, "A", a).ndim < 2) {
    throw new ShapeError(op, `needs a matrix [..., m, n], got ${fmtShape(a.shape)}`);
  }
  const [m, n] = a.shape.slice(-2);
  if (m < n) throw new ShapeError(op, `needs m ≥ n (pass the transpose), got shape ${fmtShape(a.shape)}`);
  const dtype = solveDType(op, a);
  const tol = cutoff(op, options.rcond, m, n, dtype);
  return tidy(() =>
    noGrad(() => {
      const aa = a.detach().cast(dtype);
      return independent(diagonalView(rFactor(aa)), tol).sum(-1).cast("int32");
    })
  );
}

// ------------------------------------------------------------------------------- full column rank

/** A factor of the Gram matrix G = AᵀA + μI: G = RᵀR (QR) or G = LLᵀ (normal equations). */
type GramFactor = { kind: "qr"; r: Tensor } | { kind: "cholesky"; l: Tensor };

function rawGramSolve(f: GramFactor, v: Tensor): Tensor {
  return tidy(() => {
    if (f.kind === "qr") return rawTriangular(f.r, rawTriangular(f.r, v, false, true, false), false, false, false);
    return rawTriangular(f.l, rawTriangular(f.l, v, true, false, false), true, true, false);
  });
}

/** `z = (AᵀA + μI)⁻¹ v`, recorded with inputs A and v (differentiable in both). */
function gramSolve(a: Tensor, f: GramFactor, v: Tensor): Tensor {
  const z = rawGramSolve(f, v);
  return record("gramSolve", z, [a, v], [z, f.kind === "qr" ? f.r : f.l], (g, needs) => {
    const gv = gramSolve(a, f, g);
    let ga: Tensor | null = null;
    if (needs[0]) {
      const gg = matmul(gv, transpose(z)).neg(); // Ḡ = −v̄ zᵀ
      ga = matmul(a, gg.add(transpose(gg)));
    }
    return [ga, needs[1] ? gv : null];
  });
}

/** The solve and its rank flags (not yet checked), for full-column-rank A (or μ > 0). */
function factorSolve(
  a: Tensor,
  b: Tensor,
  batch: number[],
  method: "qr" | "normal",
  mu: number,
  tol: number,
): { x: Tensor; f: GramFactor; keep: Tensor } {
  const n = a.shape[a.ndim - 1];
  return tidy(() =>
    noGrad(() => {
      if (method === "qr") {
        let aa = a;
        let bb = b;
        if (mu > 0) {
          const eye = constantMatrix("eye", n, aa.dtype, aa.backend).mul(Math.sqrt(mu));
          aa = concat([aa, expand(eye, [...batch, n, n])], -2);
          const k = bb.shape[bb.ndim - 1];
          bb = concat([bb, zeros([...batch, n, k], { dtype: bb.dtype, backend: bb.backend })], -2);
        }
        const res = linalgOf("lstsq", aa).qr(aa, aa.dtype);
        const q = Tensor.fromBuffer(res.q, [...batch, aa.shape[aa.ndim - 2], n], aa.dtype);
        const r = Tensor.fromBuffer(res.r, [...batch, n, n], aa.dtype);
        const x = rawTriangular(r, matmul(transpose(q), bb), false, false, false);
        return { x, f: { kind: "qr", r } as GramFactor, keep: independent(diagonalView(r), tol) };
      }
      const g = withRegularization(matmul(transpose(a), a), mu);
      const { factor, info } = rawCholesky(g);
      const f: GramFactor = { kind: "cholesky", l: factor };
      const x = rawGramSolve(f, matmul(transpose(a), b));
      // Lⱼⱼ² is the pivot of G = AᵀA: the squared condition number loses the square of the cut-off.
      // Where the factorisation broke down at column info − 1, the columns from there on count as dependent.
      const limit = where(info.gt(0), info.sub(1), n).cast(a.dtype).unsqueeze(-1);
      const before = arange(0, n, 1, { dtype: a.dtype, backend: a.backend }).lt(limit).cast(a.dtype);
      const keep = independent(diagonalView(factor).square(), tol).mul(before);
      return { x, f, keep };
    })
  );
}

function recordedSolve(a: Tensor, b: Tensor, x: Tensor, f: GramFactor): Tensor {
  return record("lstsq", x, [a, b], [x, f.kind === "qr" ? f.r : f.l], (g, needs) => {
    const z = gramSolve(a, f, g);
    const az = matmul(a, z);
    let ga: Tensor | null = null;
    if (needs[0]) ga = matmul(b.sub(matmul(a, x)), transpose(z)).sub(matmul(az, transpose(x)));
    return [ga, needs[1] ? az : null];
  });
}

// ---------------------------------------------------------------------------------- minimum norm

/** A⁺b for A `[..., m, n]` whose independent columns are `keep` `[..., n]` (see the module notes). */
function minimumNorm(a: Tensor, b: Tensor, keep: Tensor, batch: number[]): Tensor {
  const n = a.shape[a.ndim - 1];
  const k = b.shape[b.ndim - 1];
  const { unit, e } = noGrad(() => {
    const unit = constantMatrix("eye", n, a.dtype, a.backend).mul(keep.neg().add(1).unsqueeze(-2)); // diag(dropped)
    // E carries A's scale, so the system's R stays on one scale.
    const top = diagonalView(rFactor(a.detach())).abs().max(-1, true);
    return { unit, e: unit.mul(where(top.gt(0), top, 1).unsqueeze(-1)) };
  });
  const basis = a.mul(noGrad(() => keep.unsqueeze(-2))); // A_S, the dependent columns zeroed
  const system = concat([basis, expand(e, [...batch, n, n])], -2);
  const rhs = concat([concat([b, a], -1), zeros([...batch, n, k + n], { dtype: a.dtype, backend: a.backend })], -2);
  const yc = lstsq(system, rhs, { rcond: 0 }); // full column rank by construction
  const y = yc.narrow(-1, 0, k);
  const c = yc.narrow(-1, k, n);
  const gram = matmul(c, transpose(c)).add(unit); // CCᵀ on S, the identity on the dropped columns
  return matmul(transpose(c), solve(gram, y, { method: "cholesky" }));
}

/**
 * Least squares `x = argmin ‖A·x − b‖² + μ‖x‖²` for A `[..., m, n]` with m ≥ n, b `[..., m, k]`
 * (or `[m]`); differentiable in A and b. `method: "qr"` (default) or `"normal"` (Cholesky of
 * AᵀA + μI). A rank-deficient A (numerical rank below n, see the module notes) with μ = 0 raises a
 * `SingularMatrixError` naming the batch entries and their ranks, or with `minNorm: true` gives
 * the minimum-norm solution A⁺b.
 *
 * @example
 * ```ts
 * import { lstsq } from "./lstsq.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const a = tensor([[1, 0], [0, 1], [1, 1]]);
 * lstsq(a, tensor([1, 1, 3])).toArray(); // [1.333…, 1.333…]
 * const deficient = tensor([[1, 2], [2, 4], [3, 6]], { dtype: "float64" });
 * lstsq(deficient, tensor([1, 0, 0], { dtype: "float64" }), { minNorm: true }).toArray(); // [1/70, 2/70]
 * ```
 */
export function lstsq(a: Tensor, b: Tensor, options: LstsqOptions = {}): Tensor {
  const op = "lstsq";
  if (checkTensor(op, "A", a).ndim < 2) {
    throw new ShapeError(op, `needs a matrix [..., m, n], got ${fmtShape(a.shape)}`);
  }
  const [m, n] = a.shape.slice(-2);
  if (m < n) {
    throw new ShapeError(op, `needs at least as many rows as columns (m ≥ n), got A of shape ${fmtShape(a.shape)}`);
  }
  const p = prepare(op, a, b, m);
  const method = options.method ?? "qr";
  if (method !== "qr" && method !== "normal") {
    throw new ArgumentError(op, `method must be "qr" or "normal", got ${JSON.stringify(method)}`);
  }
  const mu = options.regularization ?? 0;
  if (!(mu >= 0) || !Number.isFinite(mu)) {
    throw new ArgumentError(op, `regularization must be a finite number ≥ 0, got ${mu}`);
  }
  const tol = cutoff(op, options.rcond, m, n, p.a.dtype);
  const { x, f, keep } = factorSolve(p.a, p.b, p.batch, method, mu, tol);
  const check = options.check ?? true;
  const ranks = noGrad(() => keep.sum(-1));
  if (check) {
    tidy(() =>
      raiseFailures(op, p.batch, [
        { flags: nonFiniteMask(p.a, 2), what: "non-finite values (NaN or Inf) in A", kind: "nonfinite" },
        { flags: nonFiniteMask(p.b, 2), what: "non-finite values (NaN or Inf) in b", kind: "nonfinite" },
      ])
    );
  }
  const deficient = mu === 0 && (check || options.minNorm) ? noGrad(() => ranks.lt(n).max().item()) > 0 : false;
  if (deficient && options.minNorm) {
    for (const t of [x, ranks, f.kind === "qr" ? f.r : f.l]) t.dispose();
    const out = minimumNorm(p.a, p.b, keep, p.batch);
    keep.dispose();
    return finish(out, p.vector);
  }
  if (deficient) {
    const host = ranks.toTypedArray();
    for (const t of [x, ranks, keep, f.kind === "qr" ? f.r : f.l]) t.dispose();
    const bad = [...host.keys()].filter((i) => host[i] < n);
    const where = p.batch.length === 0
      ? "the matrix"
      : `batch entries [${bad.slice(0, 16).join(", ")}] of batch shape ${fmtShape(p.batch)}`;
    throw new SingularMatrixError(
      op,
      bad,
      `A is rank deficient: ${where} ha${bad.length === 1 && p.batch.length === 0 ? "s" : "ve"} numerical rank ${
        bad.slice(0, 16).map((i) => host[i]).join(", ")
      } < n = ${n} (${method === "qr" ? "|Rⱼⱼ| ≤ rcond·max|Rᵢᵢ|" : "Lⱼⱼ² ≤ rcond·max Lᵢᵢ² in AᵀA = LLᵀ"}, rcond = ${
        tol.toExponential(1)
      }); pass minNorm: true for the ` +
        "minimum-norm solution, or a regularization μ > 0",
    );
  }
  for (const t of [ranks, keep]) t.dispose();
  return finish(recordedSolve(p.a, p.b, x, f), p.vector);
}

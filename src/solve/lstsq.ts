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
 * **Fewer equations than unknowns** (m < n). The solutions of A·x = b form an affine space, and
 * the least-squares answer is its shortest point, `x = Aᵀ(AAᵀ)⁻¹b = A⁺b` (as numpy's `lstsq` and
 * torch's `driver="gelsd"` return; LAPACK's gels computes it the same way). The rank test and the
 * factorisation move to the rows: `Aᵀ = Q·R` (an LQ factorisation of A, `A = RᵀQᵀ`), the rows with
 * |Rⱼⱼ| ≤ rcond·max|Rᵢᵢ| are dependent, and `x = Q·R⁻ᵀb`. With `method: "normal"` the Cholesky
 * factor is that of AAᵀ. A regularization μ > 0 gives `(AᵀA + μI)⁻¹Aᵀb = Aᵀ(AAᵀ + μI)⁻¹b`, which
 * is computed in the second form (an m × m factorisation, of `[Aᵀ; √μ I]` with QR).
 *
 * **Minimum norm** (`minNorm: true`): with S the independent columns, A = A_S·C for the
 * coefficients C `[r, n]` of every column in the basis A_S (C = A_S⁺A). The least-squares
 * solutions are the x with C·x = y, y = A_S⁺b, and the shortest is `x = Cᵀ(CCᵀ)⁻¹y` — A⁺b. Both y
 * and C come from one QR solve of `[A_S; s·E] [y, C] = [b, A; 0, 0]` (E puts a unit on each
 * dropped column so the system keeps full rank), and CCᵀ ⪰ I (C holds an identity on S), so the
 * last solve is well conditioned. Differentiable in A and b (at constant rank). With m < n the
 * columns are chosen from the QR of A over n − m zero rows (the same column geometry).
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
   * `method: "normal"`, Lⱼⱼ² ≤ rcond·max Lᵢᵢ² of AᵀA = LLᵀ); with m < n, a row (of Aᵀ = QR, or
   * AAᵀ = LLᵀ). Default max(m, n)·ε of the dtype.
   */
  rcond?: number;
  /**
   * For a rank-deficient A (and μ = 0): return the minimum-norm solution A⁺b (as numpy's `lstsq`
   * or torch's `driver="gelsd"`) instead of raising a `SingularMatrixError`. Default false. (An A
   * with m < n of full row rank needs no option: its solution is the minimum-norm one.)
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

/**
 * R `[..., n, n]` of the thin QR of `a` `[..., m, n]` (not recorded); with m < n, of A over n − m
 * zero rows, whose |Rⱼⱼ| measure the columns of A alike.
 */
function rFactor(a: Tensor): Tensor {
  const [m, n] = a.shape.slice(-2);
  const batch = a.shape.slice(0, -2);
  const sq = m < n ? concat([a, zeros([...batch, n - m, n], { dtype: a.dtype, backend: a.backend })], -2) : a;
  const res = linalgOf("lstsq", sq).qr(sq, sq.dtype);
  Tensor.fromBuffer(res.q, [...sq.shape], sq.dtype).dispose();
  if (sq !== a) sq.dispose();
  return Tensor.fromBuffer(res.r, [...batch, n, n], a.dtype);
}

/**
 * The numerical rank of each matrix of A `[..., m, n]`, int32 `[...batch]`: the number of columns
 * with |Rⱼⱼ| > rcond·max|Rᵢᵢ| in A = QR (see the module notes) — of rows, from Aᵀ = QR, when
 * m < n. Not differentiable.
 *
 * @example
 * ```ts
 * import { matrixRank } from "./lstsq.ts";
 * import { tensor } from "../tensor/mod.ts";
 * matrixRank(tensor([[1, 2], [2, 4], [3, 6]], { dtype: "float64" })).item(); // 1
 * matrixRank(tensor([[1, 2, 3], [2, 4, 6]], { dtype: "float64" })).item(); // 1
 * ```
 */
export function matrixRank(a: Tensor, options: MatrixRankOptions = {}): Tensor {
  const op = "matrixRank";
  if (checkTensor(op, "A", a).ndim < 2) {
    throw new ShapeError(op, `needs a matrix [..., m, n], got ${fmtShape(a.shape)}`);
  }
  const [m, n] = a.shape.slice(-2);
  const dtype = solveDType(op, a);
  const tol = cutoff(op, options.rcond, m, n, dtype);
  return tidy(() =>
    noGrad(() => {
      const aa = a.detach().cast(dtype);
      return independent(diagonalView(rFactor(m < n ? transpose(aa) : aa)), tol).sum(-1).cast("int32");
    })
  );
}

// ------------------------------------------------------------------------------------- full rank

/** A factor of the Gram matrix G = AᵀA + μI: G = RᵀR (QR) or G = LLᵀ (normal equations). */
type GramFactor = { kind: "qr"; r: Tensor } | { kind: "cholesky"; l: Tensor };

function factorOf(f: GramFactor): Tensor {
  return f.kind === "qr" ? f.r : f.l;
}

function rawGramSolve(f: GramFactor, v: Tensor): Tensor {
  return tidy(() => {
    if (f.kind === "qr") return rawTriangular(f.r, rawTriangular(f.r, v, false, true, false), false, false, false);
    return rawTriangular(f.l, rawTriangular(f.l, v, true, false, false), true, true, false);
  });
}

/** `z = (AᵀA + μI)⁻¹ v`, recorded with inputs A and v (differentiable in both). */
function gramSolve(a: Tensor, f: GramFactor, v: Tensor): Tensor {
  const z = rawGramSolve(f, v);
  return record("gramSolve", z, [a, v], [z, factorOf(f)], (g, needs) => {
    const gv = gramSolve(a, f, g);
    let ga: Tensor | null = null;
    if (needs[0]) {
      const gg = matmul(gv, transpose(z)).neg(); // Ḡ = −v̄ zᵀ
      ga = matmul(a, gg.add(transpose(gg)));
    }
    return [ga, needs[1] ? gv : null];
  });
}

/**
 * The solve and its rank flags (not yet checked), for A of full rank (or μ > 0). With m ≥ n the
 * factor is of AᵀA + μI and the flags are A's columns; with m < n (`dual`) it is of AAᵀ + μI and
 * the flags are A's rows (see the module notes).
 */
function factorSolve(
  a: Tensor,
  b: Tensor,
  batch: number[],
  method: "qr" | "normal",
  mu: number,
  tol: number,
): { x: Tensor; f: GramFactor; keep: Tensor } {
  const dual = a.shape[a.ndim - 2] < a.shape[a.ndim - 1];
  return tidy(() =>
    noGrad(() => {
      const c = dual ? transpose(a) : a; // G = CᵀC + μI
      const [rows, n] = c.shape.slice(-2);
      if (method === "qr") {
        let cc = c;
        if (mu > 0) {
          const eye = constantMatrix("eye", n, c.dtype, c.backend).mul(Math.sqrt(mu));
          cc = concat([c, expand(eye, [...batch, n, n])], -2);
        }
        const res = linalgOf("lstsq", cc).qr(cc, cc.dtype);
        // C = Q₁R with Q₁ the first rows of Q: x = R⁻¹Q₁ᵀb, or with m < n (A = RᵀQ₁ᵀ) x = Q₁R⁻ᵀb.
        const q = Tensor.fromBuffer(res.q, [...batch, cc.shape[cc.ndim - 2], n], cc.dtype).narrow(-2, 0, rows);
        const r = Tensor.fromBuffer(res.r, [...batch, n, n], cc.dtype);
        const x = dual
          ? matmul(q, rawTriangular(r, b, false, true, false))
          : rawTriangular(r, matmul(transpose(q), b), false, false, false);
        return { x, f: { kind: "qr", r } as GramFactor, keep: independent(diagonalView(r), tol) };
      }
      const g = withRegularization(matmul(transpose(c), c), mu);
      const { factor, info } = rawCholesky(g);
      const f: GramFactor = { kind: "cholesky", l: factor };
      const x = dual ? matmul(c, rawGramSolve(f, b)) : rawGramSolve(f, matmul(transpose(c), b));
      // Lⱼⱼ² is the pivot of G = CᵀC: the squared condition number loses the square of the cut-off.
      // Where the factorisation broke down at column info − 1, the columns from there on count as dependent.
      const limit = where(info.gt(0), info.sub(1), n).cast(a.dtype).unsqueeze(-1);
      const before = arange(0, n, 1, { dtype: a.dtype, backend: a.backend }).lt(limit).cast(a.dtype);
      const keep = independent(diagonalView(factor).square(), tol).mul(before);
      return { x, f, keep };
    })
  );
}

/** x of m ≥ n recorded: z = (AᵀA + μI)⁻¹x̄, b̄ = Az, Ā = (b − Ax)zᵀ − Azxᵀ. */
function recordedSolve(a: Tensor, b: Tensor, x: Tensor, f: GramFactor): Tensor {
  return record("lstsq", x, [a, b], [x, factorOf(f)], (g, needs) => {
    const z = gramSolve(a, f, g);
    const az = matmul(a, z);
    let ga: Tensor | null = null;
    if (needs[0]) ga = matmul(b.sub(matmul(a, x)), transpose(z)).sub(matmul(az, transpose(x)));
    return [ga, needs[1] ? az : null];
  });
}

/**
 * x = Aᵀy, (AAᵀ + μI)y = b (m < n) recorded: w = (AAᵀ + μI)⁻¹Ax̄, b̄ = w,
 * Ā = y(x̄ − Aᵀw)ᵀ − wxᵀ (x̄ − Aᵀw is x̄'s part in A's null space when μ = 0).
 */
function recordedDualSolve(a: Tensor, b: Tensor, x: Tensor, f: GramFactor): Tensor {
  return record("lstsq", x, [a, b], [x, factorOf(f)], (g, needs) => {
    const at = transpose(a);
    const w = gramSolve(at, f, matmul(a, g));
    let ga: Tensor | null = null;
    if (needs[0]) {
      const y = gramSolve(at, f, b);
      ga = matmul(y, transpose(g.sub(matmul(at, w)))).sub(matmul(w, transpose(x)));
    }
    return [ga, needs[1] ? w : null];
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
 * Least squares `x = argmin ‖A·x − b‖² + μ‖x‖²` for A `[..., m, n]`, b `[..., m, k]` (or `[m]`);
 * differentiable in A and b, batched over the leading axes (which broadcast). `method: "qr"`
 * (default) or `"normal"` (Cholesky of AᵀA + μI). With m < n (fewer equations than unknowns) and
 * full row rank, the result is the minimum-norm solution `Aᵀ(AAᵀ)⁻¹b` of A·x = b, as numpy's
 * `lstsq` and torch's gelsd driver give (an LQ factorisation, see the module notes). A
 * rank-deficient A (numerical rank below min(m, n)) with μ = 0 raises a `SingularMatrixError`
 * naming the batch entries and their ranks, or with `minNorm: true` gives the minimum-norm
 * solution A⁺b.
 *
 * @example
 * ```ts
 * import { lstsq } from "./lstsq.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const a = tensor([[1, 0], [0, 1], [1, 1]]);
 * lstsq(a, tensor([1, 1, 3])).toArray(); // [1.333…, 1.333…]
 * const deficient = tensor([[1, 2], [2, 4], [3, 6]], { dtype: "float64" });
 * lstsq(deficient, tensor([1, 0, 0], { dtype: "float64" }), { minNorm: true }).toArray(); // [1/70, 2/70]
 * // One equation, two unknowns: the shortest x with x₀ + x₁ = 2.
 * lstsq(tensor([[1, 1]]), tensor([2])).toArray(); // [1, 1]
 * ```
 */
export function lstsq(a: Tensor, b: Tensor, options: LstsqOptions = {}): Tensor {
  const op = "lstsq";
  if (checkTensor(op, "A", a).ndim < 2) {
    throw new ShapeError(op, `needs a matrix [..., m, n], got ${fmtShape(a.shape)}`);
  }
  const [m, n] = a.shape.slice(-2);
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
  const dual = m < n;
  const full = Math.min(m, n);
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
  const deficient = mu === 0 && (check || options.minNorm) ? noGrad(() => ranks.lt(full).max().item()) > 0 : false;
  if (deficient && options.minNorm) {
    for (const t of [x, ranks, factorOf(f)]) t.dispose();
    // keep flags rows when m < n; the minimum-norm construction needs the independent columns.
    const columns = dual ? noGrad(() => tidy(() => independent(diagonalView(rFactor(p.a.detach())), tol))) : keep;
    if (dual) keep.dispose();
    const out = minimumNorm(p.a, p.b, columns, p.batch);
    columns.dispose();
    return finish(out, p.vector);
  }
  if (deficient) {
    const host = ranks.toTypedArray();
    for (const t of [x, ranks, keep, factorOf(f)]) t.dispose();
    const bad = [...host.keys()].filter((i) => host[i] < full);
    const where = p.batch.length === 0
      ? "the matrix"
      : `batch entries [${bad.slice(0, 16).join(", ")}] of batch shape ${fmtShape(p.batch)}`;
    const test = method === "qr"
      ? `|Rⱼⱼ| ≤ rcond·max|Rᵢᵢ| in ${dual ? "Aᵀ" : "A"} = QR`
      : `Lⱼⱼ² ≤ rcond·max Lᵢᵢ² in ${dual ? "AAᵀ" : "AᵀA"} = LLᵀ`;
    throw new SingularMatrixError(
      op,
      bad,
      `A is rank deficient: ${where} ha${bad.length === 1 && p.batch.length === 0 ? "s" : "ve"} numerical rank ${
        bad.slice(0, 16).map((i) => host[i]).join(", ")
      } < ${dual ? `m = ${m}` : `n = ${n}`} (${test}, rcond = ${
        tol.toExponential(1)
      }); pass minNorm: true for the minimum-norm solution, or a regularization μ > 0`,
    );
  }
  for (const t of [ranks, keep]) t.dispose();
  return finish((dual ? recordedDualSolve : recordedSolve)(p.a, p.b, x, f), p.vector);
}

/**
 * Rank and singularity thresholds of src/solve, on matrices whose rank is known by construction
 * (A = B·C with B `[m, r]` and C `[r, n]`, plus perturbations far below or far above the cut-off):
 * lstsq raises for a rank-deficient A naming its rank, or returns the minimum-norm solution, which
 * is checked against closed forms and against the pseudo-inverse of the full-rank factorisation,
 * A⁺ = Cᵀ(CCᵀ)⁻¹(BᵀB)⁻¹Bᵀ; every factorisation (LU, Cholesky, the normal equations, the
 * nonlinear solver's steps, the banded solver) flags the singular cases and passes the
 * ill-conditioned but regular ones.
 */

import assert from "node:assert/strict";
import { gradcheck, randn, type Tensor, tensor } from "../mod.ts";
import {
  BacktrackingLineSearch,
  BandedCholesky,
  choleskySolve,
  GaussNewton,
  leastSquares,
  lstsq,
  matrixRank,
  type ResidualFn,
  SingularMatrixError,
  solve,
} from "../src/solve/mod.ts";
import { assertClose } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;

/** A = B·C of rank r (B `[..., m, r]`, C `[..., r, n]`, seeded normals), with its factors. */
function lowRank(batch: number[], m: number, n: number, r: number, seed: number) {
  const b = randn([...batch, m, r], { ...f64, seed });
  const c = randn([...batch, r, n], { ...f64, seed: seed + 1 });
  return { a: b.matmul(c), b, c };
}

/** A⁺y from the full-rank factorisation A = B·C, by two square solves. */
function pinvApply(b: Tensor, c: Tensor, y: Tensor): Tensor {
  const bt = b.transpose();
  const inner = solve(bt.matmul(b), bt.matmul(y));
  return c.transpose().matmul(solve(c.matmul(c.transpose()), inner));
}

Deno.test("lstsq: a rank-deficient A raises naming its numerical rank, or gives the minimum-norm A⁺b", () => {
  // Column 2 = 2 × column 1: A = a·[1, 2] with a = (1, 2, 3), A⁺ = [1, 2]ᵀ aᵀ / (‖a‖²·5).
  const a = tensor([[1, 2], [2, 4], [3, 6]], f64);
  const b = tensor([1, 0, 0], f64);
  for (const method of ["qr", "normal"] as const) {
    assert.throws(() => lstsq(a, b, { method }), (e: unknown) => {
      assert.ok(e instanceof SingularMatrixError, String(e));
      assert.match(e.message, /numerical rank 1 < n = 2/);
      return true;
    });
    assertClose(lstsq(a, b, { method, minNorm: true }), [1 / 70, 2 / 70], { rtol: 1e-12 }, `${method} minimum norm`);
  }
  assert.equal(matrixRank(a).item(), 1);
  // A zero matrix: rank 0, A⁺b = 0.
  const zero = tensor([[0, 0], [0, 0], [0, 0]], f64);
  assert.equal(matrixRank(zero).item(), 0);
  assert.deepEqual(lstsq(zero, b, { minNorm: true }).toArray(), [0, 0]);
});

Deno.test("lstsq minNorm equals the pseudo-inverse of the full-rank factorisation, and differentiates along it", () => {
  const { a, b: bf, c } = lowRank([2], 7, 5, 3, 11);
  const y = randn([2, 7, 2], { ...f64, seed: 13 });
  assert.deepEqual(Array.from(matrixRank(a).toTypedArray()), [3, 3]);
  assert.throws(() => lstsq(a, y), SingularMatrixError);
  const expected = pinvApply(bf, c, y);
  assertClose(lstsq(a, y, { minNorm: true }), expected, { rtol: 1e-9, scale: "max" }, "qr");
  assertClose(lstsq(a, y, { minNorm: true, method: "normal" }), expected, { rtol: 1e-9, scale: "max" }, "normal");
  // Gradients with respect to the factors keep the rank fixed, so finite differences are valid.
  const b1 = bf.narrow(0, 0, 1).reshape([7, 3]);
  const c1 = c.narrow(0, 0, 1).reshape([3, 5]);
  const y1 = y.narrow(0, 0, 1).reshape([7, 2]);
  gradcheck((p, q, v) => lstsq(p.matmul(q), v, { minNorm: true }), [b1, c1, y1]);
});

Deno.test("rank cut-off: perturbations far below it keep the constructed rank, far above it make A full rank", () => {
  const { a } = lowRank([], 8, 5, 2, 21);
  const e = randn([8, 5], { ...f64, seed: 23 });
  const scale = a.abs().max().item();
  assert.equal(matrixRank(a.add(e.mul(1e-18 * scale))).item(), 2);
  assert.equal(matrixRank(a.add(e.mul(1e-6 * scale))).item(), 5);
  // An explicit rcond moves the cut-off.
  assert.equal(matrixRank(a.add(e.mul(1e-6 * scale)), { rcond: 1e-3 }).item(), 2);
  // Full rank but ill-conditioned (σ ratio ~1e-8, well above max(m, n)·ε): solved, not refused.
  const ill = a.add(e.mul(1e-8 * scale));
  const x = lstsq(ill, randn([8], { ...f64, seed: 25 }));
  assert.ok(Array.from(x.toTypedArray()).every(Number.isFinite));
});

Deno.test("LU and Cholesky solves flag singular matrices of known rank and pass ill-conditioned regular ones", () => {
  // Square A = B·C of rank 4 < 5 (plus a perturbation far below n·ε): LU refuses it.
  const { a } = lowRank([], 5, 5, 4, 31);
  const e = randn([5, 5], { ...f64, seed: 33 });
  const rhs = randn([5], { ...f64, seed: 35 });
  assert.throws(() => solve(a.add(e.mul(1e-19)), rhs), SingularMatrixError);
  // X·Xᵀ with X [5, 4]: positive semi-definite of rank 4; Cholesky refuses it.
  const x = randn([5, 4], { ...f64, seed: 37 });
  assert.throws(() => choleskySolve(x.matmul(x.transpose()), rhs), SingularMatrixError);
  // Regular with condition ~1e9: both solve it.
  const regular = a.add(e.mul(1e-9 * a.abs().max().item()));
  assert.ok(Array.from(solve(regular, rhs).toTypedArray()).every(Number.isFinite));
  const spd = x.matmul(x.transpose()).add(
    tensor([[1, 0, 0, 0, 0]], f64).transpose().matmul(tensor([[1, 0, 0, 0, 0]], f64)).mul(1e-6),
  );
  const z = choleskySolve(spd, rhs);
  assertClose(spd.matmul(z.reshape([5, 1])).reshape([5]), rhs, { rtol: 1e-5, scale: "max" }, "Cholesky residual");
});

Deno.test("the nonlinear solver's steps: a rank-deficient J is 'singular' without regularization, regularized with it", () => {
  // r = A·w − y with A of rank 2 < 3: the Gauss–Newton system JᵀJ = AᵀA is singular.
  const { a } = lowRank([1], 6, 3, 2, 41);
  const y = randn([1, 6], { ...f64, seed: 43 });
  const res: ResidualFn<{ y: Tensor }> = (w, p) => a.matmul(w.unsqueeze(-1)).squeeze(-1).sub(p.y);
  const w0 = tensor([[0, 0, 0]], f64);
  const off = leastSquares(res, w0, { y }, { solver: new GaussNewton({ regularization: 0 }) });
  assert.deepEqual(off.status, ["singular"]);
  const on = leastSquares(res, w0, { y }, { solver: new GaussNewton() });
  assert.deepEqual(on.regularized, [true]);
  assert.notEqual(on.status[0], "singular");
  assert.ok(Array.from(on.value.toTypedArray()).every(Number.isFinite));
});

Deno.test("BandedCholesky flags the singular Neumann Laplacian and factors the Dirichlet one", () => {
  // Tridiagonal −u'' on 6 points: with Neumann ends (row sums 0) the constants are its null space.
  const n = 6;
  const band = (neumann: boolean) =>
    tensor(
      [Array.from({ length: n }, (_, j) => [neumann && (j === 0 || j === n - 1) ? 1 : 2, j === 0 ? 0 : -1])],
      f64,
    );
  const solver = new BandedCholesky({ bandwidth: 1 });
  assert.deepEqual(solver.factor(band(true)).bad.toArray(), [1]);
  const dirichlet = solver.factor(band(false));
  assert.deepEqual(dirichlet.bad.toArray(), [0]);
  const rhs = tensor([[1, 0, 0, 0, 0, 1]], f64);
  assertClose(dirichlet.solve(band(false), rhs), [[1, 1, 1, 1, 1, 1]], { rtol: 1e-12 }, "−u'' = boundary data");
});

Deno.test("the linear solve is an option: Gauss–Newton with a banded Cholesky matches the dense one", () => {
  // r = T·w + 0.1·w³ − y with T tridiagonal: J = T + 0.3·diag(w²) is tridiagonal, JᵀJ has bandwidth 2.
  const n = 8;
  const t = tensor(
    Array.from(
      { length: n },
      (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 3 : Math.abs(i - j) === 1 ? -1 : 0)),
    ),
    f64,
  );
  const y = randn([2, n], { ...f64, seed: 51 });
  const res: ResidualFn<{ y: Tensor }> = (w, p) => w.matmul(t).add(w.pow(3).mul(0.1)).sub(p.y);
  const jac = (w: Tensor) => t.add(w.square().mul(0.3).unsqueeze(-1).mul(eyeOf(n))); // [B, n, n]
  const band = (w: Tensor) => {
    const jtj = jac(w).transpose().matmul(jac(w)).toTypedArray();
    return tensor(
      [0, 1].map((b) =>
        Array.from({ length: n }, (_, i) => [0, 1, 2].map((k) => (i - k >= 0 ? jtj[(b * n + i) * n + i - k] : 0)))
      ),
      f64,
    );
  };
  const w0 = tensor([new Array(n).fill(0), new Array(n).fill(0)], f64);
  const dense = leastSquares(res, w0, { y }, { solver: new GaussNewton({ atol: 1e-12, rtol: 1e-12 }) });
  for (const search of [undefined, new BacktrackingLineSearch()]) {
    const banded = leastSquares(res, w0, { y }, {
      solver: new GaussNewton({ atol: 1e-12, rtol: 1e-12, search, linearSolver: new BandedCholesky({ bandwidth: 2 }) }),
      jacobian: {
        normalEquations: (w, r) => ({ jtj: band(w), jtr: jac(w).transpose().matmul(r.unsqueeze(-1)).squeeze(-1) }),
      },
    });
    assert.deepEqual(banded.status, ["converged", "converged"]);
    assertClose(banded.value, dense.value, { rtol: 1e-10, scale: "max" }, `banded (${search?.kind ?? "full steps"})`);
  }
});

/** The n × n identity as a tensor. */
function eyeOf(n: number): Tensor {
  return tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))), f64);
}

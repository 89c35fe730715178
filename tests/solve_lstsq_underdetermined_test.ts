/**
 * lstsq with fewer equations than unknowns (A `[..., m, n]`, m < n): the minimum-norm solution
 * x = Aᵀ(AAᵀ)⁻¹b checked against the normal equations solved on the host (plain JavaScript
 * Gaussian elimination in float64) and against jax-js's `linalg.lstsq` (values and gradients);
 * A·x = b; x orthogonal to a null space built by hand; gradients by float64 finite differences
 * (first and second order, batched, broadcast); the Tikhonov solution (AᵀA + μI)⁻¹Aᵀb; rank
 * deficiency (the typed error naming the rank, or A⁺b with `minNorm`); and typed errors for bad
 * input. Inputs come from a seeded host stream, so they do not depend on the backend.
 */

import assert from "node:assert/strict";
import { defaultDevice, init, numpy as np, valueAndGrad } from "@jax-js/jax";
import { ArgumentError, DTypeError, gradcheck, ShapeError, type Tensor, tensor } from "../mod.ts";
import { lstsq, matrixRank, SingularMatrixError } from "../src/solve/mod.ts";
import { assertClose, assertRaises, numel, randomData } from "./helpers.ts";

// jax-js's "cpu" device evaluates in JavaScript's float64 arithmetic.
await init();
defaultDevice("cpu");

type Mat = number[][];

/** A float64 tensor of `shape` filled from the seeded host stream on [-1, 1). */
function random(shape: number[], seed: number, dtype: "float32" | "float64" = "float64"): Tensor {
  return tensor(Float64Array.from(randomData(numel(shape), seed, -1, 1)), { shape, dtype });
}

/** Matrix `i` of a `[batch, r, c]` (or `[r, c]`) tensor, as rows of numbers. */
function rows(t: Tensor, i = 0): Mat {
  const [r, c] = t.shape.slice(-2);
  const d = t.toTypedArray();
  return Array.from({ length: r }, (_, j) => Array.from(d.subarray((i * r + j) * c, (i * r + j + 1) * c)));
}

function mul(x: Mat, y: Mat): Mat {
  return x.map((row) => y[0].map((_, j) => row.reduce((s, v, k) => s + v * y[k][j], 0)));
}

function tr(x: Mat): Mat {
  return x[0].map((_, j) => x.map((row) => row[j]));
}

/** M⁻¹B by Gaussian elimination with partial pivoting (host float64, nothing of ours). */
function hostSolve(m: Mat, b: Mat): Mat {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...b[i]]);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i][k]) > Math.abs(a[p][k])) p = i;
    [a[k], a[p]] = [a[p], a[k]];
    for (let i = k + 1; i < n; i++) {
      const f = a[i][k] / a[k][k];
      for (let j = k; j < a[i].length; j++) a[i][j] -= f * a[k][j];
    }
  }
  const x: Mat = b.map((row) => row.map(() => 0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = 0; j < b[0].length; j++) {
      let s = a[i][n + j];
      for (let k = i + 1; k < n; k++) s -= a[i][k] * x[k][j];
      x[i][j] = s / a[i][i];
    }
  }
  return x;
}

/** The minimum-norm solution of A·x = b from the normal equations of the rows: Aᵀ(AAᵀ)⁻¹b. */
function hostMinNorm(a: Mat, b: Mat): Mat {
  return mul(tr(a), hostSolve(mul(a, tr(a)), b));
}

function jaxArray(m: Mat): np.Array {
  return np.array(Float64Array.from(m.flat()), { dtype: np.float64 }).reshape([m.length, m[0].length]);
}

/** jax-js's lstsq of one matrix. */
function jaxLstsq(a: Mat, b: Mat): Float64Array {
  return np.linalg.lstsq(jaxArray(a), jaxArray(b)).dataSync() as Float64Array;
}

/** jax-js's gradients of Σ W⊙lstsq(A, b) with respect to A and b. */
function jaxLstsqGrad(a: Mat, b: Mat, w: Mat): { ga: Float64Array; gb: Float64Array } {
  const loss = (p: { a: np.Array; b: np.Array }) => np.linalg.lstsq(p.a, p.b).mul(jaxArray(w)).sum();
  const [, g] = valueAndGrad(loss)({ a: jaxArray(a), b: jaxArray(b) });
  const grads = g as { a: np.Array; b: np.Array };
  return { ga: grads.a.dataSync() as Float64Array, gb: grads.b.dataSync() as Float64Array };
}

Deno.test("lstsq with m < n: the minimum-norm solution, as the host normal equations and jax-js give it", () => {
  const a = random([3, 4, 7], 1);
  const b = random([3, 4, 2], 2);
  for (const method of ["qr", "normal"] as const) {
    const x = lstsq(a, b, { method });
    assert.deepEqual(x.shape, [3, 7, 2]);
    for (let i = 0; i < 3; i++) {
      const xi = rows(x, i);
      assertClose(xi, hostMinNorm(rows(a, i), rows(b, i)), { rtol: 1e-12, scale: "max" }, `${method} entry ${i}`);
      assertClose(xi, jaxLstsq(rows(a, i), rows(b, i)), { rtol: 1e-12, scale: "max" }, "jax-js");
      // A·x = b to rounding.
      assertClose(mul(rows(a, i), xi), rows(b, i), { atol: 1e-14 }, `${method} A·x = b (entry ${i})`);
    }
    // float32: the same solution to float32 rounding.
    const x32 = lstsq(a.cast("float32"), b.cast("float32"), { method });
    assert.equal(x32.dtype, "float32");
    assertClose(x32, x, { rtol: method === "qr" ? 2e-5 : 2e-4, scale: "max" }, `${method} float32`);
  }
  // A vector b gives a vector x; A broadcast over b's batch matches each entry solved alone.
  const v = lstsq(a.narrow(0, 1, 1).reshape([4, 7]), tensor([1, -2, 0.5, 3], { dtype: "float64" }));
  assert.deepEqual(v.shape, [7]);
  assertClose(
    mul(rows(a, 1), Array.from(v.toTypedArray(), (e) => [e])),
    [[1], [-2], [0.5], [3]],
    { atol: 1e-14 },
    "A·x",
  );
  const shared = lstsq(a.narrow(0, 0, 1).reshape([4, 7]), b);
  for (let i = 0; i < 3; i++) {
    assertClose(rows(shared, i), hostMinNorm(rows(a, 0), rows(b, i)), { rtol: 1e-12, scale: "max" }, "broadcast");
  }
  // One equation in two unknowns: the shortest x on the line x₀ + x₁ = 2 is (1, 1).
  assertClose(lstsq(tensor([[1, 1]], { dtype: "float64" }), tensor([2], { dtype: "float64" })), [1, 1], {
    rtol: 1e-15,
  }, "x₀ + x₁ = 2");
});

Deno.test("lstsq with m < n: x is orthogonal to A's null space (built by hand), so it is the shortest solution", () => {
  // A = G·(I − N(NᵀN)⁻¹Nᵀ): the columns of N [7, 3] span A's null space (A is 4 × 7 of rank 4).
  const g = rows(random([4, 7], 11));
  const nul = rows(random([7, 3], 12));
  const proj = mul(nul, hostSolve(mul(tr(nul), nul), tr(nul)));
  const a = mul(g, proj.map((row, i) => row.map((v, j) => (i === j ? 1 : 0) - v)));
  assertClose(mul(a, nul), [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], { atol: 1e-14 }, "A·N = 0");
  const at = tensor(a, { dtype: "float64" });
  const b = random([4, 3], 13);
  for (const method of ["qr", "normal"] as const) {
    const x = lstsq(at, b, { method });
    const xs = rows(x);
    const norm = Math.sqrt(xs.flat().reduce((s, v) => s + v * v, 0));
    assertClose(mul(tr(nul), xs), [[0, 0, 0], [0, 0, 0], [0, 0, 0]], { atol: 1e-14 * norm }, `${method} Nᵀx = 0`);
    // The normal equations square the condition number: here κ(A) ≈ 51 (κ² ≈ 2.6·10³).
    assertClose(mul(a, xs), rows(b), { atol: method === "qr" ? 1e-14 : 1e-12 }, `${method} A·x = b`);
    // Any other solution x + N·c is longer.
    const c = [[0.3, -0.1, 0.2], [0.5, 0.4, -0.7], [-0.2, 0.1, 0.6]];
    const other = mul(nul, c).map((row, i) => row.map((v, j) => v + xs[i][j]));
    for (let j = 0; j < 3; j++) {
      const len = (m: Mat) => m.reduce((s, row) => s + row[j] * row[j], 0);
      assert.ok(len(other) > len(xs), `${method}: column ${j} is not the shortest solution`);
    }
  }
});

Deno.test("lstsq with m < n: gradients by finite differences and against jax-js", () => {
  // Unbatched with a vector b, first and second order, both methods.
  const a = random([3, 5], 21);
  const v = random([3], 22);
  gradcheck((p, q) => lstsq(p, q), [a, v], { secondOrder: true });
  gradcheck((p, q) => lstsq(p, q, { method: "normal" }), [a, v], { secondOrder: true });
  // Batched, several right-hand sides; A broadcast over b's batch.
  const ab = random([2, 3, 6], 23);
  const bb = random([2, 3, 2], 24);
  gradcheck((p, q) => lstsq(p, q), [ab, bb], { secondOrder: true });
  gradcheck((p, q) => lstsq(p, q, { method: "normal" }), [ab, bb]);
  gradcheck((p, q) => lstsq(p, q), [a, random([4, 3, 2], 25)]);
  // The same gradients as jax-js's lstsq (its normal equations), entry by entry.
  const w = random([2, 6, 2], 26);
  const ag = ab.detach().requireGrad();
  const bg = bb.detach().requireGrad();
  lstsq(ag, bg).mul(w).sum().backward();
  for (let i = 0; i < 2; i++) {
    const theirs = jaxLstsqGrad(rows(ab, i), rows(bb, i), rows(w, i));
    assertClose(rows(ag.grad!, i), theirs.ga, { rtol: 1e-11, scale: "max" }, `Ā of entry ${i}`);
    assertClose(rows(bg.grad!, i), theirs.gb, { rtol: 1e-11, scale: "max" }, `b̄ of entry ${i}`);
  }
});

Deno.test("lstsq with m < n and μ > 0: the Tikhonov solution (AᵀA + μI)⁻¹Aᵀb, also for a rank-deficient A", () => {
  const full = random([2, 3, 6], 31);
  // Entry 1 of `deficient` has rank 1 (every row a multiple of the first).
  const r = rows(random([1, 6], 32))[0];
  const deficient = tensor([rows(full, 0), [r, r.map((e) => 2 * e), r.map((e) => -e)]], { dtype: "float64" });
  const b = random([2, 3, 2], 33);
  const mu = 0.3;
  for (const a of [full, deficient]) {
    for (const method of ["qr", "normal"] as const) {
      const x = lstsq(a, b, { method, regularization: mu });
      for (let i = 0; i < 2; i++) {
        const ai = rows(a, i);
        const gram = mul(tr(ai), ai).map((row, j) => row.map((e, k) => e + (j === k ? mu : 0)));
        const ridge = hostSolve(gram, mul(tr(ai), rows(b, i))); // the n × n form, not the one computed
        assertClose(rows(x, i), ridge, { rtol: 1e-12, scale: "max" }, `${method} μ = ${mu}, entry ${i}`);
      }
    }
    gradcheck((p, q) => lstsq(p, q, { regularization: mu }), [a, b], { secondOrder: true });
  }
});

Deno.test("lstsq with m < n and dependent rows raises naming the rank, or with minNorm gives A⁺b", () => {
  // A = u·vᵀ with u = (1, 2), v = (1, 2, 3): A⁺ = v·uᵀ / (‖u‖²‖v‖²), A⁺(1, 0) = v / 70.
  const a = tensor([[1, 2, 3], [2, 4, 6]], { dtype: "float64" });
  const b = tensor([1, 0], { dtype: "float64" });
  for (const method of ["qr", "normal"] as const) {
    assertRaises(() => lstsq(a, b, { method }), SingularMatrixError, "lstsq", "numerical rank 1 < m = 2", "minNorm");
    assertClose(lstsq(a, b, { method, minNorm: true }), [1 / 70, 2 / 70, 3 / 70], { rtol: 1e-12 }, `${method} A⁺b`);
  }
  assert.equal(matrixRank(a).item(), 1);
  // A batch whose entry 1 has rank 2 < m = 4 (A = B·C, B [4, 2], C [2, 7]).
  const bf = rows(random([4, 2], 41));
  const cf = rows(random([2, 7], 42));
  const low = mul(bf, cf);
  const full = random([2, 4, 7], 43);
  const batch = tensor([rows(full, 0), low, rows(full, 1)], { dtype: "float64" });
  const y = random([3, 4, 2], 44);
  assert.deepEqual(Array.from(matrixRank(batch).toTypedArray()), [4, 2, 4]);
  assert.throws(() => lstsq(batch, y), (e: unknown) => {
    assert.ok(e instanceof SingularMatrixError, String(e));
    assert.deepEqual(e.indices, [1]);
    assert.match(
      e.message,
      /^lstsq: A is rank deficient: batch entries \[1\] of batch shape \[3\] have numerical rank 2 < m = 4/,
    );
    return true;
  });
  const x = lstsq(batch, y, { minNorm: true });
  // A⁺ = Cᵀ(CCᵀ)⁻¹(BᵀB)⁻¹Bᵀ for the full-rank factorisation; the full-rank entries are Aᵀ(AAᵀ)⁻¹b.
  const pinv = mul(tr(cf), hostSolve(mul(cf, tr(cf)), hostSolve(mul(tr(bf), bf), mul(tr(bf), rows(y, 1)))));
  assertClose(rows(x, 1), pinv, { rtol: 1e-10, scale: "max" }, "A⁺b of the rank-2 entry");
  // The full-rank entries go through the rank-revealing path too (two QR factorisations of a
  // 7 × 7 padding): backward-stable to a few hundred ε relative to the largest entry — 1.4e-12
  // measured on an H200, whose Householder reflections sum in another order than the host's.
  for (const i of [0, 2]) {
    assertClose(rows(x, i), hostMinNorm(rows(batch, i), rows(y, i)), { rtol: 1e-11, scale: "max" }, `entry ${i}`);
  }
  // Differentiable along the factors (the rank stays 2, so finite differences are valid).
  gradcheck(
    (p, q, r) => lstsq(p.matmul(q), r, { minNorm: true }),
    [tensor(bf, { dtype: "float64" }), tensor(cf, { dtype: "float64" }), random([4, 2], 45)],
  );
});

Deno.test("lstsq with m < n: bad shapes, dtypes and options are typed errors naming the op", () => {
  const a = random([2, 3], 51);
  assertRaises(() => lstsq(a, random([3], 52)), ShapeError, "lstsq", "[2,3]", "[3]", "A has 2 rows, b has 3");
  assertRaises(() => lstsq(random([2, 3, 5], 53), random([4, 3, 1], 54)), ShapeError, "lstsq", "[2]", "[4]");
  assertRaises(() => lstsq(random([3], 55), random([3], 56)), ShapeError, "lstsq", "[3]");
  assertRaises(() => lstsq(a.cast("int32"), random([2], 57)), DTypeError, "lstsq", "int32");
  assertRaises(() => lstsq(a, random([2], 58), { rcond: -1 }), ArgumentError, "lstsq", "rcond", "-1");
  assertRaises(() => lstsq(a, random([2], 59), { regularization: NaN }), ArgumentError, "lstsq", "regularization");
});

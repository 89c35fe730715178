/**
 * Batched dense linear algebra of src/solve/linear.ts: values against identities (A·x = b,
 * Q·R = A, L·Lᵀ = A, normal equations), gradients against float64 finite differences (first and
 * second order), and the typed errors for singular, indefinite, non-finite and mis-shaped input.
 * Runs on the default backend (PATCHWORK_BACKEND), tolerances by dtype.
 */

import assert from "node:assert/strict";
import {
  ArgumentError,
  DeviceError,
  DTypeError,
  gradcheck,
  NonFiniteError,
  randn,
  ShapeError,
  type Tensor,
  tensor,
} from "../mod.ts";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import {
  cholesky,
  choleskySolve,
  lstsq,
  lu,
  luSolve,
  qr,
  SingularMatrixError,
  solve,
  triangularSolve,
} from "../src/solve/mod.ts";
import { installHostLinalg } from "../src/backend/host_linalg.ts";
import { assertClose } from "./helpers.ts";

const TOL = { float32: 2e-4, float64: 1e-10 } as const;

/** A well-conditioned random square matrix: X + n·I. */
function wellConditioned(shape: number[], seed: number, dtype: "float32" | "float64" = "float64"): Tensor {
  const n = shape[shape.length - 1];
  const x = randn(shape, { dtype, seed });
  const eye = tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? n : 0))), {
    dtype,
  });
  return x.add(eye);
}

function spd(x: Tensor): Tensor {
  const n = x.shape[x.ndim - 1];
  const eye = tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))), {
    dtype: x.dtype,
  });
  return x.matmul(x.transpose()).add(eye.mul(n));
}

function lowerMask(n: number, dtype: "float32" | "float64"): Tensor {
  return tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (j <= i ? 1 : 0))), { dtype });
}

Deno.test("cholesky: values, L·Lᵀ = A, batched", () => {
  assertClose(cholesky(tensor([[4, 2], [2, 5]])), [2, 0, 1, 2], { rtol: TOL.float32, floor: 1 });
  for (const dtype of ["float32", "float64"] as const) {
    const a = spd(randn([3, 5, 5], { dtype, seed: 1 }));
    const l = cholesky(a);
    assert.deepEqual(l.shape, [3, 5, 5]);
    assertClose(l.matmul(l.transpose()), a, { rtol: TOL[dtype] * 10, floor: 1 }, `L·Lᵀ (${dtype})`);
    assertClose(l.mul(lowerMask(5, dtype)), l, {}, "upper triangle is zero");
  }
});

Deno.test("cholesky: gradients (first and second order) by float64 finite differences", () => {
  const x = randn([2, 4, 4], { dtype: "float64", seed: 2 });
  gradcheck((v) => cholesky(spd(v)), [x], { secondOrder: true, atol: 1e-6, rtol: 1e-5 });
});

Deno.test("triangularSolve: lower / upper / transposed / unit diagonal", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const n = 5;
    const full = wellConditioned([2, n, n], 3, dtype);
    const low = full.mul(lowerMask(n, dtype));
    const up = full.mul(lowerMask(n, dtype).transpose());
    const b = randn([2, n, 3], { dtype, seed: 4 });
    const tol = TOL[dtype] * 10;
    assertClose(low.matmul(triangularSolve(low, b)), b, { rtol: tol, floor: 1 }, "lower");
    assertClose(up.matmul(triangularSolve(up, b, { lower: false })), b, { rtol: tol, floor: 1 }, "upper");
    assertClose(
      low.transpose().matmul(triangularSolve(low, b, { transpose: true })),
      b,
      { rtol: tol, floor: 1 },
      "lowerᵀ",
    );
    assertClose(up.transpose().matmul(triangularSolve(up, b, { lower: false, transpose: true })), b, {
      rtol: tol,
      floor: 1,
    }, "upperᵀ");
    // Only the named triangle is read: garbage above the diagonal changes nothing.
    assertClose(
      triangularSolve(full, b),
      triangularSolve(low, b),
      { rtol: tol, floor: 1 },
      "reads the lower triangle only",
    );
    const eye = tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))), {
      dtype,
    });
    const unit = low.mul(lowerMask(n, dtype)).sub(low.mul(eye)).add(eye);
    assertClose(
      triangularSolve(low, b, { unitDiagonal: true }),
      triangularSolve(unit, b),
      { rtol: tol, floor: 1 },
      "unit diagonal",
    );
  }
});

Deno.test("triangularSolve: gradients by finite differences", () => {
  const n = 4;
  const mask = lowerMask(n, "float64");
  const shift = tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 4 : 0))), {
    dtype: "float64",
  });
  for (
    const o of [{}, { transpose: true }, { lower: false }, { lower: false, transpose: true }, { unitDiagonal: true }]
  ) {
    const m = "lower" in o ? mask.transpose() : mask;
    gradcheck(
      (a, b) => triangularSolve(a.mul(m).add(shift), b, o),
      [randn([2, n, n], { dtype: "float64", seed: 5 }), randn([2, n, 2], { dtype: "float64", seed: 6 })],
      { secondOrder: true },
    );
  }
});

Deno.test("solve (LU): values, broadcasting, vector right-hand side", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const a = wellConditioned([3, 6, 6], 7, dtype);
    const b = randn([6, 2], { dtype, seed: 8 });
    const x = solve(a, b);
    assert.deepEqual(x.shape, [3, 6, 2]);
    assertClose(a.matmul(x), b.expand([3, 6, 2]), { rtol: TOL[dtype] * 10, floor: 1 }, `A·x (${dtype})`);
  }
  const v = solve(tensor([[3, 1], [1, 2]]), tensor([9, 8]));
  assert.deepEqual(v.shape, [2]);
  assertClose(v, [2, 3], { rtol: TOL.float32, floor: 1 });
  // Partial pivoting: a zero in the (0, 0) position is fine.
  assertClose(solve(tensor([[0, 1], [1, 0]], { dtype: "float64" }), tensor([2, 5], { dtype: "float64" })), [5, 2], {
    rtol: 1e-12,
    floor: 1,
  });
});

Deno.test("solve / choleskySolve: gradients (first and second order) by finite differences", () => {
  const a = wellConditioned([2, 4, 4], 9);
  const b = randn([2, 4, 3], { dtype: "float64", seed: 10 });
  gradcheck((x, y) => solve(x, y), [a, b], { secondOrder: true });
  gradcheck((x, y) => solve(x, y, { regularization: 0.5 }), [a, b]);
  const x0 = randn([2, 4, 4], { dtype: "float64", seed: 11 });
  gradcheck((x, y) => choleskySolve(spd(x), y), [x0, b], { secondOrder: true, atol: 1e-6, rtol: 1e-5 });
});

Deno.test("choleskySolve: matches LU solve on SPD matrices", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const a = spd(randn([4, 5, 5], { dtype, seed: 12 }));
    const b = randn([4, 5, 1], { dtype, seed: 13 });
    assertClose(choleskySolve(a, b), solve(a, b), { rtol: TOL[dtype] * 10, floor: 1 });
  }
});

Deno.test("lu / luSolve: round trip, transposed solve, info", () => {
  const a = tensor([[1, 2], [3, 4]], { dtype: "float64" });
  const f = lu(a);
  assert.deepEqual(Array.from(f.info.toTypedArray()), [0]);
  assertClose(luSolve(f, tensor([5, 11], { dtype: "float64" })), [1, 2], { rtol: 1e-12, floor: 1 });
  assertClose(luSolve(f, tensor([[7], [10]], { dtype: "float64" }), { transpose: true }), [1, 2], {
    rtol: 1e-12,
    floor: 1,
  });
  const s = lu(tensor([[[1, 2], [2, 4]], [[1, 0], [0, 1]]], { dtype: "float64" }));
  assert.deepEqual(Array.from(s.info.toTypedArray()), [2, 0]);
  const f2 = lu(wellConditioned([2, 2], 15));
  gradcheck((y) => luSolve(f2, y), [randn([2, 3], { dtype: "float64", seed: 14 })]);
});

Deno.test("qr: Q·R = A, orthonormal Q, non-negative diagonal of R", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const a = randn([2, 9, 4], { dtype, seed: 16 });
    const { q, r } = qr(a);
    assert.deepEqual(q.shape, [2, 9, 4]);
    assert.deepEqual(r.shape, [2, 4, 4]);
    assertClose(q.matmul(r), a, { rtol: TOL[dtype] * 10, floor: 1 }, "Q·R");
    const eye = tensor(Array.from({ length: 4 }, (_, i) => Array.from({ length: 4 }, (_, j) => (i === j ? 1 : 0))), {
      dtype,
    });
    assertClose(q.transpose().matmul(q), eye.expand([2, 4, 4]), { rtol: TOL[dtype] * 10, floor: 1 }, "QᵀQ");
    const rh = r.toTypedArray();
    for (let t = 0; t < 2; t++) for (let i = 0; i < 4; i++) assert.ok(rh[t * 16 + i * 5] >= 0);
  }
});

Deno.test("lstsq: QR and normal equations agree with the closed form; gradients", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const a = randn([3, 12, 4], { dtype, seed: 17 });
    const b = randn([3, 12, 2], { dtype, seed: 18 });
    const closed = solve(a.transpose().matmul(a), a.transpose().matmul(b));
    assertClose(lstsq(a, b), closed, { rtol: TOL[dtype] * 20, floor: 1 }, `qr (${dtype})`);
    assertClose(lstsq(a, b, { method: "normal" }), closed, { rtol: TOL[dtype] * 20, floor: 1 }, `normal (${dtype})`);
    const eye = tensor(Array.from({ length: 4 }, (_, i) => Array.from({ length: 4 }, (_, j) => (i === j ? 1 : 0))), {
      dtype,
    });
    const ridge = solve(a.transpose().matmul(a).add(eye.mul(0.3)), a.transpose().matmul(b));
    assertClose(lstsq(a, b, { regularization: 0.3 }), ridge, { rtol: TOL[dtype] * 20, floor: 1 }, "qr + ridge");
    assertClose(
      lstsq(a, b, { regularization: 0.3, method: "normal" }),
      ridge,
      { rtol: TOL[dtype] * 20, floor: 1 },
      "normal + ridge",
    );
  }
  const a = randn([2, 7, 3], { dtype: "float64", seed: 19 });
  const b = randn([2, 7, 2], { dtype: "float64", seed: 20 });
  gradcheck((x, y) => lstsq(x, y), [a, b], { secondOrder: true });
  gradcheck((x, y) => lstsq(x, y, { method: "normal", regularization: 0.1 }), [a, b], { secondOrder: true });
  gradcheck((x, y) => lstsq(x, y, { regularization: 0.1 }), [a, b]);
});

Deno.test("singular and indefinite matrices raise SingularMatrixError naming the batch entries", () => {
  const a = tensor([[[1, 0], [0, 1]], [[1, 2], [2, 4]], [[2, 0], [0, 3]]], { dtype: "float64" });
  const b = tensor([1, 1], { dtype: "float64" });
  assert.throws(() => solve(a, b), (e: unknown) => {
    assert.ok(e instanceof SingularMatrixError);
    assert.deepEqual(e.indices, [1]);
    assert.match(e.message, /^solve: .*batch entries \[1\]/);
    return true;
  });
  assert.throws(() => cholesky(tensor([[1, 2], [2, 1]])), SingularMatrixError);
  assert.throws(() => choleskySolve(a, b), (e: unknown) => e instanceof SingularMatrixError && e.indices[0] === 1);
  assert.throws(() => triangularSolve(tensor([[1, 0], [1, 0]]), tensor([1, 1])), SingularMatrixError);
  assert.throws(() => lstsq(tensor([[1, 2], [2, 4], [3, 6]]), tensor([1, 2, 3])), SingularMatrixError);
  // A Tikhonov term makes it solvable; check: false skips the host read and the error.
  const x = solve(a, b, { regularization: 1e-3 });
  assert.ok(Array.from(x.toTypedArray()).every(Number.isFinite));
  const y = lstsq(tensor([[1, 2], [2, 4], [3, 6]], { dtype: "float64" }), tensor([1, 2, 3], { dtype: "float64" }), {
    regularization: 1e-6,
  });
  assertClose(
    tensor([[1, 2]], { dtype: "float64" }).matmul(y.reshape([2, 1])),
    [1],
    { rtol: 1e-5, floor: 1 },
    "minimum-norm-like fit",
  );
  solve(a, b, { check: false });
});

Deno.test("NaN / Inf inputs raise NonFiniteError; shapes and dtypes are checked", () => {
  assert.throws(() => solve(tensor([[1, NaN], [0, 1]]), tensor([1, 1])), NonFiniteError);
  assert.throws(() => solve(tensor([[1, 0], [0, 1]]), tensor([Infinity, 1])), NonFiniteError);
  assert.throws(() => cholesky(tensor([[NaN, 0], [0, 1]])), NonFiniteError);
  assert.throws(() => lstsq(tensor([[1], [NaN]]), tensor([1, 1])), NonFiniteError);
  assert.throws(() => solve(tensor([[1, 2, 3], [4, 5, 6]]), tensor([1, 1])), ShapeError);
  assert.throws(() => solve(tensor([[1, 0], [0, 1]]), tensor([1, 1, 1])), ShapeError);
  assert.throws(() => solve(randn([3, 2, 2]), randn([4, 2, 1])), ShapeError);
  assert.throws(() => lstsq(randn([2, 3]), randn([3])), ShapeError);
  assert.throws(() => solve(tensor([[1, 0], [0, 1]], { dtype: "int32" }), tensor([1, 1])), DTypeError);
  assert.throws(() => solve(tensor([[1, 0], [0, 1]]), tensor([1, 1]), { regularization: -1 }), ArgumentError);
});

Deno.test("a backend without linear algebra gives a DeviceError naming the op and backend", () => {
  const bare = new CpuBackend();
  delete (bare as { linalg?: unknown }).linalg;
  const a = tensor([[1, 0], [0, 1]], { backend: bare });
  assert.throws(() => solve(a, tensor([1, 1], { backend: bare })), (e: unknown) => {
    assert.ok(e instanceof DeviceError);
    assert.match(e.message, /^solve: the cpu backend has no dense linear algebra/);
    return true;
  });
});

Deno.test("installHostLinalg gives a backend without linalg the host implementation", () => {
  const bare = new CpuBackend();
  delete (bare as { linalg?: unknown }).linalg;
  assert.equal(installHostLinalg(bare), true);
  assert.equal(installHostLinalg(bare), false);
  const a = tensor([[[4, 2], [2, 5]], [[3, 1], [1, 2]]], { dtype: "float64", backend: bare });
  const b = tensor([[[8], [13]], [[9], [8]]], { dtype: "float64", backend: bare });
  assertClose(solve(a, b), [0.875, 2.25, 2, 3], { rtol: 1e-12, floor: 1 }, "solve");
  assertClose(choleskySolve(a, b), [0.875, 2.25, 2, 3], { rtol: 1e-12, floor: 1 }, "choleskySolve");
  assertClose(lstsq(a, b), [0.875, 2.25, 2, 3], { rtol: 1e-12, floor: 1 }, "lstsq");
  assertClose(luSolve(lu(a), b), [0.875, 2.25, 2, 3], { rtol: 1e-12, floor: 1 }, "lu / luSolve");
});

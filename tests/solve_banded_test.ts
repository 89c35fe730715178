/**
 * The banded Cholesky solver of src/solve/banded.ts against a dense reference: a random banded SPD
 * matrix M = L₀·L₀ᵀ (L₀ lower banded with a positive diagonal) must factor back to L₀ and solve
 * M·x = M·x_true for x_true; bad input gets typed errors. Host code: the same on every backend.
 */

import assert from "node:assert/strict";
import { ArgumentError } from "../mod.ts";
import { BandedMatrix, SingularMatrixError } from "../src/solve/mod.ts";
import { randomData } from "./helpers.ts";

/** A random lower banded L₀ (dense, row-major) with diagonal in [1, 2). */
function lowerBanded(n: number, b: number, seed: number): Float64Array {
  const r = randomData(n * n, seed, -1, 1);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = Math.max(0, i - b); j <= i; j++) l[i * n + j] = i === j ? 1.5 + 0.5 * r[i * n + j] : r[i * n + j];
  }
  return l;
}

Deno.test("BandedMatrix: factors L₀·L₀ᵀ back to L₀ and solves against a dense product", () => {
  for (const [n, b] of [[1, 0], [7, 0], [40, 5], [33, 32], [25, 3]]) {
    const l0 = lowerBanded(n, b, n + b);
    const m = new BandedMatrix(n, b);
    for (let i = 0; i < n; i++) {
      for (let j = Math.max(0, i - b); j <= i; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += l0[i * n + k] * l0[j * n + k];
        m.add(i, j, s);
      }
    }
    const xTrue = Float64Array.from(randomData(n, 99 + n));
    const rhs = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) rhs[i] += m.get(i, j) * xTrue[j];
    }
    m.factor();
    for (let i = 0; i < n; i++) {
      for (let j = Math.max(0, i - b); j <= i; j++) {
        assert.ok(Math.abs(m.get(i, j) - l0[i * n + j]) < 1e-10, `n=${n} b=${b}: L[${i}][${j}]`);
      }
    }
    const x = m.solve(rhs);
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(x[i] - xTrue[i]) < 1e-9, `n=${n} b=${b}: x[${i}] ${x[i]} vs ${xTrue[i]}`);
    }
  }
});

Deno.test("BandedMatrix: typed errors for entries outside the band, indefinite matrices and misuse", () => {
  const m = new BandedMatrix(4, 1);
  assert.throws(() => m.add(0, 2, 1), (e: unknown) => e instanceof ArgumentError && /outside/.test(String(e)));
  assert.throws(
    () => m.solve(new Float64Array(4)),
    (e: unknown) => e instanceof ArgumentError && /factor/.test(String(e)),
  );
  assert.throws(() => new BandedMatrix(0, 1), ArgumentError);
  assert.throws(() => new BandedMatrix(3, -1), ArgumentError);
  for (let i = 0; i < 4; i++) m.add(i, i, 1);
  m.add(3, 2, 2); // the trailing 2×2 block [[1, 2], [2, 1]] is indefinite
  assert.throws(
    () => m.factor(),
    (e: unknown) => e instanceof SingularMatrixError && e.indices[0] === 3 && /not positive definite/.test(String(e)),
  );
  const ok = new BandedMatrix(2, 1);
  ok.add(0, 0, 1);
  ok.add(1, 1, 1);
  ok.factor();
  assert.throws(
    () => ok.solve(new Float64Array(3)),
    (e: unknown) => e instanceof ArgumentError && /3 entries/.test(String(e)),
  );
});

/**
 * Banded symmetric positive-definite systems on the host: Cholesky factorisation and solve of an
 * n × n matrix whose entries vanish beyond `bandwidth` diagonals from the main one, in O(n·b²)
 * time and O(n·b) memory (a dense factorisation of the same matrix costs O(n³) and O(n²)). The
 * normal matrix JᵀJ of a finite-difference residual over a 1D+t grid, unknowns ordered with time
 * innermost, is such a matrix: b is a few grid rows' worth of unknowns while n is the whole grid.
 *
 * Storage: row j keeps `M[j][j − k]` for k = 0..b at `band[j·(b + 1) + k]` (the lower triangle,
 * diagonal first).
 *
 * @module
 */

import { noGrad } from "../tensor/autograd.ts";
import { arange } from "../tensor/creation.ts";
import { ArgumentError } from "../tensor/errors.ts";
import { Tensor } from "../tensor/tensor.ts";
import { SingularMatrixError } from "./errors.ts";
import type { Factorization, LinearSolver } from "./linear_solver.ts";

/**
 * The lower band of a symmetric n × n matrix with half-bandwidth `bandwidth`, to fill with
 * {@link BandedMatrix.add} and factor in place with {@link BandedMatrix.factor}.
 *
 * @example
 * ```ts
 * import { BandedMatrix } from "./banded.ts";
 * // The 1-D Laplacian plus identity, tridiagonal (bandwidth 1).
 * const m = new BandedMatrix(4, 1);
 * for (let i = 0; i < 4; i++) {
 *   m.add(i, i, 3);
 *   if (i > 0) m.add(i, i - 1, -1);
 * }
 * m.factor();
 * Array.from(m.solve(Float64Array.from([1, 1, 1, 1]))); // x with (I − Δ)x = 1
 * ```
 */
export class BandedMatrix {
  /** Order n. */
  readonly n: number;
  /** Half-bandwidth b: entries with |i − j| > b are zero. */
  readonly bandwidth: number;
  /** Row j's entries `M[j][j − k]`, k = 0..b, at `j·(b + 1) + k`. */
  readonly band: Float64Array;
  #factored = false;

  /** A zero matrix of order `n` and half-bandwidth `bandwidth`. */
  constructor(n: number, bandwidth: number) {
    if (!Number.isInteger(n) || n < 1) {
      throw new ArgumentError("BandedMatrix", `n must be a positive integer, got ${n}`);
    }
    if (!Number.isInteger(bandwidth) || bandwidth < 0) {
      throw new ArgumentError("BandedMatrix", `bandwidth must be an integer ≥ 0, got ${bandwidth}`);
    }
    this.n = n;
    this.bandwidth = Math.min(bandwidth, n - 1);
    this.band = new Float64Array(n * (this.bandwidth + 1));
  }

  /** Whether {@link factor} has run (the band then holds the Cholesky factor L). */
  get factored(): boolean {
    return this.#factored;
  }

  /**
   * Adds `value` to `M[i][j]` (and so to `M[j][i]`); `|i − j|` must be within the bandwidth.
   *
   * @example
   * ```ts
   * import { BandedMatrix } from "./banded.ts";
   * const m = new BandedMatrix(3, 1);
   * m.add(0, 1, 2); // M[0][1] = M[1][0] = 2
   * m.get(1, 0); // 2
   * ```
   */
  add(i: number, j: number, value: number): void {
    const [r, c] = i >= j ? [i, j] : [j, i];
    if (r - c > this.bandwidth || c < 0 || r >= this.n) {
      throw new ArgumentError(
        "BandedMatrix.add",
        `entry (${i}, ${j}) lies outside a matrix of order ${this.n} with bandwidth ${this.bandwidth}`,
      );
    }
    this.band[r * (this.bandwidth + 1) + (r - c)] += value;
  }

  /**
   * `M[i][j]` (zero outside the band; the factor's entry once factored).
   *
   * @example
   * ```ts
   * import { BandedMatrix } from "./banded.ts";
   * new BandedMatrix(3, 1).get(0, 2); // 0
   * ```
   */
  get(i: number, j: number): number {
    const [r, c] = i >= j ? [i, j] : [j, i];
    if (r - c > this.bandwidth || c < 0 || r >= this.n) return 0;
    return this.band[r * (this.bandwidth + 1) + (r - c)];
  }

  /**
   * `M·x` (of the matrix, before it is factored).
   *
   * @example
   * ```ts
   * import { BandedMatrix } from "./banded.ts";
   * const m = new BandedMatrix(2, 1);
   * m.add(0, 0, 2);
   * m.add(1, 0, 1);
   * Array.from(m.mul(Float64Array.from([1, 1]))); // [3, 1]
   * ```
   */
  mul(x: ArrayLike<number>): Float64Array {
    if (this.#factored) throw new ArgumentError("BandedMatrix.mul", "the matrix is factored (it holds L now)");
    const { n, band: a } = this;
    const w = this.bandwidth + 1;
    const y = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      y[j] += a[j * w] * x[j];
      for (let k = 1; k < w && k <= j; k++) {
        const v = a[j * w + k];
        y[j] += v * x[j - k];
        y[j - k] += v * x[j];
      }
    }
    return y;
  }

  /**
   * Factors M = L·Lᵀ in place. Raises a `SingularMatrixError` naming the first pivot that is not
   * positive (the matrix is not positive definite).
   *
   * @example
   * ```ts
   * import { BandedMatrix } from "./banded.ts";
   * const m = new BandedMatrix(2, 1);
   * m.add(0, 0, 4);
   * m.add(1, 1, 4);
   * m.factor();
   * m.get(0, 0); // 2
   * ```
   */
  factor(): void {
    if (this.#factored) throw new ArgumentError("BandedMatrix.factor", "the matrix is already factored");
    const { n, band: a } = this;
    const b = this.bandwidth;
    const w = b + 1;
    for (let j = 0; j < n; j++) {
      const i0 = Math.max(0, j - b);
      const rowJ = j * w;
      for (let i = i0; i <= j; i++) {
        const rowI = i * w;
        let s = a[rowJ + (j - i)];
        // L[j][k]·L[i][k] over the k both rows have: k ≥ max(j − b, i − b) = i0 (i ≤ j).
        for (let k = i0; k < i; k++) s -= a[rowJ + (j - k)] * a[rowI + (i - k)];
        if (i === j) {
          if (!(s > 0)) {
            throw new SingularMatrixError(
              "BandedMatrix.factor",
              [j],
              `pivot ${j} of ${n} is ${s} (the matrix is not positive definite)`,
            );
          }
          a[rowJ] = Math.sqrt(s);
        } else {
          a[rowJ + (j - i)] = s / a[rowI];
        }
      }
    }
    this.#factored = true;
  }

  /**
   * Solves M·x = rhs with the factor (call {@link factor} first); returns x.
   *
   * @example
   * ```ts
   * import { BandedMatrix } from "./banded.ts";
   * const m = new BandedMatrix(2, 0);
   * m.add(0, 0, 2);
   * m.add(1, 1, 4);
   * m.factor();
   * Array.from(m.solve(Float64Array.from([2, 2]))); // [1, 0.5]
   * ```
   */
  solve(rhs: Float64Array): Float64Array {
    if (!this.#factored) throw new ArgumentError("BandedMatrix.solve", "factor the matrix first (factor())");
    const { n, band: a } = this;
    if (rhs.length !== n) {
      throw new ArgumentError("BandedMatrix.solve", `rhs has ${rhs.length} entries; the matrix has order ${n}`);
    }
    const b = this.bandwidth;
    const w = b + 1;
    const x = Float64Array.from(rhs);
    for (let j = 0; j < n; j++) {
      let s = x[j];
      for (let k = Math.max(0, j - b); k < j; k++) s -= a[j * w + (j - k)] * x[k];
      x[j] = s / a[j * w];
    }
    for (let j = n - 1; j >= 0; j--) {
      let s = x[j];
      const stop = Math.min(n - 1, j + b);
      for (let i = j + 1; i <= stop; i++) s -= a[i * w + (i - j)] * x[i];
      x[j] = s / a[j * w];
    }
    return x;
  }
}

/** Options of {@link BandedCholesky}. */
export interface BandedCholeskyOptions {
  /** Half-bandwidth b of the matrices (entries with |i − j| > b are zero). */
  bandwidth: number;
  /**
   * A relative shift σ ≥ 0: every factorisation adds σ·max(diag M) to the diagonal first (a
   * whisper of damping for columns the residual barely reads). Default 0.
   */
  shift?: number;
}

/**
 * Cholesky factorisation of banded symmetric positive-definite matrices on the host, as the
 * linear solver of a nonlinear solver: the matrices of B problems are stored as a float64 tensor
 * `[B, N, b + 1]` holding each {@link BandedMatrix}'s band. For normal equations of local
 * residuals (finite differences), whose JᵀJ is banded with N far beyond what a dense
 * factorisation can hold. A matrix is flagged numerically singular when it is not positive
 * definite or its pivot ratio min Lᵢᵢ² / max Lᵢᵢ² is at most (b + 1)·ε (the backward error of a
 * banded Cholesky grows with b, not N). Not recorded for autodiff.
 *
 * @example
 * ```ts
 * import { BandedCholesky, GaussNewton, BacktrackingLineSearch } from "./mod.ts";
 * const solver = new GaussNewton({
 *   search: new BacktrackingLineSearch(),
 *   linearSolver: new BandedCholesky({ bandwidth: 40, shift: 1e-12 }),
 * });
 * ```
 */
export class BandedCholesky implements LinearSolver {
  /** Names the solver. */
  readonly kind = "banded-cholesky";
  /** Host factorisations are not recorded. */
  readonly differentiable = false;
  /** Half-bandwidth. */
  readonly bandwidth: number;
  /** Relative diagonal shift σ. */
  readonly shift: number;

  /** A banded solver for matrices of half-bandwidth `bandwidth`. */
  constructor(options: BandedCholeskyOptions) {
    const b = options?.bandwidth;
    if (!Number.isInteger(b) || b < 0) {
      throw new ArgumentError("BandedCholesky", `bandwidth must be an integer ≥ 0, got ${b}`);
    }
    const shift = options.shift ?? 0;
    if (!(shift >= 0) || !Number.isFinite(shift)) {
      throw new ArgumentError("BandedCholesky", `shift must be a finite number ≥ 0, got ${shift}`);
    }
    this.bandwidth = b;
    this.shift = shift;
  }

  /** `[B, N, min(b, N − 1) + 1]`. */
  shape(b: number, n: number): number[] {
    return [b, n, Math.min(this.bandwidth, n - 1) + 1];
  }

  /** The band's first column. */
  diagonal(a: Tensor): Tensor {
    return a.detach().narrow(2, 0, 1).reshape(a.shape.slice(0, 2));
  }

  /** Adds d to the band's first column. */
  addDiagonal(a: Tensor, d: Tensor): Tensor {
    const first = noGrad(() => arange(0, a.shape[2], 1, { dtype: a.dtype, backend: a.backend }).eq(0));
    return noGrad(() => a.add(d.unsqueeze(-1).mul(first)));
  }

  /** The band times v, on the host. */
  mv(a: Tensor, v: Tensor): Tensor {
    const [count, n, w] = a.shape;
    const band = a.toTypedArray();
    const x = v.toTypedArray();
    const out = new Float64Array(count * n);
    for (let p = 0; p < count; p++) {
      const m = this.#matrix(band, p, n, w);
      out.set(m.mul(x.subarray(p * n, (p + 1) * n)), p * n);
    }
    return Tensor.fromBuffer(v.backend.fromHost(out, v.dtype), [count, n], v.dtype);
  }

  /** `diag(s)·M·diag(s)` on the band, on the host. */
  scale(a: Tensor, s: Tensor): Tensor {
    const [count, n, w] = a.shape;
    const band = Float64Array.from(a.toTypedArray());
    const d = s.toTypedArray();
    for (let p = 0; p < count; p++) {
      for (let j = 0; j < n; j++) {
        for (let k = 0; k < w && k <= j; k++) band[(p * n + j) * w + k] *= d[p * n + j] * d[p * n + j - k];
      }
    }
    return Tensor.fromBuffer(a.backend.fromHost(band, a.dtype), [count, n, w], a.dtype);
  }

  /** Factorises each problem's matrix on the host. */
  factor(a: Tensor): Factorization {
    const [count, n, w] = a.shape;
    const band = a.toTypedArray();
    const tol = w * Number.EPSILON;
    const factors: (BandedMatrix | null)[] = [];
    const flags = new Float64Array(2 * count);
    for (let p = 0; p < count; p++) {
      const m = this.#matrix(band, p, n, w);
      if (this.shift > 0) {
        let diag = 0;
        for (let j = 0; j < n; j++) diag = Math.max(diag, m.band[j * w]);
        for (let j = 0; j < n; j++) m.band[j * w] += this.shift * diag;
      }
      try {
        m.factor();
      } catch (e) {
        if (!(e instanceof SingularMatrixError)) throw e;
        factors.push(null);
        flags[p] = flags[count + p] = 1;
        continue;
      }
      let lo = Infinity;
      let hi = 0;
      for (let j = 0; j < n; j++) {
        const d = m.band[j * w] * m.band[j * w];
        lo = Math.min(lo, d);
        hi = Math.max(hi, d);
      }
      if (lo <= tol * hi) flags[p] = 1;
      factors.push(m);
    }
    const be = a.backend;
    const bad = Tensor.fromBuffer(be.fromHost(flags.subarray(0, count), a.dtype), [count], a.dtype);
    const failed = Tensor.fromBuffer(be.fromHost(flags.subarray(count), a.dtype), [count], a.dtype);
    return {
      bad,
      failed,
      solve: (_a, b) => {
        const rhs = b.toTypedArray();
        const out = new Float64Array(count * n).fill(NaN);
        factors.forEach((m, p) => {
          if (m) out.set(m.solve(Float64Array.from(rhs.subarray(p * n, (p + 1) * n))), p * n);
        });
        return Tensor.fromBuffer(b.backend.fromHost(out, b.dtype), [count, n], b.dtype);
      },
    };
  }

  /** Problem p's band as a fresh {@link BandedMatrix}. */
  #matrix(band: ArrayLike<number>, p: number, n: number, w: number): BandedMatrix {
    const m = new BandedMatrix(n, w - 1);
    for (let k = 0; k < n * w; k++) m.band[k] = band[p * n * w + k];
    return m;
  }
}

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

import { ArgumentError } from "../tensor/errors.ts";
import { SingularMatrixError } from "./errors.ts";

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

/**
 * Dense linear algebra of the CPU backend: batched Cholesky, triangular solves, LU with partial
 * pivoting and thin Householder QR, on matrices of a few hundred rows and columns at most.
 *
 * Each matrix of the batch is copied from its strided view into a contiguous float64 scratch
 * (rows contiguous; a transposed operand is read transposed, so the loops never stride), worked on
 * with plain loops, and written to a fresh float32 or float64 buffer. Arithmetic is always in
 * double precision, so float32 results are rounded once at the end. Failures are reported in the
 * LAPACK-style `info` arrays, never thrown.
 *
 * @module
 */

import type { DeviceBuffer, LinalgPrimitives, TriangularSolveOptions, View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { DTypeError, ShapeError } from "../../tensor/errors.ts";
import { type NumArray, operandOf } from "./buffer.ts";
import { Odometer } from "./strided.ts";
import { sizeOf } from "../../tensor/shape.ts";

/** Wraps a freshly computed array as a buffer of the backend (memory accounting included). */
export type WrapFn = (data: Float32Array | Float64Array | Int32Array, dtype: DType) => DeviceBuffer;

type FloatOut = Float32Array | Float64Array;

function allocFloat(op: string, dtype: DType, n: number): FloatOut {
  if (dtype === "float64") return new Float64Array(n);
  if (dtype === "float32") return new Float32Array(n);
  throw new DTypeError(op, `dense linear algebra needs float32 or float64, got ${dtype}`);
}

/**
 * Walks the matrices of a batched view `[...batch, rows, cols]`, copying each into a row-major
 * float64 scratch (optionally transposed, so the scratch holds `cols × rows`).
 */
class MatrixReader {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  readonly #data: NumArray;
  readonly #walker: Odometer;
  readonly #rs: number;
  readonly #cs: number;

  constructor(view: View, op: string, transpose = false) {
    const o = operandOf(view, op);
    const r = view.shape.length;
    if (r < 2) throw new ShapeError(op, `needs a matrix operand, got rank ${r}`);
    const batch = view.shape.slice(0, r - 2);
    this.#data = o.data;
    this.#walker = new Odometer(batch, [o.strides.slice(0, r - 2)], [o.offset]);
    this.count = sizeOf(batch);
    const rs = o.strides[r - 2];
    const cs = o.strides[r - 1];
    this.rows = transpose ? view.shape[r - 1] : view.shape[r - 2];
    this.cols = transpose ? view.shape[r - 2] : view.shape[r - 1];
    this.#rs = transpose ? cs : rs;
    this.#cs = transpose ? rs : cs;
  }

  /** Copies the current matrix into `into` (row-major, rows × cols) and moves to the next one. */
  next(into: Float64Array): void {
    const data = this.#data;
    const rows = this.rows;
    const cols = this.cols;
    const rs = this.#rs;
    const cs = this.#cs;
    const base = this.#walker.pos[0];
    for (let i = 0; i < rows; i++) {
      let src = base + i * rs;
      const dst = i * cols;
      for (let j = 0; j < cols; j++, src += cs) into[dst + j] = data[src];
    }
    this.#walker.next();
  }
}

/** Copies `n` values of `src` into `out` at `offset`. */
function store(out: FloatOut, offset: number, src: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) out[offset + i] = src[i];
}

/**
 * In-place Cholesky (Cholesky–Banachiewicz, row by row) of the n × n row-major `a`: on return the
 * lower triangle holds L and the strict upper triangle is zero. Returns 0, or k > 0 when the
 * leading minor of order k is not positive definite (rows from k − 1 on are then zeroed).
 *
 * @example
 * ```ts
 * import { choleskyInPlace } from "./linalg.ts";
 * const a = new Float64Array([4, 2, 2, 5]);
 * choleskyInPlace(a, 2); // 0; a = [2, 0, 1, 2]
 * ```
 */
export function choleskyInPlace(a: Float64Array, n: number): number {
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j < i; j++) {
      const rj = j * n;
      let s = a[ri + j];
      for (let k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
      a[ri + j] = s / a[rj + j];
    }
    let d = a[ri + i];
    for (let k = 0; k < i; k++) d -= a[ri + k] * a[ri + k];
    if (!(d > 0) || !Number.isFinite(d)) {
      a.fill(0, ri, n * n);
      return i + 1;
    }
    a[ri + i] = Math.sqrt(d);
    for (let j = i + 1; j < n; j++) a[ri + j] = 0;
  }
  return 0;
}

/**
 * Solves `t·x = b` in place for the n × n row-major triangular `t` and the n × k row-major `x`
 * (holding b on entry). Only the named triangle of `t` is read. With `transposed`, `t` is read as
 * its transpose (element (i, p) at `t[p*n + i]`), so the upper triangle of the stored `t` solves
 * as `lower` and the lower as upper.
 *
 * @example
 * ```ts
 * import { triangularSolveInPlace } from "./linalg.ts";
 * const t = new Float64Array([2, 0, 1, 4]);
 * const x = new Float64Array([2, 9]);
 * triangularSolveInPlace(t, x, 2, 1, true, false); // x = [1, 2]
 * const y = new Float64Array([4, 4]);
 * triangularSolveInPlace(t, y, 2, 1, false, false, true); // tᵀ·y = [4, 4]: y = [1.5, 1]
 * ```
 */
export function triangularSolveInPlace(
  t: Float64Array,
  x: Float64Array,
  n: number,
  k: number,
  lower: boolean,
  unitDiagonal: boolean,
  transposed = false,
): void {
  const rs = transposed ? 1 : n, cs = transposed ? n : 1;
  // Rows in the order their unknowns become known: top down for lower, bottom up for upper.
  for (let r = 0; r < n; r++) {
    const i = lower ? r : n - 1 - r;
    const xi = i * k;
    const ti = i * rs;
    // The known unknowns of row i: those before i (lower), after it (upper).
    const [p0, p1] = lower ? [0, i] : [i + 1, n];
    for (let p = p0; p < p1; p++) {
      const c = t[ti + p * cs];
      if (c === 0) continue;
      const xp = p * k;
      for (let j = 0; j < k; j++) x[xi + j] -= c * x[xp + j];
    }
    if (!unitDiagonal) {
      const d = t[i * (n + 1)];
      for (let j = 0; j < k; j++) x[xi + j] /= d;
    }
  }
}

/** Exchanges rows `i` and `p` (of `width` elements) of the row-major `x`. */
function swapRows(x: Float64Array, i: number, p: number, width: number): void {
  if (i === p) return;
  const xi = i * width;
  const xp = p * width;
  for (let j = 0; j < width; j++) {
    const t = x[xi + j];
    x[xi + j] = x[xp + j];
    x[xp + j] = t;
  }
}

/**
 * In-place LU factorisation with partial pivoting of the n × n row-major `a` (LAPACK getrf
 * semantics): writes 1-based interchanges into `pivots[offset..offset+n)` and returns 0, or k > 0
 * for the first exactly-zero pivot `U[k−1, k−1]` (the factorisation still completes).
 *
 * @example
 * ```ts
 * import { luInPlace } from "./linalg.ts";
 * const a = new Float64Array([1, 2, 3, 4]);
 * const piv = new Int32Array(2);
 * luInPlace(a, 2, piv, 0); // 0; piv = [2, 2]; a = [3, 4, 1/3, 2/3]
 * ```
 */
export function luInPlace(a: Float64Array, n: number, pivots: Int32Array, offset: number): number {
  let info = 0;
  for (let k = 0; k < n; k++) {
    let p = k;
    let best = Math.abs(a[k * n + k]);
    for (let i = k + 1; i < n; i++) {
      const v = Math.abs(a[i * n + k]);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    pivots[offset + k] = p + 1;
    swapRows(a, k, p, n);
    const rk = k * n;
    const akk = a[rk + k];
    if (akk === 0) {
      if (info === 0) info = k + 1;
      continue;
    }
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      const l = a[ri + k] / akk;
      a[ri + k] = l;
      if (l === 0) continue;
      for (let j = k + 1; j < n; j++) a[ri + j] -= l * a[rk + j];
    }
  }
  return info;
}

/**
 * Solves `a·x = b` (or `aᵀ·x = b`) in place from the output of {@linkcode luInPlace}: `x` is the
 * n × k row-major right-hand side on entry and the solution on return.
 *
 * @example
 * ```ts
 * import { luInPlace, luSolveInPlace } from "./linalg.ts";
 * const a = new Float64Array([1, 2, 3, 4]);
 * const piv = new Int32Array(2);
 * luInPlace(a, 2, piv, 0);
 * const x = new Float64Array([5, 11]);
 * luSolveInPlace(a, piv, 0, x, 2, 1, false); // x = [1, 2]
 * ```
 */
export function luSolveInPlace(
  lu: Float64Array,
  pivots: ArrayLike<number>,
  offset: number,
  x: Float64Array,
  n: number,
  k: number,
  transpose: boolean,
): void {
  if (!transpose) {
    for (let i = 0; i < n; i++) swapRows(x, i, pivots[offset + i] - 1, k);
    triangularSolveInPlace(lu, x, n, k, true, true);
    triangularSolveInPlace(lu, x, n, k, false, false);
    return;
  }
  // aᵀ = Uᵀ·Lᵀ·P: solve Uᵀy = b (forward), Lᵀz = y (backward, unit), x = Pᵀz.
  triangularSolveInPlace(lu, x, n, k, true, false, true);
  triangularSolveInPlace(lu, x, n, k, false, true, true);
  for (let i = n - 1; i >= 0; i--) swapRows(x, i, pivots[offset + i] - 1, k);
}

/**
 * Thin Householder QR of an m × n matrix (m ≥ n) given column-major in `acol` (column c at
 * `acol[c*m .. c*m+m)`), overwritten. Writes Q (m × n, column-major) into `qcol` and R (n × n,
 * row-major) into `r`, with the signs chosen so that R has a non-negative diagonal. `v` is scratch
 * of m·n elements.
 *
 * @example
 * ```ts
 * import { qrColumnMajor } from "./linalg.ts";
 * const a = new Float64Array([3, 4]); // one column [3, 4]
 * const q = new Float64Array(2), r = new Float64Array(1), v = new Float64Array(2);
 * qrColumnMajor(a, 2, 1, q, r, v); // q = [0.6, 0.8], r = [5]
 * ```
 */
export function qrColumnMajor(
  acol: Float64Array,
  m: number,
  n: number,
  qcol: Float64Array,
  r: Float64Array,
  v: Float64Array,
): void {
  const beta = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const cj = j * m;
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += acol[cj + i] * acol[cj + i];
    const norm = Math.sqrt(norm2);
    const vj = j * m;
    if (norm === 0) {
      beta[j] = 0;
      for (let i = j; i < m; i++) v[vj + i] = 0;
      continue;
    }
    const a0 = acol[cj + j];
    const alpha = a0 >= 0 ? -norm : norm;
    v[vj + j] = a0 - alpha;
    for (let i = j + 1; i < m; i++) v[vj + i] = acol[cj + i];
    const vnorm2 = norm2 - a0 * a0 + (a0 - alpha) * (a0 - alpha);
    const b = vnorm2 > 0 ? 2 / vnorm2 : 0;
    beta[j] = b;
    acol[cj + j] = alpha;
    for (let i = j + 1; i < m; i++) acol[cj + i] = 0;
    for (let c = j + 1; c < n; c++) {
      const cc = c * m;
      let s = 0;
      for (let i = j; i < m; i++) s += v[vj + i] * acol[cc + i];
      s *= b;
      if (s === 0) continue;
      for (let i = j; i < m; i++) acol[cc + i] -= s * v[vj + i];
    }
  }
  // Q = H_0 · … · H_{n−1} · [I; 0], applied from the last reflector back.
  qcol.fill(0, 0, m * n);
  for (let c = 0; c < n; c++) qcol[c * m + c] = 1;
  for (let j = n - 1; j >= 0; j--) {
    const b = beta[j];
    if (b === 0) continue;
    const vj = j * m;
    for (let c = j; c < n; c++) {
      const cc = c * m;
      let s = 0;
      for (let i = j; i < m; i++) s += v[vj + i] * qcol[cc + i];
      s *= b;
      if (s === 0) continue;
      for (let i = j; i < m; i++) qcol[cc + i] -= s * v[vj + i];
    }
  }
  for (let i = 0; i < n; i++) {
    const sign = acol[i * m + i] < 0 ? -1 : 1;
    for (let c = 0; c < n; c++) r[i * n + c] = c < i ? 0 : sign * acol[c * m + i];
    if (sign < 0) {
      const ci = i * m;
      for (let p = 0; p < m; p++) qcol[ci + p] = -qcol[ci + p];
    }
  }
}

/**
 * The CPU implementation of {@linkcode LinalgPrimitives}.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * const cpu = new CpuBackend();
 * const a = { buffer: cpu.fromHost([4, 2, 2, 5], "float64"), shape: [2, 2], strides: [2, 1], offset: 0 };
 * const { factor, info } = cpu.linalg.cholesky(a, "float64");
 * cpu.toHost({ buffer: factor, shape: [2, 2], strides: [2, 1], offset: 0 }); // [2, 0, 1, 2]
 * ```
 */
export class CpuLinalg implements LinalgPrimitives {
  readonly #wrap: WrapFn;

  /** Creates the primitives; `wrap` turns computed arrays into buffers of the owning backend. */
  constructor(wrap: WrapFn) {
    this.#wrap = wrap;
  }

  /** Batched Cholesky; see {@linkcode LinalgPrimitives.cholesky}. */
  cholesky(a: View, dtype: DType): { factor: DeviceBuffer; info: DeviceBuffer } {
    const rd = new MatrixReader(a, "cholesky");
    const n = rd.rows;
    const nn = n * n;
    const out = allocFloat("cholesky", dtype, rd.count * nn);
    const info = new Int32Array(rd.count);
    const s = new Float64Array(nn);
    for (let t = 0; t < rd.count; t++) {
      rd.next(s);
      info[t] = choleskyInPlace(s, n);
      store(out, t * nn, s, nn);
    }
    return { factor: this.#wrap(out, dtype), info: this.#wrap(info, "int32") };
  }

  /** Batched triangular solve; see {@linkcode LinalgPrimitives.triangularSolve}. */
  triangularSolve(a: View, b: View, options: TriangularSolveOptions, dtype: DType): DeviceBuffer {
    const ra = new MatrixReader(a, "triangularSolve", options.transpose);
    const rb = new MatrixReader(b, "triangularSolve");
    const n = ra.rows;
    const k = rb.cols;
    const out = allocFloat("triangularSolve", dtype, rb.count * n * k);
    const t = new Float64Array(n * n);
    const x = new Float64Array(n * k);
    const lower = options.lower !== options.transpose;
    for (let i = 0; i < ra.count; i++) {
      ra.next(t);
      rb.next(x);
      triangularSolveInPlace(t, x, n, k, lower, options.unitDiagonal);
      store(out, i * n * k, x, n * k);
    }
    return this.#wrap(out, dtype);
  }

  /** Batched LU with partial pivoting; see {@linkcode LinalgPrimitives.lu}. */
  lu(a: View, dtype: DType): { lu: DeviceBuffer; pivots: DeviceBuffer; info: DeviceBuffer } {
    const rd = new MatrixReader(a, "lu");
    const n = rd.rows;
    const nn = n * n;
    const out = allocFloat("lu", dtype, rd.count * nn);
    const pivots = new Int32Array(rd.count * n);
    const info = new Int32Array(rd.count);
    const s = new Float64Array(nn);
    for (let t = 0; t < rd.count; t++) {
      rd.next(s);
      info[t] = luInPlace(s, n, pivots, t * n);
      store(out, t * nn, s, nn);
    }
    return { lu: this.#wrap(out, dtype), pivots: this.#wrap(pivots, "int32"), info: this.#wrap(info, "int32") };
  }

  /** Batched solve from an LU factorisation; see {@linkcode LinalgPrimitives.luSolve}. */
  luSolve(lu: View, pivots: View, b: View, transpose: boolean, dtype: DType): DeviceBuffer {
    const ra = new MatrixReader(lu, "luSolve");
    const rb = new MatrixReader(b, "luSolve");
    const n = ra.rows;
    const k = rb.cols;
    const p = operandOf(pivots, "luSolve");
    const pr = pivots.shape.length;
    const pw = new Odometer(pivots.shape.slice(0, pr - 1), [p.strides.slice(0, pr - 1)], [p.offset]);
    const ps = p.strides[pr - 1];
    const piv = new Int32Array(n);
    const out = allocFloat("luSolve", dtype, rb.count * n * k);
    const f = new Float64Array(n * n);
    const x = new Float64Array(n * k);
    for (let t = 0; t < ra.count; t++) {
      ra.next(f);
      rb.next(x);
      for (let i = 0; i < n; i++) piv[i] = p.data[pw.pos[0] + i * ps];
      pw.next();
      luSolveInPlace(f, piv, 0, x, n, k, transpose);
      store(out, t * n * k, x, n * k);
    }
    return this.#wrap(out, dtype);
  }

  /** Batched thin QR; see {@linkcode LinalgPrimitives.qr}. */
  qr(a: View, dtype: DType): { q: DeviceBuffer; r: DeviceBuffer } {
    const rd = new MatrixReader(a, "qr", true); // column-major scratch: n rows of m
    const m = rd.cols;
    const n = rd.rows;
    if (m < n) throw new ShapeError("qr", `needs at least as many rows as columns, got ${m} × ${n}`);
    const qOut = allocFloat("qr", dtype, rd.count * m * n);
    const rOut = allocFloat("qr", dtype, rd.count * n * n);
    const acol = new Float64Array(m * n);
    const qcol = new Float64Array(m * n);
    const v = new Float64Array(m * n);
    const r = new Float64Array(n * n);
    for (let t = 0; t < rd.count; t++) {
      rd.next(acol);
      qrColumnMajor(acol, m, n, qcol, r, v);
      const qo = t * m * n;
      for (let i = 0; i < m; i++) {
        for (let c = 0; c < n; c++) qOut[qo + i * n + c] = qcol[c * m + i];
      }
      store(rOut, t * n * n, r, n * n);
    }
    return { q: this.#wrap(qOut, dtype), r: this.#wrap(rOut, dtype) };
  }
}

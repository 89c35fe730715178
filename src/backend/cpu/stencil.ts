/**
 * Banded linear operators along one axis (`Backend.stencil`). Operands are seen as `[outer, n,
 * inner]` with one stride per group (a view whose axes do not merge so is copied to contiguous
 * first). With `inner > 1` a whole row of the output (`inner` values) is accumulated tap by tap,
 * reading the input along its inner axis; with `inner == 1` each line along the axis is done in
 * turn. Either way every output is summed in float64 in the order of the CUDA kernels
 * (kernels/stencil.cu) — `acc = 0; acc += c·x` tap by tap, then `+ add` — and rounded once.
 * float32 and float64 operands in the heap whose groups need no copy, with a contiguous inner
 * axis, run on the SIMD kernel (`wasm/stencil.ts`) on every thread, with the same arithmetic.
 *
 * @module
 */

import type { BandedOperator } from "../../tensor/backend.ts";
import type { NumArray, Operand } from "./buffer.ts";
import { copyStrided } from "./elementwise.ts";
import { heapAddress, heapFree, heapTemp } from "./heap.ts";
import { runKernel, threadCount } from "./threads.ts";
import { coalesce, contiguousStrides, sizeOf } from "../../tensor/shape.ts";

/** An operand as `[outer, n, inner]`: element `(o, i, j)` is `data[offset + o·so + i·sa + j·si]`. */
interface Grouped {
  readonly data: NumArray;
  readonly offset: number;
  readonly so: number;
  readonly sa: number;
  readonly si: number;
}

function grouped(v: Operand, shape: readonly number[], axis: number): Grouped {
  const outer = coalesce(shape.slice(0, axis), [v.strides.slice(0, axis)]);
  const inner = coalesce(shape.slice(axis + 1), [v.strides.slice(axis + 1)]);
  if (outer.shape.length === 1 && inner.shape.length === 1) {
    return { data: v.data, offset: v.offset, so: outer.strides[0][0], sa: v.strides[axis], si: inner.strides[0][0] };
  }
  const data = v.data instanceof Float32Array ? new Float32Array(sizeOf(shape)) : new Float64Array(sizeOf(shape));
  copyStrided(v, { data, offset: 0, strides: contiguousStrides(shape) }, shape);
  const m = sizeOf(shape.slice(axis + 1));
  return { data, offset: 0, so: shape[axis] * m, sa: m, si: 1 };
}

/** `acc[j] += c · x[p0 + j·si]` for j < acc.length. */
function axpy(acc: Float64Array, c: number, x: NumArray, p0: number, si: number): void {
  for (let j = 0, p = p0; j < acc.length; j++, p += si) acc[j] += c * x[p];
}

/** Row i of an interior row whose taps may leave the axis: `fn(col, coef)` per tap (wrapped or skipped). */
function edgeTaps(
  s: Float64Array,
  lo: number,
  periodic: boolean,
  n: number,
  i: number,
  fn: (col: number, c: number) => void,
): void {
  let col = i + lo;
  if (periodic) {
    col = ((col % n) + n) % n;
    for (let k = 0; k < s.length; k++) {
      fn(col, s[k]);
      if (++col === n) col = 0;
    }
  } else {
    for (let k = 0; k < s.length; k++, col++) if (col >= 0 && col < n) fn(col, s[k]);
  }
}

/**
 * `out = A·x (+ add)` along `axis` of `shape`, `out` contiguous; operands are read with their
 * strides (bfloat16 already widened).
 *
 * @example
 * ```ts
 * import { stencilInto } from "./stencil.ts";
 * const none = { rows: 0, cols: 0, values: [] };
 * const op = { n: 4, lo: -1, stencil: [1, -2, 1], periodic: true, head: none, tail: none };
 * const out = new Float64Array(4);
 * stencilInto(op, { data: new Float64Array([0, 1, 4, 9]), offset: 0, strides: [1] }, [4], 0, null, out);
 * // out = [10, 2, 2, -14]
 * ```
 */
export function stencilInto(
  op: BandedOperator,
  x: Operand,
  shape: readonly number[],
  axis: number,
  add: Operand | null,
  out: NumArray,
): void {
  if (sizeOf(shape) === 0) return;
  const { n, lo, periodic, head, tail } = op;
  const s = Float64Array.from(op.stencil);
  const w = s.length;
  const hv = Float64Array.from(head.values), tv = Float64Array.from(tail.values);
  const hr = head.rows, hc = head.cols, tr = tail.rows, tc = tail.cols;
  const t0 = n - tr;
  // Interior rows whose taps all lie inside the axis: [a, b).
  const a = Math.min(t0, Math.max(hr, -lo));
  const b = Math.max(a, Math.min(t0, n - w - lo + 1));
  const outer = sizeOf(shape.slice(0, axis)), inner = sizeOf(shape.slice(axis + 1));
  const X = grouped(x, shape, axis);
  const A = add ? grouped(add, shape, axis) : null;
  if (simdStencil(op, X, A, [outer, n, inner], [a, b], out)) return;
  const xd = X.data, xs = X.sa;
  const acc = new Float64Array(inner > 1 ? inner : n);
  for (let o = 0; o < outer; o++) {
    const ob = o * n * inner;
    if (inner > 1) {
      // Row by row, each row a vector over the inner axis.
      for (let i = 0; i < n; i++) {
        acc.fill(0);
        const xb = X.offset + o * X.so;
        const tap = (col: number, c: number) => axpy(acc, c, xd, xb + col * xs, X.si);
        if (i < hr) { for (let c = 0; c < hc; c++) tap(c, hv[i * hc + c]); }
        else if (i >= t0) { for (let c = 0; c < tc; c++) tap(n - tc + c, tv[(i - t0) * tc + c]); }
        else if (i >= a && i < b) { for (let k = 0; k < w; k++) tap(i + lo + k, s[k]); }
        else edgeTaps(s, lo, periodic, n, i, tap);
        const rb = ob + i * inner;
        if (A) {
          for (let j = 0, p = A.offset + o * A.so + i * A.sa; j < inner; j++, p += A.si) {
            out[rb + j] = acc[j] + A.data[p];
          }
        } else {
          for (let j = 0; j < inner; j++) out[rb + j] = acc[j];
        }
      }
      continue;
    }
    // One line along the axis.
    const xo = X.offset + o * X.so;
    for (let i = 0; i < hr; i++) {
      let r = 0;
      for (let c = 0, p = xo; c < hc; c++, p += xs) r += hv[i * hc + c] * xd[p];
      acc[i] = r;
    }
    for (let i = a; i < b; i++) {
      let r = 0;
      for (let k = 0, p = xo + (i + lo) * xs; k < w; k++, p += xs) r += s[k] * xd[p];
      acc[i] = r;
    }
    for (let i = t0; i < n; i++) {
      let r = 0;
      const row = (i - t0) * tc;
      for (let c = 0, p = xo + (n - tc) * xs; c < tc; c++, p += xs) r += tv[row + c] * xd[p];
      acc[i] = r;
    }
    for (const [from, to] of [[hr, a], [b, t0]]) {
      for (let i = from; i < to; i++) {
        let r = 0;
        edgeTaps(s, lo, periodic, n, i, (col, c) => r += c * xd[xo + col * xs]);
        acc[i] = r;
      }
    }
    if (A) {
      for (let i = 0, p = A.offset + o * A.so; i < n; i++, p += A.sa) out[ob + i] = acc[i] + A.data[p];
    } else {
      for (let i = 0; i < n; i++) out[ob + i] = acc[i];
    }
  }
}

/** Below this many outputs a call stays on one thread. */
const PARALLEL_ELEMENTS = 1 << 15;

/**
 * The stencil on the SIMD kernel, when every operand is a float array of one type in the heap
 * and the inner axis is contiguous; false (nothing written) otherwise. The rows outside the
 * uniform band `[a, b)` get their taps from a compressed table in the order the loops above
 * visit them.
 */
function simdStencil(
  op: BandedOperator,
  X: Grouped,
  A: Grouped | null,
  [outer, n, inner]: number[],
  [a, b]: number[],
  out: NumArray,
): boolean {
  const lane = X.data instanceof Float32Array ? "f32" : X.data instanceof Float64Array ? "f64" : null;
  const arrays = A ? [X.data, A.data, out] : [X.data, out];
  if (!lane || arrays.some((d) => heapAddress(d) < 0 || d.constructor !== X.data.constructor)) return false;
  if (inner > 1 && X.si !== 1) return false;
  const { lo, periodic, head, tail } = op;
  const s = Float64Array.from(op.stencil);
  const t0 = n - tail.rows;
  const starts: number[] = [0], cols: number[] = [], vals: number[] = [];
  const rowTaps = (i: number) => {
    const tap = (col: number, c: number) => (cols.push(col), vals.push(c));
    if (i < head.rows) { for (let c = 0; c < head.cols; c++) tap(c, head.values[i * head.cols + c]); }
    else if (i >= t0) {
      for (let c = 0; c < tail.cols; c++) tap(n - tail.cols + c, tail.values[(i - t0) * tail.cols + c]);
    } else edgeTaps(s, lo, periodic, n, i, tap);
    starts.push(cols.length);
  };
  for (let i = 0; i < a; i++) rowTaps(i);
  for (let i = b; i < n; i++) rowTaps(i);
  const E = X.data.BYTES_PER_ELEMENT;
  const f64s = heapTemp(Float64Array, s.length + vals.length + 1, false);
  const i32s = heapTemp(Int32Array, starts.length + cols.length + 1, false);
  f64s.set(s);
  f64s.set(vals, s.length);
  i32s.set(starts);
  i32s.set(cols, starts.length);
  const rowsPerJob = Math.max(2, 2 * Math.ceil(1024 / inner / 2));
  const jobs = outer * Math.ceil(n / rowsPerJob);
  const address = (d: NumArray, offset: number) => heapAddress(d) + offset * E;
  const parallel = threadCount() > 1 && outer * n * inner >= PARALLEL_ELEMENTS;
  const scratch = heapTemp(Float64Array, inner * (parallel ? threadCount() : 1), false);
  try {
    runKernel(
      `stencil_${lane}`,
      [
        address(X.data, X.offset),
        X.so * E,
        X.sa * E,
        A ? address(A.data, A.offset) : 0,
        A ? A.so * E : 0,
        A ? A.sa * E : 0,
        A ? A.si * E : 0,
        heapAddress(out),
        n,
        outer,
        inner,
        a,
        b,
        lo,
        s.length,
        f64s.byteOffset,
        i32s.byteOffset,
        i32s.byteOffset + 4 * starts.length,
        f64s.byteOffset + 8 * s.length,
        rowsPerJob,
        scratch.byteOffset,
        inner * 8,
      ],
      jobs,
      parallel,
    );
  } finally {
    for (const t of [f64s, i32s, scratch]) heapFree(t);
  }
  return true;
}

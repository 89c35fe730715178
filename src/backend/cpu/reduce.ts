/**
 * Reductions: sum/max/min/prod over any set of axes, argmax/argmin, softmax and log-softmax, and
 * inclusive cumulative sums along an axis. Floating-point accumulation is in double precision;
 * int32 sums and products wrap like C int32.
 *
 * float32 and float64 operands in the heap go to the SIMD kernels first (`reduce_simd.ts`) when
 * their layout suits them. Otherwise a reduction walks the input in its own row-major order with
 * a second operand — the accumulator — whose strides are zero along the reduced axes, so both
 * "reduce the last axis" (one scalar fold per line) and "reduce a leading axis" (a vector fold
 * per line) read the input sequentially.
 *
 * @module
 */

import type { ReduceOp } from "../../tensor/backend.ts";
import type { NumArray, Operand } from "./buffer.ts";
import { simdReduce, simdSoftmax } from "./reduce_simd.ts";
import { axisLines, linePlan } from "./strided.ts";
import { contiguousStrides, sizeOf } from "../../tensor/shape.ts";

function foldLine(
  op: ReduceOp,
  x: NumArray,
  xo: number,
  xs: number,
  acc: Float64Array,
  ao: number,
  as: number,
  n: number,
): void {
  let j = xo;
  if (as === 0) {
    let r = acc[ao];
    switch (op) {
      case "sum":
        for (let k = 0; k < n; k++, j += xs) r += x[j];
        break;
      case "prod":
        for (let k = 0; k < n; k++, j += xs) r *= x[j];
        break;
      case "max":
        for (let k = 0; k < n; k++, j += xs) {
          const v = x[j];
          if (v > r || v !== v) r = v;
        }
        break;
      case "min":
        for (let k = 0; k < n; k++, j += xs) {
          const v = x[j];
          if (v < r || v !== v) r = v;
        }
        break;
    }
    acc[ao] = r;
    return;
  }
  let i = ao;
  switch (op) {
    case "sum":
      for (let k = 0; k < n; k++, i += as, j += xs) acc[i] += x[j];
      return;
    case "prod":
      for (let k = 0; k < n; k++, i += as, j += xs) acc[i] *= x[j];
      return;
    case "max":
      for (let k = 0; k < n; k++, i += as, j += xs) {
        const v = x[j];
        if (v > acc[i] || v !== v) acc[i] = v;
      }
      return;
    case "min":
      for (let k = 0; k < n; k++, i += as, j += xs) {
        const v = x[j];
        if (v < acc[i] || v !== v) acc[i] = v;
      }
      return;
  }
}

function intFoldLine(
  op: "sum" | "prod",
  x: NumArray,
  xo: number,
  xs: number,
  acc: Int32Array,
  ao: number,
  as: number,
  n: number,
): void {
  let j = xo;
  let i = ao;
  if (op === "sum") {
    for (let k = 0; k < n; k++, i += as, j += xs) acc[i] = (acc[i] + x[j]) | 0;
  } else {
    for (let k = 0; k < n; k++, i += as, j += xs) acc[i] = Math.imul(acc[i], x[j]);
  }
}

/**
 * Output shape of a reduction: `shape` with `axes` set to 1.
 *
 * @example
 * ```ts
 * import { reducedShape } from "./reduce.ts";
 * reducedShape([2, 3, 4], [0, 2]); // [1, 3, 1]
 * ```
 */
export function reducedShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((n, d) => (axes.includes(d) ? 1 : n));
}

/**
 * Reduces `x` (of `shape`) over `axes` into the contiguous array `out` (shaped like `shape` with
 * those axes set to 1). With `int` set, sum and prod wrap like C int32; otherwise they accumulate
 * in float64. Empty reductions give 0 (sum), 1 (prod), -Infinity (max), Infinity (min). NaN
 * propagates through max and min.
 *
 * @example
 * ```ts
 * import { reduceInto } from "./reduce.ts";
 * const out = new Float32Array(2);
 * reduceInto("sum", { data: new Float32Array([1, 2, 3, 4]), offset: 0, strides: [2, 1] }, [2, 2], [0], out, false);
 * // out = [4, 6]
 * ```
 */
export function reduceInto(
  op: ReduceOp,
  x: Operand,
  shape: readonly number[],
  axes: readonly number[],
  out: NumArray,
  int: boolean,
): void {
  const outShape = reducedShape(shape, axes);
  const accStrides = contiguousStrides(outShape).map((s, d) => (axes.includes(d) ? 0 : s));
  const size = sizeOf(outShape);
  if (int && (op === "sum" || op === "prod")) {
    const acc = new Int32Array(size).fill(op === "sum" ? 0 : 1);
    const plan = linePlan(shape, [x.strides, accStrides], [x.offset, 0]);
    const pos = plan.walker.pos;
    for (let l = 0; l < plan.count; l++) {
      intFoldLine(op, x.data, pos[0], plan.inner[0], acc, pos[1], plan.inner[1], plan.n);
      plan.walker.next();
    }
    out.set(acc);
    return;
  }
  if (simdReduce(op, x, shape, axes, out)) return;
  const init = op === "sum" ? 0 : op === "prod" ? 1 : op === "max" ? -Infinity : Infinity;
  const acc = out instanceof Float64Array ? out : new Float64Array(size);
  acc.fill(init);
  const plan = linePlan(shape, [x.strides, accStrides], [x.offset, 0]);
  const pos = plan.walker.pos;
  for (let l = 0; l < plan.count; l++) {
    foldLine(op, x.data, pos[0], plan.inner[0], acc, pos[1], plan.inner[1], plan.n);
    plan.walker.next();
  }
  if (acc !== out) out.set(acc);
}

/**
 * Index of the first maximum (or minimum) along `axis` into the contiguous int32 array `out`
 * (shaped like `shape` with `axis` set to 1). A NaN counts as the extreme: the first NaN wins.
 *
 * @example
 * ```ts
 * import { argReduceInto } from "./reduce.ts";
 * const out = new Int32Array(1);
 * argReduceInto("argmax", { data: new Float32Array([1, 5, 5]), offset: 0, strides: [1] }, [3], 0, out);
 * // out = [1]
 * ```
 */
export function argReduceInto(
  op: "argmax" | "argmin",
  x: Operand,
  shape: readonly number[],
  axis: number,
  out: Int32Array,
): void {
  const outStrides = contiguousStrides(reducedShape(shape, [axis]));
  const plan = axisLines(shape, axis, [x.strides, outStrides], [x.offset, 0]);
  const pos = plan.walker.pos;
  const xs = plan.inner[0];
  const n = plan.n;
  const d = x.data;
  const max = op === "argmax";
  for (let l = 0; l < plan.count; l++) {
    let j = pos[0];
    let best = d[j];
    let at = 0;
    if (best === best) {
      j += xs;
      for (let k = 1; k < n; k++, j += xs) {
        const v = d[j];
        if (v !== v) {
          at = k;
          break;
        }
        if (max ? v > best : v < best) {
          best = v;
          at = k;
        }
      }
    }
    out[pos[1]] = at;
    plan.walker.next();
  }
}

/**
 * Softmax (or log-softmax) along `axis` into the contiguous array `out`, in double precision
 * with the maximum subtracted first: `exp(x - m) / Σ exp(x - m)`, or `x - m - log Σ exp(x - m)`
 * (on the SIMD kernel a float32 row's exponentials are float32's, within 1 ulp).
 *
 * @example
 * ```ts
 * import { softmaxInto } from "./reduce.ts";
 * const out = new Float64Array(2);
 * softmaxInto({ data: new Float64Array([1000, 1000]), offset: 0, strides: [1] }, [2], 0, false, out);
 * // out = [0.5, 0.5]
 * ```
 */
export function softmaxInto(x: Operand, shape: readonly number[], axis: number, log: boolean, out: NumArray): void {
  if (simdSoftmax(x, shape, axis, log, out)) return;
  const plan = axisLines(shape, axis, [x.strides, contiguousStrides(shape)], [x.offset, 0]);
  const pos = plan.walker.pos;
  const [xs, os] = plan.inner;
  const n = plan.n;
  const d = x.data;
  const e = new Float64Array(n);
  for (let l = 0; l < plan.count; l++) {
    let m = -Infinity;
    let j = pos[0];
    for (let k = 0; k < n; k++, j += xs) {
      const v = d[j];
      if (v > m || v !== v) m = v;
    }
    let s = 0;
    j = pos[0];
    if (log) {
      for (let k = 0; k < n; k++, j += xs) s += Math.exp(d[j] - m);
      const ls = Math.log(s);
      j = pos[0];
      let i = pos[1];
      for (let k = 0; k < n; k++, j += xs, i += os) out[i] = d[j] - m - ls;
    } else {
      for (let k = 0; k < n; k++, j += xs) {
        const v = Math.exp(d[j] - m);
        e[k] = v;
        s += v;
      }
      const inv = 1 / s;
      let i = pos[1];
      for (let k = 0; k < n; k++, i += os) out[i] = e[k] * inv;
    }
    plan.walker.next();
  }
}

/**
 * Inclusive prefix sum along `axis` into the contiguous array `out` (float64 accumulation, or
 * int32 wrap-around with `int`).
 *
 * @example
 * ```ts
 * import { cumsumInto } from "./reduce.ts";
 * const out = new Float32Array(3);
 * cumsumInto({ data: new Float32Array([1, 2, 3]), offset: 0, strides: [1] }, [3], 0, out, false);
 * // out = [1, 3, 6]
 * ```
 */
export function cumsumInto(x: Operand, shape: readonly number[], axis: number, out: NumArray, int: boolean): void {
  const plan = axisLines(shape, axis, [x.strides, contiguousStrides(shape)], [x.offset, 0]);
  const pos = plan.walker.pos;
  const [xs, os] = plan.inner;
  const n = plan.n;
  const d = x.data;
  for (let l = 0; l < plan.count; l++) {
    let j = pos[0];
    let i = pos[1];
    let s = 0;
    if (int) {
      for (let k = 0; k < n; k++, j += xs, i += os) out[i] = s = (s + d[j]) | 0;
    } else {
      for (let k = 0; k < n; k++, j += xs, i += os) out[i] = s += d[j];
    }
    plan.walker.next();
  }
}

/**
 * Indexed reads and accumulating writes along one axis, with torch.gather / torch.scatter_add
 * semantics. Every index is checked against the axis extent; a bad one raises an
 * `ArgumentError` naming the op, the index value, where it was found and the valid range.
 *
 * @module
 */

import { ArgumentError } from "../../tensor/errors.ts";
import type { NumArray, Operand } from "./buffer.ts";
import { Odometer } from "./strided.ts";
import { contiguousStrides } from "../../tensor/shape.ts";

function rangeError(op: string, value: number, at: number, axis: number, extent: number): ArgumentError {
  const range = extent === 0 ? "none (the axis is empty)" : `[0, ${extent - 1}]`;
  return new ArgumentError(
    op,
    `index ${value} at flat position ${at} of the index tensor is out of range for axis ${axis} of size ${extent}; ` +
      `valid range is ${range}`,
  );
}

/**
 * `out[p] = x[p with coordinate axis replaced by index[p]]` for every position p of
 * `indexShape`, into the contiguous array `out`.
 *
 * @example
 * ```ts
 * import { gatherInto } from "./indexing.ts";
 * const out = new Float32Array(2);
 * const x = { data: new Float32Array([10, 20, 30]), offset: 0, strides: [1] };
 * const index = { data: new Int32Array([2, 0]), offset: 0, strides: [1] };
 * gatherInto(x, [3], 0, index, [2], out); // out = [30, 10]
 * ```
 */
export function gatherInto(
  x: Operand,
  xShape: readonly number[],
  axis: number,
  index: Operand,
  indexShape: readonly number[],
  out: NumArray,
): void {
  const extent = xShape[axis];
  const xAxisStride = x.strides[axis];
  const xBase = x.strides.map((s, d) => (d === axis ? 0 : s));
  const last = indexShape.length - 1;
  // Walk every axis but the last with an odometer; the last is the inner loop.
  const n = last >= 0 ? indexShape[last] : 1;
  if (n === 0 || indexShape.some((v) => v === 0)) return;
  const outer = indexShape.slice(0, Math.max(last, 0));
  const os = contiguousStrides(indexShape);
  const w = new Odometer(
    outer,
    [os.slice(0, outer.length), index.strides.slice(0, outer.length), xBase.slice(0, outer.length)],
    [0, index.offset, x.offset],
  );
  const is = last >= 0 ? index.strides[last] : 0;
  const xs = last >= 0 ? xBase[last] : 0;
  const id = index.data;
  const xd = x.data;
  const pos = w.pos;
  for (let l = 0; l < w.count; l++) {
    let o = pos[0];
    let ii = pos[1];
    let xi = pos[2];
    for (let k = 0; k < n; k++, o++, ii += is, xi += xs) {
      const v = id[ii];
      if (!(v >= 0 && v < extent)) throw rangeError("gather", v, o, axis, extent);
      out[o] = xd[xi + v * xAxisStride];
    }
    w.next();
  }
}

/** Fewer contributions than an output's size over this accumulate in a map of the elements they touch. */
const SPARSE = 4;

/**
 * Calls `add(t, value)` for every position p of `indexShape`, in order: `t` the flat position of
 * p with coordinate `axis` replaced by index[p] in a contiguous array shaped `shape`, `value`
 * src[p]. Throws the op's range error for an index outside `[0, shape[axis])`.
 */
function eachTarget(
  shape: readonly number[],
  axis: number,
  index: Operand,
  src: Operand,
  indexShape: readonly number[],
  add: (t: number, value: number) => void,
): void {
  const extent = shape[axis];
  const accStrides = contiguousStrides(shape);
  const accAxisStride = accStrides[axis];
  const accBase = accStrides.map((s, d) => (d === axis ? 0 : s));
  const last = indexShape.length - 1;
  const n = last >= 0 ? indexShape[last] : 1;
  if (n === 0 || indexShape.some((v) => v === 0)) return;
  const outer = indexShape.slice(0, Math.max(last, 0));
  const flat = contiguousStrides(indexShape);
  const w = new Odometer(
    outer,
    [
      flat.slice(0, outer.length),
      index.strides.slice(0, outer.length),
      src.strides.slice(0, outer.length),
      accBase.slice(0, outer.length),
    ],
    [0, index.offset, src.offset, 0],
  );
  const is = last >= 0 ? index.strides[last] : 0;
  const ss = last >= 0 ? src.strides[last] : 0;
  const as = last >= 0 ? accBase[last] : 0;
  const id = index.data;
  const sd = src.data;
  const pos = w.pos;
  for (let l = 0; l < w.count; l++) {
    let f = pos[0];
    let ii = pos[1];
    let si = pos[2];
    let ai = pos[3];
    for (let k = 0; k < n; k++, f++, ii += is, si += ss, ai += as) {
      const v = id[ii];
      if (!(v >= 0 && v < extent)) throw rangeError("scatterAdd", v, f, axis, extent);
      add(ai + v * accAxisStride, sd[si]);
    }
    w.next();
  }
}

/**
 * Adds `src[p]` into `out[p with coordinate axis replaced by index[p]]` for every position p of
 * `indexShape` (src is read at the same positions); `out` (contiguous, shaped `shape`) comes
 * zeroed. int32 sums wrap like C int32; float32 sums are taken in float64 and rounded once, in a
 * map of the touched elements when they are few (an embedding's gradient: a few rows of a large
 * table), else in a dense float64 array.
 *
 * @example
 * ```ts
 * import { scatterAddInto } from "./indexing.ts";
 * const out = new Float32Array(2);
 * const index = { data: new Int32Array([1, 1, 0]), offset: 0, strides: [1] };
 * const src = { data: new Float32Array([1, 2, 3]), offset: 0, strides: [1] };
 * scatterAddInto([2], 0, index, src, [3], out); // out = [3, 3]
 * ```
 */
export function scatterAddInto(
  shape: readonly number[],
  axis: number,
  index: Operand,
  src: Operand,
  indexShape: readonly number[],
  out: NumArray,
): void {
  const walk = (add: (t: number, value: number) => void) => eachTarget(shape, axis, index, src, indexShape, add);
  if (out instanceof Int32Array) return walk((t, value) => (out[t] = (out[t] + value) | 0));
  if (out instanceof Float64Array) return walk((t, value) => (out[t] += value));
  if (indexShape.reduce((a, b) => a * b, 1) * SPARSE < out.length) {
    const sums = new Map<number, number>();
    walk((t, value) => sums.set(t, (sums.get(t) ?? 0) + value));
    for (const [t, sum] of sums) out[t] = sum;
    return;
  }
  const acc = new Float64Array(out.length);
  walk((t, value) => (acc[t] += value));
  out.set(acc);
}

/**
 * Shape and layout operations: reshape, permute, expand, slice, flip (views without copies), and
 * contiguous, concat, stack, split, pad, roll (copies where needed), with their gradients.
 *
 * @module
 */

import { record } from "./autograd.ts";
import { ArgumentError, DTypeError, ShapeError } from "./errors.ts";
import { broadcastShapes, contiguousStrides, fmtShape, sizeOf } from "./shape.ts";
import {
  checkInteger,
  checkNumber,
  checkOneOf,
  checkShape,
  checkTensor,
  checkTensors,
  describe,
  normalizeAxes,
  normalizeAxis,
} from "./validate.ts";
import { Tensor } from "./tensor.ts";
import { sumTo } from "./ops_reduce.ts";

function view(x: Tensor, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  return new Tensor(x.storage, shape, strides, offset, x.dtype);
}

/**
 * Same elements in a new shape; one entry may be -1 (inferred). A view when `x` is contiguous,
 * a copy otherwise.
 *
 * @example
 * ```ts
 * import { reshape } from "./ops_shape.ts";
 * import { arange } from "./creation.ts";
 * reshape(arange(6), [2, -1]).shape; // [2, 3]
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor("reshape", "x", x);
  const target = checkShape("reshape", shape, { wildcards: 1 });
  const infer = target.indexOf(-1);
  if (infer >= 0) {
    const rest = sizeOf(target.filter((_, i) => i !== infer));
    if (rest === 0 || x.size % rest !== 0) {
      throw new ShapeError("reshape", `cannot infer -1 in ${fmtShape(shape)} for ${x.size} elements`);
    }
    target[infer] = x.size / rest;
  }
  if (sizeOf(target) !== x.size) {
    throw new ShapeError("reshape", `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  }
  const src = x.isContiguous ? x : contiguous(x);
  const out = view(src, target, contiguousStrides(target), src.offset);
  return record("reshape", out, [src], [], (g) => [reshape(g, src.shape)]);
}

/**
 * Reorders the axes (`axes` is a permutation). A view.
 *
 * @example
 * ```ts
 * import { permute } from "./ops_shape.ts";
 * import { zeros } from "./creation.ts";
 * permute(zeros([2, 3, 4]), [2, 0, 1]).shape; // [4, 2, 3]
 * ```
 */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  checkTensor("permute", "x", x);
  if (!Array.isArray(axes)) {
    throw new ArgumentError("permute", `axes must be a list of integers, got ${describe(axes)}`);
  }
  if (axes.length !== x.ndim) {
    throw new ArgumentError("permute", `needs ${x.ndim} axes for shape ${fmtShape(x.shape)}, got ${axes.length}`);
  }
  const ax = axes.map((a) => normalizeAxis("permute", a, x.ndim, "axes entry"));
  if (new Set(ax).size !== ax.length) {
    throw new ArgumentError("permute", `${describe(axes)} is not a permutation`);
  }
  const out = view(x, ax.map((a) => x.shape[a]), ax.map((a) => x.strides[a]), x.offset);
  const inverse = new Array<number>(ax.length);
  ax.forEach((a, i) => (inverse[a] = i));
  return record("permute", out, [x], [], (g) => [permute(g, inverse)]);
}

/**
 * Swaps two axes (default: the last two). A view.
 *
 * @example
 * ```ts
 * import { transpose } from "./ops_shape.ts";
 * import { zeros } from "./creation.ts";
 * transpose(zeros([2, 3])).shape; // [3, 2]
 * ```
 */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  checkTensor("transpose", "x", x);
  if (x.ndim < 2 && a === -2 && b === -1) return x;
  const i = normalizeAxis("transpose", a, x.ndim);
  const j = normalizeAxis("transpose", b, x.ndim);
  const axes = x.shape.map((_, k) => k);
  axes[i] = j;
  axes[j] = i;
  return permute(x, axes);
}

/**
 * Broadcasts to `shape` (NumPy rules; -1 keeps an axis) without copying.
 *
 * @example
 * ```ts
 * import { expand } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * expand(tensor([1, 2]), [3, 2]).toArray(); // [[1, 2], [1, 2], [1, 2]]
 * ```
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor("expand", "x", x);
  const lead = checkShape("expand", shape, { wildcards: Infinity }).length - x.ndim;
  if (lead < 0) throw new ShapeError("expand", `cannot expand ${fmtShape(x.shape)} to fewer axes ${fmtShape(shape)}`);
  if (shape.slice(0, lead).includes(-1)) {
    throw new ArgumentError("expand", `−1 (keep the size) is only allowed on existing axes, got ${fmtShape(shape)}`);
  }
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead] : d));
  const b = broadcastShapes("expand", x.shape, target);
  if (b.some((d, i) => d !== target[i])) {
    throw new ShapeError("expand", `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (lead === 0 && target.every((d, i) => d === x.shape[i])) return x;
  const strides = target.map((d, i) => {
    if (i < lead) return 0;
    return x.shape[i - lead] === 1 && d !== 1 ? 0 : x.strides[i - lead];
  });
  const out = view(x, target, strides, x.offset);
  return record("expand", out, [x], [], (g) => [sumTo(g, x.shape)]);
}

/** One axis of a slice: a number picks an index (the axis goes away); null keeps it whole. */
export type SliceSpec =
  | number
  | null
  | undefined
  | readonly [number | null | undefined, (number | null | undefined)?, (number | null | undefined)?]
  | { start?: number | null; stop?: number | null; step?: number | null };

interface AxisWindow {
  start: number;
  step: number;
  len: number;
  drop: boolean;
}

/** A start, stop or step of a slice: an integer, or null/undefined for the default. */
function bound(value: unknown, axis: number, what: string): number | null {
  if (value === null || value === undefined) return null;
  return checkInteger("slice", `the ${what} of axis ${axis}`, value);
}

function normalizeSlice(x: Tensor, spec: readonly SliceSpec[]): AxisWindow[] {
  if (!Array.isArray(spec)) {
    throw new ArgumentError(
      "slice",
      `spec must be a list with one entry per leading axis (slice([1]) picks x[1]), got ${describe(spec)}`,
    );
  }
  if (spec.length > x.ndim) {
    throw new ArgumentError("slice", `${spec.length} entries for a tensor of rank ${x.ndim}`);
  }
  return x.shape.map((n, axis): AxisWindow => {
    const s = spec[axis];
    if (s === null || s === undefined) return { start: 0, step: 1, len: n, drop: false };
    if (typeof s === "number") {
      if (!Number.isInteger(s) || s < -n || s >= n) {
        throw new ArgumentError("slice", `index ${s} is out of range for axis ${axis} of size ${n}`);
      }
      return { start: s < 0 ? s + n : s, step: 1, len: 1, drop: true };
    }
    if (typeof s !== "object" || (Array.isArray(s) && s.length > 3)) {
      throw new ArgumentError(
        "slice",
        `entry ${axis} must be an index, null, [start, stop, step] or { start, stop, step }, got ${describe(s)}`,
      );
    }
    const [a, b, c] = (Array.isArray(s) ? s : [s.start, s.stop, s.step]).map((v, i) =>
      bound(v, axis, ["start", "stop", "step"][i])
    );
    const step = c ?? 1;
    if (step === 0) throw new ArgumentError("slice", `step must be a non-zero integer, got ${step}`);
    let start: number, stop: number;
    if (step > 0) {
      start = a == null ? 0 : a < 0 ? Math.max(a + n, 0) : Math.min(a, n);
      stop = b == null ? n : b < 0 ? Math.max(b + n, 0) : Math.min(b, n);
    } else {
      start = a == null ? n - 1 : a < 0 ? Math.max(a + n, -1) : Math.min(a, n - 1);
      stop = b == null ? -1 : b < 0 ? Math.max(b + n, -1) : Math.min(b, n - 1);
    }
    const len = step > 0
      ? Math.max(0, Math.ceil((stop - start) / step))
      : Math.max(0, Math.ceil((start - stop) / -step));
    return { start: len === 0 ? 0 : start, step, len, drop: false };
  });
}

function windowView(x: Tensor, w: AxisWindow[]): Tensor {
  let offset = x.offset;
  const shape: number[] = [];
  const strides: number[] = [];
  w.forEach((a, i) => {
    offset += a.start * x.strides[i];
    if (!a.drop) {
      shape.push(a.len);
      strides.push(x.strides[i] * a.step);
    }
  });
  return view(x, shape, strides, offset);
}

function sliceWindow(x: Tensor, w: AxisWindow[]): Tensor {
  const out = windowView(x, w);
  return record("slice", out, [x], [], (g) => [embed(g, x.shape, w, 0)]);
}

/** Places `x` in the window `w` of a new tensor of `shape` filled with `fill`; the adjoint of slicing. */
function embed(x: Tensor, shape: readonly number[], w: AxisWindow[], fill: number): Tensor {
  const out = Tensor.fromBuffer(x.backend.full(sizeOf(shape), fill, x.dtype), shape, x.dtype);
  x.backend.copy(x, windowView(out, w));
  return record("embed", out, [x], [], (g) => [sliceWindow(g, w)]);
}

/**
 * Python-style slicing, one entry per leading axis: a number picks an index (the axis goes away),
 * null keeps the axis, `[start, stop, step]` (any may be null; negative values count from the end;
 * negative steps reverse) takes a strided window. A view.
 *
 * @example
 * ```ts
 * import { slice } from "./ops_shape.ts";
 * import { arange } from "./creation.ts";
 * slice(arange(10), [[1, 8, 3]]).toArray(); // [1, 4, 7]
 * ```
 */
export function slice(x: Tensor, spec: readonly SliceSpec[]): Tensor {
  checkTensor("slice", "x", x);
  return sliceWindow(x, normalizeSlice(x, spec));
}

/**
 * `length` elements from `start` along `axis`. A view.
 *
 * @example
 * ```ts
 * import { narrow } from "./ops_shape.ts";
 * import { arange } from "./creation.ts";
 * narrow(arange(5), 0, 1, 2).toArray(); // [1, 2]
 * ```
 */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  checkTensor("narrow", "x", x);
  const a = normalizeAxis("narrow", axis, x.ndim);
  const n = x.shape[a];
  checkInteger("narrow", "start", start);
  checkInteger("narrow", "length", length, { min: 0 });
  if (start < 0 || start + length > n) {
    throw new ArgumentError("narrow", `window [${start}, ${start + length}) is outside axis ${a} of size ${n}`);
  }
  const spec: SliceSpec[] = x.shape.map(() => null);
  spec[a] = [start, start + length, 1];
  return slice(x, spec);
}

/**
 * Reverses the element order along `axes`. A view (negative strides).
 *
 * @example
 * ```ts
 * import { flip } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * flip(tensor([1, 2, 3]), 0).toArray(); // [3, 2, 1]
 * ```
 */
export function flip(x: Tensor, axes: number | number[]): Tensor {
  checkTensor("flip", "x", x);
  if (axes === undefined) throw new ArgumentError("flip", "needs the axes to reverse");
  const ax = normalizeAxes("flip", axes, x.ndim);
  const spec: SliceSpec[] = x.shape.map((_, i) => (ax.includes(i) ? [null, null, -1] : null));
  return slice(x, spec);
}

/**
 * Removes size-1 axes (all of them, or those listed; listing an axis whose size is not 1 is an error).
 *
 * @example
 * ```ts
 * import { squeeze } from "./ops_shape.ts";
 * import { zeros } from "./creation.ts";
 * squeeze(zeros([1, 3, 1])).shape; // [3]
 * ```
 */
export function squeeze(x: Tensor, axes?: number | number[]): Tensor {
  checkTensor("squeeze", "x", x);
  const ax = axes === undefined
    ? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))
    : normalizeAxes("squeeze", axes, x.ndim);
  for (const a of ax) {
    if (x.shape[a] !== 1) {
      throw new ShapeError("squeeze", `axis ${a} of ${fmtShape(x.shape)} has size ${x.shape[a]}, not 1`);
    }
  }
  return reshape(x, x.shape.filter((_, i) => !ax.includes(i)));
}

/**
 * Inserts a size-1 axis at `axis` (negative counts from the end of the result).
 *
 * @example
 * ```ts
 * import { unsqueeze } from "./ops_shape.ts";
 * import { zeros } from "./creation.ts";
 * unsqueeze(zeros([3]), 0).shape; // [1, 3]
 * ```
 */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  checkTensor("unsqueeze", "x", x);
  const a = normalizeAxis("unsqueeze", axis, x.ndim + 1);
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

/**
 * Merges axes `start`..`end` (inclusive) into one.
 *
 * @example
 * ```ts
 * import { flatten } from "./ops_shape.ts";
 * import { zeros } from "./creation.ts";
 * flatten(zeros([2, 3, 4]), 1).shape; // [2, 12]
 * ```
 */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  checkTensor("flatten", "x", x);
  const rank = Math.max(x.ndim, 1); // a scalar flattens to one element
  const s = normalizeAxis("flatten", start, rank, "start");
  const e = normalizeAxis("flatten", end, rank, "end");
  if (x.ndim === 0) return reshape(x, [1]);
  if (e < s) throw new ArgumentError("flatten", `end axis ${end} comes before start axis ${start}`);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

function copyOf(x: Tensor, op: string): Tensor {
  const out = Tensor.fromBuffer(x.backend.full(x.size, 0, x.dtype), x.shape, x.dtype);
  x.backend.copy(x, out);
  return record(op, out, [x], [], (g) => [g]);
}

/**
 * A row-major copy, or `x` itself when it is already contiguous.
 *
 * @example
 * ```ts
 * import { contiguous, transpose } from "./ops_shape.ts";
 * import { zeros } from "./creation.ts";
 * contiguous(transpose(zeros([2, 3]))).isContiguous; // true
 * ```
 */
export function contiguous(x: Tensor): Tensor {
  checkTensor("contiguous", "x", x);
  return x.isContiguous ? x : copyOf(x, "contiguous");
}

/**
 * A contiguous copy with its own storage.
 *
 * @example
 * ```ts
 * import { clone } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * clone(tensor([1, 2])).toArray(); // [1, 2]
 * ```
 */
export function clone(x: Tensor): Tensor {
  checkTensor("clone", "x", x);
  return copyOf(x, "clone");
}

/**
 * Joins tensors along an existing axis (shapes must agree elsewhere; dtypes must match).
 *
 * @example
 * ```ts
 * import { concat } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * concat([tensor([1]), tensor([2, 3])], 0).toArray(); // [1, 2, 3]
 * ```
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  checkTensors("concat", "tensors", tensors, 1);
  const first = tensors[0];
  const a = normalizeAxis("concat", axis, first.ndim);
  for (const t of tensors) {
    if (t.dtype !== first.dtype) {
      throw new DTypeError("concat", `dtypes differ (${first.dtype} and ${t.dtype}); cast first`);
    }
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new ShapeError(
        "concat",
        `shapes ${tensors.map((x) => fmtShape(x.shape)).join(", ")} differ outside axis ${a}`,
      );
    }
  }
  if (tensors.length === 1) return first;
  const shape = [...first.shape];
  shape[a] = tensors.reduce((s, t) => s + t.shape[a], 0);
  const out = Tensor.fromBuffer(first.backend.full(sizeOf(shape), 0, first.dtype), shape, first.dtype);
  const starts: number[] = [];
  let pos = 0;
  for (const t of tensors) {
    starts.push(pos);
    const w = shape.map((
      n,
      i,
    ): AxisWindow => (i === a
      ? { start: pos, step: 1, len: t.shape[a], drop: false }
      : { start: 0, step: 1, len: n, drop: false })
    );
    if (t.size) first.backend.copy(t, windowView(out, w));
    pos += t.shape[a];
  }
  return record(
    "concat",
    out,
    [...tensors],
    [],
    (g, needs) => tensors.map((t, i) => (needs[i] ? narrow(g, a, starts[i], t.shape[a]) : null)),
  );
}

/**
 * Stacks equal-shaped tensors along a new axis.
 *
 * @example
 * ```ts
 * import { stack } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * stack([tensor([1, 2]), tensor([3, 4])], 1).toArray(); // [[1, 3], [2, 4]]
 * ```
 */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  checkTensors("stack", "tensors", tensors, 1);
  const first = tensors[0];
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => d !== first.shape[i])) {
      throw new ShapeError("stack", `shapes ${tensors.map((x) => fmtShape(x.shape)).join(", ")} are not all equal`);
    }
  }
  const a = normalizeAxis("stack", axis, first.ndim + 1);
  return concat(tensors.map((t) => unsqueeze(t, a)), a);
}

/**
 * Splits along `axis` into pieces of the listed sizes, or into `sections` equal pieces. Views.
 *
 * @example
 * ```ts
 * import { split } from "./ops_shape.ts";
 * import { arange } from "./creation.ts";
 * split(arange(5), [2, 3]).map((t) => t.shape[0]); // [2, 3]
 * ```
 */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  checkTensor("split", "x", x);
  const a = normalizeAxis("split", axis, x.ndim);
  const n = x.shape[a];
  let list: number[];
  if (typeof sizes === "number") {
    checkInteger("split", "sections", sizes, { min: 1 });
    if (n % sizes !== 0) {
      throw new ArgumentError("split", `cannot split axis ${a} of size ${n} into ${sizes} equal sections`);
    }
    list = new Array(sizes).fill(n / sizes);
  } else {
    list = checkShape("split", sizes, { name: "sizes" });
    if (list.reduce((p, s) => p + s, 0) !== n) {
      throw new ArgumentError("split", `sizes ${describe(sizes)} do not add up to axis ${a} of size ${n}`);
    }
  }
  let pos = 0;
  return list.map((s) => {
    const piece = narrow(x, a, pos, s);
    pos += s;
    return piece;
  });
}

/** Padding mode: a constant value, or periodic (circular) wrap-around. */
export type PadMode = "constant" | "periodic";

/**
 * Pads axes with `[before, after]` counts. `pads` covers the trailing `pads.length` axes (so one
 * pair pads the last axis). Mode `"constant"` fills with `value`; `"periodic"` wraps around
 * (counts at most the axis size).
 *
 * @example
 * ```ts
 * import { pad } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * pad(tensor([1, 2, 3]), [[1, 1]], "periodic").toArray(); // [3, 1, 2, 3, 1]
 * ```
 */
export function pad(
  x: Tensor,
  pads: readonly (readonly [number, number])[],
  mode: PadMode = "constant",
  value = 0,
): Tensor {
  checkTensor("pad", "x", x);
  checkOneOf("pad", "mode", mode, ["constant", "periodic"]);
  checkNumber("pad", "value", value, { finite: false });
  if (!Array.isArray(pads)) {
    throw new ArgumentError("pad", `pads must be a list of [before, after] pairs, got ${describe(pads)}`);
  }
  if (pads.length > x.ndim) {
    throw new ArgumentError("pad", `${pads.length} pad pairs for a tensor of rank ${x.ndim}`);
  }
  const lead = x.ndim - pads.length;
  const full = x.shape.map((_, i) => (i < lead ? [0, 0] : pads[i - lead]));
  for (const [i, p] of full.entries()) {
    if (!Array.isArray(p) || p.length !== 2 || p.some((v) => !Number.isInteger(v) || v < 0)) {
      throw new ArgumentError(
        "pad",
        `pads must be [before, after] pairs of non-negative integers, got ${describe(p)}`,
      );
    }
    if (mode === "periodic" && (p[0] > x.shape[i] || p[1] > x.shape[i])) {
      throw new ArgumentError("pad", `periodic pad ${describe(p)} exceeds axis ${i} of size ${x.shape[i]}`);
    }
  }
  if (mode === "constant") {
    const shape = x.shape.map((n, i) => n + full[i][0] + full[i][1]);
    const w = x.shape.map((n, i): AxisWindow => ({ start: full[i][0], step: 1, len: n, drop: false }));
    return embed(x, shape, w, value);
  }
  let y = x;
  full.forEach(([before, after], i) => {
    if (!before && !after) return;
    const n = y.shape[i];
    const parts = [];
    if (before) parts.push(narrow(y, i, n - before, before));
    parts.push(y);
    if (after) parts.push(narrow(y, i, 0, after));
    y = concat(parts, i);
  });
  return y;
}

/**
 * Circular shift by `shift` places along `axis` (as numpy.roll).
 *
 * @example
 * ```ts
 * import { roll } from "./ops_shape.ts";
 * import { tensor } from "./creation.ts";
 * roll(tensor([1, 2, 3]), 1, 0).toArray(); // [3, 1, 2]
 * ```
 */
export function roll(x: Tensor, shift: number, axis: number): Tensor {
  checkTensor("roll", "x", x);
  checkInteger("roll", "shift", shift);
  const a = normalizeAxis("roll", axis, x.ndim);
  const n = x.shape[a];
  const s = n === 0 ? 0 : ((shift % n) + n) % n;
  if (s === 0) return x;
  return concat([narrow(x, a, n - s, s), narrow(x, a, 0, n - s)], a);
}

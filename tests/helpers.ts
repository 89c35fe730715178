// Shared by the test files: a seeded host random stream (inputs that do not depend on the
// backend), plain shape arithmetic, one comparison with explicit tolerances, and one check of a
// typed error.

import assert from "node:assert/strict";
import { PatchworkError } from "../src/tensor/errors.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { uniformStream } from "../src/train/random.ts";

/** A seeded uniform stream on [0, 1) (mulberry32, the training layer's host stream). */
export const rng = uniformStream;

/** `n` seeded uniform numbers on [lo, hi). */
export function randomData(n: number, seed: number, lo = -3, hi = 3): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major strides of a shape. */
export function rowMajor(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/**
 * How close `actual` must be to `expected`, element by element:
 * |actual − expected| ≤ atol + rtol · max(floor, s), where s is |expected| of that element
 * (`scale: "element"`, the default) or the largest finite |expected| of the whole array
 * (`scale: "max"`, a normwise test). `atol` may give one bound per element.
 */
export interface Tolerance {
  /** Absolute part of the bound: one number, or one per element. Default 0. */
  atol?: number | ArrayLike<number>;
  /** Relative part of the bound, multiplied by the scale. Default 0. */
  rtol?: number;
  /** What `rtol` multiplies: each element's own |expected| or the largest finite |expected|. */
  scale?: "element" | "max";
  /** The scale is at least this (`floor: 1` gives a bound of rtol·max(1, |expected|)). Default 0. */
  floor?: number;
  /** An expected NaN is met by an actual NaN. Default false: any NaN fails. */
  equalNaN?: boolean;
}

/** Values to compare: a tensor, a flat array of numbers, a nested array, or one number. */
export type Numbers = Tensor | ArrayLike<number> | number | readonly Numbers[];

function flatten(x: Numbers): { data: ArrayLike<number>; shape?: readonly number[] } {
  if (x instanceof Tensor) return { data: x.toTypedArray(), shape: x.shape };
  if (typeof x === "number") return { data: [x] };
  if (!Array.isArray(x) || x.every((v) => typeof v === "number")) return { data: x as ArrayLike<number> };
  const parts = (x as readonly Numbers[]).map(flatten);
  const inner = parts[0]?.shape ?? [parts[0]?.data.length ?? 0];
  const ragged = parts.some((p) => (p.shape ?? [p.data.length]).join() !== inner.join());
  if (ragged) throw new Error(`assertClose: ragged nested array (sub-arrays of shapes ${parts.map((p) => p.shape)})`);
  return { data: parts.flatMap((p) => Array.from(p.data)), shape: [parts.length, ...inner] };
}

/**
 * Asserts that `actual` is close to `expected` within `tol` (see {@link Tolerance}); exact equality
 * always passes and an infinite expected value must be met exactly. Shapes must agree when both
 * sides carry one (tensors, nested arrays); otherwise the lengths must. The message names `what`
 * and the first failing index.
 */
export function assertClose(actual: Numbers, expected: Numbers, tol: Tolerance, what = ""): void {
  const a = flatten(actual), e = flatten(expected);
  if (a.shape && e.shape) assert.deepEqual(a.shape, e.shape, `${what}: shape [${a.shape}] vs [${e.shape}]`);
  assert.equal(a.data.length, e.data.length, `${what}: length ${a.data.length} vs ${e.data.length}`);
  const { atol = 0, rtol = 0, floor = 0, equalNaN = false } = tol;
  let max = 0;
  if (tol.scale === "max") {
    for (const v of Array.from(e.data)) if (Number.isFinite(v)) max = Math.max(max, Math.abs(v));
  }
  for (let i = 0; i < e.data.length; i++) {
    const x = a.data[i], y = e.data[i];
    if (x === y || (equalNaN && Number.isNaN(x) && Number.isNaN(y))) continue;
    const bound = (typeof atol === "number" ? atol : atol[i]) +
      rtol * Math.max(floor, tol.scale === "max" ? max : Math.abs(y));
    const diff = Math.abs(x - y);
    if (!(Number.isFinite(y) && diff <= bound)) {
      assert.fail(
        `${what}[${i}]: got ${x}, want ${y} (|diff| ${diff.toExponential(2)}, bound ${bound.toExponential(2)})`,
      );
    }
  }
}

/** A typed error class of the project. */
export type ErrorClass = new (...args: never[]) => PatchworkError;

/**
 * Asserts that `fn` throws an instance of `type` raised by `op` (its `op`, its name, and a message
 * starting `op: `) whose message contains every fragment.
 */
export function assertRaises(fn: () => unknown, type: ErrorClass, op: string, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
    assert.ok(e instanceof PatchworkError);
    assert.equal(e.op, op);
    assert.equal(e.name, type.name);
    assert.ok(e.message.startsWith(`${op}: `), `message "${e.message}" should start with "${op}: "`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" should mention "${f}"`);
    return true;
  });
}

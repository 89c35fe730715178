/**
 * Reductions (sum, mean, max, min, var, logsumexp), softmax, cumulative sums and arg-reductions,
 * with gradients written in tensor ops.
 *
 * @module
 */

import type { ReduceOp } from "./backend.ts";
import { record } from "./autograd.ts";
import { ArgumentError } from "./errors.ts";
import { shapesEqual } from "./shape.ts";
import {
  checkNumber,
  checkOneOf,
  checkOptions,
  checkShape,
  checkTensor,
  normalizeAxes,
  normalizeAxis,
} from "./validate.ts";
import { Tensor } from "./tensor.ts";
import { add, div, eq, exp, log, mul, requireFloat, sub, where } from "./ops_elementwise.ts";
import { expand, flip, reshape } from "./ops_shape.ts";

/** Checks the arguments shared by the reductions: the tensor, its axes (all when omitted), keepdims. */
function reduction(op: string, x: Tensor, axes: unknown, keepdims: unknown): number[] {
  checkTensor(op, "x", x);
  checkOneOf(op, "keepdims", keepdims, [true, false]);
  return normalizeAxes(op, axes, x.ndim);
}

/** Checks a tensor and one axis of it. */
function alongAxis(op: string, x: Tensor, axis: unknown): number {
  checkTensor(op, "x", x);
  return normalizeAxis(op, axis, x.ndim);
}

function keptShape(shape: readonly number[], axes: number[]): number[] {
  return shape.map((d, i) => axes.includes(i) ? 1 : d);
}

function droppedShape(shape: readonly number[], axes: number[]): number[] {
  return shape.filter((_, i) => !axes.includes(i));
}

function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  const shape = keptShape(x.shape, axes);
  return Tensor.fromBuffer(x.backend.reduce(op, x, axes, x.dtype), shape, x.dtype);
}

function finish(out: Tensor, x: Tensor, axes: number[], keepdims: boolean): Tensor {
  return keepdims ? out : reshape(out, droppedShape(x.shape, axes));
}

/**
 * Sum over `axes` (all when omitted).
 *
 * @example
 * ```ts
 * import { sum } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * sum(tensor([[1, 2], [3, 4]]), 0).toArray(); // [4, 6]
 * ```
 */
export function sum(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  const ax = reduction("sum", x, axes, keepdims);
  const out = reduceRaw("sum", x, ax);
  record("sum", out, [x], [], (g) => [expand(g, x.shape)]);
  return finish(out, x, ax, keepdims);
}

/**
 * Sums `g` down to `shape` (the reverse of broadcasting `shape` up to `g.shape`).
 *
 * @example
 * ```ts
 * import { sumTo } from "./ops_reduce.ts";
 * import { ones } from "./creation.ts";
 * sumTo(ones([4, 3]), [3]).toArray(); // [4, 4, 4]
 * ```
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  checkTensor("sumTo", "g", g);
  checkShape("sumTo", shape);
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length ? sum(g, axes, true) : g;
  return reshape(s, shape);
}

/**
 * Mean over `axes` (all when omitted).
 *
 * @example
 * ```ts
 * import { mean } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * mean(tensor([1, 2, 3])).item(); // 2
 * ```
 */
export function mean(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  const ax = reduction("mean", x, axes, keepdims);
  requireFloat("mean", x);
  const n = ax.reduce((p, a) => p * x.shape[a], 1);
  return div(sum(x, ax, keepdims), n);
}

function extreme(op: "max" | "min", x: Tensor, axes: number | number[] | undefined, keepdims: boolean): Tensor {
  const ax = reduction(op, x, axes, keepdims);
  if (ax.some((a) => x.shape[a] === 0)) throw new ArgumentError(op, "cannot reduce over an empty axis");
  const out = reduceRaw(op, x, ax);
  record(op, out, [x], [out], (g) => {
    // The gradient is shared evenly between tied extremes.
    const mask = eq(x, out);
    const count = sum(mask, ax, true);
    return [div(mul(expand(g, x.shape), mask), count)];
  });
  return finish(out, x, ax, keepdims);
}

/**
 * Maximum over `axes` (all when omitted); ties share the gradient.
 *
 * @example
 * ```ts
 * import { max } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * max(tensor([[1, 5], [3, 2]]), 1).toArray(); // [5, 3]
 * ```
 */
export function max(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  return extreme("max", x, axes, keepdims);
}

/**
 * Minimum over `axes` (all when omitted); ties share the gradient.
 *
 * @example
 * ```ts
 * import { min } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * min(tensor([[1, 5], [3, 2]]), 1).toArray(); // [1, 2]
 * ```
 */
export function min(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  return extreme("min", x, axes, keepdims);
}

/** Options of {@link variance}. */
export interface VarOptions {
  /** Keep reduced axes with size 1. Default false. */
  keepdims?: boolean;
  /** Divide by N − correction (1: unbiased, as PyTorch's default; 0: population). Default 1. */
  correction?: number;
}

/**
 * Variance over `axes` (all when omitted), dividing by N − correction (default 1, as PyTorch).
 *
 * @example
 * ```ts
 * import { variance } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * variance(tensor([1, 2, 3, 4]), undefined, { correction: 0 }).item(); // 1.25
 * ```
 */
export function variance(x: Tensor, axes?: number | number[], options: VarOptions = {}): Tensor {
  const { keepdims = false, correction = 1 } = checkOptions("var", options, ["keepdims", "correction"]);
  const ax = reduction("var", x, axes, keepdims);
  requireFloat("var", x);
  checkNumber("var", "correction", correction, { min: 0 });
  const n = ax.reduce((p, a) => p * x.shape[a], 1);
  if (n - correction <= 0) {
    throw new ArgumentError("var", `N − correction must be positive (N = ${n}, correction = ${correction})`);
  }
  const centred = sub(x, mean(x, ax, true));
  return div(sum(mul(centred, centred), ax, keepdims), n - correction);
}

/**
 * log Σ exp(x) over `axes`, computed stably (the maximum is subtracted first).
 *
 * @example
 * ```ts
 * import { logsumexp } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * logsumexp(tensor([1000, 1000])).item(); // 1000.693...
 * ```
 */
export function logsumexp(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  const ax = reduction("logsumexp", x, axes, keepdims);
  requireFloat("logsumexp", x);
  const m = reduceRaw("max", x, ax); // no gradient needed: it cancels exactly
  const shift = where(eq(sub(m, m), 0), m, 0); // an all −∞ row shifts by 0, not by −∞
  const out = add(log(sum(exp(sub(x, shift)), ax, true)), shift);
  return keepdims ? out : reshape(out, droppedShape(x.shape, ax));
}

/**
 * Softmax along `axis`: exp(x) / Σ exp(x), fused and stable.
 *
 * @example
 * ```ts
 * import { softmax } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * softmax(tensor([0, 0])).toArray(); // [0.5, 0.5]
 * ```
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  const a = alongAxis("softmax", x, axis);
  requireFloat("softmax", x);
  const y = Tensor.fromBuffer(x.backend.softmax(x, a, false, x.dtype), x.shape, x.dtype);
  return record("softmax", y, [x], [y], (g) => [mul(y, sub(g, sum(mul(g, y), a, true)))]);
}

/**
 * log softmax along `axis`: x − logsumexp(x), fused and stable.
 *
 * @example
 * ```ts
 * import { logSoftmax } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * logSoftmax(tensor([0, 0])).toArray(); // [-0.693..., -0.693...]
 * ```
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = alongAxis("logSoftmax", x, axis);
  requireFloat("logSoftmax", x);
  const y = Tensor.fromBuffer(x.backend.softmax(x, a, true, x.dtype), x.shape, x.dtype);
  return record("logSoftmax", y, [x], [y], (g) => [sub(g, mul(exp(y), sum(g, a, true)))]);
}

/**
 * Inclusive cumulative sum along `axis`.
 *
 * @example
 * ```ts
 * import { cumsum } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * cumsum(tensor([1, 2, 3]), 0).toArray(); // [1, 3, 6]
 * ```
 */
export function cumsum(x: Tensor, axis: number): Tensor {
  const a = alongAxis("cumsum", x, axis);
  const y = Tensor.fromBuffer(x.backend.cumsum(x, a, x.dtype), x.shape, x.dtype);
  return record("cumsum", y, [x], [], (g) => [flip(cumsum(flip(g, a), a), a)]);
}

function argReduce(op: "argmax" | "argmin", x: Tensor, axis: number, keepdims: boolean): Tensor {
  const a = alongAxis(op, x, axis);
  checkOneOf(op, "keepdims", keepdims, [true, false]);
  if (x.shape[a] === 0) throw new ArgumentError(op, "cannot reduce over an empty axis");
  const shape = keptShape(x.shape, [a]);
  const out = Tensor.fromBuffer(x.backend.argReduce(op, x, a), shape, "int32");
  return keepdims ? out : reshape(out, droppedShape(x.shape, [a]));
}

/**
 * Index (int32) of the largest element along `axis` (first on ties); no gradient.
 *
 * @example
 * ```ts
 * import { argmax } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * argmax(tensor([[1, 5], [3, 2]]), 1).toArray(); // [1, 0]
 * ```
 */
export function argmax(x: Tensor, axis = -1, keepdims = false): Tensor {
  return argReduce("argmax", x, axis, keepdims);
}

/**
 * Index (int32) of the smallest element along `axis` (first on ties); no gradient.
 *
 * @example
 * ```ts
 * import { argmin } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * argmin(tensor([[1, 5], [3, 2]]), 1).toArray(); // [0, 1]
 * ```
 */
export function argmin(x: Tensor, axis = -1, keepdims = false): Tensor {
  return argReduce("argmin", x, axis, keepdims);
}

/**
 * Standard deviation over `axes`: √var (same options as {@link variance}).
 *
 * @example
 * ```ts
 * import { std } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * std(tensor([1, 3]), undefined, { correction: 0 }).item(); // 1
 * ```
 */
export function std(x: Tensor, axes?: number | number[], options: VarOptions = {}): Tensor {
  return variance(x, axes, options).sqrt();
}

/**
 * The p-norm over `axes` (all by default): (Σ|x|ᵖ)^(1/p) for p ≥ 1, or the largest |x| for
 * p = Infinity. The 2-norm's gradient at 0 is 0 (not NaN).
 *
 * @example
 * ```ts
 * import { norm } from "./ops_reduce.ts";
 * import { tensor } from "./creation.ts";
 * norm(tensor([3, 4])).item(); // 5
 * ```
 */
export function norm(x: Tensor, p = 2, axes?: number | number[], keepdims = false): Tensor {
  reduction("norm", x, axes, keepdims);
  requireFloat("norm", x);
  checkNumber("norm", "p", p, { min: 1, finite: false });
  if (p === Infinity) return max(x.abs(), axes, keepdims);
  if (p === 1) return sum(x.abs(), axes, keepdims);
  if (p === 2) {
    const s = sum(mul(x, x), axes, keepdims);
    const safe = where(eq(s, 0), 1, s);
    return where(eq(s, 0), 0, safe.sqrt());
  }
  return sum(x.abs().pow(p), axes, keepdims).pow(1 / p);
}

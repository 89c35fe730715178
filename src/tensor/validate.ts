/**
 * Argument checks at the door. Every public function checks its arguments on entry with these
 * helpers, before any work is done, and a bad one raises the project's typed error naming the
 * operation, the argument and the value it got:
 *
 * ```text
 * softmax: axis must be an integer, got "1"
 * reshape: shape must be a list of integers (−1 for one inferred size), got "6"
 * Adam: lr must be a finite number in [0, ∞), got NaN
 * ```
 *
 * @module
 */

import { ArgumentError, DeviceError, DTypeError, ShapeError } from "./errors.ts";
import { fmtShape, shapesEqual } from "./shape.ts";
import { Tensor } from "./tensor.ts";

/**
 * A short description of any value for an error message: strings quoted, tensors by shape and
 * dtype, arrays element by element (long ones cut), other objects by kind.
 *
 * @example
 * ```ts
 * import { describe } from "./validate.ts";
 * describe("1"); // '"1"'
 * describe([1, "a"]); // '[1,"a"]'
 * ```
 */
export function describe(value: unknown, depth = 0): string {
  if (value instanceof Tensor) return `a Tensor of shape ${fmtShape(value.shape)} (${value.dtype})`;
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol" || typeof value === "boolean" || value == null) return String(value);
  if (Array.isArray(value)) {
    if (depth > 2) return "[…]";
    const shown = value.slice(0, 8).map((v) => describe(v, depth + 1));
    return `[${shown.join(",")}${value.length > 8 ? ",…" : ""}]`;
  }
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== "Object" ? `a ${name}` : "an object";
}

/**
 * Checks that `value` is a live tensor; `name` is how the argument is called in messages.
 *
 * @example
 * ```ts
 * import { checkTensor } from "./validate.ts";
 * checkTensor("matmul", "b", [1, 2]); // throws ArgumentError: matmul: b must be a Tensor, got [1,2]
 * ```
 */
export function checkTensor(op: string, name: string, value: unknown): Tensor {
  if (!(value instanceof Tensor)) throw new ArgumentError(op, `${name} must be a Tensor, got ${describe(value)}`);
  return value;
}

/**
 * Checks that `value` is an array of at least `min` tensors (all on one backend).
 *
 * @example
 * ```ts
 * import { checkTensors } from "./validate.ts";
 * checkTensors("concat", "tensors", [], 1); // throws: needs at least 1 tensor
 * ```
 */
export function checkTensors(op: string, name: string, value: unknown, min = 0): Tensor[] {
  if (!Array.isArray(value)) {
    throw new ArgumentError(op, `${name} must be an array of Tensors, got ${describe(value)}`);
  }
  if (value.length < min) {
    throw new ArgumentError(op, `${name} needs at least ${min} tensor${min === 1 ? "" : "s"}, got ${value.length}`);
  }
  value.forEach((t, i) => {
    checkTensor(op, `${name}[${i}]`, t);
    if (i > 0) sameBackend(op, value[0], t);
  });
  return value;
}

/**
 * Checks that two tensors live on the same backend.
 *
 * @example
 * ```ts
 * import { sameBackend } from "./validate.ts";
 * // sameBackend("add", a, b); // throws DeviceError when a is on cpu and b on cuda
 * ```
 */
export function sameBackend(op: string, a: Tensor, b: Tensor): void {
  if (a.backend !== b.backend) {
    throw new DeviceError(op, `operands live on different backends (${a.backend.name} and ${b.backend.name})`);
  }
}

/**
 * Checks that `value` is a tensor of `like`'s shape, dtype (unless `options.dtype` is false) and
 * backend: a gradient for `like`.
 *
 * @example
 * ```ts
 * import { checkLike } from "./validate.ts";
 * // checkLike("grad", "the gradient", g, x);
 * ```
 */
export function checkLike(
  op: string,
  name: string,
  value: unknown,
  like: Tensor,
  options: { dtype?: boolean } = {},
): Tensor {
  const t = checkTensor(op, name, value);
  sameBackend(op, like, t);
  if (!shapesEqual(t.shape, like.shape)) {
    throw new ShapeError(op, `${name} has shape ${fmtShape(t.shape)}, the tensor ${fmtShape(like.shape)}`);
  }
  if ((options.dtype ?? true) && t.dtype !== like.dtype) {
    throw new DTypeError(op, `${name} is ${t.dtype}, the tensor ${like.dtype}`);
  }
  return t;
}

/**
 * Bounds of {@link checkNumber} and {@link checkInteger}: `[min, max]`, either end open or absent.
 *
 * @example
 * ```ts
 * import type { Range } from "./validate.ts";
 * const beta: Range = { min: 0, max: 1, maxOpen: true }; // [0, 1)
 * ```
 */
export interface Range {
  /** Lower bound (default −∞). */
  min?: number;
  /** Upper bound (default ∞). */
  max?: number;
  /** Exclude `min` itself. */
  minOpen?: boolean;
  /** Exclude `max` itself. */
  maxOpen?: boolean;
  /** Require a finite number (default true; false also admits ±∞ and NaN when unbounded). */
  finite?: boolean;
}

function rangeText(r: Range): string {
  const lo = r.min === undefined ? "(−∞" : `${r.minOpen ? "(" : "["}${r.min}`;
  const hi = r.max === undefined ? "∞)" : `${r.max}${r.maxOpen ? ")" : "]"}`;
  return `${lo}, ${hi}`;
}

function inRange(v: number, r: Range): boolean {
  if (r.min !== undefined && (r.minOpen ? !(v > r.min) : !(v >= r.min))) return false;
  if (r.max !== undefined && (r.maxOpen ? !(v < r.max) : !(v <= r.max))) return false;
  return true;
}

/**
 * Checks that `value` is a number in `range` (finite unless `range.finite` is false); the message
 * names the argument and the range.
 *
 * @example
 * ```ts
 * import { checkNumber } from "./validate.ts";
 * checkNumber("Adam", "eps", 1e-8, { min: 0, minOpen: true }); // 1e-8
 * checkNumber("Adam", "lr", NaN, { min: 0 }); // throws: lr must be a finite number in [0, ∞), got NaN
 * ```
 */
export function checkNumber(op: string, name: string, value: unknown, range: Range = {}): number {
  const finite = range.finite ?? true;
  if (typeof value !== "number" || (finite && !Number.isFinite(value)) || !inRange(value, range)) {
    const bounded = range.min !== undefined || range.max !== undefined;
    const what = `${finite ? "a finite number" : "a number"}${bounded ? ` in ${rangeText(range)}` : ""}`;
    throw new ArgumentError(op, `${name} must be ${what}, got ${describe(value)}`);
  }
  return value;
}

/**
 * Checks that `value` is an integer in `range` (a safe integer when no bound is given).
 *
 * @example
 * ```ts
 * import { checkInteger } from "./validate.ts";
 * checkInteger("narrow", "length", 2, { min: 0 }); // 2
 * checkInteger("narrow", "length", "2", { min: 0 }); // throws: length must be an integer in [0, ∞), got "2"
 * ```
 */
export function checkInteger(op: string, name: string, value: unknown, range: Range = {}): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || !inRange(value, range)) {
    const where = range.min === undefined && range.max === undefined ? "" : ` in ${rangeText(range)}`;
    throw new ArgumentError(op, `${name} must be an integer${where}, got ${describe(value)}`);
  }
  return value;
}

/**
 * Checks that `value` is one of `choices`.
 *
 * @example
 * ```ts
 * import { checkOneOf } from "./validate.ts";
 * checkOneOf("pad", "mode", "reflect", ["constant", "periodic"]); // throws: mode must be "constant" or "periodic"
 * ```
 */
export function checkOneOf<T>(op: string, name: string, value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) {
    const list = choices.map((c) => describe(c));
    const text = list.length > 1 ? `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}` : list[0];
    throw new ArgumentError(op, `${name} must be ${text}, got ${describe(value)}`);
  }
  return value as T;
}

/**
 * Checks that `value` is a function.
 *
 * @example
 * ```ts
 * import { checkFunction } from "./validate.ts";
 * checkFunction("grad", "f", 3); // throws: f must be a function, got 3
 * ```
 */
export function checkFunction<F>(op: string, name: string, value: F): F {
  if (typeof value !== "function") throw new ArgumentError(op, `${name} must be a function, got ${describe(value)}`);
  return value;
}

/**
 * Checks an options argument: undefined (no options) or a plain object whose keys are among
 * `keys` (a misspelt or foreign option — `learningRate`, `weight_decay` — is refused by name
 * rather than silently ignored).
 *
 * @example
 * ```ts
 * import { checkOptions } from "./validate.ts";
 * checkOptions("var", undefined, ["correction"]); // {}
 * checkOptions("var", { ddof: 1 }, ["correction"]); // throws: unknown option "ddof" (options: correction)
 * ```
 */
export function checkOptions<T extends object>(op: string, value: T | undefined, keys: readonly (keyof T)[]): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Tensor) {
    throw new ArgumentError(op, `options must be an object, got ${describe(value)}`);
  }
  for (const k of Object.keys(value)) {
    if (!keys.includes(k as keyof T)) {
      throw new ArgumentError(op, `unknown option ${describe(k)} (options: ${keys.join(", ") || "none"})`);
    }
  }
  return value;
}

/**
 * Resolves a possibly negative axis against a rank; throws naming `op` when it is not an integer
 * or is out of range.
 *
 * @example
 * ```ts
 * import { normalizeAxis } from "./validate.ts";
 * normalizeAxis("sum", -1, 3); // 2
 * ```
 */
export function normalizeAxis(op: string, axis: unknown, rank: number, name = "axis"): number {
  if (typeof axis !== "number" || !Number.isInteger(axis)) {
    throw new ArgumentError(op, `${name} must be an integer, got ${describe(axis)}`);
  }
  if (axis < -rank || axis >= rank) {
    const valid = rank === 0 ? "it has no axes" : `valid axes are ${-rank} … ${rank - 1}`;
    throw new ArgumentError(op, `${name} ${axis} is out of range for a tensor of rank ${rank} (${valid})`);
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * Resolves an axis or a list of axes (undefined means all), sorted and without repeats.
 *
 * @example
 * ```ts
 * import { normalizeAxes } from "./validate.ts";
 * normalizeAxes("sum", [-1, 0], 3); // [0, 2]
 * ```
 */
export function normalizeAxes(op: string, axes: unknown, rank: number, name = "axes"): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  if (typeof axes !== "number" && !Array.isArray(axes)) {
    throw new ArgumentError(op, `${name} must be an integer or a list of integers, got ${describe(axes)}`);
  }
  const list: unknown[] = typeof axes === "number" ? [axes] : axes;
  const out = list.map((a) => normalizeAxis(op, a, rank, typeof axes === "number" ? "axis" : `${name} entry`));
  const sorted = [...new Set(out)].sort((a, b) => a - b);
  if (sorted.length !== out.length) throw new ArgumentError(op, `repeated axis in ${describe(list)}`);
  return sorted;
}

/**
 * Checks that a user-given shape is a list of non-negative integers. `wildcards` entries may be
 * −1 (reshape's one inferred size, expand's kept axes); `name` is how the argument is called.
 *
 * @example
 * ```ts
 * import { checkShape } from "./validate.ts";
 * checkShape("zeros", [2, -1]); // throws ArgumentError
 * checkShape("reshape", [2, -1], { wildcards: 1 }); // [2, -1]
 * ```
 */
export function checkShape(op: string, shape: unknown, options: { wildcards?: number; name?: string } = {}): number[] {
  const name = options.name ?? "shape";
  const wildcards = options.wildcards ?? 0;
  const ok = Array.isArray(shape) &&
    shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && (d >= 0 || (wildcards > 0 && d === -1))) &&
    shape.filter((d) => d === -1).length <= wildcards;
  if (!ok) {
    const minusOne = wildcards === 0 ? "" : wildcards === 1 ? " (one may be −1)" : " (or −1)";
    throw new ArgumentError(op, `${name} must be a list of non-negative integers${minusOne}, got ${describe(shape)}`);
  }
  return [...shape];
}

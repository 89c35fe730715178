/**
 * Creating tensors: from nested arrays or typed arrays, constants, ranges, identity matrices and
 * seeded random numbers. Random streams come from a counter-based generator (Philox4x32-10), so
 * the same seed gives the same numbers on every backend.
 *
 * @module
 */

import { type Backend, getDefaultBackend } from "./backend.ts";
import { checkDType, type DType, type HostArray, isFloat } from "./dtype.ts";
import { ArgumentError, AutodiffError, ShapeError } from "./errors.ts";
import { sizeOf } from "./shape.ts";
import { checkInteger, checkNumber, checkOneOf, checkOptions, checkShape, checkTensor, describe } from "./validate.ts";
import { type NestedArray, Tensor } from "./tensor.ts";
import { cast, floor } from "./ops_elementwise.ts";

/** Options shared by the creation functions. */
export interface CreateOptions {
  /** Element type (default float32, or int32 for `arange` with integer arguments... see each function). */
  dtype?: DType;
  /** Mark the new tensor as a leaf that requires grad. */
  requiresGrad?: boolean;
  /** Backend to create it on (default: the default backend). */
  backend?: Backend;
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requireGrad();
  return t;
}

const CREATE_KEYS = ["dtype", "requiresGrad", "backend"] as const;

/**
 * Checks the options of a creation function (those of {@link CreateOptions} and `extra` keys);
 * returns the backend and dtype to create with.
 */
function pick(
  op: string,
  options: CreateOptions,
  fallback: DType = "float32",
  extra: readonly string[] = [],
): { backend: Backend; dtype: DType } {
  checkOptions(op, options as Record<string, unknown>, [...CREATE_KEYS, ...extra]);
  const dtype = options.dtype === undefined ? fallback : checkDType(options.dtype, op);
  checkOneOf(op, "requiresGrad", options.requiresGrad ?? false, [true, false]);
  const backend = options.backend ?? getDefaultBackend();
  if (backend === null || typeof backend !== "object" || typeof backend.fromHost !== "function") {
    throw new ArgumentError(op, `backend must be a Backend, got ${describe(backend)}`);
  }
  if (options.requiresGrad && !isFloat(dtype)) {
    throw new AutodiffError(op, `${dtype} tensors cannot require gradients; pick a float dtype`);
  }
  return { backend, dtype };
}

/** Host arrays a backend takes as they are; other numeric typed arrays are copied to numbers. */
function hostData(op: string, data: ArrayBufferView): HostArray | number[] {
  if (
    data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array ||
    data instanceof Uint16Array
  ) return data;
  if (data instanceof DataView || data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new ArgumentError(op, `data must hold numbers, got ${describe(data)}`);
  }
  return Array.from(data as unknown as ArrayLike<number>);
}

function inferShape(data: NestedArray, shape: number[] = []): number[] {
  if (Array.isArray(data)) {
    shape.push(data.length);
    if (data.length > 0) inferShape(data[0], shape);
  }
  return shape;
}

function flattenInto(data: NestedArray, shape: number[], axis: number, out: number[]): void {
  if (axis === shape.length) {
    if (typeof data !== "number" && typeof data !== "boolean") {
      throw new ArgumentError("tensor", `elements must be numbers, got ${describe(data)}`);
    }
    out.push(Number(data));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[axis]) {
    throw new ShapeError("tensor", `ragged nested array: expected ${shape[axis]} entries at depth ${axis}`);
  }
  for (const d of data) flattenInto(d, shape, axis + 1, out);
}

/**
 * Typed arrays of numbers that `tensor()` reads besides its host arrays (copied as numbers;
 * float32 by default).
 *
 * @example
 * ```ts
 * import { type NumericArray, tensor } from "./creation.ts";
 * const pixels: NumericArray = new Uint8Array([0, 128, 255]);
 * tensor(pixels).toArray(); // [0, 128, 255]
 * ```
 */
export type NumericArray = Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint32Array;

/**
 * A tensor from nested arrays, a typed array (1-D unless `shape` is given) or a number. The
 * dtype defaults to the typed array's (Float64Array: float64, Int32Array: int32, Uint16Array:
 * bfloat16 bits), else float32.
 *
 * @example
 * ```ts
 * import { tensor } from "./creation.ts";
 * tensor([[1, 2], [3, 4]], { dtype: "float64" }).shape; // [2, 2]
 * tensor(new Float32Array(6), { shape: [2, 3] }).shape; // [2, 3]
 * ```
 */
export function tensor(
  data: NestedArray | HostArray | NumericArray,
  options: CreateOptions & { shape?: readonly number[] } = {},
): Tensor {
  const isTyped = ArrayBuffer.isView(data);
  const fallback: DType = data instanceof Float64Array
    ? "float64"
    : data instanceof Int32Array
    ? "int32"
    : data instanceof Uint16Array
    ? "bfloat16"
    : "float32";
  const { backend, dtype } = pick("tensor", options, fallback, ["shape"]);
  let shape: number[];
  let flat: HostArray | number[];
  if (isTyped) {
    flat = hostData("tensor", data);
    shape = options.shape ? checkShape("tensor", options.shape) : [flat.length];
  } else {
    const nested = data as NestedArray;
    shape = inferShape(nested);
    const out: number[] = [];
    flattenInto(nested, shape, 0, out);
    flat = out;
    if (options.shape) {
      const s = checkShape("tensor", options.shape);
      if (sizeOf(s) !== out.length) {
        throw new ShapeError("tensor", `shape [${s}] does not hold ${out.length} elements`);
      }
      shape = s;
    }
  }
  if (sizeOf(shape) !== flat.length) {
    throw new ShapeError("tensor", `shape [${shape}] does not hold ${flat.length} elements`);
  }
  return finish(Tensor.fromBuffer(backend.fromHost(flat, dtype), shape, dtype), options);
}

/**
 * A tensor of `shape` filled with `value`.
 *
 * @example
 * ```ts
 * import { full } from "./creation.ts";
 * full([2], 7).toArray(); // [7, 7]
 * ```
 */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  checkShape("full", shape);
  checkNumber("full", "value", value, { finite: false });
  return filled("full", shape, value, options);
}

function filled(op: string, shape: readonly number[], value: number, options: CreateOptions): Tensor {
  const s = checkShape(op, shape);
  const { backend, dtype } = pick(op, options);
  return finish(Tensor.fromBuffer(backend.full(sizeOf(s), value, dtype), s, dtype), options);
}

/**
 * Zeros of `shape`.
 *
 * @example
 * ```ts
 * import { zeros } from "./creation.ts";
 * zeros([2, 3]).size; // 6
 * ```
 */
export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return filled("zeros", shape, 0, options);
}

/**
 * Ones of `shape`.
 *
 * @example
 * ```ts
 * import { ones } from "./creation.ts";
 * ones([2]).toArray(); // [1, 1]
 * ```
 */
export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return filled("ones", shape, 1, options);
}

function likeOptions(op: string, t: Tensor, options: CreateOptions): CreateOptions {
  checkTensor(op, "t", t);
  return { dtype: t.dtype, backend: t.backend, ...checkOptions(op, options, CREATE_KEYS) };
}

/**
 * A tensor shaped like `t` (same dtype and backend unless overridden) filled with `value`.
 *
 * @example
 * ```ts
 * import { fullLike, ones } from "./creation.ts";
 * fullLike(ones([2]), 3).toArray(); // [3, 3]
 * ```
 */
export function fullLike(t: Tensor, value: number, options: CreateOptions = {}): Tensor {
  const o = likeOptions("fullLike", t, options);
  return full(t.shape, value, o);
}

/**
 * Zeros shaped like `t`.
 *
 * @example
 * ```ts
 * import { zerosLike, ones } from "./creation.ts";
 * zerosLike(ones([2])).toArray(); // [0, 0]
 * ```
 */
export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor {
  const o = likeOptions("zerosLike", t, options);
  return filled("zerosLike", t.shape, 0, o);
}

/**
 * Ones shaped like `t`.
 *
 * @example
 * ```ts
 * import { onesLike, zeros } from "./creation.ts";
 * onesLike(zeros([2])).toArray(); // [1, 1]
 * ```
 */
export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor {
  const o = likeOptions("onesLike", t, options);
  return filled("onesLike", t.shape, 1, o);
}

/**
 * Evenly spaced values in [start, stop) (one argument: [0, stop)). Integer arguments give int32
 * unless a dtype is set; otherwise float32.
 *
 * @example
 * ```ts
 * import { arange } from "./creation.ts";
 * arange(5).toArray(); // [0, 1, 2, 3, 4]
 * arange(0, 1, 0.25).toArray(); // [0, 0.25, 0.5, 0.75]
 * ```
 */
export function arange(start: number, stop?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [a, b] = stop === undefined
    ? [0, checkNumber("arange", "stop", start)]
    : [checkNumber("arange", "start", start), checkNumber("arange", "stop", stop)];
  if (checkNumber("arange", "step", step) === 0) throw new ArgumentError("arange", "step must be non-zero, got 0");
  const n = Math.max(0, Math.ceil((b - a) / step));
  const integral = Number.isInteger(a) && Number.isInteger(b) && Number.isInteger(step);
  const { backend, dtype } = pick("arange", options, integral ? "int32" : "float32");
  return finish(Tensor.fromBuffer(backend.arange(n, a, step, dtype), [n], dtype), options);
}

/**
 * `num` evenly spaced values from start to stop inclusive.
 *
 * @example
 * ```ts
 * import { linspace } from "./creation.ts";
 * linspace(0, 1, 5).toArray(); // [0, 0.25, 0.5, 0.75, 1]
 * ```
 */
export function linspace(start: number, stop: number, num: number, options: CreateOptions = {}): Tensor {
  checkNumber("linspace", "start", start);
  checkNumber("linspace", "stop", stop);
  checkInteger("linspace", "num", num, { min: 0 });
  const { backend, dtype } = pick("linspace", options);
  const host = new Float64Array(num);
  const step = num > 1 ? (stop - start) / (num - 1) : 0;
  for (let i = 0; i < num; i++) host[i] = i === num - 1 && num > 1 ? stop : start + i * step;
  return finish(Tensor.fromBuffer(backend.fromHost(host, dtype), [num], dtype), options);
}

/**
 * The n×m identity matrix (m defaults to n).
 *
 * @example
 * ```ts
 * import { eye } from "./creation.ts";
 * eye(2).toArray(); // [[1, 0], [0, 1]]
 * ```
 */
export function eye(n: number, m = n, options: CreateOptions = {}): Tensor {
  checkInteger("eye", "n", n, { min: 0 });
  checkInteger("eye", "m", m, { min: 0 });
  const { backend, dtype } = pick("eye", options);
  const host = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) host[i * m + i] = 1;
  return finish(Tensor.fromBuffer(backend.fromHost(host, dtype), [n, m], dtype), options);
}

/**
 * A seeded stream of random numbers. Each draw takes the next block of the stream, so a program
 * that draws the same shapes in the same order gets the same numbers, on any backend.
 *
 * @example
 * ```ts
 * import { Generator, randn } from "./creation.ts";
 * const g = new Generator(42);
 * randn([3], { generator: g });
 * ```
 */
export class Generator {
  /** The seed (a non-negative integer below 2⁵³). */
  readonly seed: number;
  /** Position in the stream (elements drawn so far). */
  offset = 0;

  /** A generator for `seed`, starting at the beginning of its stream. */
  constructor(seed: number) {
    this.seed = checkInteger("Generator", "seed", seed, { min: 0 });
  }

  /** Reserves `n` elements of the stream and returns where they start. */
  take(n: number): number {
    const at = this.offset;
    // Keep blocks aligned so the position never depends on odd sizes drawn earlier in a way that
    // differs between backends: every draw starts on a multiple of 4.
    this.offset += Math.ceil(n / 4) * 4;
    return at;
  }
}

let defaultGenerator = new Generator(0);

/**
 * Re-seeds the default generator (used when no `generator`/`seed` is given).
 *
 * @example
 * ```ts
 * import { manualSeed, rand } from "./creation.ts";
 * manualSeed(1);
 * const a = rand([2]);
 * manualSeed(1);
 * const b = rand([2]); // same numbers as a
 * ```
 */
export function manualSeed(seed: number): void {
  defaultGenerator = new Generator(seed);
}

/** Options of the random creation functions. */
export interface RandomOptions extends CreateOptions {
  /** Draw from this generator (advancing it). */
  generator?: Generator;
  /** Draw from a fresh generator with this seed (ignored when `generator` is given). */
  seed?: number;
}

function draw(kind: "uniform" | "normal", shape: readonly number[], options: RandomOptions): Tensor {
  const op = kind === "uniform" ? "rand" : "randn";
  const s = checkShape(op, shape);
  const { backend, dtype } = pick(op, options, "float32", ["generator", "seed"]);
  if (options.generator !== undefined && !(options.generator instanceof Generator)) {
    throw new ArgumentError(op, `generator must be a Generator, got ${describe(options.generator)}`);
  }
  const gen = options.generator ?? (options.seed !== undefined ? new Generator(options.seed) : defaultGenerator);
  const n = sizeOf(s);
  const at = gen.take(n);
  return Tensor.fromBuffer(backend.random(kind, n, gen.seed, at, dtype), s, dtype);
}

/**
 * Uniform random numbers in (0, 1).
 *
 * @example
 * ```ts
 * import { rand } from "./creation.ts";
 * rand([2, 2], { seed: 7 }).shape; // [2, 2]
 * ```
 */
export function rand(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return finish(draw("uniform", shape, options), options);
}

/**
 * Standard normal random numbers.
 *
 * @example
 * ```ts
 * import { randn } from "./creation.ts";
 * randn([1000], { seed: 7, dtype: "float64" }).mean().item(); // close to 0
 * ```
 */
export function randn(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return finish(draw("normal", shape, options), options);
}

/**
 * Uniform random integers in [low, high) as int32.
 *
 * @example
 * ```ts
 * import { randint } from "./creation.ts";
 * randint(0, 10, [5], { seed: 1 }).dtype; // "int32"
 * ```
 */
export function randint(low: number, high: number, shape: readonly number[], options: RandomOptions = {}): Tensor {
  checkInteger("randint", "low", low);
  checkInteger("randint", "high", high);
  if (high <= low) throw new ArgumentError("randint", `needs low < high, got ${low} and ${high}`);
  const u = draw("uniform", shape, { ...options, dtype: "float64" });
  return cast(floor(u.mul(high - low).add(low)), "int32");
}

/**
 * Typed errors. Each names the operation that refused its input and says what was wrong, so a
 * message reads like `matmul: shapes [2,3] and [4,5] do not agree: inner dimensions 3 and 4`.
 *
 * @module
 */

/**
 * Base class of every error patchwork raises on purpose.
 *
 * @example
 * ```ts
 * import { PatchworkError } from "./errors.ts";
 * try { throw new PatchworkError("op", "bad"); } catch (e) { (e as PatchworkError).op; } // "op"
 * ```
 */
export class PatchworkError extends Error {
  /** The operation that raised the error. */
  readonly op: string;
  /** Builds `op: detail` as the message. */
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.op = op;
    this.name = new.target.name;
  }
}

/**
 * Shapes that do not fit the operation (broadcasting, matmul inner sizes, reshape sizes, axes).
 *
 * @example
 * ```ts
 * import { ShapeError } from "./errors.ts";
 * new ShapeError("add", "shapes [2] and [3] do not broadcast").message;
 * ```
 */
export class ShapeError extends PatchworkError {}

/**
 * A dtype the operation does not accept, or operands whose dtypes cannot be combined.
 *
 * @example
 * ```ts
 * import { DTypeError } from "./errors.ts";
 * new DTypeError("exp", "int32 input; cast to float32 first").message;
 * ```
 */
export class DTypeError extends PatchworkError {}

/**
 * Operands that live on different backends, or a backend that cannot be used.
 *
 * @example
 * ```ts
 * import { DeviceError } from "./errors.ts";
 * new DeviceError("add", "operands on cpu and cuda").message;
 * ```
 */
export class DeviceError extends PatchworkError {}

/**
 * A bad argument value (negative size, out-of-range index, unknown option).
 *
 * @example
 * ```ts
 * import { ArgumentError } from "./errors.ts";
 * new ArgumentError("arange", "step must be non-zero").message;
 * ```
 */
export class ArgumentError extends PatchworkError {}

/**
 * A NaN or infinity where a finite value is required (a loss, a solver input).
 *
 * @example
 * ```ts
 * import { NonFiniteError } from "./errors.ts";
 * new NonFiniteError("train", "loss is NaN at step 12").message;
 * ```
 */
export class NonFiniteError extends PatchworkError {}

/**
 * Misuse of the autodiff machinery (no gradient path, backward twice through a freed graph).
 *
 * @example
 * ```ts
 * import { AutodiffError } from "./errors.ts";
 * new AutodiffError("backward", "called on a non-scalar").message;
 * ```
 */
export class AutodiffError extends PatchworkError {}

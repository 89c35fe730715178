/**
 * Element types of patchwork tensors and the rules that combine them.
 *
 * - `float32`, `float64`: IEEE floats, the differentiable dtypes.
 * - `bfloat16`: storage format (16 bits, the top half of a float32); arithmetic
 *   accumulates in float32.
 * - `int32`: indices and counts; never differentiated.
 *
 * @module
 */

import { DTypeError } from "./errors.ts";
import { describe } from "./validate.ts";

/** The element type of a tensor. */
export type DType = "float32" | "float64" | "bfloat16" | "int32";

/** Every dtype, in promotion order (lowest first). */
export const DTYPES: readonly DType[] = ["int32", "bfloat16", "float32", "float64"];

/** Host array type used to move data of each dtype in and out of a backend. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint16Array;

/**
 * Bytes per element.
 *
 * @example
 * ```ts
 * import { itemSize } from "./dtype.ts";
 * itemSize("bfloat16"); // 2
 * ```
 */
export function itemSize(dtype: DType): number {
  switch (dtype) {
    case "float64":
      return 8;
    case "float32":
    case "int32":
      return 4;
    case "bfloat16":
      return 2;
  }
}

/**
 * Whether values of this dtype can carry gradients.
 *
 * @example
 * ```ts
 * import { isFloat } from "./dtype.ts";
 * isFloat("int32"); // false
 * ```
 */
export function isFloat(dtype: DType): boolean {
  return dtype !== "int32";
}

/**
 * The dtype two operands are computed in (NumPy/PyTorch style: the wider type wins;
 * integers combined with floats give the float).
 *
 * @example
 * ```ts
 * import { promoteTypes } from "./dtype.ts";
 * promoteTypes("float32", "float64"); // "float64"
 * ```
 */
export function promoteTypes(a: DType, b: DType): DType {
  return DTYPES.indexOf(a) >= DTYPES.indexOf(b) ? a : b;
}

/**
 * Allocates a zeroed host array for `n` elements of `dtype` (bfloat16 as raw `Uint16Array` bits).
 *
 * @example
 * ```ts
 * import { allocHost } from "./dtype.ts";
 * allocHost("float32", 4).length; // 4
 * ```
 */
export function allocHost(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case "float64":
      return new Float64Array(n);
    case "float32":
      return new Float32Array(n);
    case "int32":
      return new Int32Array(n);
    case "bfloat16":
      return new Uint16Array(n);
  }
}

/**
 * Checks that `value` names a dtype, for user-facing arguments.
 *
 * @example
 * ```ts
 * import { checkDType } from "./dtype.ts";
 * checkDType("float16", "zeros"); // throws DTypeError
 * ```
 */
export function checkDType(value: unknown, op: string): DType {
  if (typeof value === "string" && (DTYPES as readonly string[]).includes(value)) {
    return value as DType;
  }
  throw new DTypeError(op, `unknown dtype ${describe(value)}; expected one of ${DTYPES.join(", ")}`);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Rounds a number to bfloat16 (round to nearest even) and returns its 16 raw bits.
 *
 * @example
 * ```ts
 * import { toBFloat16Bits, fromBFloat16Bits } from "./dtype.ts";
 * fromBFloat16Bits(toBFloat16Bits(1.5)); // 1.5
 * ```
 */
export function toBFloat16Bits(x: number): number {
  f32[0] = x;
  let bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return (bits >>> 16) | 0x40;
  // Rounding x to float32 first can land exactly on a bfloat16 halfway point that x itself is not
  // on (double rounding); nudge toward x so the tie-break below rounds the way x does.
  if ((bits & 0xffff) === 0x8000 && f32[0] !== x && Number.isFinite(x)) {
    bits += Math.abs(x) > Math.abs(f32[0]) ? 1 : -1;
  }
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/**
 * Widens 16 bfloat16 bits to a number.
 *
 * @example
 * ```ts
 * import { fromBFloat16Bits } from "./dtype.ts";
 * fromBFloat16Bits(0x3f80); // 1
 * ```
 */
export function fromBFloat16Bits(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/**
 * What every op family of the CUDA backend shares.
 *
 * @module
 */

import type { DType } from "../../tensor/dtype.ts";

/**
 * The suffix of each storage type in kernel names (`unary_exp_f32`).
 *
 * @example
 * ```ts
 * import { SFX } from "./device.ts";
 * SFX.bfloat16; // "bf16"
 * ```
 */
export const SFX: Readonly<Record<DType, string>> = { float32: "f32", float64: "f64", bfloat16: "bf16", int32: "i32" };

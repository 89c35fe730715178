/**
 * The operand contract of the fused Adam primitive (`OptimPrimitives.adam`), checked the same way
 * by every backend before its update runs.
 *
 * @module
 */

import type { DType } from "../tensor/dtype.ts";
import { ArgumentError, DTypeError } from "../tensor/errors.ts";
import { isContiguous } from "../tensor/shape.ts";

/** One operand of the fused update: its name, its buffer's dtype and its view's layout. */
export interface AdamOperand {
  /** "param", "grad", "expAvg", "expAvgSq" or "copyTo". */
  readonly name: string;
  /** The dtype of the operand's buffer. */
  readonly dtype: DType;
  /** The view's shape. */
  readonly shape: readonly number[];
  /** The view's strides. */
  readonly strides: readonly number[];
}

/**
 * Checks the operands of one fused Adam(W) update: float32/float64 parameters, moments of the
 * parameter's dtype, a gradient of that dtype (or bfloat16 for float32 parameters), a bfloat16
 * `copyTo`, and every operand contiguous with the parameter's element count. Returns that count.
 *
 * @example
 * ```ts
 * import { checkAdamOperands } from "./adam_operands.ts";
 * const v = (name: string) => ({ name, dtype: "float32" as const, shape: [2, 3], strides: [3, 1] });
 * checkAdamOperands("adam", v("param"), v("grad"), v("expAvg"), v("expAvgSq"), null); // 6
 * ```
 */
export function checkAdamOperands(
  op: string,
  param: AdamOperand,
  grad: AdamOperand,
  expAvg: AdamOperand,
  expAvgSq: AdamOperand,
  copyTo: AdamOperand | null,
): number {
  const dtype = param.dtype;
  if (dtype !== "float32" && dtype !== "float64") {
    throw new DTypeError(op, `parameters must be float32 or float64, got ${dtype}`);
  }
  if (expAvg.dtype !== dtype || expAvgSq.dtype !== dtype) {
    throw new DTypeError(op, `moments must be ${dtype}, got ${expAvg.dtype} and ${expAvgSq.dtype}`);
  }
  if (grad.dtype !== dtype && !(dtype === "float32" && grad.dtype === "bfloat16")) {
    throw new DTypeError(op, `a ${dtype} parameter needs a ${dtype} gradient, got ${grad.dtype}`);
  }
  if (copyTo && copyTo.dtype !== "bfloat16") throw new DTypeError(op, `copyTo must be bfloat16, got ${copyTo.dtype}`);
  const n = param.shape.reduce((a, b) => a * b, 1);
  for (const o of [param, grad, expAvg, expAvgSq, copyTo]) {
    if (!o) continue;
    const size = o.shape.reduce((a, b) => a * b, 1);
    if (size !== n) throw new ArgumentError(op, `${o.name} has ${size} elements, the parameter ${n}`);
    if (!isContiguous(o.shape, o.strides)) throw new ArgumentError(op, `${o.name} must be contiguous`);
  }
  return n;
}

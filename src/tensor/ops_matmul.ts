/**
 * Matrix products with NumPy semantics: batched, broadcasting over leading axes, 1-D operands
 * promoted to a row (left) or column (right) vector and the added axis removed afterwards.
 *
 * @module
 */

import { record } from "./autograd.ts";
import { promoteTypes } from "./dtype.ts";
import { ShapeError } from "./errors.ts";
import { broadcastShapes, fmtShape } from "./shape.ts";
import { Tensor } from "./tensor.ts";
import { expand, reshape, transpose } from "./ops_shape.ts";
import { checkTensor, sameBackend } from "./validate.ts";

/**
 * The matrix product a·b.
 *
 * @example
 * ```ts
 * import { matmul } from "./ops_matmul.ts";
 * import { tensor } from "./creation.ts";
 * matmul(tensor([[1, 2], [3, 4]]), tensor([1, 1])).toArray(); // [3, 7]
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  sameBackend("matmul", checkTensor("matmul", "a", a), checkTensor("matmul", "b", b));
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(
      "matmul",
      `operands must have at least one axis, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  const a2 = a.ndim === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.ndim === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const [m, k] = a2.shape.slice(-2);
  const [k2, n] = b2.shape.slice(-2);
  if (k !== k2) {
    throw new ShapeError(
      "matmul",
      `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not agree: inner dimensions ${k} and ${k2}`,
    );
  }
  let batch: number[];
  try {
    batch = broadcastShapes("matmul", a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  } catch {
    throw new ShapeError(
      "matmul",
      `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not agree: batch dimensions ` +
        `${fmtShape(a2.shape.slice(0, -2))} and ${fmtShape(b2.shape.slice(0, -2))} do not broadcast`,
    );
  }
  const dtype = promoteTypes(a.dtype, b.dtype);
  const ae = expand(a2.dtype === dtype ? a2 : a2.cast(dtype), [...batch, m, k]);
  const be = expand(b2.dtype === dtype ? b2 : b2.cast(dtype), [...batch, k, n]);
  const out = Tensor.fromBuffer(a.backend.matmul(ae, be, dtype), [...batch, m, n], dtype);
  // An operand that is a transposed view (a Linear layer's weightᵀ) gets its gradient computed as
  // the transpose of the product in the other order: the same numbers, laid out like the operand
  // underneath, so the gradient reaching the weight is contiguous instead of needing a copy.
  record("matmul", out, [ae, be], [], (g, needs) => [
    needs[0] ? (columnMajor(ae) ? transpose(matmul(be, transpose(g))) : matmul(g, transpose(be))) : null,
    needs[1] ? (columnMajor(be) ? transpose(matmul(transpose(g), ae)) : matmul(transpose(ae), g)) : null,
  ]);
  if (a.ndim === 1 && b.ndim === 1) return reshape(out, []);
  if (a.ndim === 1) return reshape(out, [...batch, n]);
  if (b.ndim === 1) return reshape(out, [...batch, m]);
  return out;
}

/** Whether the last two axes are laid out column by column (unit row stride), as a transposed view. */
function columnMajor(t: Tensor): boolean {
  const r = t.ndim;
  return t.shape[r - 2] > 1 && t.shape[r - 1] > 1 && t.strides[r - 2] === 1 && t.strides[r - 1] !== 1;
}

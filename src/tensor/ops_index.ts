/**
 * Indexing: gather, scatter-add, index-select and embedding lookup. Indices are int32 tensors;
 * out-of-range indices are reported by the backend (on the CPU with the offending value).
 *
 * @module
 */

import { record } from "./autograd.ts";
import { DTypeError, ShapeError } from "./errors.ts";
import { fmtShape } from "./shape.ts";
import { checkTensor, normalizeAxis, sameBackend } from "./validate.ts";
import { Tensor } from "./tensor.ts";
import { add } from "./ops_elementwise.ts";
import { expand, reshape } from "./ops_shape.ts";

/**
 * Checks the input, the axis and the int32 index (and `src`) of an indexing op, tensors on one
 * backend; returns the axis resolved.
 */
function checkIndex(op: string, x: Tensor, axis: number, index: Tensor, src?: Tensor): number {
  checkTensor(op, "x", x);
  const a = normalizeAxis(op, axis, x.ndim);
  checkTensor(op, "index", index);
  sameBackend(op, x, index);
  if (src !== undefined) sameBackend(op, x, checkTensor(op, "src", src));
  if (index.dtype !== "int32") throw new DTypeError(op, `index must be int32, got ${index.dtype}`);
  return a;
}

/**
 * `out[..i.., j, ..k..] = x[..i.., index[..i.., j, ..k..], ..k..]` along `axis` (torch.gather). The
 * index has x's rank, and no larger extent than x outside `axis`; the result has the index's shape.
 *
 * @example
 * ```ts
 * import { gather } from "./ops_index.ts";
 * import { tensor } from "./creation.ts";
 * gather(tensor([[1, 2], [3, 4]]), 1, tensor([[1], [0]], { dtype: "int32" })).toArray(); // [[2], [3]]
 * ```
 */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = checkIndex("gather", x, axis, index);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== a && d > x.shape[i])) {
    throw new ShapeError(
      "gather",
      `index shape ${fmtShape(index.shape)} does not fit input ${fmtShape(x.shape)} along axis ${a}`,
    );
  }
  const out = Tensor.fromBuffer(x.backend.gather(x, a, index, x.dtype), index.shape, x.dtype);
  return record("gather", out, [x], [index], (g) => [scatterAddZeros(x.shape, a, index, g)]);
}

function scatterAddZeros(shape: readonly number[], axis: number, index: Tensor, src: Tensor): Tensor {
  const out = Tensor.fromBuffer(src.backend.scatterAdd(shape, axis, index, src, src.dtype), shape, src.dtype);
  return record("scatterAdd", out, [src], [index], (g) => [gather(g, axis, index)]);
}

/**
 * `x` plus `src` scattered along `axis`: `out[.., index[..j..], ..] += src[..j..]` (torch.scatter_add;
 * repeated indices accumulate).
 *
 * @example
 * ```ts
 * import { scatterAdd } from "./ops_index.ts";
 * import { tensor, zeros } from "./creation.ts";
 * scatterAdd(zeros([3]), 0, tensor([0, 0, 2], { dtype: "int32" }), tensor([1, 2, 3])).toArray(); // [3, 0, 3]
 * ```
 */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  const a = checkIndex("scatterAdd", x, axis, index, src);
  if (
    index.ndim !== x.ndim || src.ndim !== x.ndim ||
    index.shape.some((d, i) => d > src.shape[i] || (i !== a && d > x.shape[i]))
  ) {
    throw new ShapeError(
      "scatterAdd",
      `index ${fmtShape(index.shape)}, src ${fmtShape(src.shape)} and input ${
        fmtShape(x.shape)
      } do not fit along axis ${a}`,
    );
  }
  const s = index.shape.every((d, i) => d === src.shape[i]) ? src : src.slice(index.shape.map((d) => [0, d]));
  return add(x, scatterAddZeros(x.shape, a, index, s.dtype === x.dtype ? s : s.cast(x.dtype)));
}

/**
 * The slices of `x` along `axis` picked by a 1-D int32 `index` (repeats allowed).
 *
 * @example
 * ```ts
 * import { indexSelect } from "./ops_index.ts";
 * import { tensor } from "./creation.ts";
 * indexSelect(tensor([[1, 2], [3, 4]]), 0, tensor([1, 1], { dtype: "int32" })).toArray(); // [[3, 4], [3, 4]]
 * ```
 */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = checkIndex("indexSelect", x, axis, index);
  if (index.ndim !== 1) throw new ShapeError("indexSelect", `index must be 1-D, got shape ${fmtShape(index.shape)}`);
  const idxShape = x.shape.map((_, i) => (i === a ? index.shape[0] : 1));
  const outShape = x.shape.map((d, i) => (i === a ? index.shape[0] : d));
  return gather(x, a, expand(reshape(index, idxShape), outShape));
}

/**
 * Embedding lookup: rows of `weight` ([vocab, dim]) for each id in `ids` (int32, any shape);
 * the result has shape `[...ids.shape, dim]`.
 *
 * @example
 * ```ts
 * import { embedding } from "./ops_index.ts";
 * import { tensor } from "./creation.ts";
 * embedding(tensor([[0, 0], [1, 1]]), tensor([1, 0, 1], { dtype: "int32" })).shape; // [3, 2]
 * ```
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (checkTensor("embedding", "weight", weight).ndim !== 2) {
    throw new ShapeError("embedding", `weight must be [vocab, dim], got ${fmtShape(weight.shape)}`);
  }
  checkIndex("embedding", weight, 0, ids);
  return reshape(indexSelect(weight, 0, reshape(ids, [-1])), [...ids.shape, weight.shape[1]]);
}

/**
 * Token cross-entropy for language models: {@link crossEntropy} on logits, and
 * {@link linearCrossEntropy}, which takes the final hidden states and the LM head's weight and
 * walks the vocabulary in slices with an online log-sum-exp, so the logits (and probabilities) of
 * only one slice of the vocabulary exist at a time — forward and backward. With a vocabulary of
 * 150K and a few thousand tokens that is the difference between gigabytes and megabytes.
 *
 * @module
 */

import {
  arange,
  ArgumentError,
  concat,
  customFunction,
  type DType,
  DTypeError,
  fmtShape,
  full,
  type FusedPrimitives,
  isGradEnabled,
  ShapeError,
  Tensor,
  tensor,
  tidy,
  where,
  zeros,
} from "../tensor/mod.ts";
import { fusedPrimitives, type Implementation } from "../nn/mod.ts";

/**
 * Options of {@link crossEntropy} and {@link linearCrossEntropy}.
 *
 * @example
 * ```ts
 * import type { CrossEntropyOptions } from "./loss.ts";
 * const o: CrossEntropyOptions = { ignoreIndex: -100, reduction: "sum" };
 * ```
 */
export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, not counted). Default −100, as PyTorch. */
  ignoreIndex?: number;
  /**
   * `mean` over the counted targets (default; NaN when none is counted, as PyTorch), `sum`, or
   * `none` (one loss per target, 0 where ignored).
   */
  reduction?: "mean" | "sum" | "none";
}

/** Targets on the host, checked against the vocabulary. */
interface HostTargets {
  ids: Int32Array;
  count: number;
  shape: readonly number[];
}

function hostTargets(op: string, targets: Tensor | ArrayLike<number>, vocab: number, ignore: number): HostTargets {
  let ids: Int32Array;
  let shape: readonly number[];
  if (Array.isArray(targets) || ArrayBuffer.isView(targets)) {
    ids = Int32Array.from(targets as ArrayLike<number>);
    shape = [ids.length];
  } else {
    const t = targets as Tensor;
    if (t.dtype !== "int32") throw new DTypeError(op, `targets must be int32, got ${t.dtype}`);
    ids = t.toTypedArray() as Int32Array;
    shape = t.shape;
  }
  let count = 0;
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (v === ignore) continue;
    if (!(v >= 0 && v < vocab)) {
      throw new ArgumentError(
        op,
        `target ${v} at position ${i} is outside the vocabulary [0, ${vocab}) and is not ignoreIndex ${ignore}`,
      );
    }
    count++;
  }
  return { ids, count, shape };
}

function reduceRows(op: string, rows: Tensor, t: HostTargets, reduction: string): Tensor {
  if (reduction === "none") return rows.reshape([...t.shape]);
  if (reduction === "sum") return rows.sum();
  if (reduction === "mean") return rows.sum().div(t.count);
  throw new ArgumentError(op, `reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
}

function accumulationType(dtype: DType): DType {
  return dtype === "float64" ? "float64" : "float32";
}

/**
 * Cross-entropy of `logits` (`[..., V]`) against int32 `targets` (`[...]`), computed with a
 * log-softmax in float32 (float64 for float64 logits). A target outside `[0, V)` that is not
 * `ignoreIndex` raises an {@link ArgumentError} naming it.
 *
 * @example
 * ```ts
 * import { crossEntropy } from "./loss.ts";
 * import { tensor } from "../tensor/mod.ts";
 * crossEntropy(tensor([[0, 0]]), tensor([1], { dtype: "int32" })).item(); // ln 2
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor | ArrayLike<number>,
  options: CrossEntropyOptions = {},
): Tensor {
  const op = "crossEntropy";
  const v = logits.shape[logits.ndim - 1];
  const t = hostTargets(op, targets, v, options.ignoreIndex ?? -100);
  const n = t.ids.length;
  if (logits.size !== n * v) {
    throw new ShapeError(op, `logits ${fmtShape(logits.shape)} do not fit ${n} targets of shape ${fmtShape(t.shape)}`);
  }
  const valid = new Float64Array(n);
  const safe = new Int32Array(n);
  t.ids.forEach((id, i) => {
    valid[i] = id === (options.ignoreIndex ?? -100) ? 0 : 1;
    safe[i] = valid[i] ? id : 0;
  });
  const acc = accumulationType(logits.dtype);
  const logp = logits.reshape([n, v]).cast(acc).logSoftmax(-1);
  const picked = logp.gather(1, tensor(safe, { shape: [n, 1], dtype: "int32", backend: logits.backend }));
  const rows = picked.reshape([n]).neg().mul(tensor(valid, { dtype: acc, backend: logits.backend }));
  return reduceRows(op, rows, t, options.reduction ?? "mean");
}

/**
 * Options of {@link linearCrossEntropy}.
 *
 * @example
 * ```ts
 * import type { LinearCrossEntropyOptions } from "./loss.ts";
 * const o: LinearCrossEntropyOptions = { sliceSize: 4096, reduction: "sum" };
 * ```
 */
export interface LinearCrossEntropyOptions extends CrossEntropyOptions {
  /** Vocabulary rows per slice. Default 8192. */
  sliceSize?: number;
  /** The per-slice steps: `auto` (the backend's fused kernels where it prefers them), `fused`, `composed`. */
  implementation?: Implementation;
}

/** Per slice of the vocabulary: where each row's target sits in it (column, or −1). */
function targetColumns(ids: Int32Array, start: number, size: number): Int32Array {
  return ids.map((id) => (id >= start && id < start + size ? id - start : -1));
}

/**
 * Cross-entropy of the logits `hidden · weightᵀ` (`hidden` `[..., D]`, `weight` `[V, D]`, the LM
 * head) against int32 `targets` (`[...]`), without materialising the logits: the vocabulary is
 * walked in slices of `sliceSize` rows with an online log-sum-exp in float32 (float64 for float64
 * inputs), and the backward walks it again, recomputing each slice's logits. Equal to
 * `crossEntropy(hidden.matmul(weight.transpose()), targets)` up to rounding; differentiable with
 * respect to `hidden` and `weight` (twice, when the caller records the backward).
 *
 * @example
 * ```ts
 * import { linearCrossEntropy } from "./loss.ts";
 * import { randn, tensor } from "../tensor/mod.ts";
 * const h = randn([6, 16]).requireGrad();
 * const w = randn([1000, 16]).requireGrad();
 * const loss = linearCrossEntropy(h, w, tensor([1, 5, 9, 999, 0, -100], { dtype: "int32" }), { sliceSize: 256 });
 * loss.backward(); // h.grad, w.grad
 * ```
 */
export function linearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor | ArrayLike<number>,
  options: LinearCrossEntropyOptions = {},
): Tensor {
  const op = "linearCrossEntropy";
  if (weight.ndim !== 2 || hidden.ndim < 1 || hidden.shape[hidden.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(
      op,
      `hidden ${fmtShape(hidden.shape)} and weight ${fmtShape(weight.shape)} do not fit ([..., D] and [V, D])`,
    );
  }
  const [vocab, dim] = weight.shape;
  const ignore = options.ignoreIndex ?? -100;
  const t = hostTargets(op, targets, vocab, ignore);
  const n = t.ids.length;
  if (hidden.size !== n * dim) {
    throw new ShapeError(
      op,
      `hidden ${fmtShape(hidden.shape)} does not fit ${n} targets of shape ${fmtShape(t.shape)}`,
    );
  }
  const slice = options.sliceSize ?? 8192;
  if (!Number.isSafeInteger(slice) || slice <= 0) {
    throw new ArgumentError(op, `sliceSize must be a positive integer, got ${slice}`);
  }
  const reduction = options.reduction ?? "mean";
  const acc = accumulationType(hidden.dtype);
  const backend = hidden.backend;
  const valid = tensor(Float64Array.from(t.ids, (id) => (id === ignore ? 0 : 1)), {
    shape: [n, 1],
    dtype: acc,
    backend,
  });
  const starts = Array.from({ length: Math.ceil(vocab / slice) }, (_, i) => i * slice);
  const logitsOf = (h: Tensor, w: Tensor, start: number) => {
    const size = Math.min(slice, vocab - start);
    return h.matmul(w.narrow(0, start, size).transpose()).cast(acc);
  };
  const onehot = (start: number, size: number) => {
    const cols = tensor(targetColumns(t.ids, start, size), { shape: [n, 1], dtype: "int32", backend });
    return arange(0, size, 1, { dtype: "int32", backend }).reshape([1, size]).eq(cols).cast(acc);
  };
  // log Σ_v exp(z_v) per row, slice by slice (differentiable when recorded).
  const logsumexp = (h: Tensor, w: Tensor): Tensor => {
    let m: Tensor | null = null;
    let l: Tensor | null = null;
    for (const start of starts) {
      [m, l] = tidy(() => {
        const z = logitsOf(h, w, start);
        const top = z.max(1, true).detach();
        const next: Tensor = m ? m.maximum(top) : top;
        const sum = z.sub(next).exp().sum(1, true);
        return [next, l ? l.mul(m!.sub(next).exp()).add(sum) : sum];
      });
    }
    return l!.log().add(m!);
  };
  const f = fusedPrimitives(options.implementation ?? "auto", hidden, op);
  const columns = (start: number, size: number) =>
    tensor(targetColumns(t.ids, start, size), { shape: [n], dtype: "int32", backend });
  // The log-sum-exp and the target's logit per row, from the backend's per-slice kernel.
  const fusedForward = (fp: FusedPrimitives, h2: Tensor, w: Tensor): [Tensor, Tensor] => {
    let [m, l, picked] = [
      full([n], -Infinity, { dtype: acc, backend }),
      zeros([n], { dtype: acc, backend }),
      zeros([n], { dtype: acc, backend }),
    ];
    for (const start of starts) {
      const size = Math.min(slice, vocab - start);
      [m, l, picked] = tidy(() => {
        const r = fp.crossEntropySlice(logitsOf(h2, w, start), columns(start, size), m, l, picked, size, acc);
        return [r.m, r.l, r.picked].map((b) => Tensor.fromBuffer(b, [n], acc));
      });
    }
    return [l.log().add(m).reshape([n, 1]), picked.reshape([n, 1])];
  };
  const composedForward = (h2: Tensor, w: Tensor): [Tensor, Tensor] => {
    // Each row's target logit from the target's row of the head alone — the slices' products are
    // the log-sum-exp's — and selected, so a −∞ logit elsewhere in the row costs nothing; ignored
    // rows pick nothing.
    const ids = tensor(Int32Array.from(t.ids, (id) => (id === ignore ? 0 : id)), {
      shape: [n],
      dtype: "int32",
      backend,
    });
    const picked = h2.cast(acc).mul(w.indexSelect(0, ids).cast(acc)).sum(1, true);
    return [logsumexp(h2, w), where(valid, picked, 0)];
  };
  const fn = customFunction((h: Tensor, w: Tensor) => {
    const h2 = h.reshape([n, dim]);
    const [lse, picked] = f ? fusedForward(f, h2, w) : composedForward(h2, w);
    const rows = lse.sub(picked).mul(valid).reshape([n]);
    // The inputs themselves are the residuals, so a recorded backward stays connected to them.
    return { output: reduceRows(op, rows, t, reduction), residuals: [h, w, lse] };
  }, ([h, w, savedLse], g, needs) => {
    // d loss / d z = (softmax(z) − onehot) · rowWeight, one slice at a time.
    const h2 = h.reshape([n, dim]);
    const lse = isGradEnabled() ? logsumexp(h2, w) : savedLse;
    const perRow = reduction === "none" ? g.reshape([n, 1]) : reduction === "mean" ? g.div(t.count) : g;
    const rowWeight = valid.mul(perRow.cast(acc));
    let gh: Tensor | null = null;
    // Unrecorded, the weight's gradient is written slice by slice into one buffer; recorded (for
    // higher derivatives), the slices are joined by a differentiable concat.
    const recorded = isGradEnabled();
    const gw: Tensor[] = [];
    const gwFull = needs[1] && !recorded ? zeros([vocab, dim], { dtype: w.dtype, backend }) : null;
    for (const start of starts) {
      const size = Math.min(slice, vocab - start);
      [gh] = tidy(() => {
        const z = logitsOf(h2, w, start);
        const dz = (f && !recorded
          ? Tensor.fromBuffer(
            f.crossEntropySliceBackward(z, columns(start, size), lse, rowWeight.contiguous(), size, acc),
            [n, size],
            acc,
          )
          : z.sub(lse).exp().sub(onehot(start, size)).mul(rowWeight)).cast(h2.dtype);
        if (needs[1]) {
          const part = dz.transpose().matmul(h2).cast(w.dtype);
          if (gwFull) gwFull.narrow(0, start, size).assign(part);
          else gw.push(part);
        }
        if (!needs[0]) return [gh, gw];
        const part = dz.matmul(w.narrow(0, start, size));
        return [gh ? gh.add(part) : part, gw];
      });
    }
    const gradW = gwFull ?? (needs[1] ? concat(gw, 0) : null);
    return [gh ? gh.reshape([...hidden.shape]).cast(hidden.dtype) : null, gradW];
  });
  return fn(hidden, weight).output;
}

/**
 * Scaled dot-product attention with grouped-query heads, a causal mask whose queries may sit at
 * any offset into a longer key sequence (a chunk of queries against a cache of earlier keys), and
 * an optional sliding window — written as tensor ops, so it differentiates (twice) like any other.
 *
 * @module
 */

import {
  ArgumentError,
  type AttentionShape,
  type AttentionSpec,
  fmtShape,
  ShapeError,
  Tensor,
  tensor,
} from "../tensor/mod.ts";
import { fusedFunction, fusedPrimitives, type Implementation } from "./fused.ts";

/**
 * Options of {@link scaledDotProductAttention}.
 *
 * @example
 * ```ts
 * import type { AttentionOptions } from "./attention.ts";
 * const o: AttentionOptions = { causal: true, queryOffset: 1024, window: 4096 };
 * ```
 */
export interface AttentionOptions {
  /** Query i attends to keys at positions ≤ queryOffset + i only. Default false. */
  causal?: boolean;
  /**
   * Position of the first query in the key sequence. Default `Tk − Tq`: the queries are the last
   * `Tq` positions of the keys (a chunk after its cached prefix).
   */
  queryOffset?: number;
  /** Multiplies the scores. Default `1/√headDim`. */
  scale?: number;
  /** With `causal`: keys more than `window − 1` positions before the query are masked too. */
  window?: number | null;
  /** `auto` (default: the backend's fused kernel where it prefers it), `fused` or `composed`. */
  implementation?: Implementation;
}

/**
 * The additive mask `[Tq, Tk]` (0 where query i may see key j, −∞ elsewhere) of a causal,
 * possibly windowed attention whose first query sits at `queryOffset` among the keys.
 *
 * @example
 * ```ts
 * import { causalMask } from "./attention.ts";
 * causalMask(2, 3, 1, null, "float64").toArray(); // [[0, 0, -Infinity], [0, 0, 0]]
 * ```
 */
export function causalMask(
  tq: number,
  tk: number,
  queryOffset: number,
  window: number | null,
  dtype: Tensor["dtype"],
  backend?: Tensor["backend"],
): Tensor {
  const m = new Float32Array(tq * tk);
  for (let i = 0; i < tq; i++) {
    const last = queryOffset + i;
    const first = window === null ? 0 : last - window + 1;
    for (let j = 0; j < tk; j++) m[i * tk + j] = j <= last && j >= first ? 0 : -Infinity;
  }
  return tensor(m, { shape: [tq, tk], dtype, backend });
}

/**
 * `softmax(q·kᵀ·scale + mask)·v` per head. `q` is `[B, Hq, Tq, D]`, `k` `[B, Hkv, Tk, D]`, `v`
 * `[B, Hkv, Tk, Dv]`; `Hkv` must divide `Hq`, and query head h reads key/value head
 * `⌊h / (Hq/Hkv)⌋` (grouped-query attention, as Hugging Face's `repeat_kv`). Returns `[B, Hq, Tq, Dv]`.
 *
 * @example
 * ```ts
 * import { scaledDotProductAttention } from "./attention.ts";
 * import { randn } from "../tensor/mod.ts";
 * const q = randn([1, 8, 4, 16]);           // a chunk of 4 queries
 * const k = randn([1, 2, 20, 16]);          // 16 cached keys + the chunk's 4
 * const v = randn([1, 2, 20, 16]);
 * scaledDotProductAttention(q, k, v, { causal: true }).shape; // [1, 8, 4, 16]
 * ```
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const op = "scaledDotProductAttention";
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new ShapeError(
      op,
      `q, k and v must be [batch, heads, length, dim], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${
        fmtShape(v.shape)
      }`,
    );
  }
  const [b, hq, tq, d] = q.shape;
  const [bk, hkv, tk, dk] = k.shape;
  if (bk !== b || dk !== d || v.shape[0] !== b || v.shape[1] !== hkv || v.shape[2] !== tk || hq % hkv !== 0) {
    throw new ShapeError(
      op,
      `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} do not agree ` +
        `(batch and head width equal, k and v alike, key/value heads dividing query heads)`,
    );
  }
  const offset = options.queryOffset ?? tk - tq;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + tq > tk) {
    throw new ArgumentError(op, `queryOffset ${offset} with ${tq} queries does not fit ${tk} keys`);
  }
  const window = options.window ?? null;
  if (window !== null && (!Number.isSafeInteger(window) || window <= 0)) {
    throw new ArgumentError(op, `window must be a positive integer or null, got ${window}`);
  }
  const spec: AttentionSpec = {
    scale: options.scale ?? 1 / Math.sqrt(d),
    causal: options.causal ?? false,
    queryOffset: offset,
    window: options.causal ? window : null,
  };
  const shape: AttentionShape = { b, hq, hkv, tq, tk, d, dv: v.shape[3] };
  const composed = (qq: Tensor, kk: Tensor, vv: Tensor) => composedAttention(qq, kk, vv, shape, spec);
  const f = fusedPrimitives(options.implementation ?? "auto", q, op);
  if (!f || q.dtype !== k.dtype || q.dtype !== v.dtype) return composed(q, k, v);
  const acc = q.dtype === "float64" ? "float64" : "float32";
  return fusedFunction((qq: Tensor, kk: Tensor, vv: Tensor) => {
    const r = f.attention(qq.contiguous(), kk.contiguous(), vv.contiguous(), shape, spec, qq.dtype);
    const out = Tensor.fromBuffer(r.out, [b, hq, tq, shape.dv], qq.dtype);
    return { output: out, saved: [out, Tensor.fromBuffer(r.lse, [b, hq, tq], acc)] };
  }, ([qq, kk, vv], [out, lse], g) => {
    const c = (t: Tensor) => t.contiguous();
    const r = f.attentionBackward(c(qq), c(kk), c(vv), out, lse, c(g), shape, spec, qq.dtype);
    return [
      Tensor.fromBuffer(r.dq, qq.shape, qq.dtype),
      Tensor.fromBuffer(r.dk, kk.shape, kk.dtype),
      Tensor.fromBuffer(r.dv, vv.shape, vv.dtype),
    ];
  }, composed)(q, k, v);
}

/** The attention as ordinary ops: scores, additive mask, softmax, weighted values. */
function composedAttention(q: Tensor, k: Tensor, v: Tensor, s: AttentionShape, spec: AttentionSpec): Tensor {
  const group = s.hq / s.hkv;
  // Grouped queries share a key head: [B, Hkv, G·Tq, D] against [B, Hkv, Tk, D].
  let scores = q.reshape([s.b, s.hkv, group * s.tq, s.d]).matmul(k.transpose(-2, -1)).mul(spec.scale);
  if (spec.causal) {
    const mask = causalMask(s.tq, s.tk, spec.queryOffset, spec.window, scores.dtype, scores.backend);
    scores = scores.reshape([s.b, s.hkv, group, s.tq, s.tk]).add(mask).reshape([s.b, s.hkv, group * s.tq, s.tk]);
  }
  return scores.softmax(-1).matmul(v).reshape([s.b, s.hq, s.tq, s.dv]);
}

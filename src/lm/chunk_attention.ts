/**
 * Causal attention over keys and values held in blocks — the chunks of a long sequence's
 * key/value cache — in the manner of flash attention, written in tensor ops: the forward walks the
 * blocks with an online softmax and keeps only the output and each row's log-sum-exp; the backward
 * walks them again, recomputing each block's scores. No `[queries × all keys]` matrix exists, the
 * blocks are never joined into one tensor, and the memory beyond the inputs and the output is one
 * block's scores: what lets a chunk of 128 queries read a cache of 16K positions at the cost of its
 * own size.
 *
 * @module
 */

import {
  ArgumentError,
  concat,
  customFunction,
  fmtShape,
  full,
  isGradEnabled,
  ShapeError,
  type Tensor,
  tidy,
  zerosLike,
} from "../tensor/mod.ts";
import { causalMask } from "../nn/mod.ts";

/**
 * Options of {@link blockAttention}.
 *
 * @example
 * ```ts
 * import type { BlockAttentionOptions } from "./chunk_attention.ts";
 * const o: BlockAttentionOptions = { window: 4096, leafGrads: "accumulate" };
 * ```
 */
export interface BlockAttentionOptions {
  /** Position of the first query among the keys. Default: the number of keys minus the number of queries. */
  queryOffset?: number;
  /** Sliding window: a query at position p reads keys p − window + 1 … p. Default null (all earlier keys). */
  window?: number | null;
  /** Scale of the scores. Default 1/√D. */
  scale?: number;
  /** Cut each given key/value tensor into blocks of at most this many positions. Default: the tensors as given. */
  blockSize?: number;
  /**
   * `"return"` (default): the gradients of the keys and values are returned, as for any op.
   * `"accumulate"`: a key or value tensor that is a leaf of the graph (requires grad, made by no
   * op) receives its gradient straight into `.grad`, added block by block to what is there, and
   * none is returned — so the gradients of a long cache never exist twice while they accumulate.
   * For backward passes that fill the leaves' `.grad` (`backward()`, `gradients(…, "leaves")`), not
   * for `grad`/`gradients` with explicit targets.
   */
  leafGrads?: "return" | "accumulate";
}

/** A block of keys and values: positions `local … local + size − 1` of input tensor `input`. */
interface Block {
  input: number;
  local: number;
  start: number;
  size: number;
  /** Whether some key of the block is masked for some query. */
  masked: boolean;
}

/** The blocks some query reads (inputs cut at `blockSize`), and whether any of their keys is masked. */
function visibleBlocks(sizes: number[], blockSize: number, tq: number, offset: number, window: number | null): Block[] {
  const out: Block[] = [];
  let start = 0;
  sizes.forEach((length, input) => {
    for (let local = 0; local < length; local += blockSize) {
      const size = Math.min(blockSize, length - local);
      const first = start + local, last = first + size - 1;
      // Query i (position offset + i) reads keys offset + i − window + 1 … offset + i.
      if (first > offset + tq - 1 || (window !== null && last < offset - window + 1)) continue;
      const masked = last > offset || (window !== null && first < offset + tq - window);
      out.push({ input, local, start: first, size, masked });
    }
    start += length;
  });
  return out;
}

function positiveInteger(op: string, name: string, v: number | null | undefined): void {
  if (v !== null && v !== undefined && (!Number.isSafeInteger(v) || v <= 0)) {
    throw new ArgumentError(op, `${name} must be a positive integer, got ${v}`);
  }
}

/**
 * `softmax(q·Kᵀ·scale + causal mask)·V`, K and V given as one tensor or a list of blocks along the
 * length axis (K = concat(keys, 2)), computed block by block with an online softmax and
 * differentiated block by block (flash attention's recurrences, in tensor ops). `q` is
 * `[B, Hq, Tq, D]`; block b of the keys is `[B, Hkv, n_b, D]` and of the values `[B, Hkv, n_b, Dv]`;
 * `Hkv` divides `Hq` (grouped queries share a key/value head). Query i sits at position
 * `queryOffset + i` among the keys and reads the keys at or before it (within `window`). Equal to
 * `scaledDotProductAttention(q, concat(keys, 2), concat(values, 2), { causal: true, … })` up to
 * rounding. Memory beyond the inputs and the output: one block's scores.
 *
 * @example
 * ```ts
 * import { blockAttention } from "./chunk_attention.ts";
 * import { randn } from "../tensor/mod.ts";
 * const q = randn([1, 4, 8, 16]).requireGrad();             // 8 queries, the last of 24 positions
 * const ks = [0, 1, 2].map((s) => randn([1, 2, 8, 16], { seed: s }).requireGrad());
 * const vs = [3, 4, 5].map((s) => randn([1, 2, 8, 16], { seed: s }).requireGrad());
 * blockAttention(q, ks, vs).sum().backward();               // gradients for q and every block
 * ```
 */
export function blockAttention(
  q: Tensor,
  keys: Tensor | readonly Tensor[],
  values: Tensor | readonly Tensor[],
  options: BlockAttentionOptions = {},
): Tensor {
  const op = "blockAttention";
  const ks = Array.isArray(keys) ? keys as readonly Tensor[] : [keys as Tensor];
  const vs = Array.isArray(values) ? values as readonly Tensor[] : [values as Tensor];
  if (q.ndim !== 4) throw new ShapeError(op, `q must be [batch, heads, length, dim], got ${fmtShape(q.shape)}`);
  if (ks.length === 0 || ks.length !== vs.length) {
    throw new ArgumentError(
      op,
      `needs as many value blocks as key blocks, and one at least; got ${ks.length} and ${vs.length}`,
    );
  }
  const [b, hq, tq, d] = q.shape;
  const hkv = ks[0].shape[1], dv = vs[0].shape[3];
  ks.forEach((k, i) => {
    const v = vs[i];
    if (
      k.ndim !== 4 || v.ndim !== 4 || k.shape[0] !== b || k.shape[1] !== hkv || k.shape[3] !== d ||
      v.shape[0] !== b || v.shape[1] !== hkv || v.shape[2] !== k.shape[2] || v.shape[3] !== dv || hq % hkv !== 0
    ) {
      throw new ShapeError(
        op,
        `block ${i}: keys ${fmtShape(k.shape)} and values ${fmtShape(v.shape)} do not fit q ${fmtShape(q.shape)} ` +
          `(batch and width equal, key/value heads dividing ${hq} query heads, keys and values of one length)`,
      );
    }
  });
  const sizes = ks.map((k) => k.shape[2]);
  const total = sizes.reduce((a, n) => a + n, 0);
  const offset = options.queryOffset ?? total - tq;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + tq > total) {
    throw new ArgumentError(op, `queryOffset ${offset} with ${tq} queries does not fit ${total} keys`);
  }
  const window = options.window ?? null;
  positiveInteger(op, "window", window);
  positiveInteger(op, "blockSize", options.blockSize);
  const leafGrads = options.leafGrads ?? "return";
  if (leafGrads !== "return" && leafGrads !== "accumulate") {
    throw new ArgumentError(op, `leafGrads must be "return" or "accumulate", got ${JSON.stringify(leafGrads)}`);
  }
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const group = hq / hkv;
  const rows = group * tq;
  const blocks = visibleBlocks(sizes, options.blockSize ?? Math.max(...sizes), tq, offset, window);
  const n = ks.length;
  const cut = (t: Tensor, blk: Block) => (blk.size === t.shape[2] ? t : t.narrow(2, blk.local, blk.size));

  // Scores of the grouped queries [B, Hkv, G·Tq, D] against a block's keys, masked where needed.
  const scores = (qg: Tensor, k: Tensor, blk: Block): Tensor => {
    const s = qg.matmul(cut(k, blk).transpose(-2, -1)).mul(scale);
    if (!blk.masked) return s;
    const mask = causalMask(tq, blk.size, offset - blk.start, window, s.dtype, s.backend);
    return s.reshape([b, hkv, group, tq, blk.size]).add(mask).reshape([b, hkv, rows, blk.size]);
  };

  const fn = customFunction((query: Tensor, ...kv: Tensor[]) => {
    const qg = query.reshape([b, hkv, rows, d]);
    const like = { dtype: query.dtype, backend: query.backend };
    // A finite floor for the running maximum: a row that sees no key of a block keeps weight 0.
    let m = full([b, hkv, rows, 1], -1e30, like);
    let l = full([b, hkv, rows, 1], 0, like);
    let acc = full([b, hkv, rows, dv], 0, like);
    for (const blk of blocks) {
      const next = tidy(() => {
        const s = scores(qg, kv[blk.input], blk);
        const top = m.maximum(s.max(-1, true));
        const p = s.sub(top).exp();
        const decay = m.sub(top).exp();
        return [top, l.mul(decay).add(p.sum(-1, true)), acc.mul(decay).add(p.matmul(cut(kv[n + blk.input], blk)))];
      });
      [m, l, acc].forEach((t) => t.dispose());
      [m, l, acc] = next;
    }
    const output = acc.div(l).reshape([b, hq, tq, dv]);
    const lse = m.add(l.log());
    return { output, residuals: [query, ...kv, output, lse] };
  }, (res, g, needs) => {
    const query = res[0], kv = res.slice(1, 1 + 2 * n), out = res[1 + 2 * n], lse = res[2 + 2 * n];
    const qg = query.reshape([b, hkv, rows, d]);
    const dO = g.reshape([b, hkv, rows, dv]);
    const delta = dO.mul(out.reshape([b, hkv, rows, dv])).sum(-1, true);
    // Per input: its blocks' gradients (returned), or straight into a leaf's .grad (never while
    // recording a differentiable backward).
    const parts: Tensor[][] = kv.map(() => []);
    const sink = (i: number) => leafGrads === "accumulate" && !isGradEnabled() && kv[i].node === null;
    const put = (i: number, blk: Block, grad: Tensor) => {
      if (!sink(i)) return void parts[i].push(grad);
      const leaf = kv[i];
      if (!leaf.grad) leaf.grad = blk.size === leaf.shape[2] ? grad : zerosLike(leaf);
      else if (blk.size === leaf.shape[2]) leaf.grad = leaf.grad.add(grad);
      if (blk.size === leaf.shape[2]) return;
      const into = leaf.grad!.narrow(2, blk.local, blk.size);
      into.assign(into.add(grad));
    };
    let dq: Tensor | null = null;
    for (const blk of blocks) {
      const ki = blk.input, vi = n + blk.input;
      if (!needs[0] && !needs[1 + ki] && !needs[1 + vi]) continue;
      const [next] = tidy((): [Tensor | null, Tensor[][]] => {
        const p = scores(qg, kv[ki], blk).sub(lse).exp();
        if (needs[1 + vi]) put(vi, blk, p.transpose(-2, -1).matmul(dO));
        if (!needs[0] && !needs[1 + ki]) return [dq, parts];
        const ds = p.mul(dO.matmul(cut(kv[vi], blk).transpose(-2, -1)).sub(delta)).mul(scale);
        if (needs[1 + ki]) put(ki, blk, ds.transpose(-2, -1).matmul(qg));
        if (!needs[0]) return [dq, parts];
        const part = ds.matmul(cut(kv[ki], blk));
        return [dq ? dq.add(part) : part, parts];
      });
      if (dq && next !== dq) dq.dispose();
      dq = next;
    }
    const grads = kv.map((t, i) => {
      if (!needs[1 + i] || sink(i)) return null;
      // Blocks no query reads get zeros; the rest are joined along the length.
      const got = parts[i];
      if (got.length === 0) return null;
      if (got.length === 1 && got[0].shape[2] === t.shape[2]) return got[0];
      const mine = blocks.filter((blk) => (i < n ? blk.input === i : blk.input === i - n));
      const pieces: Tensor[] = [];
      let at = 0;
      mine.forEach((blk, j) => {
        if (blk.local > at) pieces.push(zerosLike(t.narrow(2, at, blk.local - at)));
        pieces.push(got[j]);
        at = blk.local + blk.size;
      });
      if (at < t.shape[2]) pieces.push(zerosLike(t.narrow(2, at, t.shape[2] - at)));
      return concat(pieces, 2);
    });
    return [needs[0] ? (dq ?? query.mul(0)).reshape([b, hq, tq, d]) : null, ...grads];
  });
  return fn(q, ...ks, ...vs).output;
}

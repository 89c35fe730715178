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
  /**
   * Cut each given key/value tensor, and the queries, into blocks of at most this many positions
   * (flash attention's tiles). Default: the tensors as given, the queries whole.
   */
  blockSize?: number;
  /**
   * Read runs of consecutive blocks that no query sees masked as one block of up to this many
   * positions (the blocks' keys and values joined for it; their gradients split back per block):
   * fewer, larger products when the cache comes in many small tensors, at the price of one such
   * block's scores in memory. Default: each block alone.
   */
  joinBlocks?: number;
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

/** Positions `local … local + size − 1` of input tensor `input`. */
interface Part {
  input: number;
  local: number;
  size: number;
}

/** A block of keys and values, positions `start … start + size − 1`: one part, or several joined. */
interface Block {
  start: number;
  size: number;
  parts: Part[];
}

/** Whether some key of positions `start … start + size − 1` is hidden from some of `tq` queries at `offset …`. */
function masked(blk: { start: number; size: number }, tq: number, offset: number, window: number | null): boolean {
  return blk.start + blk.size - 1 > offset || (window !== null && blk.start < offset + tq - window);
}

/**
 * The key blocks (inputs cut at `blockSize`) that some of `tq` queries at `offset …` read, runs of
 * unmasked ones joined up to `join` positions.
 */
function visibleBlocks(
  sizes: number[],
  blockSize: number,
  join: number,
  tq: number,
  offset: number,
  window: number | null,
): Block[] {
  const out: Block[] = [];
  let start = 0;
  sizes.forEach((length, input) => {
    for (let local = 0; local < length; local += blockSize) {
      const size = Math.min(blockSize, length - local);
      const first = start + local, last = first + size - 1;
      // Query i (position offset + i) reads keys offset + i − window + 1 … offset + i.
      if (first > offset + tq - 1 || (window !== null && last < offset - window + 1)) continue;
      const part = { input, local, size }, prev = out.at(-1);
      const joined = prev && { start: prev.start, size: prev.size + size };
      if (
        prev && joined!.size <= join && prev.start + prev.size === first && !masked(joined!, tq, offset, window)
      ) {
        out[out.length - 1] = { ...joined!, parts: [...prev.parts, part] };
      } else out.push({ start: first, size, parts: [part] });
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
  positiveInteger(op, "joinBlocks", options.joinBlocks);
  const leafGrads = options.leafGrads ?? "return";
  if (leafGrads !== "return" && leafGrads !== "accumulate") {
    throw new ArgumentError(op, `leafGrads must be "return" or "accumulate", got ${JSON.stringify(leafGrads)}`);
  }
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const group = hq / hkv;
  const n = ks.length;
  const blockSize = options.blockSize ?? Math.max(tq, ...sizes);
  const join = options.joinBlocks ?? 0;
  // Query tiles of blockSize, each with the key blocks it reads.
  const tiles = Array.from({ length: Math.ceil(tq / blockSize) }, (_, i) => {
    const start = i * blockSize, size = Math.min(blockSize, tq - start);
    return { start, size, blocks: visibleBlocks(sizes, blockSize, join, size, offset + start, window) };
  });
  type Tile = (typeof tiles)[number];
  const cut = (t: Tensor, at: number, size: number) => (size === t.shape[2] ? t : t.narrow(2, at, size));
  // A block of the keys (first = 0) or the values (first = n) among `kv`, its parts joined.
  const gather = (kv: Tensor[], first: number, blk: Block) => {
    const parts = blk.parts.map((p) => cut(kv[first + p.input], p.local, p.size));
    return parts.length === 1 ? parts[0] : concat(parts, 2);
  };
  // A tile's rows, grouped: [B, Hq, Tq, ·] → [B, Hkv, G·tile, ·].
  const rows = (t: Tensor, tile: Tile) => cut(t, tile.start, tile.size).reshape([b, hkv, group * tile.size, -1]);

  // Frees block-sized temporaries as soon as they are read, so that one block holds about three
  // score-sized buffers at a time — not while a differentiable backward is recorded (the graph
  // keeps what it reads).
  const done = (...ts: Tensor[]) => {
    if (!isGradEnabled()) ts.forEach((t) => t.dispose());
  };
  // Scores of a tile's grouped queries, already scaled, against a block's keys, masked where needed.
  const scores = (qs: Tensor, k: Tensor, blk: Block, tile: Tile): Tensor => {
    const s = qs.matmul(k.transpose(-2, -1));
    const at = offset + tile.start;
    if (!masked(blk, tile.size, at, window)) return s;
    const mask = causalMask(tile.size, blk.size, at - blk.start, window, s.dtype, s.backend);
    const out = s.reshape([b, hkv, group, tile.size, blk.size]).add(mask).reshape([
      b,
      hkv,
      group * tile.size,
      blk.size,
    ]);
    done(s, mask);
    return out;
  };

  const fn = customFunction((query: Tensor, ...kv: Tensor[]) => {
    const outs: Tensor[] = [], lses: Tensor[] = [];
    for (const tile of tiles) {
      // The scale on the queries, once, rather than on every block's scores.
      const qs = rows(query, tile).mul(scale);
      // The running maximum, sum and output; the first block starts them (no rescaling).
      let running: [Tensor, Tensor, Tensor] | null = null;
      for (const blk of tile.blocks) {
        const next: [Tensor, Tensor, Tensor] = tidy(() => {
          const s = scores(qs, gather(kv, 0, blk), blk, tile);
          // A finite floor for the maximum: a row that sees no key of a block keeps weight 0.
          const top = running ? running[0].maximum(s.max(-1, true)) : s.max(-1, true).maximum(-1e30);
          const shifted = s.sub(top);
          done(s);
          const p = shifted.exp();
          done(shifted);
          const v = gather(kv, n, blk);
          if (!running) return [top, p.sum(-1, true), p.matmul(v)];
          const [m, l, acc] = running, decay = m.sub(top).exp();
          return [top, l.mul(decay).add(p.sum(-1, true)), acc.mul(decay).add(p.matmul(v))];
        });
        running?.forEach((t) => t.dispose());
        running = next;
      }
      // Query i reads key offset + i at least: every tile has a block.
      const [m, l, acc] = running!;
      outs.push(acc.div(l).reshape([b, hq, tile.size, dv]));
      lses.push(m.add(l.log()));
      [m, l, acc, qs].forEach((t) => t.dispose());
    }
    const output = outs.length === 1 ? outs[0] : concat(outs, 2);
    return { output, residuals: [query, ...kv, output, ...lses] };
  }, (res, g, needs) => {
    const query = res[0], kv = res.slice(1, 1 + 2 * n), out = res[1 + 2 * n], lses = res.slice(2 + 2 * n);
    // Gradients of the key/value blocks, summed over the query tiles: into a leaf's .grad directly
    // (never while recording a differentiable backward), or kept by block and joined per input.
    const sink = (i: number) => leafGrads === "accumulate" && !isGradEnabled() && kv[i].node === null;
    const kept = new Map<string, Tensor>();
    // One part's gradient, into input i.
    const putPart = (i: number, part: Part, grad: Tensor) => {
      const leaf = kv[i];
      if (!sink(i)) {
        const key = `${i}:${part.local}`, prev = kept.get(key);
        kept.set(key, prev ? prev.add(grad) : grad);
        return void prev?.dispose();
      }
      const whole = part.size === leaf.shape[2];
      if (!leaf.grad) leaf.grad = whole ? grad : zerosLike(leaf);
      else if (whole) leaf.grad = leaf.grad.add(grad);
      if (whole) return;
      const into = leaf.grad!.narrow(2, part.local, part.size);
      into.assign(into.add(grad));
    };
    // A block's gradient of the keys (first = 0) or values (first = n), split into its parts.
    const put = (first: number, blk: Block, grad: Tensor) => {
      let at = 0;
      for (const part of blk.parts) {
        const own = blk.parts.length === 1 ? grad : grad.narrow(2, at, part.size).contiguous();
        if (needs[1 + first + part.input]) putPart(first + part.input, part, own);
        at += part.size;
      }
    };
    const needsAny = (first: number, blk: Block) => blk.parts.some((p) => needs[1 + first + p.input]);
    const dqs: Tensor[] = [];
    tiles.forEach((tile, t) => {
      const qg = rows(query, tile), qs = qg.mul(scale), dO = rows(g, tile), lse = lses[t];
      const delta = dO.mul(rows(out, tile)).sum(-1, true);
      let dq: Tensor | null = null;
      for (const blk of tile.blocks) {
        const needK = needsAny(0, blk), needV = needsAny(n, blk);
        if (!needs[0] && !needK && !needV) continue;
        // The kept block gradients are returned too, so the scope keeps them.
        const [next]: [Tensor | null, Tensor[]] = tidy((): [Tensor | null, Tensor[]] => {
          const k = gather(kv, 0, blk);
          const s = scores(qs, k, blk, tile), shifted = s.sub(lse);
          done(s);
          const p = shifted.exp();
          done(shifted);
          if (needV) put(n, blk, p.transpose(-2, -1).matmul(dO));
          if (!needs[0] && !needK) return [dq, [...kept.values()]];
          const v = gather(kv, n, blk);
          // dS = P ∘ (dO·Vᵀ − δ); the scale goes on its two products, not on the block.
          const dp = dO.matmul(v.transpose(-2, -1)), centred = dp.sub(delta);
          done(dp);
          const ds = p.mul(centred);
          done(p, centred);
          if (needK) put(0, blk, ds.transpose(-2, -1).matmul(qg).mul(scale));
          if (!needs[0]) return [dq, [...kept.values()]];
          const part = ds.matmul(k).mul(scale);
          done(ds);
          return [dq ? dq.add(part) : part, [...kept.values()]];
        });
        if (dq && next !== dq) dq.dispose();
        dq = next;
      }
      if (needs[0]) dqs.push((dq ?? qg.mul(0)).reshape([b, hq, tile.size, d]));
    });
    const grads = kv.map((t, i) => {
      if (!needs[1 + i] || sink(i)) return null;
      // Positions no query reads get zeros; the blocks are joined along the length.
      const input = i < n ? i : i - n;
      const read = new Map<number, number>();
      for (const tile of tiles) {
        for (const blk of tile.blocks) for (const p of blk.parts) if (p.input === input) read.set(p.local, p.size);
      }
      const starts = [...read].sort((x, y) => x[0] - y[0]);
      if (starts.length === 0) return null;
      const pieces: Tensor[] = [];
      let at = 0;
      for (const [local, size] of starts) {
        if (local > at) pieces.push(zerosLike(t.narrow(2, at, local - at)));
        pieces.push(kept.get(`${i}:${local}`)!);
        at = local + size;
      }
      if (at < t.shape[2]) pieces.push(zerosLike(t.narrow(2, at, t.shape[2] - at)));
      return pieces.length === 1 ? pieces[0] : concat(pieces, 2);
    });
    const dq = needs[0] ? (dqs.length === 1 ? dqs[0] : concat(dqs, 2)) : null;
    return [dq, ...grads];
  });
  return fn(q, ...ks, ...vs).output;
}

/**
 * Chunk-wise training of causal language models over sequences too long to differentiate in one
 * piece (SeCO and SpaCO, Li et al. 2025), as a use of the local-backprop engine
 * ({@link sequentialBackward}): each chunk of the sequence is a piece whose state is its own keys
 * and values, one `{ keys, values }` per layer; a chunk reads every earlier chunk's, block by block
 * ({@link blockAttention}).
 *
 * Four ways to the same gradient of the token cross-entropy, or to an estimate of it:
 *
 * - `full`: one graph over the whole sequence, one backward pass (attention in key blocks of the
 *   chunk size, so its memory grows linearly with the length, as flash attention's);
 * - `checkpoint`: the same with each decoder layer recomputed in the backward pass;
 * - `seco`: forward every chunk without recording, computing only its keys and values (not the
 *   last layer's attention and MLP, nor the head and loss), writing them into one buffer per layer
 *   and reading the positions before it in blocks of several chunks; then for chunks k … 1
 *   rebuild the chunk's graph on the detached cache of the chunks before it (runs of 4 chunks per
 *   key block) and back-propagate its loss plus the relayed gradient of its own keys and values.
 *   Exact; memory holds one chunk's graph, the cache and the cache's gradient. A chunk's loss
 *   comes from its rebuild: one found non-finite restores the gradients as they were;
 * - `spaco`: the same forward, whole (with the loss) for the chunks not drawn, then the backward
 *   for `spacoChunks` = t of the k chunks, drawn uniformly, with the factors of `compensation`
 *   (`"unbiased"`: exactly unbiased whenever t ≥ layers + 1; `"paper"`: the paper's Algorithm 2,
 *   relayed gradients × min(k/t, cap), biased). The reported loss is the drawn chunks' unbiased
 *   estimate of the sequence's; with `exactLoss` every chunk's loss is computed (each chunk not
 *   drawn runs whole in the forward pass, as the paper's code does) and it is exact.
 *
 * Dropout (LoRA's) draws the same masks when a chunk is rebuilt as in its forward pass, so SeCO
 * stays exact with it (the forward pass then runs whole, drawing every mask the rebuild replays).
 *
 * @module
 */

import { ArgumentError, type Generator, noGrad, NonFiniteError, type Tensor, tidy, zeros } from "../tensor/mod.ts";
import { Dropout } from "../nn/mod.ts";
import { type PieceCall, type PieceSampling, sequentialBackward } from "../local/mod.ts";
import { blockAttention } from "./chunk_attention.ts";
import type { AttentionFunction, LlamaForCausalLM, TokenInput } from "./llama.ts";

/**
 * How the gradient is computed: one graph (`full`), one graph with layers recomputed
 * (`checkpoint`), chunk by chunk and exact (`seco`), or for a sample of the chunks (`spaco`).
 *
 * @example
 * ```ts
 * import type { ChunkMethod } from "./chunked.ts";
 * const m: ChunkMethod = "seco";
 * ```
 */
export type ChunkMethod = "full" | "checkpoint" | "seco" | "spaco";

/** The methods, in the order of the flags' help. */
export const CHUNK_METHODS: readonly ChunkMethod[] = ["full", "checkpoint", "seco", "spaco"];

/**
 * Options of {@link chunkedBackward} and {@link chunkedGradients}.
 *
 * @example
 * ```ts
 * import type { ChunkedOptions } from "./chunked.ts";
 * const o: ChunkedOptions = { method: "spaco", chunkSize: 128, spacoChunks: 16, compensation: "unbiased" };
 * ```
 */
export interface ChunkedOptions {
  /** Default `seco`. */
  method?: ChunkMethod;
  /** Tokens per chunk (and the key block of `full` and `checkpoint`). Default 128. */
  chunkSize?: number;
  /** `spaco`: how many chunks are back-propagated (t). */
  spacoChunks?: number;
  /** `spaco`: `"unbiased"` (default) or `"paper"` (Algorithm 2). */
  compensation?: "unbiased" | "paper";
  /** `spaco` with `"paper"`: the largest relay factor (default 2). */
  cap?: number;
  /** `spaco`: draw the chunks from this generator (saved with a checkpoint); default the global stream. */
  generator?: Generator;
  /** `spaco`: back-propagate exactly these chunks, with the factors of the draw (to enumerate its outcomes). */
  subset?: readonly number[];
  /**
   * `spaco`: compute every chunk's loss, for the exact loss of the sequence — a whole forward pass
   * (the last layer, the head and the loss) for each chunk not drawn, as the paper's code does.
   * Default false: only the drawn chunks' losses are computed (the chunks not drawn only give their
   * keys and values), and the reported loss is their unbiased estimate of the sequence's.
   */
  exactLoss?: boolean;
  /** Vocabulary rows per slice of the loss. Default 8192. */
  sliceSize?: number;
  /** Called after each chunk's forward and backward pass (`full` and `checkpoint`: once, as chunk 0). */
  onChunk?: (report: { index: number; phase: "forward" | "backward" }) => void;
}

/**
 * What {@link chunkedBackward} did.
 *
 * @example
 * ```ts
 * import type { ChunkedResult } from "./chunked.ts";
 * const r: ChunkedResult = { lossSum: 700, exact: true, tokens: 512, chunks: 4, backpropagated: [3, 2, 1, 0] };
 * ```
 */
export interface ChunkedResult {
  /**
   * Σ of the token cross-entropies (nats): exact, or for `spaco` without `exactLoss` its unbiased
   * estimate from the drawn chunks (Σ of their losses over their inclusion probability).
   */
  lossSum: number;
  /** Whether `lossSum` is exact (every chunk's loss computed). */
  exact: boolean;
  /** Tokens predicted (batch × length). */
  tokens: number;
  /** Chunks the sequence was cut into. */
  chunks: number;
  /** Chunks back-propagated, in the order they ran. */
  backpropagated: number[];
}

function positiveInteger(op: string, name: string, v: unknown): number {
  if (!(typeof v === "number" && Number.isSafeInteger(v) && v > 0)) {
    throw new ArgumentError(op, `${name} must be a positive integer, got ${v}`);
  }
  return v;
}

function sampling(op: string, o: ChunkedOptions, chunks: number): PieceSampling | undefined {
  if (o.method !== "spaco") {
    for (const key of ["spacoChunks", "compensation", "cap", "subset", "exactLoss"] as const) {
      if (o[key] !== undefined) throw new ArgumentError(op, `${key} applies to method "spaco" only`);
    }
    return undefined;
  }
  const t = positiveInteger(op, "spacoChunks", o.spacoChunks);
  if (t > chunks) throw new ArgumentError(op, `spacoChunks ${t} exceeds the ${chunks} chunks of the sequence`);
  const { compensation = "unbiased", cap, generator, subset } = o;
  return { mode: "fixed", count: t, compensation, cap, generator, subset };
}

/** What a chunk hands on: its keys and values, per layer (a tree of tensors for the engine). */
type ChunkState = { keys: Tensor; values: Tensor }[];

/**
 * Key blocks of the forward pass, in chunks: a chunk reads the cache before it in blocks of this
 * many chunks' positions — fewer, larger products and elementwise passes than one block per chunk.
 */
const FORWARD_BLOCK_CHUNKS = 8;

/**
 * Key blocks of a rebuilt chunk, in chunks: each earlier chunk's keys and values are a leaf of
 * their own (their gradient goes to their own buffer), and runs of up to this many are read as
 * one block ({@link blockAttention}'s `joinBlocks`) — a quarter of the products and elementwise
 * passes of one block per chunk, for one block's scores of 4 chunks' width in memory: the rebuilt
 * chunk's graph grows by a constant, whatever the length.
 */
const REBUILD_JOIN_CHUNKS = 4;

/**
 * The keys and values of the forward pass, one buffer per layer for the whole sequence
 * (`[batch, kvHeads, length, headDim]`, allocated at the first chunk's write): each chunk writes
 * its own in place, reads the positions before it as one view, and hands on views of its own
 * positions — no copy of the cache as it grows, and no cache twice in memory.
 */
class ForwardCache {
  readonly #length: number;
  readonly #layers: ChunkState = [];

  constructor(length: number) {
    this.#length = length;
  }

  /**
   * Writes a chunk's keys and values at `start`; returns the layer's positions before it (none at
   * the first chunk) and the chunk's own, as blocks for {@link blockAttention}: only the chunk's
   * own block needs the causal mask.
   */
  write(layer: number, start: number, keys: Tensor, values: Tensor): { keys: Tensor[]; values: Tensor[] } {
    const n = keys.shape[2];
    const buf = this.store(layer, start, keys, values);
    const blocks = (t: Tensor) => (start === 0 ? [] : [t.narrow(2, 0, start)]).concat(t.narrow(2, start, n));
    return { keys: blocks(buf.keys), values: blocks(buf.values) };
  }

  /** Writes a chunk's keys and values at `start`; returns the layer's buffers. */
  store(layer: number, start: number, keys: Tensor, values: Tensor): { keys: Tensor; values: Tensor } {
    const [b, h, n] = keys.shape;
    const like = (t: Tensor) => zeros([b, h, this.#length, t.shape[3]], { dtype: t.dtype, backend: t.backend }).keep();
    const buf = this.#layers[layer] ??= { keys: like(keys), values: like(values) };
    buf.keys.narrow(2, start, n).assign(keys);
    buf.values.narrow(2, start, n).assign(values);
    return buf;
  }

  /** A layer's positions `start … start + n − 1`, as views. */
  chunk(layer: number, start: number, n: number): { keys: Tensor; values: Tensor } {
    const buf = this.#layers[layer];
    return { keys: buf.keys.narrow(2, start, n), values: buf.values.narrow(2, start, n) };
  }

  /** Drops the buffers (views handed on keep their storage alive). */
  dispose(): void {
    for (const { keys, values } of this.#layers) [keys, values].forEach((t) => t.dispose());
  }
}

/** The mask streams of the model's active dropouts. */
function dropoutStreams(model: LlamaForCausalLM): Generator[] {
  return [...model.modules()].filter((m): m is Dropout => m instanceof Dropout && m.training && m.p > 0)
    .map((m) => m.generator);
}

/**
 * Accumulates into the parameters' `.grad` the gradient of `scale` × Σ token cross-entropy of
 * `sequences` (`[batch, L + 1]` tokens: each position predicts the next), by `method`. Returns the
 * summed loss of the forward pass. A non-finite loss raises a {@link NonFiniteError} before any
 * gradient is added.
 *
 * @example
 * ```ts
 * import { chunkedBackward } from "./chunked.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
 * const tokens = [Array.from({ length: 257 }, (_, i) => (i * 7) % 256)];
 * const r = chunkedBackward(model, tokens, { method: "seco", chunkSize: 64, scale: 1 / 256 });
 * r.lossSum / r.tokens; // mean cross-entropy; model.parameters() now hold its gradient
 * ```
 */
export function chunkedBackward(
  model: LlamaForCausalLM,
  sequences: TokenInput,
  options: ChunkedOptions & { scale?: number } = {},
): ChunkedResult {
  const op = "chunkedBackward";
  const method = options.method ?? "seco";
  if (!CHUNK_METHODS.includes(method)) {
    throw new ArgumentError(op, `method must be one of ${CHUNK_METHODS.join(", ")}, got ${JSON.stringify(method)}`);
  }
  const c = positiveInteger(op, "chunkSize", options.chunkSize ?? 128);
  const all = model.tokens(sequences);
  const [batch, width] = all.shape;
  if (width < 2) throw new ArgumentError(op, `sequences need at least 2 tokens (inputs and their next), got ${width}`);
  const length = width - 1;
  const chunks = Math.ceil(length / c);
  const draw = sampling(op, { ...options, method }, chunks);
  const scale = options.scale ?? 1 / (batch * length);
  if (!(Number.isFinite(scale) && scale > 0)) throw new ArgumentError(op, `scale must be positive, got ${scale}`);
  const window = model.config.slidingWindow;
  const exactLoss = method !== "spaco" || (options.exactLoss ?? false);
  const lossOptions = { reduction: "sum" as const, sliceSize: options.sliceSize };
  const cache = new ForwardCache(length);
  const check = (value: number) => {
    if (!Number.isFinite(value)) throw new NonFiniteError(op, `the loss is ${value}; no gradient was added`);
    return value;
  };
  try {
    if (method === "full" || method === "checkpoint") {
      const attention: AttentionFunction = (q, k, v) => blockAttention(q, k, v, { blockSize: c, window });
      const lossSum = tidy(() => {
        const { loss } = model.loss(all.narrow(1, 0, length), all.narrow(1, 1, length), {
          ...lossOptions,
          attention,
          checkpointLayers: method === "checkpoint",
        });
        const value = check(loss.item());
        options.onChunk?.({ index: 0, phase: "forward" });
        loss.mul(scale).backward();
        options.onChunk?.({ index: 0, phase: "backward" });
        return value;
      });
      return { lossSum, exact: true, tokens: batch * length, chunks: 1, backpropagated: [0] };
    }
    const streams = dropoutStreams(model);
    const offsets: number[][] = [];
    let end: number[] = [];
    const piece = (past: readonly ChunkState[], i: number, call: PieceCall) => {
      // A rebuilt chunk draws the dropout masks of its forward pass.
      const first = call.phase === "forward";
      if (first) offsets[i] = streams.map((g) => g.offset);
      else streams.forEach((g, j) => (g.offset = offsets[i][j]));
      const start = i * c, n = Math.min(c, length - start);
      const inputs = all.narrow(1, start, n);
      const attention: AttentionFunction = first
        ? (q, k, v, layer) => {
          const { keys, values } = cache.write(layer, start, k, v);
          return blockAttention(q, keys, values, { window, blockSize: FORWARD_BLOCK_CHUNKS * c });
        }
        : (q, k, v, layer) =>
          blockAttention(q, [...past.map((p) => p[layer].keys), k], [...past.map((p) => p[layer].values), v], {
            window,
            leafGrads: "accumulate",
            joinBlocks: REBUILD_JOIN_CHUNKS * c,
          });
      // A chunk whose loss comes from its rebuild, or is not wanted, gives only its cache here: not
      // the last layer's attention and MLP, nor the head. (With dropout the first pass draws every
      // mask the rebuild replays, so it runs whole.)
      if (first && (call.rebuilt || !exactLoss) && streams.length === 0) {
        const kv = model.keysValues(inputs, { position: start, attention }).cache;
        const last = kv.length - 1;
        cache.store(last, start, kv[last].keys, kv[last].values);
        return { loss: null, state: kv.map((_, layer) => cache.chunk(layer, start, n)) };
      }
      const out = model.loss(inputs, all.narrow(1, start + 1, n), { ...lossOptions, position: start, attention });
      const state = first
        ? out.cache.map((_, layer) => cache.chunk(layer, start, n))
        : out.cache.map(({ keys, values }) => ({ keys, values }));
      return { loss: out.loss.mul(scale), state };
    };
    const { estimate, backpropagated } = sequentialBackward(chunks, piece, {
      losses: exactLoss ? "all" : "rebuilt",
      sampling: draw,
      parameters: model.parameters(),
      onPiece: ({ index, phase }) => {
        if (phase === "forward" && index === chunks - 1) end = streams.map((g) => g.offset);
        options.onChunk?.({ index, phase });
      },
    });
    streams.forEach((g, j) => (g.offset = end[j]));
    return { lossSum: estimate / scale, exact: exactLoss, tokens: batch * length, chunks, backpropagated };
  } catch (e) {
    if (e instanceof NonFiniteError && !e.message.startsWith(op)) {
      throw new NonFiniteError(op, `a chunk's loss is not finite (${e.message}); no gradient was added`);
    }
    throw e;
  } finally {
    all.dispose();
    cache.dispose();
  }
}

/**
 * What {@link chunkedGradients} did.
 *
 * @example
 * ```ts
 * import type { GradientsResult } from "./chunked.ts";
 * const r: GradientsResult = { loss: 2.1, exact: true, tokens: 4096, chunks: 32, seconds: 1.5 };
 * ```
 */
export interface GradientsResult {
  /**
   * Mean token cross-entropy over the micro-batches: exact, or (`spaco` without `exactLoss`) the
   * drawn chunks' unbiased estimate of it.
   */
  loss: number;
  /** Whether `loss` is exact. */
  exact: boolean;
  /** Tokens predicted. */
  tokens: number;
  /** Chunks of all micro-batches (the sequence length over the chunk size, per micro-batch). */
  chunks: number;
  /** Wall time. */
  seconds: number;
}

/**
 * Accumulates into `.grad` the gradient of the mean token cross-entropy over `microBatches` (each
 * `[batch, L + 1]` tokens, every token weighed equally), one micro-batch at a time with
 * {@link chunkedBackward} — gradient accumulation. The caller zeroes the gradients before and
 * steps the optimiser after (as `train.trainLoop` does around its `step`).
 *
 * @example
 * ```ts
 * import { chunkedGradients } from "./chunked.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * import { AdamW } from "../optim/mod.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
 * const opt = new AdamW(model.parameters(), { lr: 1e-3 });
 * const seq = [Array.from({ length: 129 }, (_, i) => (i * 5) % 256)];
 * opt.zeroGrad();
 * const r = chunkedGradients(model, [seq, seq], { method: "seco", chunkSize: 32 });
 * opt.step(); // r.loss: the mean cross-entropy before the update
 * ```
 */
export function chunkedGradients(
  model: LlamaForCausalLM,
  microBatches: readonly TokenInput[],
  options: ChunkedOptions = {},
): GradientsResult {
  if (microBatches.length === 0) throw new ArgumentError("chunkedGradients", "needs at least one micro-batch");
  const begin = performance.now();
  const shapes = microBatches.map((b) => tidy(() => model.tokens(b).shape));
  const tokens = shapes.reduce((a, [rows, width]) => a + rows * (width - 1), 0);
  let lossSum = 0, chunks = 0, exact = true;
  microBatches.forEach((batch, i) => {
    const r = chunkedBackward(model, batch, { ...options, scale: 1 / tokens });
    lossSum += r.lossSum;
    exact &&= r.exact;
    chunks += Math.ceil((shapes[i][1] - 1) / (options.chunkSize ?? 128));
  });
  return { loss: lossSum / tokens, exact, tokens, chunks, seconds: (performance.now() - begin) / 1000 };
}

/**
 * The mean token cross-entropy of `sequences` (`[batch, L + 1]` tokens) without gradients, the
 * attention in key blocks of `chunkSize` (memory linear in L).
 *
 * @example
 * ```ts
 * import { evaluateLoss } from "./chunked.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
 * evaluateLoss(model, [Array.from({ length: 65 }, (_, i) => i)], { chunkSize: 32 }); // ≈ ln 259 at first
 * ```
 */
export function evaluateLoss(
  model: LlamaForCausalLM,
  sequences: TokenInput,
  options: Pick<ChunkedOptions, "chunkSize" | "sliceSize"> = {},
): number {
  return noGrad(() =>
    tidy(() => {
      const all = model.tokens(sequences);
      const [batch, width] = all.shape;
      const c = positiveInteger("evaluateLoss", "chunkSize", options.chunkSize ?? 128);
      const window = model.config.slidingWindow;
      const { loss } = model.loss(all.narrow(1, 0, width - 1), all.narrow(1, 1, width - 1), {
        reduction: "sum",
        sliceSize: options.sliceSize,
        attention: (q, k, v) => blockAttention(q, k, v, { blockSize: c, window }),
      });
      return loss.item() / (batch * (width - 1));
    })
  );
}

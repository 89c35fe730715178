/**
 * Text generation with the key/value cache: the prompt runs once, then each new token runs alone
 * against the cache. Greedy decoding or sampling with temperature, top-k and top-p (nucleus),
 * seeded by a counter-based stream so a seed gives the same text on every backend; tokens stream
 * out as they are chosen.
 *
 * @module
 */

import { ArgumentError, Generator, noGrad, rand, tidy } from "../tensor/mod.ts";
import { disposeCache, type KVCache } from "./cache.ts";
import type { LlamaForCausalLM } from "./llama.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Options of {@link generate} and {@link generateTokens}.
 *
 * @example
 * ```ts
 * import type { GenerateOptions } from "./generate.ts";
 * const o: GenerateOptions = { maxNewTokens: 64, temperature: 0.8, topK: 50, topP: 0.95, seed: 1 };
 * ```
 */
export interface GenerateOptions {
  /** Tokens to add at most. Default 32. */
  maxNewTokens?: number;
  /** Softmax temperature; 0 (the default) is greedy decoding. */
  temperature?: number;
  /** Sample among the k most likely tokens only (0: all). Default 0. */
  topK?: number;
  /** Sample among the most likely tokens whose probabilities sum to at least p (1: all). Default 1. */
  topP?: number;
  /** Seed of the sampling stream. Default 0. */
  seed?: number;
  /** Stop after any of these tokens (default: the config's EOS ids; [] never stops early). */
  stopTokens?: readonly number[];
}

/**
 * The next token from one row of logits: the first maximum when `temperature` is 0, else a draw
 * with uniform `u` ∈ [0, 1) from the tempered, top-k and top-p filtered distribution (in that
 * order, as Hugging Face's samplers apply them).
 *
 * @example
 * ```ts
 * import { sampleToken } from "./generate.ts";
 * sampleToken(Float64Array.from([0, 3, 1]), { temperature: 0 }, 0.5); // 1
 * ```
 */
export function sampleToken(logits: ArrayLike<number>, options: GenerateOptions, u: number): number {
  const t = options.temperature ?? 0;
  const n = logits.length;
  if (t === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = options.topK && options.topK > 0 ? Math.min(options.topK, n) : n;
  const top = logits[order[0]] / t;
  const weights = order.slice(0, k).map((i) => Math.exp(logits[i] / t - top));
  const total = weights.reduce((a, b) => a + b, 0);
  const p = options.topP ?? 1;
  let keep = weights.length;
  if (p < 1) {
    let acc = 0;
    for (let i = 0; i < weights.length; i++) {
      acc += weights[i] / total;
      if (acc >= p) {
        keep = i + 1;
        break;
      }
    }
  }
  const kept = weights.slice(0, keep);
  const mass = kept.reduce((a, b) => a + b, 0);
  let acc = 0;
  for (let i = 0; i < keep; i++) {
    acc += kept[i] / mass;
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

function checkOptions(options: GenerateOptions, vocab: number, prompt: readonly number[]): void {
  const op = "generate";
  const max = options.maxNewTokens ?? 32;
  if (!Number.isInteger(max) || max < 0) {
    throw new ArgumentError(op, `maxNewTokens must be a non-negative integer, got ${max}`);
  }
  const t = options.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) throw new ArgumentError(op, `temperature must be ≥ 0, got ${t}`);
  const p = options.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new ArgumentError(op, `topP must be in (0, 1], got ${p}`);
  const k = options.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new ArgumentError(op, `topK must be a non-negative integer, got ${k}`);
  if (prompt.length === 0) throw new ArgumentError(op, "the prompt has no tokens (add a BOS token)");
  const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new ArgumentError(op, `prompt token ${bad} is outside the vocabulary [0, ${vocab})`);
}

/**
 * Yields new tokens one at a time after `prompt` (one sequence of ids), running the prompt once
 * and each new token against the cache, without recording gradients. Stops after
 * `maxNewTokens` or a stop token (which is yielded).
 *
 * @example
 * ```ts
 * import { generateTokens } from "./generate.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
 * for (const token of generateTokens(model, [1, 2, 3], { maxNewTokens: 5 })) console.log(token);
 * ```
 */
export function* generateTokens(
  model: LlamaForCausalLM,
  prompt: readonly number[],
  options: GenerateOptions = {},
): IterableIterator<number> {
  checkOptions(options, model.config.vocabSize, prompt);
  const max = options.maxNewTokens ?? 32;
  const stop = new Set(options.stopTokens ?? model.config.eosTokenIds);
  const generator = new Generator(options.seed ?? 0);
  let cache: KVCache = [];
  let input: readonly number[] = prompt;
  try {
    for (let step = 0; step < max; step++) {
      const { row, next } = noGrad(() =>
        tidy(() => {
          const out = model.forward([input], { cache });
          const last = out.logits.narrow(1, input.length - 1, 1).reshape([-1]);
          return { row: last.toTypedArray(), next: out.cache };
        })
      );
      disposeCache(cache);
      cache = next;
      const u = (options.temperature ?? 0) > 0 ? tidy(() => rand([1], { generator, dtype: "float64" }).item()) : 0;
      const token = sampleToken(row, options, u);
      yield token;
      if (stop.has(token)) return;
      input = [token];
    }
  } finally {
    disposeCache(cache);
  }
}

/**
 * The prompt's continuation as a list of token ids (see {@link generateTokens}); `onToken` sees
 * each token as it is chosen.
 *
 * @example
 * ```ts
 * import { generate } from "./generate.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny, { seed: 0 });
 * generate(model, [1, 2, 3], { maxNewTokens: 4, temperature: 0.7, seed: 3 }).length; // 4
 * ```
 */
export function generate(
  model: LlamaForCausalLM,
  prompt: readonly number[],
  options: GenerateOptions & { onToken?: (token: number) => void } = {},
): number[] {
  const out: number[] = [];
  for (const token of generateTokens(model, prompt, options)) {
    out.push(token);
    options.onToken?.(token);
  }
  return out;
}

/**
 * Turns a stream of token ids into a stream of text pieces: each piece is what decoding all
 * tokens so far adds, held back while the text ends in an incomplete character (a multi-byte
 * character spread over several byte tokens).
 *
 * @example
 * ```ts
 * import { decodeStream } from "./generate.ts";
 * import { ByteTokenizer } from "./tokenizer.ts";
 * [...decodeStream(new ByteTokenizer(), [0xc3, 0xa9, 0x21])]; // ["é", "!"]
 * ```
 */
export function* decodeStream(tokenizer: Tokenizer, tokens: Iterable<number>): IterableIterator<string> {
  const ids: number[] = [];
  let shown = 0;
  for (const id of tokens) {
    ids.push(id);
    const text = tokenizer.decode(ids);
    if (text.endsWith("\ufffd")) continue;
    if (text.length > shown) yield text.slice(shown);
    shown = text.length;
  }
  const text = tokenizer.decode(ids);
  if (text.length > shown) yield text.slice(shown);
}

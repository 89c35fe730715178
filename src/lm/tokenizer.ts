/**
 * Tokenizers: Hugging Face `tokenizer.json` files (byte-level BPE as in Llama 3 and Qwen,
 * SentencePiece-style BPE with byte fallback as in Llama 2 and Mistral, and whatever else the
 * format describes) through Hugging Face's own JavaScript implementation, `@huggingface/tokenizers`;
 * and {@link ByteTokenizer}, the 256 bytes of UTF-8 plus three special tokens, for models trained
 * from scratch. Both encode batches with padding and an attention mask.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix
import { Tokenizer as HFTokenizerImpl } from "npm:@huggingface/tokenizers@0.2.0";
import { ArgumentError, PatchworkError } from "../tensor/mod.ts";

/**
 * A tokenizer folder or file that cannot be read.
 *
 * @example
 * ```ts
 * import { HFTokenizer, TokenizerError } from "./tokenizer.ts";
 * try {
 *   await HFTokenizer.fromFolder("/no/such/folder");
 * } catch (e) {
 *   e instanceof TokenizerError; // true
 * }
 * ```
 */
export class TokenizerError extends PatchworkError {}

/**
 * Options of {@link Tokenizer.encode}.
 *
 * @example
 * ```ts
 * import type { EncodeOptions } from "./tokenizer.ts";
 * const o: EncodeOptions = { addSpecialTokens: false };
 * ```
 */
export interface EncodeOptions {
  /** Add the tokens the tokenizer adds around a text (a BOS, say). Default true. */
  addSpecialTokens?: boolean;
}

/**
 * Options of {@link Tokenizer.encodeBatch}.
 *
 * @example
 * ```ts
 * import type { BatchOptions } from "./tokenizer.ts";
 * const o: BatchOptions = { padding: "longest", side: "left", maxLength: 512 };
 * ```
 */
export interface BatchOptions extends EncodeOptions {
  /** Pad to the longest row (default) or to a fixed length. */
  padding?: "longest" | number;
  /** Which end gets the padding: `right` (default; training) or `left` (generation). */
  side?: "left" | "right";
  /** Cut rows longer than this (from the end). Default: no cut. */
  maxLength?: number;
}

/**
 * A padded batch: token ids and a mask (1 for a token, 0 for padding), both `[rows][length]`.
 *
 * @example
 * ```ts
 * import type { Batch } from "./tokenizer.ts";
 * const b: Batch = { ids: [[5, 6], [7, 0]], attentionMask: [[1, 1], [1, 0]] };
 * ```
 */
export interface Batch {
  /** Token ids, padded. */
  ids: number[][];
  /** 1 where a token is, 0 where padding is. */
  attentionMask: number[][];
}

/**
 * What every tokenizer offers: text to ids and back, one text or a padded batch.
 *
 * @example
 * ```ts
 * import { ByteTokenizer } from "./tokenizer.ts";
 * const tok = new ByteTokenizer();
 * tok.decode(tok.encode("héllo")); // "héllo"
 * ```
 */
export abstract class Tokenizer {
  /** Number of token ids (the embedding rows a model needs). */
  abstract readonly vocabSize: number;
  /** Id that starts a sequence, or null. */
  abstract readonly bosTokenId: number | null;
  /** Id that ends a sequence, or null. */
  abstract readonly eosTokenId: number | null;
  /** Id used for padding (the EOS when the tokenizer names none), or null. */
  abstract readonly padTokenId: number | null;

  /** Token ids of `text`. */
  abstract encode(text: string, options?: EncodeOptions): number[];

  /** The text of `ids` (special tokens skipped unless `skipSpecialTokens` is false). */
  abstract decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;

  /**
   * Encodes several texts and pads them to one length with `padTokenId`.
   *
   * @example
   * ```ts
   * import { ByteTokenizer } from "./tokenizer.ts";
   * new ByteTokenizer().encodeBatch(["ab", "c"], { addSpecialTokens: false }).attentionMask; // [[1, 1], [1, 0]]
   * ```
   */
  encodeBatch(texts: readonly string[], options: BatchOptions = {}): Batch {
    const pad = this.padTokenId;
    if (pad === null) throw new TokenizerError("encodeBatch", "the tokenizer has no pad token (and no EOS to use)");
    const max = options.maxLength ?? Infinity;
    if (!(max > 0)) throw new ArgumentError("encodeBatch", `maxLength must be positive, got ${options.maxLength}`);
    const rows = texts.map((t) => this.encode(t, options).slice(0, max));
    const longest = Math.max(0, ...rows.map((r) => r.length));
    const length = options.padding === undefined || options.padding === "longest" ? longest : options.padding;
    if (!Number.isInteger(length) || length < longest) {
      throw new ArgumentError("encodeBatch", `padding ${options.padding} is shorter than the longest row (${longest})`);
    }
    const left = options.side === "left";
    const padded = (r: number[], v: number) => {
      const p = new Array(length - r.length).fill(v);
      return left ? [...p, ...r] : [...r, ...p];
    };
    return { ids: rows.map((r) => padded(r, pad)), attentionMask: rows.map((r) => padded(r.map(() => 1), 0)) };
  }
}

/**
 * The 256 byte values of UTF-8 as ids 0–255, then BOS (256), EOS (257) and PAD (258): no
 * training, no unknown tokens, any text round-trips.
 *
 * @example
 * ```ts
 * import { ByteTokenizer } from "./tokenizer.ts";
 * const tok = new ByteTokenizer();
 * tok.encode("hi"); // [256, 104, 105]
 * tok.vocabSize; // 259
 * ```
 */
export class ByteTokenizer extends Tokenizer {
  /** 259. */
  readonly vocabSize = 259;
  /** 256. */
  readonly bosTokenId = 256;
  /** 257. */
  readonly eosTokenId = 257;
  /** 258. */
  readonly padTokenId = 258;

  /** UTF-8 bytes of `text`, after a BOS unless `addSpecialTokens` is false. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const bytes = [...new TextEncoder().encode(text)];
    return options.addSpecialTokens ?? true ? [this.bosTokenId, ...bytes] : bytes;
  }

  /** The UTF-8 text of the byte ids (invalid sequences become U+FFFD); special ids are skipped or written `<bos>`, `<eos>`, `<pad>`. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    let out = "";
    let run: number[] = [];
    const flush = () => {
      out += new TextDecoder().decode(new Uint8Array(run));
      run = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new ArgumentError(
          "ByteTokenizer.decode",
          `token id ${id} is outside the vocabulary [0, ${this.vocabSize})`,
        );
      }
      if (id < 256) run.push(id);
      else if (!skip) {
        flush();
        out += ["<bos>", "<eos>", "<pad>"][id - 256];
      }
    }
    flush();
    return out;
  }
}

type Json = Record<string, unknown>;

function tokenName(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content as string;
  return null;
}

/**
 * A Hugging Face `tokenizer.json` (with its `tokenizer_config.json`), run by
 * `@huggingface/tokenizers`. Special tokens named in the text (`<|begin_of_text|>`) become
 * their ids.
 *
 * @example
 * ```ts
 * import { HFTokenizer } from "./tokenizer.ts";
 * const tok = await HFTokenizer.fromFolder("models/Llama-3.2-1B");
 * tok.encode("Hello world"); // [128000, 9906, 1917]
 * ```
 */
export class HFTokenizer extends Tokenizer {
  /** Number of ids (the largest id + 1, added tokens included). */
  readonly vocabSize: number;
  /** Id of the config's `bos_token`, or null. */
  readonly bosTokenId: number | null;
  /** Id of the config's `eos_token`, or null. */
  readonly eosTokenId: number | null;
  /** Id of the config's `pad_token`, else the EOS, else null. */
  readonly padTokenId: number | null;
  readonly #impl: HFTokenizerImpl;

  /** A tokenizer from the parsed `tokenizer.json` and `tokenizer_config.json` objects. */
  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}) {
    super();
    try {
      this.#impl = new HFTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError("HFTokenizer", `tokenizer.json cannot be read: ${(e as Error).message}`);
    }
    let top = -1;
    for (const i of this.#impl.get_vocab().values()) top = Math.max(top, i as number);
    for (const i of this.#impl.get_added_tokens_decoder().keys()) top = Math.max(top, i);
    this.vocabSize = top + 1;
    const id = (key: string) => {
      const name = tokenName(tokenizerConfig[key]);
      return name === null ? null : this.#impl.token_to_id(name) ?? null;
    };
    this.bosTokenId = id("bos_token");
    this.eosTokenId = id("eos_token");
    this.padTokenId = id("pad_token") ?? this.eosTokenId;
  }

  /** Reads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a folder. */
  static async fromFolder(dir: string): Promise<HFTokenizer> {
    const read = async (name: string, required: boolean): Promise<Json> => {
      const path = `${dir.replace(/\/$/, "")}/${name}`;
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (e) {
        if (!required && e instanceof Deno.errors.NotFound) return {};
        throw new TokenizerError("HFTokenizer", `cannot read ${path}: ${(e as Error).message}`);
      }
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new TokenizerError("HFTokenizer", `${path} is not valid JSON (${(e as Error).message})`);
      }
    };
    return new HFTokenizer(await read("tokenizer.json", true), await read("tokenizer_config.json", false));
  }

  /** Token ids of `text` (with the tokenizer's special tokens around it unless `addSpecialTokens` is false). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.#impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** The text of `ids`. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const bad = ids.find((i) => !Number.isInteger(i) || i < 0 || i >= this.vocabSize);
    if (bad !== undefined) {
      throw new ArgumentError("HFTokenizer.decode", `token id ${bad} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    if (ids.length === 0) return "";
    return this.#impl.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  /** The token pieces of `text` (for inspection). */
  tokenize(text: string): string[] {
    return this.#impl.tokenize(text);
  }

  /** The id of a token piece, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#impl.token_to_id(token);
  }
}

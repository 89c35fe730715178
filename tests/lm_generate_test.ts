import assert from "node:assert/strict";
import { ArgumentError, lm, noGrad } from "../mod.ts";
import { smallConfig } from "./lm_helpers.ts";

const model = new lm.LlamaForCausalLM(smallConfig({ eosTokenIds: [36] }), { seed: 11 });

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

Deno.test("greedy decoding with the cache equals argmax over a full forward at every step", () => {
  const prompt = [3, 1, 4, 1, 5];
  const got = lm.generate(model, prompt, { maxNewTokens: 12, stopTokens: [] });
  const seq = [...prompt];
  for (let i = 0; i < 12; i++) {
    const logits = noGrad(() => model.forward([seq]).logits);
    const last = logits.narrow(1, seq.length - 1, 1).toTypedArray();
    seq.push(argmax(last));
  }
  assert.deepEqual(got, seq.slice(prompt.length));
});

Deno.test("sampling follows the tempered, top-k and top-p filtered distribution", () => {
  const logits = Float64Array.from([1.0, 3.0, 2.5, -1.0, 0.5, 2.9]);
  const n = 200_000;
  const cases: { temperature: number; topK?: number; topP?: number }[] = [
    { temperature: 1 },
    { temperature: 0.5, topK: 3 },
    { temperature: 2, topP: 0.7 },
  ];
  for (const options of cases) {
    // The distribution written out independently: sort, keep top-k, renormalise, keep the nucleus.
    const t = options.temperature;
    const order = [0, 1, 2, 3, 4, 5].sort((a, b) => logits[b] - logits[a]);
    const kept = order.slice(0, options.topK ?? 6);
    let probs = kept.map((i) => Math.exp(logits[i] / t));
    let z = probs.reduce((a, b) => a + b);
    probs = probs.map((p) => p / z);
    if (options.topP !== undefined) {
      let acc = 0;
      const p = options.topP;
      const cut = probs.findIndex((q) => (acc += q) >= p) + 1;
      probs = probs.slice(0, cut);
      z = probs.reduce((a, b) => a + b);
      probs = probs.map((p) => p / z);
    }
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const tok = lm.sampleToken(logits, options, (i + 0.5) / n);
      counts.set(tok, (counts.get(tok) ?? 0) + 1);
    }
    probs.forEach((p, j) => assert(Math.abs((counts.get(kept[j]) ?? 0) / n - p) < 2 / n, JSON.stringify(options)));
    assert.equal([...counts.values()].reduce((a, b) => a + b), n);
    assert.equal(counts.size, probs.length);
  }
});

Deno.test("seeded sampling repeats; top-k 1 is greedy; a stop token ends the run; streaming decodes whole characters", () => {
  const prompt = [7, 8, 9];
  const a = lm.generate(model, prompt, { maxNewTokens: 10, temperature: 1.3, seed: 4, stopTokens: [] });
  const b = lm.generate(model, prompt, { maxNewTokens: 10, temperature: 1.3, seed: 4, stopTokens: [] });
  const c = lm.generate(model, prompt, { maxNewTokens: 10, temperature: 1.3, seed: 5, stopTokens: [] });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const greedy = lm.generate(model, prompt, { maxNewTokens: 6, stopTokens: [] });
  assert.deepEqual(lm.generate(model, prompt, { maxNewTokens: 6, temperature: 0.9, topK: 1, stopTokens: [] }), greedy);
  const stopAt = greedy[2];
  const stopped = lm.generate(model, prompt, { maxNewTokens: 6, stopTokens: [stopAt] });
  assert.deepEqual(stopped, greedy.slice(0, greedy.indexOf(stopAt) + 1));
  const seen: number[] = [];
  lm.generate(model, prompt, { maxNewTokens: 3, onToken: (t) => seen.push(t), stopTokens: [] });
  assert.deepEqual(seen, greedy.slice(0, 3));
  const bytes = new lm.ByteTokenizer();
  assert.deepEqual([...lm.decodeStream(bytes, bytes.encode("a€🎉", { addSpecialTokens: false }))], ["a", "€", "🎉"]);
});

Deno.test("bad generation input is refused by name", () => {
  const bad = (options: lm.GenerateOptions, text: string, prompt = [1]) =>
    assert.throws(
      () => lm.generate(model, prompt, options),
      (e) => e instanceof ArgumentError && e.message.includes(text),
    );
  bad({ temperature: -1 }, "temperature");
  bad({ topP: 0 }, "topP");
  bad({ topK: 1.5 }, "topK");
  bad({ maxNewTokens: -2 }, "maxNewTokens");
  bad({}, "prompt token 99", [1, 99]);
  bad({}, "no tokens", []);
});

Deno.test("examples/generate.ts runs on a tiny random model and on a checkpoint folder", async () => {
  const run = async (args: string[]) => {
    const cmd = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../examples/generate.ts", import.meta.url).pathname, ...args],
      env: { PATCHWORK_BACKEND: "cpu" },
    });
    const { code, stdout, stderr } = await cmd.output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    return { out: new TextDecoder().decode(stdout), err };
  };
  const tiny = await run(["--prompt", "Hi", "--max-new-tokens", "5"]);
  assert(tiny.out.startsWith("Hi") && /5 tokens in/.test(tiny.err), tiny.err);
  const dir = Deno.makeTempDirSync({ prefix: "patchwork_gen_" });
  const byteModel = new lm.LlamaForCausalLM(lm.PRESETS.tiny, { seed: 3 });
  await lm.savePretrained(byteModel, dir, { dtype: "bfloat16" });
  // A byte-level tokenizer.json (every byte a token, as GPT-2's byte map spells them).
  const vocab: Record<string, number> = {};
  const shown = [...Array(256).keys()].map((b) =>
    (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174) ? b : -1
  );
  let extra = 256;
  shown.forEach((v, b) => (vocab[String.fromCharCode(v >= 0 ? v : extra++)] = b));
  const tokenizerJson = {
    version: "1.0",
    added_tokens: [{
      id: 256,
      content: "<s>",
      special: true,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
    }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      vocab,
      merges: [],
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
    },
  };
  Deno.writeTextFileSync(`${dir}/tokenizer.json`, JSON.stringify(tokenizerJson));
  const fromDir = await run(["--model", dir, "--prompt", "héllo", "--max-new-tokens", "4", "--temperature", "0.7"]);
  assert(fromDir.out.startsWith("héllo") && /4 tokens in/.test(fromDir.err), fromDir.err);
  Deno.removeSync(dir, { recursive: true });
});

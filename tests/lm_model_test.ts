import assert from "node:assert/strict";
import {
  ArgumentError,
  concat,
  gradcheck,
  lm,
  memory,
  nn,
  randn,
  resetPeakMemory,
  type Tensor,
  tensor,
} from "../mod.ts";
import { assertRelClose, microConfig, smallConfig } from "./lm_helpers.ts";
import { randomData } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;

function throwsWith(fn: () => unknown, cls: new (...a: never[]) => Error, text: string): void {
  assert.throws(fn, (e) => e instanceof cls && e.message.includes(text));
}

function tokens(n: number, vocab: number, seed: number): number[] {
  return randomData(n, seed, 0, vocab).map(Math.floor);
}

Deno.test("attention equals a loop over queries, keys and heads (GQA, offset, window)", () => {
  const [b, hq, hkv, tq, tk, d] = [2, 4, 2, 3, 7, 5];
  const q = randn([b, hq, tq, d], { ...f64, seed: 1 });
  const k = randn([b, hkv, tk, d], { ...f64, seed: 2 });
  const v = randn([b, hkv, tk, d], { ...f64, seed: 3 });
  for (const window of [null, 3]) {
    const out = nn.scaledDotProductAttention(q, k, v, { causal: true, window }).toTypedArray();
    const [Q, K, V] = [q, k, v].map((t) => t.toTypedArray());
    const offset = tk - tq;
    for (let bi = 0; bi < b; bi++) {
      for (let h = 0; h < hq; h++) {
        const g = Math.floor(h / (hq / hkv));
        for (let i = 0; i < tq; i++) {
          const seen: number[] = [];
          for (let j = 0; j < tk; j++) {
            if (j <= offset + i && (window === null || offset + i - j < window)) seen.push(j);
          }
          const s = seen.map((j) => {
            let dot = 0;
            for (let c = 0; c < d; c++) {
              dot += Q[((bi * hq + h) * tq + i) * d + c] * K[((bi * hkv + g) * tk + j) * d + c];
            }
            return dot / Math.sqrt(d);
          });
          const m = Math.max(...s);
          const w = s.map((x) => Math.exp(x - m));
          const z = w.reduce((x, y) => x + y);
          for (let c = 0; c < d; c++) {
            const want = seen.reduce((acc, j, n) => acc + (w[n] / z) * V[((bi * hkv + g) * tk + j) * d + c], 0);
            const got = out[((bi * hq + h) * tq + i) * d + c];
            assert(Math.abs(got - want) < 1e-13, `window ${window}: ${got} vs ${want}`);
          }
        }
      }
    }
  }
});

Deno.test("attention, rotary, RMSNorm and the SwiGLU block pass gradcheck in float64", () => {
  const q = randn([1, 4, 3, 4], { ...f64, seed: 4 });
  const k = randn([1, 2, 5, 4], { ...f64, seed: 5 });
  const v = randn([1, 2, 5, 4], { ...f64, seed: 6 });
  gradcheck((a, b, c) => nn.scaledDotProductAttention(a, b, c, { causal: true, window: 4 }), [q, k, v], {
    secondOrder: true,
  });
  const cfg = microConfig();
  const { cos, sin } = lm.rotaryTables(cfg, 9, 3, f64);
  gradcheck((x) => lm.applyRotary(x, cos, sin), [randn([1, 2, 3, 4], { ...f64, seed: 7 })]);
  const w = randn([8], { ...f64, seed: 8 });
  gradcheck((x, g) => nn.rmsNorm(x, 8, g, null, 1e-5), [randn([3, 8], { ...f64, seed: 9 }), w]);
  const model = new lm.LlamaForCausalLM(cfg, { ...f64, seed: 1 });
  const mlp = model.model.layers.at(0).mlp;
  gradcheck((x) => mlp.forward(x), [randn([2, 8], { ...f64, seed: 10 })]);
  const layer = model.model.layers.at(1);
  const lc = lm.rotaryTables(cfg, 0, 4, f64);
  gradcheck((x) => layer.forward(x, lc.cos, lc.sin, undefined).output, [randn([1, 4, 8], { ...f64, seed: 11 })]);
});

Deno.test("rotary embeddings rotate pairs: norms kept, scores depend only on the distance", () => {
  const cfg = smallConfig();
  const x = randn([1, 1, 1, 4], { ...f64, seed: 12 });
  const y = randn([1, 1, 1, 4], { ...f64, seed: 13 });
  const at = (t: Tensor, p: number) => {
    const { cos, sin } = lm.rotaryTables(cfg, p, 1, f64);
    return lm.applyRotary(t, cos, sin);
  };
  const dot = (a: Tensor, b: Tensor) => a.mul(b).sum().item();
  assert(Math.abs(at(x, 17).square().sum().item() - x.square().sum().item()) < 1e-12);
  assert(Math.abs(dot(at(x, 3), at(y, 10)) - dot(at(x, 20), at(y, 27))) < 1e-12);
});

Deno.test("llama3 rope scaling keeps high frequencies, divides low ones by the factor, blends between", () => {
  const base = smallConfig({ headDim: 64, hiddenSize: 256, numAttentionHeads: 4, ropeTheta: 500000 });
  const scaled = {
    ...base,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    } as const,
  };
  const f0 = lm.ropeFrequencies(base);
  const f1 = lm.ropeFrequencies(scaled);
  let kept = 0, divided = 0, blended = 0;
  f0.forEach((f, i) => {
    const wavelen = 2 * Math.PI / f;
    if (wavelen < 8192 / 4) {
      assert.deepEqual(f1[i], f);
      kept++;
    } else if (wavelen > 8192) {
      assert(Math.abs(f1[i] - f / 8) <= 1e-18 + 1e-15 * f);
      divided++;
    } else {
      assert(f1[i] < f && f1[i] > f / 8);
      blended++;
    }
  });
  assert(kept > 0 && divided > 0 && blended > 0, `${kept} ${divided} ${blended}`);
});

Deno.test("the whole tiny model passes gradcheck in float64 (logits w.r.t. every parameter)", () => {
  const model = new lm.LlamaForCausalLM(microConfig({ tieWordEmbeddings: true }), { ...f64, seed: 2 });
  const names = model.namedParameters().map(([n]) => n);
  const params = model.namedParameters().map(([, p]) => p);
  const ids = [[3, 1, 4, 1, 5]];
  const run = (...ps: Tensor[]) =>
    nn.functionalCall(model, new Map(names.map((n, i) => [n, ps[i]])), () => model.forward(ids).logits);
  gradcheck(run, params, { checkJvp: false });
  const qwen = new lm.LlamaForCausalLM(microConfig({ modelType: "qwen2", attentionBias: true }), { ...f64, seed: 3 });
  const qn = qwen.namedParameters().map(([n]) => n);
  assert(qn.includes("model.layers.0.self_attn.q_proj.bias") && qn.includes("lm_head.weight"));
  const qrun = (...ps: Tensor[]) =>
    nn.functionalCall(qwen, new Map(qn.map((n, i) => [n, ps[i]])), () => qwen.loss(ids, [[1, 4, 1, 5, 9]]).loss);
  gradcheck(qrun, qwen.namedParameters().map(([, p]) => p), { checkJvp: false });
});

function chunkedRun(model: lm.LlamaForCausalLM, ids: number[], targets: number[], chunk: number) {
  model.zeroGrad();
  const logits: Tensor[] = [];
  let cache: lm.KVCache = [];
  let total: Tensor | null = null;
  for (let s = 0; s < ids.length; s += chunk) {
    const part = ids.slice(s, s + chunk);
    const out = model.forward([part], { cache });
    cache = out.cache;
    logits.push(out.logits);
    const l = lm.crossEntropy(out.logits, targets.slice(s, s + chunk), { reduction: "sum" });
    total = total ? total.add(l) : l;
  }
  total!.backward();
  const grads = model.parameters().map((p) => p.grad!.toTypedArray());
  return { logits: concat(logits, 1), grads };
}

Deno.test("chunk by chunk with the cache equals the full forward: logits and weight gradients (float64)", () => {
  const cfg = smallConfig({ slidingWindow: 6, modelType: "mistral" });
  const model = new lm.LlamaForCausalLM(cfg, { ...f64, seed: 4 });
  const ids = tokens(13, cfg.vocabSize, 21);
  const targets = tokens(13, cfg.vocabSize, 22);
  const full = chunkedRun(model, ids, targets, ids.length);
  for (const chunk of [1, 3, 5, 8]) {
    const part = chunkedRun(model, ids, targets, chunk);
    assertRelClose(part.logits, full.logits, 1e-12, `logits, chunk ${chunk}`);
    part.grads.forEach((g, i) => assertRelClose(g, full.grads[i], 1e-12, `gradient ${i}, chunk ${chunk}`));
  }
});

Deno.test("keysValues gives forward's cache, every layer, with and without a cache before it", () => {
  const model = new lm.LlamaForCausalLM(microConfig({ numHiddenLayers: 3 }), { seed: 8, ...f64 });
  const first = tokens(5, 11, 9), next = tokens(4, 11, 10);
  const a = model.forward([first]);
  const kvA = model.keysValues([first]).cache;
  const b = model.forward([next], { cache: a.cache });
  const kvB = model.keysValues([next], { cache: a.cache }).cache;
  for (const [got, want] of [[kvA, a.cache], [kvB, b.cache]]) {
    assert.equal(got.length, 3);
    got.forEach((layer, i) => {
      assert.deepEqual(layer.keys.toTypedArray(), want[i].keys.toTypedArray(), `keys of layer ${i}`);
      assert.deepEqual(layer.values.toTypedArray(), want[i].values.toTypedArray(), `values of layer ${i}`);
    });
  }
  assert.deepEqual(kvB[2].keys.shape, [1, 1, 9, 4]);
  throwsWith(
    () => model.keysValues([first], { checkpointLayers: true } as lm.ForwardOptions),
    ArgumentError,
    "checkpointLayers returns no cache",
  );
});

Deno.test("the sliced cross-entropy equals the one on full logits, values and gradients", () => {
  const h = randn([2, 5, 6], { ...f64, seed: 30 }).requireGrad();
  const w = randn([23, 6], { ...f64, seed: 31 }).requireGrad();
  const t = tensor([[1, 22, 0, -100, 7], [3, 3, 21, 9, -100]], { dtype: "int32" });
  for (const reduction of ["mean", "sum", "none"] as const) {
    for (const sliceSize of [1, 4, 23, 100]) {
      const a = lm.linearCrossEntropy(h, w, t, { reduction, sliceSize });
      const b = lm.crossEntropy(h.matmul(w.transpose()), t, { reduction });
      assertRelClose(a, b, 1e-14, `${reduction} ${sliceSize}`);
      const seed = randn(a.shape, { ...f64, seed: 32 });
      a.backward(seed);
      const [gh, gw] = [h.grad!.toTypedArray(), w.grad!.toTypedArray()];
      h.zeroGrad();
      w.zeroGrad();
      b.backward(seed);
      assertRelClose(gh, h.grad!, 1e-13, `d/dh ${reduction} ${sliceSize}`);
      assertRelClose(gw, w.grad!, 1e-13, `d/dw ${reduction} ${sliceSize}`);
      h.zeroGrad();
      w.zeroGrad();
    }
  }
  const h0 = randn([4, 3], { ...f64, seed: 33 });
  const w0 = randn([9, 3], { ...f64, seed: 34 });
  gradcheck((x, y) => lm.linearCrossEntropy(x, y, [1, 8, -100, 0], { sliceSize: 4 }), [h0, w0], { secondOrder: true });
});

Deno.test("a −∞ logit of a class that is not the target costs nothing, in every cross-entropy and implementation", () => {
  // h·wᵀ: rows h = (2, 1) and (1, 0); class 2's weight (−∞, 0) gives it the logit −∞ in both rows.
  const h = tensor([[2, 1], [1, 0]], f64);
  const w = tensor([[1, 0], [0, 1], [-Infinity, 0]], f64);
  const t = [0, 1];
  // By hand: logits (2, 1, −∞) and (1, 0, −∞); loss_r = log Σ e^z − z_target.
  const want = [Math.log(Math.exp(2) + Math.exp(1)) - 2, Math.log(Math.exp(1) + 1) - 0];
  for (const implementation of ["composed", "fused"] as const) {
    for (const sliceSize of [1, 2, 3]) {
      const got = lm.linearCrossEntropy(h, w, t, { reduction: "none", sliceSize, implementation });
      assertRelClose(got, want, 1e-15, `${implementation}, slices of ${sliceSize}`);
    }
  }
  assertRelClose(lm.crossEntropy(h.matmul(w.transpose()), t, { reduction: "none" }), want, 1e-15, "crossEntropy");
  // The target's own −∞ logit makes its loss +∞, as it should.
  assert.equal(lm.linearCrossEntropy(h, w, [2, 0], { reduction: "none" }).toTypedArray()[0], Infinity);
});

Deno.test("the sliced cross-entropy holds one slice of logits at a time", () => {
  const [n, d, vocab, slice] = [256, 16, 8192, 256];
  const h = randn([n, d], { seed: 40 }).requireGrad();
  const w = randn([vocab, d], { seed: 41 }).requireGrad();
  const t = tokens(n, vocab, 42);
  const peakOf = (fn: () => Tensor) => {
    const before = memory().current;
    resetPeakMemory();
    fn().backward();
    h.zeroGrad();
    w.zeroGrad();
    return memory().peak - before;
  };
  const sliced = peakOf(() => lm.linearCrossEntropy(h, w, t, { sliceSize: slice }));
  const naive = peakOf(() => lm.crossEntropy(h.matmul(w.transpose()), t));
  const fullLogits = n * vocab * 4;
  const wGrad = vocab * d * 4;
  // The weight's gradient (written once, copied into .grad) and a few slices' worth on top.
  assert(sliced < wGrad * 2 + fullLogits / 2, `peak ${sliced} bytes, full logits ${fullLogits}`);
  assert(sliced < naive / 4, `sliced peak ${sliced} bytes, naive ${naive}`);
});

Deno.test("bad input: token outside the vocabulary, positions past the limit, a misshapen cache", () => {
  const cfg = smallConfig({ maxPositionEmbeddings: 8 });
  const model = new lm.LlamaForCausalLM(cfg, { seed: 0 });
  throwsWith(() => model.forward([[1, 37]]), ArgumentError, "token id 37 at position 1");
  throwsWith(() => model.forward([[1, -1]]), ArgumentError, "outside the vocabulary");
  throwsWith(() => model.forward([[1, 2, 3, 4, 5, 6, 7, 8, 9]]), lm.ConfigError, "max_position_embeddings");
  const { cache } = model.forward([[1, 2]]);
  throwsWith(() => model.forward([[3]], { cache: cache.slice(1) }), ArgumentError, "holds 1 layers");
  throwsWith(() => model.forward([[3]], { cache, position: 5 }), ArgumentError, "differs from the cache");
  throwsWith(() => lm.crossEntropy(randn([2, 37]), [1, 40]), ArgumentError, "target 40 at position 1");
  const scaled = new lm.LlamaForCausalLM({ ...cfg, ropeScaling: { type: "linear", factor: 2 } }, { seed: 0 });
  assert.deepEqual(scaled.forward([[1, 2, 3, 4, 5, 6, 7, 8, 9]]).logits.shape, [1, 9, 37]);
});

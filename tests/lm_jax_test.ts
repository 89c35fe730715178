// A second implementation that is not ours: the same Llama written with jax-js (a separately
// written JavaScript autodiff), run on the same random weights read back from a safetensors file,
// must give the same logits and parameter gradients in float64.

import assert from "node:assert/strict";
import { defaultDevice, init, nn as jnn, numpy as np } from "@jax-js/jax";
import { lm, nn } from "../mod.ts";
import { assertRelClose, smallConfig } from "./lm_helpers.ts";
import { assertLossAndGradients, jaxCrossEntropy, jaxLayers, type Params } from "./lm_jax_helpers.ts";
import { randomData } from "./helpers.ts";

// jax-js's default (wasm) device evaluates exp and log in float64 to about 1e-7 only; its "cpu"
// device uses JavaScript's Math and is exact to rounding.
await init();
defaultDevice("cpu");

/** The float64 tensors of a safetensors file, read with nothing of ours. */
function readSafetensors(bytes: Uint8Array): Map<string, { shape: number[]; data: Float64Array<ArrayBuffer> }> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const out = new Map<string, { shape: number[]; data: Float64Array<ArrayBuffer> }>();
  for (
    const [name, e] of Object.entries(
      header as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>,
    )
  ) {
    if (name === "__metadata__") continue;
    assert.equal(e.dtype, "F64");
    const raw = bytes.slice(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    out.set(name, { shape: e.shape, data: new Float64Array(raw.buffer) });
  }
  return out;
}

/** Hugging Face's Llama forward (modeling_llama.py), batch-first, in jax-js. */
function jaxLogits(c: lm.LlamaConfig, p: Params, ids: number[][]): np.Array {
  const [b, t] = [ids.length, ids[0].length];
  const { numAttentionHeads: hq, numKeyValueHeads: hkv, headDim: hd } = c;
  const f64 = { dtype: np.float64 };
  const invFreq = Array.from({ length: hd / 2 }, (_, i) => 1 / Math.pow(c.ropeTheta, (2 * i) / hd));
  const table = (fn: (x: number) => number) =>
    Float64Array.from({ length: t * hd }, (_, k) => fn(Math.floor(k / hd) * invFreq[(k % hd) % (hd / 2)]));
  const cosT = table(Math.cos);
  const sinT = table(Math.sin);
  const maskT = Float64Array.from({ length: t * t }, (_, k) => {
    const [i, j] = [Math.floor(k / t), k % t];
    return j <= i && (c.slidingWindow === null || i - j < c.slidingWindow) ? 0 : -Infinity;
  });
  const { linear, rmsNorm } = jaxLayers(p, c.rmsNormEps);
  const rope = (x: np.Array) => {
    const half = hd / 2;
    const rotated = np.concatenate([x.ref.slice([], [], [], [half, hd]).neg(), x.ref.slice([], [], [], [0, half])], 3);
    const cos = np.array(cosT, f64).reshape([t, hd]);
    const sin = np.array(sinT, f64).reshape([t, hd]);
    return x.mul(cos).add(rotated.mul(sin));
  };
  const heads = (x: np.Array, h: number) => x.reshape([b, t, h, hd]).transpose([0, 2, 1, 3]);
  const tokenIds = np.array(Int32Array.from(ids.flat()), { dtype: np.int32 });
  const tied = c.tieWordEmbeddings;
  const embed = p["model.embed_tokens.weight"];
  let x = np.take(tied ? embed.ref : embed, tokenIds, 0).reshape([b, t, c.hiddenSize]);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const at = `model.layers.${l}`;
    const h = rmsNorm(x.ref, `${at}.input_layernorm`);
    const q = rope(heads(linear(h.ref, `${at}.self_attn.q_proj`), hq));
    const k = np.repeat(rope(heads(linear(h.ref, `${at}.self_attn.k_proj`), hkv)), hq / hkv, 1);
    const v = np.repeat(heads(linear(h, `${at}.self_attn.v_proj`), hkv), hq / hkv, 1);
    const scores = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(hd))
      .add(np.array(maskT, f64).reshape([t, t]));
    const a = np.matmul(jnn.softmax(scores, -1), v).transpose([0, 2, 1, 3]).reshape([b, t, hq * hd]);
    x = x.add(linear(a, `${at}.self_attn.o_proj`));
    const h2 = rmsNorm(x.ref, `${at}.post_attention_layernorm`);
    const gate = jnn.silu(linear(h2.ref, `${at}.mlp.gate_proj`));
    x = x.add(linear(gate.mul(linear(h2, `${at}.mlp.up_proj`)), `${at}.mlp.down_proj`));
  }
  x = rmsNorm(x, "model.norm");
  return np.matmul(x, (tied ? embed : p["lm_head.weight"]).transpose());
}

function jaxLoss(c: lm.LlamaConfig, p: Params, ids: number[][], targets: number[][]): np.Array {
  return jaxCrossEntropy(jaxLogits(c, p, ids), targets);
}

function check(config: lm.LlamaConfig, seed: number): void {
  const model = new lm.LlamaForCausalLM(config, { dtype: "float64", seed });
  const weights = readSafetensors(nn.encodeSafetensors(model.stateDict()));
  const params = () =>
    Object.fromEntries(
      [...weights].map(([k, w]) => [k, np.array(w.data, { dtype: np.float64 }).reshape(w.shape)]),
    ) as Params;
  const ids = [0, 1].map((r) => randomData(9, seed + r, 0, config.vocabSize).map(Math.floor));
  const targets = [0, 1].map((r) => randomData(9, seed + 10 + r, 0, config.vocabSize).map(Math.floor));
  const theirs = jaxLogits(config, params(), ids);
  assertRelClose(model.forward(ids).logits, theirs.dataSync() as Float64Array, 1e-12, "logits");
  assertLossAndGradients(model, ids, targets, 16, (p) => jaxLoss(config, p, ids, targets), params);
}

Deno.test("jax-js Llama (GQA, sliding window): same logits and parameter gradients in float64", () => {
  check(smallConfig({ modelType: "mistral", slidingWindow: 5 }), 3);
});

Deno.test("jax-js Qwen2 (q/k/v biases, tied head): same logits and parameter gradients in float64", () => {
  check(smallConfig({ modelType: "qwen2", attentionBias: true, tieWordEmbeddings: true, numKeyValueHeads: 1 }), 7);
});

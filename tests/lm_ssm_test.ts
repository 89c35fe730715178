// The selective state-space language model: its scan against a loop of tensor ops and finite
// differences, the layer against finite differences, the model against a second implementation
// written with jax-js (a separately written JavaScript autodiff), the state carried between calls,
// the kernel compiled by nvcc, and bad input.

import assert from "node:assert/strict";
import { defaultDevice, init, nn as jnn, numpy as np } from "@jax-js/jax";
import {
  ArgumentError,
  concat,
  DTypeError,
  grad,
  gradcheck,
  lm,
  nn,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import { linearScanHost } from "../src/backend/cpu/ssm_scan.ts";
import { fusedKernelNames } from "../src/backend/cuda/fused.ts";
import { assertRelClose, microSSMConfig } from "./lm_helpers.ts";
import { assertLossAndGradients, jaxCrossEntropy, jaxLayers, type Params } from "./lm_jax_helpers.ts";
import { assertClose, assertRaises, randomData } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;

await init();
defaultDevice("cpu");

/** The recurrence as a loop of tensor ops, one step at a time. */
function loopScan(a: Tensor, b: Tensor, h0: Tensor, reverse: boolean): Tensor {
  const steps = a.shape[1];
  const out: Tensor[] = new Array(steps);
  let h = h0;
  for (let k = 0; k < steps; k++) {
    const t = reverse ? steps - 1 - k : k;
    h = a.narrow(1, t, 1).squeeze(1).mul(h).add(b.narrow(1, t, 1).squeeze(1));
    out[t] = h.unsqueeze(1);
  }
  return concat(out, 1);
}

Deno.test("linearScan equals a loop of tensor ops: states and gradients, forward and reverse, with an initial state", () => {
  const a = randn([2, 7, 3], { ...f64, seed: 1 }).sigmoid();
  const b = randn([2, 7, 3], { ...f64, seed: 2 });
  const h0 = randn([2, 3], { ...f64, seed: 3 });
  const w = randn([2, 7, 3], { ...f64, seed: 4 });
  for (const reverse of [false, true]) {
    const ours = (x: Tensor, y: Tensor, z: Tensor) => lm.linearScan(x, y, { initial: z, reverse });
    const theirs = (x: Tensor, y: Tensor, z: Tensor) => loopScan(x, y, z, reverse);
    assertClose(ours(a, b, h0), theirs(a, b, h0), { rtol: 1e-14, atol: 1e-14 }, `states (reverse ${reverse})`);
    for (const argnum of [0, 1, 2]) {
      const g1 = grad((x: Tensor, y: Tensor, z: Tensor) => ours(x, y, z).mul(w).sum(), { argnums: argnum })(a, b, h0);
      const g2 = grad((x: Tensor, y: Tensor, z: Tensor) => theirs(x, y, z).mul(w).sum(), { argnums: argnum })(a, b, h0);
      assertClose(g1, g2, { rtol: 1e-12, atol: 1e-13 }, `gradient of input ${argnum} (reverse ${reverse})`);
    }
  }
  // Zeros by default; one step.
  assertClose(lm.linearScan(a, b), loopScan(a, b, zeros([2, 3], f64), false), { rtol: 1e-14, atol: 1e-14 }, "h0 = 0");
  const one = lm.linearScan(a.narrow(1, 2, 1), b.narrow(1, 2, 1), { initial: h0 });
  assertClose(one, a.narrow(1, 2, 1).mul(h0.unsqueeze(1)).add(b.narrow(1, 2, 1)), { rtol: 1e-15 }, "one step");
});

Deno.test("linearScan: first and second derivatives against finite differences (float64)", () => {
  const a = randn([2, 5, 3], { ...f64, seed: 5 }).sigmoid();
  const b = randn([2, 5, 3], { ...f64, seed: 6 });
  const h0 = randn([2, 3], { ...f64, seed: 7 });
  for (const reverse of [false, true]) {
    gradcheck((x, y, z) => lm.linearScan(x, y, { initial: z, reverse }).square().sum(), [a, b, h0], {
      secondOrder: true,
    });
  }
});

Deno.test("linearScanHost: the CPU path of the kernel (float64 state, one multiply and one add per step)", () => {
  assert.deepEqual([...linearScanHost([0.5, 0.5], [1, 1], null, 1, 2, 1, false)], [1, 1.5]);
  assert.deepEqual([...linearScanHost([0.5, 0.5], [1, 1], [4], 1, 2, 1, true)], [2.5, 3]);
  // float32 operands: the state stays float64 between steps and is rounded once on upload.
  const a = tensor([[[0.1], [0.1], [0.1]]]), b = tensor([[[0.3], [0.3], [0.3]]]);
  const host = linearScanHost(a.toTypedArray(), b.toTypedArray(), null, 1, 3, 1, false);
  assert.deepEqual([...lm.linearScan(a, b).toTypedArray()], [...Float32Array.from(host)]);
});

const nvcc = (() => {
  try {
    return new Deno.Command("nvcc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "kernels/ssm_scan.cu compiles with nvcc for sm_90: the kernels the backend asks for, no fused multiply-add",
  ignore: !nvcc,
  fn: () => {
    const kernels = new URL("../kernels/", import.meta.url).pathname;
    const out = new Deno.Command("nvcc", {
      args: ["-ptx", "-arch=sm_90", "-I", kernels, `${kernels}ssm_scan.cu`, "-o", "-"],
    }).outputSync();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const ptx = new TextDecoder().decode(out.stdout);
    const entries = [...ptx.matchAll(/\.entry (\w+)\(/g)].map((m) => m[1]).sort();
    assert.deepEqual(entries, [...fusedKernelNames().ssm_scan!].sort());
    assert.ok(!/\bfma\.rn\.f64\b/.test(ptx), "the double steps must not be contracted into fused multiply-adds");
  },
});

Deno.test("SSMLayer: gradients of the input, the initial state and every parameter against finite differences", () => {
  const model = new lm.SSMForCausalLM(microSSMConfig(1), { ...f64, seed: 2 });
  const layer = model.layers.at(0);
  const y = randn([2, 4, 6], { ...f64, seed: 8 });
  const h0 = randn([2, 3], { ...f64, seed: 9 });
  const names = layer.namedParameters().map(([n]) => n);
  const params = layer.namedParameters().map(([, p]) => p.detach());
  gradcheck(
    (x: Tensor, s: Tensor, ...ps: Tensor[]) =>
      nn.functionalCall(layer, Object.fromEntries(names.map((n, i) => [n, ps[i]])), () => {
        const out = layer.forward(x, s);
        return out.output.square().sum().add(out.states.sin().sum());
      }),
    [y, h0, ...params],
  );
});

/** The model of src/lm/ssm.ts written again in jax-js, the recurrence a loop over the steps. */
function jaxLoss(c: lm.SSMConfig, p: Params, ids: number[][], targets: number[][]): np.Array {
  const [b, t] = [ids.length, ids[0].length];
  const { hiddenSize: d, stateSize: n } = c;
  const { linear, rmsNorm } = jaxLayers(p, c.rmsNormEps);
  const tokenIds = np.array(Int32Array.from(ids.flat()), { dtype: np.int32 });
  let y = np.take(p["embed_tokens.weight"], tokenIds, 0).reshape([b, t, d]);
  for (let k = 0; k < c.numLayers; k++) {
    const at = `layers.${k}`;
    const x = rmsNorm(y.ref, `${at}.norm`);
    const a = jnn.sigmoid(linear(x.ref, `${at}.mixer.a_proj`));
    const bx = np.matmul(linear(x.ref, `${at}.mixer.b_proj`).reshape([b, t, n, d]), x.ref.reshape([b, t, d, 1]));
    const cm = linear(x, `${at}.mixer.c_proj`).reshape([b, t, d, n]);
    let h = np.zeros([b, n], { dtype: np.float64 });
    const hs: np.Array[] = [];
    for (let s = 0; s < t; s++) {
      h = a.ref.slice([], s).mul(h).add(bx.ref.slice([], s).reshape([b, n]));
      hs.push(h.ref);
    }
    a.dispose();
    bx.dispose();
    h.dispose();
    y = y.add(np.matmul(cm, np.stack(hs, 1).reshape([b, t, n, 1])).reshape([b, t, d]));
  }
  return jaxCrossEntropy(np.matmul(rmsNorm(y, "norm"), p["lm_head.weight"].transpose()), targets);
}

Deno.test("jax-js SSM: same loss and parameter gradients in float64 (2 layers, batch 2)", () => {
  const config = microSSMConfig(2);
  const model = new lm.SSMForCausalLM(config, { ...f64, seed: 4 });
  const params = () =>
    Object.fromEntries(
      model.namedParameters().map((
        [k, w],
      ) => [k, np.array(Float64Array.from(w.toTypedArray()), { dtype: np.float64 }).reshape([...w.shape])]),
    ) as Params;
  const ids = [0, 1].map((r) => randomData(7, 20 + r, 0, config.vocabSize).map(Math.floor));
  const targets = [0, 1].map((r) => randomData(7, 30 + r, 0, config.vocabSize).map(Math.floor));
  assertLossAndGradients(model, ids, targets, 4, (p) => jaxLoss(config, p, ids, targets), params);
});

Deno.test("SSMForCausalLM: run block by block with the state carried, the logits equal one run (float64)", () => {
  const model = new lm.SSMForCausalLM(microSSMConfig(3), { ...f64, seed: 5 });
  const ids = [0, 1].map((r) => randomData(10, 40 + r, 0, 11).map(Math.floor));
  const whole = model.forward(ids).logits;
  let state: Tensor[] = [];
  const parts: Tensor[] = [];
  for (const [start, n] of [[0, 1], [1, 4], [5, 5]]) {
    const out = model.forward(ids.map((r) => r.slice(start, start + n)), { state });
    parts.push(out.logits);
    state = out.state;
  }
  assertRelClose(concat(parts, 1), whole, 1e-12, "logits");
  assert.deepEqual(state.map((h) => h.shape), [[2, 3], [2, 3], [2, 3]]);
});

Deno.test("SSMForCausalLM: decays in (0, 1) spread over the state at initialisation; float32 loss near ln V", () => {
  const model = new lm.SSMForCausalLM(lm.SSM_PRESETS.tiny, { seed: 0 });
  const x = randn([1, 5, 32], { seed: 3 });
  const a = model.layers.at(0).mixer.decay(x.mul(0)).toTypedArray();
  assert.ok(Math.abs(a[0] - 0.9) < 1e-6 && Math.abs(a[7] - 0.999) < 1e-6, `decays ${a.slice(0, 8)}`);
  assert.ok(a.every((v) => v > 0 && v < 1));
  const ids = [randomData(65, 3, 0, 256).map(Math.floor)];
  const loss = model.loss([ids[0].slice(0, 64)], [ids[0].slice(1)]).loss.item();
  assert.ok(Math.abs(loss - Math.log(259)) < 0.5, `initial loss ${loss}`);
  assert.deepEqual(
    model.namedParameters().map(([n]) => n).filter((n) => n.startsWith("layers.0") || !n.startsWith("layers.")),
    [
      "embed_tokens.weight",
      "layers.0.norm.weight",
      "layers.0.mixer.a_proj.weight",
      "layers.0.mixer.a_proj.bias",
      "layers.0.mixer.b_proj.weight",
      "layers.0.mixer.b_proj.bias",
      "layers.0.mixer.c_proj.weight",
      "layers.0.mixer.c_proj.bias",
      "norm.weight",
      "lm_head.weight",
    ],
  );
});

Deno.test("bad input: configs, states, tokens and scan operands are typed errors naming what is wrong", () => {
  assertRaises(
    () => lm.ssmConfig({ vocabSize: 10, hiddenSize: 0, stateSize: 2, numLayers: 1 }),
    lm.ConfigError,
    "ssmConfig",
    "hiddenSize",
  );
  assertRaises(
    () => lm.ssmConfig({ vocabSize: 10, hiddenSize: 4, stateSize: 2, numLayers: 1, decayRange: [0.5, 1] }),
    lm.ConfigError,
    "ssmConfig",
    "decayRange",
  );
  const model = new lm.SSMForCausalLM(microSSMConfig(2), { ...f64, seed: 1 });
  assertRaises(
    () => model.forward([[1, 2]], { state: [zeros([1, 3], f64)] }),
    ShapeError,
    "SSMForCausalLM",
    "2 tensors [1, 3]",
  );
  assertRaises(() => model.forward([[1, 11]]), ArgumentError, "SSMForCausalLM", "token id 11");
  const a = zeros([1, 4, 2], f64);
  assertRaises(() => lm.linearScan(a, zeros([1, 4, 3], f64)), ShapeError, "linearScan", "[batch, T, N]");
  assertRaises(() => lm.linearScan(a, zeros([1, 4, 2])), DTypeError, "linearScan", "one float dtype");
  assertRaises(
    () => lm.linearScan(a, a, { initial: zeros([2, 2], f64) }),
    ShapeError,
    "linearScan",
    "[batch, N] = [1, 2]",
  );
});

Deno.test("saveSSM / loadSSM: a folder with config.json and model.safetensors gives the same model back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "patchwork-ssm-" });
  try {
    const model = new lm.SSMForCausalLM(microSSMConfig(2), { ...f64, seed: 6 });
    await lm.saveSSM(model, dir);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(json.model_type, "patchwork-ssm");
    assert.deepEqual(json.decay_range, [0.5, 0.95]);
    const back = await lm.loadSSM(dir, f64);
    assert.deepEqual(back.config, model.config);
    const ids = [[1, 2, 3, 4, 5]];
    assert.deepEqual([...back.forward(ids).logits.toTypedArray()], [...model.forward(ids).logits.toTypedArray()]);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...json, model_type: "llama" }));
    await assert.rejects(() => lm.loadSSM(dir), (e) => e instanceof lm.ConfigError && /patchwork-ssm/.test(e.message));
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...json, state_size: undefined }));
    await assert.rejects(() => lm.loadSSM(dir), (e) => e instanceof lm.ConfigError && /state_size/.test(e.message));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

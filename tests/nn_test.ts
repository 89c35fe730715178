import assert from "node:assert/strict";
import {
  ArgumentError,
  Generator,
  getDefaultBackend,
  grad,
  gradcheck,
  nn,
  noGrad,
  ones,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../mod.ts";
import { assertClose } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

function stats(t: Tensor): { mean: number; std: number; min: number; max: number } {
  const x = t.toTypedArray();
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of x) {
    s += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = s / x.length;
  let q = 0;
  for (const v of x) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / x.length), min, max };
}

/** A custom module with a parameter, a buffer and two children (one nested). */
class Block extends nn.Module {
  readonly scale = this.param("scale", ones([3]));
  readonly fc = this.module("fc", new nn.Linear(3, 2, { seed: 1 }));
  forward(x: Tensor): Tensor {
    return this.fc.forward(x.mul(this.scale));
  }
}

class Net extends nn.Module {
  readonly block = this.module("block", new Block());
  readonly head = this.module("head", new nn.Linear(2, 1, { seed: 2, bias: false }));
  readonly offsets = this.buffer("offsets", tensor([0.5]));
  forward(x: Tensor): Tensor {
    return this.head.forward(this.block.forward(x)).add(this.offsets);
  }
}

// ---------------------------------------------------------------------------------------------
// Module tree

Deno.test("module: named parameters walk the tree depth first with dotted names", () => {
  const net = new Net();
  assert.deepEqual(net.namedParameters().map(([n]) => n), [
    "block.scale",
    "block.fc.weight",
    "block.fc.bias",
    "head.weight",
  ]);
  assert.deepEqual(net.namedBuffers().map(([n]) => n), ["offsets"]);
  assert.deepEqual([...net.namedModules()].map(([n]) => n), ["", "block", "block.fc", "head"]);
  assert.equal(net.numParameters(), 3 + 6 + 2 + 2);
  assert.equal(net.parameters().length, 4);
  for (const p of net.parameters()) {
    assert.equal(p.requiresGrad, true);
    assert.equal(p.node, null);
  }
  assert.equal(net.getParameter("scale"), undefined);
  assert.equal(net.block.getParameter("scale"), net.block.scale);
  assert.match(String(net), /block: Block \{scale\[3\]\}/);
});

Deno.test("module: MLP names are layers.i.weight / layers.i.bias", () => {
  const net = new nn.MLP([2, 8, 4, 1]);
  assert.deepEqual(net.namedParameters().map(([n]) => n), [
    "layers.0.weight",
    "layers.0.bias",
    "layers.1.weight",
    "layers.1.bias",
    "layers.2.weight",
    "layers.2.bias",
  ]);
  assert.equal(net.numParameters(), 2 * 8 + 8 + 8 * 4 + 4 + 4 + 1);
  const seq = new nn.Sequential(new nn.Linear(2, 3), new nn.Activation("relu"), new nn.Linear(3, 1));
  assert.deepEqual([...seq.stateDict().keys()], ["0.weight", "0.bias", "2.weight", "2.bias"]);
});

Deno.test("module: registration rejects duplicate and malformed names", () => {
  class Dup extends nn.Module {
    constructor() {
      super();
      this.param("w", zeros([1]));
      this.param("w", zeros([1]));
    }
  }
  assert.throws(() => new Dup(), (e) => e instanceof ArgumentError && /"w" is already registered/.test(e.message));
  class Dotted extends nn.Module {
    constructor() {
      super();
      this.param("a.b", zeros([1]));
    }
  }
  assert.throws(() => new Dotted(), ArgumentError);
  class IntParam extends nn.Module {
    constructor() {
      super();
      this.param("i", zeros([1], { dtype: "int32" }));
    }
  }
  assert.throws(() => new IntParam(), /float dtype/);
});

Deno.test("module: freeze/unfreeze toggle requiresGrad; train/eval propagate", () => {
  const net = new Net();
  net.block.freeze();
  assert.equal(net.numParameters({ trainableOnly: true }), 2);
  assert.equal(net.block.fc.weight.requiresGrad, false);
  // Frozen parameters receive no gradient.
  net.forward(ones([4, 3])).sum().backward();
  assert.equal(net.block.fc.weight.grad, null);
  assert.ok(net.head.weight.grad);
  net.zeroGrad();
  assert.equal(net.head.weight.grad, null);
  net.unfreeze();
  assert.equal(net.numParameters({ trainableOnly: true }), net.numParameters());
  assert.equal(net.training, true);
  net.eval();
  assert.equal(net.block.fc.training, false);
  net.train();
  assert.equal(net.head.training, true);
});

Deno.test("module: parameters survive tidy scopes", () => {
  const net = tidy(() => new nn.MLP([2, 4, 1], { seed: 3 }));
  for (const p of net.parameters()) assert.equal(p.disposed, false);
  tidy(() => {
    net.forward(ones([2, 2])).sum().backward();
  });
  for (const p of net.parameters()) {
    assert.equal(p.disposed, false);
    assert.equal(p.grad!.disposed, false);
  }
  net.zeroGrad();
});

// ---------------------------------------------------------------------------------------------
// State dicts

Deno.test("stateDict: round trip makes two modules compute the same thing", () => {
  const a = new Net();
  const b = new Net();
  b.block.fc.weight.assign(randn([2, 3], { seed: 9 }));
  b.offsets.assign(3);
  const x = randn([5, 3], { seed: 4 });
  assert.notDeepEqual(flat(a.forward(x)), flat(b.forward(x)));
  const result = b.loadStateDict(a.stateDict());
  assert.deepEqual(result, { missingKeys: [], unexpectedKeys: [] });
  assertClose(flat(b.forward(x)), flat(a.forward(x)), { atol: 1e-6, rtol: 1e-6 }, "after load");
  assert.deepEqual([...a.stateDict().keys()], [
    "block.scale",
    "block.fc.weight",
    "block.fc.bias",
    "head.weight",
    "offsets",
  ]);
  // A record works too, and values are copied (not aliased).
  const c = new Net();
  c.loadStateDict(Object.fromEntries(a.stateDict()));
  a.block.scale.assign(7);
  assert.deepEqual(flat(c.block.scale), [1, 1, 1]);
});

Deno.test("stateDict: shape mismatch raises ShapeError naming the entry and both shapes", () => {
  const net = new nn.MLP([2, 4, 1]);
  const sd = new nn.MLP([2, 4, 1]).stateDict();
  const before = flat(net.layers.at(0).bias!);
  sd.set("layers.0.bias", zeros([4])); // fine
  sd.set("layers.1.weight", zeros([3, 4])); // wrong
  assert.throws(
    () => net.loadStateDict(sd),
    (e) =>
      e instanceof ShapeError && e.message.includes('"layers.1.weight"') && e.message.includes("[1,4]") &&
      e.message.includes("[3,4]"),
  );
  // Nothing was written.
  assert.deepEqual(flat(net.layers.at(0).bias!), before);
});

Deno.test("stateDict: strict mode reports missing and unexpected keys; non-strict returns them", () => {
  const net = new nn.MLP([2, 4, 1]);
  const sd = new nn.MLP([2, 4, 1], { seed: 5 }).stateDict();
  sd.delete("layers.1.bias");
  sd.set("extra.weight", zeros([1]));
  assert.throws(
    () => net.loadStateDict(sd),
    (e) =>
      e instanceof ArgumentError && /missing keys: "layers.1.bias"/.test(e.message) &&
      /unexpected keys: "extra.weight"/.test(e.message),
  );
  const r = net.loadStateDict(sd, { strict: false });
  assert.deepEqual(r, { missingKeys: ["layers.1.bias"], unexpectedKeys: ["extra.weight"] });
  assertClose(flat(net.layers.at(0).weight), flat(sd.get("layers.0.weight")!), {}, "loaded");
});

Deno.test("module.to converts parameters and buffers and updates fields", () => {
  const net = new Net().to("float64");
  for (const [, t] of net.stateDict()) assert.equal(t.dtype, "float64");
  assert.equal(net.block.fc.weight.dtype, "float64");
  assert.equal(net.block.fc.weight, net.block.fc.getParameter("weight"));
  assert.equal(net.block.fc.weight.requiresGrad, true);
  const y = net.forward(ones([2, 3], { dtype: "float64" }));
  assert.equal(y.dtype, "float64");
  y.sum().backward();
  assert.equal(net.block.scale.grad!.dtype, "float64");
});

Deno.test("functionalCall: gradients with respect to a parameter record match backward()", () => {
  const fc = new nn.Linear(3, 2, { seed: 0, dtype: "float64" });
  const x = randn([4, 3], { seed: 1, dtype: "float64" });
  const loss = (p: Record<string, Tensor>) => nn.functionalCall(fc, p, () => fc.forward(x).square().sum());
  const g = grad(loss)(Object.fromEntries(fc.namedParameters())) as Record<string, Tensor>;
  fc.forward(x).square().sum().backward();
  assertClose(flat(g.weight), flat(fc.weight.grad!), { atol: 1e-12, rtol: 1e-12 }, "weight");
  assertClose(flat(g.bias), flat(fc.bias!.grad!), { atol: 1e-12, rtol: 1e-12 }, "bias");
  // Parameters are restored afterwards; wrong names and shapes are refused.
  assert.equal(fc.getParameter("weight"), fc.weight);
  assert.throws(() => nn.functionalCall(fc, { nope: zeros([1]) }, () => 0), /no parameter "nope"/);
  assert.throws(() => nn.functionalCall(fc, { weight: zeros([3, 2]) }, () => 0), ShapeError);
});

// ---------------------------------------------------------------------------------------------
// Initialisers

Deno.test("init: fans and gains", () => {
  assert.deepEqual(nn.init.computeFans([64, 32]), { fanIn: 32, fanOut: 64 });
  assert.deepEqual(nn.init.computeFans([8, 4, 3, 3]), { fanIn: 36, fanOut: 72 });
  assert.deepEqual(nn.init.computeFans([5]), { fanIn: 5, fanOut: 5 });
  assert.equal(nn.init.calculateGain("tanh"), 5 / 3);
  assert.equal(nn.init.calculateGain("relu"), Math.SQRT2);
  assert.equal(nn.init.calculateGain("leaky_relu", 0.2), Math.sqrt(2 / 1.04));
  assert.equal(nn.init.calculateGain("sigmoid"), 1);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => nn.init.calculateGain("swish" as any), ArgumentError);
});

Deno.test("init: statistics match theory at large fan", () => {
  const shape = [512, 1024]; // fanIn 1024, fanOut 512; 524288 samples
  const n = 512 * 1024;
  const tolStd = (std: number) => 6 * std / Math.sqrt(2 * n); // ~6 standard errors of the std
  const tolMean = (std: number) => 6 * std / Math.sqrt(n);
  const check = (t: Tensor, std: number, bound?: number, what = "") => {
    const s = stats(t);
    assert.ok(Math.abs(s.mean) < tolMean(std), `${what} mean ${s.mean}`);
    assert.ok(Math.abs(s.std - std) < tolStd(std) + 1e-7, `${what} std ${s.std} vs ${std}`);
    if (bound !== undefined) {
      assert.ok(s.max <= bound && s.min >= -bound, `${what} range [${s.min}, ${s.max}] vs ±${bound}`);
      assert.ok(s.max > 0.99 * bound && s.min < -0.99 * bound, `${what} does not fill ±${bound}`);
    }
  };
  const xb = Math.sqrt(6 / (1024 + 512));
  check(nn.init.xavierUniform(shape, { seed: 1 }), xb / Math.sqrt(3), xb, "xavierUniform");
  check(nn.init.xavierNormal(shape, { seed: 2, gain: 2 }), 2 * Math.sqrt(2 / 1536), undefined, "xavierNormal");
  const kb = Math.SQRT2 * Math.sqrt(3 / 1024);
  check(nn.init.kaimingUniform(shape, { seed: 3, nonlinearity: "relu" }), kb / Math.sqrt(3), kb, "kaimingUniform");
  check(nn.init.kaimingNormal(shape, { seed: 4, mode: "fanOut" }), Math.SQRT2 / Math.sqrt(512), undefined, "kaimingN");
  check(nn.init.normal(shape, { seed: 5, std: 0.02 }), 0.02, undefined, "normal");
  check(nn.init.lecunNormal(shape, { seed: 6 }), 1 / 32, undefined, "lecunNormal");
  const u = stats(nn.init.uniform(shape, { seed: 7, low: 2, high: 4 }));
  assert.ok(Math.abs(u.mean - 3) < 0.01 && u.min >= 2 && u.max <= 4, `uniform ${JSON.stringify(u)}`);
  const f64 = nn.init.normal([10000], { seed: 8, std: 3, mean: 1, dtype: "float64" });
  assert.equal(f64.dtype, "float64");
  const s64 = stats(f64);
  assert.ok(Math.abs(s64.mean - 1) < 0.15 && Math.abs(s64.std - 3) < 0.1, JSON.stringify(s64));
  assert.deepEqual(flat(nn.init.ones([2])), [1, 1]);
  assert.deepEqual(flat(nn.init.zeros([2])), [0, 0]);
  assert.equal(nn.init.uniform([4], { dtype: "bfloat16" }).dtype, "bfloat16");
});

Deno.test("init: seeded and deterministic; a generator advances", () => {
  assert.deepEqual(
    flat(nn.init.xavierUniform([4, 3], { seed: 11 })),
    flat(nn.init.xavierUniform([4, 3], { seed: 11 })),
  );
  assert.deepEqual(flat(nn.init.normal([6])), flat(nn.init.normal([6], { seed: 0 })));
  assert.notDeepEqual(flat(nn.init.normal([6], { seed: 1 })), flat(nn.init.normal([6], { seed: 2 })));
  const g = new Generator(5);
  const a = flat(nn.init.normal([6], { generator: g }));
  const b = flat(nn.init.normal([6], { generator: g }));
  assert.notDeepEqual(a, b);
  assert.ok(g.offset >= 12);
  // Modules: same seed, same parameters; default seed is fixed.
  assert.deepEqual(
    flat(new nn.MLP([3, 5, 2], { seed: 3 }).layers.at(1).weight),
    flat(
      new nn.MLP([3, 5, 2], { seed: 3 }).layers.at(1).weight,
    ),
  );
  assert.deepEqual(flat(new nn.Linear(3, 5).weight), flat(new nn.Linear(3, 5).weight));
  assert.notDeepEqual(flat(new nn.Linear(3, 5, { seed: 1 }).weight), flat(new nn.Linear(3, 5).weight));
  assert.throws(() => nn.init.uniform([2], { low: 1, high: 0 }), ArgumentError);
  assert.throws(() => nn.init.kaimingNormal([3, 0]), ArgumentError);
});

// ---------------------------------------------------------------------------------------------
// Layers

Deno.test("Linear: y = x·Wᵀ + b against a hand computation", () => {
  const fc = new nn.Linear(3, 2);
  fc.weight.assign(tensor([[1, 2, 3], [-1, 0, 2]]));
  fc.bias!.assign(tensor([0.5, -1]));
  const x = tensor([[1, 1, 1], [2, 0, -1]]);
  // row 0: [1+2+3+0.5, -1+0+2-1] = [6.5, 0]; row 1: [2-3+0.5, -2-2-1] = [-0.5, -5]
  assertClose(flat(fc.forward(x)), [6.5, 0, -0.5, -5], { atol: 1e-6, rtol: 1e-6 }, "2-D");
  const y3 = fc.forward(x.reshape([1, 2, 3]).expand([2, 2, 3]));
  assert.deepEqual(y3.shape, [2, 2, 2]);
  assertClose(flat(y3), [6.5, 0, -0.5, -5, 6.5, 0, -0.5, -5], { atol: 1e-6, rtol: 1e-6 }, "3-D");
  assertClose(flat(fc.forward(tensor([1, 1, 1]))), [6.5, 0], { atol: 1e-6, rtol: 1e-6 }, "1-D");
  assert.throws(
    () => fc.forward(ones([2, 4])),
    (e) => e instanceof ShapeError && /expected input \[\.\.\., 3\], got \[2,4\]/.test(e.message),
  );
  const nb = new nn.Linear(3, 2, { bias: false });
  assert.equal(nb.bias, null);
  assert.equal(nb.numParameters(), 6);
  // Gradients: dL/dW = gᵀx, dL/db = Σg.
  fc.forward(x).sum().backward();
  assertClose(flat(fc.weight.grad!), [3, 1, 0, 3, 1, 0], { atol: 1e-6, rtol: 1e-6 }, "dW");
  assertClose(flat(fc.bias!.grad!), [2, 2], { atol: 1e-6, rtol: 1e-6 }, "db");
});

Deno.test("Linear: PyTorch default init is U(−1/√in, 1/√in); options pass through", () => {
  const fc = new nn.Linear(400, 300, { seed: 2 });
  const s = stats(fc.weight);
  const b = 1 / 20;
  assert.ok(s.max <= b && s.min >= -b && s.max > 0.99 * b, JSON.stringify(s));
  assert.ok(Math.abs(s.std - b / Math.sqrt(3)) < 2e-4, JSON.stringify(s));
  const sb = stats(fc.bias!);
  assert.ok(sb.max <= b && sb.min >= -b);
  const custom = new nn.Linear(4, 3, { weightInit: nn.init.zeros, biasInit: nn.init.ones, dtype: "float64" });
  assert.deepEqual(flat(custom.weight), Array(12).fill(0));
  assert.deepEqual(flat(custom.bias!), [1, 1, 1]);
  assert.equal(custom.weight.dtype, "float64");
  assert.throws(() => new nn.Linear(0, 3), ArgumentError);
});

Deno.test("MLP: forward equals the hand-written composition for every activation", () => {
  const x = randn([5, 2], { seed: 3, dtype: "float64" });
  for (const name of nn.ACTIVATIONS) {
    const net = new nn.MLP([2, 4, 3], { activation: name, finalActivation: "tanh", seed: 1, dtype: "float64" });
    const [l0, l1] = [net.layers.at(0), net.layers.at(1)];
    const h = nn.activation(name)(x.matmul(l0.weight.transpose()).add(l0.bias!));
    const want = h.matmul(l1.weight.transpose()).add(l1.bias!).tanh();
    assertClose(flat(net.forward(x)), flat(want), { atol: 1e-12, rtol: 1e-12 }, name);
  }
  // Activations by name against their definitions.
  const v = tensor([-2, -0.5, 0, 0.5, 2], { dtype: "float64" });
  const ref: Record<string, (z: number) => number> = {
    relu: (z) => Math.max(z, 0),
    tanh: Math.tanh,
    sigmoid: (z) => 1 / (1 + Math.exp(-z)),
    silu: (z) => z / (1 + Math.exp(-z)),
    softplus: (z) => Math.log1p(Math.exp(z)),
    identity: (z) => z,
    gelu_tanh: (z) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3))),
  };
  for (const [name, f] of Object.entries(ref)) {
    assertClose(flat(nn.activation(name as nn.ActivationName)(v)), [-2, -0.5, 0, 0.5, 2].map(f), {
      atol: 1e-7,
      rtol: 1e-7,
    }, name);
  }
  assertClose(flat(nn.activation("gelu")(v)), [-0.04550026, -0.15426877, 0, 0.34573123, 1.95449974], {
    atol: 1e-7,
    rtol: 1e-7,
  }, "gelu");
  // deno-lint-ignore no-explicit-any
  assert.throws(() => nn.activation("swish" as any), (e) => e instanceof ArgumentError && /relu, gelu/.test(e.message));
  assert.throws(() => new nn.MLP([3]), ArgumentError);
});

Deno.test("MLP: a hand-computed relu network", () => {
  const net = new nn.MLP([2, 2, 1], { activation: "relu" });
  net.loadStateDict({
    "layers.0.weight": tensor([[1, -1], [2, 1]]),
    "layers.0.bias": tensor([0, -3]),
    "layers.1.weight": tensor([[1, 2]]),
    "layers.1.bias": tensor([0.25]),
  });
  // x = [3, 1]: h = relu([2, 4]) = [2, 4]; y = 2 + 8 + 0.25
  // x = [0, 1]: h = relu([-1, -2]) = [0, 0]; y = 0.25
  assertClose(flat(net.forward(tensor([[3, 1], [0, 1]]))), [10.25, 0.25], { atol: 1e-6, rtol: 1e-6 }, "y");
});

Deno.test("LayerNorm and RMSNorm: values and learnable scale/shift", () => {
  const x = tensor([[1, 2, 3, 4], [2, 2, 2, 6]], { dtype: "float64" });
  const ln = new nn.LayerNorm(4, { dtype: "float64" });
  assert.deepEqual(ln.namedParameters().map(([n]) => n), ["weight", "bias"]);
  const expectRow = (r: number[], eps: number) => {
    const m = r.reduce((a, b) => a + b) / r.length;
    const v = r.reduce((a, b) => a + (b - m) ** 2, 0) / r.length; // correction 0
    return r.map((z) => (z - m) / Math.sqrt(v + eps));
  };
  assertClose(flat(ln.forward(x)), [...expectRow([1, 2, 3, 4], 1e-5), ...expectRow([2, 2, 2, 6], 1e-5)], {
    atol: 1e-12,
    rtol: 1e-12,
  }, "ln");
  ln.weight!.assign(tensor([1, 2, 3, 4]));
  ln.bias!.assign(1);
  const e0 = expectRow([1, 2, 3, 4], 1e-5);
  assertClose(
    flat(ln.forward(x)).slice(0, 4),
    e0.map((z, i) => z * (i + 1) + 1),
    { atol: 1e-12, rtol: 1e-12 },
    "ln affine",
  );
  const rms = new nn.RMSNorm(4, { dtype: "float64" });
  assert.deepEqual(rms.namedParameters().map(([n]) => n), ["weight"]);
  const ms = (1 + 4 + 9 + 16) / 4;
  assertClose(flat(rms.forward(x)).slice(0, 4), [1, 2, 3, 4].map((z) => z / Math.sqrt(ms + 1e-6)), {
    atol: 1e-12,
    rtol: 1e-12,
  }, "rms");
  // Over two trailing axes.
  const ln2 = new nn.LayerNorm([2, 2], { dtype: "float64", elementwiseAffine: false });
  assert.equal(ln2.numParameters(), 0);
  assertClose(flat(ln2.forward(x.reshape([2, 2, 2]))), flat(new nn.LayerNorm(4, { dtype: "float64" }).forward(x)), {
    atol: 1e-12,
    rtol: 1e-12,
  });
  assert.throws(() => ln.forward(ones([2, 3], { dtype: "float64" })), ShapeError);
});

Deno.test("LayerNorm and RMSNorm: gradcheck in float64 (first and second order)", () => {
  const x = randn([3, 5], { seed: 1, dtype: "float64" });
  const w = randn([5], { seed: 2, dtype: "float64" });
  const b = randn([5], { seed: 3, dtype: "float64" });
  gradcheck((x, w, b) => nn.layerNorm(x, [5], w, b, 1e-5), [x, w, b], { secondOrder: true });
  gradcheck((x, w, b) => nn.rmsNorm(x, [5], w, b, 1e-6), [x, w, b], { secondOrder: true });
  const x3 = randn([2, 2, 3], { seed: 4, dtype: "float64" });
  gradcheck((x) => nn.layerNorm(x, [2, 3]), [x3]);
  // Through the modules' parameters: compare .grad with functional gradients.
  const ln = new nn.LayerNorm(5, { dtype: "float64" });
  ln.weight!.assign(w);
  ln.bias!.assign(b);
  const v = randn([3, 5], { seed: 5, dtype: "float64" });
  ln.forward(x).mul(v).sum().backward();
  const gw = grad((w: Tensor) => nn.layerNorm(x, [5], w, b).mul(v).sum())(w);
  assertClose(flat(ln.weight!.grad!), flat(gw), { atol: 1e-12, rtol: 1e-12 }, "dweight");
});

Deno.test("Embedding: rows by id, gradient accumulates into the rows used", () => {
  const emb = new nn.Embedding(5, 3, { seed: 0 });
  assert.deepEqual(emb.weight.shape, [5, 3]);
  const ids = tensor([[1, 4], [1, 0]], { dtype: "int32" });
  const y = emb.forward(ids);
  assert.deepEqual(y.shape, [2, 2, 3]);
  const w = emb.weight.toArray() as number[][];
  assert.deepEqual(y.toArray(), [[w[1], w[4]], [w[1], w[0]]]);
  y.sum().backward();
  assert.deepEqual(flat(emb.weight.grad!), [1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  const s = stats(new nn.Embedding(1000, 100, { seed: 1 }).weight);
  assert.ok(Math.abs(s.std - 1) < 0.02 && Math.abs(s.mean) < 0.02, JSON.stringify(s)); // N(0, 1)
});

Deno.test("Dropout: seeded masks in training, identity in eval", () => {
  const x = ones([20000]);
  const drop = new nn.Dropout(0.25, { seed: 3 });
  const y = flat(drop.forward(x));
  const zeros_ = y.filter((v) => v === 0).length;
  assert.ok(Math.abs(zeros_ / y.length - 0.25) < 0.02, `dropped ${zeros_ / y.length}`);
  for (const v of y) assert.ok(v === 0 || Math.abs(v - 4 / 3) < 1e-6);
  assert.notDeepEqual(flat(drop.forward(x)), y); // a fresh mask each call
  assert.deepEqual(flat(new nn.Dropout(0.25, { seed: 3 }).forward(x)), y); // reproducible
  drop.eval();
  assert.equal(drop.forward(x), x);
  // The gradient flows through the kept elements only.
  const d = new nn.Dropout(0.5, { seed: 1 });
  const a = randn([100], { seed: 2 }).requireGrad();
  const out = d.forward(a);
  out.sum().backward();
  const mask = flat(out).map((v, i) => (v === 0 && flat(a)[i] !== 0 ? 0 : 2));
  assertClose(flat(a.grad!), mask, { atol: 1e-6, rtol: 1e-6 }, "grad");
  assert.throws(() => new nn.Dropout(1.5), ArgumentError);
});

// ---------------------------------------------------------------------------------------------
// safetensors

Deno.test("safetensors: round trip for every dtype, shapes and metadata", () => {
  const dict = new Map<string, Tensor>([
    ["f32", tensor([[1.5, -2], [3.25, 1e-3]])],
    ["f64", tensor([Math.PI, -Math.E, 1e-300], { dtype: "float64" })],
    ["bf16", tensor([1, -0.5, 3.140625, 1e10], { dtype: "bfloat16" })],
    ["i32", tensor([[1, -2, 2147483647]], { dtype: "int32" })],
    ["scalar", tensor(7)],
    ["empty", zeros([0, 3])],
  ]);
  const bytes = nn.encodeSafetensors(dict, { format: "pt", step: "12" });
  // Layout: u64 LE header length, JSON padded to 8 bytes, aligned data.
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header.__metadata__, { format: "pt", step: "12" });
  assert.deepEqual(header.f32, { dtype: "F32", shape: [2, 2], data_offsets: header.f32.data_offsets });
  assert.equal(header.bf16.dtype, "BF16");
  assert.equal(header.i32.dtype, "I32");
  assert.equal(header.f64.data_offsets[0], 0); // widest first
  for (const [, v] of Object.entries(header)) {
    const e = v as { dtype?: string; data_offsets?: number[] };
    if (e.dtype) assert.equal(e.data_offsets![0] % ({ F64: 8, F32: 4, I32: 4, BF16: 2 }[e.dtype] ?? 1), 0);
  }
  const { tensors, metadata } = nn.decodeSafetensors(bytes);
  assert.deepEqual(metadata, { format: "pt", step: "12" });
  assert.deepEqual([...tensors.keys()].sort(), [...dict.keys()].sort());
  for (const [k, t] of dict) {
    const u = tensors.get(k)!;
    assert.equal(u.dtype, t.dtype, k);
    assert.deepEqual(u.shape, t.shape, k);
    assert.deepEqual(flat(u), flat(t), k);
  }
  assert.deepEqual(flat(tensors.get("bf16")!), [1, -0.5, 3.140625, 9999220736]);
});

Deno.test("safetensors: reads a file written by the reference implementation", () => {
  // safetensors' own test vector: {"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},
  // "__metadata__":{"foo":"bar"}} followed by four int32 zeros... here with values 1..4.
  const json = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"foo":"bar"}}';
  const head = new TextEncoder().encode(json);
  const bytes = new Uint8Array(8 + head.length + 16);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(head.length), true);
  bytes.set(head, 8);
  new DataView(bytes.buffer).setInt32(8 + head.length + 4, 2, true);
  new DataView(bytes.buffer).setInt32(8 + head.length + 12, -4, true);
  const { tensors, metadata } = nn.decodeSafetensors(bytes);
  assert.deepEqual(metadata, { foo: "bar" });
  assert.deepEqual(tensors.get("test")!.toArray(), [[0, 2], [0, -4]]);
});

Deno.test("safetensors: save/load a module's state dict through a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/net.safetensors`;
    const a = new nn.MLP([3, 8, 2], { seed: 1 });
    await nn.saveSafetensors(path, a.stateDict(), { note: "hi" });
    const b = new nn.MLP([3, 8, 2], { seed: 2 });
    const { tensors, metadata } = await nn.loadSafetensors(path);
    assert.equal(metadata.note, "hi");
    b.loadStateDict(tensors);
    const x = randn([4, 3], { seed: 0 });
    assert.deepEqual(flat(b.forward(x)), flat(a.forward(x)));
    // bfloat16 modules round trip bit-exactly.
    const c = new nn.Linear(4, 4, { dtype: "bfloat16", seed: 3 });
    await nn.saveSafetensors(path, c.stateDict());
    const back = (await nn.loadSafetensors(path)).tensors;
    assert.equal(back.get("weight")!.dtype, "bfloat16");
    assert.deepEqual(flat(back.get("weight")!), flat(c.weight));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: truncated and corrupt data raise SafetensorsError naming the file", () => {
  const good = nn.encodeSafetensors({ a: tensor([1, 2, 3]), b: tensor([4], { dtype: "float64" }) });
  const n = Number(new DataView(good.buffer).getBigUint64(0, true));
  const src = { source: "model.safetensors" };
  const expectError = (bytes: Uint8Array, pattern: RegExp) =>
    assert.throws(
      () => nn.decodeSafetensors(bytes, src),
      (e) => e instanceof nn.SafetensorsError && /model\.safetensors/.test(e.message) && pattern.test(e.message),
    );
  const withHeader = (json: string, data: number) => {
    const h = new TextEncoder().encode(json);
    const out = new Uint8Array(8 + h.length + data);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  expectError(good.subarray(0, 5), /truncated.*5 bytes/);
  expectError(good.subarray(0, 8 + n - 3), /truncated: the header claims/);
  expectError(good.subarray(0, good.length - 4), /truncated: tensor "a"/);
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  expectError(huge, /corrupt header length/);
  expectError(withHeader("{not json", 0), /not valid UTF-8 JSON/);
  expectError(withHeader("[1, 2]", 0), /expected a JSON object/);
  expectError(
    withHeader('{"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1),
    /unsupported dtype "F8_E4M3"/,
  );
  expectError(withHeader('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4), /needs 8/);
  expectError(withHeader('{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4), /shape must be/);
  expectError(withHeader('{"x":{"dtype":"F32","shape":[1]}}', 4), /data_offsets must be/);
  expectError(
    withHeader(
      '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',
      6,
    ),
    /overlaps/,
  );
  expectError(withHeader('{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8), /hole/);
  expectError(withHeader('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 8), /4 bytes of data after/);
  expectError(withHeader('{"__metadata__":{"k":1}}', 0), /must be a string/);
  assert.throws(() => nn.encodeSafetensors({ __metadata__: zeros([1]) }), nn.SafetensorsError);
});

Deno.test("safetensors: loadSafetensors names the path in errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/broken.safetensors`;
    await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
    await assert.rejects(
      () => nn.loadSafetensors(path),
      (e) => e instanceof nn.SafetensorsError && e.message.includes(path) && /truncated/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nn layers do not leak memory inside tidy", () => {
  const backend = getDefaultBackend();
  const net = new nn.Sequential(
    new nn.Linear(8, 16),
    new nn.LayerNorm(16),
    new nn.Activation("gelu"),
    new nn.Dropout(0.1),
    new nn.Linear(16, 4),
    new nn.RMSNorm(4),
  );
  const x = randn([32, 8], { seed: 0 });
  const run = () => tidy(() => net.forward(x).square().mean().backward());
  run();
  net.zeroGrad();
  const before = backend.memory().current;
  for (let i = 0; i < 3; i++) {
    run();
    net.zeroGrad();
  }
  assert.equal(backend.memory().current, before);
  noGrad(() => assert.equal(net.forward(x).requiresGrad, false));
});

import assert from "node:assert/strict";
import {
  ArgumentError,
  fromBFloat16Bits,
  getDefaultBackend,
  nn,
  NonFiniteError,
  optim,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  tidy,
  toBFloat16Bits,
} from "../mod.ts";
import { assertClose, assertRaises } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

const C = [1, -2, 0.5, 3];
const THETA0 = [0.3, -1.2, 2, 0.7];

/** A float64 parameter and the gradient of L = ½Σ cᵢθᵢ² (g = c·θ) written into it. */
function quadratic(theta: number[] = THETA0): { p: Tensor; backward: () => void } {
  const p = tensor(theta, { dtype: "float64" }).requireGrad();
  const c = tensor(C, { dtype: "float64" });
  return { p, backward: () => p.mul(p).mul(c).sum().mul(0.5).backward() };
}

/** Runs `steps` updates of `opt` on the quadratic and returns the parameter trajectory. */
function run(opt: (p: Tensor) => optim.Optimizer, steps: number): number[][] {
  const { p, backward } = quadratic();
  const o = opt(p);
  const out: number[][] = [];
  for (let i = 0; i < steps; i++) {
    backward();
    o.step();
    o.zeroGrad();
    out.push(flat(p));
  }
  return out;
}

/** PyTorch's SGD, element by element in float64. */
function sgdRef(
  steps: number,
  o: { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean },
): number[][] {
  const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = o;
  const theta = [...THETA0];
  const buf: (number | undefined)[] = [];
  const out: number[][] = [];
  for (let t = 0; t < steps; t++) {
    for (let i = 0; i < theta.length; i++) {
      let g = C[i] * theta[i] + weightDecay * theta[i];
      if (momentum !== 0) {
        buf[i] = buf[i] === undefined ? g : momentum * buf[i]! + (1 - dampening) * g;
        g = nesterov ? g + momentum * buf[i]! : buf[i]!;
      }
      theta[i] -= lr * g;
    }
    out.push([...theta]);
  }
  return out;
}

/** PyTorch's Adam / AdamW (amsgrad off), element by element in float64. */
function adamRef(
  steps: number,
  o: { lr: number | ((t: number) => number); b1?: number; b2?: number; eps?: number; wd?: number; decoupled?: boolean },
): number[][] {
  const { b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0, decoupled = false } = o;
  const theta = [...THETA0];
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  const out: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    const lr = typeof o.lr === "function" ? o.lr(t - 1) : o.lr;
    for (let i = 0; i < theta.length; i++) {
      let g = C[i] * theta[i];
      if (wd && decoupled) theta[i] *= 1 - lr * wd;
      else if (wd) g += wd * theta[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps;
      theta[i] -= (lr / (1 - b1 ** t)) * (m[i] / denom);
    }
    out.push([...theta]);
  }
  return out;
}

function assertTrajectory(got: number[][], want: number[][], what: string, tol = 1e-12): void {
  got.forEach((row, t) => assertClose(row, want[t], { atol: tol, rtol: tol }, `${what} step ${t + 1}`));
}

// ---------------------------------------------------------------------------------------------
// Update rules against PyTorch's formulas

Deno.test("SGD: plain, weight decay, momentum, dampening, Nesterov match PyTorch's formulas", () => {
  const cases: Parameters<typeof sgdRef>[1][] = [
    { lr: 0.1 },
    { lr: 0.1, weightDecay: 0.05 },
    { lr: 0.05, momentum: 0.9 },
    { lr: 0.05, momentum: 0.9, dampening: 0.3 },
    { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01 },
  ];
  for (const c of cases) {
    assertTrajectory(run((p) => new optim.SGD([p], c), 4), sgdRef(4, c), JSON.stringify(c));
  }
  // One step by hand: θ − lr·cθ.
  const [first] = run((p) => new optim.SGD([p], { lr: 0.1 }), 1);
  assertClose(first, THETA0.map((t, i) => t - 0.1 * C[i] * t), { atol: 1e-15, rtol: 1e-15 }, "hand");
  assert.throws(() => new optim.SGD([quadratic().p], { lr: 0.1, nesterov: true }), ArgumentError);
  assert.throws(() => new optim.SGD([quadratic().p], { lr: 0.1, momentum: -1 }), ArgumentError);
});

Deno.test("Adam and AdamW: steps match PyTorch's formulas (bias correction, coupled vs decoupled decay)", () => {
  assertTrajectory(run((p) => new optim.Adam([p], { lr: 0.01 }), 5), adamRef(5, { lr: 0.01 }), "adam");
  assertTrajectory(
    run((p) => new optim.Adam([p], { lr: 0.02, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 }), 5),
    adamRef(5, { lr: 0.02, b1: 0.8, b2: 0.99, eps: 1e-6, wd: 0.1 }),
    "adam+l2",
  );
  assertTrajectory(
    run((p) => new optim.AdamW([p], { lr: 0.02, weightDecay: 0.1 }), 5),
    adamRef(5, { lr: 0.02, wd: 0.1, decoupled: true }),
    "adamw",
  );
  assertTrajectory(
    run((p) => new optim.AdamW([p]), 3),
    adamRef(3, { lr: 1e-3, wd: 0.01, decoupled: true }),
    "defaults",
  );
  // The first Adam step moves every coordinate by ≈ lr·sign(g) (m̂/√v̂ = ±1).
  const [first] = run((p) => new optim.Adam([p], { lr: 0.01 }), 1);
  assertClose(first, THETA0.map((t, i) => t - 0.01 * Math.sign(C[i] * t)), { atol: 1e-8, rtol: 1e-8 }, "sign step");
  assert.throws(() => new optim.Adam([quadratic().p], { betas: [1, 0.999] }), ArgumentError);
});

Deno.test("float32 updates agree with the float64 reference to float32 precision", () => {
  const p = tensor(THETA0).requireGrad();
  const c = tensor(C);
  const opt = new optim.Adam([p], { lr: 0.01 });
  for (let i = 0; i < 5; i++) {
    p.mul(p).mul(c).sum().mul(0.5).backward();
    opt.step();
    opt.zeroGrad();
  }
  assertClose(flat(p), adamRef(5, { lr: 0.01 })[4], { atol: 1e-5, rtol: 1e-5 }, "f32");
});

// ---------------------------------------------------------------------------------------------
// Schedules

Deno.test("schedules: values at key steps", () => {
  const s = optim.warmupCosine({ peakLr: 1e-3, warmupSteps: 100, totalSteps: 1100, minLr: 1e-5 });
  assertClose(
    [s(0), s(50), s(100), s(600), s(1100), s(5000)],
    [0, 5e-4, 1e-3, 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-5, 1e-5],
    { atol: 1e-12, rtol: 1e-12 },
  );
  assertClose([s(350)], [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.cos(Math.PI / 4))], { atol: 1e-12, rtol: 1e-12 });
  // Monotone: up during warm-up, down after.
  for (let t = 1; t <= 100; t++) assert.ok(s(t) > s(t - 1));
  for (let t = 101; t <= 1100; t++) assert.ok(s(t) < s(t - 1));
  const w = optim.warmupCosine({ peakLr: 1, warmupSteps: 4, totalSteps: 4, initLr: 0.2 });
  assertClose([w(0), w(2), w(4), w(9)], [0.2, 0.6, 0, 0], { atol: 1e-12, rtol: 1e-12 });
  const lw = optim.linearWarmup({ peakLr: 2, warmupSteps: 10 });
  assertClose([lw(0), lw(5), lw(10), lw(1e6)], [0, 1, 2, 2], { atol: 1e-12, rtol: 1e-12 });
  const cd = optim.cosineDecay({ peakLr: 1, totalSteps: 10 });
  assertClose([cd(0), cd(5), cd(10), cd(11)], [1, 0.5, 0, 0], { atol: 1e-12, rtol: 1e-12 });
  const ed = optim.exponentialDecay({ lr: 1, gamma: 0.5, every: 10, staircase: true });
  assertClose([ed(0), ed(9), ed(10), ed(25)], [1, 1, 0.5, 0.25], { atol: 1e-12, rtol: 1e-12 });
  assertClose([optim.exponentialDecay({ lr: 1, gamma: 0.5, every: 10 })(5)], [Math.SQRT1_2], {
    atol: 1e-12,
    rtol: 1e-12,
  });
  assert.equal(optim.constant(0.3)(12345), 0.3);
  assert.throws(() => optim.warmupCosine({ peakLr: 1, warmupSteps: 10, totalSteps: 5 }), ArgumentError);
  assert.throws(() => optim.constant(-1), ArgumentError);
});

Deno.test("optimisers follow a schedule: lr(step) with step = updates so far", () => {
  const sched = optim.warmupCosine({ peakLr: 0.05, warmupSteps: 2, totalSteps: 6, minLr: 0.001 });
  assertTrajectory(run((p) => new optim.Adam([p], { lr: sched }), 6), adamRef(6, { lr: sched }), "scheduled adam");
  const { p } = quadratic();
  const opt = new optim.SGD([p], { lr: (t) => 0.1 * (t + 1) });
  assert.equal(opt.lr, 0.1);
  p.sum().backward();
  opt.step();
  assert.equal(opt.stepCount, 1);
  assert.equal(opt.lr, 0.2);
  const bad = new optim.SGD([p], { lr: () => NaN });
  assert.throws(
    () => bad.step(),
    (e) => e instanceof ArgumentError && /learning rate at step 0 is NaN/.test(e.message),
  );
});

// ---------------------------------------------------------------------------------------------
// Hyperparameters are checked when the optimiser or schedule is made

Deno.test("optimisers refuse bad hyperparameters at construction, naming the argument and its range", () => {
  const p = () => [quadratic().p];
  const cases: [string, () => unknown, ...string[]][] = [
    ["SGD", () => new optim.SGD(p(), { lr: NaN }), "lr", "[0, ∞)", "NaN"],
    ["SGD", () => new optim.SGD(p(), { lr: -0.1 }), "lr", "-0.1"],
    ["SGD", () => new optim.SGD(p(), { lr: "0.1" as never }), "lr", '"0.1"'],
    ["SGD", () => new optim.SGD(p(), {} as never), "lr", "undefined"],
    ["SGD", () => new optim.SGD(p(), { lr: 0.1, momentum: 1 }), "momentum", "[0, 1)", "got 1"],
    ["SGD", () => new optim.SGD(p(), { lr: 0.1, momentum: "0.9" as never }), "momentum", '"0.9"'],
    ["SGD", () => new optim.SGD(p(), { lr: 0.1, dampening: 2 }), "dampening", "[0, 1]"],
    ["SGD", () => new optim.SGD(p(), { lr: 0.1, weightDecay: -1e-4 }), "weightDecay", "[0, ∞)"],
    ["SGD", () => new optim.SGD(p(), { lr: 0.1, nesterov: "yes" as never }), "nesterov", '"yes"'],
    ["Adam", () => new optim.Adam(p(), { lr: NaN }), "lr", "NaN"],
    ["Adam", () => new optim.Adam(p(), { lr: -1 }), "lr", "[0, ∞)"],
    ["Adam", () => new optim.Adam(p(), { betas: [0.9, 1] }), "betas[1]", "[0, 1)", "got 1"],
    ["Adam", () => new optim.Adam(p(), { betas: [-0.1, 0.999] }), "betas[0]", "-0.1"],
    ["Adam", () => new optim.Adam(p(), { betas: [0.9] as never }), "betas", "[0.9]"],
    ["Adam", () => new optim.Adam(p(), { eps: 0 }), "eps", "(0, ∞)", "got 0"],
    ["Adam", () => new optim.Adam(p(), { eps: -1e-8 }), "eps", "(0, ∞)"],
    ["Adam", () => new optim.Adam(p(), { weightDecay: -0.01 }), "weightDecay", "[0, ∞)"],
    ["Adam", () => new optim.Adam(p(), { decoupledWeightDecay: 1 as never }), "decoupledWeightDecay", "got 1"],
    ["Adam", () => new optim.Adam(p(), { fused: "no" as never }), "fused", '"no"'],
    ["AdamW", () => new optim.AdamW(p(), { lr: Infinity }), "lr", "Infinity"],
    // A group's overrides are checked the same way.
    ["SGD", () => new optim.SGD([{ params: p(), lr: -1 }], { lr: 0.1 }), "lr", "-1"],
    // Options the optimiser does not have are refused by name (PyTorch spellings included).
    ["Adam", () => new optim.Adam(p(), { learningRate: 0.1 } as never), 'unknown option "learningRate"', "lr"],
    ["AdamW", () => new optim.AdamW(p(), { weight_decay: 0.1 } as never), '"weight_decay"', "weightDecay"],
    ["Adam", () => new optim.Adam(p(), { amsgrad: true } as never), '"amsgrad"'],
    ["SGD", () => new optim.SGD([{ params: p(), momentun: 0.9 } as never], { lr: 0.1 }), '"momentun"'],
  ];
  for (const [op, make, ...fragments] of cases) assertRaises(make, ArgumentError, op, ...fragments);
  // An option given as undefined takes its default.
  const opt = new optim.Adam(p(), { eps: undefined, lr: 0.01 });
  assert.equal(opt.groups[0].options.eps, 1e-8);
  // Options changed between steps are checked at the next step.
  opt.groups[0].options.betas = [0.9, 1.5];
  assertRaises(() => opt.step(), ArgumentError, "Adam", "betas[1]");
});

Deno.test("schedules and clipping refuse bad parameters when made or called", () => {
  const cases: [string, () => unknown, ...string[]][] = [
    ["exponentialDecay", () => optim.exponentialDecay({ lr: 1, gamma: 0.5, every: "5" as never }), "every", '"5"'],
    ["exponentialDecay", () => optim.exponentialDecay({ lr: 1, gamma: 0.5, every: 0 }), "every", "(0, ∞)"],
    ["exponentialDecay", () => optim.exponentialDecay({ lr: 1, gamma: -0.5 }), "gamma", "-0.5"],
    ["exponentialDecay", () => optim.exponentialDecay({ lr: 1, gamma: 0.5, staircase: 1 as never }), "staircase"],
    ["warmupCosine", () => optim.warmupCosine(undefined as never), "peakLr", "got undefined"],
    ["warmupCosine", () => optim.warmupCosine(0.1 as never), "options must be an object", "got 0.1"],
    ["warmupCosine", () => optim.warmupCosine({ peakLr: 1, warmupSteps: 1.5, totalSteps: 10 }), "warmupSteps", "1.5"],
    ["warmupCosine", () => optim.warmupCosine({ peak_lr: 1 } as never), 'unknown option "peak_lr"', "peakLr"],
    ["linearWarmup", () => optim.linearWarmup({ peakLr: 1, warmupSteps: 10, initLr: NaN }), "initLr", "NaN"],
    ["cosineDecay", () => optim.cosineDecay({ peakLr: 1, totalSteps: -1 }), "totalSteps", "-1"],
    ["constant", () => optim.constant("0.1" as never), "lr", '"0.1"'],
    ["clipGradNorm", () => optim.clipGradNorm([quadratic().p], "1" as never), "maxNorm", '"1"'],
    ["clipGradNorm", () => optim.clipGradNorm([quadratic().p], NaN), "maxNorm", "NaN"],
    ["clipGradNorm", () => optim.clipGradNorm([quadratic().p], 1, { normType: 0 }), "normType", "got 0"],
    ["clipGradNorm", () => optim.clipGradNorm([quadratic().p], 1, { norm_type: 1 } as never), '"norm_type"'],
    ["clipGradNorm", () => optim.clipGradNorm((() => []) as never, 1), "params", "a function"],
    ["clipGradValue", () => optim.clipGradValue([quadratic().p], -1), "clipValue", "-1"],
    ["clipGradValue", () => optim.clipGradValue([1, 2] as never, 1), "params", "got 1"],
  ];
  for (const [op, make, ...fragments] of cases) assertRaises(make, ArgumentError, op, ...fragments);
});

// ---------------------------------------------------------------------------------------------
// Parameters: modules, groups, frozen, missing gradients

Deno.test("optimisers skip frozen parameters and parameters without gradients; groups override options", () => {
  const net = new nn.MLP([2, 4, 1], { seed: 0 });
  net.layers.at(0).freeze();
  const opt = new optim.SGD(net, { lr: 0.1 });
  const before = net.stateDict();
  const copies = new Map([...before].map(([k, t]) => [k, flat(t)]));
  net.forward(randn([8, 2], { seed: 1 })).square().mean().backward();
  opt.step();
  assert.deepEqual(flat(net.layers.at(0).weight), copies.get("layers.0.weight"));
  assert.notDeepEqual(flat(net.layers.at(1).weight), copies.get("layers.1.weight"));
  // Groups: different learning rates per group; a parameter without gradient stays.
  const a = tensor([1, 1], { dtype: "float64" }).requireGrad();
  const b = tensor([1, 1], { dtype: "float64" }).requireGrad();
  const idle = tensor([5], { dtype: "float64" }).requireGrad();
  const g = new optim.SGD([{ params: [a] }, { params: [b, idle], lr: 0.5 }], { lr: 0.1 });
  a.add(b).sum().backward();
  g.step();
  assert.deepEqual(flat(a), [0.9, 0.9]);
  assert.deepEqual(flat(b), [0.5, 0.5]);
  assert.deepEqual(flat(idle), [5]);
  assert.equal(g.lrOf(1), 0.5);
  assert.throws(() => new optim.SGD([a, a], { lr: 0.1 }), /appears more than once/);
  assert.throws(() => new optim.SGD([a.mul(2)], { lr: 0.1 }), /not a leaf/);
  assert.throws(() => new optim.SGD([], { lr: 0.1 }), /no parameters/);
});

// ---------------------------------------------------------------------------------------------
// Gradient clipping

Deno.test("clipGradNorm: returns the total norm and rescales in place", () => {
  const mk = () => {
    const a = tensor([3, 4], { dtype: "float64" }).requireGrad();
    const b = tensor([12], { dtype: "float64" }).requireGrad();
    a.mul(a).sum().mul(0.5).add(b.mul(b).sum().mul(0.5)).backward(); // grads [3, 4], [12]
    return [a, b];
  };
  let [a, b] = mk();
  assertClose([optim.clipGradNorm([a, b], 1)], [13], { atol: 1e-12, rtol: 1e-12 });
  const s = 1 / (13 + 1e-6);
  assertClose([...flat(a.grad!), ...flat(b.grad!)], [3 * s, 4 * s, 12 * s], { atol: 1e-12, rtol: 1e-12 }, "clipped");
  [a, b] = mk();
  assertClose([optim.clipGradNorm([a, b], 100)], [13], { atol: 1e-12, rtol: 1e-12 });
  assert.deepEqual([...flat(a.grad!), ...flat(b.grad!)], [3, 4, 12]); // below the bound: untouched
  [a, b] = mk();
  assertClose([optim.clipGradNorm([a, b], 6, { normType: Infinity })], [12], { atol: 1e-12, rtol: 1e-12 });
  assertClose(flat(b.grad!), [12 * 6 / (12 + 1e-6)], { atol: 1e-12, rtol: 1e-12 });
  [a, b] = mk();
  assertClose([optim.clipGradNorm([a, b], 100, { normType: 1 })], [19], { atol: 1e-12, rtol: 1e-12 });
  // Modules: the parameters without gradient are ignored.
  const net = new nn.Linear(3, 2, { seed: 1 });
  assert.equal(optim.clipGradNorm(net, 1), 0);
  net.forward(randn([4, 3], { seed: 2 })).sum().backward();
  const norm = Math.hypot(...flat(net.weight.grad!), ...flat(net.bias!.grad!));
  assertClose([optim.clipGradNorm(net, 0.5)], [norm], { atol: 1e-6, rtol: 1e-6 });
  assertClose([Math.hypot(...flat(net.weight.grad!), ...flat(net.bias!.grad!))], [0.5], { atol: 1e-5, rtol: 1e-5 });
  // By value.
  [a, b] = mk();
  optim.clipGradValue([a, b], 3.5);
  assert.deepEqual([...flat(a.grad!), ...flat(b.grad!)], [3, 3.5, 3.5]);
});

Deno.test("clipGradNorm: non-finite norms raise NonFiniteError naming the parameters when asked", () => {
  const net = new nn.MLP([2, 3, 1], { seed: 0 });
  net.forward(tensor([[NaN, 1]])).sum().backward();
  assert.throws(
    () => optim.clipGradNorm(net, 1, { errorIfNonfinite: true }),
    (e) => e instanceof NonFiniteError && /NaN/.test(e.message) && /"layers.0.weight"/.test(e.message),
  );
  assert.ok(Number.isNaN(optim.clipGradNorm(net, 1)));
  const p = tensor([1]).requireGrad();
  p.mul(Infinity).sum().backward();
  assert.throws(() => optim.clipGradNorm([p], 1, { errorIfNonfinite: true }), /Infinity.*"0"/);
});

// ---------------------------------------------------------------------------------------------
// Checkpoint and resume

function data(step: number): { x: Tensor; y: Tensor } {
  const x = randn([32, 2], { seed: 1000 + step });
  return { x, y: x.narrow(1, 0, 1).mul(3).sin().add(x.narrow(1, 1, 1).square()) };
}

function trainSteps(net: nn.MLP, opt: optim.Optimizer, from: number, to: number, clip = false): number[] {
  const losses: number[] = [];
  for (let step = from; step < to; step++) {
    losses.push(tidy(() => {
      const { x, y } = data(step);
      const loss = net.forward(x).sub(y).square().mean();
      loss.backward();
      if (clip) optim.clipGradNorm(net, 0.5);
      opt.step();
      opt.zeroGrad();
      return loss.item();
    }));
  }
  return losses;
}

type Maker = (net: nn.MLP) => optim.Optimizer;

function checkResume(make: Maker, dtype: "float32" | "bfloat16" = "float32"): void {
  const total = 12;
  const cut = 5;
  const ref = new nn.MLP([2, 16, 1], { activation: "tanh", seed: 0, dtype });
  trainSteps(ref, make(ref), 0, total, true);

  const first = new nn.MLP([2, 16, 1], { activation: "tanh", seed: 0, dtype });
  const opt1 = make(first);
  trainSteps(first, opt1, 0, cut, true);
  // Checkpoint through the safetensors format (copies; the originals are then dropped).
  const modelBytes = nn.encodeSafetensors(first.stateDict());
  const sd = opt1.stateDict();
  assert.equal(sd.metadata.step, String(cut));
  const optBytes = nn.encodeSafetensors(sd.tensors, sd.metadata);

  const second = new nn.MLP([2, 16, 1], { activation: "tanh", seed: 123, dtype });
  const opt2 = make(second);
  second.loadStateDict(nn.decodeSafetensors(modelBytes).tensors);
  opt2.loadStateDict(nn.decodeSafetensors(optBytes));
  assert.equal(opt2.stepCount, cut);
  trainSteps(second, opt2, cut, total, true);
  for (const [name, t] of ref.stateDict()) {
    assert.deepEqual(flat(second.stateDict().get(name)!), flat(t), `${name} differs after resume`);
  }
}

Deno.test("stateDict/loadStateDict: resumed training is bit-identical to uninterrupted training", () => {
  const sched = optim.warmupCosine({ peakLr: 1e-2, warmupSteps: 3, totalSteps: 12, minLr: 1e-4 });
  checkResume((net) => new optim.Adam(net, { lr: sched }));
  checkResume((net) => new optim.AdamW(net, { lr: sched, weightDecay: 0.05 }));
  checkResume((net) => new optim.SGD(net, { lr: 0.05, momentum: 0.9, nesterov: true }));
  checkResume((net) => new optim.Adam(net, { lr: 1e-2 }), "bfloat16");
});

Deno.test("optimizer stateDict: keys, metadata and errors on load", () => {
  const net = new nn.Linear(2, 3, { seed: 0 });
  const opt = new optim.Adam(net, { lr: 0.1 });
  net.forward(randn([4, 2], { seed: 1 })).sum().backward();
  opt.step();
  const sd = opt.stateDict();
  assert.deepEqual([...sd.tensors.keys()], ["weight.exp_avg", "weight.exp_avg_sq", "bias.exp_avg", "bias.exp_avg_sq"]);
  assert.deepEqual(sd.metadata, { optimizer: "Adam", step: "1", param_steps: '{"weight":1,"bias":1}' });
  const sgd = new optim.SGD(net, { lr: 0.1 });
  assert.throws(() => sgd.loadStateDict(sd), (e) => e instanceof ArgumentError && /saved by Adam/.test(e.message));
  const other = new optim.Adam(net, { lr: 0.1 });
  const badShape = { tensors: new Map([["weight.exp_avg", randn([2, 2])]]), metadata: sd.metadata };
  assert.throws(
    () => other.loadStateDict(badShape),
    (e) => e instanceof ShapeError && /"weight.exp_avg"/.test(e.message),
  );
  const badKey = { tensors: new Map([["nope.exp_avg", randn([3])]]), metadata: {} };
  assert.throws(() => other.loadStateDict(badKey), /names no parameter/);
  const badSlot = { tensors: new Map([["bias.momentum_buffer", randn([3])]]), metadata: {} };
  assert.throws(() => other.loadStateDict(badSlot), /no slot "momentum_buffer"/);
  // Loaded state is a copy: disposing the dict does not affect the optimiser.
  other.loadStateDict(sd);
  const copy = flat(other.stateDict().tensors.get("bias.exp_avg")!);
  for (const t of sd.tensors.values()) t.assign(0);
  assert.deepEqual(flat(other.stateDict().tensors.get("bias.exp_avg")!), copy);
});

// ---------------------------------------------------------------------------------------------
// Mixed precision

Deno.test("bfloat16 parameters are updated through a float32 master copy", () => {
  const p = tensor([1, 1], { dtype: "bfloat16" }).requireGrad();
  const opt = new optim.SGD([p], { lr: 1e-3 });
  for (let i = 0; i < 10; i++) {
    p.cast("float32").sum().backward(); // gradient 1
    opt.step();
    opt.zeroGrad();
  }
  const master = opt.stateDict().tensors.get("0.master")!;
  assert.equal(master.dtype, "float32");
  assertClose(flat(master), [0.99, 0.99], { atol: 1e-6, rtol: 1e-6 }, "master");
  assert.equal(p.dtype, "bfloat16");
  const rounded = fromBFloat16Bits(toBFloat16Bits(flat(master)[0]));
  assert.deepEqual(flat(p), [rounded, rounded]);
  assert.ok(rounded < 1); // plain bfloat16 updates of 1e-3 would have left p at 1
});

Deno.test("fused Adam/AdamW (backend.optim) matches the composite update", () => {
  const cases: { dtype: "float32" | "float64" | "bfloat16"; options: Partial<optim.AdamOptions> }[] = [
    { dtype: "float32", options: { lr: 0.01 } },
    { dtype: "float64", options: { lr: 0.02, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 } },
    { dtype: "float32", options: { lr: 0.02, weightDecay: 0.1, decoupledWeightDecay: true } },
    { dtype: "bfloat16", options: { lr: 0.01, weightDecay: 0.05, decoupledWeightDecay: true } },
  ];
  const cpu = getDefaultBackend().name === "cpu";
  for (const { dtype, options } of cases) {
    const trajectories = [true, false].map((fused) => {
      const net = new nn.MLP([3, 8, 2], { activation: "gelu", seed: 3, dtype });
      const opt = new optim.Adam(net, { ...options, fused });
      const x = randn([16, 3], { seed: 4, dtype });
      const out: number[][] = [];
      for (let i = 0; i < 4; i++) {
        tidy(() => {
          net.forward(x).cast("float32").square().mean().backward();
          opt.step();
          opt.zeroGrad();
        });
        out.push(net.parameters().flatMap((p) => flat(p)));
      }
      const masters = [...opt.stateDict().tensors].filter(([k]) => k.endsWith(".master"));
      if (dtype === "bfloat16") assert.equal(masters.length, 4, "float32 masters kept");
      return out;
    });
    // The CPU backend rounds the fused update exactly as its elementwise ops round the composite one.
    const tol = cpu ? 0 : dtype === "float64" ? 1e-12 : dtype === "float32" ? 1e-5 : 1e-2;
    trajectories[0].forEach((row, i) =>
      assertClose(row, trajectories[1][i], { atol: tol, rtol: tol }, `${dtype} step ${i}`)
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Training and memory

Deno.test("a short training run decreases the loss", () => {
  const net = new nn.MLP([2, 32, 1], { activation: "tanh", seed: 1 });
  const opt = new optim.Adam(net, { lr: optim.warmupCosine({ peakLr: 2e-2, warmupSteps: 10, totalSteps: 150 }) });
  const x = randn([64, 2], { seed: 5 });
  const y = x.narrow(1, 0, 1).mul(x.narrow(1, 1, 1)).tanh();
  const losses: number[] = [];
  for (let i = 0; i < 150; i++) {
    losses.push(tidy(() => {
      const loss = net.forward(x).sub(y).square().mean();
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss.item();
    }));
  }
  assert.ok(losses.at(-1)! < 0.1 * losses[0], `loss ${losses[0]} → ${losses.at(-1)}`);
});

Deno.test("memory does not grow across training steps wrapped in tidy", () => {
  const backend = getDefaultBackend();
  for (
    const make of [(n: nn.MLP) => new optim.AdamW(n), (n: nn.MLP) => new optim.SGD(n, { lr: 0.01, momentum: 0.9 })]
  ) {
    const net = new nn.MLP([2, 16, 16, 1], { activation: "gelu", seed: 0 });
    const opt = make(net);
    const step = (i: number) => trainSteps(net, opt, i, i + 1, true);
    step(0);
    step(1); // optimiser state exists from here on
    const base = backend.memory().current;
    for (let i = 2; i < 8; i++) {
      step(i);
      assert.equal(backend.memory().current, base, `step ${i}: ${backend.memory().current} bytes vs ${base}`);
    }
  }
});

Deno.test("step() frees its own temporaries (no enclosing tidy needed)", () => {
  const backend = getDefaultBackend();
  const net = new nn.MLP([2, 16, 1], { seed: 0 });
  const opt = new optim.Adam(net, { lr: 1e-3, weightDecay: 0.01 });
  const { x, y } = data(0);
  const step = () => {
    tidy(() => net.forward(x).sub(y).square().mean().backward());
    optim.clipGradNorm(net, 0.1);
    opt.step();
    opt.zeroGrad();
  };
  step();
  const base = backend.memory().current;
  for (let i = 0; i < 4; i++) {
    step();
    assert.equal(backend.memory().current, base);
  }
});

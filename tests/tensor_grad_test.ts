/**
 * Table-driven gradcheck of every differentiable tensor op: first-order VJPs and JVPs against
 * central finite differences in float64, and (with `secondOrder`) the gradients of the VJPs.
 * Inputs are seeded, cover broadcasting pairs, non-contiguous views (inside the function and as
 * inputs), keepdims and negative axes, and stay away from kinks.
 */

import assert from "node:assert/strict";
import {
  checkpoint,
  concat,
  customFunction,
  div,
  embedding,
  erf,
  fft,
  gather,
  gradcheck,
  type GradcheckOptions,
  ifft,
  indexSelect,
  irfft,
  irfftn,
  maximum,
  minimum,
  pad,
  pow,
  randn,
  reciprocal,
  rfft,
  rfftn,
  scatterAdd,
  split,
  stack,
  sub,
  type Tensor,
  tensor,
  where,
} from "../mod.ts";
import { rng } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Seeded host data (a small PRNG of our own, so inputs do not depend on the backend).

let seedCounter = 1000;
function nextSeed(): number {
  return seedCounter++;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** float64 tensor from a generator of values. */
function f64(shape: readonly number[], value: (u: () => number, i: number) => number, seed = nextSeed()): Tensor {
  const u = rng(seed);
  const host = new Float64Array(size(shape));
  for (let i = 0; i < host.length; i++) host[i] = value(u, i);
  return tensor(host, { shape, dtype: "float64" });
}

/** Standard normal float64 from the library's seeded generator. */
function rn(shape: readonly number[]): Tensor {
  return randn(shape, { dtype: "float64", seed: nextSeed() });
}

/** Values in (lo, hi). */
function uni(shape: readonly number[], lo = -1, hi = 1): Tensor {
  return f64(shape, (u) => lo + (hi - lo) * u());
}

/** Positive values in (0.5, 2). */
function pos(shape: readonly number[]): Tensor {
  return uni(shape, 0.5, 2);
}

/** Values with |x| in (0.2, 1.5): away from the kink at 0. */
function nonzero(shape: readonly number[]): Tensor {
  return f64(shape, (u) => (u() < 0.5 ? -1 : 1) * (0.2 + 1.3 * u()));
}

/** Distinct values (pairwise at least 0.2 apart) in random order: no ties for max/min. */
function distinct(shape: readonly number[]): Tensor {
  const n = size(shape);
  const u = rng(nextSeed());
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const host = new Float64Array(n);
  for (let i = 0; i < n; i++) host[i] = 0.3 * order[i] - 0.15 * n + 0.1 * u();
  return tensor(host, { shape, dtype: "float64" });
}

/** Two sets that never come within 0.3 of each other (for maximum/minimum with broadcasting). */
function lowHigh(shape: readonly number[], high: boolean): Tensor {
  return f64(shape, (u) => Math.floor(4 * u()) - 2 + (high ? 0.6 : 0.1) + 0.2 * u());
}

function ints(values: number[], shape?: number[]): Tensor {
  return tensor(Int32Array.from(values), { shape: shape ?? [values.length], dtype: "int32" });
}

function randomShape(u: () => number, rank: number): number[] {
  return Array.from({ length: rank }, () => 1 + Math.floor(u() * 4));
}

// ---------------------------------------------------------------------------------------------
// The table.

interface Case {
  name: string;
  fn: (...xs: Tensor[]) => Tensor;
  inputs: () => Tensor[];
  /** Second-order check (default true: every op's backward must be differentiable). */
  second?: boolean;
  options?: GradcheckOptions;
}

function run(cases: Case[]) {
  return async (t: Deno.TestContext) => {
    for (const c of cases) {
      await t.step(c.name, () => {
        const inputs = c.inputs();
        assert.equal(
          gradcheck(c.fn, inputs, { secondOrder: c.second ?? true, ...c.options }),
          true,
        );
      });
    }
  };
}

// Unary functions: each on a random shape, on a transposed view, on a negative-step slice, and
// on a non-contiguous input tensor.
const unaryOps: { name: string; f: (x: Tensor) => Tensor; gen: (shape: number[]) => Tensor }[] = [
  { name: "neg", f: (x) => x.neg(), gen: rn },
  { name: "exp", f: (x) => x.exp(), gen: rn },
  { name: "log", f: (x) => x.log(), gen: pos },
  { name: "sqrt", f: (x) => x.sqrt(), gen: pos },
  { name: "rsqrt", f: (x) => x.rsqrt(), gen: pos },
  { name: "abs", f: (x) => x.abs(), gen: nonzero },
  { name: "sin", f: (x) => x.sin(), gen: rn },
  { name: "cos", f: (x) => x.cos(), gen: rn },
  { name: "tanh", f: (x) => x.tanh(), gen: rn },
  { name: "sigmoid", f: (x) => x.sigmoid(), gen: rn },
  { name: "relu", f: (x) => x.relu(), gen: nonzero },
  { name: "gelu (erf)", f: (x) => x.gelu(), gen: rn },
  { name: "gelu (tanh)", f: (x) => x.gelu("tanh"), gen: rn },
  { name: "silu", f: (x) => x.silu(), gen: rn },
  { name: "softplus", f: (x) => x.softplus(), gen: rn },
  { name: "square", f: (x) => x.square(), gen: rn },
];

Deno.test("gradcheck: unary elementwise ops", async (t) => {
  const u = rng(1);
  const cases: Case[] = [];
  for (const op of unaryOps) {
    const shape = randomShape(u, 1 + Math.floor(u() * 3));
    cases.push({ name: `${op.name} ${JSON.stringify(shape)}`, fn: op.f, inputs: () => [op.gen(shape)] });
    cases.push({ name: `${op.name} scalar`, fn: op.f, inputs: () => [op.gen([])] });
    cases.push({
      name: `${op.name} of a transposed view`,
      fn: (x) => op.f(x.transpose()),
      inputs: () => [op.gen([3, 4])],
    });
    cases.push({
      name: `${op.name} of a negative-step slice`,
      fn: (x) => op.f(x.slice([null, [null, null, -2]])),
      inputs: () => [op.gen([2, 5])],
    });
    cases.push({
      name: `${op.name} on a non-contiguous input`,
      fn: op.f,
      inputs: () => [op.gen([4, 3]).transpose()],
    });
  }
  await run(cases)(t);
});

Deno.test(
  "gradcheck: erf and reciprocal",
  run([
    { name: "erf", fn: (x) => erf(x), inputs: () => [rn([2, 3])] },
    { name: "reciprocal", fn: (x) => reciprocal(x), inputs: () => [nonzero([5])] },
  ]),
);

Deno.test("gradcheck: binary ops with broadcasting", async (t) => {
  const pairs: [number[], number[]][] = [
    [[2, 3], [2, 3]],
    [[3, 1, 4], [5, 4]],
    [[4], [2, 3, 1]],
    [[], [2, 3]],
    [[2, 1], [1, 3]],
  ];
  const cases: Case[] = [];
  for (const [sa, sb] of pairs) {
    const tag = `${JSON.stringify(sa)} with ${JSON.stringify(sb)}`;
    cases.push(
      { name: `add ${tag}`, fn: (a, b) => a.add(b), inputs: () => [rn(sa), rn(sb)] },
      { name: `sub ${tag}`, fn: (a, b) => a.sub(b), inputs: () => [rn(sa), rn(sb)] },
      { name: `mul ${tag}`, fn: (a, b) => a.mul(b), inputs: () => [rn(sa), rn(sb)] },
      { name: `div ${tag}`, fn: (a, b) => a.div(b), inputs: () => [rn(sa), nonzero(sb)] },
      { name: `pow ${tag}`, fn: (a, b) => a.pow(b), inputs: () => [pos(sa), uni(sb, -1.5, 2.5)] },
      {
        name: `maximum ${tag}`,
        fn: (a, b) => a.maximum(b),
        inputs: () => [lowHigh(sa, false), lowHigh(sb, true)],
      },
      {
        name: `minimum ${tag}`,
        fn: (a, b) => a.minimum(b),
        inputs: () => [lowHigh(sa, true), lowHigh(sb, false)],
      },
    );
  }
  cases.push(
    { name: "mul of an operand with itself", fn: (a) => a.mul(a).mul(a), inputs: () => [rn([3])] },
    { name: "add of a transpose and a flip", fn: (a) => a.transpose().add(a.flip(0)), inputs: () => [rn([3, 3])] },
    {
      name: "mul of an expanded view",
      fn: (a, b) => a.expand([3, 2, 4]).mul(b),
      inputs: () => [rn([2, 1]), rn([3, 2, 4])],
    },
    {
      name: "div of step slices",
      fn: (a) => a.slice([[0, null, 2]]).div(a.slice([[1, null, 2]])),
      inputs: () => [nonzero([6, 2])],
    },
    {
      name: "binary ops on non-contiguous inputs",
      fn: (a, b) => a.mul(b).add(a.div(b)),
      inputs: () => [rn([4, 3]).transpose(), nonzero([4, 3, 2]).permute([2, 1, 0]).slice([null, [null, null, -1]])],
    },
  );
  await run(cases)(t);
});

Deno.test(
  "gradcheck: binary ops with a number operand",
  run([
    { name: "x + 2", fn: (x) => x.add(2), inputs: () => [rn([3])] },
    { name: "2 - x", fn: (x) => sub(2, x), inputs: () => [rn([3])] },
    { name: "x * -1.5", fn: (x) => x.mul(-1.5), inputs: () => [rn([2, 2])] },
    { name: "3 / x", fn: (x) => div(3, x), inputs: () => [nonzero([4])] },
    { name: "x / 4", fn: (x) => x.div(4), inputs: () => [rn([4])] },
    { name: "x ** 3", fn: (x) => x.pow(3), inputs: () => [rn([4])] },
    { name: "x ** 2", fn: (x) => x.pow(2), inputs: () => [rn([4])] },
    { name: "x ** 1", fn: (x) => x.pow(1), inputs: () => [rn([4])] },
    { name: "x ** 0", fn: (x) => x.pow(0), inputs: () => [rn([4])] },
    { name: "x ** 0.5", fn: (x) => x.pow(0.5), inputs: () => [pos([4])] },
    { name: "x ** -1.5", fn: (x) => x.pow(-1.5), inputs: () => [pos([4])] },
    { name: "2 ** x", fn: (x) => pow(2, x), inputs: () => [rn([4])] },
    { name: "maximum(x, 0.25)", fn: (x) => x.maximum(0.25), inputs: () => [lowHigh([5], true)] },
    { name: "minimum(0.25, x)", fn: (x) => minimum(0.25, x), inputs: () => [lowHigh([5], true)] },
    {
      name: "cast through float32 and back (linear; a wide step hides float32 rounding)",
      fn: (x) => x.cast("float32").mul(2).cast("float64").add(x),
      inputs: () => [rn([4])],
      options: { eps: 1e-2, atol: 1e-4, rtol: 1e-4 },
    },
    { name: "maximum(0.75, x)", fn: (x) => maximum(0.75, x), inputs: () => [lowHigh([5], false)] },
  ]),
);

Deno.test(
  "gradcheck: where and clamp",
  run([
    {
      name: "where with broadcasting of condition and both branches",
      fn: (a, b) => where(ints([1, 0, 1], [3, 1]), a, b),
      inputs: () => [rn([3, 4]), rn([4])],
    },
    {
      name: "where with a float condition and a number branch",
      fn: (a) => where(tensor([[0, 1], [1, 0]], { dtype: "float64" }), a, -2),
      inputs: () => [rn([2, 2])],
    },
    {
      name: "where with a number first branch",
      fn: (b) => where(ints([1, 0, 0, 1]), 0.5, b),
      inputs: () => [rn([4])],
    },
    {
      name: "where of a transposed view",
      fn: (a) => where(ints([1, 0, 1]), a.transpose(), a.transpose().mul(2)),
      inputs: () => [rn([3, 2])],
    },
    {
      name: "clamp(x, -0.5, 0.5)",
      fn: (x) => x.clamp(-0.5, 0.5),
      inputs: () => [f64([3, 4], (u) => (u() < 0.5 ? -1 : 1) * (u() < 0.5 ? 0.1 + 0.3 * u() : 0.6 + u()))],
    },
    { name: "clamp(x, 0.2) (min only)", fn: (x) => x.clamp(0.2), inputs: () => [lowHigh([6], false)] },
    {
      name: "clamp(x, undefined, 0.2) (max only)",
      fn: (x) => x.clamp(undefined, 0.2),
      inputs: () => [lowHigh([6], true)],
    },
    {
      name: "clamp of a step slice",
      fn: (x) => x.slice([[null, null, 2]]).clamp(0.2, 1.9),
      inputs: () => [lowHigh([7], false)],
    },
  ]),
);

Deno.test("gradcheck: reductions over any axes, keepdims and negative axes", async (t) => {
  const cases: Case[] = [];
  const axesList: [number | number[] | undefined, string][] = [
    [undefined, "all"],
    [0, "0"],
    [-1, "-1"],
    [[0, 2], "[0,2]"],
    [[-2], "[-2]"],
    [[2, 0, 1], "[2,0,1]"],
  ];
  for (const [axes, tag] of axesList) {
    for (const keepdims of [false, true]) {
      const k = keepdims ? " keepdims" : "";
      cases.push(
        { name: `sum ${tag}${k}`, fn: (x) => x.sum(axes, keepdims), inputs: () => [rn([2, 3, 4])] },
        { name: `mean ${tag}${k}`, fn: (x) => x.mean(axes, keepdims), inputs: () => [rn([2, 3, 4])] },
        { name: `max ${tag}${k}`, fn: (x) => x.max(axes, keepdims), inputs: () => [distinct([2, 3, 4])] },
        { name: `min ${tag}${k}`, fn: (x) => x.min(axes, keepdims), inputs: () => [distinct([2, 3, 4])] },
        { name: `logsumexp ${tag}${k}`, fn: (x) => x.logsumexp(axes, keepdims), inputs: () => [rn([2, 3, 4])] },
      );
      for (const correction of [0, 1]) {
        cases.push({
          name: `var ${tag}${k} correction ${correction}`,
          fn: (x) => x.var(axes, { keepdims, correction }),
          inputs: () => [rn([2, 3, 4])],
        });
      }
    }
  }
  cases.push(
    { name: "var default correction", fn: (x) => x.var(), inputs: () => [rn([5])] },
    { name: "sum of a permuted view", fn: (x) => x.permute([2, 0, 1]).sum(1), inputs: () => [rn([2, 3, 4])] },
    { name: "max of a flipped view", fn: (x) => x.flip([0, 1]).max(-1), inputs: () => [distinct([3, 4])] },
    { name: "mean of an expanded view", fn: (x) => x.expand([3, 2, 4]).mean([0, 2]), inputs: () => [rn([2, 1])] },
    {
      name: "logsumexp of large logits",
      fn: (x) => x.mul(100).logsumexp(-1),
      inputs: () => [rn([2, 3])],
      options: { eps: 1e-7, atol: 1e-4 },
    },
    { name: "sum over a non-contiguous input", fn: (x) => x.sum(0), inputs: () => [rn([4, 3]).transpose()] },
  );
  await run(cases)(t);
});

Deno.test(
  "gradcheck: softmax, logSoftmax and cumsum",
  run([
    { name: "softmax last axis", fn: (x) => x.softmax(), inputs: () => [rn([3, 4])] },
    { name: "softmax axis 0", fn: (x) => x.softmax(0), inputs: () => [rn([3, 4])] },
    { name: "softmax axis -2 of rank 3", fn: (x) => x.softmax(-2), inputs: () => [rn([2, 3, 2])] },
    { name: "softmax of a transposed view", fn: (x) => x.transpose().softmax(), inputs: () => [rn([3, 4])] },
    { name: "logSoftmax last axis", fn: (x) => x.logSoftmax(), inputs: () => [rn([3, 4])] },
    { name: "logSoftmax axis 1 of rank 3", fn: (x) => x.logSoftmax(1), inputs: () => [rn([2, 3, 2])] },
    {
      name: "logSoftmax of a step slice",
      fn: (x) => x.slice([null, [null, null, -2]]).logSoftmax(),
      inputs: () => [rn([2, 6])],
    },
    { name: "cumsum axis 0", fn: (x) => x.cumsum(0), inputs: () => [rn([4, 3])] },
    { name: "cumsum axis -1", fn: (x) => x.cumsum(-1), inputs: () => [rn([2, 3, 4])] },
    { name: "cumsum of a flip", fn: (x) => x.flip(0).cumsum(0).mul(x), inputs: () => [rn([5])] },
    { name: "cumsum on a non-contiguous input", fn: (x) => x.cumsum(1).sin(), inputs: () => [rn([3, 4]).transpose()] },
  ]),
);

Deno.test(
  "gradcheck: matmul",
  run([
    { name: "1-D · 1-D", fn: (a, b) => a.matmul(b), inputs: () => [rn([4]), rn([4])] },
    { name: "1-D · 2-D", fn: (a, b) => a.matmul(b), inputs: () => [rn([3]), rn([3, 2])] },
    { name: "2-D · 1-D", fn: (a, b) => a.matmul(b), inputs: () => [rn([2, 3]), rn([3])] },
    { name: "2-D · 2-D", fn: (a, b) => a.matmul(b), inputs: () => [rn([2, 3]), rn([3, 4])] },
    { name: "batched", fn: (a, b) => a.matmul(b), inputs: () => [rn([2, 3, 4]), rn([2, 4, 2])] },
    {
      name: "broadcast batch [2,1,3,2]·[3,2,2]",
      fn: (a, b) => a.matmul(b),
      inputs: () => [rn([2, 1, 3, 2]), rn([3, 2, 2])],
    },
    { name: "2-D · batched", fn: (a, b) => a.matmul(b), inputs: () => [rn([2, 3]), rn([2, 3, 2])] },
    { name: "1-D · batched", fn: (a, b) => a.matmul(b), inputs: () => [rn([3]), rn([2, 3, 2])] },
    { name: "batched · 1-D", fn: (a, b) => a.matmul(b), inputs: () => [rn([2, 2, 3]), rn([3])] },
    {
      name: "transposed operands",
      fn: (a, b) => a.transpose().matmul(b.transpose()),
      inputs: () => [rn([3, 2]), rn([4, 3])],
    },
    {
      name: "non-contiguous inputs",
      fn: (a, b) => a.matmul(b),
      inputs: () => [rn([3, 2]).transpose(), rn([2, 3, 4]).slice([null, null, [null, null, -2]])],
    },
    { name: "x·x (same operand twice)", fn: (a) => a.matmul(a), inputs: () => [rn([3, 3])] },
  ]),
);

Deno.test(
  "gradcheck: shape ops",
  run([
    { name: "reshape with -1", fn: (x) => x.reshape([-1, 2]).mul(x.reshape([3, 2])), inputs: () => [rn([2, 3])] },
    {
      name: "reshape of a transposed view (copy)",
      fn: (x) => x.transpose().reshape([6]).cumsum(0),
      inputs: () => [rn([2, 3])],
    },
    { name: "permute", fn: (x) => x.permute([2, 0, 1]).cumsum(-1), inputs: () => [rn([2, 3, 4])] },
    { name: "transpose(0, 2)", fn: (x) => x.transpose(0, 2).cumsum(0), inputs: () => [rn([2, 3, 4])] },
    { name: "expand", fn: (x) => x.expand([2, 3, 4]).cumsum(0), inputs: () => [rn([3, 1])] },
    { name: "expand with -1", fn: (x) => x.expand([2, -1, 4]).cumsum(1), inputs: () => [rn([3, 1])] },
    { name: "slice with steps", fn: (x) => x.slice([[1, null, 2], [null, null, -1]]), inputs: () => [rn([5, 3])] },
    { name: "slice picking an index", fn: (x) => x.slice([-1, [0, 3, 2]]), inputs: () => [rn([3, 4])] },
    { name: "slice object form", fn: (x) => x.slice([{ start: 4, stop: 0, step: -2 }]), inputs: () => [rn([6])] },
    {
      name: "slice of a slice",
      fn: (x) => x.slice([[null, null, 2]]).slice([[null, null, -1]]).cumsum(0),
      inputs: () => [rn([7])],
    },
    { name: "narrow", fn: (x) => x.narrow(1, 1, 2), inputs: () => [rn([2, 4])] },
    { name: "flip", fn: (x) => x.flip([0, -1]).cumsum(1), inputs: () => [rn([2, 3])] },
    { name: "squeeze / unsqueeze", fn: (x) => x.squeeze().unsqueeze(-1).cumsum(0), inputs: () => [rn([1, 3, 1])] },
    { name: "flatten", fn: (x) => x.flatten(1).cumsum(1), inputs: () => [rn([2, 2, 3])] },
    { name: "contiguous of a view", fn: (x) => x.transpose().contiguous().cumsum(1), inputs: () => [rn([3, 2])] },
    { name: "clone", fn: (x) => x.clone().mul(x), inputs: () => [rn([3])] },
    {
      name: "concat of three along the last axis",
      fn: (a, b, c) => concat([a, b.sin(), c], -1).cumsum(-1),
      inputs: () => [rn([2, 1]), rn([2, 3]), rn([2, 2])],
    },
    {
      name: "concat of views of one input",
      fn: (a) => concat([a, a.flip(0), a.mul(2)], 0),
      inputs: () => [rn([2, 2])],
    },
    {
      name: "concat on non-contiguous inputs",
      fn: (a, b) => concat([a, b], 0).cumsum(0),
      inputs: () => [rn([3, 2]).transpose(), rn([3, 3]).slice([[null, null, 2]])],
    },
    { name: "stack axis 0", fn: (a, b) => stack([a, b]).cumsum(0), inputs: () => [rn([2, 3]), rn([2, 3])] },
    { name: "stack axis -1", fn: (a, b) => stack([a, b.exp()], -1).cumsum(-1), inputs: () => [rn([3]), rn([3])] },
    {
      name: "split by sizes",
      fn: (x) => {
        const [p, q] = split(x, [1, 3], 1);
        return concat([q.sin(), p.mul(2)], 1);
      },
      inputs: () => [rn([2, 4])],
    },
    {
      name: "split into sections",
      fn: (x) => {
        const parts = x.split(3, 0);
        return parts[0].mul(parts[1]).add(parts[2].exp());
      },
      inputs: () => [rn([6, 2])],
    },
    { name: "pad constant 0, last axis", fn: (x) => x.pad([[1, 2]]).cumsum(-1), inputs: () => [rn([2, 3])] },
    {
      name: "pad constant 1.5, two axes",
      fn: (x) => pad(x, [[2, 0], [1, 1]], "constant", 1.5).mul(x.sum()),
      inputs: () => [rn([2, 3])],
    },
    { name: "pad periodic, last axis", fn: (x) => x.pad([[2, 1]], "periodic").cumsum(-1), inputs: () => [rn([2, 3])] },
    {
      name: "pad periodic, two axes",
      fn: (x) => x.pad([[1, 2], [3, 3]], "periodic").cumsum(0),
      inputs: () => [rn([3, 3])],
    },
    {
      name: "pad periodic of a transposed view",
      fn: (x) => x.transpose().pad([[1, 1]], "periodic"),
      inputs: () => [rn([3, 2])],
    },
    { name: "roll +1", fn: (x) => x.roll(1, 0).cumsum(0), inputs: () => [rn([4])] },
    { name: "roll -2 along axis -1", fn: (x) => x.roll(-2, -1).cumsum(-1), inputs: () => [rn([2, 5])] },
    { name: "roll by more than the length", fn: (x) => x.roll(7, 1).cumsum(1), inputs: () => [rn([2, 3])] },
  ]),
);

Deno.test(
  "gradcheck: gather, scatterAdd, indexSelect, embedding (repeated indices)",
  run([
    {
      name: "gather axis 1",
      fn: (x) => gather(x, 1, ints([0, 0, 2, 1, 1, 1], [2, 3])),
      inputs: () => [rn([2, 3])],
    },
    {
      name: "gather axis 0 with a smaller index",
      fn: (x) => x.gather(0, ints([2, 2, 0], [1, 3])).exp(),
      inputs: () => [rn([3, 4])],
    },
    {
      name: "gather axis -1 of a transposed view",
      fn: (x) => x.transpose().gather(-1, ints([1, 1, 0, 0, 1, 0], [3, 2])),
      inputs: () => [rn([2, 3])],
    },
    {
      name: "scatterAdd with repeated indices (x and src)",
      fn: (x, src) => scatterAdd(x, 0, ints([0, 2, 0, 0, 1, 0], [2, 3]), src),
      inputs: () => [rn([3, 3]), rn([2, 3])],
    },
    {
      name: "scatterAdd along axis 1 with a larger src",
      fn: (x, src) => x.scatterAdd(1, ints([1, 1, 0, 2], [2, 2]), src).sin(),
      inputs: () => [rn([2, 3]), rn([2, 4])],
    },
    {
      name: "indexSelect axis 0 with repeats",
      fn: (x) => indexSelect(x, 0, ints([2, 0, 2, 2])),
      inputs: () => [rn([3, 2])],
    },
    {
      name: "indexSelect axis 1",
      fn: (x) => x.indexSelect(1, ints([1, 1, 0])).mul(x.sum()),
      inputs: () => [rn([2, 3])],
    },
    {
      name: "embedding with repeated ids",
      fn: (w) => embedding(w, ints([1, 3, 1, 0, 1, 3], [2, 3])).tanh(),
      inputs: () => [rn([4, 2])],
    },
  ]),
);

/** Mask zeroing the imaginary parts that a real inverse transform ignores (DC, and Nyquist for even n). */
function hermitianMask(m: number, n: number): Tensor {
  const host = new Float64Array(m * 2).fill(1);
  host[1] = 0;
  if (n % 2 === 0 && m - 1 === n / 2) host[2 * (m - 1) + 1] = 0;
  return tensor(host, { shape: [m, 2], dtype: "float64" });
}

/** A real weight on the rfftn bins of `shape` over its axes, symmetric under k → −k on the full axes. */
function symmetricWeight(shape: number[]): Tensor {
  const bins = [...shape];
  const last = bins.length - 1;
  bins[last] = Math.floor(shape[last] / 2) + 1;
  const host = new Float64Array(size(bins));
  const strides = bins.map((_, i) => size(bins.slice(i + 1)));
  for (let f = 0; f < host.length; f++) {
    let w = 1;
    bins.forEach((_, d) => {
      const k = Math.floor(f / strides[d]) % bins[d];
      w += d === last ? 0.3 * k : 0.5 * Math.cos((2 * Math.PI * k) / shape[d]) / (d + 1);
    });
    host[f] = w;
  }
  return tensor(host, { shape: [...bins, 1], dtype: "float64" });
}

Deno.test(
  "gradcheck: FFT over 1, 2 and 3 axes",
  run([
    { name: "rfft even length", fn: (x) => rfft(x), inputs: () => [rn([6])] },
    { name: "rfft odd length", fn: (x) => rfft(x), inputs: () => [rn([2, 5])] },
    { name: "rfft axis 0", fn: (x) => rfft(x, 0), inputs: () => [rn([4, 3])] },
    { name: "rfft of a transposed view", fn: (x) => rfft(x.transpose()), inputs: () => [rn([5, 2])] },
    { name: "irfft default n (even)", fn: (z) => irfft(z.mul(hermitianMask(4, 6))), inputs: () => [rn([2, 4, 2])] },
    { name: "irfft n given, odd", fn: (z) => irfft(z.mul(hermitianMask(4, 7)), 7), inputs: () => [rn([4, 2])] },
    {
      name: "irfft n given, fewer bins needed (truncates)",
      fn: (z) => irfft(z.mul(hermitianMask(5, 4)), 4),
      inputs: () => [rn([5, 2])],
    },
    {
      name: "irfft n given, more bins needed (zero-pads)",
      fn: (z) => irfft(z.mul(hermitianMask(3, 9)), 9),
      inputs: () => [rn([3, 2])],
    },
    {
      name: "irfft along axis 0",
      fn: (z) => irfft(z.mul(hermitianMask(3, 5).reshape([3, 1, 2])), 5, 0),
      inputs: () => [rn([3, 2, 2])],
    },
    { name: "rfftn 1 axis", fn: (x) => rfftn(x, [-1]), inputs: () => [rn([3, 4])] },
    { name: "rfftn 2 axes, odd/even", fn: (x) => rfftn(x, [0, 1]), inputs: () => [rn([3, 4])] },
    { name: "rfftn 3 axes", fn: (x) => rfftn(x), inputs: () => [rn([2, 3, 3])] },
    {
      name: "irfftn 2 axes round trip with weights (even last)",
      fn: (x) => irfftn(rfftn(x, [0, 1]).mul(symmetricWeight([3, 4])), [0, 1], [3, 4]),
      inputs: () => [rn([3, 4])],
    },
    {
      name: "irfftn 2 axes round trip with weights (odd last)",
      fn: (x) => irfftn(rfftn(x, [1, 2]).mul(symmetricWeight([4, 5])), [1, 2], [4, 5]),
      inputs: () => [rn([2, 4, 5])],
    },
    {
      name: "irfftn 3 axes round trip with weights",
      fn: (x) => irfftn(rfftn(x).mul(symmetricWeight([2, 3, 4]))),
      inputs: () => [rn([2, 3, 4])],
    },
    { name: "fft (complex)", fn: (z) => fft(z), inputs: () => [rn([2, 5, 2])] },
    { name: "ifft (complex) axis 0", fn: (z) => ifft(z, 0), inputs: () => [rn([4, 3, 2])] },
  ]),
);

Deno.test(
  "gradcheck: compositions (MLP, attention-like)",
  run([
    {
      name: "tanh MLP",
      fn: (x, w1, b1, w2) => x.matmul(w1).add(b1).tanh().matmul(w2).sum(-1),
      inputs: () => [rn([3, 2]), rn([2, 4]), rn([4]), rn([4, 1])],
    },
    {
      name: "softmax attention",
      fn: (q, k, v) => q.matmul(k.transpose()).div(Math.sqrt(2)).softmax().matmul(v),
      inputs: () => [rn([2, 3, 2]), rn([2, 4, 2]), rn([2, 4, 2])],
    },
    {
      name: "layer-norm like",
      fn: (x) => x.sub(x.mean(-1, true)).div(x.var(-1, { keepdims: true, correction: 0 }).add(1e-5).sqrt()),
      inputs: () => [rn([2, 5])],
    },
    {
      name: "cross-entropy like",
      fn: (logits) => logits.logSoftmax().gather(1, ints([2, 0], [2, 1])).mean().neg(),
      inputs: () => [rn([2, 3])],
    },
  ]),
);

Deno.test(
  "gradcheck: customFunction and checkpoint",
  run([
    {
      name: "customFunction x·sin(y) with a hand-written backward",
      fn: (() => {
        const f = customFunction(
          (x: Tensor, y: Tensor) => ({ output: x.mul(y.sin()), residuals: [x, y] }),
          ([x, y], g) => [g.mul(y.sin()), g.mul(x).mul(y.cos())],
        );
        return (x: Tensor, y: Tensor) => f(x, y).output;
      })(),
      inputs: () => [rn([2, 3]), rn([2, 3])],
    },
    {
      name: "checkpoint of a two-layer block",
      fn: (() => {
        const block = checkpoint((x: Tensor, w: Tensor) => x.matmul(w).tanh().matmul(w.transpose()).sin());
        return (x: Tensor, w: Tensor) => block(x, w);
      })(),
      inputs: () => [rn([2, 3]), rn([3, 3])],
    },
  ]),
);

Deno.test("gradcheck: std and norm", async (t) => {
  const x = randn([3, 4], { dtype: "float64", seed: 41 });
  await t.step("std over an axis", () => {
    assert.equal(gradcheck((a) => a.std(1, { correction: 1 }), [x], { secondOrder: true }), true);
  });
  for (const p of [1, 2, 3, Infinity]) {
    await t.step(`norm p=${p}`, () => {
      assert.equal(gradcheck((a) => a.norm(p, -1), [x]), true);
    });
  }
  await t.step("2-norm has a zero gradient at 0", () => {
    const z = tensor([0, 0], { dtype: "float64" }).requireGrad();
    z.norm().backward();
    assert.deepEqual(z.grad!.toArray(), [0, 0]);
  });
});

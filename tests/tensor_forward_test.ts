/**
 * Forward values of the tensor ops against plain-JS reference computations: creation, NumPy
 * broadcasting, Python slicing (negative steps included), views that share storage, dtype
 * promotion, int32 arithmetic, comparisons, reductions, FFTs against a naive DFT, numerically
 * stable softmax/logsumexp, seeded random streams and bfloat16 rounding.
 */

import assert from "node:assert/strict";
import {
  arange,
  concat,
  embedding,
  eye,
  fft,
  full,
  fullLike,
  gather,
  Generator,
  ifft,
  indexSelect,
  irfft,
  irfftn,
  linspace,
  manualSeed,
  type NestedArray,
  ones,
  onesLike,
  rand,
  randint,
  randn,
  rfft,
  rfftn,
  scatterAdd,
  split,
  stack,
  type Tensor,
  tensor,
  where,
  zeros,
  zerosLike,
} from "../mod.ts";
import { assertClose, rng } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Reference helpers.

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function stridesOf(shape: readonly number[]): number[] {
  return shape.map((_, i) => size(shape.slice(i + 1)));
}

/** Every multi-index of `shape`, row-major. */
function indices(shape: readonly number[]): number[][] {
  const out: number[][] = [];
  const st = stridesOf(shape);
  for (let f = 0; f < size(shape); f++) out.push(shape.map((d, i) => Math.floor(f / st[i]) % d));
  return out;
}

function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

function hostRandom(n: number, seed: number): Float64Array {
  const u = rng(seed);
  return Float64Array.from({ length: n }, () => 2 * u() - 1);
}

function t64(shape: number[], seed: number): Tensor {
  return tensor(hostRandom(size(shape), seed), { shape, dtype: "float64" });
}

/** Python's slice(start, stop, step).indices(n) → the selected positions. */
function pySlice(n: number, start: number | null, stop: number | null, step: number | null): number[] {
  const s = step ?? 1;
  let a: number, b: number;
  if (s > 0) {
    a = start === null ? 0 : start < 0 ? Math.max(start + n, 0) : Math.min(start, n);
    b = stop === null ? n : stop < 0 ? Math.max(stop + n, 0) : Math.min(stop, n);
  } else {
    a = start === null ? n - 1 : start < 0 ? Math.max(start + n, -1) : Math.min(start, n - 1);
    b = stop === null ? -1 : stop < 0 ? Math.max(stop + n, -1) : Math.min(stop, n - 1);
  }
  const out: number[] = [];
  for (let i = a; s > 0 ? i < b : i > b; i += s) out.push(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Creation.

Deno.test("creation: zeros, ones, full, *Like, eye, linspace", () => {
  const z = zeros([2, 3]);
  assert.deepEqual(z.shape, [2, 3]);
  assert.equal(z.dtype, "float32");
  assert.deepEqual(z.toArray(), [[0, 0, 0], [0, 0, 0]]);
  assert.deepEqual(ones([2], { dtype: "int32" }).toArray(), [1, 1]);
  assert.equal(ones([2], { dtype: "int32" }).dtype, "int32");
  assert.deepEqual(full([3], 2.5, { dtype: "float64" }).toArray(), [2.5, 2.5, 2.5]);
  assert.deepEqual(full([], 7).toArray(), 7);
  assert.deepEqual(zeros([0, 3]).shape, [0, 3]);
  assert.deepEqual(zeros([0, 3]).toArray(), []);
  const base = tensor([[1, 2]], { dtype: "int32" });
  assert.equal(fullLike(base, 4).dtype, "int32");
  assert.deepEqual(fullLike(base, 4).toArray(), [[4, 4]]);
  assert.deepEqual(zerosLike(base, { dtype: "float64" }).toArray(), [[0, 0]]);
  assert.equal(zerosLike(base, { dtype: "float64" }).dtype, "float64");
  assert.deepEqual(onesLike(base).shape, [1, 2]);
  assert.deepEqual(eye(3).toArray(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
  assert.deepEqual(eye(2, 3).toArray(), [[1, 0, 0], [0, 1, 0]]);
  assert.deepEqual(eye(3, 2, { dtype: "int32" }).toArray(), [[1, 0], [0, 1], [0, 0]]);
  assert.deepEqual(linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(linspace(2, -2, 3, { dtype: "float64" }).toArray(), [2, 0, -2]);
  assert.deepEqual(linspace(2, 3, 1).toArray(), [2]);
  assert.deepEqual(linspace(0, 1, 0).shape, [0]);
  const l = linspace(0, 1, 7, { dtype: "float64" });
  assertClose(l.toTypedArray(), Array.from({ length: 7 }, (_, i) => i / 6), {
    atol: 1e-15,
    rtol: 1e-15,
    equalNaN: true,
  }, "linspace");
  assert.equal(flat(l)[6], 1, "linspace ends exactly at stop");
  const r = zeros([2], { requiresGrad: true });
  assert.equal(r.requiresGrad, true);
});

Deno.test("creation: arange", () => {
  assert.deepEqual(arange(5).toArray(), [0, 1, 2, 3, 4]);
  assert.equal(arange(5).dtype, "int32");
  assert.deepEqual(arange(2, 8, 2).toArray(), [2, 4, 6]);
  assert.deepEqual(arange(5, 0, -2).toArray(), [5, 3, 1]);
  assert.deepEqual(arange(3, 3).toArray(), []);
  assert.deepEqual(arange(3, 0).toArray(), []);
  const f = arange(0, 1, 0.25);
  assert.equal(f.dtype, "float32");
  assert.deepEqual(f.toArray(), [0, 0.25, 0.5, 0.75]);
  assert.equal(arange(0, 1, 0.1, { dtype: "float64" }).shape[0], 10);
  assertClose(arange(0, 1, 0.1, { dtype: "float64" }).toTypedArray(), [0, .1, .2, .3, .4, .5, .6, .7, .8, .9], {
    atol: 1e-15,
    rtol: 1e-15,
    equalNaN: true,
  });
  assert.equal(arange(4, undefined, 1, { dtype: "float64" }).dtype, "float64");
});

Deno.test("creation: from nested arrays and typed arrays", () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(a.shape, [2, 3]);
  assert.equal(a.dtype, "float32");
  assert.deepEqual(a.toArray(), [[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(tensor(3.5, { dtype: "float64" }).shape, []);
  assert.equal(tensor(3.5, { dtype: "float64" }).item(), 3.5);
  assert.deepEqual(tensor([[[1], [2]]]).shape, [1, 2, 1]);
  assert.deepEqual(tensor([]).shape, [0]);
  const f64 = tensor(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
  assert.equal(f64.dtype, "float64");
  assert.deepEqual(f64.toArray(), [[1, 2], [3, 4], [5, 6]]);
  assert.equal(tensor(new Int32Array([1, 2])).dtype, "int32");
  assert.equal(tensor(new Float32Array([1, 2])).dtype, "float32");
  assert.equal(tensor(new Float32Array([1, 2]), { dtype: "float64" }).dtype, "float64");
  assert.deepEqual(tensor([1, 2, 3, 4], { shape: [2, 2] }).toArray(), [[1, 2], [3, 4]]);
  // float32 storage rounds; float64 keeps every bit.
  assert.equal(tensor([0.1]).item(), Math.fround(0.1));
  assert.equal(tensor([0.1], { dtype: "float64" }).item(), 0.1);
  // int32 from floats truncates toward zero (as a C cast).
  assert.deepEqual(tensor([1.7, -1.7], { dtype: "int32" }).toArray(), [1, -1]);
  // Host data is copied, not aliased.
  const host = new Float64Array([1, 2]);
  const t = tensor(host);
  host[0] = 99;
  assert.deepEqual(t.toArray(), [1, 2]);
  assert.ok(t.toTypedArray() instanceof Float64Array);
  assert.ok(tensor([1], { dtype: "int32" }).toTypedArray() instanceof Int32Array);
});

// ---------------------------------------------------------------------------------------------
// Broadcasting.

function refBinary(
  a: Float64Array,
  sa: number[],
  b: Float64Array,
  sb: number[],
  f: (x: number, y: number) => number,
): { shape: number[]; data: number[] } {
  const rank = Math.max(sa.length, sb.length);
  const pa = [...Array(rank - sa.length).fill(1), ...sa];
  const pb = [...Array(rank - sb.length).fill(1), ...sb];
  const shape = pa.map((d, i) => Math.max(d, pb[i]));
  const sta = stridesOf(pa);
  const stb = stridesOf(pb);
  const data = indices(shape).map((idx) => {
    const ia = idx.reduce((s, v, i) => s + (pa[i] === 1 ? 0 : v) * sta[i], 0);
    const ib = idx.reduce((s, v, i) => s + (pb[i] === 1 ? 0 : v) * stb[i], 0);
    return f(a[ia], b[ib]);
  });
  return { shape, data };
}

Deno.test("broadcasting: binary ops follow NumPy rules", async (t) => {
  const pairs: [number[], number[]][] = [
    [[3, 1, 4], [5, 4]],
    [[2, 1], [1, 3]],
    [[4], [2, 3, 1]],
    [[], [2, 2]],
    [[2, 3], [2, 3]],
    [[1, 1, 3], [2, 1, 1]],
  ];
  const ops: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number][] = [
    ["add", (a, b) => a.add(b), (x, y) => x + y],
    ["sub", (a, b) => a.sub(b), (x, y) => x - y],
    ["mul", (a, b) => a.mul(b), (x, y) => x * y],
    ["div", (a, b) => a.div(b), (x, y) => x / y],
    ["maximum", (a, b) => a.maximum(b), Math.max],
    ["minimum", (a, b) => a.minimum(b), Math.min],
    ["pow", (a, b) => a.abs().add(0.5).pow(b), (x, y) => Math.pow(Math.abs(x) + 0.5, y)],
  ];
  let seed = 1;
  for (const [sa, sb] of pairs) {
    for (const [name, op, ref] of ops) {
      await t.step(`${name} ${JSON.stringify(sa)} with ${JSON.stringify(sb)}`, () => {
        const ha = hostRandom(size(sa), seed++);
        const hb = hostRandom(size(sb), seed++);
        const out = op(tensor(ha, { shape: sa }), tensor(hb, { shape: sb }));
        const expected = refBinary(ha, sa, hb, sb, ref);
        assert.deepEqual(out.shape, expected.shape);
        // Inputs are float64 host arrays: compute the reference on the float32-rounded values.
        const fa = Float64Array.from(new Float32Array(ha));
        const fb = Float64Array.from(new Float32Array(hb));
        assertClose(
          out.toTypedArray(),
          refBinary(fa, sa, fb, sb, ref).data,
          { atol: 1e-6, rtol: 1e-5, equalNaN: true },
          name,
        );
      });
    }
  }
  await t.step("number operands on either side", () => {
    const x = tensor([1, 2, 3], { dtype: "float64" });
    assert.deepEqual(x.add(1).toArray(), [2, 3, 4]);
    assert.deepEqual(x.mul(-2).toArray(), [-2, -4, -6]);
    assert.deepEqual(x.pow(2).toArray(), [1, 4, 9]);
    assert.deepEqual(x.div(2).toArray(), [0.5, 1, 1.5]);
    assert.deepEqual(x.sub(1).toArray(), [0, 1, 2]);
    assert.deepEqual(x.maximum(2).toArray(), [2, 2, 3]);
    assert.deepEqual(x.minimum(2).toArray(), [1, 2, 2]);
  });
  await t.step("broadcasting into an empty axis", () => {
    assert.deepEqual(zeros([0, 3]).add(ones([3])).shape, [0, 3]);
  });
});

Deno.test("elementwise functions match Math", async (t) => {
  const xs = [-3, -1.5, -0.5, -0.1, 0.1, 0.5, 1, 2.5];
  const pos = [0.1, 0.5, 1, 2, 9];
  const erfRef = (x: number) => {
    // Abramowitz–Stegun is too coarse; use a series/continued fraction good to 1e-15 for |x| < 4.
    let sum = x;
    let term = x;
    for (let n = 1; n < 80; n++) {
      term *= -x * x / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  };
  const cases: [string, (t: Tensor) => Tensor, (x: number) => number, number[]][] = [
    ["neg", (t) => t.neg(), (x) => -x, xs],
    ["exp", (t) => t.exp(), Math.exp, xs],
    ["log", (t) => t.log(), Math.log, pos],
    ["sqrt", (t) => t.sqrt(), Math.sqrt, pos],
    ["rsqrt", (t) => t.rsqrt(), (x) => 1 / Math.sqrt(x), pos],
    ["abs", (t) => t.abs(), Math.abs, xs],
    ["sin", (t) => t.sin(), Math.sin, xs],
    ["cos", (t) => t.cos(), Math.cos, xs],
    ["tanh", (t) => t.tanh(), Math.tanh, xs],
    ["sigmoid", (t) => t.sigmoid(), (x) => 1 / (1 + Math.exp(-x)), xs],
    ["relu", (t) => t.relu(), (x) => Math.max(x, 0), xs],
    ["gelu", (t) => t.gelu(), (x) => 0.5 * x * (1 + erfRef(x / Math.SQRT2)), xs],
    [
      "gelu tanh",
      (t) => t.gelu("tanh"),
      (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
      xs,
    ],
    ["silu", (t) => t.silu(), (x) => x / (1 + Math.exp(-x)), xs],
    ["softplus", (t) => t.softplus(), (x) => Math.log1p(Math.exp(x)), xs],
    ["square", (t) => t.square(), (x) => x * x, xs],
  ];
  for (const dtype of ["float32", "float64"] as const) {
    for (const [name, op, ref, inputs] of cases) {
      await t.step(`${name} ${dtype}`, () => {
        const [rtol, atol] = dtype === "float64" ? [1e-13, 1e-14] : [2e-6, 1e-6];
        const x = tensor(inputs, { dtype });
        const y = op(x);
        assert.equal(y.dtype, dtype);
        const exact = inputs.map((v) => ref(dtype === "float32" ? Math.fround(v) : v));
        assertClose(y.toTypedArray(), exact, { atol: atol, rtol: rtol, equalNaN: true }, name);
      });
    }
  }
  await t.step("known values", () => {
    const g = tensor([1, -1], { dtype: "float64" }).gelu().toTypedArray();
    assertClose(
      g,
      [0.8413447460685429, -0.15865525393145707],
      { atol: 1e-14, rtol: 1e-13, equalNaN: true },
      "gelu(±1)",
    );
  });
  await t.step("extreme arguments stay finite", () => {
    const x = tensor([-1000, -100, 100, 1000], { dtype: "float64" });
    assertClose(
      x.sigmoid().toTypedArray(),
      [0, 3.720075976020836e-44, 1, 1],
      { rtol: 1e-12, equalNaN: true },
      "sigmoid",
    );
    assertClose(
      x.softplus().toTypedArray(),
      [0, 3.720075976020836e-44, 100, 1000],
      { rtol: 1e-12, equalNaN: true },
      "softplus",
    );
    assertClose(x.tanh().toTypedArray(), [-1, -1, 1, 1], { equalNaN: true }, "tanh");
    assertClose(
      x.silu().toTypedArray(),
      [-0, -3.720075976020836e-42, 100, 1000],
      { rtol: 1e-12, equalNaN: true },
      "silu",
    );
    const f = tensor([-100, 100]);
    assert.ok(flat(f.sigmoid()).every(Number.isFinite));
    assert.ok(flat(f.softplus()).every(Number.isFinite));
  });
  await t.step("where and clamp", () => {
    const x = tensor([-2, -0.5, 0.5, 2], { dtype: "float64" });
    assert.deepEqual(x.clamp(-1, 1).toArray(), [-1, -0.5, 0.5, 1]);
    assert.deepEqual(x.clamp(0).toArray(), [0, 0, 0.5, 2]);
    assert.deepEqual(x.clamp(undefined, 0).toArray(), [-2, -0.5, 0, 0]);
    assert.deepEqual(where(x.gt(0), x, x.mul(10)).toArray(), [-20, -5, 0.5, 2]);
    assert.deepEqual(where(tensor([[1], [0]], { dtype: "int32" }), tensor([1, 2]), -1).toArray(), [[1, 2], [-1, -1]]);
    assert.deepEqual(where(tensor([1, 0, 1]), 5, tensor([7, 8, 9])).toArray(), [5, 8, 5]);
  });
});

// ---------------------------------------------------------------------------------------------
// Slicing and views.

Deno.test("slicing follows Python semantics, negative steps included", async (t) => {
  const a = arange(10);
  const cases: [number | null, number | null, number | null][] = [
    [null, null, -1],
    [8, 2, -2],
    [-3, null, null],
    [-100, 100, 3],
    [100, -100, -3],
    [5, 5, null],
    [3, -1, -1],
    [-1, -11, -1],
    [1, 8, 3],
    [null, null, -3],
    [7, 2, -2],
    [-2, -8, -2],
    [2, null, -1],
    [null, -3, -1],
    [null, null, 4],
    [-4, -1, null],
    [0, 0, -1],
    [9, 10, 5],
  ];
  for (const [start, stop, step] of cases) {
    await t.step(`a[${start ?? ""}:${stop ?? ""}:${step ?? ""}]`, () => {
      const expected = pySlice(10, start, stop, step);
      assert.deepEqual(a.slice([[start, stop, step]]).toArray(), expected);
      assert.deepEqual(a.slice([{ start, stop, step }]).toArray(), expected);
    });
  }
  await t.step("known Python results", () => {
    assert.deepEqual(a.slice([[8, 2, -2]]).toArray(), [8, 6, 4]);
    assert.deepEqual(a.slice([[null, null, -3]]).toArray(), [9, 6, 3, 0]);
    assert.deepEqual(a.slice([[3, -1, -1]]).toArray(), []);
    assert.deepEqual(a.slice([[2, null, -1]]).toArray(), [2, 1, 0]);
  });
  await t.step("2-D: an index drops the axis, null keeps it", () => {
    const m = arange(12).reshape([3, 4]);
    assert.deepEqual(m.slice([1]).toArray(), [4, 5, 6, 7]);
    assert.deepEqual(m.slice([-1, [null, null, -1]]).toArray(), [11, 10, 9, 8]);
    assert.deepEqual(m.slice([null, 2]).toArray(), [2, 6, 10]);
    assert.deepEqual(m.slice([[null, null, 2], [1, null]]).toArray(), [[1, 2, 3], [9, 10, 11]]);
    assert.deepEqual(m.slice([[null, null, -1], [null, null, -2]]).toArray(), [[11, 9], [7, 5], [3, 1]]);
    assert.deepEqual(m.slice([1, 2]).shape, []);
    assert.equal(m.slice([1, 2]).item(), 6);
    assert.deepEqual(m.slice([[5, 9]]).shape, [0, 4]);
  });
  await t.step("slices of slices compose", () => {
    const s = a.slice([[1, null, 2]]).slice([[null, null, -1]]).slice([[1, 4]]);
    // a[1::2] = [1,3,5,7,9]; [::-1] = [9,7,5,3,1]; [1:4] = [7,5,3]
    assert.deepEqual(s.toArray(), [7, 5, 3]);
  });
  await t.step("narrow, flip, split", () => {
    const m = arange(12).reshape([3, 4]);
    assert.deepEqual(m.narrow(1, 1, 2).toArray(), [[1, 2], [5, 6], [9, 10]]);
    assert.deepEqual(m.flip(0).toArray(), [[8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]]);
    assert.deepEqual(m.flip([0, 1]).slice([0]).toArray(), [11, 10, 9, 8]);
    assert.deepEqual(split(m, [1, 3], 1).map((p) => p.toArray()), [[[0], [4], [8]], [[1, 2, 3], [5, 6, 7], [
      9,
      10,
      11,
    ]]]);
    assert.deepEqual(m.split(3).map((p) => p.shape), [[1, 4], [1, 4], [1, 4]]);
  });
});

Deno.test("views share storage without copying", async (t) => {
  const base = () => arange(24, undefined, 1, { dtype: "float64" }).reshape([2, 3, 4]);
  await t.step("reshape of contiguous data is a view", () => {
    const x = base();
    const r = x.reshape([6, 4]);
    assert.equal(r.storage, x.storage);
    assert.deepEqual(r.strides, [4, 1]);
    assert.ok(r.isContiguous);
    assert.equal(x.reshape([-1]).storage, x.storage);
    assert.equal(x.unsqueeze(0).storage, x.storage);
    assert.equal(x.flatten(1).storage, x.storage);
  });
  await t.step("transpose and permute are views", () => {
    const x = base();
    const p = x.permute([2, 0, 1]);
    assert.equal(p.storage, x.storage);
    assert.deepEqual(p.shape, [4, 2, 3]);
    assert.deepEqual(p.strides, [1, 12, 4]);
    assert.equal(p.isContiguous, false);
    const tr = x.transpose();
    assert.equal(tr.storage, x.storage);
    assert.deepEqual(tr.strides, [12, 1, 4]);
    assert.deepEqual(x.transpose(0, 2).shape, [4, 3, 2]);
    const ref = indices([4, 2, 3]).map(([i, j, k]) => j * 12 + k * 4 + i);
    assert.deepEqual(flat(p), ref);
  });
  await t.step("slices with steps (and negative steps) are views", () => {
    const x = base();
    const s = x.slice([1, [null, null, 2], [null, null, -1]]);
    assert.equal(s.storage, x.storage);
    assert.deepEqual(s.shape, [2, 4]);
    assert.deepEqual(s.strides, [8, -1]);
    assert.equal(s.offset, 12 + 3);
    assert.deepEqual(s.toArray(), [[15, 14, 13, 12], [23, 22, 21, 20]]);
    const f = x.flip(1);
    assert.equal(f.storage, x.storage);
    assert.deepEqual(f.strides, [12, -4, 1]);
  });
  await t.step("expand is a view with zero strides", () => {
    const v = tensor([1, 2, 3]);
    const e = v.expand([4, 3]);
    assert.equal(e.storage, v.storage);
    assert.deepEqual(e.strides, [0, 1]);
    assert.deepEqual(e.toArray(), [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]]);
    const c = tensor([[1], [2]]).expand([2, -1, 3]);
    assert.deepEqual(c.shape, [2, 2, 3]);
    assert.deepEqual(c.strides, [0, 1, 0]);
  });
  await t.step("writes through a view reach the base", () => {
    const x = base();
    x.slice([0, [null, null, 2]]).assign(-1);
    assert.deepEqual(x.slice([0]).toArray(), [[-1, -1, -1, -1], [4, 5, 6, 7], [-1, -1, -1, -1]]);
    const m = zeros([2, 3], { dtype: "float64" });
    m.transpose().assign(tensor([[1, 2], [3, 4], [5, 6]], { dtype: "float64" }));
    assert.deepEqual(m.toArray(), [[1, 3, 5], [2, 4, 6]]);
    const r = m.reshape([6]);
    r.assign(tensor([0, 0, 0, 0, 0, 9], { dtype: "float64" }));
    assert.deepEqual(m.toArray(), [[0, 0, 0], [0, 0, 9]]);
    m.slice([[null, null, -1], 0]).assign(tensor([7, 8], { dtype: "float64" }));
    assert.deepEqual(m.toArray(), [[8, 0, 0], [7, 0, 9]]);
  });
  await t.step("contiguous() copies only when needed; reshape of a view copies", () => {
    const x = base();
    assert.equal(x.contiguous(), x);
    const tr = x.transpose();
    const c = tr.contiguous();
    assert.notEqual(c.storage, x.storage);
    assert.ok(c.isContiguous);
    assert.deepEqual(c.strides, [12, 3, 1]);
    assert.deepEqual(c.toArray(), tr.toArray());
    const r = tr.reshape([24]);
    assert.notEqual(r.storage, x.storage);
    assert.deepEqual(flat(r), flat(c));
    // A copy does not see later writes to the base.
    x.assign(0);
    assert.equal(flat(c).reduce((s, v) => s + v, 0), 276);
    // clone always copies.
    const y = base();
    const k = y.clone();
    assert.notEqual(k.storage, y.storage);
    assert.deepEqual(k.toArray(), y.toArray());
  });
  await t.step("detach shares storage", () => {
    const x = base().requireGrad();
    const d = x.detach();
    assert.equal(d.storage, x.storage);
    assert.equal(d.requiresGrad, false);
  });
});

// ---------------------------------------------------------------------------------------------
// dtypes.

Deno.test("dtype promotion", () => {
  const f32 = tensor([1, 2]);
  const f64 = tensor([1, 2], { dtype: "float64" });
  const i32 = tensor([1, 2], { dtype: "int32" });
  const bf = tensor([1, 2], { dtype: "bfloat16" });
  assert.equal(f32.add(f64).dtype, "float64");
  assert.equal(f64.mul(f32).dtype, "float64");
  assert.equal(i32.add(0.5).dtype, "float32");
  assert.deepEqual(i32.add(0.5).toArray(), [1.5, 2.5]);
  assert.equal(i32.add(2).dtype, "int32");
  assert.equal(i32.add(f32).dtype, "float32");
  assert.equal(i32.add(f64).dtype, "float64");
  assert.equal(bf.add(f32).dtype, "float32");
  assert.equal(i32.add(bf).dtype, "bfloat16");
  assert.equal(f32.add(1e300).dtype, "float32");
  assert.equal(f64.matmul(f32).dtype, "float64");
  assert.equal(i32.exp().dtype, "float32");
  assert.equal(i32.sqrt().dtype, "float32");
  assert.equal(i32.neg().dtype, "int32");
  assert.equal(i32.abs().dtype, "int32");
  assert.equal(i32.relu().dtype, "int32");
  assert.equal(f64.gt(f32).dtype, "float64");
  assert.equal(f64.cast("float32").dtype, "float32");
  assert.deepEqual(tensor([1.9, -1.9]).cast("int32").toArray(), [1, -1]);
  assert.deepEqual(concat([f64, f32.cast("float64")]).dtype, "float64");
});

Deno.test("int32 arithmetic", () => {
  const a = tensor([7, -7, 6, 0], { dtype: "int32" });
  assert.deepEqual(a.add(3).toArray(), [10, -4, 9, 3]);
  assert.deepEqual(a.sub(tensor([1, 1, 1, 1], { dtype: "int32" })).toArray(), [6, -8, 5, -1]);
  assert.deepEqual(a.mul(-2).toArray(), [-14, 14, -12, 0]);
  // Division is true division (float32), as in PyTorch and NumPy.
  assert.deepEqual(a.div(2).toArray(), [3.5, -3.5, 3, 0]);
  assert.equal(a.div(2).dtype, "float32");
  assert.deepEqual(a.div(tensor([2, 2, 4, 5], { dtype: "int32" })).toArray(), [3.5, -3.5, 1.5, 0]);
  assert.deepEqual(tensor([2, 3], { dtype: "int32" }).pow(3).toArray(), [8, 27]);
  assert.deepEqual(a.abs().toArray(), [7, 7, 6, 0]);
  assert.deepEqual(a.neg().toArray(), [-7, 7, -6, 0]);
  assert.deepEqual(a.maximum(0).toArray(), [7, 0, 6, 0]);
  assert.deepEqual(a.sum().toArray(), 6);
  assert.equal(a.sum().dtype, "int32");
  assert.deepEqual(a.cumsum(0).toArray(), [7, 0, 6, 6]);
  assert.deepEqual(a.max().toArray(), 7);
  assert.deepEqual(a.clamp(-1, 2).toArray(), [2, -1, 2, 0]);
  const m = tensor([[1, 2], [3, 4]], { dtype: "int32" });
  assert.deepEqual(m.matmul(m).toArray(), [[7, 10], [15, 22]]);
  assert.equal(m.matmul(m).dtype, "int32");
  // Large values stay exact (no float32 round trip).
  const big = tensor([16777217, 2 ** 30], { dtype: "int32" });
  assert.deepEqual(big.add(1).toArray(), [16777218, 2 ** 30 + 1]);
  assert.deepEqual(big.sum().toArray(), 16777217 + 2 ** 30);
});

Deno.test("comparisons give 1/0 without gradient", () => {
  const x = tensor([1, 2, 3], { dtype: "float64" }).requireGrad();
  const y = tensor([3, 2, 1], { dtype: "float64" });
  assert.deepEqual(x.eq(y).toArray(), [0, 1, 0]);
  assert.deepEqual(x.ne(y).toArray(), [1, 0, 1]);
  assert.deepEqual(x.lt(y).toArray(), [1, 0, 0]);
  assert.deepEqual(x.le(y).toArray(), [1, 1, 0]);
  assert.deepEqual(x.gt(y).toArray(), [0, 0, 1]);
  assert.deepEqual(x.ge(y).toArray(), [0, 1, 1]);
  assert.deepEqual(x.gt(2).toArray(), [0, 0, 1]);
  assert.deepEqual(x.le(tensor([[2], [0]], { dtype: "float64" })).toArray(), [[1, 1, 0], [0, 0, 0]]);
  assert.equal(x.gt(y).requiresGrad, false);
  assert.equal(x.gt(y).node, null);
  const n = tensor([NaN, 1]);
  assert.deepEqual(n.eq(n).toArray(), [0, 1]);
  assert.deepEqual(n.ne(n).toArray(), [1, 0]);
  assert.deepEqual(n.lt(2).toArray(), [0, 1]);
  const i = tensor([1, 5], { dtype: "int32" });
  assert.deepEqual(i.ge(3).toArray(), [0, 1]);
  assert.equal(i.ge(3).dtype, "int32");
});

Deno.test("bfloat16 storage rounds to nearest even", () => {
  // Exactly representable values round-trip.
  const exact = [0, 1, -2, 0.5, 1.5, 3.140625, 65280, 2 ** -20, -(2 ** 100)];
  assert.deepEqual(flat(tensor(exact, { dtype: "bfloat16" })), exact);
  const b = tensor([1.1], { dtype: "bfloat16" });
  assert.equal(b.dtype, "bfloat16");
  assert.ok(b.toTypedArray() instanceof Float32Array);
  // 8 significant bits: the spacing just above 1 is 2^-7.
  const ulp = 2 ** -7;
  const cases: [number, number][] = [
    [1 + ulp / 2, 1], // tie → even (1)
    [1 + 3 * ulp / 2, 1 + 2 * ulp], // tie → even (1 + 2 ulp)
    [1 + ulp / 2 + 2 ** -30, 1 + ulp], // just above the tie → up (no double rounding via float32)
    [1 + ulp / 2 - 2 ** -30, 1], // just below the tie → down
    [-(1 + ulp / 2 + 2 ** -30), -(1 + ulp)],
    [1 + 0.7 * ulp, 1 + ulp],
    [1 + 0.3 * ulp, 1],
    [1.1, 1.1015625], // 1.1 = 1 + 12.8 ulp
    [3.4e38, Infinity], // beyond the largest bfloat16 (≈3.39e38) rounds to infinity
  ];
  const got = flat(tensor(cases.map((c) => c[0]), { dtype: "bfloat16" }));
  cases.forEach(([x, want], i) => assert.equal(got[i], want, `bfloat16(${x})`));
  const special = flat(tensor([Infinity, -Infinity, NaN], { dtype: "bfloat16" }));
  assert.equal(special[0], Infinity);
  assert.equal(special[1], -Infinity);
  assert.ok(Number.isNaN(special[2]));
  // Raw bits in a Uint16Array are taken as bfloat16.
  assert.deepEqual(flat(tensor(new Uint16Array([0x3f80, 0xc000]))), [1, -2]);
  // Arithmetic results are stored in bfloat16 too.
  const s = tensor([1], { dtype: "bfloat16" }).add(tensor([ulp / 4], { dtype: "bfloat16" }));
  assert.equal(s.dtype, "bfloat16");
  assert.equal(s.item(), 1);
  assert.equal(tensor([1.1], { dtype: "bfloat16" }).cast("float32").item(), 1.1015625);
  assert.equal(tensor([1.1]).cast("bfloat16").item(), 1.1015625);
});

// ---------------------------------------------------------------------------------------------
// Reductions.

function refReduce(
  data: ArrayLike<number>,
  shape: number[],
  axes: number[],
  init: number,
  f: (acc: number, v: number) => number,
): { shape: number[]; data: number[] } {
  const keep = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Array(size(keep)).fill(init);
  const ks = stridesOf(keep);
  indices(shape).forEach((idx, flatIdx) => {
    const o = idx.reduce((s, v, i) => s + (axes.includes(i) ? 0 : v) * ks[i], 0);
    out[o] = f(out[o], data[flatIdx]);
  });
  return { shape: keep, data: out };
}

Deno.test("reductions over any axes with keepdims", async (t) => {
  const shape = [2, 3, 4];
  const host = hostRandom(24, 77);
  const x = tensor(host, { shape, dtype: "float64" });
  const axesList: (number[] | undefined)[] = [undefined, [0], [1], [2], [0, 2], [1, 2], [0, 1, 2]];
  for (const axes of axesList) {
    const ax = axes ?? [0, 1, 2];
    const tag = JSON.stringify(axes ?? "all");
    await t.step(`sum/mean/max/min/var/logsumexp over ${tag}`, () => {
      const s = refReduce(host, shape, ax, 0, (a, v) => a + v);
      const n = ax.reduce((p, a) => p * shape[a], 1);
      const mx = refReduce(host, shape, ax, -Infinity, Math.max);
      const mn = refReduce(host, shape, ax, Infinity, Math.min);
      const dropped = shape.filter((_, i) => !ax.includes(i));
      assert.deepEqual(x.sum(axes).shape, dropped);
      assert.deepEqual(x.sum(axes, true).shape, s.shape);
      assertClose(x.sum(axes).toTypedArray(), s.data, { atol: 1e-12, rtol: 1e-12, equalNaN: true }, "sum");
      assertClose(x.mean(axes, true).toTypedArray(), s.data.map((v) => v / n), {
        atol: 1e-12,
        rtol: 1e-12,
        equalNaN: true,
      }, "mean");
      assertClose(x.max(axes).toTypedArray(), mx.data, { equalNaN: true }, "max");
      assertClose(x.min(axes, true).toTypedArray(), mn.data, { equalNaN: true }, "min");
      // Negative axes mean the same thing.
      if (axes) {
        assertClose(
          x.sum(axes.map((a) => a - 3)).toTypedArray(),
          s.data,
          { atol: 1e-12, rtol: 1e-12, equalNaN: true },
          "sum negative axes",
        );
      }
      const mean = s.data.map((v) => v / n);
      const ks = stridesOf(s.shape);
      const sq = new Array(s.data.length).fill(0);
      const se = new Array(s.data.length).fill(0);
      indices(shape).forEach((idx, f) => {
        const o = idx.reduce((acc, v, i) => acc + (ax.includes(i) ? 0 : v) * ks[i], 0);
        sq[o] += (host[f] - mean[o]) ** 2;
        se[o] += Math.exp(host[f]);
      });
      assertClose(x.var(axes, { correction: 0 }).toTypedArray(), sq.map((v) => v / n), {
        atol: 1e-12,
        rtol: 1e-12,
        equalNaN: true,
      }, "var 0");
      if (n > 1) {
        assertClose(x.var(axes, { keepdims: true }).toTypedArray(), sq.map((v) => v / (n - 1)), {
          atol: 1e-12,
          rtol: 1e-12,
          equalNaN: true,
        }, "var 1");
        assert.deepEqual(x.var(axes, { keepdims: true }).shape, s.shape);
      }
      assertClose(
        x.logsumexp(axes).toTypedArray(),
        se.map(Math.log),
        { atol: 1e-12, rtol: 1e-12, equalNaN: true },
        "logsumexp",
      );
    });
  }
  await t.step("float32 sums of many elements stay accurate", () => {
    const n = 100000;
    const v = full([n], 0.1);
    assertClose([v.sum().item()], [n * Math.fround(0.1)], { rtol: 1e-5, equalNaN: true }, "sum");
    assertClose([v.mean().item()], [Math.fround(0.1)], { rtol: 1e-5, equalNaN: true }, "mean");
  });
  await t.step("reductions of non-contiguous views", () => {
    const m = x.permute([2, 0, 1]).slice([[null, null, -1]]);
    const ref = indices([4, 2, 3]).map(([i, j, k]) => host[j * 12 + k * 4 + (3 - i)]);
    assertClose(
      m.sum([1, 2]).toTypedArray(),
      [0, 1, 2, 3].map((i) => ref.slice(i * 6, i * 6 + 6).reduce((a, b) => a + b)),
      { atol: 1e-12, rtol: 1e-12, equalNaN: true },
    );
  });
  await t.step("argmax / argmin (first index on ties)", () => {
    const m = tensor([[1, 3, 3, 0], [2, 2, -1, -1], [5, 4, 6, 6]]);
    assert.deepEqual(m.argmax().toArray(), [1, 0, 2]);
    assert.deepEqual(m.argmin(-1).toArray(), [3, 2, 1]);
    assert.deepEqual(m.argmax(0).toArray(), [2, 2, 2, 2]);
    assert.deepEqual(m.argmin(0, true).toArray(), [[0, 1, 1, 1]]);
    assert.equal(m.argmax().dtype, "int32");
    assert.deepEqual(m.transpose().argmax(1).toArray(), [2, 2, 2, 2]);
    assert.deepEqual(tensor([[1, 5], [3, 2]]).argmax(1).toArray(), [1, 0]);
  });
  await t.step("cumsum", () => {
    const m = tensor([[1, 2, 3], [4, 5, 6]], { dtype: "float64" });
    assert.deepEqual(m.cumsum(1).toArray(), [[1, 3, 6], [4, 9, 15]]);
    assert.deepEqual(m.cumsum(0).toArray(), [[1, 2, 3], [5, 7, 9]]);
    assert.deepEqual(m.cumsum(-1).flip(1).toArray(), [[6, 3, 1], [15, 9, 4]]);
    assert.deepEqual(m.flip(1).cumsum(1).toArray(), [[3, 5, 6], [6, 11, 15]]);
  });
});

Deno.test("softmax, logSoftmax and logsumexp are stable", () => {
  const big = tensor([[1000, 1001, -1000], [-1e4, -1e4, -1e4]]);
  const s = big.softmax();
  const e = Math.exp(-1);
  assertClose(s.toTypedArray(), [e / (1 + e), 1 / (1 + e), 0, 1 / 3, 1 / 3, 1 / 3], {
    atol: 1e-7,
    rtol: 1e-6,
    equalNaN: true,
  }, "softmax");
  const ls = big.logSoftmax();
  assertClose(
    ls.toTypedArray(),
    [-Math.log1p(Math.exp(1)), -Math.log1p(e), -2001 - Math.log1p(e), -Math.log(3), -Math.log(3), -Math.log(3)],
    { atol: 1e-5, rtol: 1e-6, equalNaN: true },
    "logSoftmax",
  );
  assertClose(big.logsumexp(-1).toTypedArray(), [1001 + Math.log1p(e), -1e4 + Math.log(3)], {
    atol: 1e-3,
    rtol: 1e-7,
    equalNaN: true,
  }, "logsumexp");
  assert.ok(flat(tensor([1e30, 1e30]).softmax()).every((v) => Math.abs(v - 0.5) < 1e-7));
  // Rows of a softmax sum to one along the chosen axis.
  const r = t64([3, 5], 3).mul(30);
  assertClose(
    r.softmax(0).sum(0).toTypedArray(),
    [1, 1, 1, 1, 1],
    { atol: 1e-12, rtol: 1e-12, equalNaN: true },
    "softmax axis 0",
  );
  assertClose(
    r.logSoftmax().exp().sum(-1).toTypedArray(),
    [1, 1, 1],
    { atol: 1e-12, rtol: 1e-12, equalNaN: true },
    "logSoftmax",
  );
  // logsumexp of rows of −∞ is −∞, not NaN; a row with one finite entry gives that entry.
  const inf = tensor([[-Infinity, -Infinity], [0, -Infinity], [2, -Infinity]], { dtype: "float64" });
  assert.deepEqual(flat(inf.logsumexp(1)), [-Infinity, 0, 2]);
  assert.deepEqual(flat(inf.logsumexp(1, true)), [-Infinity, 0, 2]);
  assert.deepEqual(flat(tensor([0, -Infinity]).logSoftmax()), [0, -Infinity]);
  assert.deepEqual(flat(tensor([0, -Infinity]).softmax()), [1, 0]);
  assert.deepEqual(flat(tensor([Infinity, 0]).logsumexp()), [Infinity]);
});

// ---------------------------------------------------------------------------------------------
// Matmul, shape and index ops.

Deno.test("matmul against loops (batched, broadcast, 1-D)", async (t) => {
  const ref = (a: number[], b: number[], m: number, k: number, n: number) => {
    const out = new Array(m * n).fill(0);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[i * n + j] += a[i * k + p] * b[p * n + j];
    }
    return out;
  };
  await t.step("2-D", () => {
    const a = t64([3, 4], 1);
    const b = t64([4, 2], 2);
    assertClose(a.matmul(b).toTypedArray(), ref(flat(a), flat(b), 3, 4, 2), {
      atol: 1e-12,
      rtol: 1e-12,
      equalNaN: true,
    });
  });
  await t.step("broadcast batch [2,1,3,4]·[3,4,2] → [2,3,3,2]", () => {
    const a = t64([2, 1, 3, 4], 3);
    const b = t64([3, 4, 2], 4);
    const out = a.matmul(b);
    assert.deepEqual(out.shape, [2, 3, 3, 2]);
    const ha = flat(a);
    const hb = flat(b);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        expected.push(...ref(ha.slice(i * 12, i * 12 + 12), hb.slice(j * 8, j * 8 + 8), 3, 4, 2));
      }
    }
    assertClose(out.toTypedArray(), expected, { atol: 1e-12, rtol: 1e-12, equalNaN: true });
  });
  await t.step("1-D operands", () => {
    const v = tensor([1, 2, 3], { dtype: "float64" });
    const m = tensor([[1, 0], [0, 1], [1, 1]], { dtype: "float64" });
    assert.deepEqual(v.matmul(v).shape, []);
    assert.equal(v.matmul(v).item(), 14);
    assert.deepEqual(v.matmul(m).toArray(), [4, 5]);
    assert.deepEqual(m.transpose().matmul(v).toArray(), [4, 5]);
    assert.deepEqual(v.matmul(m.expand([2, 3, 2])).shape, [2, 2]);
  });
  await t.step("non-contiguous operands and float32", () => {
    const a = t64([4, 3], 5);
    const b = t64([2, 4], 6);
    const out = a.transpose().matmul(b.transpose());
    assertClose(out.toTypedArray(), ref(flat(a.transpose()), flat(b.transpose()), 3, 4, 2), {
      atol: 1e-12,
      rtol: 1e-12,
      equalNaN: true,
    });
    const o32 = a.cast("float32").transpose().matmul(b.cast("float32").transpose());
    assert.equal(o32.dtype, "float32");
    assertClose(o32.toTypedArray(), flat(out), { atol: 1e-6, rtol: 1e-5, equalNaN: true });
  });
});

Deno.test("concat, stack, pad, roll", () => {
  const a = tensor([[1, 2], [3, 4]]);
  const b = tensor([[5], [6]]);
  assert.deepEqual(concat([a, b], 1).toArray(), [[1, 2, 5], [3, 4, 6]]);
  assert.deepEqual(concat([a, a.slice([[0, 1]])], 0).toArray(), [[1, 2], [3, 4], [1, 2]]);
  assert.deepEqual(concat([a.transpose(), b.transpose()], 0).toArray(), [[1, 3], [2, 4], [5, 6]]);
  assert.deepEqual(stack([tensor([1, 2]), tensor([3, 4])]).toArray(), [[1, 2], [3, 4]]);
  assert.deepEqual(stack([tensor([1, 2]), tensor([3, 4])], 1).toArray(), [[1, 3], [2, 4]]);
  assert.deepEqual(stack([tensor([1, 2]), tensor([3, 4])], -1).shape, [2, 2]);
  const v = tensor([1, 2, 3]);
  assert.deepEqual(v.pad([[1, 2]]).toArray(), [0, 1, 2, 3, 0, 0]);
  assert.deepEqual(v.pad([[1, 0]], "constant", -1).toArray(), [-1, 1, 2, 3]);
  assert.deepEqual(v.pad([[2, 3]], "periodic").toArray(), [2, 3, 1, 2, 3, 1, 2, 3]);
  assert.deepEqual(a.pad([[1, 0], [0, 1]]).toArray(), [[0, 0, 0], [1, 2, 0], [3, 4, 0]]);
  assert.deepEqual(a.pad([[1, 1]], "periodic").toArray(), [[2, 1, 2, 1], [4, 3, 4, 3]]);
  assert.deepEqual(a.pad([[1, 1], [1, 0]], "periodic").toArray(), [[4, 3, 4], [2, 1, 2], [4, 3, 4], [2, 1, 2]]);
  assert.deepEqual(v.roll(1, 0).toArray(), [3, 1, 2]);
  assert.deepEqual(v.roll(-1, 0).toArray(), [2, 3, 1]);
  assert.deepEqual(v.roll(4, -1).toArray(), [3, 1, 2]);
  assert.deepEqual(v.roll(0, 0).toArray(), [1, 2, 3]);
  assert.deepEqual(a.roll(1, 1).toArray(), [[2, 1], [4, 3]]);
  assert.deepEqual(a.squeeze().shape, [2, 2]);
  assert.deepEqual(tensor([[[1], [2]]]).squeeze().toArray(), [1, 2]);
  assert.deepEqual(tensor([[[1], [2]]]).squeeze(-1).shape, [1, 2]);
  assert.deepEqual(a.unsqueeze(1).shape, [2, 1, 2]);
  assert.deepEqual(a.unsqueeze(-1).shape, [2, 2, 1]);
});

Deno.test("gather, scatterAdd, indexSelect, embedding", () => {
  const i32 = (v: NestedArray) => tensor(v, { dtype: "int32" });
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(gather(x, 1, i32([[2, 0], [1, 1]])).toArray(), [[3, 1], [5, 5]]);
  assert.deepEqual(x.gather(0, i32([[1, 0, 1]])).toArray(), [[4, 2, 6]]);
  assert.deepEqual(x.transpose().gather(1, i32([[1], [0], [1]])).toArray(), [[4], [2], [6]]);
  assert.deepEqual(
    scatterAdd(zeros([3]), 0, i32([0, 0, 2, 0]), tensor([1, 2, 3, 4])).toArray(),
    [7, 0, 3],
  );
  assert.deepEqual(
    ones([2, 3]).scatterAdd(1, i32([[2, 2], [0, 1]]), tensor([[1, 2, 9], [3, 4, 9]])).toArray(),
    [[1, 1, 4], [4, 5, 1]],
  );
  assert.deepEqual(indexSelect(x, 0, i32([1, 1, 0])).toArray(), [[4, 5, 6], [4, 5, 6], [1, 2, 3]]);
  assert.deepEqual(x.indexSelect(1, i32([2, 0])).toArray(), [[3, 1], [6, 4]]);
  const w = tensor([[0, 0.5], [1, 1.5], [2, 2.5]]);
  const e = embedding(w, i32([[2, 0], [1, 2]]));
  assert.deepEqual(e.shape, [2, 2, 2]);
  assert.deepEqual(e.toArray(), [[[2, 2.5], [0, 0.5]], [[1, 1.5], [2, 2.5]]]);
  assert.deepEqual(embedding(w, i32(1)).toArray(), [1, 1.5]);
});

// ---------------------------------------------------------------------------------------------
// FFT.

/** Naive DFT of complex data along `axis` of `shape` (data as [re, im] pairs, row-major). */
function naiveDft(re: number[], im: number[], shape: number[], axis: number, inverse: boolean): [number[], number[]] {
  const n = shape[axis];
  const st = stridesOf(shape);
  const outRe = new Array(re.length).fill(0);
  const outIm = new Array(re.length).fill(0);
  const sign = inverse ? 1 : -1;
  indices(shape).forEach((idx, f) => {
    const k = idx[axis];
    let sr = 0;
    let si = 0;
    for (let j = 0; j < n; j++) {
      const g = f + (j - k) * st[axis];
      const ang = (sign * 2 * Math.PI * j * k) / n;
      sr += re[g] * Math.cos(ang) - im[g] * Math.sin(ang);
      si += re[g] * Math.sin(ang) + im[g] * Math.cos(ang);
    }
    outRe[f] = inverse ? sr / n : sr;
    outIm[f] = inverse ? si / n : si;
  });
  return [outRe, outIm];
}

/** Interleaves the first `m` bins of `axis` as [re, im] pairs: the layout rfft returns. */
function halfSpectrum(re: number[], im: number[], shape: number[], axis: number, m: number): number[] {
  const out: number[] = [];
  const st = stridesOf(shape);
  const half = shape.map((d, i) => (i === axis ? m : d));
  for (const idx of indices(half)) {
    const f = idx.reduce((s, v, i) => s + v * st[i], 0);
    out.push(re[f], im[f]);
  }
  return out;
}

Deno.test("FFT against a naive DFT", async (t) => {
  for (const n of [1, 2, 5, 6, 8, 9]) {
    await t.step(`rfft n=${n}`, () => {
      const x = t64([2, n], n);
      const [re, im] = naiveDft(flat(x), new Array(2 * n).fill(0), [2, n], 1, false);
      const m = Math.floor(n / 2) + 1;
      const y = rfft(x);
      assert.deepEqual(y.shape, [2, m, 2]);
      assertClose(
        y.toTypedArray(),
        halfSpectrum(re, im, [2, n], 1, m),
        { atol: 1e-12, rtol: 1e-12, equalNaN: true },
        "rfft",
      );
      // irfft(rfft(x), n) gives x back for odd and even n.
      assertClose(
        irfft(y, n).toTypedArray(),
        flat(x),
        { atol: 1e-12, rtol: 1e-12, equalNaN: true },
        "irfft round trip",
      );
    });
  }
  await t.step("rfft along axis 0 in float32", () => {
    const x = t64([6, 2], 11);
    const [re, im] = naiveDft(flat(x), new Array(12).fill(0), [6, 2], 0, false);
    const y = rfft(x.cast("float32"), 0);
    assert.deepEqual(y.shape, [4, 2, 2]);
    assertClose(
      y.toTypedArray(),
      halfSpectrum(re, im, [6, 2], 0, 4),
      { atol: 1e-5, rtol: 1e-5, equalNaN: true },
      "rfft f32",
    );
  });
  await t.step("complex fft and ifft", () => {
    const z = t64([3, 5, 2], 12);
    const h = flat(z);
    const re = h.filter((_, i) => i % 2 === 0);
    const im = h.filter((_, i) => i % 2 === 1);
    for (const axis of [0, 1]) {
      for (const inverse of [false, true]) {
        const [r, i] = naiveDft(re, im, [3, 5], axis, inverse);
        const got = inverse ? ifft(z, axis) : fft(z, axis);
        assertClose(
          got.toTypedArray(),
          r.flatMap((v, k) => [v, i[k]]),
          { atol: 1e-12, rtol: 1e-12, equalNaN: true },
          `axis ${axis} inverse ${inverse}`,
        );
      }
    }
    assertClose(ifft(fft(z)).toTypedArray(), h, { atol: 1e-12, rtol: 1e-12, equalNaN: true }, "ifft(fft(z))");
  });
  await t.step("irfft with n: truncation and zero-padding as NumPy", () => {
    // irfft of bins [a0, a1, a2] with n=4: x_j = (a0 + 2 Re(a1 e^{iπj/2}) + a2 (-1)^j) / 4.
    const z = tensor([[[4, 0], [1, 2], [3, 0]]], { dtype: "float64" });
    const ref = (n: number, bins: [number, number][]) =>
      Array.from({ length: n }, (_, j) => {
        let s = bins[0][0];
        for (let k = 1; k < bins.length; k++) {
          const w = n % 2 === 0 && k === n / 2 ? 1 : 2;
          const ang = (2 * Math.PI * j * k) / n;
          s += w * (bins[k][0] * Math.cos(ang) - bins[k][1] * Math.sin(ang));
        }
        return s / n;
      });
    assertClose(
      irfft(z).toTypedArray(),
      ref(4, [[4, 0], [1, 2], [3, 0]]),
      { atol: 1e-12, rtol: 1e-12, equalNaN: true },
      "default n = 4",
    );
    assertClose(irfft(z, 5).toTypedArray(), ref(5, [[4, 0], [1, 2], [3, 0]]), {
      atol: 1e-12,
      rtol: 1e-12,
      equalNaN: true,
    }, "n = 5");
    assertClose(
      irfft(z, 2).toTypedArray(),
      ref(2, [[4, 0], [1, 0]]),
      { atol: 1e-12, rtol: 1e-12, equalNaN: true },
      "n = 2 (truncated)",
    );
    assertClose(irfft(z, 8).toTypedArray(), ref(8, [[4, 0], [1, 2], [3, 0]]), {
      atol: 1e-12,
      rtol: 1e-12,
      equalNaN: true,
    }, "n = 8 (zero-padded)");
  });
  await t.step("rfftn over 2 and 3 axes against repeated naive DFTs", () => {
    for (const shape of [[3, 4], [4, 5], [2, 3, 4], [3, 2, 5]]) {
      const x = t64(shape, size(shape));
      let re = flat(x);
      let im = new Array(re.length).fill(0);
      for (let a = 0; a < shape.length; a++) [re, im] = naiveDft(re, im, shape, a, false);
      const last = shape.length - 1;
      const m = Math.floor(shape[last] / 2) + 1;
      const y = rfftn(x);
      assert.deepEqual(y.shape, [...shape.slice(0, last), m, 2]);
      assertClose(
        y.toTypedArray(),
        halfSpectrum(re, im, shape, last, m),
        { atol: 1e-11, rtol: 1e-11, equalNaN: true },
        `rfftn ${shape}`,
      );
      assertClose(
        irfftn(y, undefined, shape).toTypedArray(),
        flat(x),
        { atol: 1e-12, rtol: 1e-12, equalNaN: true },
        `irfftn ${shape}`,
      );
      if (shape[last] % 2 === 0) {
        assertClose(
          irfftn(y).toTypedArray(),
          flat(x),
          { atol: 1e-12, rtol: 1e-12, equalNaN: true },
          `irfftn default ${shape}`,
        );
      }
    }
  });
  await t.step("rfftn / irfftn over a subset of axes", () => {
    const x = t64([2, 3, 4], 21);
    const y = rfftn(x, [0, 2]);
    assert.deepEqual(y.shape, [2, 3, 3, 2]);
    assertClose(
      irfftn(y, [0, 2], [2, 4]).toTypedArray(),
      flat(x),
      { atol: 1e-12, rtol: 1e-12, equalNaN: true },
      "round trip [0,2]",
    );
    const one = rfftn(x, [-1]);
    assertClose(
      one.toTypedArray(),
      flat(rfft(x)),
      { atol: 1e-12, rtol: 1e-12, equalNaN: true },
      "rfftn over one axis is rfft",
    );
    assertClose(
      irfftn(rfftn(x, [1]), [1], [3]).toTypedArray(),
      flat(x),
      { atol: 1e-12, rtol: 1e-12, equalNaN: true },
      "odd single axis",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Random numbers.

Deno.test("random streams are reproducible", async (t) => {
  await t.step("same seed, same numbers; different seeds differ", () => {
    assert.deepEqual(flat(rand([5], { seed: 1 })), flat(rand([5], { seed: 1 })));
    assert.deepEqual(flat(randn([2, 3], { seed: 9 })), flat(randn([2, 3], { seed: 9 })));
    assert.notDeepEqual(flat(rand([5], { seed: 1 })), flat(rand([5], { seed: 2 })));
    assert.notDeepEqual(flat(rand([5], { seed: 1 })), flat(randn([5], { seed: 1 })));
  });
  await t.step("float64 and float32 draw the same stream", () => {
    const a = flat(randn([6], { seed: 3, dtype: "float64" }));
    const b = flat(randn([6], { seed: 3 }));
    assertClose(b, a.map(Math.fround), { atol: 1e-6, rtol: 1e-6, equalNaN: true });
    assertClose(flat(rand([6], { seed: 3 })), flat(rand([6], { seed: 3, dtype: "float64" })), {
      atol: 1e-7,
      rtol: 1e-6,
      equalNaN: true,
    });
  });
  await t.step("a Generator advances through its stream in blocks of 4", () => {
    const g = new Generator(5);
    assert.equal(g.seed, 5);
    const first = flat(rand([3], { generator: g }));
    assert.equal(g.offset, 4);
    const second = flat(rand([2], { generator: g }));
    assert.equal(g.offset, 8);
    const whole = flat(rand([8], { seed: 5 }));
    assert.deepEqual(first, whole.slice(0, 3));
    assert.deepEqual(second, whole.slice(4, 6));
    assert.notDeepEqual(first.slice(0, 2), second);
    // A new generator with the same seed replays the stream.
    const h = new Generator(5);
    assert.deepEqual(flat(rand([3], { generator: h })), first);
    assert.deepEqual(flat(rand([2], { generator: h })), second);
  });
  await t.step("manualSeed resets the default generator", () => {
    manualSeed(123);
    const a = flat(randn([4]));
    const b = flat(randn([4]));
    manualSeed(123);
    assert.deepEqual(flat(randn([4])), a);
    assert.deepEqual(flat(randn([4])), b);
    assert.notDeepEqual(a, b);
  });
  await t.step("distributions", () => {
    const u = flat(rand([20000], { seed: 4, dtype: "float64" }));
    assert.ok(u.every((v) => v > 0 && v < 1), "uniform in (0, 1)");
    const mu = u.reduce((a, b) => a + b) / u.length;
    assert.ok(Math.abs(mu - 0.5) < 0.01, `uniform mean ${mu}`);
    const z = randn([20000], { seed: 5, dtype: "float64" });
    assert.ok(Math.abs(z.mean().item()) < 0.03, "normal mean");
    assert.ok(Math.abs(z.var().item() - 1) < 0.05, "normal variance");
    const frac = flat(z.abs().lt(1)).reduce((a, b) => a + b) / 20000;
    assert.ok(Math.abs(frac - 0.6827) < 0.015, `P(|z|<1) = ${frac}`);
    const r = randint(-2, 3, [1000], { seed: 6 });
    assert.equal(r.dtype, "int32");
    const values = flat(r);
    assert.ok(values.every((v) => Number.isInteger(v) && v >= -2 && v < 3));
    assert.deepEqual([...new Set(values)].sort(), [-1, -2, 0, 1, 2].sort());
  });
  await t.step("requiresGrad option", () => {
    assert.equal(randn([2], { seed: 1, requiresGrad: true }).requiresGrad, true);
  });
});

Deno.test("console.log shows a tensor's own values, not its storage", () => {
  const base = tensor([[1, 2], [3, 4]]);
  const view = base.transpose();
  assert.equal(Deno.inspect(view), `Tensor([2,2], float32, ${view.backend.name}, [[1,3],[2,4]])`);
  assert.equal(Deno.inspect(base.slice([1])), `Tensor([2], float32, ${base.backend.name}, [3,4])`);
  assert.equal(
    Deno.inspect([tensor([1]).requireGrad()]),
    `[ Tensor([1], float32, ${base.backend.name}, requiresGrad, [1]) ]`,
  );
});

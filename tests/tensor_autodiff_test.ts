/**
 * Reverse-mode autodiff and the function transforms: backward()/.grad, retainGrad, detach,
 * noGrad, freed graphs, grad/valueAndGrad/vjp/jvp/jacobian/hvp against finite differences,
 * gradients of gradients (Hessian-vector products, second derivatives of an MLP with respect to
 * its input, a PDE-residual loss trained through grad(u)), custom functions, checkpointing, and
 * tidy scopes.
 */

import assert from "node:assert/strict";
import {
  AutodiffError,
  checkpoint,
  customFunction,
  enableGrad,
  getDefaultBackend,
  grad,
  gradcheck,
  GradcheckError,
  hvp,
  isGradEnabled,
  jacobian,
  jvp,
  keep,
  noGrad,
  ones,
  randn,
  type Tensor,
  tensor,
  tidy,
  valueAndGrad,
  vjp,
  zeros,
} from "../mod.ts";
import { assertClose } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Helpers.

const f64 = (data: number[] | number[][], requiresGrad = false) => tensor(data, { dtype: "float64", requiresGrad });

function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

function rn(shape: number[], seed: number): Tensor {
  return randn(shape, { dtype: "float64", seed });
}

/** A float64 copy of `x` with element `j` moved by `delta` (a fresh tensor, no graph). */
function bump(x: Tensor, j: number, delta: number): Tensor {
  const host = Float64Array.from(x.toTypedArray());
  host[j] += delta;
  return tensor(host, { shape: x.shape, dtype: "float64" });
}

function memory(): number {
  return getDefaultBackend().memory().current;
}

// The tanh MLP of the brief: W2 · tanh(W1 x + b1), built from tensor ops.
interface Mlp {
  w1: Tensor; // [h, 1]
  b1: Tensor; // [h]
  w2: Tensor; // [1, h]
}

function mlpParams(seed: number, hidden = 5): Mlp {
  return { w1: rn([hidden, 1], seed), b1: rn([hidden], seed + 1), w2: rn([1, hidden], seed + 2) };
}

/** u(x) for x of shape [n, 1]: one output per point, shape [n, 1]. */
function mlp(p: Mlp, x: Tensor): Tensor {
  return x.matmul(p.w1.transpose()).add(p.b1).tanh().matmul(p.w2.transpose());
}

/** Closed-form u, u' and u'' of the MLP at scalar x (host arithmetic). */
function mlpRef(p: Mlp, x: number): [number, number, number] {
  const a = flat(p.w1);
  const b = flat(p.b1);
  const w = flat(p.w2);
  let u = 0, du = 0, d2u = 0;
  for (let j = 0; j < a.length; j++) {
    const t = Math.tanh(a[j] * x + b[j]);
    u += w[j] * t;
    du += w[j] * a[j] * (1 - t * t);
    d2u += w[j] * a[j] * a[j] * (-2 * t * (1 - t * t));
  }
  return [u, du, d2u];
}

// ---------------------------------------------------------------------------------------------
// backward() and .grad

Deno.test("backward() accumulates into .grad of leaves", async (t) => {
  await t.step("a scalar backward and accumulation over two calls", () => {
    const x = f64([1, 2, 3], true);
    x.mul(x).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
    x.mul(3).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [5, 7, 9]);
    x.zeroGrad();
    assert.equal(x.grad, null);
    x.sin().sum().backward();
    assertClose(flat(x.grad!), [1, 2, 3].map(Math.cos), { rtol: 1e-15 });
  });
  await t.step("a non-scalar output takes an explicit gradient", () => {
    const x = f64([1, 2], true);
    x.mul(x).backward(f64([10, 1]));
    assert.deepEqual(x.grad!.toArray(), [20, 4]);
  });
  await t.step("gradients of operands are independent tensors", () => {
    // add passes one gradient to both operands; each leaf must own its .grad.
    const a = f64([1, 2], true);
    const b = f64([3, 4], true);
    a.add(b).sum().backward();
    assert.notEqual(a.grad, b.grad);
    a.zeroGrad();
    assert.deepEqual(b.grad!.toArray(), [1, 1]);
    // A gradient from a broadcast (sum's backward expands a scalar) is a real, contiguous buffer.
    assert.ok(b.grad!.isContiguous);
    b.grad!.assign(f64([5, 6]));
    assert.deepEqual(b.grad!.toArray(), [5, 6]);
  });
  await t.step("the caller's gradient tensor is not aliased by .grad", () => {
    const x = f64([1, 2], true);
    const g = f64([3, 4]);
    x.add(0).backward(g);
    x.zeroGrad();
    assert.deepEqual(g.toArray(), [3, 4]);
    const y = f64([1, 2], true);
    y.add(0).backward(g);
    y.grad!.assign(0);
    assert.deepEqual(g.toArray(), [3, 4]);
  });
  await t.step("broadcasting sums gradients back to the operand's shape", () => {
    const a = tensor([[1], [2], [3]], { dtype: "float64", requiresGrad: true });
    const b = f64([10, 20], true);
    a.mul(b).sum().backward();
    assert.deepEqual(a.grad!.toArray(), [[30], [30], [30]]);
    assert.deepEqual(b.grad!.toArray(), [6, 6]);
  });
  await t.step("a float32 leaf used in float64 math gets a float32 gradient", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    x.cast("float64").mul(f64([3, 4])).sum().backward();
    assert.equal(x.grad!.dtype, "float32");
    assert.deepEqual(x.grad!.toArray(), [3, 4]);
  });
  await t.step("gradients have their input's dtype when ops promote", () => {
    const x32 = tensor([1, 2]);
    const y64 = f64([3, 4]);
    assert.equal(grad((x: Tensor) => x.mul(y64).sum())(x32).dtype, "float32");
    assert.equal(grad((x: Tensor) => x.matmul(y64))(x32).dtype, "float32");
    assert.equal(grad((x: Tensor) => x.add(y64).exp().sum())(x32).dtype, "float32");
    const [, back] = vjp((x: Tensor) => x.exp().mul(y64), x32);
    const [g] = back(f64([1, 1]));
    assert.equal(g.dtype, "float32");
    assertClose(flat(g), [3 * Math.E, 4 * Math.exp(2)], { rtol: 1e-6 });
    const h = tensor([1, 2], { requiresGrad: true }).mul(2).retainGrad();
    h.mul(y64).sum().backward();
    assert.equal(h.grad!.dtype, "float32");
  });
  await t.step("ties share the gradient of max and maximum", () => {
    const x = f64([1, 3, 3], true);
    x.max().backward();
    assert.deepEqual(x.grad!.toArray(), [0, 0.5, 0.5]);
    const y = f64([1, 3], true);
    y.maximum(f64([1, 1])).sum().backward();
    assert.deepEqual(y.grad!.toArray(), [0.5, 1]);
  });
  await t.step("a leaf used twice and a diamond graph", () => {
    const x = f64([2], true);
    const h = x.mul(3);
    h.mul(h).add(h.sin()).sum().backward(); // d/dx (9x² + sin 3x) = 18x + 3cos 3x
    assertClose(flat(x.grad!), [36 + 3 * Math.cos(6)], { rtol: 1e-14 });
  });
});

Deno.test("retainGrad keeps .grad of a non-leaf", () => {
  const x = f64([1, 2], true);
  const h = x.mul(3).retainGrad();
  const k = h.exp();
  h.mul(h).sum().add(k.sum()).backward();
  // d/dh (h² + e^h) = 2h + e^h, with h = 3x
  assertClose(flat(h.grad!), [3, 6].map((v) => 2 * v + Math.exp(v)), { rtol: 1e-12 });
  assert.equal(k.grad, null, "a non-leaf that did not retainGrad keeps no .grad");
  assertClose(flat(x.grad!), [1, 2].map((v) => 3 * (6 * v + Math.exp(3 * v))), { rtol: 1e-12 });
});

Deno.test("detach and noGrad cut the graph", async (t) => {
  await t.step("detach", () => {
    const x = f64([1, 2], true);
    const d = x.mul(2).detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.node, null);
    x.mul(d).sum().backward(); // d is a constant: gradient is d, not 4x
    assert.deepEqual(x.grad!.toArray(), [2, 4]);
  });
  await t.step("noGrad records nothing and restores the mode", () => {
    const x = f64([1], true);
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      return x.mul(2).exp();
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
    assert.equal(isGradEnabled(), true);
    const z = noGrad(() => enableGrad(() => x.mul(2)));
    assert.equal(z.requiresGrad, true);
    assert.throws(() =>
      noGrad(() => {
        throw new Error("boom");
      }), /boom/);
    assert.equal(isGradEnabled(), true, "mode restored after a throw");
  });
  await t.step("requireGrad on int32 errors; only leaves can stop requiring grad", () => {
    assert.throws(() => tensor([1], { dtype: "int32" }).requireGrad(), AutodiffError);
    assert.throws(() => tensor([1], { dtype: "int32", requiresGrad: true }), AutodiffError);
    const h = f64([1], true).mul(2);
    assert.throws(() => h.requireGrad(false), AutodiffError);
    const leaf = f64([1], true).requireGrad(false);
    assert.equal(leaf.requiresGrad, false);
  });
  await t.step("comparisons and argmax carry no gradient", () => {
    const x = f64([1, 2], true);
    assert.equal(x.gt(1).requiresGrad, false);
    assert.equal(x.argmax().requiresGrad, false);
  });
});

Deno.test("a freed graph cannot be differentiated twice unless retained", async (t) => {
  await t.step("second backward through the freed graph errors", () => {
    const x = f64([1, 2], true);
    const y = x.exp().sum();
    y.backward();
    assert.throws(() => y.backward(), (e: unknown) => {
      assert.ok(e instanceof AutodiffError);
      assert.match((e as Error).message, /^backward: .*already freed.*retainGraph/);
      return true;
    });
  });
  await t.step("a second output sharing the freed part errors too", () => {
    const x = f64([1, 2], true);
    const h = x.exp();
    h.sum().backward();
    assert.throws(() => h.mul(2).sum().backward(), AutodiffError);
  });
  await t.step("retainGraph allows it, and gradients accumulate", () => {
    const x = f64([1, 2], true);
    const y = x.exp().sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assertClose(flat(x.grad!), [1, 2].map((v) => 2 * Math.exp(v)), { rtol: 1e-15 });
  });
  await t.step("createGraph makes .grad differentiable", () => {
    const x = f64([2], true);
    x.pow(3).sum().backward(undefined, { createGraph: true });
    const g = x.grad!;
    assert.equal(g.requiresGrad, true);
    assert.deepEqual(g.toArray(), [12]);
    x.grad = null; // keep g alive (zeroGrad would dispose it)
    g.sum().backward();
    assert.deepEqual(x.grad!.toArray(), [12]); // d/dx 3x² = 6x
  });
});

// ---------------------------------------------------------------------------------------------
// Transforms.

Deno.test("grad and valueAndGrad with argnums and trees", async (t) => {
  await t.step("single argument", () => {
    const g = grad((x: Tensor) => x.pow(3).sum())(f64([1, 2]));
    assert.deepEqual(g.toArray(), [3, 12]);
    const [v, g2] = valueAndGrad((x: Tensor) => x.mul(x).sum())(f64([1, 2]));
    assert.equal(v.item(), 5);
    assert.deepEqual(g2.toArray(), [2, 4]);
  });
  await t.step("argnums picks positional arguments", () => {
    const f = (a: Tensor, b: Tensor) => a.mul(b.square()).sum();
    const a = f64([1, 2]);
    const b = f64([3, 4]);
    assert.deepEqual(grad(f)(a, b).toArray(), [9, 16]);
    assert.deepEqual(grad(f, { argnums: 1 })(a, b).toArray(), [6, 16]);
    const both = grad(f, { argnums: [0, 1] })(a, b);
    assert.ok(Array.isArray(both));
    assert.deepEqual(both.map((g: Tensor) => g.toArray()), [[9, 16], [6, 16]]);
    const [v, gs] = valueAndGrad(f, { argnums: [1] })(a, b);
    assert.equal(v.item(), 41);
    assert.deepEqual(gs[0].toArray(), [6, 16]);
  });
  await t.step("array and object trees keep their structure", () => {
    const f = (p: { w: Tensor; b: Tensor[] }, x: Tensor) => p.w.mul(x).add(p.b[0]).square().sum().add(p.b[1].sum());
    const p = { w: f64([1, 2]), b: [f64([0.5, -1]), f64([3])] };
    const x = f64([2, 1]);
    const g = grad(f)(p, x);
    // r = w x + b0 = [2.5, 1]; d/dw = 2 r x, d/db0 = 2 r, d/db1 = 1
    assert.deepEqual(Object.keys(g).sort(), ["b", "w"]);
    assert.deepEqual(g.w.toArray(), [10, 2]);
    assert.deepEqual(g.b[0].toArray(), [5, 2]);
    assert.deepEqual(g.b[1].toArray(), [1]);
    const gl = grad((list: Tensor[]) => list[0].mul(list[1]).sum())([f64([1, 2]), f64([3, 4])]);
    assert.deepEqual(gl.map((v: Tensor) => v.toArray()), [[3, 4], [1, 2]]);
  });
  await t.step("a gradient is zeros when the output does not depend on the argument", () => {
    const g = grad((_a: Tensor, b: Tensor) => b.sum(), { argnums: [0] })(f64([1, 2]), f64([3]));
    assert.deepEqual(g[0].toArray(), [0, 0]);
  });
  await t.step("inputs are not modified and need not require grad", () => {
    const x = f64([1, 2]);
    grad((v: Tensor) => v.square().sum())(x);
    assert.equal(x.requiresGrad, false);
    assert.equal(x.grad, null);
  });
  await t.step("grad nests for higher derivatives", () => {
    const d2 = grad((x: Tensor) => grad((y: Tensor) => y.pow(3).sum())(x).sum());
    assert.deepEqual(d2(f64([2, -1])).toArray(), [12, -6]);
    const d3 = grad((x: Tensor) => d2(x).sum());
    assert.deepEqual(d3(f64([2, -1])).toArray(), [6, 6]);
  });
});

Deno.test("vjp, jvp and jacobian match finite differences", async (t) => {
  const f = (x: Tensor) => x.sin().mul(x.sum()).matmul(f64([[1, 2], [0, 1], [3, -1]]));
  const x0 = rn([3], 7);
  const h = 1e-6;
  const fd = (tangent: Tensor) => {
    const up = noGrad(() => f(x0.add(tangent.mul(h))));
    const down = noGrad(() => f(x0.sub(tangent.mul(h))));
    return flat(up.sub(down).div(2 * h));
  };
  await t.step("vjp called twice gives the same, correct cotangents", () => {
    const [y, back] = vjp(f, x0);
    assert.deepEqual(y.shape, [2]);
    const c1 = f64([1, 0]);
    const c2 = f64([0.3, -2]);
    const [g1] = back(c1);
    const [g2] = back(c2);
    const [g1again] = back(c1);
    assert.deepEqual(flat(g1again), flat(g1));
    // Row i of the Jacobian by finite differences along basis vectors.
    const jac = [0, 1, 2].map((j) => fd(bump(zeros([3], { dtype: "float64" }), j, 1)));
    assertClose(flat(g1), jac.map((col) => col[0]), { atol: 1e-8, rtol: 1e-7 }, "vjp e0");
    assertClose(flat(g2), jac.map((col) => 0.3 * col[0] - 2 * col[1]), { atol: 1e-8, rtol: 1e-7 }, "vjp c2");
  });
  await t.step("vjp with several and tree primals", () => {
    const [y, back] = vjp((a: Tensor, p: { b: Tensor }) => a.mul(p.b), f64([1, 2]), { b: f64([3, 4]) });
    assert.deepEqual(y.toArray(), [3, 8]);
    const [ga, gp] = back(f64([1, 1])) as [Tensor, { b: Tensor }];
    assert.deepEqual(ga.toArray(), [3, 4]);
    assert.deepEqual(gp.b.toArray(), [1, 2]);
  });
  await t.step("jvp", () => {
    const v = rn([3], 8);
    const [y, dy] = jvp(f, [x0], [v]);
    assertClose(flat(y), flat(noGrad(() => f(x0))), {}, "primal out");
    assertClose(flat(dy), fd(v), { atol: 1e-8, rtol: 1e-7 }, "tangent out");
    const [, d2] = jvp((a: Tensor, b: Tensor) => a.mul(b).sum(), [f64([1, 2]), f64([3, 4])], [
      f64([1, 0]),
      f64([0, 1]),
    ]);
    assert.equal(d2.item(), 3 + 2);
  });
  await t.step("jacobian", () => {
    const J = jacobian(f, x0);
    assert.deepEqual(J.shape, [2, 3]);
    const cols = [0, 1, 2].map((j) => fd(bump(zeros([3], { dtype: "float64" }), j, 1)));
    assertClose(flat(J), [0, 1].flatMap((i) => cols.map((c) => c[i])), { atol: 1e-8, rtol: 1e-7 }, "jacobian");
    const J2 = jacobian((m: Tensor) => m.square().sum(0), f64([[1, 2], [3, 4], [5, 6]]));
    assert.deepEqual(J2.shape, [2, 3, 2]);
    assert.deepEqual(J2.toArray(), [[[2, 0], [6, 0], [10, 0]], [[0, 4], [0, 8], [0, 12]]]);
  });
});

Deno.test("Hessian-vector products match finite differences of the gradient", () => {
  const a = rn([4, 4], 11);
  const f = (x: Tensor) => x.matmul(a).tanh().sum().add(x.pow(4).sum().mul(0.1)).add(x.softmax().square().sum());
  const x0 = rn([4], 12);
  const v = rn([4], 13);
  const hv = hvp(f, x0, v);
  const h = 1e-5;
  const g = grad(f);
  const up = g(x0.add(v.mul(h)));
  const down = g(x0.sub(v.mul(h)));
  const fdHv = flat(up.sub(down).div(2 * h));
  assertClose(flat(hv), fdHv, { atol: 1e-8, rtol: 1e-6 }, "hvp");
  // The same through grad of a dot product, and via jvp of the gradient (forward-over-reverse).
  const hv2 = grad((x: Tensor) => grad(f)(x).mul(v).sum())(x0);
  assertClose(flat(hv2), flat(hv), { atol: 1e-12, rtol: 1e-12 }, "grad(grad·v)");
  const [, hv3] = jvp((x: Tensor) => grad(f)(x), [x0], [v]);
  assertClose(flat(hv3), flat(hv), { atol: 1e-12, rtol: 1e-12 }, "jvp of grad");
  // Symmetry of the Hessian: u·(H v) = v·(H u).
  const u = rn([4], 14);
  const lhs = u.mul(hv).sum().item();
  const rhs = v.mul(hvp(f, x0, u)).sum().item();
  assertClose([lhs], [rhs], { atol: 1e-12, rtol: 1e-12 }, "symmetry");
});

Deno.test("second derivative of a tanh MLP with respect to its input", () => {
  const p = mlpParams(20);
  const xs = [-1.2, -0.3, 0.4, 1.5];
  const x = tensor(xs, { dtype: "float64", shape: [4, 1] });
  const u = (z: Tensor) => mlp(p, z);
  const ux = (z: Tensor) => grad((y: Tensor) => u(y).sum())(z);
  const uxx = (z: Tensor) => grad((y: Tensor) => ux(y).sum())(z);
  const d1 = flat(ux(x));
  const d2 = flat(uxx(x));
  assertClose(d1, xs.map((v) => mlpRef(p, v)[1]), { atol: 1e-12, rtol: 1e-12 }, "u'");
  assertClose(d2, xs.map((v) => mlpRef(p, v)[2]), { atol: 1e-12, rtol: 1e-12 }, "u''");
  // Finite differences: of u' (central) and of u (second difference).
  const h = 1e-5;
  const fd1 = flat(ux(x.add(h)).sub(ux(x.sub(h))).div(2 * h));
  assertClose(d2, fd1, { atol: 1e-7, rtol: 1e-6 }, "u'' vs FD of u'");
  const h2 = 1e-4;
  const fd2 = flat(noGrad(() => u(x.add(h2)).sub(u(x).mul(2)).add(u(x.sub(h2))).div(h2 * h2)));
  assertClose(d2, fd2, { atol: 1e-5, rtol: 1e-4 }, "u'' vs second difference of u");
  // backward() with createGraph gives the same second derivative.
  const leaf = tensor(xs, { dtype: "float64", shape: [4, 1], requiresGrad: true });
  u(leaf).sum().backward(undefined, { createGraph: true });
  const g = leaf.grad!;
  leaf.grad = null;
  g.sum().backward();
  assertClose(flat(leaf.grad!), d2, { atol: 1e-12, rtol: 1e-12 }, "u'' via backward(createGraph)");
});

Deno.test("a loss built from grad(u)(x) trains the network weights (PDE residual)", async (t) => {
  // Residual of u'' = -sin(x) at collocation points; loss = mean(r²). Its gradient with respect to
  // the weights needs the second derivative to be differentiable with respect to them.
  const xs = tensor([-1, -0.25, 0.5, 1.25], { dtype: "float64", shape: [4, 1] });
  const source = xs.sin();
  const loss = (p: Mlp) => {
    const u = (z: Tensor) => mlp(p, z);
    const ux = (z: Tensor) => grad((y: Tensor) => u(y).sum())(z);
    const uxx = grad((y: Tensor) => ux(y).sum())(xs);
    return uxx.add(source).square().mean();
  };
  const base = mlpParams(30, 4);
  const h = 1e-6;
  const fdParam = (name: keyof Mlp) =>
    Array.from({ length: base[name].size }, (_, j) => {
      const up = loss({ ...base, [name]: bump(base[name], j, h) }).item();
      const down = loss({ ...base, [name]: bump(base[name], j, -h) }).item();
      return (up - down) / (2 * h);
    });
  await t.step("backward() on leaves captured by the closures", () => {
    const p: Mlp = {
      w1: base.w1.clone().requireGrad(),
      b1: base.b1.clone().requireGrad(),
      w2: base.w2.clone().requireGrad(),
    };
    const l = loss(p);
    assert.equal(l.requiresGrad, true, "the loss depends on the weights through grad(u)");
    l.backward();
    for (const name of ["w1", "b1", "w2"] as const) {
      assert.ok(p[name].grad, `${name}.grad`);
      assertClose(flat(p[name].grad!), fdParam(name), { atol: 1e-8, rtol: 1e-6 }, name);
    }
  });
  await t.step("grad with respect to the weights as arguments", () => {
    const g = grad((w1: Tensor, b1: Tensor, w2: Tensor) => loss({ w1, b1, w2 }), { argnums: [0, 1, 2] })(
      base.w1,
      base.b1,
      base.w2,
    );
    assertClose(flat(g[0]), fdParam("w1"), { atol: 1e-8, rtol: 1e-6 }, "w1");
    assertClose(flat(g[2]), fdParam("w2"), { atol: 1e-8, rtol: 1e-6 }, "w2");
  });
  await t.step("gradcheck of the residual loss", () => {
    assert.equal(
      gradcheck((w1, b1, w2) => loss({ w1, b1, w2 }), [base.w1, base.b1, base.w2], { atol: 1e-6, rtol: 1e-5 }),
      true,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// customFunction and checkpoint.

Deno.test("customFunction with a hand-written backward", async (t) => {
  let backwardCalls = 0;
  // A numerically careful log(1 + e^x)·y with its own backward.
  const f = customFunction(
    (x: Tensor, y: Tensor) => {
      assert.equal(isGradEnabled(), false, "forward runs without recording");
      return { output: x.softplus().mul(y), residuals: [x, y], aux: { note: "hi" } };
    },
    ([x, y], g, needs) => {
      backwardCalls++;
      return [needs[0] ? g.mul(y).mul(x.sigmoid()) : null, needs[1] ? g.mul(x.softplus()) : null];
    },
  );
  await t.step("values, aux and gradients", () => {
    const x = f64([-1, 0, 2], true);
    const y = f64([1, 2, 3]);
    const { output, aux } = f(x, y);
    assert.equal(aux.note, "hi");
    assertClose(flat(output), [-1, 0, 2].map((v, i) => Math.log1p(Math.exp(v)) * (i + 1)), { rtol: 1e-14 });
    output.sum().backward();
    assertClose(flat(x.grad!), [-1, 0, 2].map((v, i) => (i + 1) / (1 + Math.exp(-v))), { rtol: 1e-14 });
    assert.equal(y.grad, null);
    assert.equal(backwardCalls, 1);
  });
  await t.step("gradcheck, first and second order", () => {
    assert.equal(gradcheck((x, y) => f(x, y).output, [rn([2, 3], 40), rn([2, 3], 41)], { secondOrder: true }), true);
  });
  await t.step("gradcheck catches a wrong hand-written backward", () => {
    const wrong = customFunction(
      (x: Tensor) => ({ output: x.sin(), residuals: [x] }),
      ([x], g) => [g.mul(x.cos()).mul(1.01)],
    );
    assert.throws(() => gradcheck((x) => wrong(x).output, [rn([3], 42)]), GradcheckError);
  });
  await t.step("second-order gradcheck catches a backward that is not differentiable", () => {
    // The backward reads a detached copy of x: first order is right, second order is not.
    const opaque = customFunction(
      (x: Tensor) => ({ output: x.sin(), residuals: [x] }),
      ([x], g) => [g.mul(x.detach().cos())],
    );
    assert.equal(gradcheck((x) => opaque(x).output, [rn([3], 43)]), true);
    assert.throws(() => gradcheck((x) => opaque(x).output, [rn([3], 43)], { secondOrder: true }), GradcheckError);
  });
});

Deno.test("checkpoint gives the same gradients as no checkpoint", async (t) => {
  const w = rn([3, 3], 50).requireGrad();
  const b = rn([3], 51).requireGrad();
  // A block reading parameters through its closure, as a network layer does.
  const block = (x: Tensor) => x.matmul(w).add(b).tanh().matmul(w.transpose()).sin();
  const x0 = rn([2, 3], 52);
  await t.step("first order: inputs and closure parameters", () => {
    const x = x0.clone().requireGrad();
    block(x).square().sum().backward();
    const ref = [x.grad!, w.grad!, b.grad!].map(flat);
    x.zeroGrad();
    w.zeroGrad();
    b.zeroGrad();
    const y = checkpoint(block)(x);
    assert.equal(y.requiresGrad, true);
    y.square().sum().backward();
    assertClose(flat(x.grad!), ref[0], { atol: 1e-14, rtol: 1e-13 }, "x");
    assert.ok(w.grad, "parameters read by the checkpointed function get gradients");
    assertClose(flat(w.grad!), ref[1], { atol: 1e-14, rtol: 1e-13 }, "w");
    assertClose(flat(b.grad!), ref[2], { atol: 1e-14, rtol: 1e-13 }, "b");
    w.zeroGrad();
    b.zeroGrad();
  });
  await t.step("first order: explicit parameters and grad()", () => {
    const f = (x: Tensor, v: Tensor) => x.matmul(v).tanh().square().sum();
    const ck = checkpoint((x: Tensor, v: Tensor) => x.matmul(v).tanh());
    const g1 = grad(f, { argnums: [0, 1] })(x0, w.detach());
    const g2 = grad((x: Tensor, v: Tensor) => ck(x, v).square().sum(), { argnums: [0, 1] })(x0, w.detach());
    assertClose(flat(g2[0]), flat(g1[0]), { atol: 1e-14, rtol: 1e-13 }, "x");
    assertClose(flat(g2[1]), flat(g1[1]), { atol: 1e-14, rtol: 1e-13 }, "w");
  });
  await t.step("second order: Hessian-vector product through a checkpoint", () => {
    const v = rn([2, 3], 53);
    const plain = hvp((x: Tensor) => block(x).square().sum(), x0, v);
    const ck = checkpoint(block);
    const viaCk = hvp((x: Tensor) => ck(x).square().sum(), x0, v);
    assertClose(flat(viaCk), flat(plain), { atol: 1e-13, rtol: 1e-12 }, "hvp");
  });
  await t.step("second order: a grad(u) loss trained through a checkpoint", () => {
    const run = (useCheckpoint: boolean) => {
      const inner = useCheckpoint ? checkpoint(block) : block;
      const ux = grad((x: Tensor) => inner(x).sum())(x0);
      w.zeroGrad();
      b.zeroGrad();
      ux.square().sum().backward();
      return [flat(w.grad!), flat(b.grad!)];
    };
    const [wPlain, bPlain] = run(false);
    const [wCk, bCk] = run(true);
    assertClose(wCk, wPlain, { atol: 1e-13, rtol: 1e-12 }, "w");
    assertClose(bCk, bPlain, { atol: 1e-13, rtol: 1e-12 }, "b");
    w.zeroGrad();
    b.zeroGrad();
  });
  await t.step("gradcheck of a checkpointed block, second order", () => {
    const ck = checkpoint((x: Tensor, v: Tensor) => x.matmul(v).tanh().matmul(v.transpose()));
    assert.equal(gradcheck(ck, [rn([2, 3], 54), rn([3, 3], 55)], { secondOrder: true }), true);
  });
  await t.step("under noGrad a checkpoint is just the function", () => {
    const y = noGrad(() => checkpoint(block)(x0));
    assert.equal(y.requiresGrad, false);
    assertClose(flat(y), flat(noGrad(() => block(x0))), {});
  });
});

// ---------------------------------------------------------------------------------------------
// tidy and keep.

Deno.test("tidy disposes intermediates and keeps what the result needs", async (t) => {
  await t.step("intermediates go back to the allocator", () => {
    const x = randn([64], { seed: 1 });
    const before = memory();
    const s = tidy(() => x.exp().sin().mul(x).add(1).sum());
    assert.ok(!s.disposed);
    assert.equal(typeof s.item(), "number");
    s.dispose();
    assert.equal(memory(), before);
    x.dispose();
  });
  await t.step("arrays and objects of tensors survive; the rest is freed", () => {
    const before = memory();
    const out = tidy(() => {
      const a = ones([32]);
      const b = a.mul(2);
      const c = b.add(1);
      return { pair: [b, c.sum()], n: 3 };
    });
    assert.deepEqual(flat(out.pair[1]), [96]);
    assert.deepEqual(flat(out.pair[0]).slice(0, 2), [2, 2]);
    out.pair[0].dispose();
    out.pair[1].dispose();
    assert.equal(memory(), before);
  });
  await t.step("the graph a result needs is kept: backward after tidy works", () => {
    const w = randn([8], { seed: 2, dtype: "float64" }).requireGrad();
    const loss = tidy(() => w.mul(w).sin().sum());
    loss.backward();
    assertClose(flat(w.grad!), flat(noGrad(() => w.mul(2).mul(w.mul(w).cos()))), { rtol: 1e-14 });
  });
  await t.step("a training step inside tidy leaves only the new gradient behind", () => {
    const w = randn([16], { seed: 3 }).requireGrad();
    const before = memory();
    const value = tidy(() => {
      const loss = w.tanh().square().mean();
      loss.backward();
      return loss.item();
    });
    assert.equal(typeof value, "number");
    assert.ok(w.grad && !w.grad.disposed, ".grad survives the scope");
    assert.ok(memory() > before);
    w.zeroGrad();
    assert.equal(memory(), before);
  });
  await t.step("keep() and nested scopes", () => {
    const before = memory();
    let kept: Tensor | undefined;
    let inner: Tensor | undefined;
    const outer = tidy(() => {
      inner = tidy(() => {
        kept = keep(zeros([10]).add(1));
        return ones([4]).mul(3);
      });
      assert.ok(!inner.disposed, "the inner result moves to the outer scope");
      return ones([2]);
    });
    assert.ok(inner!.disposed, "…and is disposed when the outer scope ends");
    assert.ok(!kept!.disposed);
    assert.deepEqual(flat(kept!).slice(0, 2), [1, 1]);
    const kept2 = tidy(() => zeros([3]).keep());
    assert.ok(!kept2.disposed);
    kept!.dispose();
    kept2.dispose();
    outer.dispose();
    assert.equal(memory(), before);
  });
  await t.step("a throwing function disposes everything it made", () => {
    const before = memory();
    assert.throws(() =>
      tidy(() => {
        ones([100]).mul(2);
        throw new Error("inside");
      }), /inside/);
    assert.equal(memory(), before);
  });
});

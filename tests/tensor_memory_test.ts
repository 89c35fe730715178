/**
 * Who owns a gradient: a tensor owns its `.grad` and frees it with itself, so `tidy` gives back
 * every byte of a step whose leaves are not returned, while a parameter made outside the scope
 * keeps what backward accumulated into it. Figures are bytes of the backend's live buffers, read
 * before and after (float64: 8 bytes an element).
 */

import assert from "node:assert/strict";
import { grad, jacobian, jvp, memory, randn, solve, type Tensor, tensor, tidy, valueAndGrad, zeros } from "../mod.ts";
import { assertClose } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;

/** The change of `memory().current` across `fn` (bytes still held afterwards). */
function held(fn: () => void): number {
  const before = memory().current;
  fn();
  return memory().current - before;
}

Deno.test("tidy frees a leaf made inside it together with its gradient", () => {
  const bytes = held(() =>
    tidy(() => {
      const x = randn([10], { ...f64, seed: 1 }).requireGrad();
      x.square().sum().backward();
      assert.ok(x.grad !== null);
    })
  );
  assert.equal(bytes, 0);
});

Deno.test("disposing a tensor releases its gradient", () => {
  const x = randn([10], { ...f64, seed: 2 }).requireGrad();
  tidy(() => x.square().sum().backward());
  const g = x.grad!;
  // x (80 bytes) and its gradient (80 bytes) go back together.
  assert.equal(held(() => x.dispose()), -160);
  assert.ok(g.disposed);
  assert.equal(x.grad, null);
});

Deno.test("a parameter made outside the scope keeps the gradient accumulated inside it", () => {
  const w = tensor([1, 2, 3], { ...f64, requiresGrad: true });
  const bytes = held(() => {
    tidy(() => w.mul(w).sum().backward());
    tidy(() => w.mul(w).sum().backward()); // accumulates: 2w + 2w
  });
  assert.equal(bytes, 24, "the gradient's 24 bytes stay, nothing else");
  assert.deepEqual(w.grad!.toArray(), [4, 8, 12]);
  w.dispose();
});

Deno.test("a leaf returned from tidy keeps its gradient; the enclosing scope frees both", () => {
  const bytes = held(() =>
    tidy(() => {
      const x = tidy(() => {
        const leaf = tensor([1, 2], { ...f64, requiresGrad: true });
        leaf.mul(leaf).sum().backward();
        return leaf;
      });
      assert.deepEqual(x.grad!.toArray(), [2, 4]);
    })
  );
  assert.equal(bytes, 0);
});

Deno.test("a gradient returned from tidy outlives its leaf and belongs to the enclosing scope", () => {
  let outer: Tensor | null = null;
  const bytes = held(() =>
    tidy(() => {
      const g = tidy(() => {
        const leaf = tensor([1, 2, 3], { ...f64, requiresGrad: true });
        leaf.mul(3).sum().backward();
        return leaf.grad!;
      });
      assert.equal(g.disposed, false);
      assert.deepEqual(g.toArray(), [3, 3, 3]);
      outer = g;
    })
  );
  assert.equal(bytes, 0);
  assert.equal(outer!.disposed, true);
});

Deno.test("assigning .grad: the tensor holds the value (sharing its storage) and frees its hold with itself", () => {
  const x = zeros([2], f64).requireGrad();
  const bytes = held(() =>
    tidy(() => {
      x.grad = tensor([5, 6], f64); // made in the scope, not returned: x's hold keeps the storage
    })
  );
  assert.equal(bytes, 16);
  assert.deepEqual(x.grad!.toArray(), [5, 6]);
  const own = tensor([7, 8], f64);
  x.grad = own; // replaces (and frees) the previous gradient
  assert.equal(held(() => x.dispose()), -16, "x freed; `own` still holds its storage");
  assert.deepEqual(own.toArray(), [7, 8]);
  own.dispose();
});

Deno.test("setting .grad to null hands the gradient to the caller (the current scope)", () => {
  const x = tensor([1, 2], { ...f64, requiresGrad: true });
  const bytes = held(() =>
    tidy(() => {
      x.mul(x).sum().backward();
      const g = x.grad!;
      x.grad = null;
      assert.deepEqual(g.toArray(), [2, 4]);
    })
  );
  assert.equal(bytes, 0, "the released gradient is freed by the scope it was released in");
  x.dispose();
});

Deno.test("a tensor declared with `using` is freed at the end of its block", () => {
  const bytes = held(() => {
    using t = zeros([4], f64);
    assert.equal(t.disposed, false);
  });
  assert.equal(bytes, 0);
});

Deno.test("solve and backward with the unrolled adjoint inside tidy hold memory flat", () => {
  const y = tensor([[1, 2, 3], [2, 3, 5]], { ...f64, requiresGrad: true });
  const fit = (w: Tensor, p: { y: Tensor }) => w.mul(w).sub(p.y);
  const step = () =>
    tidy(() => {
      const sol = solve.leastSquares(fit, tensor([[1, 1, 1], [1, 1, 1]], f64), { y }, {
        solver: new solve.GaussNewton({ atol: 1e-10, rtol: 1e-10 }),
        adjoint: new solve.UnrolledAdjoint(),
      });
      sol.value.sum().backward();
    });
  step(); // the first call may build constants that are cached for later calls
  const bytes = held(() => {
    for (let i = 0; i < 5; i++) step();
  });
  assert.equal(bytes, 0);
  // d(√y)/dy = 1/(2√y), accumulated over six backward passes.
  const expected = [1, 2, 3, 2, 3, 5].map((v) => 6 / (2 * Math.sqrt(v)));
  assertClose(y.grad!, expected, { rtol: 1e-7 }, "y.grad");
  y.dispose();
});

Deno.test("backward outside any scope keeps only the gradient (its temporaries are freed)", () => {
  const w = randn([10], { ...f64, seed: 3 }).requireGrad();
  const loss = () => tidy(() => w.square().sum()); // the graph survives the scope with the loss
  const first = loss();
  assert.equal(held(() => first.backward(undefined, { retainGraph: true })), 80, "w.grad: 10 float64");
  assert.equal(held(() => first.backward()), 0, "accumulating replaces the gradient");
  loss().backward(undefined, { createGraph: true });
  assert.equal(w.grad!.requiresGrad, true, "with createGraph the gradient keeps its graph (and what it reads)");
  const g = w.grad!;
  w.grad = null;
  g.sum().backward(); // g = (earlier passes, a constant) + 2w: d/dw Σ g = 2
  assertClose(w.grad!, new Array(10).fill(2), {}, "second-order gradient");
  w.dispose();
});

Deno.test("constants a solve caches on first use are reported apart from the program's tensors", () => {
  const n = 7;
  const a = tensor(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 4 : 1))), f64);
  const b = tensor(Array.from({ length: n }, (_, i) => i), f64);
  const step = () => tidy(() => void solve.solve(a, b, { regularization: 1e-9 }));
  const before = memory();
  step(); // builds (once) the 7×7 float64 identity the regularisation adds
  const after = memory();
  assert.equal(after.current - before.current, 0, "the first call holds none of the program's bytes");
  assert.equal(after.constants - before.constants, n * n * 8, "one 7×7 float64 identity is cached");
  step();
  assert.deepEqual([memory().current, memory().constants], [after.current, after.constants], "and reused");
});

Deno.test("grad, valueAndGrad and jacobian outside any scope hold only what they return", () => {
  const x = randn([100], { ...f64, seed: 4 });
  const f = (t: Tensor) => t.sin().mul(t).sum();
  let g: Tensor | null = null;
  assert.equal(held(() => (g = grad(f)(x))), 800, "the gradient: 100 float64");
  assertClose(g!, x.cos().mul(x).add(x.sin()), { rtol: 1e-12, atol: 1e-15 }, "d/dx x·sin x");
  let pair: [Tensor, Tensor] | null = null;
  assert.equal(held(() => (pair = valueAndGrad(f)(x))), 808, "the value (8 bytes) and the gradient");
  assert.equal(pair![0].requiresGrad, false, "no graph is kept behind the value");
  const x5 = x.narrow(0, 0, 5);
  assert.equal(held(() => void jacobian((t: Tensor) => t.sin(), x5)), 200, "the 5×5 Jacobian");
  // Nested, the inner gradient keeps the graph the outer one differentiates through.
  assertClose(
    grad((t: Tensor) => grad(f)(t).sum())(x.narrow(0, 0, 3)),
    [0, 0, 0].map((_, i) => {
      const v = x.toTypedArray()[i];
      return 2 * Math.cos(v) - v * Math.sin(v);
    }),
    { rtol: 1e-12, atol: 1e-14 },
    "d²/dx² x·sin x",
  );
});

Deno.test("jvp outside any scope holds only the output and its tangent, with no graph behind them", () => {
  const x = randn([100], { ...f64, seed: 5 });
  const v = randn([100], { ...f64, seed: 6 });
  const f = (t: Tensor) => t.sin().mul(t);
  let pair: [Tensor, Tensor] | null = null;
  assert.equal(held(() => (pair = jvp(f, [x], [v]))), 1600, "the output and the tangent: 2 × 100 float64");
  const [y, dy] = pair!;
  assert.equal(y.requiresGrad, false, "no graph is kept behind the output");
  assert.equal(dy.requiresGrad, false, "no graph is kept behind the tangent");
  // d/dt (t·sin t) = sin t + t·cos t, along v.
  assertClose(dy, x.sin().add(x.mul(x.cos())).mul(v), { rtol: 1e-12, atol: 1e-15 }, "J·v");
  assert.equal(held(() => tidy(() => void jvp(f, [x], [v]))), 0, "inside tidy nothing stays");
});

Deno.test("jvp of a function reading a parameter stays differentiable in it, and frees the rest with the scope", () => {
  const w = tensor([0.7], { ...f64, requiresGrad: true });
  const x = tensor([0.5, -1, 2], f64);
  const v = tensor([1, 2, -1], f64);
  const bytes = held(() =>
    tidy(() => {
      const [y, dy] = jvp((t: Tensor) => t.mul(w).sin(), [x], [v]);
      assert.equal(y.requiresGrad, true);
      assert.equal(dy.requiresGrad, true);
      dy.sum().add(y.sum()).backward();
    })
  );
  assert.equal(bytes, 8, "only w's gradient stays");
  // y = sin(w x), dy = cos(w x)·w·v; d/dw Σ(dy + y) = Σ (−sin(w x)·x·w·v + cos(w x)·v + cos(w x)·x).
  const expected = [0.5, -1, 2].reduce((s, xi, i) => {
    const vi = [1, 2, -1][i];
    return s - Math.sin(0.7 * xi) * xi * 0.7 * vi + Math.cos(0.7 * xi) * vi + Math.cos(0.7 * xi) * xi;
  }, 0);
  assertClose(w.grad!, [expected], { rtol: 1e-12 }, "w.grad");
  w.dispose();
  // Differentiated with respect to the primal too: d/dx Σ (J·v) of x·sin x is (2 cos x − x sin x)·v.
  const second = grad((t: Tensor) => jvp((s: Tensor) => s.sin().mul(s), [t], [v])[1].sum())(x);
  const x0 = [0.5, -1, 2];
  assertClose(second, x0.map((xi, i) => (2 * Math.cos(xi) - xi * Math.sin(xi)) * [1, 2, -1][i]), {
    rtol: 1e-12,
  }, "forward-over-reverse");
});

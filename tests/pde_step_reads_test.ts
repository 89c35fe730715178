// Host reads a PI-HC-MoE step no longer makes: the experts' points are drawn on the host (the tensor
// generator's stream, computed without the device), and each expert's implicit node reads only the
// one number of its factorisation (no residual norms, no adjoint report). Checked against the stream that `rand` gives, a dense
// Fisher–Yates shuffle, the closed-form gradient of w² = y and implicitSolution's.

import assert from "node:assert/strict";
import { BackendCounter, Generator, noGrad, pde, rand, type Tensor, tensor, tidy } from "../mod.ts";
import { implicitNode, implicitSolution, leastSquares, LevenbergMarquardt } from "../src/solve/mod.ts";
import { assertClose } from "./helpers.ts";

Deno.test("PointSampler draws rand's stream on the host: the points of a dense shuffle, no device work", () => {
  const shape = [5, 6, 7];
  const region: [number, number][] = [[1, 4], [0, 3], [2, 7]];
  const sampler = new pde.PointSampler(shape, { seed: 11, region, indexing: "local" });
  const stream = new Generator(11);
  const size = 3 * 3 * 5;
  for (const m of [7, 45, 1]) {
    const counter = new BackendCounter().start();
    const got = sampler.nextHost(m);
    const c = counter.stop();
    assert.equal(c.primitives + c.hostReads + c.uploads, 0, "nothing asked of the backend");
    // The same uniforms from the tensor generator, and a plain Fisher–Yates over the whole box.
    const u = rand([m], { generator: stream, dtype: "float64" }).toTypedArray();
    const perm = Array.from({ length: size }, (_, i) => i);
    for (let i = 0; i < m; i++) {
      const j = i + Math.min(size - i - 1, Math.floor(u[i] * (size - i)));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    assert.deepEqual(Array.from(got), perm.slice(0, m).sort((a, b) => a - b), `draw of ${m}`);
  }
});

Deno.test("implicitNode: the implicit gradient with one host read; zero where the residual is not finite", () => {
  const r = (w: Tensor, p: { y: Tensor }) => w.mul(w).sub(p.y); // w² = y, closed form dw/dy = 1/(2w)
  const y0 = [[1, 2, 3], [4, 0.5, 9]];
  const wStar = noGrad(() =>
    leastSquares(r, tensor([[1, 1, 1], [1, 1, 1]], { dtype: "float64" }), {
      y: tensor(y0, { dtype: "float64" }),
    }, { solver: new LevenbergMarquardt({ atol: 1e-14, rtol: 1e-14, maxSteps: 100 }) }).value
  );
  const c = tensor([[0.3, -1.1, 0.7], [2, 0.4, -0.5]], { dtype: "float64" });
  const grad = (make: (y: Tensor) => Tensor) =>
    tidy(() => {
      const y = tensor(y0, { dtype: "float64" }).requireGrad();
      const counter = new BackendCounter().start();
      make(y).mul(c).sum().backward();
      const reads = counter.stop().hostReads;
      return { g: y.grad!.toTypedArray(), reads };
    });
  const node = grad((y) => implicitNode(r, wStar, { y }));
  assert.equal(node.reads, 1, "the node and its backward pass read one number (is the adjoint system singular?)");
  const w = wStar.toTypedArray(), cs = c.toTypedArray();
  assertClose(node.g, Array.from(w, (v, i) => cs[i] / (2 * v)), { rtol: 1e-10 }, "closed form");
  const ref = grad((y) => implicitSolution(r, wStar, { y }).value);
  assert.equal(ref.reads, 3, "implicitSolution also reads its diagnostics and the adjoint report");
  assertClose(node.g, ref.g, { rtol: 1e-12 }, "implicitSolution's gradient");
  // A non-finite problem (NaN in its y) gets a zero gradient; the other keeps its own.
  const bad = tidy(() => {
    const y = tensor([[1, 2, NaN], [4, 0.5, 9]], { dtype: "float64" }).requireGrad();
    implicitNode(r, wStar, { y }).mul(c).sum().backward();
    return y.grad!.toTypedArray();
  });
  assert.deepEqual(Array.from(bad.subarray(0, 3)), [0, 0, 0]);
  assertClose(bad.subarray(3), node.g.subarray(3), { rtol: 1e-12 }, "the finite problem");
});

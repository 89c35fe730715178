// The batched solve's structured Jacobian with the features stacked once per solve (one product
// gives every u_k = Φ_k·w, one product per row gives J) against the plain residual function with
// autodiff's Jacobian: a feature per problem, one shared by every problem, and one the residual
// does not read (a null ∂F/∂u_k), with an explicit derivative and without.

import assert from "node:assert/strict";
import { matmul, randn, type Tensor, tidy } from "../mod.ts";
import { BasisResidual, leastSquares, LevenbergMarquardt, UnrolledAdjoint } from "../src/solve/mod.ts";
import { assertClose } from "./helpers.ts";

Deno.test("stacked features: the plain residual's solution and unrolled gradients, a null derivative too", () => {
  const [b, m, n] = [3, 14, 4];
  const f64 = { dtype: "float64" } as const;
  const perProblem = randn([b, m, n], { ...f64, seed: 1 });
  const shared = randn([m, n], { ...f64, seed: 2 });
  const unread = randn([b, m, n], { ...f64, seed: 3 });
  const features = () => [perProblem, shared, unread];
  // u1 + 0.1·u2³ − y, with u3 not read.
  const pointwise = ([u1, u2]: Tensor[], p: { y: Tensor }) => u1.add(u2.pow(3).mul(0.1)).sub(p.y);
  const plain = (w: Tensor, p: { y: Tensor }) =>
    pointwise(features().map((phi) => matmul(phi, w.unsqueeze(-1)).squeeze(-1)), p);
  const variants = {
    autodiff: new BasisResidual({ features, pointwise }),
    explicit: new BasisResidual({
      features,
      pointwise,
      derivative: ([u1, u2]: Tensor[]) => [u1.mul(0).add(1), u2.square().mul(0.3), null],
    }),
  };
  const c = randn([b, n], { ...f64, seed: 5 });
  const solve = (residual: typeof plain | BasisResidual<{ y: Tensor }>) =>
    tidy(() => {
      const y = randn([b, m], { ...f64, seed: 4 }).requireGrad();
      const w0 = randn([b, n], { ...f64, seed: 6 }).mul(0.1);
      const sol = leastSquares(residual, w0, { y }, {
        solver: new LevenbergMarquardt({ atol: 1e-13, rtol: 1e-13, maxSteps: 100 }),
        adjoint: new UnrolledAdjoint(),
      });
      sol.value.mul(c).sum().backward();
      return { w: sol.value.toTypedArray(), g: y.grad!.toTypedArray(), status: sol.status };
    });
  const ref = solve(plain);
  for (const [name, residual] of Object.entries(variants)) {
    const got = solve(residual);
    assert.deepEqual(got.status, ref.status, name);
    assertClose(got.w, ref.w, { rtol: 1e-10, floor: 1 }, `${name}: solution`);
    assertClose(got.g, ref.g, { rtol: 1e-8, floor: 1 }, `${name}: gradient through the unrolled iterations`);
  }
});

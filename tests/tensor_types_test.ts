/**
 * The transforms are typed: `grad(f)(x)` is a Tensor, a tree argument gives a gradient of the same
 * shape, several argnums give a tuple — no casts. The type checks are the assignments below (this
 * file is part of `deno check`; a `@ts-expect-error` line fails the check when its error goes
 * away); the tests check the values at run time too.
 */

import assert from "node:assert/strict";
import { grad, jacobian, type Tensor, tensor, valueAndGrad, vjp } from "../mod.ts";

const f64 = (data: number[]) => tensor(data, { dtype: "float64" });

Deno.test("grad of a tensor argument is a Tensor", () => {
  const g: Tensor = grad((x: Tensor) => x.mul(x).sum())(f64([1, 2]));
  assert.deepEqual(g.toArray(), [2, 4]);
  // @ts-expect-error a gradient is a Tensor, not a number
  const _wrong: number = grad((x: Tensor) => x.sum())(f64([1]));
  // Higher derivatives nest without casts.
  const d2: Tensor = grad((x: Tensor) => grad((y: Tensor) => y.pow(3).sum())(x).sum())(f64([2]));
  assert.deepEqual(d2.toArray(), [12]);
});

Deno.test("several argnums give a tuple; one argnum picks that argument's type", () => {
  const f = (a: Tensor, b: Tensor, scale: number) => a.mul(b).sum().mul(scale);
  const [ga, gb]: [Tensor, Tensor] = grad(f, { argnums: [0, 1] })(f64([1, 2]), f64([3, 4]), 2);
  assert.deepEqual(ga.toArray(), [6, 8]);
  assert.deepEqual(gb.toArray(), [2, 4]);
  const g1: Tensor = grad(f, { argnums: 1 })(f64([1, 2]), f64([3, 4]), 2);
  assert.deepEqual(g1.toArray(), [2, 4]);
  // @ts-expect-error argnums [0, 1] gives two gradients, not three
  const [, , _third]: [Tensor, Tensor, Tensor] = grad(f, { argnums: [0, 1] })(f64([1]), f64([1]), 1);
});

Deno.test("a tree argument (an interface included) gives a gradient of the same structure", () => {
  interface Params {
    w: Tensor;
    layers: Tensor[];
  }
  const loss = (p: Params, x: Tensor) => p.w.mul(x).sum().add(p.layers[0].sum());
  const p: Params = { w: f64([1, 2]), layers: [f64([5])] };
  const g: { w: Tensor; layers: Tensor[] } = grad(loss)(p, f64([3, 4]));
  assert.deepEqual(g.w.toArray(), [3, 4]);
  assert.deepEqual(g.layers[0].toArray(), [1]);
  const [value, gx]: [Tensor, Tensor] = valueAndGrad(loss, { argnums: 1 })(p, f64([3, 4]));
  assert.equal(value.item(), 16);
  assert.deepEqual(gx.toArray(), [1, 2]);
});

Deno.test("vjp's cotangent map returns one gradient per primal, typed; jacobian is a Tensor", () => {
  const [y, back] = vjp((a: Tensor, b: Tensor) => a.mul(b), f64([1, 2]), f64([3, 4]));
  const [da, db]: [Tensor, Tensor] = back(y);
  assert.deepEqual(da.toArray(), [9, 32]);
  assert.deepEqual(db.toArray(), [3, 16]);
  const j: Tensor = jacobian((x: Tensor) => x.mul(2), f64([1, 2]));
  assert.deepEqual(j.toArray(), [[2, 0], [0, 2]]);
});

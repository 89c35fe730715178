// The fused elementwise ops against the same functions built from primitive ops, in float64:
// values, first derivatives (the fused op's backward rule against autodiff through the
// primitives) and second derivatives (the backward of the backward). Every op of the table is
// either a primitive or has its composite here, so a new fused op cannot go untested.

import assert from "node:assert/strict";
import {
  abs,
  add,
  applyBinary,
  applyUnary,
  BINARY_OPS,
  div,
  erf,
  exp,
  grad,
  log,
  mul,
  neg,
  relu,
  tanh,
  type Tensor,
  tensor,
  UNARY_OPS,
  type UnaryOp,
} from "../mod.ts";
import { assertClose, randomData } from "./helpers.ts";

/** Ops with a kernel of their own that are not a composition of others. */
const PRIMITIVE_UNARY: readonly UnaryOp[] = [
  "neg",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "abs",
  "sign",
  "sin",
  "cos",
  "tanh",
  "relu",
  "erf",
  "reciprocal",
  "floor",
];

const C = Math.sqrt(2 / Math.PI);

function sigmoidOf(x: Tensor): Tensor {
  return div(1, add(exp(neg(x)), 1));
}

function geluOf(x: Tensor): Tensor {
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

function geluTanhOf(x: Tensor): Tensor {
  return mul(mul(x, 0.5), add(tanh(mul(add(x, mul(mul(mul(x, x), x), 0.044715)), C)), 1));
}

/** d/dx of `f` elementwise, by autodiff through `f` (differentiable again). */
function derivative(f: (x: Tensor) => Tensor): (x: Tensor) => Tensor {
  return (x) => grad((v: Tensor) => f(v).sum())(x) as Tensor;
}

/** Each fused unary op as a composition of primitives. */
const COMPOSITES: Partial<Record<UnaryOp, (x: Tensor) => Tensor>> = {
  sigmoid: sigmoidOf,
  silu: (x) => mul(x, sigmoidOf(x)),
  // max(x, 0) + log(1 + e^(−|x|)): the stable form, exact enough for |x| ≤ 6 without log1p.
  softplus: (x) => add(relu(x), log(add(exp(neg(abs(x))), 1))),
  gelu: geluOf,
  gelu_tanh: geluTanhOf,
  gelu_grad: derivative(geluOf),
  gelu_tanh_grad: derivative(geluTanhOf),
};

Deno.test("fused ops: every op is a primitive or has a composite to be tested against", () => {
  for (const op of Object.keys(UNARY_OPS) as UnaryOp[]) {
    const primitive = PRIMITIVE_UNARY.includes(op);
    assert.ok(primitive !== (op in COMPOSITES), `${op}: list it as a primitive or give its composite`);
  }
  // No fused binary op yet: each binary op is a primitive of its own.
  assert.deepEqual(Object.keys(BINARY_OPS), [
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
  ], "a new binary op: add it here if it is a primitive, else test it against its composite");
});

// Points away from 0 (where relu and |x| in softplus's composite have kinks), both signs, |x| ≤ 6.
const X = randomData(64, 19, -6, 6).map((v) => (Math.abs(v) < 1e-3 ? v + 0.01 : v));

for (const [op, composite] of Object.entries(COMPOSITES) as [UnaryOp, (x: Tensor) => Tensor][]) {
  Deno.test(`fused ops: ${op} equals its composite, with first and second derivatives (float64)`, () => {
    const x = tensor(X, { dtype: "float64" });
    const fused = (v: Tensor) => applyUnary(op, v);
    assertClose(fused(x), composite(x), { rtol: 1e-14, atol: 1e-15 }, `${op}(x)`);
    assertClose(derivative(fused)(x), derivative(composite)(x), { rtol: 1e-13, atol: 1e-15 }, `${op}'(x)`);
    assertClose(
      derivative(derivative(fused))(x),
      derivative(derivative(composite))(x),
      { rtol: 1e-12, atol: 1e-14 },
      `${op}''(x)`,
    );
  });
}

Deno.test("fused ops: applyBinary runs an op by name with its backward", () => {
  const a = tensor([1, 5, 3], { dtype: "float64" });
  const g = grad((v: Tensor) => applyBinary("maximum", v, 3).sum())(a) as Tensor;
  assert.deepEqual(g.toArray(), [0, 1, 0.5]);
});

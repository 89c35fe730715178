/**
 * Each elementwise op defined once. An op's definition gives its name, the scalar function it
 * computes in double precision (`math.ts`: what the CPU backend runs per element and the GPU
 * kernels compute), the kernel it runs on the GPU (found by name: kernels/elementwise.cu
 * instantiates `<kernel>_<dtype>` and `<kernel>_strided_<dtype>` for every op of its list), and
 * its backward rule written in tensor ops, so gradients of gradients work. The backends look an
 * op up here by name; nothing here knows of devices.
 *
 * Adding an op is its name in {@link UnaryOp} (or {@link BinaryOp}) and its entry in
 * {@link UNARY_OPS} (or {@link BINARY_OPS}): the compiler holds the two to the same names, and
 * `applyUnary` / `applyBinary` run it, differentiably. For the GPU, one line of
 * kernels/elementwise.cu gives its kernel.
 *
 * @module
 */

import { cpow, erf, gelu, geluGrad, geluTanh, geluTanhGrad, ipow, sigmoid as sigmoidOf, softplus } from "./math.ts";
import {
  add,
  applyUnary,
  cos,
  div,
  eq,
  exp,
  gt,
  log,
  lt,
  mul,
  neg,
  pow,
  sigmoid,
  sign,
  sin,
  sub,
  tanh,
} from "./ops_elementwise.ts";
import type { Operand, Tensor } from "./tensor.ts";

/**
 * The name of an elementwise op of one argument: a key of {@link UNARY_OPS}.
 *
 * @example
 * ```ts
 * import type { UnaryOp } from "./op_defs.ts";
 * const op: UnaryOp = "gelu_tanh";
 * ```
 */
export type UnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "abs"
  | "sign"
  | "sin"
  | "cos"
  | "tanh"
  | "sigmoid"
  | "relu"
  | "gelu"
  | "gelu_tanh"
  | "silu"
  | "softplus"
  | "erf"
  | "reciprocal"
  | "floor"
  | "gelu_grad"
  | "gelu_tanh_grad";

/**
 * The name of an elementwise op of two arguments: a key of {@link BINARY_OPS}.
 *
 * @example
 * ```ts
 * import type { BinaryOp } from "./op_defs.ts";
 * const op: BinaryOp = "maximum";
 * ```
 */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "maximum"
  | "minimum"
  | "eq"
  | "ne"
  | "lt"
  | "le"
  | "gt"
  | "ge";

/**
 * The backward rule of a unary op: the gradient with respect to its input `x`, given the
 * gradient `g` of its output `y`, in tensor ops.
 *
 * @example
 * ```ts
 * import type { UnaryBackward } from "./op_defs.ts";
 * import { mul } from "./ops_elementwise.ts";
 * const expBackward: UnaryBackward = (g, _x, y) => mul(g, y);
 * ```
 */
export type UnaryBackward = (g: Tensor, x: Tensor, y: Tensor) => Tensor;

/**
 * One elementwise op of one argument.
 *
 * @example
 * ```ts
 * import { UNARY_OPS } from "./op_defs.ts";
 * const def = UNARY_OPS.exp;
 * def.f(1); // Math.E
 * def.kernel; // "unary_exp"
 * ```
 */
export interface UnaryOpDef<Name extends string = UnaryOp> {
  /** The op's name (its key in {@link UNARY_OPS}). */
  readonly name: Name;
  /** The GPU kernels' name stem: `unary_<name>`. */
  readonly kernel: string;
  /** The function of one element, in double precision (the result is rounded by the store). */
  readonly f: (x: number) => number;
  /** int32 tensors compute in int32 (else they are cast to float32 first). */
  readonly keepsInt: boolean;
  /** The gradient rule; null for an op with no gradient (piecewise constant). */
  readonly backward: UnaryBackward | null;
}

/**
 * One side of a binary op's backward rule: the gradient with respect to that operand, before it
 * is summed back over broadcast axes, given the output's gradient `g`, both operands and the
 * output.
 *
 * @example
 * ```ts
 * import type { BinaryBackward } from "./op_defs.ts";
 * import { mul } from "./ops_elementwise.ts";
 * const mulA: BinaryBackward = (g, _a, b) => mul(g, b);
 * ```
 */
export type BinaryBackward = (g: Tensor, a: Operand, b: Operand, out: Tensor) => Tensor;

/**
 * One elementwise op of two arguments (either may be a number).
 *
 * @example
 * ```ts
 * import { BINARY_OPS } from "./op_defs.ts";
 * BINARY_OPS.mul.int?.(65536, 65536); // 0 (int32 wrap-around)
 * BINARY_OPS.lt.backward; // null
 * ```
 */
export interface BinaryOpDef<Name extends string = BinaryOp> {
  /** The op's name (its key in {@link BINARY_OPS}). */
  readonly name: Name;
  /** The GPU kernels' name stem: `binary_<name>`. */
  readonly kernel: string;
  /** The function of two elements, in double precision (the result is rounded by the store). */
  readonly f: (a: number, b: number) => number;
  /** The function on int32 storage where it is not `f` truncated (arithmetic that wraps like C). */
  readonly int?: (a: number, b: number) => number;
  /** What the backward rule reads besides the output's gradient (kept alive for it). */
  readonly saves: "nothing" | "operands" | "operands and output";
  /** The gradient rules for `a` and `b`; null for an op with no gradient (comparisons). */
  readonly backward: readonly [BinaryBackward, BinaryBackward] | null;
}

function unaryOp<Name extends UnaryOp>(
  name: Name,
  f: (x: number) => number,
  backward: UnaryBackward | null,
  keepsInt = false,
): UnaryOpDef<Name> {
  return { name, kernel: `unary_${name}`, f, keepsInt, backward };
}

function binaryOp<Name extends BinaryOp>(
  name: Name,
  f: (a: number, b: number) => number,
  saves: BinaryOpDef["saves"] = "nothing",
  backward: BinaryOpDef["backward"] = null,
  int?: (a: number, b: number) => number,
): BinaryOpDef<Name> {
  return { name, kernel: `binary_${name}`, f, int, saves, backward };
}

const SQRT_2_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * Every elementwise op of one argument. `gelu_grad` and `gelu_tanh_grad` are the derivatives of
 * the GELUs in one kernel each (the backward of `gelu` is `g · gelu_grad(x)`), differentiable
 * themselves for gradients of gradients.
 *
 * @example
 * ```ts
 * import { UNARY_OPS } from "./op_defs.ts";
 * UNARY_OPS.relu.f(-2); // 0
 * UNARY_OPS.sign.backward; // null
 * ```
 */
export const UNARY_OPS: { readonly [Name in UnaryOp]: UnaryOpDef<Name> } = {
  neg: unaryOp("neg", (x) => -x, (g) => neg(g), true),
  exp: unaryOp("exp", Math.exp, (g, _x, y) => mul(g, y)),
  log: unaryOp("log", Math.log, (g, x) => div(g, x)),
  sqrt: unaryOp("sqrt", Math.sqrt, (g, _x, y) => div(mul(g, 0.5), y)),
  rsqrt: unaryOp("rsqrt", (x) => 1 / Math.sqrt(x), (g, x, y) => mul(g, div(mul(y, -0.5), x))),
  // |x| has gradient sign(x): 0 at 0.
  abs: unaryOp("abs", Math.abs, (g, x) => mul(g, sign(x)), true),
  // −0 and NaN pass through.
  sign: unaryOp("sign", (x) => (x > 0 ? 1 : x < 0 ? -1 : x), null, true),
  sin: unaryOp("sin", Math.sin, (g, x) => mul(g, cos(x))),
  cos: unaryOp("cos", Math.cos, (g, x) => neg(mul(g, sin(x)))),
  tanh: unaryOp("tanh", Math.tanh, (g, _x, y) => mul(g, sub(1, mul(y, y)))),
  sigmoid: unaryOp("sigmoid", sigmoidOf, (g, _x, y) => mul(g, mul(y, sub(1, y)))),
  // Gradient 0 at 0; NaN passes through.
  relu: unaryOp("relu", (x) => (x < 0 ? 0 : x), (g, x) => mul(g, gt(x, 0)), true),
  gelu: unaryOp("gelu", gelu, (g, x) => mul(g, applyUnary("gelu_grad", x))),
  gelu_tanh: unaryOp("gelu_tanh", geluTanh, (g, x) => mul(g, applyUnary("gelu_tanh_grad", x))),
  silu: unaryOp("silu", (x) => x * sigmoidOf(x), (g, x) => {
    const s = sigmoid(x);
    return mul(g, mul(s, add(mul(x, sub(1, s)), 1)));
  }),
  softplus: unaryOp("softplus", softplus, (g, x) => mul(g, sigmoid(x))),
  erf: unaryOp("erf", erf, (g, x) => mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI)))),
  reciprocal: unaryOp("reciprocal", (x) => 1 / x, (g, _x, y) => neg(mul(g, mul(y, y)))),
  floor: unaryOp("floor", Math.floor, null),
  // d/dx (Φ + xφ) = 2φ − x²φ = φ·(2 − x²).
  gelu_grad: unaryOp("gelu_grad", geluGrad, (g, x) => {
    const x2 = mul(x, x);
    const pdf = mul(exp(mul(x2, -0.5)), INV_SQRT_2PI);
    return mul(g, mul(pdf, sub(2, x2)));
  }),
  // (1 − t²)·(u′ + 0.5·x·(u″ − 2t·u′²)) with t = tanh(u), u = c(x + a·x³), u′ = c(1 + 3a·x²), u″ = 6ca·x.
  gelu_tanh_grad: unaryOp("gelu_tanh_grad", geluTanhGrad, (g, x) => {
    const x2 = mul(x, x);
    const t = tanh(mul(mul(x, add(mul(x2, 0.044715), 1)), SQRT_2_PI));
    const du = mul(add(mul(x2, 3 * 0.044715), 1), SQRT_2_PI);
    const ddu = mul(x, 6 * 0.044715 * SQRT_2_PI);
    const inner = add(du, mul(mul(x, 0.5), sub(ddu, mul(mul(t, 2), mul(du, du)))));
    return mul(g, mul(sub(1, mul(t, t)), inner));
  }),
};

/** 1 where `a` wins the max (or min) of a pair, 0 where it loses, ½ at ties (PyTorch splits ties evenly). */
function share(wins: (a: Operand, b: Operand) => Tensor, a: Operand, b: Operand): Tensor {
  return add(wins(a, b), mul(eq(a, b), 0.5));
}

/**
 * Every elementwise op of two arguments. Comparisons give 1 or 0 in the computed dtype and have
 * no gradient.
 *
 * @example
 * ```ts
 * import { BINARY_OPS } from "./op_defs.ts";
 * BINARY_OPS.pow.f(1, NaN); // 1 (C's pow)
 * ```
 */
export const BINARY_OPS: { readonly [Name in BinaryOp]: BinaryOpDef<Name> } = {
  add: binaryOp("add", (a, b) => a + b, "nothing", [(g) => g, (g) => g]),
  sub: binaryOp("sub", (a, b) => a - b, "nothing", [(g) => g, (g) => neg(g)]),
  mul: binaryOp("mul", (a, b) => a * b, "operands", [(g, _a, b) => mul(g, b), (g, a) => mul(g, a)], Math.imul),
  div: binaryOp("div", (a, b) => a / b, "operands", [
    (g, _a, b) => div(g, b),
    (g, a, b) => neg(div(mul(g, a), mul(b, b))),
  ]),
  // The gradient with respect to the exponent uses log(a): NaN for a ≤ 0.
  pow: binaryOp("pow", cpow, "operands and output", [
    (g, a, b) => {
      if (typeof b === "number") {
        if (b === 0) return mul(g, 0);
        if (b === 1) return g;
        if (b === 2) return mul(g, mul(a, 2));
        return mul(g, mul(pow(a, b - 1), b));
      }
      return mul(g, mul(b, pow(a, sub(b, 1))));
    },
    (g, a, _b, out) => mul(g, mul(out, typeof a === "number" ? Math.log(a) : log(a))),
  ], ipow),
  maximum: binaryOp("maximum", Math.max, "operands", [
    (g, a, b) => mul(g, share(gt, a, b)),
    (g, a, b) => mul(g, sub(1, share(gt, a, b))),
  ]),
  minimum: binaryOp("minimum", Math.min, "operands", [
    (g, a, b) => mul(g, share(lt, a, b)),
    (g, a, b) => mul(g, sub(1, share(lt, a, b))),
  ]),
  eq: binaryOp("eq", (a, b) => (a === b ? 1 : 0)),
  ne: binaryOp("ne", (a, b) => (a !== b ? 1 : 0)),
  lt: binaryOp("lt", (a, b) => (a < b ? 1 : 0)),
  le: binaryOp("le", (a, b) => (a <= b ? 1 : 0)),
  gt: binaryOp("gt", (a, b) => (a > b ? 1 : 0)),
  ge: binaryOp("ge", (a, b) => (a >= b ? 1 : 0)),
};

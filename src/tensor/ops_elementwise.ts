/**
 * Elementwise operations with NumPy broadcasting, and their gradients (written in tensor ops, so
 * they can be differentiated again).
 *
 * Type rules: two tensors compute in the wider of their dtypes; a plain number takes the tensor's
 * dtype (an int32 tensor combined with a non-integer number computes in float32); float functions
 * of int32 tensors compute in float32. Comparisons return 1 or 0 in the computed dtype and carry
 * no gradient.
 *
 * @module
 */

import type { BinaryOp, UnaryOp, View } from "./backend.ts";
import { checkDType, type DType, isFloat, promoteTypes } from "./dtype.ts";
import { record } from "./autograd.ts";
import { ArgumentError, DTypeError } from "./errors.ts";
import { broadcastShapes, shapesEqual } from "./shape.ts";
import { type Operand, Tensor } from "./tensor.ts";
import { sumTo } from "./ops_reduce.ts";
import { checkNumber, checkTensor, describe } from "./validate.ts";

/**
 * A view of `t` broadcast to `shape` (stride 0 on new or size-1 axes); no copy.
 *
 * @example
 * ```ts
 * import { broadcastView } from "./ops_elementwise.ts";
 * // broadcastView(t, [4, 3]) for t of shape [3]
 * ```
 */
export function broadcastView(t: Tensor, shape: readonly number[]): View {
  if (shapesEqual(t.shape, shape)) return t;
  const lead = shape.length - t.shape.length;
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const j = i - lead;
    return t.shape[j] === 1 && d !== 1 ? 0 : t.strides[j];
  });
  return { buffer: t.buffer, shape, strides, offset: t.offset };
}

function operandDType(op: string, a: Operand, b: Operand): DType {
  if (a instanceof Tensor && b instanceof Tensor) {
    a.sameBackend(op, b);
    return promoteTypes(a.dtype, b.dtype);
  }
  const t = (a instanceof Tensor ? a : b) as Tensor;
  const n = (a instanceof Tensor ? b : a) as number;
  if (typeof n !== "number") {
    throw new ArgumentError(op, `operand must be a Tensor or a number, got ${typeof n} ${describe(n)}`);
  }
  return t.dtype === "int32" && !Number.isInteger(n) ? "float32" : t.dtype;
}

function asDType(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : cast(t, dtype);
}

function forwardBinary(op: BinaryOp, a: Operand, b: Operand, name: string): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) {
    throw new ArgumentError(name, `at least one operand must be a Tensor, got ${describe(a)} and ${describe(b)}`);
  }
  const dtype = operandDType(name, a, b);
  // Check the shapes before any work (a dtype cast) is done.
  const shape = a instanceof Tensor && b instanceof Tensor
    ? broadcastShapes(name, a.shape, b.shape)
    : [...(a instanceof Tensor ? a : b as Tensor).shape];
  const ta = a instanceof Tensor ? asDType(a, dtype) : a;
  const tb = b instanceof Tensor ? asDType(b, dtype) : b;
  const backend = (ta instanceof Tensor ? ta : tb as Tensor).backend;
  const va = ta instanceof Tensor ? broadcastView(ta, shape) : ta;
  const vb = tb instanceof Tensor ? broadcastView(tb, shape) : tb;
  return Tensor.fromBuffer(backend.binary(op, va, vb, shape, dtype), shape, dtype);
}

type GradRule = (g: Tensor, out: Tensor) => Tensor;

function binaryWithGrad(
  op: BinaryOp,
  a: Operand,
  b: Operand,
  saved: Tensor[],
  ga: GradRule,
  gb: GradRule,
  outSaved = false,
): Tensor {
  const out = forwardBinary(op, a, b, op);
  const inputs: Tensor[] = [];
  const rules: ((g: Tensor) => Tensor)[] = [];
  if (a instanceof Tensor) {
    inputs.push(a);
    rules.push((g) => sumTo(ga(g, out), a.shape));
  }
  if (b instanceof Tensor) {
    inputs.push(b);
    rules.push((g) => sumTo(gb(g, out), b.shape));
  }
  return record(
    op,
    out,
    inputs,
    outSaved ? [...saved, out] : saved,
    (g, needs) => rules.map((r, i) => needs[i] ? r(g) : null),
  );
}

/**
 * a + b with broadcasting.
 *
 * @example
 * ```ts
 * import { add } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * add(tensor([1, 2]), 1).toArray(); // [2, 3]
 * ```
 */
export function add(a: Operand, b: Operand): Tensor {
  return binaryWithGrad("add", a, b, [], (g) => g, (g) => g);
}

/**
 * a − b with broadcasting.
 *
 * @example
 * ```ts
 * import { sub } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * sub(1, tensor([1, 2])).toArray(); // [0, -1]
 * ```
 */
export function sub(a: Operand, b: Operand): Tensor {
  return binaryWithGrad("sub", a, b, [], (g) => g, (g) => neg(g));
}

/**
 * a · b with broadcasting.
 *
 * @example
 * ```ts
 * import { mul } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * mul(tensor([1, 2]), tensor([[3], [4]])).toArray(); // [[3, 6], [4, 8]]
 * ```
 */
export function mul(a: Operand, b: Operand): Tensor {
  const saved = [a, b].filter((x): x is Tensor => x instanceof Tensor);
  return binaryWithGrad("mul", a, b, saved, (g) => mul(g, b), (g) => mul(g, a));
}

/**
 * a / b with broadcasting. True division: int32 operands divide in float32 (as PyTorch and NumPy).
 *
 * @example
 * ```ts
 * import { div } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * div(tensor([1, 2]), 2).toArray(); // [0.5, 1]
 * ```
 */
export function div(a: Operand, b: Operand): Tensor {
  if (a instanceof Tensor && !isFloat(a.dtype) && (!(b instanceof Tensor) || !isFloat(b.dtype))) a = cast(a, "float32");
  else if (b instanceof Tensor && !isFloat(b.dtype) && !(a instanceof Tensor)) b = cast(b, "float32");
  const saved = [a, b].filter((x): x is Tensor => x instanceof Tensor);
  return binaryWithGrad(
    "div",
    a,
    b,
    saved,
    (g) => div(g, b),
    (g) => neg(div(mul(g, a), mul(b, b))),
  );
}

/**
 * aᵇ with broadcasting. The gradient with respect to the exponent uses log(a) and is NaN for a ≤ 0.
 *
 * @example
 * ```ts
 * import { pow } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * pow(tensor([2, 3]), 2).toArray(); // [4, 9]
 * ```
 */
export function pow(a: Operand, b: Operand): Tensor {
  const saved = [a, b].filter((x): x is Tensor => x instanceof Tensor);
  return binaryWithGrad(
    "pow",
    a,
    b,
    saved,
    (g) => {
      if (typeof b === "number") {
        if (b === 0) return mul(g, 0);
        if (b === 1) return g;
        if (b === 2) return mul(g, mul(a, 2));
        return mul(g, mul(pow(a, b - 1), b));
      }
      return mul(g, mul(b, pow(a, sub(b, 1))));
    },
    (g, out) => mul(g, mul(out, typeof a === "number" ? Math.log(a) : log(a))),
    true,
  );
}

function maskedPair(op: "maximum" | "minimum", a: Operand, b: Operand): Tensor {
  const saved = [a, b].filter((x): x is Tensor => x instanceof Tensor);
  // Ties split the gradient evenly (as PyTorch does).
  const winA = () => add(op === "maximum" ? gt(a, b) : lt(a, b), mul(eq(a, b), 0.5));
  return binaryWithGrad(op, a, b, saved, (g) => mul(g, winA()), (g) => mul(g, sub(1, winA())));
}

/**
 * Elementwise maximum (ties send half the gradient each way).
 *
 * @example
 * ```ts
 * import { maximum } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * maximum(tensor([1, 5]), 3).toArray(); // [3, 5]
 * ```
 */
export function maximum(a: Operand, b: Operand): Tensor {
  return maskedPair("maximum", a, b);
}

/**
 * Elementwise minimum (ties send half the gradient each way).
 *
 * @example
 * ```ts
 * import { minimum } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * minimum(tensor([1, 5]), 3).toArray(); // [1, 3]
 * ```
 */
export function minimum(a: Operand, b: Operand): Tensor {
  return maskedPair("minimum", a, b);
}

function compare(op: BinaryOp, a: Operand, b: Operand): Tensor {
  return forwardBinary(op, a, b, op);
}

/** Elementwise a == b as 1/0 (no gradient). @example `eq(tensor([1, 2]), 2) // [0, 1]` */
export function eq(a: Operand, b: Operand): Tensor {
  return compare("eq", a, b);
}
/** Elementwise a != b as 1/0 (no gradient). @example `ne(tensor([1, 2]), 2) // [1, 0]` */
export function ne(a: Operand, b: Operand): Tensor {
  return compare("ne", a, b);
}
/** Elementwise a < b as 1/0 (no gradient). @example `lt(tensor([1, 2]), 2) // [1, 0]` */
export function lt(a: Operand, b: Operand): Tensor {
  return compare("lt", a, b);
}
/** Elementwise a <= b as 1/0 (no gradient). @example `le(tensor([1, 2]), 2) // [1, 1]` */
export function le(a: Operand, b: Operand): Tensor {
  return compare("le", a, b);
}
/** Elementwise a > b as 1/0 (no gradient). @example `gt(tensor([1, 2]), 1) // [0, 1]` */
export function gt(a: Operand, b: Operand): Tensor {
  return compare("gt", a, b);
}
/** Elementwise a >= b as 1/0 (no gradient). @example `ge(tensor([1, 2]), 2) // [0, 1]` */
export function ge(a: Operand, b: Operand): Tensor {
  return compare("ge", a, b);
}

function floatInput(x: Tensor): Tensor {
  return isFloat(x.dtype) ? x : cast(x, "float32");
}

function unaryForward(op: UnaryOp, x: Tensor): Tensor {
  return Tensor.fromBuffer(x.backend.unary(op, x, x.dtype), x.shape, x.dtype);
}

type UnaryRule = (g: Tensor, x: Tensor, y: Tensor) => Tensor | null;

function unary(op: UnaryOp, input: Tensor, rule: UnaryRule, keepInt = false): Tensor {
  checkTensor(op, "x", input);
  const x = keepInt ? input : floatInput(input);
  const y = unaryForward(op, x);
  return record(op, y, [x], [y], (g) => [rule(g, x, y)]);
}

/**
 * −x.
 *
 * @example
 * ```ts
 * import { neg } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * neg(tensor([1, -2])).toArray(); // [-1, 2]
 * ```
 */
export function neg(x: Tensor): Tensor {
  return unary("neg", x, (g) => neg(g), true);
}

/** eˣ. @example `exp(tensor([0])) // [1]` */
export function exp(x: Tensor): Tensor {
  return unary("exp", x, (g, _x, y) => mul(g, y));
}

/** Natural logarithm. @example `log(tensor([1])) // [0]` */
export function log(x: Tensor): Tensor {
  return unary("log", x, (g, x) => div(g, x));
}

/** √x. @example `sqrt(tensor([4])) // [2]` */
export function sqrt(x: Tensor): Tensor {
  return unary("sqrt", x, (g, _x, y) => div(mul(g, 0.5), y));
}

/** 1/√x. @example `rsqrt(tensor([4])) // [0.5]` */
export function rsqrt(x: Tensor): Tensor {
  return unary("rsqrt", x, (g, x, y) => mul(g, div(mul(y, -0.5), x)));
}

/** |x| (gradient sign(x), 0 at 0). @example `abs(tensor([-2])) // [2]` */
export function abs(x: Tensor): Tensor {
  return unary("abs", x, (g, x) => mul(g, sign(x)), true);
}

/** sign(x) ∈ {−1, 0, 1} (zero gradient). @example `sign(tensor([-2, 0, 3])) // [-1, 0, 1]` */
export function sign(x: Tensor): Tensor {
  return unaryForward("sign", checkTensor("sign", "x", x));
}

/** floor(x) (zero gradient). @example `floor(tensor([1.5])) // [1]` */
export function floor(x: Tensor): Tensor {
  return unaryForward("floor", floatInput(checkTensor("floor", "x", x)));
}

/** sin x. @example `sin(tensor([0])) // [0]` */
export function sin(x: Tensor): Tensor {
  return unary("sin", x, (g, x) => mul(g, cos(x)));
}

/** cos x. @example `cos(tensor([0])) // [1]` */
export function cos(x: Tensor): Tensor {
  return unary("cos", x, (g, x) => neg(mul(g, sin(x))));
}

/** tanh x. @example `tanh(tensor([0])) // [0]` */
export function tanh(x: Tensor): Tensor {
  return unary("tanh", x, (g, _x, y) => mul(g, sub(1, mul(y, y))));
}

/** 1/(1+e⁻ˣ). @example `sigmoid(tensor([0])) // [0.5]` */
export function sigmoid(x: Tensor): Tensor {
  return unary("sigmoid", x, (g, _x, y) => mul(g, mul(y, sub(1, y))));
}

/** max(x, 0) (gradient 0 at 0). @example `relu(tensor([-1, 2])) // [0, 2]` */
export function relu(x: Tensor): Tensor {
  return unary("relu", x, (g, x) => mul(g, gt(x, 0)), true);
}

const SQRT_2_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * GELU: x·Φ(x) exactly (`"none"`, via erf) or with the tanh approximation (`"tanh"`).
 *
 * @example
 * ```ts
 * import { gelu } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * gelu(tensor([0, 1])).toArray(); // [0, 0.8413...]
 * ```
 */
export function gelu(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  if (approximate === "tanh") return unary("gelu_tanh", x, (g, x) => mul(g, geluGrad(x, "tanh")));
  if (approximate !== "none") {
    throw new ArgumentError("gelu", `approximate must be "none" or "tanh", got ${describe(approximate)}`);
  }
  return unary("gelu", x, (g, x) => mul(g, geluGrad(x, "none")));
}

/**
 * The derivative of GELU in one elementwise kernel (the backward of {@link gelu} is `g · geluGrad(x)`),
 * differentiable itself (its derivative is written in tensor ops) for gradients of gradients.
 * Exact form: Φ(x) + x·φ(x); tanh form: 0.5(1 + t) + 0.5·x·(1 − t²)·u′ with t = tanh(u),
 * u = √(2/π)(x + 0.044715x³).
 */
function geluGrad(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  if (approximate === "tanh") {
    return unary("gelu_tanh_grad", x, (g, x) => {
      // (1 − t²)·(u′ + 0.5·x·(u″ − 2t·u′²)) with u′ = c(1 + 3a·x²), u″ = 6ca·x.
      const x2 = mul(x, x);
      const t = tanh(mul(mul(x, add(mul(x2, 0.044715), 1)), SQRT_2_PI));
      const du = mul(add(mul(x2, 3 * 0.044715), 1), SQRT_2_PI);
      const ddu = mul(x, 6 * 0.044715 * SQRT_2_PI);
      const inner = add(du, mul(mul(x, 0.5), sub(ddu, mul(mul(t, 2), mul(du, du)))));
      return mul(g, mul(sub(1, mul(t, t)), inner));
    });
  }
  if (approximate !== "none") {
    throw new ArgumentError("geluGrad", `approximate must be "none" or "tanh", got ${JSON.stringify(approximate)}`);
  }
  // d/dx (Φ + xφ) = 2φ − x²φ = φ·(2 − x²).
  return unary("gelu_grad", x, (g, x) => {
    const x2 = mul(x, x);
    const pdf = mul(exp(mul(x2, -0.5)), INV_SQRT_2PI);
    return mul(g, mul(pdf, sub(2, x2)));
  });
}

/** x·sigmoid(x). @example `silu(tensor([0])) // [0]` */
export function silu(x: Tensor): Tensor {
  return unary("silu", x, (g, x) => {
    const s = sigmoid(x);
    return mul(g, mul(s, add(mul(x, sub(1, s)), 1)));
  });
}

/** log(1+eˣ), stable for large |x|. @example `softplus(tensor([0])) // [0.693...]` */
export function softplus(x: Tensor): Tensor {
  return unary("softplus", x, (g, x) => mul(g, sigmoid(x)));
}

/** The error function. @example `erf(tensor([0])) // [0]` */
export function erf(x: Tensor): Tensor {
  return unary("erf", x, (g, x) => mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI))));
}

/** 1/x. @example `reciprocal(tensor([4])) // [0.25]` */
export function reciprocal(x: Tensor): Tensor {
  return unary("reciprocal", x, (g, _x, y) => neg(mul(g, mul(y, y))));
}

/**
 * cond ? a : b elementwise with broadcasting over all three (cond: nonzero is true).
 *
 * @example
 * ```ts
 * import { where, gt } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * const x = tensor([-1, 2]);
 * where(gt(x, 0), x, 0).toArray(); // [0, 2]
 * ```
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (!(cond instanceof Tensor)) throw new ArgumentError("where", `condition must be a Tensor, got ${describe(cond)}`);
  if (!(a instanceof Tensor)) checkNumber("where", "a", a, { finite: false });
  if (!(b instanceof Tensor)) checkNumber("where", "b", b, { finite: false });
  let dtype: DType;
  if (a instanceof Tensor || b instanceof Tensor) dtype = operandDType("where", a, b);
  else dtype = isFloat(cond.dtype) ? cond.dtype : "float32";
  for (const t of [a, b]) if (t instanceof Tensor) cond.sameBackend("where", t);
  const shapes = [cond.shape, ...[a, b].filter((t): t is Tensor => t instanceof Tensor).map((t) => t.shape)];
  const shape = broadcastShapes("where", ...shapes);
  const ta = a instanceof Tensor ? asDType(a, dtype) : a;
  const tb = b instanceof Tensor ? asDType(b, dtype) : b;
  const out = Tensor.fromBuffer(
    cond.backend.where(
      broadcastView(cond, shape),
      ta instanceof Tensor ? broadcastView(ta, shape) : ta,
      tb instanceof Tensor ? broadcastView(tb, shape) : tb,
      shape,
      dtype,
    ),
    shape,
    dtype,
  );
  const inputs: Tensor[] = [];
  const rules: ((g: Tensor) => Tensor)[] = [];
  if (ta instanceof Tensor) {
    inputs.push(ta);
    rules.push((g) => sumTo(where(cond, g, 0), ta.shape));
  }
  if (tb instanceof Tensor) {
    inputs.push(tb);
    rules.push((g) => sumTo(where(cond, 0, g), tb.shape));
  }
  return record("where", out, inputs, [cond], (g, needs) => rules.map((r, i) => (needs[i] ? r(g) : null)));
}

/**
 * Clamps into [min, max]; the gradient is 1 inside and 0 outside.
 *
 * @example
 * ```ts
 * import { clamp } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * clamp(tensor([-2, 0.5, 3]), 0, 1).toArray(); // [0, 0.5, 1]
 * ```
 */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  checkTensor("clamp", "x", x);
  if (min !== undefined) checkNumber("clamp", "min", min, { finite: false });
  if (max !== undefined) checkNumber("clamp", "max", max, { finite: false });
  if (min !== undefined && max !== undefined && min > max) {
    throw new ArgumentError("clamp", `min ${min} is greater than max ${max}`);
  }
  let y = x;
  if (min !== undefined) y = where(lt(y, min), min, y);
  if (max !== undefined) y = where(gt(y, max), max, y);
  return y;
}

/**
 * Converts to `dtype`. Between float types the gradient is cast back; to int32 there is none.
 *
 * @example
 * ```ts
 * import { cast } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * cast(tensor([1.7]), "int32").toArray(); // [1]
 * ```
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor("cast", "x", x);
  if (x.dtype === dtype) return x;
  checkDType(dtype, "cast");
  const buffer = x.backend.full(x.size, 0, dtype);
  const out = Tensor.fromBuffer(buffer, x.shape, dtype);
  x.backend.copy(x, out);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return out;
  return record("cast", out, [x], [], (g) => [cast(g, x.dtype)]);
}

/** Throws a DTypeError unless `x` is a float tensor (for ops that need one). */
export function requireFloat(op: string, x: Tensor): void {
  if (!isFloat(x.dtype)) throw new DTypeError(op, `needs a float tensor, got ${x.dtype}; cast it first`);
}

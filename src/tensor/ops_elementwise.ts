/**
 * Elementwise operations with NumPy broadcasting. Each op is defined once in `op_defs.ts` (its
 * scalar function, kernel and backward rule, written in tensor ops so it can be differentiated
 * again); {@link applyUnary} and {@link applyBinary} run any of them, and the functions here are
 * the named entry points.
 *
 * Type rules: two tensors compute in the wider of their dtypes; a plain number takes the tensor's
 * dtype (an int32 tensor combined with a non-integer number computes in float32); float functions
 * of int32 tensors compute in float32. Comparisons return 1 or 0 in the computed dtype and carry
 * no gradient.
 *
 * @module
 */

import type { View } from "./backend.ts";
// op_defs.ts imports this module for its backward rules: read its tables inside functions only.
import { BINARY_OPS, type BinaryOp, UNARY_OPS, type UnaryOp } from "./op_defs.ts";
import { checkDType, type DType, isFloat, promoteTypes } from "./dtype.ts";
import { isGradEnabled, record } from "./autograd.ts";
import { ArgumentError, DTypeError } from "./errors.ts";
import { broadcastShapes, shapesEqual } from "./shape.ts";
import { type Operand, Tensor } from "./tensor.ts";
import { sumTo } from "./ops_reduce.ts";
import { checkNumber, checkOneOf, checkTensor, describe } from "./validate.ts";

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

/**
 * Runs the elementwise op `op` of two operands (see `BINARY_OPS`) with NumPy broadcasting,
 * recording its backward rule; the op computes in the wider dtype of the operands (a number
 * takes the tensor's dtype).
 *
 * @example
 * ```ts
 * import { applyBinary } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * applyBinary("maximum", tensor([1, 5]), 3).toArray(); // [3, 5]
 * ```
 */
export function applyBinary(op: BinaryOp, a: Operand, b: Operand): Tensor {
  if (!Object.hasOwn(BINARY_OPS, op)) checkOneOf("applyBinary", "op", op, Object.keys(BINARY_OPS));
  const out = forwardBinary(op, a, b, op);
  const def = BINARY_OPS[op];
  const ta = a instanceof Tensor ? a : null, tb = b instanceof Tensor ? b : null;
  // Nothing to record: skip building the rule (as `record` would drop it).
  if (!def.backward || !isGradEnabled() || !(ta?.requiresGrad || tb?.requiresGrad)) return out;
  const [ga, gb] = def.backward;
  const inputs = ta && tb ? [ta, tb] : [(ta ?? tb)!];
  const saved = def.saves === "nothing" ? [] : def.saves === "operands and output" ? [...inputs, out] : inputs;
  return record(op, out, inputs, saved, (g, needs) => {
    const da = ta && needs[0] ? sumTo(ga(g, a, b, out), ta.shape) : null;
    const db = tb && needs[ta ? 1 : 0] ? sumTo(gb(g, a, b, out), tb.shape) : null;
    return ta && tb ? [da, db] : [ta ? da : db];
  });
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
  return applyBinary("add", a, b);
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
  return applyBinary("sub", a, b);
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
  return applyBinary("mul", a, b);
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
  return applyBinary("div", a, b);
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
  return applyBinary("pow", a, b);
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
  return applyBinary("maximum", a, b);
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
  return applyBinary("minimum", a, b);
}

/** Elementwise a == b as 1/0 (no gradient). @example `eq(tensor([1, 2]), 2) // [0, 1]` */
export function eq(a: Operand, b: Operand): Tensor {
  return applyBinary("eq", a, b);
}
/** Elementwise a != b as 1/0 (no gradient). @example `ne(tensor([1, 2]), 2) // [1, 0]` */
export function ne(a: Operand, b: Operand): Tensor {
  return applyBinary("ne", a, b);
}
/** Elementwise a < b as 1/0 (no gradient). @example `lt(tensor([1, 2]), 2) // [1, 0]` */
export function lt(a: Operand, b: Operand): Tensor {
  return applyBinary("lt", a, b);
}
/** Elementwise a <= b as 1/0 (no gradient). @example `le(tensor([1, 2]), 2) // [1, 1]` */
export function le(a: Operand, b: Operand): Tensor {
  return applyBinary("le", a, b);
}
/** Elementwise a > b as 1/0 (no gradient). @example `gt(tensor([1, 2]), 1) // [0, 1]` */
export function gt(a: Operand, b: Operand): Tensor {
  return applyBinary("gt", a, b);
}
/** Elementwise a >= b as 1/0 (no gradient). @example `ge(tensor([1, 2]), 2) // [0, 1]` */
export function ge(a: Operand, b: Operand): Tensor {
  return applyBinary("ge", a, b);
}

function floatInput(x: Tensor): Tensor {
  return isFloat(x.dtype) ? x : cast(x, "float32");
}

/**
 * Runs the elementwise op `op` of one tensor (see `UNARY_OPS`), recording its backward rule.
 * int32 tensors are cast to float32 first unless the op keeps integers (`neg`, `abs`, `sign`,
 * `relu`).
 *
 * @example
 * ```ts
 * import { applyUnary } from "./ops_elementwise.ts";
 * import { tensor } from "./creation.ts";
 * applyUnary("softplus", tensor([0])).toArray(); // [0.693...]
 * ```
 */
export function applyUnary(op: UnaryOp, input: Tensor): Tensor {
  if (!Object.hasOwn(UNARY_OPS, op)) checkOneOf("applyUnary", "op", op, Object.keys(UNARY_OPS));
  checkTensor(op, "x", input);
  const def = UNARY_OPS[op];
  const x = def.keepsInt ? input : floatInput(input);
  const y = Tensor.fromBuffer(x.backend.unary(op, x, x.dtype), x.shape, x.dtype);
  const rule = def.backward;
  return rule ? record(op, y, [x], [y], (g) => [rule(g, x, y)]) : y;
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
  return applyUnary("neg", x);
}

/** eˣ. @example `exp(tensor([0])) // [1]` */
export function exp(x: Tensor): Tensor {
  return applyUnary("exp", x);
}

/** Natural logarithm. @example `log(tensor([1])) // [0]` */
export function log(x: Tensor): Tensor {
  return applyUnary("log", x);
}

/** √x. @example `sqrt(tensor([4])) // [2]` */
export function sqrt(x: Tensor): Tensor {
  return applyUnary("sqrt", x);
}

/** 1/√x. @example `rsqrt(tensor([4])) // [0.5]` */
export function rsqrt(x: Tensor): Tensor {
  return applyUnary("rsqrt", x);
}

/** |x| (gradient sign(x), 0 at 0). @example `abs(tensor([-2])) // [2]` */
export function abs(x: Tensor): Tensor {
  return applyUnary("abs", x);
}

/** sign(x) ∈ {−1, 0, 1} (zero gradient). @example `sign(tensor([-2, 0, 3])) // [-1, 0, 1]` */
export function sign(x: Tensor): Tensor {
  return applyUnary("sign", x);
}

/** floor(x) (zero gradient). @example `floor(tensor([1.5])) // [1]` */
export function floor(x: Tensor): Tensor {
  return applyUnary("floor", x);
}

/** sin x. @example `sin(tensor([0])) // [0]` */
export function sin(x: Tensor): Tensor {
  return applyUnary("sin", x);
}

/** cos x. @example `cos(tensor([0])) // [1]` */
export function cos(x: Tensor): Tensor {
  return applyUnary("cos", x);
}

/** tanh x. @example `tanh(tensor([0])) // [0]` */
export function tanh(x: Tensor): Tensor {
  return applyUnary("tanh", x);
}

/** 1/(1+e⁻ˣ). @example `sigmoid(tensor([0])) // [0.5]` */
export function sigmoid(x: Tensor): Tensor {
  return applyUnary("sigmoid", x);
}

/** max(x, 0) (gradient 0 at 0). @example `relu(tensor([-1, 2])) // [0, 2]` */
export function relu(x: Tensor): Tensor {
  return applyUnary("relu", x);
}

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
  if (approximate === "tanh") return applyUnary("gelu_tanh", x);
  if (approximate !== "none") {
    throw new ArgumentError("gelu", `approximate must be "none" or "tanh", got ${describe(approximate)}`);
  }
  return applyUnary("gelu", x);
}

/** x·sigmoid(x). @example `silu(tensor([0])) // [0]` */
export function silu(x: Tensor): Tensor {
  return applyUnary("silu", x);
}

/** log(1+eˣ), stable for large |x|. @example `softplus(tensor([0])) // [0.693...]` */
export function softplus(x: Tensor): Tensor {
  return applyUnary("softplus", x);
}

/** The error function. @example `erf(tensor([0])) // [0]` */
export function erf(x: Tensor): Tensor {
  return applyUnary("erf", x);
}

/** 1/x. @example `reciprocal(tensor([4])) // [0.25]` */
export function reciprocal(x: Tensor): Tensor {
  return applyUnary("reciprocal", x);
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

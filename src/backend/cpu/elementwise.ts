/**
 * Elementwise kernels: unary and binary functions, `where`, and strided copies with dtype
 * conversion. Each walks its operands line by line (see `strided.ts`); the op is chosen by a
 * switch outside the loop, and each case is its own tight loop over typed arrays. Results are
 * computed in double precision and rounded by the store into the output array (float32 storage
 * rounds, int32 storage truncates toward zero and wraps like C).
 *
 * @module
 */

import type { BinaryOp, UnaryOp } from "../../tensor/backend.ts";
import { fromBFloat16Bits, toBFloat16Bits } from "../../tensor/dtype.ts";
import type { NumArray, Operand, StorageArray } from "./buffer.ts";
import { cpow, erf, gelu, geluGrad, geluTanh, geluTanhGrad, ipow, sigmoid, softplus } from "./math.ts";
import { linePlan } from "./strided.ts";
import { contiguousStrides } from "../../tensor/shape.ts";

/**
 * Applies `op` to one strided line: `o[oo + i*os] = op(x[xo + i*xs])` for i in [0, n).
 *
 * @example
 * ```ts
 * import { unaryLine } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * unaryLine("neg", new Float32Array([1, 2]), 0, 1, out, 0, 1, 2); // out = [-1, -2]
 * ```
 */
export function unaryLine(
  op: UnaryOp,
  x: NumArray,
  xo: number,
  xs: number,
  o: NumArray,
  oo: number,
  os: number,
  n: number,
): void {
  let j = xo;
  switch (op) {
    case "neg":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = -x[j];
      return;
    case "exp":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.exp(x[j]);
      return;
    case "log":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.log(x[j]);
      return;
    case "sqrt":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.sqrt(x[j]);
      return;
    case "rsqrt":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = 1 / Math.sqrt(x[j]);
      return;
    case "abs":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.abs(x[j]);
      return;
    case "sign":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) {
        const v = x[j];
        o[i] = v > 0 ? 1 : v < 0 ? -1 : v;
      }
      return;
    case "sin":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.sin(x[j]);
      return;
    case "cos":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.cos(x[j]);
      return;
    case "tanh":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.tanh(x[j]);
      return;
    case "sigmoid":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = sigmoid(x[j]);
      return;
    case "relu":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) {
        const v = x[j];
        o[i] = v < 0 ? 0 : v;
      }
      return;
    case "gelu":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = gelu(x[j]);
      return;
    case "gelu_tanh":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = geluTanh(x[j]);
      return;
    case "gelu_grad":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = geluGrad(x[j]);
      return;
    case "gelu_tanh_grad":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = geluTanhGrad(x[j]);
      return;
    case "silu":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) {
        const v = x[j];
        o[i] = v * sigmoid(v);
      }
      return;
    case "softplus":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = softplus(x[j]);
      return;
    case "erf":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = erf(x[j]);
      return;
    case "reciprocal":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = 1 / x[j];
      return;
    case "floor":
      for (let k = 0, i = oo; k < n; k++, i += os, j += xs) o[i] = Math.floor(x[j]);
      return;
    default:
      throw new Error(`unary: unknown op ${op}`);
  }
}

/**
 * Applies `op` to two strided lines: `o[oo + i*os] = op(a[ao + i*as], b[bo + i*bs])`. With
 * `int` set, `mul` and `pow` wrap like C int32 (other ops are exact before the int32 store).
 *
 * @example
 * ```ts
 * import { binaryLine } from "./elementwise.ts";
 * const out = new Float64Array(2);
 * binaryLine("add", false, new Float64Array([1, 2]), 0, 1, new Float64Array([10]), 0, 0, out, 0, 1, 2);
 * // out = [11, 12]
 * ```
 */
export function binaryLine(
  op: BinaryOp,
  int: boolean,
  a: NumArray,
  ao: number,
  as: number,
  b: NumArray,
  bo: number,
  bs: number,
  o: NumArray,
  oo: number,
  os: number,
  n: number,
): void {
  let ja = ao;
  let jb = bo;
  switch (op) {
    case "add":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] + b[jb];
      return;
    case "sub":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] - b[jb];
      return;
    case "mul":
      if (int) {
        for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = Math.imul(a[ja], b[jb]);
      } else {
        for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] * b[jb];
      }
      return;
    case "div":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] / b[jb];
      return;
    case "pow":
      if (int) {
        for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = ipow(a[ja], b[jb]);
      } else {
        for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = cpow(a[ja], b[jb]);
      }
      return;
    case "maximum":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = Math.max(a[ja], b[jb]);
      return;
    case "minimum":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = Math.min(a[ja], b[jb]);
      return;
    case "eq":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] === b[jb] ? 1 : 0;
      return;
    case "ne":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] !== b[jb] ? 1 : 0;
      return;
    case "lt":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] < b[jb] ? 1 : 0;
      return;
    case "le":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] <= b[jb] ? 1 : 0;
      return;
    case "gt":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] > b[jb] ? 1 : 0;
      return;
    case "ge":
      for (let k = 0, i = oo; k < n; k++, i += os, ja += as, jb += bs) o[i] = a[ja] >= b[jb] ? 1 : 0;
      return;
    default:
      throw new Error(`binary: unknown op ${op}`);
  }
}

/**
 * Float32 contiguous fast path of {@linkcode unaryLine} (every array a `Float32Array`, unit
 * strides): its loops only ever see one array type, so V8 compiles them monomorphic. Returns
 * false for ops it does not specialise (the caller then uses `unaryLine`).
 *
 * @example
 * ```ts
 * import { unaryLineF32 } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * unaryLineF32("relu", new Float32Array([-1, 2]), 0, out, 0, 2); // true; out = [0, 2]
 * ```
 */
export function unaryLineF32(
  op: UnaryOp,
  x: Float32Array,
  xo: number,
  o: Float32Array,
  oo: number,
  n: number,
): boolean {
  const d = xo - oo;
  const end = oo + n;
  switch (op) {
    case "neg":
      for (let i = oo; i < end; i++) o[i] = -x[i + d];
      return true;
    case "exp":
      for (let i = oo; i < end; i++) o[i] = Math.exp(x[i + d]);
      return true;
    case "log":
      for (let i = oo; i < end; i++) o[i] = Math.log(x[i + d]);
      return true;
    case "sqrt":
      for (let i = oo; i < end; i++) o[i] = Math.sqrt(x[i + d]);
      return true;
    case "rsqrt":
      for (let i = oo; i < end; i++) o[i] = 1 / Math.sqrt(x[i + d]);
      return true;
    case "abs":
      for (let i = oo; i < end; i++) o[i] = Math.abs(x[i + d]);
      return true;
    case "tanh":
      for (let i = oo; i < end; i++) o[i] = Math.tanh(x[i + d]);
      return true;
    case "sigmoid":
      for (let i = oo; i < end; i++) o[i] = sigmoid(x[i + d]);
      return true;
    case "relu":
      for (let i = oo; i < end; i++) {
        const v = x[i + d];
        o[i] = v < 0 ? 0 : v;
      }
      return true;
    case "silu":
      for (let i = oo; i < end; i++) {
        const v = x[i + d];
        o[i] = v * sigmoid(v);
      }
      return true;
    case "reciprocal":
      for (let i = oo; i < end; i++) o[i] = 1 / x[i + d];
      return true;
    default:
      return false;
  }
}

/**
 * Float32 fast path of {@linkcode binaryLine} for arithmetic ops: every array a `Float32Array`,
 * unit output stride, each input either unit stride or a broadcast scalar (stride 0). Returns
 * false when it does not apply (the caller then uses `binaryLine`).
 *
 * @example
 * ```ts
 * import { binaryLineF32 } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * binaryLineF32("mul", new Float32Array([1, 2]), 0, 1, new Float32Array([3]), 0, 0, out, 0, 2); // out = [3, 6]
 * ```
 */
export function binaryLineF32(
  op: BinaryOp,
  a: Float32Array,
  ao: number,
  as: number,
  b: Float32Array,
  bo: number,
  bs: number,
  o: Float32Array,
  oo: number,
  n: number,
): boolean {
  const end = oo + n;
  if (as === 1 && bs === 1) {
    const da = ao - oo;
    const db = bo - oo;
    switch (op) {
      case "add":
        for (let i = oo; i < end; i++) o[i] = a[i + da] + b[i + db];
        return true;
      case "sub":
        for (let i = oo; i < end; i++) o[i] = a[i + da] - b[i + db];
        return true;
      case "mul":
        for (let i = oo; i < end; i++) o[i] = a[i + da] * b[i + db];
        return true;
      case "div":
        for (let i = oo; i < end; i++) o[i] = a[i + da] / b[i + db];
        return true;
      case "maximum":
        for (let i = oo; i < end; i++) o[i] = Math.max(a[i + da], b[i + db]);
        return true;
      case "minimum":
        for (let i = oo; i < end; i++) o[i] = Math.min(a[i + da], b[i + db]);
        return true;
      default:
        return false;
    }
  }
  if (as === 1 && bs === 0) {
    const da = ao - oo;
    const c = b[bo];
    switch (op) {
      case "add":
        for (let i = oo; i < end; i++) o[i] = a[i + da] + c;
        return true;
      case "sub":
        for (let i = oo; i < end; i++) o[i] = a[i + da] - c;
        return true;
      case "mul":
        for (let i = oo; i < end; i++) o[i] = a[i + da] * c;
        return true;
      case "div":
        for (let i = oo; i < end; i++) o[i] = a[i + da] / c;
        return true;
      case "maximum":
        for (let i = oo; i < end; i++) o[i] = Math.max(a[i + da], c);
        return true;
      case "minimum":
        for (let i = oo; i < end; i++) o[i] = Math.min(a[i + da], c);
        return true;
      default:
        return false;
    }
  }
  if (as === 0 && bs === 1) {
    const c = a[ao];
    const db = bo - oo;
    switch (op) {
      case "add":
        for (let i = oo; i < end; i++) o[i] = c + b[i + db];
        return true;
      case "sub":
        for (let i = oo; i < end; i++) o[i] = c - b[i + db];
        return true;
      case "mul":
        for (let i = oo; i < end; i++) o[i] = c * b[i + db];
        return true;
      case "div":
        for (let i = oo; i < end; i++) o[i] = c / b[i + db];
        return true;
      case "maximum":
        for (let i = oo; i < end; i++) o[i] = Math.max(c, b[i + db]);
        return true;
      case "minimum":
        for (let i = oo; i < end; i++) o[i] = Math.min(c, b[i + db]);
        return true;
      default:
        return false;
    }
  }
  return false;
}

/**
 * Computes `op(x)` elementwise over `shape` into the contiguous array `out`.
 *
 * @example
 * ```ts
 * import { unaryInto } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * unaryInto("exp", { data: new Float32Array([0, 1]), offset: 0, strides: [1] }, [2], out);
 * ```
 */
export function unaryInto(op: UnaryOp, x: Operand, shape: readonly number[], out: NumArray): void {
  const plan = linePlan(shape, [contiguousStrides(shape), x.strides], [0, x.offset]);
  const pos = plan.walker.pos;
  const [os, xs] = plan.inner;
  const xd = x.data;
  if (out instanceof Float32Array && xd instanceof Float32Array && os === 1 && xs === 1 && plan.count > 0) {
    if (unaryLineF32(op, xd, pos[1], out, pos[0], plan.n)) {
      for (let l = 1; l < plan.count; l++) {
        plan.walker.next();
        unaryLineF32(op, xd, pos[1], out, pos[0], plan.n);
      }
      return;
    }
  }
  for (let l = 0; l < plan.count; l++) {
    unaryLine(op, xd, pos[1], xs, out, pos[0], os, plan.n);
    plan.walker.next();
  }
}

/**
 * Computes `op(a, b)` elementwise over `shape` into the contiguous array `out` (see
 * {@linkcode binaryLine} for `int`).
 *
 * @example
 * ```ts
 * import { binaryInto } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * const a = { data: new Float32Array([1, 2]), offset: 0, strides: [1] };
 * binaryInto("mul", a, a, [2], out, false); // out = [1, 4]
 * ```
 */
export function binaryInto(
  op: BinaryOp,
  a: Operand,
  b: Operand,
  shape: readonly number[],
  out: NumArray,
  int: boolean,
): void {
  const plan = linePlan(shape, [contiguousStrides(shape), a.strides, b.strides], [0, a.offset, b.offset]);
  const pos = plan.walker.pos;
  const [os, as, bs] = plan.inner;
  const ad = a.data;
  const bd = b.data;
  if (
    out instanceof Float32Array && ad instanceof Float32Array && bd instanceof Float32Array && os === 1 &&
    plan.count > 0
  ) {
    if (binaryLineF32(op, ad, pos[1], as, bd, pos[2], bs, out, pos[0], plan.n)) {
      for (let l = 1; l < plan.count; l++) {
        plan.walker.next();
        binaryLineF32(op, ad, pos[1], as, bd, pos[2], bs, out, pos[0], plan.n);
      }
      return;
    }
  }
  for (let l = 0; l < plan.count; l++) {
    binaryLine(op, int, ad, pos[1], as, bd, pos[2], bs, out, pos[0], os, plan.n);
    plan.walker.next();
  }
}

/**
 * `out = cond ? a : b` elementwise over `shape` (cond nonzero, NaN included, picks `a`).
 *
 * @example
 * ```ts
 * import { whereInto } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * const c = { data: new Int32Array([1, 0]), offset: 0, strides: [1] };
 * const a = { data: new Float32Array([5]), offset: 0, strides: [0] };
 * const b = { data: new Float32Array([7]), offset: 0, strides: [0] };
 * whereInto(c, a, b, [2], out); // out = [5, 7]
 * ```
 */
export function whereInto(cond: Operand, a: Operand, b: Operand, shape: readonly number[], out: NumArray): void {
  const plan = linePlan(
    shape,
    [contiguousStrides(shape), cond.strides, a.strides, b.strides],
    [0, cond.offset, a.offset, b.offset],
  );
  const pos = plan.walker.pos;
  const [os, cs, as, bs] = plan.inner;
  const c = cond.data;
  const ad = a.data;
  const bd = b.data;
  const n = plan.n;
  for (let l = 0; l < plan.count; l++) {
    let jc = pos[1];
    let ja = pos[2];
    let jb = pos[3];
    for (let k = 0, i = pos[0]; k < n; k++, i += os, jc += cs, ja += as, jb += bs) {
      out[i] = c[jc] !== 0 ? ad[ja] : bd[jb];
    }
    plan.walker.next();
  }
}

/**
 * A strided window onto storage (bfloat16 as raw bits), for {@linkcode copyStrided}.
 *
 * @example
 * ```ts
 * import type { StorageWindow } from "./elementwise.ts";
 * const column: StorageWindow = { data: new Float32Array(6), offset: 1, strides: [3] }; // column 1 of a 2×3
 * ```
 */
export interface StorageWindow {
  /** Storage array. */
  readonly data: StorageArray;
  /** Element index of the first element. */
  readonly offset: number;
  /** Element steps of each axis. */
  readonly strides: readonly number[];
}

function copyLine(s: StorageArray, so: number, ss: number, d: StorageArray, dO: number, ds: number, n: number): void {
  let j = so;
  if (d instanceof Uint16Array) {
    if (s instanceof Uint16Array) {
      for (let k = 0, i = dO; k < n; k++, i += ds, j += ss) d[i] = s[j];
    } else {
      for (let k = 0, i = dO; k < n; k++, i += ds, j += ss) d[i] = toBFloat16Bits(s[j]);
    }
  } else if (s instanceof Uint16Array) {
    for (let k = 0, i = dO; k < n; k++, i += ds, j += ss) d[i] = fromBFloat16Bits(s[j]);
  } else {
    for (let k = 0, i = dO; k < n; k++, i += ds, j += ss) d[i] = s[j];
  }
}

/**
 * Copies the view `src` over `shape` into the window `dst`, converting element types:
 * float to int32 truncates toward zero (out-of-range values wrap modulo 2^32, NaN gives 0), any
 * number to bfloat16 rounds to nearest even, bfloat16 to bfloat16 copies the bits.
 *
 * @example
 * ```ts
 * import { copyStrided } from "./elementwise.ts";
 * const dst = new Int32Array(3);
 * copyStrided({ data: new Float32Array([1.7, -2.7, 3]), offset: 2, strides: [-1] }, { data: dst, offset: 0, strides: [1] }, [3]);
 * // dst = [3, -2, 1]
 * ```
 */
export function copyStrided(src: StorageWindow, dst: StorageWindow, shape: readonly number[]): void {
  const plan = linePlan(shape, [dst.strides, src.strides], [dst.offset, src.offset]);
  const pos = plan.walker.pos;
  const [ds, ss] = plan.inner;
  for (let l = 0; l < plan.count; l++) {
    copyLine(src.data, pos[1], ss, dst.data, pos[0], ds, plan.n);
    plan.walker.next();
  }
}

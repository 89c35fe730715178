/**
 * Elementwise kernels: the unary and binary ops of `op_defs.ts`, `where`, and strided copies
 * with dtype conversion. Each walks its operands line by line (see `strided.ts`).
 *
 * An op's loops are made from its definition the first time it runs: a strided loop over any
 * typed arrays, and contiguous loops for `Float32Array` and `Float64Array` operands (for a
 * binary op also with either operand a broadcast scalar). Each loop is compiled as a function of
 * its own (`new Function`) around the op's scalar function (its expression copied in where it is
 * a one-line arrow function or a function of `Math`), so V8 sees one callee and, in the
 * contiguous loops, one array type at each site; one loop shared by every op would call a
 * different function per op and be deoptimised. Results are computed in
 * double precision and rounded by the store into the output array (float32 storage rounds,
 * int32 storage truncates toward zero and wraps like C).
 *
 * @module
 */

import { BINARY_OPS, type BinaryOp, UNARY_OPS, type UnaryOp } from "../../tensor/op_defs.ts";
import { fromBFloat16Bits, toBFloat16Bits } from "../../tensor/dtype.ts";
import type { NumArray, Operand, StorageArray } from "./buffer.ts";
import { simdBinary, simdCopy, simdUnary } from "./elementwise_simd.ts";
import { linePlan } from "./strided.ts";
import { contiguousStrides } from "../../tensor/shape.ts";

/** `o[oo + i*os] = f(x[xo + i*xs])` for i in [0, n). */
type StridedUnary = (x: NumArray, xo: number, xs: number, o: NumArray, oo: number, os: number, n: number) => void;
/** `o[oo + i] = f(x[xo + i])` for i in [0, n), on arrays of one class. */
type ContiguousUnary<A> = (x: A, xo: number, o: A, oo: number, n: number) => void;
/** `o[oo + i*os] = f(a[ao + i*as], b[bo + i*bs])` for i in [0, n). */
type StridedBinary = (
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
) => void;
/** `o[oo + i] = f(a[ao + i], b[bo + i])` for i in [0, n), on arrays of one class. */
type ContiguousBinary<A> = (a: A, ao: number, b: A, bo: number, o: A, oo: number, n: number) => void;

/** The loops of a binary op on arrays of one class: both operands contiguous, or one a scalar. */
interface ContiguousBinaryLoops<A> {
  /** Both operands contiguous. */
  readonly vv: ContiguousBinary<A>;
  /** `b` is the scalar `b[bo]`. */
  readonly vs: ContiguousBinary<A>;
  /** `a` is the scalar `a[ao]`. */
  readonly sv: ContiguousBinary<A>;
}

/**
 * The loops of one unary op.
 *
 * @example
 * ```ts
 * import { unaryLoops } from "./elementwise.ts";
 * const out = new Float32Array(2);
 * unaryLoops("neg").f32(new Float32Array([1, 2]), 0, out, 0, 2); // out = [-1, -2]
 * ```
 */
export interface UnaryLoops {
  /** Any arrays, any steps. */
  readonly strided: StridedUnary;
  /** Contiguous float32. */
  readonly f32: ContiguousUnary<Float32Array>;
  /** Contiguous float64. */
  readonly f64: ContiguousUnary<Float64Array>;
}

/**
 * The loops of one binary op.
 *
 * @example
 * ```ts
 * import { binaryLoops } from "./elementwise.ts";
 * const out = new Float64Array(2);
 * binaryLoops("add").f64.vs(new Float64Array([1, 2]), 0, new Float64Array([10]), 0, out, 0, 2); // out = [11, 12]
 * ```
 */
export interface BinaryLoops {
  /** Any arrays, any steps. */
  readonly strided: StridedBinary;
  /** Any arrays, any steps, with int32 arithmetic where the op has its own (`mul` and `pow` wrap like C). */
  readonly int: StridedBinary;
  /** Contiguous float32. */
  readonly f32: ContiguousBinaryLoops<Float32Array>;
  /** Contiguous float64. */
  readonly f64: ContiguousBinaryLoops<Float64Array>;
}

/** An arrow function of one expression: `(a, b) => a + b`, `x => -x` (as `Function.toString` prints it). */
const ARROW = /^\(?\s*([\w$,\s]*?)\s*\)?\s*=>\s*([^{\s][\s\S]*)$/;
/** Names an inlined body may use besides its parameters (property names and numbers are removed first). */
const GLOBALS = new Set(["Math", "NaN", "Infinity"]);
/** The name of each function of `Math` (`Math.exp` → "exp"). */
const MATH_NAMES = new Map(
  Object.getOwnPropertyNames(Math)
    .map((name) => [(Math as unknown as Record<string, unknown>)[name], name] as const)
    .filter(([fn]) => typeof fn === "function"),
);

/**
 * The source of `f` applied to the argument expressions `args` inside a loop: `bind` declares
 * the parameters and `value` is the result. A function of `Math` is called by its name, and an
 * arrow function of one expression in its parameters (and `Math`) alone is copied into the loop,
 * so the arithmetic compiles inline; otherwise the loop calls `f` (V8 inlines that call too, at a
 * small cost per element that only the cheapest ops notice).
 */
function application(f: (...args: number[]) => number, args: readonly string[]): { bind: string; value: string } {
  const math = MATH_NAMES.get(f);
  if (math) return { bind: "", value: `Math.${math}(${args.join(", ")})` };
  const m = ARROW.exec(Function.prototype.toString.call(f));
  if (m) {
    const params = m[1].split(",").map((p) => p.trim()).filter((p) => p !== "");
    const expr = m[2].trim();
    const names = expr.replace(/\.\s*[A-Za-z_$][\w$]*/g, "").replace(/\b\d[\d.]*(?:e[+-]?\d+)?/gi, "")
      .match(/[A-Za-z_$][\w$]*/g) ?? [];
    const bindable = params.length === args.length && params.every((p) => /^[A-Za-z_][\w]*$/.test(p));
    if (bindable && names.every((name) => params.includes(name) || GLOBALS.has(name))) {
      return { bind: `const ${params.map((p, k) => `${p} = ${args[k]}`).join(", ")};`, value: `(${expr})` };
    }
  }
  return { bind: "", value: `f(${args.join(", ")})` };
}

/**
 * Compiles `function name(params) { head; for (loop) { $o[$i] = f(args) } }` around the scalar
 * function `f` (see {@link application}). The name is unique per op and loop, so V8 never shares
 * one compiled function (and its type feedback) between two ops; loop variables start with `$`
 * so that they cannot meet an inlined body's names.
 */
function compile<T>(
  name: string,
  f: (...args: number[]) => number,
  loop: { params: string; head: string; loop: string; args: readonly string[] },
): T {
  const { bind, value } = application(f, loop.args);
  const body = `${loop.head} for (${loop.loop}) { ${bind} $o[$i] = ${value}; }`;
  return new Function("f", `"use strict"; return function ${name}(${loop.params}) { ${body} };`)(f) as T;
}

const UNARY_STRIDED = {
  params: "$x, $xo, $xs, $o, $oo, $os, $n",
  head: "",
  loop: "let $k = 0, $i = $oo, $j = $xo; $k < $n; $k++, $i += $os, $j += $xs",
  args: ["$x[$j]"],
};
const UNARY_CONTIGUOUS = {
  params: "$x, $xo, $o, $oo, $n",
  head: "const $d = $xo - $oo; const $end = $oo + $n;",
  loop: "let $i = $oo; $i < $end; $i++",
  args: ["$x[$i + $d]"],
};
const BINARY_STRIDED = {
  params: "$a, $ao, $as, $b, $bo, $bs, $o, $oo, $os, $n",
  head: "",
  loop: "let $k = 0, $i = $oo, $ja = $ao, $jb = $bo; $k < $n; $k++, $i += $os, $ja += $as, $jb += $bs",
  args: ["$a[$ja]", "$b[$jb]"],
};
const CONTIGUOUS = "$a, $ao, $b, $bo, $o, $oo, $n";
const UPTO = "let $i = $oo; $i < $end; $i++";
const BINARY_CONTIGUOUS = {
  vv: {
    params: CONTIGUOUS,
    head: "const $da = $ao - $oo; const $db = $bo - $oo; const $end = $oo + $n;",
    loop: UPTO,
    args: ["$a[$i + $da]", "$b[$i + $db]"],
  },
  vs: {
    params: CONTIGUOUS,
    head: "const $da = $ao - $oo; const $c = $b[$bo]; const $end = $oo + $n;",
    loop: UPTO,
    args: ["$a[$i + $da]", "$c"],
  },
  sv: {
    params: CONTIGUOUS,
    head: "const $c = $a[$ao]; const $db = $bo - $oo; const $end = $oo + $n;",
    loop: UPTO,
    args: ["$c", "$b[$i + $db]"],
  },
};

/**
 * Runs a new contiguous loop twenty times on 64 elements: a loop whose first call covers millions
 * of elements is compiled while it runs (on-stack replacement) and stays about a fifth slower on
 * the cheapest ops than one V8 has first seen run.
 */
function warm<L extends (...args: never[]) => void>(
  loop: L,
  ctor: Float32ArrayConstructor | Float64ArrayConstructor,
  operands: number,
): L {
  const x = new ctor(64), o = new ctor(64);
  const run = loop as unknown as (...args: unknown[]) => void;
  for (let k = 0; k < 20; k++) {
    if (operands === 1) run(x, 0, o, 0, 64);
    else run(x, 0, x, 0, o, 0, 64);
  }
  return loop;
}

const unaryCache = new Map<UnaryOp, UnaryLoops>();
const binaryCache = new Map<BinaryOp, BinaryLoops>();

/**
 * The loops of the unary op `op`, compiled at first use.
 *
 * @example
 * ```ts
 * import { unaryLoops } from "./elementwise.ts";
 * const out = new Float64Array(1);
 * unaryLoops("exp").strided(new Float64Array([0, 1]), 1, 1, out, 0, 1, 1); // out = [e]
 * ```
 */
export function unaryLoops(op: UnaryOp): UnaryLoops {
  let loops = unaryCache.get(op);
  if (loops) return loops;
  const { kernel, f } = UNARY_OPS[op];
  loops = {
    strided: compile(kernel, f, UNARY_STRIDED),
    f32: warm(compile(`${kernel}_f32`, f, UNARY_CONTIGUOUS), Float32Array, 1),
    f64: warm(compile(`${kernel}_f64`, f, UNARY_CONTIGUOUS), Float64Array, 1),
  };
  unaryCache.set(op, loops);
  return loops;
}

/**
 * The loops of the binary op `op`, compiled at first use.
 *
 * @example
 * ```ts
 * import { binaryLoops } from "./elementwise.ts";
 * const out = new Int32Array(1);
 * binaryLoops("mul").int(new Int32Array([65536]), 0, 0, new Int32Array([65536]), 0, 0, out, 0, 1, 1); // out = [0]
 * ```
 */
export function binaryLoops(op: BinaryOp): BinaryLoops {
  let loops = binaryCache.get(op);
  if (loops) return loops;
  const { kernel, f, int } = BINARY_OPS[op];
  const of = <A>(
    suffix: string,
    ctor: Float32ArrayConstructor | Float64ArrayConstructor,
  ): ContiguousBinaryLoops<A> => ({
    vv: warm(compile(`${kernel}_${suffix}`, f, BINARY_CONTIGUOUS.vv), ctor, 2),
    vs: warm(compile(`${kernel}_${suffix}_vs`, f, BINARY_CONTIGUOUS.vs), ctor, 2),
    sv: warm(compile(`${kernel}_${suffix}_sv`, f, BINARY_CONTIGUOUS.sv), ctor, 2),
  });
  const stridedLoop = compile<StridedBinary>(kernel, f, BINARY_STRIDED);
  loops = {
    strided: stridedLoop,
    int: int ? compile(`${kernel}_i32`, int, BINARY_STRIDED) : stridedLoop,
    f32: of<Float32Array>("f32", Float32Array),
    f64: of<Float64Array>("f64", Float64Array),
  };
  binaryCache.set(op, loops);
  return loops;
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
  if (simdUnary(op, x, shape, out)) return;
  const plan = linePlan(shape, [contiguousStrides(shape), x.strides], [0, x.offset]);
  const pos = plan.walker.pos;
  const [os, xs] = plan.inner;
  const xd = x.data;
  const loops = unaryLoops(op);
  const contiguous = os === 1 && xs === 1 && xd.constructor === out.constructor
    ? out instanceof Float32Array ? loops.f32 : out instanceof Float64Array ? loops.f64 : null
    : null;
  for (let l = 0; l < plan.count; l++) {
    if (contiguous) contiguous(xd as never, pos[1], out as never, pos[0], plan.n);
    else loops.strided(xd, pos[1], xs, out, pos[0], os, plan.n);
    plan.walker.next();
  }
}

/**
 * Computes `op(a, b)` elementwise over `shape` into the contiguous array `out`; with `int` set,
 * in the op's int32 arithmetic (see {@linkcode BinaryLoops}).
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
  if (!int && simdBinary(op, a, b, shape, out)) return;
  const plan = linePlan(shape, [contiguousStrides(shape), a.strides, b.strides], [0, a.offset, b.offset]);
  const pos = plan.walker.pos;
  const [os, as, bs] = plan.inner;
  const ad = a.data;
  const bd = b.data;
  const loops = binaryLoops(op);
  let contiguous: ContiguousBinary<never> | null = null;
  if (!int && os === 1 && ad.constructor === out.constructor && bd.constructor === out.constructor) {
    const typed = out instanceof Float32Array ? loops.f32 : out instanceof Float64Array ? loops.f64 : null;
    if (typed) {
      contiguous = as === 1
        ? (bs === 1 ? typed.vv : bs === 0 ? typed.vs : null)
        : as === 0 && bs === 1
        ? typed.sv
        : null;
    }
  }
  const strided = int ? loops.int : loops.strided;
  for (let l = 0; l < plan.count; l++) {
    if (contiguous) contiguous(ad as never, pos[1], bd as never, pos[2], out as never, pos[0], plan.n);
    else strided(ad, pos[1], as, bd, pos[2], bs, out, pos[0], os, plan.n);
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
  if (simdCopy(src, dst, shape)) return;
  const plan = linePlan(shape, [dst.strides, src.strides], [dst.offset, src.offset]);
  const pos = plan.walker.pos;
  const [ds, ss] = plan.inner;
  for (let l = 0; l < plan.count; l++) {
    copyLine(src.data, pos[1], ss, dst.data, pos[0], ds, plan.n);
    plan.walker.next();
  }
}

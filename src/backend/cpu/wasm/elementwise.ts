/**
 * Elementwise kernels, one per op of `src/tensor/op_defs.ts` that has a vector form here (found
 * by the op's name: `unary_<op>_<t>`, `binary_<op>_<t>`), for float32 and float64.
 *
 * An op is either exact in its own lanes — the IEEE operations (add, sub, mul, div, sqrt, min,
 * max, floor, comparisons, sign flips), which round once exactly as the scalar definition's
 * double-precision result rounded by the store — or computed on float64 lanes (float32 widened
 * first, the result rounded once) with the vector functions of `vmath.ts`, unless it has a form
 * on float32 lanes for float32 tensors (`vmath32.ts`).
 *
 * The operands are rows: `rows` × `n` elements, each operand with its own row stride and an
 * element stride of one element or zero (a broadcast value); the output is contiguous. A job is
 * a block of whole rows, or a fixed chunk of one long row.
 *
 * @module
 */

import type { BinaryOp, UnaryOp } from "../../../tensor/op_defs.ts";
import type { Expr, Fn, Local, Module } from "./asm.ts";
import { F32, F64, kernel, type Lane, loadWide, storeWide } from "./kernel.ts";
import { erfF64x2, expF64x2, logF64x2, sigmoidF64x2, SIN_COS_LIMIT, sinCosF64x2, tanhF64x2 } from "./vmath.ts";
import { sigmoidF32x4, tanhF32x4 } from "./vmath32.ts";

/** Elements one job covers (whole rows, or a chunk of a longer row). */
export const CHUNK = 16384;

/**
 * A vector form: on the element type's own lanes, or on float64 lanes for either type (with a
 * `float32` form on float32 lanes that float32 tensors take instead, where one is written); a
 * wide form with a `limit` is meaningful only for |x| up to it (the kernel reports each job's
 * largest |x|, see {@link simdLimit}).
 */
type UnaryForm =
  | { readonly own: (f: Fn, t: Lane, x: Expr) => Expr }
  | {
    readonly wide: (f: Fn, x: Expr, out: Local, single: boolean) => void;
    readonly float32?: (f: Fn, x: Expr, out: Local) => void;
    readonly limit?: number;
  };

/** The lanewise op of `t` by name (`add` → `f32x4.add` or `f64x2.add`). */
function lanes(f: Fn, t: Lane): Fn["f32x4"] | Fn["f64x2"] {
  return t.name === "f32" ? f.f32x4 : f.f64x2;
}

/** Ones where `mask` is set, zeros elsewhere, in `t`'s lanes. */
function ones(f: Fn, t: Lane, mask: Expr): Expr {
  return f.v128.and(mask, f.vconst(t.name === "f32" ? "f32x4" : "f64x2", 1));
}

/** A float64 constant vector. */
function c(f: Fn, value: number): Local {
  return f.vconst("f64x2", value);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** `out = tanh(c·(x + 0.044715·x·x·x))`, the tanh GELU's inner function, as `src/tensor/math.ts` writes it. */
function geluTanhInner(f: Fn, x: Local, out: Local, single: boolean): void {
  const cube = f.f64x2.mul(f.f64x2.mul(f.f64x2.mul(c(f, 0.044715), x), x), x);
  tanhF64x2(f, f.f64x2.mul(c(f, GELU_C), f.f64x2.add(x, cube)), out, single);
}

/** `out = 1 + erf(x/√2)`, the erf GELU's inner term, as `src/tensor/math.ts` writes it. */
function geluInner(f: Fn, x: Local, out: Local): void {
  erfF64x2(f, f.f64x2.mul(x, c(f, Math.SQRT1_2)), out);
  f.set(out, f.f64x2.add(c(f, 1), out));
}

/** The unary ops with a vector form. */
const UNARY: Partial<Record<UnaryOp, UnaryForm>> = {
  neg: { own: (f, t, x) => lanes(f, t).neg(x) },
  abs: { own: (f, t, x) => lanes(f, t).abs(x) },
  sqrt: { own: (f, t, x) => lanes(f, t).sqrt(x) },
  floor: { own: (f, t, x) => lanes(f, t).floor(x) },
  reciprocal: { own: (f, t, x) => lanes(f, t).div(f.vconst(t.name === "f32" ? "f32x4" : "f64x2", 1), x) },
  // x < 0 ? 0 : x (NaN and −0 pass through).
  relu: { own: (f, t, x) => f.v128.andnot(x, lanes(f, t).lt(x, f.vconst(t.name === "f32" ? "f32x4" : "f64x2", 0))) },
  rsqrt: { wide: (f, x, out) => f.set(out, f.f64x2.div(f.vconst("f64x2", 1), f.f64x2.sqrt(x))) },
  exp: { wide: expF64x2 },
  log: { wide: logF64x2 },
  tanh: { wide: tanhF64x2, float32: tanhF32x4 },
  sigmoid: { wide: sigmoidF64x2, float32: (f, x, out) => sigmoidF32x4(f, x, out) },
  erf: { wide: (f, x, out) => erfF64x2(f, x, out) },
  gelu: {
    wide: (f, x, out) => {
      // 0.5·x·(1 + erf(x/√2))
      const v = f.local("v128");
      f.set(v, x);
      geluInner(f, v, out);
      f.set(out, f.f64x2.mul(f.f64x2.mul(c(f, 0.5), v), out));
    },
  },
  gelu_grad: {
    // Its two terms cancel near x = −0.75: e^(−x²/2) in full precision even for float32.
    wide: (f, x, out) => {
      // 0.5·(1 + erf(x/√2)) + x·(1/√(2π))·e^(−x²/2)
      const v = f.local("v128"), e = f.local("v128");
      f.set(v, x);
      geluInner(f, v, out);
      expF64x2(f, f.f64x2.mul(f.f64x2.mul(c(f, -0.5), v), v), e);
      f.set(
        out,
        f.f64x2.add(f.f64x2.mul(c(f, 0.5), out), f.f64x2.mul(f.f64x2.mul(v, c(f, 1 / Math.sqrt(2 * Math.PI))), e)),
      );
    },
  },
  sin: { wide: (f, x, out) => sinCosF64x2(f, x, out, false), limit: SIN_COS_LIMIT },
  cos: { wide: (f, x, out) => sinCosF64x2(f, x, out, true), limit: SIN_COS_LIMIT },
  silu: {
    wide: (f, x, out) => {
      const v = f.local("v128");
      f.set(v, x);
      sigmoidF64x2(f, v, out);
      f.set(out, f.f64x2.mul(v, out));
    },
    float32: (f, x, out) => sigmoidF32x4(f, x, out, true),
  },
  gelu_tanh: {
    wide: (f, x, out, single) => {
      // 0.5·x·(1 + tanh(c·(x + 0.044715·x³)))
      const v = f.local("v128");
      f.set(v, x);
      geluTanhInner(f, v, out, single);
      f.set(out, f.f64x2.mul(f.f64x2.mul(c(f, 0.5), v), f.f64x2.add(c(f, 1), out)));
    },
  },
  gelu_tanh_grad: {
    wide: (f, x, out, single) => {
      // 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3·0.044715·x²), t = tanh(c·(x + 0.044715·x³))
      const v = f.local("v128"), t = f.local("v128");
      f.set(v, x);
      geluTanhInner(f, v, t, single);
      const slope = f.f64x2.mul(c(f, GELU_C), f.f64x2.add(c(f, 1), f.f64x2.mul(f.f64x2.mul(c(f, 3 * 0.044715), v), v)));
      const second = f.f64x2.mul(
        f.f64x2.mul(f.f64x2.mul(c(f, 0.5), v), f.f64x2.sub(c(f, 1), f.f64x2.mul(t, t))),
        slope,
      );
      f.set(out, f.f64x2.add(f.f64x2.mul(c(f, 0.5), f.f64x2.add(c(f, 1), t)), second));
    },
  },
  softplus: {
    wide: (f, x, out, single) => {
      // max(x, 0) + log1p(exp(−|x|)), log1p(y) as log(1 + y) corrected by (y − ((1 + y) − 1))/(1 + y).
      const v = f.local("v128"), e = f.local("v128"), u = f.local("v128");
      f.set(v, x);
      expF64x2(f, f.f64x2.neg(f.f64x2.abs(v)), e, single);
      f.set(u, f.f64x2.add(f.vconst("f64x2", 1), e));
      logF64x2(f, u, out);
      const correction = f.f64x2.div(f.f64x2.sub(e, f.f64x2.sub(u, f.vconst("f64x2", 1))), u);
      f.set(out, f.f64x2.add(f.f64x2.pmax(v, f.vconst("f64x2", 0)), f.f64x2.add(out, correction)));
    },
  },
};

/** Binary ops: exact in the element type's own lanes. */
const BINARY: Partial<Record<BinaryOp, (f: Fn, t: Lane, a: Expr, b: Expr) => Expr>> = {
  add: (f, t, a, b) => lanes(f, t).add(a, b),
  sub: (f, t, a, b) => lanes(f, t).sub(a, b),
  mul: (f, t, a, b) => lanes(f, t).mul(a, b),
  div: (f, t, a, b) => lanes(f, t).div(a, b),
  maximum: (f, t, a, b) => lanes(f, t).max(a, b),
  minimum: (f, t, a, b) => lanes(f, t).min(a, b),
  eq: (f, t, a, b) => ones(f, t, lanes(f, t).eq(a, b)),
  ne: (f, t, a, b) => ones(f, t, f.v128.not(lanes(f, t).eq(a, b))),
  lt: (f, t, a, b) => ones(f, t, lanes(f, t).lt(a, b)),
  le: (f, t, a, b) => ones(f, t, lanes(f, t).le(a, b)),
  gt: (f, t, a, b) => ones(f, t, lanes(f, t).gt(a, b)),
  ge: (f, t, a, b) => ones(f, t, lanes(f, t).ge(a, b)),
};

/**
 * Whether `op` has a kernel here.
 *
 * @example
 * ```ts
 * import { hasSimd } from "./elementwise.ts";
 * hasSimd("unary", "exp"); // true
 * hasSimd("binary", "pow"); // false
 * ```
 */
export function hasSimd(kind: "unary" | "binary", op: string): boolean {
  return kind === "unary" ? op in UNARY : op in BINARY;
}

/**
 * The largest |x| a unary op's SIMD kernel computes correctly, where it has one: after such a
 * kernel, 16 bytes into each job's 32 bytes of scratch, two float64 lanes hold the largest |x|
 * the job read (NaN ignored); where one exceeds the limit the caller computes the op another way.
 *
 * @example
 * ```ts
 * import { simdLimit } from "./elementwise.ts";
 * simdLimit("sin"); // 823549.6...
 * simdLimit("exp"); // undefined
 * ```
 */
export function simdLimit(op: string): number | undefined {
  const form = UNARY[op as UnaryOp];
  return form && "wide" in form ? form.limit : undefined;
}

/**
 * `value(v)` applied to one 16-byte vector of `t` at `src`, stored at `dst`; with `largest`, the
 * lanes' |x| folded into it.
 */
function applyVector(f: Fn, t: Lane, form: UnaryForm, src: Expr, dst: Expr, largest: Local | null): void {
  if ("own" in form) return f.v128.store(dst, form.own(f, t, f.v128.load(src)));
  if (t.name === "f32" && form.float32) {
    const y = f.local("v128");
    form.float32(f, f.v128.load(src), y);
    return f.v128.store(dst, y);
  }
  const outs = loadWide(f, t, src, 0).map((e) => {
    const x = f.local("v128"), y = f.local("v128");
    f.set(x, e);
    if (largest) f.set(largest, f.f64x2.pmax(largest, f.f64x2.abs(x))); // a NaN |x| leaves it
    form.wide(f, x, y, t.name === "f32");
    return y;
  });
  storeWide(f, t, dst, outs);
}

/**
 * The job's rows and element range: job j covers rows `[r0, r1)` of `n` elements, or for a row
 * longer than a chunk, elements `[e0, e1)` of row r0.
 */
function jobRange(f: Fn, job: Local, rows: Local, n: Local): { r0: Local; r1: Local; e0: Local; e1: Local } {
  const [r0, r1, e0, e1, per, chunks] = f.locals("i32", 6);
  f.if(f.i32.gt_s(n, CHUNK), () => {
    f.set(chunks, f.i32.div_s(f.i32.add(n, CHUNK - 1), CHUNK));
    f.set(r0, f.i32.div_s(job, chunks));
    f.set(r1, f.i32.add(r0, 1));
    f.set(e0, f.i32.mul(f.i32.rem_s(job, chunks), CHUNK));
    f.set(e1, f.i32.min_s(n, f.i32.add(e0, CHUNK)));
  }, () => {
    f.set(per, f.i32.div_s(CHUNK, f.i32.add(n, f.i32.eqz(n))));
    f.set(r0, f.i32.mul(job, per));
    f.set(r1, f.i32.min_s(rows, f.i32.add(r0, per)));
    f.set(e0, 0);
    f.set(e1, n);
  });
  return { r0, r1, e0, e1 };
}

/** i32 → i64. */
function wide(f: Fn, e: Expr): Expr {
  return f.i64.extend_i32_s(e);
}

/**
 * The copy kernels `copy_b4` and `copy_b8` (elements of 4 or 8 bytes, bits unchanged): planes ×
 * rows × n elements, each of source and destination with its own plane, row and element strides
 * (bytes). Arguments: src, its three strides, dst, its three strides, planes, rows, n. A job is a
 * block of rows (of any plane) or a chunk of a long row; contiguous rows copy whole vectors.
 */
function addCopyKernels(m: Module): void {
  for (const bytes of [4, 8]) {
    const V = 16 / bytes;
    kernel(m, `copy_b${bytes}`, (f, args, job) => {
      const [planes, rows, n, r, i, plane, row] = f.locals("i32", 7);
      const [src, dst, ss, ds] = f.locals("i64", 4);
      f.set(planes, args.i32(8));
      f.set(rows, f.i32.mul(planes, args.i32(9)));
      f.set(n, args.i32(10));
      f.set(ss, args.i64(3));
      f.set(ds, args.i64(7));
      const { r0, r1, e0, e1 } = jobRange(f, job, rows, n);
      const load = (p: Expr) => (bytes === 4 ? f.i32.load(p) : f.i64.load(p));
      const store = (p: Expr, v: Expr) => (bytes === 4 ? f.i32.store(p, v) : f.i64.store(p, v));
      f.for(r, r0, r1, 1, () => {
        f.set(plane, f.i32.div_s(r, args.i32(9)));
        f.set(row, f.i32.rem_s(r, args.i32(9)));
        const at = (base: number, s: number) =>
          f.i64.add(
            f.i64.add(
              f.i64.add(args.i64(base), f.i64.mul(wide(f, plane), args.i64(s))),
              f.i64.mul(wide(f, row), args.i64(s + 1)),
            ),
            f.i64.mul(wide(f, e0), args.i64(s + 2)),
          );
        f.set(src, at(0, 1));
        f.set(dst, at(4, 5));
        f.set(i, e0);
        f.if(f.i32.and(f.i64.eq(ss, bytes), f.i64.eq(ds, bytes)), () => {
          f.for(i, e0, f.i32.sub(e1, V - 1), V, () => {
            f.v128.store(dst, f.v128.load(src));
            f.set(src, f.i64.add(src, 16));
            f.set(dst, f.i64.add(dst, 16));
          });
        });
        f.for(i, i, e1, 1, () => {
          store(dst, load(src));
          f.set(src, f.i64.add(src, ss));
          f.set(dst, f.i64.add(dst, ds));
        });
      });
    });
  }
}

/**
 * Adds the elementwise kernels to `m`. Unary arguments: x, x's row stride, out, rows, n,
 * scratch. Binary arguments: a, a's row stride and element stride, b, b's row stride and element
 * stride, out, rows, n, scratch (addresses and strides in bytes; an element stride is 0 or the
 * element size, not both 0; 32 bytes of scratch per job, for the tail of a row).
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { addElementwiseKernels } from "./elementwise.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * addElementwiseKernels(m);
 * ```
 */
export function addElementwiseKernels(m: Module): void {
  addCopyKernels(m);
  for (const t of [F32, F64]) {
    const E = t.bytes, L = 16 / E;
    for (const [op, form] of Object.entries(UNARY) as [UnaryOp, UnaryForm][]) {
      kernel(m, `unary_${op}_${t.name}`, (f, args, job) => {
        const [rows, n, r, i] = f.locals("i32", 4);
        const [x, o, tmp] = f.locals("i64", 3);
        f.set(rows, args.i32(3));
        f.set(n, args.i32(4));
        const { r0, r1, e0, e1 } = jobRange(f, job, rows, n);
        f.set(tmp, f.i64.add(args.i64(5), wide(f, f.i32.shl(job, 5)))); // the job's scratch (32 bytes)
        const largest = "wide" in form && form.limit !== undefined ? f.local("v128") : null;
        if (largest) f.set(largest, f.vconst("f64x2", 0));
        f.for(r, r0, r1, 1, () => {
          f.set(x, f.i64.add(f.i64.add(args.i64(0), f.i64.mul(wide(f, r), args.i64(1))), wide(f, f.i32.mul(e0, E))));
          f.set(o, f.i64.add(args.i64(2), f.i64.mul(f.i64.add(f.i64.mul(wide(f, r), wide(f, n)), wide(f, e0)), E)));
          f.for(i, e0, f.i32.sub(e1, L - 1), L, () => {
            applyVector(f, t, form, x, o, largest);
            f.set(x, f.i64.add(x, 16));
            f.set(o, f.i64.add(o, 16));
          });
          // The tail (fewer than one vector) through the job's scratch vector.
          const tail = f.local("i32");
          f.set(tail, f.i32.and(f.i32.sub(e1, e0), L - 1));
          if (largest) f.v128.store(tmp, f.vconst("f64x2", 0)); // no stale lanes in the fold
          f.for(
            i,
            0,
            tail,
            1,
            () =>
              t.store(f, f.i64.add(tmp, wide(f, f.i32.mul(i, E))), t.load(f, f.i64.add(x, wide(f, f.i32.mul(i, E))))),
          );
          applyVector(f, t, form, tmp, tmp, largest);
          f.for(
            i,
            0,
            tail,
            1,
            () =>
              t.store(f, f.i64.add(o, wide(f, f.i32.mul(i, E))), t.load(f, f.i64.add(tmp, wide(f, f.i32.mul(i, E))))),
          );
        });
        if (largest) f.v128.store(tmp, largest, 16);
      });
    }
    for (const [op, fn] of Object.entries(BINARY) as [BinaryOp, (f: Fn, t: Lane, a: Expr, b: Expr) => Expr][]) {
      kernel(m, `binary_${op}_${t.name}`, (f, args, job) => {
        const [rows, n, r, i, tail] = f.locals("i32", 5);
        const [a, b, o, as, bs, tmp] = f.locals("i64", 6);
        f.set(rows, args.i32(7));
        f.set(n, args.i32(8));
        f.set(as, args.i64(2));
        f.set(bs, args.i64(5));
        const { r0, r1, e0, e1 } = jobRange(f, job, rows, n);
        f.set(tmp, f.i64.add(args.i64(9), wide(f, f.i32.shl(job, 5))));
        f.for(r, r0, r1, 1, () => {
          f.set(a, f.i64.add(f.i64.add(args.i64(0), f.i64.mul(wide(f, r), args.i64(1))), f.i64.mul(wide(f, e0), as)));
          f.set(b, f.i64.add(f.i64.add(args.i64(3), f.i64.mul(wide(f, r), args.i64(4))), f.i64.mul(wide(f, e0), bs)));
          f.set(o, f.i64.add(args.i64(6), f.i64.mul(f.i64.add(f.i64.mul(wide(f, r), wide(f, n)), wide(f, e0)), E)));
          /** The loop for one pair of element strides (E: contiguous, 0: broadcast). */
          const loop = (aStep: number, bStep: number) => {
            const operand = (p: Local, step: number) => step === 0 ? t.loadSplat(f, p) : f.v128.load(p);
            f.for(i, e0, f.i32.sub(e1, L - 1), L, () => {
              f.v128.store(o, fn(f, t, operand(a, aStep), operand(b, bStep)));
              if (aStep) f.set(a, f.i64.add(a, 16));
              if (bStep) f.set(b, f.i64.add(b, 16));
              f.set(o, f.i64.add(o, 16));
            });
          };
          f.if(f.i64.eq(as, 0), () => loop(0, E), () => f.if(f.i64.eq(bs, 0), () => loop(E, 0), () => loop(E, E)));
          // The tail through two scratch vectors.
          f.set(tail, f.i32.and(f.i32.sub(e1, e0), L - 1));
          f.for(i, 0, tail, 1, () => {
            const k = wide(f, f.i32.mul(i, E));
            t.store(f, f.i64.add(tmp, k), t.load(f, f.i64.add(a, f.i64.mul(wide(f, i), as))));
            t.store(f, f.i64.add(tmp, k), t.load(f, f.i64.add(b, f.i64.mul(wide(f, i), bs))), 16);
          });
          f.v128.store(tmp, fn(f, t, f.v128.load(tmp), f.v128.load(tmp, 16)));
          f.for(i, 0, tail, 1, () => {
            const k = wide(f, f.i32.mul(i, E));
            t.store(f, f.i64.add(o, k), t.load(f, f.i64.add(tmp, k)));
          });
        });
      });
    }
  }
}

/**
 * Vectorised elementary functions for the SIMD kernels, emitted inline (a macro per call site,
 * so the engine sees straight-line code and overlaps consecutive vectors).
 *
 * `exp` on float64 lanes: x = k·ln2 + r with k = nearest(x/ln2) and |r| ≤ ln2/2 (ln2 split in a
 * high part whose products with k are exact and a low part), e^r from its Taylor polynomial of
 * degree 13 (truncation error below 2^-56 relative), then scaled by 2^k as two factors 2^⌊k/2⌋
 * and 2^(k−⌊k/2⌋) built from exponent bits, so results that overflow give +∞, those that
 * underflow round once into the subnormals and to 0, and NaN stays NaN. Within 1 ulp of the
 * correctly rounded value over the whole range (tests/cpu_simd_test.ts measures it against
 * `Math.exp`).
 *
 * @module
 */

import { ERF_COEFFICIENTS } from "../../../tensor/math.ts";
import type { Expr, Fn, Local } from "./asm.ts";

const LOG2E = 1.4426950408889634;
/** ln 2 in two parts: the high part has 32 trailing zero bits, so k·LN2_HI is exact for |k| < 2^20. */
const LN2_HI = 0.6931471803691238;
const LN2_LO = 1.9082149292705877e-10;

/**
 * Terms of the exp and expm1 polynomials kept when the result is rounded to float32 (`single`):
 * the truncation error r^9/9! < 2^-31 relative stays far below half a float32 ulp (2^-24).
 */
const SINGLE_TERMS = 9;

/** 1/k! for k = 0 … 13. */
const TAYLOR = Array.from({ length: 14 }, (_, k) => {
  let f = 1;
  for (let i = 2; i <= k; i++) f *= i;
  return 1 / f;
});

/** 1.5·2^52: adding it rounds a float64 of magnitude below 2^51 to an integer held in its low bits. */
const SHIFTER = 6755399441055744;

/** 2^j for int64 lanes j in [-1022, 1023]: the biased exponent shifted into place. */
function pow2(f: Fn, j: Expr): Expr {
  return f.i64x2.shl(f.i64x2.add(j, f.vconst("i64x2", 1023n)), 52);
}

/**
 * The shared reduction of exp and expm1: x clamped to [-746, 710], k = nearest(x/ln2) (float64
 * and int64 lanes), r = x − k·ln2 with |r| ≤ ln2/2.
 */
function reduce(f: Fn, x: Expr): { k: Local; h: Local; r: Local } {
  const v = f.local("v128"), k = f.local("v128"), r = f.local("v128"), h = f.local("v128");
  const c = (value: number) => f.vconst("f64x2", value);
  // Clamp (pmax/pmin keep a NaN in their first operand).
  f.set(v, f.f64x2.pmin(f.f64x2.pmax(x, c(-746)), c(710)));
  // k = nearest(x/ln2), computed by adding the shifter: its low bits are then k as an integer.
  f.set(k, f.f64x2.relaxed_madd(v, c(LOG2E), c(SHIFTER)));
  f.set(h, f.i64x2.sub(k, c(SHIFTER))); // k as int64 lanes (the shifter's bits cancel)
  f.set(k, f.f64x2.sub(k, c(SHIFTER)));
  f.set(r, f.f64x2.relaxed_madd(k, c(-LN2_HI), v));
  f.set(r, f.f64x2.relaxed_madd(k, c(-LN2_LO), r));
  return { k, h, r };
}

/**
 * Horner's rule on float64 lanes (or float32 lanes, `f32x4`): Σ coefficients[i]·r^i, with
 * fused multiply-adds where the engine fuses them.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { polynomial } from "./vmath.ts";
 * const m = new Module();
 * m.func("p", ["f64"], ["f64"], (f, [x]) => {
 *   const r = f.local("v128");
 *   f.set(r, f.f64x2.splat(x));
 *   f.push(f.f64x2.extract_lane(polynomial(f, r, [1, 2, 3]), 0), "f64"); // 1 + 2x + 3x²
 * });
 * ```
 */
export function polynomial(
  f: Fn,
  r: Local,
  coefficients: readonly number[],
  lanes: "f32x4" | "f64x2" = "f64x2",
): Local {
  const p = f.local("v128");
  f.set(p, f.vconst(lanes, coefficients[coefficients.length - 1]));
  for (let i = coefficients.length - 2; i >= 0; i--) {
    f.set(p, f[lanes].relaxed_madd(p, r, f.vconst(lanes, coefficients[i])));
  }
  return p;
}

/** 2^k for int64 lanes k in [-2044, 2046], as two factors 2^⌊k/2⌋ and 2^(k−⌊k/2⌋) (each normal). */
function scale(f: Fn, h: Local): [Expr, Expr] {
  const half = f.i64x2.shr_s(h, 1);
  return [pow2(f, half), pow2(f, f.i64x2.sub(h, f.i64x2.shr_s(h, 1)))];
}

/**
 * Emits `out = exp(x)` on float64 lanes; with `single`, a shorter polynomial that is accurate
 * enough for a result rounded to float32.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { expF64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("exp2", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   expF64x2(f, f.f64x2.splat(x), y);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function expF64x2(f: Fn, x: Expr, out: Local, single = false): void {
  const { h, r } = reduce(f, x);
  const p = polynomial(f, r, single ? TAYLOR.slice(0, SINGLE_TERMS) : TAYLOR);
  const [s1, s2] = scale(f, h);
  f.set(out, f.f64x2.mul(f.f64x2.mul(p, s1), s2));
}

/** 1/(i+1)! for i = 0 … 13: expm1(r) = r · Σ r^i/(i+1)!. */
const EXPM1 = TAYLOR.slice(1).concat([TAYLOR[13] / 14]);

/**
 * Emits `out = exp(x) − 1` on float64 lanes, accurate near 0: with x = k·ln2 + r,
 * expm1(x) = 2^k·expm1(r) + (2^k − 1), expm1(r) from its Taylor polynomial (within 2 ulp).
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { expm1F64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("em1", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   expm1F64x2(f, f.f64x2.splat(x), y);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function expm1F64x2(f: Fn, x: Expr, out: Local, single = false): void {
  const { h, r } = reduce(f, x);
  const q = f.f64x2.mul(r, polynomial(f, r, single ? EXPM1.slice(0, SINGLE_TERMS) : EXPM1));
  const [s1, s2] = scale(f, h);
  const s = f.local("v128");
  f.set(s, f.f64x2.mul(s1, s2));
  f.set(out, f.f64x2.add(f.f64x2.mul(s, q), f.f64x2.sub(s, f.vconst("f64x2", 1))));
}

/**
 * Emits `out = tanh(x)` on float64 lanes: with y = expm1(−2|x|), tanh|x| = −y/(y + 2), signed
 * as x (no cancellation anywhere; NaN stays NaN).
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { tanhF64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("th", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   tanhF64x2(f, f.f64x2.splat(x), y);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function tanhF64x2(f: Fn, x: Expr, out: Local, single = false): void {
  const v = f.local("v128"), y = f.local("v128");
  f.set(v, x);
  expm1F64x2(f, f.f64x2.mul(f.vconst("f64x2", -2), f.f64x2.abs(v)), y, single);
  const t = f.f64x2.div(f.f64x2.neg(y), f.f64x2.add(y, f.vconst("f64x2", 2)));
  f.set(out, f.v128.or(t, f.v128.and(v, f.vconst("f64x2", -0))));
}

/**
 * Emits `out = 1/(1 + e^−x)` on float64 lanes as `src/tensor/math.ts` computes it: with
 * e = exp(−|x|), 1/(1 + e) for x ≥ 0 and e/(1 + e) otherwise.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { sigmoidF64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("sg", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   sigmoidF64x2(f, f.f64x2.splat(x), y);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function sigmoidF64x2(f: Fn, x: Expr, out: Local): void {
  const v = f.local("v128"), e = f.local("v128"), d = f.local("v128");
  f.set(v, x);
  expF64x2(f, f.f64x2.neg(f.f64x2.abs(v)), e);
  f.set(d, f.f64x2.add(f.vconst("f64x2", 1), e));
  const positive = f.f64x2.div(f.vconst("f64x2", 1), d);
  f.set(out, f.v128.bitselect(positive, f.f64x2.div(e, d), f.f64x2.ge(v, f.vconst("f64x2", 0))));
}

/** fdlibm's log coefficients: log(1+f) = f − f²/2 + s·(f²/2 + R(s²)), s = f/(2+f). */
const LG = [
  6.666666666666735130e-01,
  3.999999999940941908e-01,
  2.857142874366239149e-01,
  2.222219843214978396e-01,
  1.818357216161805012e-01,
  1.531383769920937332e-01,
  1.479819860511658591e-01,
];

/**
 * Emits `out = log(x)` on float64 lanes (fdlibm's algorithm, vectorised: x = 2^k·m with m in
 * [√2/2, √2), subnormal x scaled by 2^54 first; within 1 ulp). log(0) = −∞, log of a negative
 * number or NaN is NaN, log(+∞) = +∞.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { logF64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("log2", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   logF64x2(f, f.f64x2.splat(x), y);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function logF64x2(f: Fn, x: Expr, out: Local): void {
  const [v, tiny, bits, k, m, s, z, w, hfsq, r] = f.locals("v128", 10);
  const c = (value: number) => f.vconst("f64x2", value);
  const ci = (value: bigint) => f.vconst("i64x2", value);
  f.set(v, x);
  f.set(tiny, f.f64x2.lt(v, c(2 ** -1022)));
  f.set(bits, f.v128.bitselect(f.f64x2.mul(v, c(2 ** 54)), v, tiny));
  // Shift the exponent so that the mantissa lands in [√2/2, √2) (fdlibm's 0x3fe6a09e trick).
  f.set(bits, f.i64x2.add(bits, ci(BigInt(0x3ff00000 - 0x3fe6a09e) << 32n)));
  const exponent = f.i64x2.sub(f.i64x2.shr_s(bits, 52), ci(1023n));
  const low32 = f.v128.shuffle(exponent, exponent, [0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11]);
  f.set(k, f.f64x2.add(f.f64x2.convert_low_i32x4_s(low32), f.v128.bitselect(c(-54), c(0), tiny)));
  f.set(m, f.i64x2.add(f.v128.and(bits, ci(0x000fffffffffffffn)), ci(BigInt(0x3fe6a09e) << 32n)));
  f.set(m, f.f64x2.sub(m, c(1))); // f = m − 1
  f.set(s, f.f64x2.div(m, f.f64x2.add(m, c(2))));
  f.set(z, f.f64x2.mul(s, s));
  f.set(w, f.f64x2.mul(z, z));
  const odd = f.f64x2.mul(
    z,
    f.f64x2.relaxed_madd(w, f.f64x2.relaxed_madd(w, f.f64x2.relaxed_madd(w, c(LG[6]), c(LG[4])), c(LG[2])), c(LG[0])),
  );
  const even = f.f64x2.mul(w, f.f64x2.relaxed_madd(w, f.f64x2.relaxed_madd(w, c(LG[5]), c(LG[3])), c(LG[1])));
  f.set(r, f.f64x2.add(odd, even));
  f.set(hfsq, f.f64x2.mul(c(0.5), f.f64x2.mul(m, m)));
  // k·ln2_hi − ((hfsq − (s·(hfsq + R) + k·ln2_lo)) − f)
  const inner = f.f64x2.add(f.f64x2.mul(s, f.f64x2.add(hfsq, r)), f.f64x2.mul(k, c(LN2_LO)));
  f.set(out, f.f64x2.sub(f.f64x2.mul(k, c(LN2_HI)), f.f64x2.sub(f.f64x2.sub(hfsq, inner), m)));
  f.set(out, f.v128.bitselect(c(-Infinity), out, f.f64x2.eq(v, c(0))));
  f.set(out, f.v128.bitselect(c(NaN), out, f.f64x2.lt(v, c(0))));
  f.set(out, f.v128.bitselect(c(Infinity), out, f.f64x2.eq(v, c(Infinity))));
  f.set(out, f.v128.bitselect(out, v, f.f64x2.eq(v, v))); // NaN in, NaN out
}

/** π/2 in four parts (fdlibm's pio2_1, pio2_2, pio2_3 of 33 bits each, then pio2_3t): k·part is exact for |k| < 2^20. */
const PIO2 = [
  1.57079632673412561417e+00,
  6.07710050630396597660e-11,
  2.02226624871116645580e-21,
  8.47842766036889956997e-32,
];

/** fdlibm's __kernel_sin and __kernel_cos coefficients (|r| ≤ π/4). */
const SIN = [
  -1.66666666666666324348e-01,
  8.33333333332248946124e-03,
  -1.98412698298579493134e-04,
  2.75573137070700676789e-06,
  -2.50507602534068634195e-08,
  1.58969099521155010221e-10,
];
const COS = [
  4.16666666666666019037e-02,
  -1.38888888888741095749e-03,
  2.48015872894767294178e-05,
  -2.75573143513906633035e-07,
  2.08757232129817482790e-09,
  -1.13596475577881948265e-11,
];

/**
 * Arguments of sin and cos up to this magnitude are reduced here (the quadrant count stays below
 * 2^19, so its products with the parts of π/2 are exact); a caller computes larger ones (and ±∞)
 * another way.
 */
export const SIN_COS_LIMIT = 2 ** 19 * (Math.PI / 2);

/**
 * Emits `out = sin(x)` (or `cos(x)`) on float64 lanes, fdlibm's algorithm vectorised for
 * |x| ≤ {@link SIN_COS_LIMIT}: x = k·π/2 + (r + y) with π/2 in four parts and r + y a
 * double-double, then __kernel_sin or __kernel_cos of (r, y) by the quadrant k mod 4 (within
 * 1 ulp). NaN stays NaN and sin keeps the sign of ±0; lanes beyond the limit hold no meaningful
 * value.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { sinCosF64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("sin2", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   sinCosF64x2(f, f.f64x2.splat(x), y, false);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function sinCosF64x2(f: Fn, x: Expr, out: Local, cos: boolean): void {
  const [v, k, y1, w, r, e, y, z, q, s, cs] = f.locals("v128", 11);
  const c = (value: number) => f.vconst("f64x2", value);
  const L = f.f64x2;
  f.set(v, x);
  f.set(k, L.nearest(L.mul(v, c(2 / Math.PI))));
  f.set(y1, L.sub(v, L.mul(k, c(PIO2[0])))); // exact
  f.set(w, L.mul(k, c(PIO2[1]))); // exact
  // r + e = y1 − w exactly (two-sum), then the last parts into the tail.
  f.set(r, L.sub(y1, w));
  f.set(e, L.sub(r, y1));
  f.set(e, L.add(L.sub(y1, L.sub(r, e)), L.sub(L.neg(w), e)));
  f.set(e, L.sub(L.sub(e, L.mul(k, c(PIO2[2]))), L.mul(k, c(PIO2[3]))));
  f.set(y, L.add(r, e)); // renormalise: r ← r + e, y ← the part of e it lost
  f.set(e, L.sub(e, L.sub(y, r)));
  f.set(r, y);
  f.set(y, e);
  f.set(z, L.mul(r, r));
  // __kernel_sin(r, y): r − ((z·(y/2 − v·p) − y) − v·S1), v = z·r, p = S2 + z·(S3 + …).
  const p = polynomial(f, z, SIN.slice(1));
  f.set(e, L.mul(z, r));
  f.set(
    s,
    L.sub(r, L.sub(L.sub(L.mul(z, L.sub(L.mul(c(0.5), y), L.mul(e, p))), y), L.mul(e, c(SIN[0])))),
  );
  // __kernel_cos(r, y): w + (((1 − w) − z/2) + (z·p − r·y)), w = 1 − z/2, p = z·(C1 + z·(C2 + …)).
  const pc = L.mul(z, polynomial(f, z, COS));
  f.set(w, L.sub(c(1), L.mul(c(0.5), z)));
  f.set(cs, L.add(w, L.add(L.sub(L.sub(c(1), w), L.mul(c(0.5), z)), L.sub(L.mul(z, pc), L.mul(r, y)))));
  // The quadrant (k + 1 for cos) mod 4: odd quadrants take the other kernel, quadrants 2 and 3 flip the sign.
  f.set(q, cos ? L.add(k, c(1)) : k);
  f.set(q, L.sub(q, L.mul(c(4), L.floor(L.mul(q, c(0.25))))));
  f.set(out, f.v128.bitselect(cs, s, L.eq(L.sub(q, L.mul(c(2), L.floor(L.mul(q, c(0.5))))), c(1))));
  f.set(out, f.v128.xor(out, f.v128.and(L.ge(q, c(2)), c(-0))));
  if (!cos) f.set(out, f.v128.bitselect(v, out, L.eq(v, c(0)))); // sin(±0) = ±0
}

/**
 * Emits `out = erf(x)` on float64 lanes: `src/tensor/math.ts`'s erf (fdlibm's) with every
 * interval computed and the lane's own selected — x + x·P(x²)/Q(x²) below 0.84375, ±(erx +
 * P(|x| − 1)/Q(|x| − 1)) below 1.25, ±(1 − e^(−z² − 0.5625 + (z − |x|)(z + |x|) + R/S)/|x|) below
 * 6 (z: |x| with its low 32 bits cleared; R/S in 1/x² by two coefficient sets split at
 * 1/0.35), ±1 beyond; NaN stays NaN.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { erfF64x2 } from "./vmath.ts";
 * const m = new Module();
 * m.func("erf2", ["f64"], ["f64"], (f, [x]) => {
 *   const y = f.local("v128");
 *   erfF64x2(f, f.f64x2.splat(x), y);
 *   f.push(f.f64x2.extract_lane(y, 0), "f64");
 * });
 * ```
 */
export function erfF64x2(f: Fn, x: Expr, out: Local): void {
  const K = ERF_COEFFICIENTS;
  const [v, ax, z, s, near, far, big, e1, e2, zz] = f.locals("v128", 10);
  const c = (value: number) => f.vconst("f64x2", value);
  const L = f.f64x2;
  const ratio = (t: Local, p: readonly number[], q: readonly number[]) =>
    L.div(polynomial(f, t, p), polynomial(f, t, q));
  f.set(v, x);
  f.set(ax, L.abs(v));
  f.set(z, L.mul(v, v));
  const small = L.add(v, L.mul(v, ratio(z, K.PP, K.QQ)));
  f.set(s, L.sub(ax, c(1)));
  f.set(near, L.add(c(K.ERX), ratio(s, K.PA, K.QA)));
  // 1.25 ≤ |x| < 6: one rational function in 1/x² whose coefficients depend on the lane.
  f.set(s, L.div(c(1), L.mul(ax, ax)));
  f.set(big, L.lt(ax, c(K.BREAK_2857)));
  const pick = (a: readonly number[], b: readonly number[]) =>
    a.map((value, i) => f.v128.bitselect(c(value), c(b[i] ?? 0), big));
  const horner = (coefficients: Expr[]) => {
    const p = f.local("v128");
    f.set(p, coefficients[coefficients.length - 1]);
    for (let i = coefficients.length - 2; i >= 0; i--) f.set(p, L.relaxed_madd(p, s, coefficients[i]));
    return p;
  };
  const rs = L.div(horner(pick(K.RA, K.RB)), horner(pick(K.SA, K.SB)));
  f.set(zz, f.v128.and(ax, f.vconst("i64x2", -(1n << 32n))));
  expF64x2(f, L.sub(L.neg(L.mul(zz, zz)), c(0.5625)), e1);
  expF64x2(f, L.add(L.mul(L.sub(zz, ax), L.add(zz, ax)), rs), e2);
  f.set(far, L.sub(c(1), L.div(L.mul(e1, e2), ax)));
  // The magnitude for |x| ≥ 0.84375, signed as x; below, the small form (signed by itself).
  f.set(far, f.v128.bitselect(far, c(1), L.lt(ax, c(6))));
  f.set(far, f.v128.bitselect(near, far, L.lt(ax, c(1.25))));
  f.set(far, f.v128.or(far, f.v128.and(v, c(-0))));
  f.set(out, f.v128.bitselect(small, far, L.lt(ax, c(0.84375))));
  f.set(out, f.v128.bitselect(out, v, L.eq(v, v))); // NaN in, NaN out
}

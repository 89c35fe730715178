/**
 * Vectorised elementary functions on float32 lanes, for float32 tensors (softmax's exponentials;
 * sigmoid, silu, tanh): four elements per vector and a polynomial as short as float32's precision
 * allows, where `vmath.ts` widens each element to float64. Emitted inline, as there.
 *
 * `exp`: x = k·ln2 + r with k = nearest(x/ln2) and |r| ≤ ln2/2 (ln2 split in a high part of 15
 * bits, so k·LN2_HI is exact for |k| < 2^9 and x − k·LN2_HI exact, and a low part), e^r as
 * 1 + r + r²·q(r) with q the minimax polynomial of degree 4 for the relative error on
 * [−0.3467, 0.3467] (2^-28, coefficients rounded to float32), then scaled by 2^k as two factors
 * 2^⌊k/2⌋ and 2^(k−⌊k/2⌋) built from exponent bits. The first product is exact, so a result in
 * the subnormals rounds once, results beyond the largest float32 give +∞, those below half the
 * smallest subnormal 0, and NaN stays NaN. Over every float32 argument, with the multiply-adds
 * fused or not, each result is within 1 ulp of the correctly rounded exp (2–3% of them 1 ulp
 * off; tests/cpu_vmath_test.ts checks a sample of the whole range).
 *
 * sigmoid, silu and tanh take the same reduction and polynomial on float32 lanes and finish in
 * float64 (e^r's last terms, the scaling, the division), rounding once: within 1 ulp as well.
 *
 * @module
 */

import type { Expr, Fn, Local } from "./asm.ts";
import { narrowToF32x4, widenF32x4 } from "./kernel.ts";
import { polynomial } from "./vmath.ts";

/** log2(e), rounded to float32. */
const LOG2E = 1.4426950216293335;
/** ln 2 in two float32 parts: the high part has 15 significant bits (fdlibm's expf split). */
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.428606765330187e-6;
/** 1.5·2^23: adding it rounds a float32 of magnitude below 2^22 to an integer held in its low bits. */
const SHIFTER = 12582912;
/** Arguments are clamped to this range: below it exp rounds to 0, above it to +∞ (and k stays within ±160). */
const LOW = -104;
const HIGH = 89;
/** e^r ≈ Σ POLY[i]·r^i: 1 + r + r²·q(r), q minimax for the relative error of e^r on |r| ≤ 0.3467 (Remez). */
const POLY = [
  1,
  1,
  0.4999999403953552,
  0.1666652113199234,
  0.04166838899254799,
  0.008368735201656818,
  0.0013814560370519757,
];

/** 2^j for int32 lanes j in [-126, 127]: the biased exponent shifted into place. */
function pow2(f: Fn, j: Expr): Expr {
  return f.i32x4.shl(f.i32x4.add(j, f.vconst("i32x4", 127)), 23);
}

/**
 * The reduction of exp and expm1: x clamped to [low, high], k = nearest(x/ln2) and
 * r = x − k·ln2 (+ tail) with |r| ≤ ln2/2; `k` holds k as int32 lanes.
 */
function reduce(f: Fn, x: Expr, low: number, high: number, tail?: Expr): { k: Local; r: Local } {
  const [v, z, k, r] = f.locals("v128", 4);
  const c = (value: number) => f.vconst("f32x4", value);
  const L = f.f32x4;
  // Clamp (pmax/pmin keep a NaN in their first operand).
  f.set(v, L.pmin(L.pmax(x, c(low)), c(high)));
  // k = nearest(x/ln2), computed by adding the shifter: its low bits are then k as an integer.
  f.set(z, L.relaxed_madd(v, c(LOG2E), c(SHIFTER)));
  f.set(k, L.sub(z, c(SHIFTER)));
  f.set(r, L.relaxed_madd(k, c(-LN2_HI), v));
  f.set(r, L.relaxed_madd(k, c(-LN2_LO), r));
  if (tail !== undefined) f.set(r, L.add(r, tail));
  f.set(k, f.i32x4.sub(z, c(SHIFTER))); // the shifter's bits cancel
  return { k, r };
}

/**
 * Emits `out = exp(x + tail)` on float32 lanes, within 1 ulp of the correctly rounded value;
 * `tail`, where given, is a correction far below x's ulp (the rounding error of a subtraction
 * that made x), added to the reduced argument.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { expF32x4 } from "./vmath32.ts";
 * const m = new Module();
 * m.func("exp4", ["f32"], ["f32"], (f, [x]) => {
 *   const y = f.local("v128");
 *   expF32x4(f, f.f32x4.splat(x), y);
 *   f.push(f.f32x4.extract_lane(y, 0), "f32");
 * });
 * ```
 */
export function expF32x4(f: Fn, x: Expr, out: Local, tail?: Expr): void {
  const { k, r } = reduce(f, x, LOW, HIGH, tail);
  const p = polynomial(f, r, POLY, "f32x4");
  // 2^k as 2^⌊k/2⌋·2^(k−⌊k/2⌋): each factor normal for |k| ≤ 252; p·2^⌊k/2⌋ is exact.
  const half = f.local("v128");
  f.set(half, f.i32x4.shr_s(k, 1));
  f.set(out, f.f32x4.mul(f.f32x4.mul(p, pow2(f, half)), pow2(f, f.i32x4.sub(k, half))));
}

/**
 * Emits `out = exp(x − m)` on float32 lanes as {@link expF32x4} computes exp, with x − m taken
 * exactly: its rounding error (two-sum) joins the reduced argument, so exp keeps its accuracy
 * however far x is below m (softmax's shifted logits). Where x − m is below −104 (−∞ included)
 * the result is 0; ∞ − ∞ gives NaN.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { expDifferenceF32x4 } from "./vmath32.ts";
 * const m = new Module();
 * m.func("expdiff", ["f32", "f32"], ["f32"], (f, [x, y]) => {
 *   const out = f.local("v128");
 *   expDifferenceF32x4(f, f.f32x4.splat(x), f.f32x4.splat(y), out);
 *   f.push(f.f32x4.extract_lane(out, 0), "f32");
 * });
 * ```
 */
export function expDifferenceF32x4(f: Fn, x: Expr, m: Expr, out: Local): void {
  const [a, b, s, bb, e] = f.locals("v128", 5);
  const L = f.f32x4;
  f.set(a, x);
  f.set(b, m);
  // Two-sum of a and −b: s + e = a − b exactly.
  f.set(s, L.sub(a, b));
  f.set(bb, L.sub(s, a));
  f.set(e, L.sub(L.sub(a, L.sub(s, bb)), L.add(b, bb)));
  // Below the clamp (s = −∞ included, where the two-sum gives NaN) exp(s) is 0 whatever e is.
  expF32x4(f, s, out, f.v128.and(e, L.ge(s, f.vconst("f32x4", LOW))));
}

/**
 * exp(x) = 2^k·(1 + t) for x clamped to [low, high] (a range with |k| < 512), as float64 lanes
 * (lanes 0–1, 2–3): k and r from the float32 reduction, t = expm1(r) = r + r²·q(r) with q from
 * the float32 polynomial and the rest in float64, so t's relative error (below 2^-26) is far
 * below a float32 ulp, even where expm1 is small. Lanes where x < low (−∞ included) give 0; NaN
 * stays NaN.
 */
function expWide(f: Fn, x: Expr, low: number, high: number): Local[] {
  const v = f.local("v128");
  f.set(v, x);
  const { k, r } = reduce(f, v, low, high);
  const q = polynomial(f, r, POLY.slice(2), "f32x4");
  // k = −1023 gives the float64 bits of 0.
  f.set(k, f.v128.bitselect(k, f.vconst("i32x4", -1023), f.f32x4.ge(v, f.vconst("f32x4", low))));
  const qw = widenF32x4(f, q);
  return [f.i64x2.extend_low_i32x4_s(k), f.i64x2.extend_high_i32x4_s(k)].map((kh, h) => {
    const [s2, rw, e] = f.locals("v128", 3);
    f.set(s2, f.i64x2.shl(f.i64x2.add(kh, f.vconst("i64x2", 1023n)), 52));
    f.set(rw, widenF32x4(f, r)[h]);
    // t = r + r²·q(r) in float64: only q's rounding (relative 2^-24, times r² ≤ 0.12) is left.
    const t = f.f64x2.mul(rw, f.f64x2.relaxed_madd(rw, qw[h], f.vconst("f64x2", 1)));
    f.set(e, f.f64x2.relaxed_madd(s2, t, s2));
    return e;
  });
}

/**
 * Emits `out = 1/(1 + e^−x)` (or, with `times`, `x/(1 + e^−x)`, silu) on float32 lanes: e =
 * exp(−|x|) from {@link expWide}, then as `src/tensor/math.ts` computes it, 1/(1 + e) for x ≥ 0
 * and e/(1 + e) otherwise, in float64 (one division per lane), rounded once.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { sigmoidF32x4 } from "./vmath32.ts";
 * const m = new Module();
 * m.func("sg", ["f32"], ["f32"], (f, [x]) => {
 *   const y = f.local("v128");
 *   sigmoidF32x4(f, f.f32x4.splat(x), y);
 *   f.push(f.f32x4.extract_lane(y, 0), "f32");
 * });
 * ```
 */
export function sigmoidF32x4(f: Fn, x: Expr, out: Local, times = false): void {
  const v = f.local("v128");
  f.set(v, x);
  // Below −150 (where the result is 0 in float32) e is 0, so silu(−∞) is NaN as −∞·0.
  const e = expWide(f, f.f32x4.neg(f.f32x4.abs(v)), -150, 0);
  const one = f.vconst("f64x2", 1);
  const halves = widenF32x4(f, v).map((xh, h) => {
    const w = f.local("v128");
    f.set(w, xh);
    const y = f.f64x2.div(f.v128.bitselect(one, e[h], f.f64x2.ge(w, f.vconst("f64x2", 0))), f.f64x2.add(one, e[h]));
    return times ? f.f64x2.mul(w, y) : y;
  });
  f.set(out, narrowToF32x4(f, halves));
}

/**
 * Emits `out = tanh(x)` on float32 lanes: with y = expm1(−2|x|) = 2^k·(1 + t) − 1 from
 * {@link expWide}'s parts, tanh|x| = −y/(y + 2) in float64, rounded once and signed as x; x itself
 * where |x| < 2^-12 (tanh x rounds to x there; ±0 stays ±0). NaN stays NaN.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { tanhF32x4 } from "./vmath32.ts";
 * const m = new Module();
 * m.func("th", ["f32"], ["f32"], (f, [x]) => {
 *   const y = f.local("v128");
 *   tanhF32x4(f, f.f32x4.splat(x), y);
 *   f.push(f.f32x4.extract_lane(y, 0), "f32");
 * });
 * ```
 */
export function tanhF32x4(f: Fn, x: Expr, out: Local): void {
  const v = f.local("v128");
  const L = f.f32x4, c = (value: number) => f.vconst("f64x2", value);
  f.set(v, x);
  // Below −20, y rounds to −1 and tanh to 1.
  const e = expWide(f, L.mul(f.vconst("f32x4", -2), L.abs(v)), -20, 0);
  const halves = e.map((eh) => {
    const y = f.local("v128");
    f.set(y, f.f64x2.sub(eh, c(1)));
    return f.f64x2.div(f.f64x2.neg(y), f.f64x2.add(y, c(2)));
  });
  f.set(out, f.v128.or(narrowToF32x4(f, halves), f.v128.and(v, f.vconst("f32x4", -0))));
  f.set(out, f.v128.bitselect(v, out, L.lt(L.abs(v), f.vconst("f32x4", 2 ** -12))));
}

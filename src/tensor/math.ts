/**
 * Scalar functions of the elementwise ops, in double precision: the error function (fdlibm's
 * `s_erf.c` rational approximations, accurate to about 1 ulp), numerically stable sigmoid and
 * softplus, both GELU forms and their derivatives, and C's `pow` for floats and int32. An op's
 * definition (`op_defs.ts`) names its function here; the CPU backend runs it per element and the
 * CUDA kernels compute the same function.
 *
 * @module
 */

// Coefficients of Sun Microsystems' fdlibm s_erf.c (freely distributable; see its notice:
// "Copyright (C) 1993 by Sun Microsystems, Inc. Permission to use, copy, modify, and distribute
// this software is freely granted, provided that this notice is preserved.").
const ERX = 8.45062911510467529297e-01;
const EFX = 1.28379167095512586316e-01;
const EFX8 = 1.02703333676410069053e+00;
const PP0 = 1.28379167095512558561e-01;
const PP1 = -3.25042107247001499370e-01;
const PP2 = -2.84817495755985104766e-02;
const PP3 = -5.77027029648944159157e-03;
const PP4 = -2.37630166566501626084e-05;
const QQ1 = 3.97917223959155352819e-01;
const QQ2 = 6.50222499887672944485e-02;
const QQ3 = 5.08130628187576562776e-03;
const QQ4 = 1.32494738004321644526e-04;
const QQ5 = -3.96022827877536812320e-06;
const PA0 = -2.36211856075265944077e-03;
const PA1 = 4.14856118683748331666e-01;
const PA2 = -3.72207876035701323847e-01;
const PA3 = 3.18346619901161753674e-01;
const PA4 = -1.10894694282396677476e-01;
const PA5 = 3.54783043256182359371e-02;
const PA6 = -2.16637559486879084300e-03;
const QA1 = 1.06420880400844228286e-01;
const QA2 = 5.40397917702171048937e-01;
const QA3 = 7.18286544141962662868e-02;
const QA4 = 1.26171219808761642112e-01;
const QA5 = 1.36370839120290507362e-02;
const QA6 = 1.19844998467991074170e-02;
const RA0 = -9.86494403484714822705e-03;
const RA1 = -6.93858572707181764372e-01;
const RA2 = -1.05586262253232909814e+01;
const RA3 = -6.23753324503260060396e+01;
const RA4 = -1.62396669462573470355e+02;
const RA5 = -1.84605092906711035994e+02;
const RA6 = -8.12874355063065934246e+01;
const RA7 = -9.81432934416914548592e+00;
const SA1 = 1.96512716674392571292e+01;
const SA2 = 1.37657754143519042600e+02;
const SA3 = 4.34565877475229228821e+02;
const SA4 = 6.45387271733267880336e+02;
const SA5 = 4.29008140027567833386e+02;
const SA6 = 1.08635005541779435134e+02;
const SA7 = 6.57024977031928170135e+00;
const SA8 = -6.04244152148580987438e-02;
const RB0 = -9.86494292470009928597e-03;
const RB1 = -7.99283237680523006574e-01;
const RB2 = -1.77579549177547519889e+01;
const RB3 = -1.60636384855821916062e+02;
const RB4 = -6.37566443368389627722e+02;
const RB5 = -1.02509513161107724954e+03;
const RB6 = -4.83519191608651397019e+02;
const SB1 = 3.03380607434824582924e+01;
const SB2 = 3.25792512996573918826e+02;
const SB3 = 1.53672958608443695994e+03;
const SB4 = 3.19985821950859553908e+03;
const SB5 = 2.55305040643316442583e+03;
const SB6 = 4.74528541206955367215e+02;
const SB7 = -2.24409524465858183362e+01;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const LO = LITTLE ? 0 : 1;
/** |x| below which fdlibm switches from the [1.25, 1/0.35] to the [1/0.35, 6] fit (high word 0x4006DB6E). */
const BREAK_2857 = (() => {
  u32[LITTLE ? 1 : 0] = 0x4006db6e;
  u32[LO] = 0;
  return f64[0];
})();
const TWO_M28 = 2 ** -28;
const MIN_NORMAL = 2 ** -1022;

/**
 * The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, to about 1 ulp in double precision.
 *
 * @example
 * ```ts
 * import { erf } from "./math.ts";
 * erf(1); // 0.8427007929497149
 * ```
 */
export function erf(x: number): number {
  if (x !== x) return x;
  const ax = x < 0 ? -x : x;
  if (ax < 0.84375) {
    if (ax < TWO_M28) {
      if (ax < MIN_NORMAL) return 0.125 * (8.0 * x + EFX8 * x);
      return x + EFX * x;
    }
    const z = x * x;
    const r = PP0 + z * (PP1 + z * (PP2 + z * (PP3 + z * PP4)));
    const s = 1 + z * (QQ1 + z * (QQ2 + z * (QQ3 + z * (QQ4 + z * QQ5))));
    return x + x * (r / s);
  }
  if (ax < 1.25) {
    const s = ax - 1;
    const p = PA0 + s * (PA1 + s * (PA2 + s * (PA3 + s * (PA4 + s * (PA5 + s * PA6)))));
    const q = 1 + s * (QA1 + s * (QA2 + s * (QA3 + s * (QA4 + s * (QA5 + s * QA6)))));
    return x >= 0 ? ERX + p / q : -ERX - p / q;
  }
  if (ax >= 6) return x >= 0 ? 1 : -1;
  const s = 1 / (ax * ax);
  let r: number;
  let q: number;
  if (ax < BREAK_2857) {
    r = RA0 + s * (RA1 + s * (RA2 + s * (RA3 + s * (RA4 + s * (RA5 + s * (RA6 + s * RA7))))));
    q = 1 + s * (SA1 + s * (SA2 + s * (SA3 + s * (SA4 + s * (SA5 + s * (SA6 + s * (SA7 + s * SA8)))))));
  } else {
    r = RB0 + s * (RB1 + s * (RB2 + s * (RB3 + s * (RB4 + s * (RB5 + s * RB6)))));
    q = 1 + s * (SB1 + s * (SB2 + s * (SB3 + s * (SB4 + s * (SB5 + s * (SB6 + s * SB7))))));
  }
  // z = ax with the low 32 bits cleared, so z*z is exact.
  f64[0] = ax;
  u32[LO] = 0;
  const z = f64[0];
  const e = Math.exp(-z * z - 0.5625) * Math.exp((z - ax) * (z + ax) + r / q);
  return x >= 0 ? 1 - e / ax : e / ax - 1;
}

/**
 * Logistic sigmoid 1/(1+e^(−x)), stable for large |x| (never computes e of a large positive
 * number).
 *
 * @example
 * ```ts
 * import { sigmoid } from "./math.ts";
 * sigmoid(0); // 0.5
 * sigmoid(-1000); // 0
 * ```
 */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Softplus log(1+e^x) computed as max(x, 0) + log1p(e^(−|x|)).
 *
 * @example
 * ```ts
 * import { softplus } from "./math.ts";
 * softplus(1000); // 1000
 * ```
 */
export function softplus(x: number): number {
  return (x > 0 ? x : 0) + Math.log1p(Math.exp(x > 0 ? -x : x));
}

const SQRT1_2 = Math.SQRT1_2;
const GELU_TANH_C = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * Exact GELU: 0.5·x·(1 + erf(x/√2)).
 *
 * @example
 * ```ts
 * import { gelu } from "./math.ts";
 * gelu(1); // 0.8413447460685429
 * ```
 */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x * SQRT1_2));
}

/**
 * Tanh-approximated GELU: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 *
 * @example
 * ```ts
 * import { geluTanh } from "./math.ts";
 * geluTanh(1); // ≈ 0.8411920
 * ```
 */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x)));
}

/**
 * Derivative of the exact GELU: Φ(x) + x·φ(x).
 *
 * @example
 * ```ts
 * import { geluGrad } from "./math.ts";
 * geluGrad(0); // 0.5
 * ```
 */
export function geluGrad(x: number): number {
  return 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/**
 * Derivative of the tanh-approximated GELU: 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3·0.044715·x²)
 * with t = tanh(c·(x + 0.044715·x³)), c = √(2/π).
 *
 * @example
 * ```ts
 * import { geluTanhGrad } from "./math.ts";
 * geluTanhGrad(0); // 0.5
 * ```
 */
export function geluTanhGrad(x: number): number {
  const t = Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * x * x);
}

/**
 * Floating-point power with C (and CUDA) semantics: like `Math.pow`, except that `pow(1, y)` is 1
 * for every y (NaN included) and `pow(-1, ±Infinity)` is 1, where JavaScript gives NaN.
 *
 * @example
 * ```ts
 * import { cpow } from "./math.ts";
 * cpow(1, NaN); // 1
 * cpow(2, 0.5); // Math.SQRT2
 * ```
 */
export function cpow(x: number, y: number): number {
  const r = Math.pow(x, y);
  if (r === r) return r;
  if (x === 1) return 1;
  if (x === -1 && (y === Infinity || y === -Infinity)) return 1;
  return r;
}

/**
 * Integer power with C int32 wrap-around (`b < 0` gives the truncated reciprocal: 0 unless
 * `a` is ±1).
 *
 * @example
 * ```ts
 * import { ipow } from "./math.ts";
 * ipow(3, 4); // 81
 * ipow(2, 31); // -2147483648
 * ```
 */
export function ipow(a: number, b: number): number {
  a |= 0;
  b |= 0;
  if (b < 0) {
    if (a === 1) return 1;
    if (a === -1) return (b & 1) === 0 ? 1 : -1;
    return 0;
  }
  let result = 1;
  while (b > 0) {
    if (b & 1) result = Math.imul(result, a);
    a = Math.imul(a, a);
    b >>>= 1;
  }
  return result;
}

/**
 * The coefficients of {@link erf} by interval (fdlibm's s_erf.c), for vector forms of it that
 * compute the same function: `PP`/`QQ` below 0.84375 (in x², constant terms first, `QQ[0]` = 1),
 * `PA`/`QA` below 1.25 (in |x| − 1), `RA`/`SA` below `BREAK_2857` and `RB`/`SB` below 6 (in
 * 1/x²), and `ERX`.
 *
 * @example
 * ```ts
 * import { ERF_COEFFICIENTS } from "./math.ts";
 * ERF_COEFFICIENTS.QQ[0]; // 1
 * ```
 */
export const ERF_COEFFICIENTS: {
  readonly ERX: number;
  readonly BREAK_2857: number;
  readonly PP: readonly number[];
  readonly QQ: readonly number[];
  readonly PA: readonly number[];
  readonly QA: readonly number[];
  readonly RA: readonly number[];
  readonly SA: readonly number[];
  readonly RB: readonly number[];
  readonly SB: readonly number[];
} = {
  ERX,
  BREAK_2857,
  PP: [PP0, PP1, PP2, PP3, PP4],
  QQ: [1, QQ1, QQ2, QQ3, QQ4, QQ5],
  PA: [PA0, PA1, PA2, PA3, PA4, PA5, PA6],
  QA: [1, QA1, QA2, QA3, QA4, QA5, QA6],
  RA: [RA0, RA1, RA2, RA3, RA4, RA5, RA6, RA7],
  SA: [1, SA1, SA2, SA3, SA4, SA5, SA6, SA7, SA8],
  RB: [RB0, RB1, RB2, RB3, RB4, RB5, RB6],
  SB: [1, SB1, SB2, SB3, SB4, SB5, SB6, SB7],
};

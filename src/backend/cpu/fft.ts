/**
 * In-place complex DFT of one signal of any length: the CPU backend's hot loop for `fft`,
 * `rfft` and `irfft`.
 *
 * - Powers of two: iterative radix-2 (decimation in time) with a cached bit-reversal permutation
 *   and a cached twiddle table.
 * - Short other lengths: direct O(n²) DFT from a cached table of the n roots of unity.
 * - Longer other lengths: Bluestein's chirp-z algorithm, which rewrites the DFT as a circular
 *   convolution of power-of-two length M ≥ 2n − 1, done with the radix-2 transform.
 *
 * Every twiddle is `Math.cos`/`Math.sin` of an exactly reduced angle (never a recurrence), so
 * the error stays near machine precision times log n (about 1e-15 relative for n in the
 * thousands).
 *
 * @module
 */

import { heapAlloc } from "./heap.ts";

/** Non-power-of-two lengths below this use the direct DFT instead of Bluestein. */
const DIRECT_MAX = 64;
/** Plans kept before the cache is cleared (keeps memory bounded when many lengths are used). */
const MAX_PLANS = 64;

/**
 * Radix-2 plan: bit-reversal permutation and the twiddles of every stage, laid out so that the
 * stage of butterfly span `half` reads cos/sin(πj/half), j < half, at index half + j.
 */
interface Radix2Plan {
  readonly kind: "radix2";
  readonly n: number;
  /** Pairs (i, rev(i)) with i < rev(i), flattened. */
  readonly swaps: Int32Array;
  readonly twCos: Float64Array;
  readonly twSin: Float64Array;
}

/** Direct plan: cos/sin(2πj/n) for j < n. */
interface DirectPlan {
  readonly kind: "direct";
  readonly n: number;
  readonly cos: Float64Array;
  readonly sin: Float64Array;
  readonly scratchRe: Float64Array;
  readonly scratchIm: Float64Array;
}

/** Bluestein plan for length n through a power-of-two convolution of length m. */
interface BluesteinPlan {
  readonly kind: "bluestein";
  readonly n: number;
  readonly m: number;
  /** Chirp w_j = exp(-πi j²/n) = cos − i·sin, j < n. */
  readonly chirpCos: Float64Array;
  readonly chirpSin: Float64Array;
  /** Forward DFT (length m) of the filter conj(w_j), wrapped circularly. */
  readonly filterRe: Float64Array;
  readonly filterIm: Float64Array;
  readonly workRe: Float64Array;
  readonly workIm: Float64Array;
}

type Plan = Radix2Plan | DirectPlan | BluesteinPlan;

const plans = new Map<number, Plan>();

/**
 * Transforms the complex signal (`re`, `im`) in place (both of length n ≥ 1). Forward:
 * `X_k = Σ_j x_j e^{-2πi jk/n}` (unnormalised). Inverse: `x_j = (1/n) Σ_k X_k e^{+2πi jk/n}`.
 * Works for every n; powers of two are fastest.
 *
 * @example
 * ```ts
 * import { fftKernel } from "./fft.ts";
 * const re = new Float64Array([1, 2, 3]);
 * const im = new Float64Array(3);
 * fftKernel(re, im, false); // re ≈ [6, -1.5, -1.5], im ≈ [0, 0.866, -0.866]
 * fftKernel(re, im, true); // back to [1, 2, 3] and [0, 0, 0]
 * ```
 */
export function fftKernel(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError(`fftKernel: re has ${n} elements but im has ${im.length}`);
  if (n <= 1) return;
  const plan = getPlan(n);
  switch (plan.kind) {
    case "radix2":
      radix2(plan, re, im, inverse);
      break;
    case "direct":
      direct(plan, re, im, inverse);
      break;
    case "bluestein":
      bluestein(plan, re, im, inverse);
      break;
  }
  if (inverse) {
    const s = 1 / n;
    for (let i = 0; i < n; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }
}

function isPowerOfTwo(n: number): boolean {
  return (n & (n - 1)) === 0;
}

function getPlan(n: number): Plan {
  let plan = plans.get(n);
  if (plan) return plan;
  if (isPowerOfTwo(n)) plan = makeRadix2(n);
  else if (n < DIRECT_MAX) plan = makeDirect(n);
  else plan = makeBluestein(n);
  if (plans.size >= MAX_PLANS) plans.clear();
  plans.set(n, plan);
  return plan;
}

/** cos/sin(2πj/n) for j < count, each from an exact angle (symmetry keeps j/n reduced). */
function rootTables(n: number, count: number): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(count);
  const sin = new Float64Array(count);
  for (let j = 0; j < count; j++) {
    const angle = (2 * Math.PI * j) / n;
    cos[j] = Math.cos(angle);
    sin[j] = Math.sin(angle);
  }
  // Exact values at the quarter points, where Math.cos(π/2) would give 6e-17 instead of 0.
  if (n % 4 === 0 && n / 4 < count) {
    cos[n / 4] = 0;
    sin[n / 4] = 1;
  }
  if (n % 2 === 0 && n / 2 < count) {
    cos[n / 2] = -1;
    sin[n / 2] = 0;
  }
  if (n % 4 === 0 && (3 * n) / 4 < count) {
    cos[(3 * n) / 4] = 0;
    sin[(3 * n) / 4] = -1;
  }
  return { cos, sin };
}

function makeRadix2(n: number): Radix2Plan {
  const bits = Math.round(Math.log2(n));
  const pairs: number[] = [];
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let b = 0, x = i; b < bits; b++, x >>= 1) r = (r << 1) | (x & 1);
    if (i < r) pairs.push(i, r);
  }
  const { cos, sin } = rootTables(n, n / 2);
  const twCos = new Float64Array(n);
  const twSin = new Float64Array(n);
  for (let half = 1; half < n; half <<= 1) {
    const step = n / (2 * half);
    for (let j = 0; j < half; j++) {
      twCos[half + j] = cos[j * step];
      twSin[half + j] = sin[j * step];
    }
  }
  return { kind: "radix2", n, swaps: Int32Array.from(pairs), twCos, twSin };
}

function makeDirect(n: number): DirectPlan {
  const { cos, sin } = rootTables(n, n);
  return { kind: "direct", n, cos, sin, scratchRe: new Float64Array(n), scratchIm: new Float64Array(n) };
}

function makeBluestein(n: number): BluesteinPlan {
  let m = 1;
  while (m < 2 * n - 1) m *= 2;
  const chirpCos = new Float64Array(n);
  const chirpSin = new Float64Array(n);
  // w_j = exp(-πi j²/n); j² is reduced mod 2n exactly in integers so the angle stays small.
  const twoN = 2 * n;
  let sq = 0; // j² mod 2n
  for (let j = 0; j < n; j++) {
    const angle = (Math.PI * sq) / n;
    chirpCos[j] = Math.cos(angle);
    chirpSin[j] = Math.sin(angle);
    sq = (sq + 2 * j + 1) % twoN;
  }
  // Filter h_j = conj(w_j) = exp(+πi j²/n) = cos + i·sin, placed at j and m − j.
  const filterRe = new Float64Array(m);
  const filterIm = new Float64Array(m);
  filterRe[0] = chirpCos[0];
  filterIm[0] = chirpSin[0];
  for (let j = 1; j < n; j++) {
    filterRe[j] = filterRe[m - j] = chirpCos[j];
    filterIm[j] = filterIm[m - j] = chirpSin[j];
  }
  const sub = getPlan(m) as Radix2Plan;
  radix2(sub, filterRe, filterIm, false);
  return {
    kind: "bluestein",
    n,
    m,
    chirpCos,
    chirpSin,
    filterRe,
    filterIm,
    workRe: new Float64Array(m),
    workIm: new Float64Array(m),
  };
}

/** Unnormalised radix-2 transform; `inverse` flips the sign of the exponent. */
function radix2(plan: Radix2Plan, re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = plan.n;
  const swaps = plan.swaps;
  for (let s = 0; s < swaps.length; s += 2) {
    const i = swaps[s], j = swaps[s + 1];
    const tr = re[i], ti = im[i];
    re[i] = re[j];
    im[i] = im[j];
    re[j] = tr;
    im[j] = ti;
  }
  // Size-2 butterflies need no multiplications.
  for (let i = 0; i < n; i += 2) {
    const xr = re[i + 1], xi = im[i + 1];
    re[i + 1] = re[i] - xr;
    im[i + 1] = im[i] - xi;
    re[i] += xr;
    im[i] += xi;
  }
  if (n < 4) return;
  // Size-4 butterflies: twiddles 1 and ∓i.
  const sign = inverse ? 1 : -1;
  for (let i = 0; i < n; i += 4) {
    const r0 = re[i], i0 = im[i], r1 = re[i + 1], i1 = im[i + 1];
    const r2 = re[i + 2], i2 = im[i + 2];
    // (re + i·im) · (∓i) = ±im ∓ i·re
    const r3 = -sign * im[i + 3], i3 = sign * re[i + 3];
    re[i] = r0 + r2;
    im[i] = i0 + i2;
    re[i + 2] = r0 - r2;
    im[i + 2] = i0 - i2;
    re[i + 1] = r1 + r3;
    im[i + 1] = i1 + i3;
    re[i + 3] = r1 - r3;
    im[i + 3] = i1 - i3;
  }
  const twCos = plan.twCos, twSin = plan.twSin;
  for (let half = 4; half < n; half <<= 1) {
    const size = half << 1;
    for (let i0 = 0; i0 < n; i0 += size) {
      for (let j = 0; j < half; j++) {
        const wr = twCos[half + j];
        const wi = sign * twSin[half + j];
        const i = i0 + j, l = i + half;
        const lr = re[l], li = im[l];
        const xr = lr * wr - li * wi;
        const xi = lr * wi + li * wr;
        const ur = re[i], ui = im[i];
        re[l] = ur - xr;
        im[l] = ui - xi;
        re[i] = ur + xr;
        im[i] = ui + xi;
      }
    }
  }
}

/** Unnormalised direct DFT through the table of n roots, index (j·k) mod n. */
function direct(plan: DirectPlan, re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = plan.n;
  const cos = plan.cos, sin = plan.sin;
  const sign = inverse ? 1 : -1;
  const outRe = plan.scratchRe, outIm = plan.scratchIm;
  for (let k = 0; k < n; k++) {
    let sr = 0, si = 0, idx = 0;
    for (let j = 0; j < n; j++) {
      const c = cos[idx], s = sign * sin[idx];
      sr += re[j] * c - im[j] * s;
      si += re[j] * s + im[j] * c;
      idx += k;
      if (idx >= n) idx -= n;
    }
    outRe[k] = sr;
    outIm[k] = si;
  }
  re.set(outRe);
  im.set(outIm);
}

/**
 * Unnormalised Bluestein transform. With w_j = e^{-πi j²/n} and jk = (j² + k² − (k−j)²)/2,
 * X_k = w_k Σ_j (x_j w_j) conj(w_{k−j}): a circular convolution of length m. The inverse is
 * conj(forward(conj(x))).
 */
function bluestein(plan: BluesteinPlan, re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = plan.n, m = plan.m;
  const cc = plan.chirpCos, cs = plan.chirpSin;
  const wr = plan.workRe, wi = plan.workIm;
  const conj = inverse ? -1 : 1;
  // a_j = x_j · w_j, with w_j = cc − i·cs.
  for (let j = 0; j < n; j++) {
    const xr = re[j], xi = conj * im[j];
    wr[j] = xr * cc[j] + xi * cs[j];
    wi[j] = xi * cc[j] - xr * cs[j];
  }
  wr.fill(0, n, m);
  wi.fill(0, n, m);
  const sub = getPlan(m) as Radix2Plan;
  radix2(sub, wr, wi, false);
  const fr = plan.filterRe, fi = plan.filterIm;
  for (let j = 0; j < m; j++) {
    const ar = wr[j], ai = wi[j];
    wr[j] = ar * fr[j] - ai * fi[j];
    wi[j] = ar * fi[j] + ai * fr[j];
  }
  radix2(sub, wr, wi, true);
  const s = 1 / m;
  for (let k = 0; k < n; k++) {
    const yr = wr[k] * s, yi = wi[k] * s;
    re[k] = yr * cc[k] + yi * cs[k];
    im[k] = conj * (yi * cc[k] - yr * cs[k]);
  }
}

/**
 * The tables the SIMD transform (`wasm/fft.ts`) reads for length n, in the heap: for a power of
 * two (kind 0) the bit-reversal swaps (int32 pairs) and the twiddles as (cos, sin) pairs at index
 * half + j; for a direct plan (kind 1) the n roots as (cos, sin) pairs. Null for lengths that
 * need Bluestein's algorithm. The same numbers as the TypeScript transform's plan, cached.
 *
 * @example
 * ```ts
 * import { simdPlan } from "./fft.ts";
 * simdPlan(8)?.kind; // 0
 * simdPlan(12)?.kind; // 1
 * simdPlan(100); // null
 * ```
 */
export function simdPlan(n: number): { kind: 0 | 1; swaps: Int32Array; table: Float64Array } | null {
  const cached = simdPlans.get(n);
  if (cached !== undefined) return cached;
  const plan = getPlan(n);
  let result: { kind: 0 | 1; swaps: Int32Array; table: Float64Array } | null = null;
  if (plan.kind !== "bluestein") {
    const cos = plan.kind === "radix2" ? plan.twCos : plan.cos;
    const sin = plan.kind === "radix2" ? plan.twSin : plan.sin;
    const table = heapAlloc(Float64Array, 2 * n, false);
    for (let i = 0; i < n; i++) [table[2 * i], table[2 * i + 1]] = [cos[i], sin[i]];
    const swaps = plan.kind === "radix2"
      ? heapAlloc(Int32Array, plan.swaps.length, false)
      : heapAlloc(Int32Array, 1, true);
    if (plan.kind === "radix2") swaps.set(plan.swaps);
    result = { kind: plan.kind === "radix2" ? 0 : 1, swaps, table };
  }
  if (simdPlans.size >= MAX_PLANS) simdPlans.clear();
  simdPlans.set(n, result);
  return result;
}

const simdPlans = new Map<number, { kind: 0 | 1; swaps: Int32Array; table: Float64Array } | null>();

/**
 * Seeded periodic Gaussian random fields on the unit square, drawn with FFTs on any backend. Used
 * for the initial vorticity of Navier–Stokes and for 2D heat.
 *
 * - {@link gaussianRandomField2D}: the FNO data generator's `GaussianRF(2, s, alpha, tau)`, covariance
 *   σ²(−Δ + τ²)^(−α) with σ = τ^(α − 1) (α = 2.5, τ = 7 in the FNO Navier–Stokes data).
 * - {@link periodicKernelField2D}: covariance the product over x and y of the periodic kernel
 *   `exp(−2 sin²(π·r / p) / ℓ²)` (PI-HC-MoE describes its initial vorticity as a GRF "with a periodic
 *   kernel and a length scale of 0.8"; that generator is not published, this is our reading of it).
 *
 * @module
 */

import { ArgumentError, type Backend, type DType, Generator, ifft, randn, type Tensor } from "../tensor/mod.ts";
import { constant } from "./spectral.ts";

/** Options shared by the random-field samplers. */
export interface RandomFieldOptions {
  /** Seed (default 0); ignored when `generator` is given. */
  seed?: number;
  /** Draw from this generator (advancing it). */
  generator?: Generator;
  /** Element type (default float32). */
  dtype?: DType;
  /** Backend (default: the default backend). */
  backend?: Backend;
}

/** Real part of the 2D inverse DFT of `sqrtEig ⊙ (ξ₁ + iξ₂)`, ξ standard normal: `[n, s, s]`. */
function sampleSpectral(n: number, s: number, sqrtEig: Float64Array, options: RandomFieldOptions): Tensor {
  const dtype = options.dtype ?? "float32";
  const gen = options.generator ?? new Generator(options.seed ?? 0);
  // Draw in float64 so the numbers are the same whatever the output dtype.
  const xi = randn([n, s, s, 2], { generator: gen, dtype: "float64", backend: options.backend });
  const scale = constant(sqrtEig, [s, s, 1], "float64", xi.backend);
  const field = ifft(ifft(xi.mul(scale), 1), 2).narrow(3, 0, 1).squeeze(3);
  return dtype === "float64" ? field : field.cast(dtype);
}

/** Options of {@link gaussianRandomField2D}. */
export interface GaussianRFOptions extends RandomFieldOptions {
  /** Smoothness exponent α (default 2.5). */
  alpha?: number;
  /** Inverse length scale τ (default 7). */
  tau?: number;
  /** Amplitude σ (default τ^(α − 1), FNO's τ^(½(2α − d)) for d = 2). */
  sigma?: number;
}

/**
 * `n` samples of the FNO Gaussian random field on an `s × s` periodic grid: `[n, s, s]`.
 * The zero mode is zero (mean-free), as in FNO's `GaussianRF`.
 *
 * @example
 * ```ts
 * import { gaussianRandomField2D } from "./mod.ts";
 * const w0 = gaussianRandomField2D(4, 64, { seed: 0 }); // FNO's α = 2.5, τ = 7
 * w0.shape; // [4, 64, 64]
 * ```
 */
export function gaussianRandomField2D(n: number, s: number, options: GaussianRFOptions = {}): Tensor {
  checkSizes("gaussianRandomField2D", n, s);
  const alpha = options.alpha ?? 2.5;
  const tau = options.tau ?? 7;
  const sigma = options.sigma ?? Math.pow(tau, 0.5 * (2 * alpha - 2));
  const eig = new Float64Array(s * s);
  const k = (i: number) => (i < Math.ceil(s / 2) ? i : i - s);
  for (let i = 0; i < s; i++) {
    for (let j = 0; j < s; j++) {
      const k2 = k(i) * k(i) + k(j) * k(j);
      eig[i * s + j] = i === 0 && j === 0
        ? 0
        : s * s * Math.SQRT2 * sigma * Math.pow(4 * Math.PI * Math.PI * k2 + tau * tau, -alpha / 2);
    }
  }
  return sampleSpectral(n, s, eig, options);
}

/** Options of {@link periodicKernelField2D}. */
export interface PeriodicKernelOptions extends RandomFieldOptions {
  /** Length scale ℓ (default 0.8). */
  lengthScale?: number;
  /** Period p (default 1, the unit torus). */
  period?: number;
  /** Standard deviation of the field (default 1). */
  amplitude?: number;
}

/**
 * `n` samples of a Gaussian random field on an `s × s` periodic grid with covariance
 * `a²·k(Δx)·k(Δy)`, `k(r) = exp(−2 sin²(π r / p) / ℓ²)`: `[n, s, s]`.
 *
 * @example
 * ```ts
 * import { periodicKernelField2D } from "./mod.ts";
 * const w0 = periodicKernelField2D(2, 64, { lengthScale: 0.8, seed: 1, dtype: "float64" });
 * ```
 */
export function periodicKernelField2D(n: number, s: number, options: PeriodicKernelOptions = {}): Tensor {
  checkSizes("periodicKernelField2D", n, s);
  const ell = options.lengthScale ?? 0.8;
  const p = options.period ?? 1;
  const amp = options.amplitude ?? 1;
  if (!(ell > 0) || !(p > 0)) throw new ArgumentError("periodicKernelField2D", "lengthScale and period must be > 0");
  // Eigenvalues of the circulant covariance: the DFT of the kernel's first row (real, even).
  const lam = new Float64Array(s);
  for (let k = 0; k < s; k++) {
    let acc = 0;
    for (let j = 0; j < s; j++) {
      const r = j / s;
      const kr = Math.exp((-2 * Math.sin((Math.PI * r) / p) ** 2) / (ell * ell));
      acc += kr * Math.cos((2 * Math.PI * j * k) / s);
    }
    lam[k] = Math.max(acc, 0);
  }
  const eig = new Float64Array(s * s);
  for (let i = 0; i < s; i++) {
    for (let j = 0; j < s; j++) eig[i * s + j] = amp * s * Math.sqrt(lam[i] * lam[j]);
  }
  return sampleSpectral(n, s, eig, options);
}

function checkSizes(op: string, n: number, s: number): void {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(s) || s < 2) {
    throw new ArgumentError(op, `needs n ≥ 1 samples on an s ≥ 2 grid, got n = ${n}, s = ${s}`);
  }
}

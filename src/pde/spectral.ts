/**
 * Helpers for the pseudo-spectral reference solvers on periodic axes: wavenumbers, constant tensors
 * made on the host in float64, multiplication of half-spectra by i·k, and the velocity of a 2D
 * vorticity field (Biot–Savart on the torus).
 *
 * Complex tensors use the tensor layer's layout (a trailing axis of 2: real, imaginary), and the
 * transforms are `rfftn` / `irfftn` over the space axes.
 *
 * @module
 */

import { type Backend, type DType, getDefaultBackend, irfftn, rfftn, Tensor } from "../tensor/mod.ts";

/**
 * Angular wavenumbers 2π·k/L of an n-point periodic axis of length L, in FFT order
 * (0, 1, …, n/2 − 1, −n/2, …, −1), or for the half spectrum of rfft (0, 1, …, ⌊n/2⌋) when `half`.
 *
 * @example
 * ```ts
 * import { wavenumbers } from "./mod.ts";
 * wavenumbers(4, 1); // [0, 2π, −4π, −2π]
 * ```
 */
export function wavenumbers(n: number, length = 1, half = false): Float64Array {
  const m = half ? Math.floor(n / 2) + 1 : n;
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const k = half || i < Math.ceil(n / 2) ? i : i - n;
    out[i] = (2 * Math.PI * k) / length;
  }
  return out;
}

/**
 * A constant tensor from float64 host data (converted to `dtype`).
 *
 * @example
 * ```ts
 * import "./mod.ts"; // registers a backend
 * import { constant } from "./spectral.ts";
 * constant(new Float64Array([1, 2]), [2, 1], "float32");
 * ```
 */
export function constant(data: Float64Array, shape: readonly number[], dtype: DType, backend?: Backend): Tensor {
  const be = backend ?? getDefaultBackend();
  const host = dtype === "float64" ? data : new Float32Array(data);
  return Tensor.fromBuffer(be.fromHost(host, dtype), shape, dtype);
}

/**
 * The factor that multiplies a complex tensor by i·k: `iK = [−k, k]` laid out with a trailing axis
 * of 2, so that `z.flip(-1).mul(iK)` is `i·k·z` (`(a + ib)·ik = −kb + i·ka`).
 *
 * @example
 * ```ts
 * import { iFactor } from "./spectral.ts";
 * iFactor(new Float64Array([1, 2]), [2]); // host data [−1, 1, −2, 2], shape [2, 2]
 * ```
 */
export function iFactor(k: Float64Array, shape: readonly number[]): { data: Float64Array; shape: number[] } {
  const data = new Float64Array(k.length * 2);
  for (let i = 0; i < k.length; i++) {
    data[2 * i] = -k[i];
    data[2 * i + 1] = k[i];
  }
  return { data, shape: [...shape, 2] };
}

/** Multiplies the complex tensor `z` by i·k given the factor from {@link iFactor} as a tensor. */
export function mulI(z: Tensor, iK: Tensor): Tensor {
  return z.flip(-1).mul(iK);
}

/**
 * The velocity (u, v) = (∂ψ/∂y, −∂ψ/∂x) of a vorticity field w on a periodic square of side
 * `length`, where −Δψ = w (the stream function of the FNO data generator; the mean of w is
 * ignored). `w` is `[..., nx, ny]`; so are u and v.
 *
 * @example
 * ```ts
 * import { velocityFromVorticity } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const { u, v } = velocityFromVorticity(randn([2, 32, 32], { dtype: "float64" }));
 * ```
 */
export function velocityFromVorticity(w: Tensor, length = 1): { u: Tensor; v: Tensor } {
  const nx = w.shape[w.ndim - 2];
  const ny = w.shape[w.ndim - 1];
  const kx = wavenumbers(nx, length);
  const ky = wavenumbers(ny, length, true);
  const m = ky.length;
  // û = i·ky·ψ̂, v̂ = −i·kx·ψ̂ with ψ̂ = ŵ / |k|² (0 at k = 0).
  const fu = new Float64Array(nx * m);
  const fv = new Float64Array(nx * m);
  for (let i = 0; i < nx; i++) {
    for (let j = 0; j < m; j++) {
      const k2 = kx[i] * kx[i] + ky[j] * ky[j];
      fu[i * m + j] = k2 === 0 ? 0 : ky[j] / k2;
      fv[i * m + j] = k2 === 0 ? 0 : -kx[i] / k2;
    }
  }
  const dtype = w.dtype;
  const be = w.backend;
  const iu = iFactor(fu, [nx, m]);
  const iv = iFactor(fv, [nx, m]);
  const wh = rfftn(w, [-2, -1]).flip(-1);
  const u = irfftn(wh.mul(constant(iu.data, iu.shape, dtype, be)), [-2, -1], [nx, ny]);
  const v = irfftn(wh.mul(constant(iv.data, iv.shape, dtype, be)), [-2, -1], [nx, ny]);
  return { u, v };
}

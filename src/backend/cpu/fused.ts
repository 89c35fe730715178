/**
 * The CPU paths of the language-model primitives (see `FusedPrimitives` in
 * `src/tensor/backend.ts`), with the semantics of their CUDA kernels (kernels/attention.cu,
 * norms.cu, rotary.cu, swiglu.cu, cross_entropy.cu): attention in the flash-attention manner (an
 * online softmax over tiles of keys, so no Tq × Tk matrix is formed; the backward recomputes the
 * probabilities from the saved log-sum-exp), RMSNorm, rotary embeddings, SwiGLU and the per-slice
 * steps of a sliced cross-entropy. Inputs are read to the host and results uploaded in the
 * dtype asked; arithmetic is float64 throughout (rounded once, on upload).
 *
 * @module
 */

import type { Backend, DeviceBuffer, View } from "../../tensor/backend.ts";
import type { AttentionShape, AttentionSpec, FusedPrimitives } from "../../tensor/fused_primitives.ts";
import type { DType } from "../../tensor/dtype.ts";
import { linearScanHost } from "./ssm_scan.ts";

const KEY_TILE = 64;

/** Keys `[first, last]` that query `i` sees. */
function keyRange(spec: AttentionSpec, tk: number, i: number): [number, number] {
  if (!spec.causal) return [0, tk - 1];
  const last = spec.queryOffset + i;
  return [spec.window === null ? 0 : Math.max(0, last - spec.window + 1), Math.min(last, tk - 1)];
}

/**
 * Flash-style attention forward on host arrays: `out` `[B, Hq, Tq, Dv]` and the log-sum-exp of
 * each query's scores `lse` `[B, Hq, Tq]`, one key tile at a time.
 *
 * @example
 * ```ts
 * import { attentionForwardHost } from "./fused.ts";
 * const s = { b: 1, hq: 1, hkv: 1, tq: 1, tk: 2, d: 1, dv: 1 };
 * attentionForwardHost([1], [0, 0], [1, 3], s, { scale: 1, causal: false, queryOffset: 1, window: null }).out; // [2]
 * ```
 */
export function attentionForwardHost(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionShape,
  spec: AttentionSpec,
): { out: Float64Array; lse: Float64Array } {
  const { b, hq, hkv, tq, tk, d, dv } = s;
  const group = hq / hkv;
  const out = new Float64Array(b * hq * tq * dv);
  const lse = new Float64Array(b * hq * tq);
  const scores = new Float64Array(KEY_TILE);
  const acc = new Float64Array(dv);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < hq; h++) {
      const kvBase = (bi * hkv + Math.floor(h / group)) * tk;
      for (let i = 0; i < tq; i++) {
        const row = (bi * hq + h) * tq + i;
        const [first, last] = keyRange(spec, tk, i);
        let m = -Infinity;
        let l = 0;
        acc.fill(0);
        for (let j0 = first; j0 <= last; j0 += KEY_TILE) {
          const n = Math.min(KEY_TILE, last - j0 + 1);
          let tileMax = -Infinity;
          for (let t = 0; t < n; t++) {
            let dot = 0;
            const kr = (kvBase + j0 + t) * d;
            for (let c = 0; c < d; c++) dot += q[row * d + c] * k[kr + c];
            scores[t] = dot * spec.scale;
            if (scores[t] > tileMax) tileMax = scores[t];
          }
          const mNew = Math.max(m, tileMax);
          const rescale = Math.exp(m - mNew);
          l *= rescale;
          for (let c = 0; c < dv; c++) acc[c] *= rescale;
          for (let t = 0; t < n; t++) {
            const p = Math.exp(scores[t] - mNew);
            l += p;
            const vr = (kvBase + j0 + t) * dv;
            for (let c = 0; c < dv; c++) acc[c] += p * v[vr + c];
          }
          m = mNew;
        }
        for (let c = 0; c < dv; c++) out[row * dv + c] = acc[c] / l;
        lse[row] = m + Math.log(l);
      }
    }
  }
  return { out, lse };
}

/**
 * Flash-style attention backward on host arrays: from the output's gradient `g`, the output and
 * the log-sum-exp of the forward, the gradients of q, k and v (keys and values of a grouped head
 * gather the gradients of all its query heads).
 *
 * @example
 * ```ts
 * import { attentionBackwardHost, attentionForwardHost } from "./fused.ts";
 * const s = { b: 1, hq: 1, hkv: 1, tq: 1, tk: 2, d: 1, dv: 1 };
 * const spec = { scale: 1, causal: false, queryOffset: 1, window: null };
 * const f = attentionForwardHost([1], [0, 0], [1, 3], s, spec);
 * attentionBackwardHost([1], [0, 0], [1, 3], f.out, f.lse, [1], s, spec).dv; // [0.5, 0.5]
 * ```
 */
export function attentionBackwardHost(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  out: ArrayLike<number>,
  lse: ArrayLike<number>,
  g: ArrayLike<number>,
  s: AttentionShape,
  spec: AttentionSpec,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { b, hq, hkv, tq, tk, d, dv: dvw } = s;
  const group = hq / hkv;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < hq; h++) {
      const kvBase = (bi * hkv + Math.floor(h / group)) * tk;
      for (let i = 0; i < tq; i++) {
        const row = (bi * hq + h) * tq + i;
        let delta = 0; // Σ_c g·out: the softmax backward's row term
        for (let c = 0; c < dvw; c++) delta += g[row * dvw + c] * out[row * dvw + c];
        const [first, last] = keyRange(spec, tk, i);
        for (let j = first; j <= last; j++) {
          const kr = (kvBase + j) * d;
          const vr = (kvBase + j) * dvw;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[row * d + c] * k[kr + c];
          const p = Math.exp(dot * spec.scale - lse[row]);
          let dp = 0;
          for (let c = 0; c < dvw; c++) {
            dp += g[row * dvw + c] * v[vr + c];
            dv[vr + c] += p * g[row * dvw + c];
          }
          const ds = p * (dp - delta) * spec.scale;
          for (let c = 0; c < d; c++) {
            dq[row * d + c] += ds * k[kr + c];
            dk[kr + c] += ds * q[row * d + c];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/**
 * RMSNorm of rows of width `d` on host arrays: `y = x · rstd · w`, `rstd = 1/√(mean(x²) + eps)`.
 *
 * @example
 * ```ts
 * import { rmsNormHost } from "./fused.ts";
 * rmsNormHost([3, 4], [1, 1], 2, 0).y; // [0.8485…, 1.1313…]
 * ```
 */
export function rmsNormHost(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  d: number,
  eps: number,
): { y: Float64Array; rstd: Float64Array } {
  const rows = x.length / d;
  const y = new Float64Array(x.length);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < d; c++) ss += x[r * d + c] * x[r * d + c];
    rstd[r] = 1 / Math.sqrt(ss / d + eps);
    for (let c = 0; c < d; c++) y[r * d + c] = x[r * d + c] * rstd[r] * w[c];
  }
  return { y, rstd };
}

/**
 * RMSNorm backward on host arrays: `dx = rstd·(g·w − x·rstd²·mean(g·w·x))`, `dw = Σ_rows g·x·rstd`.
 *
 * @example
 * ```ts
 * import { rmsNormBackwardHost } from "./fused.ts";
 * rmsNormBackwardHost([3, 4], [1, 1], [0.2828, 0.2828], [1, 0], 2).dw.length; // 2
 * ```
 */
export function rmsNormBackwardHost(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rstd: ArrayLike<number>,
  g: ArrayLike<number>,
  d: number,
): { dx: Float64Array; dw: Float64Array } {
  const rows = x.length / d;
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const rs = rstd[r];
    let dot = 0;
    for (let c = 0; c < d; c++) {
      dot += g[r * d + c] * w[c] * x[r * d + c];
      dw[c] += g[r * d + c] * x[r * d + c] * rs;
    }
    const k = (rs * rs * dot) / d;
    for (let c = 0; c < d; c++) dx[r * d + c] = rs * (g[r * d + c] * w[c] - x[r * d + c] * k);
  }
  return { dx, dw };
}

/**
 * Rotary embedding of `x` `[rows of T positions, D]` (rows cycle through the T positions) by the
 * tables `cos`, `sin` `[T, D]`: `x·cos + sign·rotateHalf(x)·sin`; sign −1 applies the transpose
 * (the inverse rotation, which is also the backward).
 *
 * @example
 * ```ts
 * import { rotaryHost } from "./fused.ts";
 * rotaryHost([1, 0], [0, 0], [1, 1], 1, 2, 1); // [0, 1]
 * ```
 */
export function rotaryHost(
  x: ArrayLike<number>,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
  t: number,
  d: number,
  sign: 1 | -1,
): Float64Array {
  const half = d / 2;
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    const p = (r % t) * d;
    const o = r * d;
    for (let c = 0; c < half; c++) {
      const a = x[o + c];
      const bb = x[o + half + c];
      y[o + c] = a * cos[p + c] - sign * bb * sin[p + c];
      y[o + half + c] = bb * cos[p + half + c] + sign * a * sin[p + half + c];
    }
  }
  return y;
}

/**
 * SwiGLU on host arrays: `y = silu(gate) · up`; with `g`, the gradients `[dgate, dup]` instead.
 *
 * @example
 * ```ts
 * import { swigluHost } from "./fused.ts";
 * swigluHost([0], [2])[0]; // [0]
 * ```
 */
export function swigluHost(gate: ArrayLike<number>, up: ArrayLike<number>, g?: ArrayLike<number>): Float64Array[] {
  const n = gate.length;
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = 1 / (1 + Math.exp(-gate[i]));
    if (!g) {
      a[i] = gate[i] * s * up[i];
      continue;
    }
    a[i] = g[i] * up[i] * s * (1 + gate[i] * (1 - s));
    b[i] = g[i] * gate[i] * s;
  }
  return g ? [a, b] : [a];
}

/**
 * One slice's step of the online log-sum-exp over a vocabulary, on host arrays: with logits `z`
 * `[N, S]`, the target's column in the slice `cols` (−1 when elsewhere), and the running max `m`,
 * sum `l` and target logit `picked` `[N]`, returns their updated values.
 *
 * @example
 * ```ts
 * import { crossEntropySliceHost } from "./fused.ts";
 * crossEntropySliceHost([0, 0], [1], [-Infinity], [0], [0], 2).l; // [2]
 * ```
 */
export function crossEntropySliceHost(
  z: ArrayLike<number>,
  cols: ArrayLike<number>,
  m: ArrayLike<number>,
  l: ArrayLike<number>,
  picked: ArrayLike<number>,
  size: number,
): { m: Float64Array; l: Float64Array; picked: Float64Array } {
  const n = cols.length;
  const mo = new Float64Array(n), lo = new Float64Array(n), po = Float64Array.from(picked);
  for (let r = 0; r < n; r++) {
    let top = -Infinity;
    for (let c = 0; c < size; c++) top = Math.max(top, z[r * size + c]);
    const mn = Math.max(m[r], top);
    let sum = m[r] === -Infinity ? 0 : l[r] * Math.exp(m[r] - mn);
    for (let c = 0; c < size; c++) sum += Math.exp(z[r * size + c] - mn);
    mo[r] = mn;
    lo[r] = sum;
    if (cols[r] >= 0) po[r] += z[r * size + cols[r]];
  }
  return { m: mo, l: lo, picked: po };
}

/**
 * One slice's gradient of a sliced cross-entropy on host arrays: `dz = (exp(z − lse) − onehot)·w`
 * per row (`w` the row's weight: the loss's gradient over its count, 0 for ignored rows).
 *
 * @example
 * ```ts
 * import { crossEntropySliceBackwardHost } from "./fused.ts";
 * crossEntropySliceBackwardHost([0, 0], [1], [Math.LN2], [1], 2); // [0.5, -0.5]
 * ```
 */
export function crossEntropySliceBackwardHost(
  z: ArrayLike<number>,
  cols: ArrayLike<number>,
  lse: ArrayLike<number>,
  w: ArrayLike<number>,
  size: number,
): Float64Array {
  const dz = new Float64Array(z.length);
  for (let r = 0; r < cols.length; r++) {
    for (let c = 0; c < size; c++) {
      dz[r * size + c] = (Math.exp(z[r * size + c] - lse[r]) - (c === cols[r] ? 1 : 0)) * w[r];
    }
  }
  return dz;
}

/**
 * {@link FusedPrimitives} for any backend through host memory: each primitive reads its
 * operands with `toHost`, runs the host function above and uploads with `fromHost`. The CPU
 * backend's own implementation.
 *
 * @example
 * ```ts
 * import { HostFused } from "./fused.ts";
 * // const fused = new HostFused(cpuBackend);
 * ```
 */
export class HostFused implements FusedPrimitives {
  /** false: on the CPU the composed ops (blocked matmuls) are faster; these are asked for by name. */
  readonly preferred = false;
  readonly #backend: Backend;

  /** Fused primitives that run on the host for `backend`'s buffers. */
  constructor(backend: Backend) {
    this.#backend = backend;
  }

  #up(data: Float64Array, dtype: DType): DeviceBuffer {
    return this.#backend.fromHost(data, dtype);
  }

  #host(v: View): Float32Array | Float64Array | Int32Array {
    return this.#backend.toHost(v);
  }

  /** See {@link FusedPrimitives.attention}. */
  attention(q: View, k: View, v: View, shape: AttentionShape, spec: AttentionSpec, dtype: DType) {
    const r = attentionForwardHost(this.#host(q), this.#host(k), this.#host(v), shape, spec);
    return { out: this.#up(r.out, dtype), lse: this.#up(r.lse, dtype === "float64" ? "float64" : "float32") };
  }

  /** See {@link FusedPrimitives.attentionBackward}. */
  attentionBackward(
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    g: View,
    shape: AttentionShape,
    spec: AttentionSpec,
    dtype: DType,
  ) {
    const h = (x: View) => this.#host(x);
    const r = attentionBackwardHost(h(q), h(k), h(v), h(out), h(lse), h(g), shape, spec);
    return { dq: this.#up(r.dq, dtype), dk: this.#up(r.dk, dtype), dv: this.#up(r.dv, dtype) };
  }

  /** See {@link FusedPrimitives.rmsNorm}. */
  rmsNorm(x: View, w: View, d: number, eps: number, dtype: DType) {
    const r = rmsNormHost(this.#host(x), this.#host(w), d, eps);
    return { y: this.#up(r.y, dtype), rstd: this.#up(r.rstd, dtype === "float64" ? "float64" : "float32") };
  }

  /** See {@link FusedPrimitives.rmsNormBackward}. */
  rmsNormBackward(x: View, w: View, rstd: View, g: View, d: number, dtype: DType) {
    const r = rmsNormBackwardHost(this.#host(x), this.#host(w), this.#host(rstd), this.#host(g), d);
    return { dx: this.#up(r.dx, dtype), dw: this.#up(r.dw, dtype) };
  }

  /** See {@link FusedPrimitives.rotary}. */
  rotary(x: View, cos: View, sin: View, t: number, d: number, sign: 1 | -1, dtype: DType) {
    return this.#up(rotaryHost(this.#host(x), this.#host(cos), this.#host(sin), t, d, sign), dtype);
  }

  /** See {@link FusedPrimitives.swiglu}. */
  swiglu(gate: View, up: View, dtype: DType) {
    return this.#up(swigluHost(this.#host(gate), this.#host(up))[0], dtype);
  }

  /** See {@link FusedPrimitives.swigluBackward}. */
  swigluBackward(gate: View, up: View, g: View, dtype: DType) {
    const [dg, du] = swigluHost(this.#host(gate), this.#host(up), this.#host(g));
    return { dgate: this.#up(dg, dtype), dup: this.#up(du, dtype) };
  }

  /** See {@link FusedPrimitives.crossEntropySlice}. */
  crossEntropySlice(z: View, cols: View, m: View, l: View, picked: View, size: number, dtype: DType) {
    const h = (x: View) => this.#host(x);
    const r = crossEntropySliceHost(h(z), h(cols), h(m), h(l), h(picked), size);
    return { m: this.#up(r.m, dtype), l: this.#up(r.l, dtype), picked: this.#up(r.picked, dtype) };
  }

  /** See {@link FusedPrimitives.crossEntropySliceBackward}. */
  crossEntropySliceBackward(z: View, cols: View, lse: View, w: View, size: number, dtype: DType) {
    const h = (x: View) => this.#host(x);
    return this.#up(crossEntropySliceBackwardHost(h(z), h(cols), h(lse), h(w), size), dtype);
  }

  /** See {@link FusedPrimitives.linearScan} (`linearScanHost`). */
  linearScan(a: View, b: View, h0: View, steps: number, reverse: boolean, dtype: DType) {
    const [batch, width] = h0.shape;
    return this.#up(linearScanHost(this.#host(a), this.#host(b), this.#host(h0), batch, steps, width, reverse), dtype);
  }
}

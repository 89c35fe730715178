/**
 * The fused primitives of the language-model layers: attention in the flash-attention manner,
 * RMSNorm, rotary embeddings, SwiGLU and the per-slice steps of a sliced cross-entropy. Optional on
 * a {@link Backend}; each has a composition of ordinary ops with the same semantics, which the
 * differentiable wrappers in `src/nn` and `src/lm` use where a backend lacks the primitive and for
 * gradients of gradients.
 *
 * Every view passed is contiguous (row-major) and every result a fresh contiguous buffer of the
 * dtype given; statistics (`lse`, `rstd`, the running max and sum) are float32, or float64 for
 * float64 data.
 *
 * @module
 */

import type { DeviceBuffer, View } from "./backend.ts";
import type { DType } from "./dtype.ts";

/**
 * Sizes of one attention call: q `[b, hq, tq, d]`, k `[b, hkv, tk, d]`, v `[b, hkv, tk, dv]`.
 *
 * @example
 * ```ts
 * import type { AttentionShape } from "./fused_primitives.ts";
 * const s: AttentionShape = { b: 1, hq: 32, hkv: 8, tq: 128, tk: 16384, d: 128, dv: 128 };
 * ```
 */
export interface AttentionShape {
  /** Batch. */
  readonly b: number;
  /** Query heads. */
  readonly hq: number;
  /** Key/value heads (divides hq; query head h reads key head ⌊h·hkv/hq⌋). */
  readonly hkv: number;
  /** Queries. */
  readonly tq: number;
  /** Keys. */
  readonly tk: number;
  /** Width of q and k. */
  readonly d: number;
  /** Width of v. */
  readonly dv: number;
}

/**
 * What one attention call computes: `softmax(q·kᵀ·scale + mask)·v`, the mask (when `causal`)
 * letting query i see keys `j ≤ queryOffset + i` (and `j > queryOffset + i − window`).
 *
 * @example
 * ```ts
 * import type { AttentionSpec } from "./fused_primitives.ts";
 * const s: AttentionSpec = { scale: 0.125, causal: true, queryOffset: 16256, window: null };
 * ```
 */
export interface AttentionSpec {
  /** Multiplies the scores. */
  readonly scale: number;
  /** Mask keys after the query. */
  readonly causal: boolean;
  /** Position of the first query among the keys. */
  readonly queryOffset: number;
  /** Sliding window (with causal), or null. */
  readonly window: number | null;
}

/**
 * Fused language-model primitives (see the module comment). `preferred` says whether the
 * differentiable wrappers should use them by default (true where they are faster than the
 * composition: the GPU); they can always be asked for.
 */
export interface FusedPrimitives {
  /** Whether the wrappers use these by default. */
  readonly preferred: boolean;
  /** Attention `out` `[b, hq, tq, dv]` and the log-sum-exp of each query's scores `lse` `[b, hq, tq]`. */
  attention(
    q: View,
    k: View,
    v: View,
    shape: AttentionShape,
    spec: AttentionSpec,
    dtype: DType,
  ): { out: DeviceBuffer; lse: DeviceBuffer };
  /** Gradients of q, k, v from the output gradient `g`, the forward's `out` and `lse`. */
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
  ): { dq: DeviceBuffer; dk: DeviceBuffer; dv: DeviceBuffer };
  /** `y = x·rstd·w` over rows of width `d`, and `rstd = 1/√(mean(x²) + eps)` per row. */
  rmsNorm(x: View, w: View, d: number, eps: number, dtype: DType): { y: DeviceBuffer; rstd: DeviceBuffer };
  /** Gradients of x and w (`dw` summed over rows) from `g` and the forward's `rstd`. */
  rmsNormBackward(
    x: View,
    w: View,
    rstd: View,
    g: View,
    d: number,
    dtype: DType,
  ): { dx: DeviceBuffer; dw: DeviceBuffer };
  /**
   * `x·cos + sign·rotateHalf(x)·sin` for x of rows of width `d` whose positions cycle through the
   * `t` rows of the tables `cos`, `sin` `[t, d]`; sign −1 is the inverse rotation (the backward).
   */
  rotary(x: View, cos: View, sin: View, t: number, d: number, sign: 1 | -1, dtype: DType): DeviceBuffer;
  /** `silu(gate)·up`. */
  swiglu(gate: View, up: View, dtype: DType): DeviceBuffer;
  /** Gradients of gate and up from `g`. */
  swigluBackward(gate: View, up: View, g: View, dtype: DType): { dgate: DeviceBuffer; dup: DeviceBuffer };
  /**
   * One vocabulary slice of an online log-sum-exp: logits `z` `[n, size]`, the target's column in
   * the slice `cols` (int32 `[n]`, −1 when elsewhere), the running max `m`, sum `l` and target
   * logit `picked` (`[n]`, dtype `dtype`); returns their updated values.
   */
  crossEntropySlice(
    z: View,
    cols: View,
    m: View,
    l: View,
    picked: View,
    size: number,
    dtype: DType,
  ): { m: DeviceBuffer; l: DeviceBuffer; picked: DeviceBuffer };
  /** One slice's logit gradient `(exp(z − lse) − onehot(cols))·w` per row, `[n, size]`. */
  crossEntropySliceBackward(z: View, cols: View, lse: View, w: View, size: number, dtype: DType): DeviceBuffer;
  /**
   * The diagonal recurrence of a selective state-space model over `a`, `b` `[batch, steps, width]`
   * from `h0` `[batch, width]`: `h[t] = a[t]·h[t−1] + b[t]`, or with `reverse`
   * `h[t] = a[t]·h[t+1] + b[t]` (h0 entering at the end); the state carried in float64, each step
   * one multiply then one add, rounded once when stored.
   */
  linearScan(a: View, b: View, h0: View, steps: number, reverse: boolean, dtype: DType): DeviceBuffer;
}

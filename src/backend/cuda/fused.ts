/**
 * The CUDA backend's language-model primitives (`FusedPrimitives`): flash-style attention
 * forward and backward (kernels/attention.cu), RMSNorm (norms.cu), rotary embeddings (rotary.cu),
 * SwiGLU (swiglu.cu), the per-slice steps of a sliced cross-entropy (cross_entropy.cu) and the
 * state-space scan (ssm_scan.cu). Views
 * arrive contiguous (the tensor-level wrappers make them so); results are fresh buffers.
 *
 * @module
 */

import type { DeviceBuffer, View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { DeviceError, DTypeError } from "../../tensor/errors.ts";
import type { AttentionShape, AttentionSpec, FusedPrimitives } from "../../tensor/fused_primitives.ts";
import type { KernelFamily } from "./compiler.ts";
import { type CudaBuffer, type CudaDevice, ITEM, SFX } from "./device.ts";

const ROWS = 8; // query (or key) rows per block in kernels/attention.cu: one warp each
const THREADS = ROWS * 32;

function accOf(dtype: DType): DType {
  return dtype === "float64" ? "float64" : "float32";
}

function sizeOfShape(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

/** `AttnDims` of kernels/attention.cu as the 16 words of one parameter slot. */
function attnDims(s: AttentionShape, spec: AttentionSpec, bk: number): number[] {
  const f = new Float64Array([spec.scale]);
  const [scaleLo, scaleHi] = new Uint32Array(f.buffer);
  const w = spec.window ?? -1;
  const TWO32 = 4294967296;
  const lo = (v: number) => v >>> 0;
  const hi = (v: number) => Math.floor(v / TWO32) >>> 0;
  return [
    s.b,
    s.hq,
    s.hkv,
    s.tq,
    s.tk,
    s.d,
    s.dv,
    0,
    lo(spec.queryOffset),
    hi(spec.queryOffset),
    lo(w),
    hi(w),
    spec.causal ? 1 : 0,
    bk,
    scaleLo,
    scaleHi,
  ];
}

/**
 * Every kernel name {@link CudaFused} can ask for, by family (kernels/<family>.cu).
 *
 * @example
 * ```ts
 * import { fusedKernelNames } from "./fused.ts";
 * fusedKernelNames().rotary; // ["rotary_f32", "rotary_bf16", "rotary_f64"]
 * ```
 */
export function fusedKernelNames(): Partial<Record<KernelFamily, string[]>> {
  const dtypes = ["f32", "bf16", "f64"];
  return {
    attention: ["fwd", "delta", "dq", "dkdv"].flatMap((k) =>
      dtypes.flatMap((t) => [1, 2, 4, 8].map((n) => `attn_${k}_${t}_${n}`))
    ),
    norms: ["fwd", "dx", "dw"].flatMap((k) => dtypes.map((t) => `rmsnorm_${k}_${t}`)),
    rotary: dtypes.map((t) => `rotary_${t}`),
    swiglu: ["fwd", "bwd"].flatMap((k) => dtypes.map((t) => `swiglu_${k}_${t}`)),
    // The slices' statistics are float32 (float32 and bfloat16 data) or float64.
    cross_entropy: ["fwd", "bwd"].flatMap((k) => ["f32", "f64"].map((t) => `ce_slice_${k}_${t}`)),
    ssm_scan: dtypes.map((t) => `ssm_scan_${t}`),
  };
}

/**
 * The fused primitives on one CUDA device.
 *
 * @example
 * ```ts
 * import { CudaFused } from "./fused.ts";
 * // const fused = new CudaFused(dev); fused.attention(q, k, v, shape, spec, "bfloat16");
 * ```
 */
export class CudaFused implements FusedPrimitives {
  /** true: the kernels replace the compositions by default. */
  readonly preferred = true;
  readonly #dev: CudaDevice;

  /** The primitives of `dev`. */
  constructor(dev: CudaDevice) {
    this.#dev = dev;
  }

  #ptr(v: View, dtype: DType, op: string): number {
    const r = this.#dev.raw(v, op);
    if (r.dtype !== dtype) throw new DTypeError(op, `expected ${dtype} data, got ${r.dtype}`);
    return r.ptr;
  }

  /** Lanes' share of a head (1, 2, 4 or 8 columns each: widths up to 256), and a key tile that fits shared memory. */
  #tiles(op: string, s: AttentionShape, dtype: DType, extra: number): { dpl: number; bk: number; shared: number } {
    const width = Math.max(s.d, s.dv);
    const dpl = [1, 2, 4, 8].find((n) => 32 * n >= width);
    if (!dpl) throw new DeviceError(op, `head width ${width} is above the kernels' 256`);
    const item = ITEM[accOf(dtype)];
    const perRow = (s.d + s.dv + extra) * item;
    let bk = 64;
    while (bk > 8 && bk * perRow > this.#dev.maxShared) bk /= 2;
    return { dpl, bk, shared: bk * perRow };
  }

  /** See `FusedPrimitives.attention`. */
  attention(q: View, k: View, v: View, s: AttentionShape, spec: AttentionSpec, dtype: DType) {
    const op = "attention", dev = this.#dev, p = dev.params;
    const out = dev.newBuffer(s.b * s.hq * s.tq * s.dv, dtype);
    const lse = dev.newBuffer(s.b * s.hq * s.tq, accOf(dtype));
    const { dpl, bk, shared } = this.#tiles(op, s, dtype, 0);
    p.ptr(0, this.#ptr(q, dtype, op));
    p.ptr(1, this.#ptr(k, dtype, op));
    p.ptr(2, this.#ptr(v, dtype, op));
    p.ptr(3, out.ptr);
    p.ptr(4, lse.ptr);
    p.u32s(5, attnDims(s, spec, bk));
    const blocks = s.b * s.hkv * Math.ceil(((s.hq / s.hkv) * s.tq) / ROWS);
    if (blocks > 0) dev.launch(dev.kernel("attention", `attn_fwd_${SFX[dtype]}_${dpl}`), blocks, THREADS, shared);
    return { out, lse };
  }

  /** See `FusedPrimitives.attentionBackward`. */
  attentionBackward(
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    g: View,
    s: AttentionShape,
    spec: AttentionSpec,
    dtype: DType,
  ) {
    const op = "attentionBackward", dev = this.#dev, p = dev.params;
    const acc = accOf(dtype);
    const rows = s.b * s.hq * s.tq;
    const delta = dev.newBuffer(rows, acc);
    const dq = dev.newBuffer(sizeOfShape(q.shape), dtype);
    const dk = dev.newBuffer(sizeOfShape(k.shape), dtype);
    const dv = dev.newBuffer(sizeOfShape(v.shape), dtype);
    const sfx = SFX[dtype];
    const fwd = this.#tiles(op, s, dtype, 0);
    const [Q, K, V, G, L] = [q, k, v, g].map((x) => this.#ptr(x, dtype, op)).concat(this.#ptr(lse, acc, op));
    p.ptr(0, this.#ptr(out, dtype, op));
    p.ptr(1, G);
    p.ptr(2, delta.ptr);
    p.u64(3, rows);
    p.u32(4, s.dv);
    if (rows > 0) dev.launch(dev.kernel("attention", `attn_delta_${sfx}_${fwd.dpl}`), dev.grid(rows * 32), 256);
    [Q, K, V, G, L, delta.ptr, dq.ptr].forEach((x, i) => p.ptr(i, x));
    p.u32s(7, attnDims(s, spec, fwd.bk));
    const qBlocks = s.b * s.hkv * Math.ceil(((s.hq / s.hkv) * s.tq) / ROWS);
    if (qBlocks > 0) dev.launch(dev.kernel("attention", `attn_dq_${sfx}_${fwd.dpl}`), qBlocks, THREADS, fwd.shared);
    const bwd = this.#tiles(op, s, dtype, 2); // q and dO rows plus their lse and delta
    [Q, K, V, G, L, delta.ptr, dk.ptr, dv.ptr].forEach((x, i) => p.ptr(i, x));
    p.u32s(8, attnDims(s, spec, bwd.bk));
    const kBlocks = s.b * s.hkv * Math.ceil(s.tk / ROWS);
    if (kBlocks > 0) dev.launch(dev.kernel("attention", `attn_dkdv_${sfx}_${bwd.dpl}`), kBlocks, THREADS, bwd.shared);
    dev.release(delta);
    return { dq, dk, dv };
  }

  /** See `FusedPrimitives.rmsNorm`. */
  rmsNorm(x: View, w: View, d: number, eps: number, dtype: DType) {
    const op = "rmsNorm", dev = this.#dev, p = dev.params;
    const n = sizeOfShape(x.shape), rows = n / d;
    const y = dev.newBuffer(n, dtype);
    const rstd = dev.newBuffer(rows, accOf(dtype));
    p.ptr(0, this.#ptr(x, dtype, op));
    p.ptr(1, this.#ptr(w, dtype, op));
    p.ptr(2, y.ptr);
    p.ptr(3, rstd.ptr);
    p.u64(4, rows);
    p.u32(5, d);
    p.f64(6, eps);
    if (rows > 0) dev.launch(dev.kernel("norms", `rmsnorm_fwd_${SFX[dtype]}`), Math.min(rows, dev.maxBlocks), 256);
    return { y, rstd };
  }

  /** See `FusedPrimitives.rmsNormBackward`. */
  rmsNormBackward(x: View, w: View, rstd: View, g: View, d: number, dtype: DType) {
    const op = "rmsNormBackward", dev = this.#dev, p = dev.params;
    const n = sizeOfShape(x.shape), rows = n / d;
    const dx = dev.newBuffer(n, dtype);
    const dw = dev.newBuffer(d, dtype);
    const [X, W, R, G] = [
      this.#ptr(x, dtype, op),
      this.#ptr(w, dtype, op),
      this.#ptr(rstd, accOf(dtype), op),
      this.#ptr(g, dtype, op),
    ];
    [X, W, R, G, dx.ptr].forEach((v, i) => p.ptr(i, v));
    p.u64(5, rows);
    p.u32(6, d);
    if (rows > 0) dev.launch(dev.kernel("norms", `rmsnorm_dx_${SFX[dtype]}`), Math.min(rows, dev.maxBlocks), 256);
    [X, R, G, dw.ptr].forEach((v, i) => p.ptr(i, v));
    p.u64(4, rows);
    p.u32(5, d);
    dev.launch(dev.kernel("norms", `rmsnorm_dw_${SFX[dtype]}`), dev.grid(d), 256);
    return { dx, dw };
  }

  /** See `FusedPrimitives.rotary`. */
  rotary(x: View, cos: View, sin: View, t: number, d: number, sign: 1 | -1, dtype: DType): DeviceBuffer {
    const op = "rotary", dev = this.#dev, p = dev.params;
    const n = sizeOfShape(x.shape);
    const y = dev.newBuffer(n, dtype);
    [this.#ptr(x, dtype, op), this.#ptr(cos, dtype, op), this.#ptr(sin, dtype, op), y.ptr].forEach((v, i) =>
      p.ptr(i, v)
    );
    p.u64(4, n / d);
    p.u32(5, t);
    p.u32(6, d);
    p.i32(7, sign);
    if (n > 0) dev.launch(dev.kernel("rotary", `rotary_${SFX[dtype]}`), dev.grid(n / 2), 256);
    return y;
  }

  /** See `FusedPrimitives.swiglu`. */
  swiglu(gate: View, up: View, dtype: DType): DeviceBuffer {
    const op = "swiglu", dev = this.#dev, p = dev.params;
    const n = sizeOfShape(gate.shape);
    const y = dev.newBuffer(n, dtype);
    [this.#ptr(gate, dtype, op), this.#ptr(up, dtype, op), y.ptr].forEach((v, i) => p.ptr(i, v));
    p.u64(3, n);
    if (n > 0) dev.launch(dev.kernel("swiglu", `swiglu_fwd_${SFX[dtype]}`), dev.grid(n), 256);
    return y;
  }

  /** See `FusedPrimitives.swigluBackward`. */
  swigluBackward(gate: View, up: View, g: View, dtype: DType) {
    const op = "swigluBackward", dev = this.#dev, p = dev.params;
    const n = sizeOfShape(gate.shape);
    const dgate = dev.newBuffer(n, dtype);
    const dup = dev.newBuffer(n, dtype);
    [this.#ptr(gate, dtype, op), this.#ptr(up, dtype, op), this.#ptr(g, dtype, op), dgate.ptr, dup.ptr].forEach((
      v,
      i,
    ) => p.ptr(i, v));
    p.u64(5, n);
    if (n > 0) dev.launch(dev.kernel("swiglu", `swiglu_bwd_${SFX[dtype]}`), dev.grid(n), 256);
    return { dgate, dup };
  }

  /** See `FusedPrimitives.crossEntropySlice`. */
  crossEntropySlice(z: View, cols: View, m: View, l: View, picked: View, size: number, dtype: DType) {
    const op = "crossEntropySlice", dev = this.#dev, p = dev.params;
    if (dtype === "bfloat16") throw new DTypeError(op, "the slices' statistics are float32 or float64, not bfloat16");
    const n = sizeOfShape(cols.shape);
    const out: CudaBuffer[] = [0, 1, 2].map(() => dev.newBuffer(n, dtype));
    const ins = [
      this.#ptr(z, dtype, op),
      this.#ptr(cols, "int32", op),
      ...[m, l, picked].map((x) => this.#ptr(x, dtype, op)),
    ];
    [...ins, ...out.map((b) => b.ptr)].forEach((v, i) => p.ptr(i, v));
    p.u64(8, n);
    p.u32(9, size);
    if (n > 0) dev.launch(dev.kernel("cross_entropy", `ce_slice_fwd_${SFX[dtype]}`), Math.min(n, dev.maxBlocks), 256);
    return { m: out[0], l: out[1], picked: out[2] };
  }

  /** See `FusedPrimitives.crossEntropySliceBackward`. */
  crossEntropySliceBackward(z: View, cols: View, lse: View, w: View, size: number, dtype: DType): DeviceBuffer {
    const op = "crossEntropySliceBackward", dev = this.#dev, p = dev.params;
    if (dtype === "bfloat16") throw new DTypeError(op, "the slices' logits are float32 or float64, not bfloat16");
    const n = sizeOfShape(cols.shape);
    const dz = dev.newBuffer(n * size, dtype);
    const ins = [
      this.#ptr(z, dtype, op),
      this.#ptr(cols, "int32", op),
      this.#ptr(lse, dtype, op),
      this.#ptr(w, dtype, op),
    ];
    [...ins, dz.ptr].forEach((v, i) => p.ptr(i, v));
    p.u64(5, n);
    p.u32(6, size);
    if (n * size > 0) dev.launch(dev.kernel("cross_entropy", `ce_slice_bwd_${SFX[dtype]}`), dev.grid(n * size), 256);
    return dz;
  }

  /** See `FusedPrimitives.linearScan`: one block of 256 threads per state column (kernels/ssm_scan.cu). */
  linearScan(a: View, b: View, h0: View, steps: number, reverse: boolean, dtype: DType): DeviceBuffer {
    const op = "linearScan", dev = this.#dev, p = dev.params;
    const [batch, width] = h0.shape;
    const h = dev.newBuffer(batch * steps * width, dtype);
    [this.#ptr(a, dtype, op), this.#ptr(b, dtype, op), this.#ptr(h0, dtype, op), h.ptr].forEach((v, i) => p.ptr(i, v));
    p.u32(4, batch);
    p.u32(5, steps);
    p.u32(6, width);
    p.i32(7, reverse ? 1 : 0);
    const columns = batch * width;
    if (columns * steps > 0) {
      dev.launch(dev.kernel("ssm_scan", `ssm_scan_${SFX[dtype]}`), Math.min(columns, 65535), 256);
    }
    return h;
  }
}

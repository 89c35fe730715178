/**
 * Fused optimiser updates of the CPU backend ({@link OptimPrimitives}). Each element goes
 * through the composite update's operations in the same order, and float32 results are rounded
 * after every operation (constants first rounded to float32) as the elementwise kernels round
 * them, so the fused and the composite update agree bit for bit on this backend. Parameters,
 * gradients and moments of one dtype in the heap run on the SIMD kernels of `wasm/optim.ts` (on
 * every thread for larger tensors; float32 ones also with a bfloat16 gradient or copy); float64
 * parameters with a bfloat16 copy run the loop here.
 *
 * @module
 */

import type { AdamHyperparameters, OptimPrimitives, View } from "../../tensor/backend.ts";
import { fromBFloat16Bits, toBFloat16Bits } from "../../tensor/dtype.ts";
import { checkAdamOperands } from "../adam_operands.ts";
import { bufferOf } from "./buffer.ts";
import { heapAddress } from "./heap.ts";
import { runKernel, threadCount } from "./threads.ts";
import { CHUNK } from "./wasm/elementwise.ts";

/** Below this many elements an update stays on one thread. */
const PARALLEL_ELEMENTS = 1 << 16;

const identity = (x: number): number => x;

/**
 * The CPU backend's fused optimiser updates.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./cpu_backend.ts";
 * const cpu = new CpuBackend();
 * const view = (data: number[]) => ({ buffer: cpu.fromHost(data, "float32"), shape: [2], strides: [1], offset: 0 });
 * const p = view([1, 2]), g = view([0.5, -0.5]), m = view([0, 0]), v = view([0, 0]);
 * cpu.optim.adam(p, g, m, v, null, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: true, step: 1 });
 * cpu.toHost(p); // ≈ [0.9, 2.1]
 * ```
 */
export class CpuOptim implements OptimPrimitives {
  /** One Adam(W) update in place (see {@link OptimPrimitives.adam}). */
  adam(
    param: View,
    grad: View,
    expAvg: View,
    expAvgSq: View,
    copyTo: View | null,
    hyper: AdamHyperparameters,
  ): void {
    const op = "adam";
    const P = bufferOf(param.buffer, op), G = bufferOf(grad.buffer, op);
    const M = bufferOf(expAvg.buffer, op), V = bufferOf(expAvgSq.buffer, op);
    const L = copyTo ? bufferOf(copyTo.buffer, op) : null;
    const dtype = P.dtype;
    const n = checkAdamOperands(
      op,
      { name: "param", dtype, shape: param.shape, strides: param.strides },
      { name: "grad", dtype: G.dtype, shape: grad.shape, strides: grad.strides },
      { name: "expAvg", dtype: M.dtype, shape: expAvg.shape, strides: expAvg.strides },
      { name: "expAvgSq", dtype: V.dtype, shape: expAvgSq.shape, strides: expAvgSq.strides },
      copyTo && L && { name: "copyTo", dtype: L.dtype, shape: copyTo.shape, strides: copyTo.strides },
    );
    const p = P.data as Float32Array | Float64Array;
    const m = M.data as Float32Array | Float64Array;
    const v = V.data as Float32Array | Float64Array;
    const gd = G.data;
    const gBits = gd instanceof Uint16Array;
    const low = L ? L.data as Uint16Array : null;
    const r = dtype === "float32" ? Math.fround : identity;
    const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled, step: t } = hyper;
    const bc1 = 1 - b1 ** t;
    const bc2 = 1 - b2 ** t;
    const decay = wd !== 0 && decoupled ? r(1 - lr * wd) : 1;
    const l2 = wd !== 0 && !decoupled ? r(wd) : 0;
    const cb1 = r(b1), c1b1 = r(1 - b1), cb2 = r(b2), c1b2 = r(1 - b2);
    const cbc2 = r(Math.sqrt(bc2)), ceps = r(eps), cstep = r(lr / bc1);
    const po = param.offset, go = grad.offset, mo = expAvg.offset, vo = expAvgSq.offset;
    const at = [p, gd, m, v].map((a) => heapAddress(a));
    const lo = copyTo ? copyTo.offset : 0;
    const copyAt = !low ? 0 : heapAddress(low) < 0 ? -1 : heapAddress(low) + 2 * lo;
    if (n > 0 && at.every((a) => a >= 0) && copyAt >= 0 && (dtype === "float32" || (!low && !gBits))) {
      const E = p.BYTES_PER_ELEMENT;
      const args = [at[0] + po * E, at[1] + go * gd.BYTES_PER_ELEMENT, at[2] + mo * E, at[3] + vo * E, n];
      args.push(l2, decay, cb1, c1b1, cb2, c1b2, cbc2, ceps, cstep, l2 !== 0 ? 1 : 0);
      args.push(gd.BYTES_PER_ELEMENT, copyAt, low ? 1 : 0);
      const kernel = `adam_${dtype === "float32" ? "f32" : "f64"}`;
      runKernel(kernel, args, Math.ceil(n / CHUNK), threadCount() > 1 && n >= PARALLEL_ELEMENTS);
      return;
    }
    for (let i = 0; i < n; i++) {
      const theta = p[po + i];
      let g = gBits ? fromBFloat16Bits(gd[go + i]) : gd[go + i];
      if (l2 !== 0) g = r(g + r(theta * l2));
      const base = decay !== 1 ? r(theta * decay) : theta;
      const mi = r(r(m[mo + i] * cb1) + r(g * c1b1));
      const vi = r(r(v[vo + i] * cb2) + r(r(g * g) * c1b2));
      const denom = r(r(r(Math.sqrt(vi)) / cbc2) + ceps);
      const next = r(base - r(r(mi / denom) * cstep));
      m[mo + i] = mi;
      v[vo + i] = vi;
      p[po + i] = next;
      if (low) low[lo + i] = toBFloat16Bits(next);
    }
  }
}

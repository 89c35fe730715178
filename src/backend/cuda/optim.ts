/**
 * The CUDA backend's fused optimiser updates (kernels/optim.cu).
 *
 * @module
 */

import type { AdamHyperparameters, View } from "../../tensor/backend.ts";
import { checkAdamOperands } from "../adam_operands.ts";
import type { DType } from "../../tensor/dtype.ts";
import type { KernelFamily } from "./compiler.ts";
import { type CudaDevice, SFX } from "./device.ts";

function adamKernel(param: DType, grad: DType): string {
  return `adam_${SFX[param]}_${SFX[grad]}`;
}

/**
 * Every kernel name the optimiser updates can ask for: float32 and float64 parameters with a
 * gradient of their own type, and float32 parameters with a bfloat16 gradient.
 *
 * @example
 * ```ts
 * import { optimKernelNames } from "./optim.ts";
 * optimKernelNames().optim; // ["adam_f32_f32", "adam_f64_f64", "adam_f32_bf16"]
 * ```
 */
export function optimKernelNames(): Partial<Record<KernelFamily, string[]>> {
  return {
    optim: [adamKernel("float32", "float32"), adamKernel("float64", "float64"), adamKernel("float32", "bfloat16")],
  };
}

/**
 * One fused Adam(W) update in place (see `OptimPrimitives.adam`): one launch over the parameter.
 *
 * @example
 * ```ts
 * import { adam } from "./optim.ts";
 * // adam(dev, param, grad, expAvg, expAvgSq, null, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8,
 * //   weightDecay: 0, decoupled: true, step: 1 });
 * ```
 */
export function adam(
  dev: CudaDevice,
  param: View,
  grad: View,
  expAvg: View,
  expAvgSq: View,
  copyTo: View | null,
  hyper: AdamHyperparameters,
): void {
  const op = "adam";
  const P = dev.raw(param, op), G = dev.raw(grad, op), M = dev.raw(expAvg, op), V = dev.raw(expAvgSq, op);
  const L = copyTo ? dev.raw(copyTo, op) : null;
  const dtype = P.dtype;
  const n = checkAdamOperands(
    op,
    { name: "param", ...P },
    { name: "grad", ...G },
    { name: "expAvg", ...M },
    { name: "expAvgSq", ...V },
    L && { name: "copyTo", ...L },
  );
  if (n === 0) return;
  const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled, step: t } = hyper;
  const p = dev.params;
  p.ptr(0, P.ptr);
  p.ptr(1, G.ptr);
  p.ptr(2, M.ptr);
  p.ptr(3, V.ptr);
  p.ptr(4, L ? L.ptr : 0);
  p.u64(5, n);
  p.f64(6, wd !== 0 && decoupled ? 1 - lr * wd : 1);
  p.f64(7, wd !== 0 && !decoupled ? wd : 0);
  p.f64(8, b1);
  p.f64(9, 1 - b1);
  p.f64(10, b2);
  p.f64(11, 1 - b2);
  p.f64(12, Math.sqrt(1 - b2 ** t));
  p.f64(13, eps);
  p.f64(14, lr / (1 - b1 ** t));
  dev.launch(dev.kernel("optim", adamKernel(dtype, G.dtype)), dev.grid(Math.ceil(n / 4)), 256);
}

/**
 * Tensors, their operations and reverse-mode autodiff. Knows nothing of devices: it talks to a
 * {@link Backend} chosen by `src/backend`.
 *
 * @example
 * ```ts
 * import { grad, tensor } from "./mod.ts";
 * const x = tensor([1, 2, 3], { dtype: "float64" });
 * grad((v: Tensor) => v.mul(v).sum())(x).toArray(); // [2, 4, 6]
 * ```
 *
 * @module
 */

export * from "./dtype.ts";
export * from "./errors.ts";
export * from "./shape.ts";
export * from "./validate.ts";
export * from "./backend.ts";
export * from "./memory.ts";
export * from "./counting.ts";
export * from "./fused_primitives.ts";
export { type Disposable, keep, Storage, tidy } from "./storage.ts";
export { type NestedArray, type Operand, Tensor } from "./tensor.ts";
export {
  type BackwardFn,
  type BackwardOptions,
  enableGrad,
  gradients,
  isGradEnabled,
  type Node,
  noGrad,
} from "./autograd.ts";
export * from "./creation.ts";
export * from "./ops_elementwise.ts";
export * from "./op_defs.ts";
export * from "./ops_reduce.ts";
export * from "./ops_shape.ts";
export * from "./ops_index.ts";
export * from "./ops_matmul.ts";
export * from "./ops_fft.ts";
export * from "./ops_spectral.ts";
export * from "./ops_stencil.ts";
export * from "./transforms.ts";
export * from "./gradcheck.ts";

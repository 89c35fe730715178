/**
 * Kernel names of the CUDA backend's elementwise ops. kernels/elementwise.cu instantiates, for
 * every op of `UNARY_OPS` and `BINARY_OPS` (src/tensor/op_defs.ts) and every storage type, a
 * contiguous kernel `<kernel>_<dtype>` and a strided one `<kernel>_strided_<dtype>`, where
 * `<kernel>` is the op definition's kernel name; `where` has one pair per condition and value type.
 *
 * @module
 */

import { BINARY_OPS, UNARY_OPS } from "../../tensor/op_defs.ts";
import { type DType, DTYPES } from "../../tensor/dtype.ts";
import { SFX } from "./device.ts";

/**
 * The kernel of kernels/elementwise.cu that runs the op with kernel name `kernel` on `dtype`
 * storage (contiguous operands, or `strided` ones).
 *
 * @example
 * ```ts
 * import { elementwiseKernel } from "./elementwise.ts";
 * elementwiseKernel("unary_exp", "float32", false); // "unary_exp_f32"
 * elementwiseKernel("binary_add", "bfloat16", true); // "binary_add_strided_bf16"
 * ```
 */
export function elementwiseKernel(kernel: string, dtype: DType, strided: boolean): string {
  return `${kernel}${strided ? "_strided" : ""}_${SFX[dtype]}`;
}

/**
 * The `where` kernel for a condition of `cond` storage and values of `dtype` storage.
 *
 * @example
 * ```ts
 * import { whereKernel } from "./elementwise.ts";
 * whereKernel("int32", "float32", true); // "where_strided_i32_f32"
 * ```
 */
export function whereKernel(cond: DType, dtype: DType, strided: boolean): string {
  return `where${strided ? "_strided" : ""}_${SFX[cond]}_${SFX[dtype]}`;
}

/**
 * Every kernel name the elementwise ops can ask kernels/elementwise.cu for.
 *
 * @example
 * ```ts
 * import { elementwiseKernelNames } from "./elementwise.ts";
 * elementwiseKernelNames().includes("unary_gelu_strided_f64"); // true
 * ```
 */
export function elementwiseKernelNames(): string[] {
  const names: string[] = [];
  const stems = [...Object.values(UNARY_OPS), ...Object.values(BINARY_OPS)].map((def) => def.kernel);
  for (const dtype of DTYPES) {
    for (const strided of [false, true]) {
      for (const kernel of stems) names.push(elementwiseKernel(kernel, dtype, strided));
      for (const cond of DTYPES) names.push(whereKernel(cond, dtype, strided));
    }
  }
  return names;
}

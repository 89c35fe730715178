/**
 * The CUDA backend's batched matrix products, through cuBLAS (`cublas?gemmStridedBatched`, or
 * `cublasGemmStridedBatchedEx` for bfloat16 and TF32). Row-major products are computed as
 * column-major ones of the transposes (Cᵀ = Bᵀ·Aᵀ), so a row-major or a column-major operand
 * (a transposed view) needs no copy; other layouts, and batch axes that do not collapse to one
 * stride, are copied contiguous first. int32 products go through float64 (exact below 2^53).
 *
 * @module
 */

import type { View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { ArgumentError } from "../../tensor/errors.ts";
import { coalesce, contiguousStrides, isContiguous, sizeOf } from "../../tensor/shape.ts";
import { CUBLAS_COMPUTE, CUBLAS_GEMM_DEFAULT, CUBLAS_OP, CUDA_R } from "./cublas.ts";
import type { CudaBuffer, CudaDevice, Raw } from "./device.ts";
import { copyRaw, materialize, memset0, operand } from "./transfer.ts";

const ONE32 = new Float32Array([1]);
const ZERO32 = new Float32Array([0]);
const ONE64 = new Float64Array([1]);
const ZERO64 = new Float64Array([0]);

/**
 * The batched product of `a` [...batch, m, k] and `b` [...batch, k, n] (equal, already broadcast
 * batch shapes) into a new contiguous buffer of `dtype`; float32 uses TF32 tensor cores only when
 * `allowTF32` is set.
 *
 * @example
 * ```ts
 * import { matmul } from "./matmul.ts";
 * // const c = matmul(dev, a, b, "float32", false);
 * ```
 */
export function matmul(dev: CudaDevice, a: View, b: View, dtype: DType, allowTF32: boolean): CudaBuffer {
  const r = a.shape.length;
  if (r < 2 || b.shape.length !== r) throw new ArgumentError("matmul", `ranks ${r} and ${b.shape.length}`);
  const m = a.shape[r - 2], k = a.shape[r - 1], n = b.shape[r - 1];
  const batchShape = a.shape.slice(0, r - 2);
  const batch = sizeOf(batchShape);
  const out = dev.newBuffer(batch * m * n, dtype);
  if (batch * m * n === 0) return out;
  if (k === 0) {
    memset0(dev, out.ptr, out.bytes);
    return out;
  }
  if (dtype === "int32") {
    // cuBLAS has no int32 GEMM here: go through float64 (exact for |values| < 2^53).
    const c64 = matmul(dev, a, b, "float64", allowTF32);
    const shape = [...batchShape, m, n];
    copyRaw(dev, { ptr: c64.ptr, dtype: "float64", shape, strides: contiguousStrides(shape) }, {
      ptr: out.ptr,
      dtype: "int32",
      shape,
      strides: contiguousStrides(shape),
    });
    dev.free(c64);
    return out;
  }
  const temps: (CudaBuffer | null)[] = [];
  const A0 = operand(dev, a, dtype, "matmul"), B0 = operand(dev, b, dtype, "matmul");
  temps.push(A0.temp, B0.temp);
  let A = A0.raw, B = B0.raw;
  let la = matLayout(A, m, k), lb = matLayout(B, k, n);
  if (!la) {
    const t = materialize(dev, A, dtype);
    temps.push(t.temp);
    A = t.raw;
    la = matLayout(A, m, k)!;
  }
  if (!lb) {
    const t = materialize(dev, B, dtype);
    temps.push(t.temp);
    B = t.raw;
    lb = matLayout(B, k, n)!;
  }
  let bb = batchLayout(batchShape, A.strides, B.strides);
  if (!bb) {
    if (!isContiguous(A.shape, A.strides)) {
      const t = materialize(dev, A, dtype);
      temps.push(t.temp);
      A = t.raw;
    }
    if (!isContiguous(B.shape, B.strides)) {
      const t = materialize(dev, B, dtype);
      temps.push(t.temp);
      B = t.raw;
    }
    la = matLayout(A, m, k)!;
    lb = matLayout(B, k, n)!;
    bb = { count: batch, sa: m * k, sb: k * n };
  }
  gemm(dev, allowTF32, dtype, lb, la, n, m, k, B.ptr, A.ptr, out.ptr, bb.sb, bb.sa, m * n, bb.count);
  for (const t of temps) dev.release(t);
  return out;
}

/** C (col-major n' × m') = op(X)·op(Y) for the row-major product; X is B, Y is A. */
function gemm(
  dev: CudaDevice,
  allowTF32: boolean,
  dtype: DType,
  lx: MatLayout,
  ly: MatLayout,
  mm: number,
  nn: number,
  kk: number,
  xp: number,
  yp: number,
  cp: number,
  sx: number,
  sy: number,
  sc: number,
  count: number,
): void {
  const { lib, handle } = dev.blas();
  const tx = lx.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T;
  const ty = ly.rowMajor ? CUBLAS_OP.N : CUBLAS_OP.T;
  if (dtype === "float64") {
    lib.check(
      "cublasDgemmStridedBatched",
      lib.sym.cublasDgemmStridedBatched(
        handle,
        tx,
        ty,
        mm,
        nn,
        kk,
        ONE64,
        BigInt(xp),
        lx.ld,
        BigInt(sx),
        BigInt(yp),
        ly.ld,
        BigInt(sy),
        ZERO64,
        BigInt(cp),
        mm,
        BigInt(sc),
        count,
      ),
    );
  } else if (dtype === "float32" && !allowTF32) {
    lib.check(
      "cublasSgemmStridedBatched",
      lib.sym.cublasSgemmStridedBatched(
        handle,
        tx,
        ty,
        mm,
        nn,
        kk,
        ONE32,
        BigInt(xp),
        lx.ld,
        BigInt(sx),
        BigInt(yp),
        ly.ld,
        BigInt(sy),
        ZERO32,
        BigInt(cp),
        mm,
        BigInt(sc),
        count,
      ),
    );
  } else {
    const t = dtype === "bfloat16" ? CUDA_R.BF16 : CUDA_R.F32;
    const compute = dtype === "float32" ? CUBLAS_COMPUTE.F32_FAST_TF32 : CUBLAS_COMPUTE.F32;
    lib.check(
      "cublasGemmStridedBatchedEx",
      lib.sym.cublasGemmStridedBatchedEx(
        handle,
        tx,
        ty,
        mm,
        nn,
        kk,
        ONE32,
        BigInt(xp),
        t,
        lx.ld,
        BigInt(sx),
        BigInt(yp),
        t,
        ly.ld,
        BigInt(sy),
        ZERO32,
        BigInt(cp),
        t,
        mm,
        BigInt(sc),
        count,
        compute,
        CUBLAS_GEMM_DEFAULT,
      ),
    );
  }
}

/** How a matrix operand is laid out for cuBLAS. */
interface MatLayout {
  rowMajor: boolean;
  ld: number;
}

/** Row-major (unit column stride) or column-major (unit row stride) layout of the last two axes. */
function matLayout(v: Raw, rows: number, cols: number): MatLayout | null {
  const r = v.shape.length;
  const sr = v.strides[r - 2], sc = v.strides[r - 1];
  if ((cols === 1 || sc === 1) && (rows === 1 || sr >= Math.max(1, cols)) && sr < 2 ** 31) {
    return { rowMajor: true, ld: rows === 1 ? Math.max(1, cols) : sr };
  }
  if ((rows === 1 || sr === 1) && (cols === 1 || sc >= Math.max(1, rows)) && sc < 2 ** 31) {
    return { rowMajor: false, ld: cols === 1 ? Math.max(1, rows) : sc };
  }
  return null;
}

/** The batch axes as one strided batch, or null when they do not collapse to one. */
function batchLayout(
  batchShape: readonly number[],
  sa: readonly number[],
  sb: readonly number[],
): { count: number; sa: number; sb: number } | null {
  const nb = batchShape.length;
  if (nb === 0) return { count: 1, sa: 0, sb: 0 };
  const c = coalesce(batchShape, [sa.slice(0, nb), sb.slice(0, nb)]);
  if (c.shape.length !== 1) return null;
  const a = c.strides[0][0], b = c.strides[1][0];
  if (a < 0 || b < 0) return null;
  return { count: c.shape[0], sa: a, sb: b };
}

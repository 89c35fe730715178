/**
 * Bindings to cuBLAS (`libcublas.so.13`/`.12`): handle management, the strided-batched GEMMs
 * the backend's matmul uses, and the batched triangular solves benchmarks compare against. Statuses are checked into CudaErrors carrying the status name.
 *
 * @module
 */

import { CudaError } from "./errors.ts";
import { cString, openLibrary } from "./libraries.ts";

const GEMM_STRIDED = [
  "pointer", // handle
  "i32", // transa
  "i32", // transb
  "i32", // m
  "i32", // n
  "i32", // k
  "buffer", // alpha (host)
  "u64", // A
  "i32", // lda
  "i64", // strideA
  "u64", // B
  "i32", // ldb
  "i64", // strideB
  "buffer", // beta (host)
  "u64", // C
  "i32", // ldc
  "i64", // strideC
  "i32", // batchCount
] as const;

const TRSM_BATCHED = [
  "pointer", // handle
  "i32", // side
  "i32", // uplo
  "i32", // trans
  "i32", // diag
  "i32", // m
  "i32", // n
  "buffer", // alpha (host)
  "u64", // A (device array of device pointers)
  "i32", // lda
  "u64", // B (device array of device pointers)
  "i32", // ldb
  "i32", // batchCount
] as const;

/**
 * Symbol table of the cuBLAS functions used.
 *
 * @example
 * ```ts
 * import { CUBLAS_SYMBOLS } from "./cublas.ts";
 * CUBLAS_SYMBOLS.cublasCreate_v2.result; // "i32"
 * ```
 */
export const CUBLAS_SYMBOLS = {
  cublasCreate_v2: { parameters: ["buffer"], result: "i32" },
  cublasDestroy_v2: { parameters: ["pointer"], result: "i32" },
  cublasSetStream_v2: { parameters: ["pointer", "pointer"], result: "i32" },
  cublasSetMathMode: { parameters: ["pointer", "i32"], result: "i32" },
  cublasGetVersion_v2: { parameters: ["pointer", "buffer"], result: "i32" },
  cublasSgemmStridedBatched: { parameters: GEMM_STRIDED, result: "i32" },
  cublasDgemmStridedBatched: { parameters: GEMM_STRIDED, result: "i32" },
  cublasGemmStridedBatchedEx: {
    parameters: [
      "pointer", // handle
      "i32", // transa
      "i32", // transb
      "i32", // m
      "i32", // n
      "i32", // k
      "buffer", // alpha
      "u64", // A
      "i32", // Atype
      "i32", // lda
      "i64", // strideA
      "u64", // B
      "i32", // Btype
      "i32", // ldb
      "i64", // strideB
      "buffer", // beta
      "u64", // C
      "i32", // Ctype
      "i32", // ldc
      "i64", // strideC
      "i32", // batchCount
      "i32", // computeType
      "i32", // algo
    ],
    result: "i32",
  },
  cublasGetStatusString: { parameters: ["i32"], result: "pointer", optional: true },
  cublasStrsmBatched: { parameters: TRSM_BATCHED, result: "i32", optional: true },
  cublasDtrsmBatched: { parameters: TRSM_BATCHED, result: "i32", optional: true },
} as const;

/**
 * cuBLAS's typed symbols.
 *
 * @example
 * ```ts
 * import type { CublasSymbols } from "./cublas.ts";
 * // const sym: CublasSymbols = loadCublas().sym;
 * ```
 */
export type CublasSymbols = Deno.DynamicLibrary<typeof CUBLAS_SYMBOLS>["symbols"];

/**
 * `cublasOperation_t`.
 *
 * @example
 * ```ts
 * import { CUBLAS_OP } from "./cublas.ts";
 * CUBLAS_OP.T; // 1
 * ```
 */
export const CUBLAS_OP = { N: 0, T: 1 } as const;
/**
 * `cublasSideMode_t` (for the batched triangular solves).
 *
 * @example
 * ```ts
 * import { CUBLAS_SIDE } from "./cublas.ts";
 * CUBLAS_SIDE.LEFT; // 0
 * ```
 */
export const CUBLAS_SIDE = { LEFT: 0, RIGHT: 1 } as const;
/**
 * `cublasDiagType_t`.
 *
 * @example
 * ```ts
 * import { CUBLAS_DIAG } from "./cublas.ts";
 * CUBLAS_DIAG.UNIT; // 1
 * ```
 */
export const CUBLAS_DIAG = { NON_UNIT: 0, UNIT: 1 } as const;
/**
 * `cudaDataType` values used.
 *
 * @example
 * ```ts
 * import { CUDA_R } from "./cublas.ts";
 * CUDA_R.BF16; // 14
 * ```
 */
export const CUDA_R = { F32: 0, F64: 1, F16: 2, BF16: 14 } as const;
/**
 * `cublasComputeType_t` values used.
 *
 * @example
 * ```ts
 * import { CUBLAS_COMPUTE } from "./cublas.ts";
 * CUBLAS_COMPUTE.F32_FAST_TF32; // 77
 * ```
 */
export const CUBLAS_COMPUTE = { F32: 68, F32_FAST_TF32: 77, F64: 70 } as const;
/**
 * `CUBLAS_GEMM_DEFAULT`.
 *
 * @example
 * ```ts
 * import { CUBLAS_GEMM_DEFAULT } from "./cublas.ts";
 * CUBLAS_GEMM_DEFAULT; // -1
 * ```
 */
export const CUBLAS_GEMM_DEFAULT = -1;
/**
 * `cublasMath_t` values used.
 *
 * @example
 * ```ts
 * import { CUBLAS_MATH } from "./cublas.ts";
 * CUBLAS_MATH.TF32_TENSOR_OP; // 3
 * ```
 */
export const CUBLAS_MATH = { DEFAULT: 0, TF32_TENSOR_OP: 3 } as const;

const STATUS: Record<number, string> = {
  0: "CUBLAS_STATUS_SUCCESS",
  1: "CUBLAS_STATUS_NOT_INITIALIZED",
  3: "CUBLAS_STATUS_ALLOC_FAILED",
  7: "CUBLAS_STATUS_INVALID_VALUE",
  8: "CUBLAS_STATUS_ARCH_MISMATCH",
  11: "CUBLAS_STATUS_MAPPING_ERROR",
  13: "CUBLAS_STATUS_EXECUTION_FAILED",
  14: "CUBLAS_STATUS_INTERNAL_ERROR",
  15: "CUBLAS_STATUS_NOT_SUPPORTED",
  16: "CUBLAS_STATUS_LICENSE_ERROR",
};

/**
 * The loaded cuBLAS library.
 *
 * @example
 * ```ts
 * import { loadCublas } from "./cublas.ts";
 * // const blas = loadCublas(); const h = blas.create(stream);
 * ```
 */
export class Cublas {
  /** Raw symbols. */
  readonly sym: CublasSymbols;
  /** Where the library was loaded from. */
  readonly path: string;

  /** Wraps an opened library. */
  constructor(sym: CublasSymbols, path: string) {
    this.sym = sym;
    this.path = path;
  }

  /** Throws a CudaError for a non-zero status of `call`. */
  check(call: string, status: number): void {
    if (status === 0) return;
    const name = STATUS[status] ?? `CUBLAS_STATUS_${status}`;
    const desc = this.sym.cublasGetStatusString ? cString(this.sym.cublasGetStatusString(status)) : "";
    throw new CudaError(call, status, name, desc);
  }

  /** A new handle bound to `stream`. */
  create(stream: Deno.PointerValue): Deno.PointerValue {
    const out = new BigUint64Array(1);
    this.check("cublasCreate_v2", this.sym.cublasCreate_v2(out));
    const h = Deno.UnsafePointer.create(out[0]);
    this.check("cublasSetStream_v2", this.sym.cublasSetStream_v2(h, stream));
    return h;
  }

  /** The library version (e.g. 130000). */
  version(handle: Deno.PointerValue): number {
    const v = new Int32Array(1);
    this.check("cublasGetVersion_v2", this.sym.cublasGetVersion_v2(handle, v));
    return v[0];
  }
}

let cublas: Cublas | undefined;

/**
 * Loads cuBLAS once per process (throws a DeviceError listing the paths tried when missing).
 *
 * @example
 * ```ts
 * import { loadCublas } from "./cublas.ts";
 * // loadCublas().path;
 * ```
 */
export function loadCublas(): Cublas {
  if (!cublas) {
    const { lib, path } = openLibrary("cublas", CUBLAS_SYMBOLS);
    cublas = new Cublas(lib.symbols, path);
  }
  return cublas;
}

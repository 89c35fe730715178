/**
 * Bindings to cuSOLVER's dense API (`libcusolver.so.12`/`.11`): handle management and the batched
 * Cholesky routines (`potrfBatched`, `potrsBatched`). The backend's own batched kernels
 * (`linalg.ts`) do not need them; they are here as a reference to compare against (benchmarks,
 * tests). Matrices are column-major and passed as device arrays of device pointers.
 *
 * @module
 */

import { CudaError } from "./errors.ts";
import { openLibrary } from "./libraries.ts";

const POTRF_BATCHED = [
  "pointer", // handle
  "i32", // uplo
  "i32", // n
  "u64", // Aarray (device array of device pointers)
  "i32", // lda
  "u64", // infoArray (device, batchSize ints)
  "i32", // batchSize
] as const;

const POTRS_BATCHED = [
  "pointer", // handle
  "i32", // uplo
  "i32", // n
  "i32", // nrhs (must be 1)
  "u64", // Aarray
  "i32", // lda
  "u64", // Barray
  "i32", // ldb
  "u64", // info (device, one int)
  "i32", // batchSize
] as const;

/**
 * Symbol table of the cuSOLVER functions used.
 *
 * @example
 * ```ts
 * import { CUSOLVER_SYMBOLS } from "./cusolver.ts";
 * CUSOLVER_SYMBOLS.cusolverDnSpotrfBatched.parameters.length; // 7
 * ```
 */
export const CUSOLVER_SYMBOLS = {
  cusolverDnCreate: { parameters: ["buffer"], result: "i32" },
  cusolverDnDestroy: { parameters: ["pointer"], result: "i32" },
  cusolverDnSetStream: { parameters: ["pointer", "pointer"], result: "i32" },
  cusolverDnSpotrfBatched: { parameters: POTRF_BATCHED, result: "i32" },
  cusolverDnDpotrfBatched: { parameters: POTRF_BATCHED, result: "i32" },
  cusolverDnSpotrsBatched: { parameters: POTRS_BATCHED, result: "i32" },
  cusolverDnDpotrsBatched: { parameters: POTRS_BATCHED, result: "i32" },
} as const;

/**
 * cuSOLVER's typed symbols.
 *
 * @example
 * ```ts
 * import type { CusolverSymbols } from "./cusolver.ts";
 * // const sym: CusolverSymbols = loadCusolver().sym;
 * ```
 */
export type CusolverSymbols = Deno.DynamicLibrary<typeof CUSOLVER_SYMBOLS>["symbols"];

/**
 * `cublasFillMode_t` (shared by cuBLAS and cuSOLVER), for column-major storage.
 *
 * @example
 * ```ts
 * import { CUBLAS_FILL } from "./cusolver.ts";
 * CUBLAS_FILL.UPPER; // 1: the lower triangle of a row-major matrix
 * ```
 */
export const CUBLAS_FILL = { LOWER: 0, UPPER: 1 } as const;

const STATUS: Record<number, string> = {
  0: "CUSOLVER_STATUS_SUCCESS",
  1: "CUSOLVER_STATUS_NOT_INITIALIZED",
  2: "CUSOLVER_STATUS_ALLOC_FAILED",
  3: "CUSOLVER_STATUS_INVALID_VALUE",
  4: "CUSOLVER_STATUS_ARCH_MISMATCH",
  5: "CUSOLVER_STATUS_MAPPING_ERROR",
  6: "CUSOLVER_STATUS_EXECUTION_FAILED",
  7: "CUSOLVER_STATUS_INTERNAL_ERROR",
  8: "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED",
  9: "CUSOLVER_STATUS_NOT_SUPPORTED",
};

/**
 * The loaded cuSOLVER library.
 *
 * @example
 * ```ts
 * import { loadCusolver } from "./cusolver.ts";
 * // const solver = loadCusolver(); const h = solver.create(cuda.raw.stream);
 * ```
 */
export class Cusolver {
  /** Raw symbols. */
  readonly sym: CusolverSymbols;
  /** Where the library was loaded from. */
  readonly path: string;

  /** Wraps an opened library. */
  constructor(sym: CusolverSymbols, path: string) {
    this.sym = sym;
    this.path = path;
  }

  /** Throws a CudaError for a non-zero status of `call`. */
  check(call: string, status: number): void {
    if (status === 0) return;
    throw new CudaError(call, status, STATUS[status] ?? `CUSOLVER_STATUS_${status}`, "");
  }

  /** A new dense handle bound to `stream`. */
  create(stream: Deno.PointerValue): Deno.PointerValue {
    const out = new BigUint64Array(1);
    this.check("cusolverDnCreate", this.sym.cusolverDnCreate(out));
    const h = Deno.UnsafePointer.create(out[0]);
    this.check("cusolverDnSetStream", this.sym.cusolverDnSetStream(h, stream));
    return h;
  }

  /** Destroys a handle. */
  destroy(handle: Deno.PointerValue): void {
    this.check("cusolverDnDestroy", this.sym.cusolverDnDestroy(handle));
  }
}

let cusolver: Cusolver | undefined;

/**
 * Loads cuSOLVER once per process (throws a DeviceError listing the paths tried when missing).
 *
 * @example
 * ```ts
 * import { loadCusolver } from "./cusolver.ts";
 * // loadCusolver().path;
 * ```
 */
export function loadCusolver(): Cusolver {
  if (!cusolver) {
    const { lib, path } = openLibrary("cusolver", CUSOLVER_SYMBOLS);
    cusolver = new Cusolver(lib.symbols, path);
  }
  return cusolver;
}

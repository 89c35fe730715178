/**
 * Bindings to the CUDA driver API (`libcuda.so.1`). Only what the backend uses; every call's
 * status is checked by {@link Driver.check}, which throws a {@link CudaError} naming the call and
 * the driver's error name and string.
 *
 * @module
 */

import { CudaError } from "./errors.ts";
import { cString, openLibrary } from "./libraries.ts";

/**
 * Symbol table of the driver functions used (checked by `deno check` at every call).
 *
 * @example
 * ```ts
 * import { DRIVER_SYMBOLS } from "./driver.ts";
 * DRIVER_SYMBOLS.cuInit.parameters; // ["u32"]
 * ```
 */
export const DRIVER_SYMBOLS = {
  cuInit: { parameters: ["u32"], result: "i32" },
  cuDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  cuGetErrorString: { parameters: ["i32", "buffer"], result: "i32" },
  cuGetErrorName: { parameters: ["i32", "buffer"], result: "i32" },
  cuDeviceGetCount: { parameters: ["buffer"], result: "i32" },
  cuDeviceGet: { parameters: ["buffer", "i32"], result: "i32" },
  cuDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDeviceTotalMem_v2: { parameters: ["buffer", "i32"], result: "i32" },
  cuDeviceGetAttribute: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDevicePrimaryCtxRetain: { parameters: ["buffer", "i32"], result: "i32" },
  cuDevicePrimaryCtxRelease_v2: { parameters: ["i32"], result: "i32" },
  cuCtxSetCurrent: { parameters: ["pointer"], result: "i32" },
  cuCtxSynchronize: { parameters: [], result: "i32" },
  cuStreamCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuStreamDestroy_v2: { parameters: ["pointer"], result: "i32" },
  cuStreamSynchronize: { parameters: ["pointer"], result: "i32" },
  cuModuleLoadData: { parameters: ["buffer", "buffer"], result: "i32" },
  cuModuleUnload: { parameters: ["pointer"], result: "i32" },
  cuModuleGetFunction: { parameters: ["buffer", "pointer", "buffer"], result: "i32" },
  cuFuncSetAttribute: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  cuLaunchKernel: {
    parameters: ["pointer", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "pointer", "buffer", "pointer"],
    result: "i32",
  },
  cuMemAlloc_v2: { parameters: ["buffer", "usize"], result: "i32" },
  cuMemFree_v2: { parameters: ["u64"], result: "i32" },
  cuMemGetInfo_v2: { parameters: ["buffer", "buffer"], result: "i32" },
  cuMemcpyHtoDAsync_v2: { parameters: ["u64", "buffer", "usize", "pointer"], result: "i32" },
  cuMemcpyDtoHAsync_v2: { parameters: ["buffer", "u64", "usize", "pointer"], result: "i32" },
  cuMemcpyDtoDAsync_v2: { parameters: ["u64", "u64", "usize", "pointer"], result: "i32" },
  cuMemsetD8Async: { parameters: ["u64", "u8", "usize", "pointer"], result: "i32" },
  cuMemsetD16Async: { parameters: ["u64", "u16", "usize", "pointer"], result: "i32" },
  cuMemsetD32Async: { parameters: ["u64", "u32", "usize", "pointer"], result: "i32" },
  cuEventCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuEventDestroy_v2: { parameters: ["pointer"], result: "i32" },
  cuEventRecord: { parameters: ["pointer", "pointer"], result: "i32" },
  cuEventSynchronize: { parameters: ["pointer"], result: "i32" },
  cuEventElapsedTime_v2: { parameters: ["buffer", "pointer", "pointer"], result: "i32", optional: true },
  cuEventElapsedTime: { parameters: ["buffer", "pointer", "pointer"], result: "i32", optional: true },
} as const;

/**
 * The driver's typed symbols.
 *
 * @example
 * ```ts
 * import type { DriverSymbols } from "./driver.ts";
 * // const sym: DriverSymbols = loadDriver().sym;
 * ```
 */
export type DriverSymbols = Deno.DynamicLibrary<typeof DRIVER_SYMBOLS>["symbols"];

/**
 * `CU_DEVICE_ATTRIBUTE_*` values used here.
 *
 * @example
 * ```ts
 * import { CU_DEVICE_ATTRIBUTE } from "./driver.ts";
 * CU_DEVICE_ATTRIBUTE.MULTIPROCESSOR_COUNT; // 16
 * ```
 */
export const CU_DEVICE_ATTRIBUTE = {
  MAX_THREADS_PER_BLOCK: 1,
  MULTIPROCESSOR_COUNT: 16,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
  MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 97,
} as const;

/**
 * `CU_FUNC_ATTRIBUTE_*` values used here.
 *
 * @example
 * ```ts
 * import { CU_FUNC_ATTRIBUTE } from "./driver.ts";
 * CU_FUNC_ATTRIBUTE.MAX_DYNAMIC_SHARED_SIZE_BYTES; // 8
 * ```
 */
export const CU_FUNC_ATTRIBUTE = { MAX_DYNAMIC_SHARED_SIZE_BYTES: 8 } as const;

/**
 * `CUDA_SUCCESS`.
 *
 * @example
 * ```ts
 * import { CUDA_SUCCESS } from "./driver.ts";
 * CUDA_SUCCESS; // 0
 * ```
 */
export const CUDA_SUCCESS = 0;
/**
 * `CUDA_ERROR_OUT_OF_MEMORY`.
 *
 * @example
 * ```ts
 * import { CUDA_ERROR_OUT_OF_MEMORY } from "./driver.ts";
 * CUDA_ERROR_OUT_OF_MEMORY; // 2
 * ```
 */
export const CUDA_ERROR_OUT_OF_MEMORY = 2;
/**
 * `CU_STREAM_NON_BLOCKING`.
 *
 * @example
 * ```ts
 * import { CU_STREAM_NON_BLOCKING } from "./driver.ts";
 * CU_STREAM_NON_BLOCKING; // 1
 * ```
 */
export const CU_STREAM_NON_BLOCKING = 1;

/**
 * The loaded driver library with error checking.
 *
 * @example
 * ```ts
 * import { loadDriver } from "./driver.ts";
 * // const drv = loadDriver(); drv.check("cuInit", drv.sym.cuInit(0));
 * ```
 */
export class Driver {
  /** Raw symbols. */
  readonly sym: DriverSymbols;
  /** Where the library was loaded from. */
  readonly path: string;
  #out = new BigUint64Array(1);

  /** Wraps an opened library. */
  constructor(sym: DriverSymbols, path: string) {
    this.sym = sym;
    this.path = path;
  }

  /** Throws a CudaError for a non-zero status of `call`. */
  check(call: string, status: number): void {
    if (status !== CUDA_SUCCESS) throw this.error(call, status);
  }

  /** The CudaError describing `status` returned by `call`. */
  error(call: string, status: number): CudaError {
    return new CudaError(call, status, this.errorName(status), this.errorString(status));
  }

  /** `cuGetErrorName` of a status. */
  errorName(status: number): string {
    const r = this.sym.cuGetErrorName(status, this.#out);
    return r === 0 ? cString(Deno.UnsafePointer.create(this.#out[0])) : `CUDA error ${status}`;
  }

  /** `cuGetErrorString` of a status. */
  errorString(status: number): string {
    const r = this.sym.cuGetErrorString(status, this.#out);
    return r === 0 ? cString(Deno.UnsafePointer.create(this.#out[0])) : "unknown error";
  }
}

let driver: Driver | undefined;
let initStatus: number | undefined;

/**
 * Loads `libcuda` once per process and calls `cuInit(0)`; throws a DeviceError listing the paths
 * tried when it is missing, or a CudaError when `cuInit` fails (e.g. no device).
 *
 * @example
 * ```ts
 * import { loadDriver } from "./driver.ts";
 * // const drv = loadDriver();
 * ```
 */
export function loadDriver(): Driver {
  if (!driver) {
    const { lib, path } = openLibrary("cuda", DRIVER_SYMBOLS);
    driver = new Driver(lib.symbols, path);
  }
  if (initStatus === undefined || initStatus !== CUDA_SUCCESS) {
    initStatus = driver.sym.cuInit(0);
    driver.check("cuInit", initStatus);
  }
  return driver;
}

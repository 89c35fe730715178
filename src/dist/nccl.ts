/**
 * Bindings to NCCL (`libnccl.so.2`) through Deno FFI: the calls a process group needs, with every
 * status checked ({@link Nccl.check} throws an `NcclError` naming the call, NCCL's text and its
 * last error message). The library is found as the CUDA libraries are (`PATCHWORK_NCCL`, a file
 * or a directory; `PATCHWORK_CUDA_LIB_DIR`; the loader's path; the CUDA directories). NCCL 2.14 or
 * later is needed (non-blocking communicators, which can be aborted while they wait).
 *
 * The C signatures bound (nccl.h): `ncclUniqueId` is a struct of 128 bytes passed by value;
 * `ncclComm_t` and `cudaStream_t` are pointers; counts are `size_t`; data types and reductions are
 * enums (`int`).
 *
 * @module
 */

import type { DType } from "../tensor/mod.ts";
import { cString, openLibrary } from "../backend/cuda/libraries.ts";
import { NcclError } from "./errors.ts";
import type { ReduceOp } from "./ring.ts";

const UNIQUE_ID = { struct: Array.from({ length: 128 }, () => "u8" as const) } as const;

/**
 * The NCCL functions used (checked by `deno check` at every call).
 *
 * @example
 * ```ts
 * import { NCCL_SYMBOLS } from "./nccl.ts";
 * NCCL_SYMBOLS.ncclAllReduce.parameters.length; // 7
 * ```
 */
export const NCCL_SYMBOLS = {
  ncclGetVersion: { parameters: ["buffer"], result: "i32" },
  ncclGetUniqueId: { parameters: ["buffer"], result: "i32" },
  // ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank, ncclConfig_t* config)
  ncclCommInitRankConfig: { parameters: ["buffer", "i32", UNIQUE_ID, "i32", "buffer"], result: "i32", optional: true },
  ncclCommGetAsyncError: { parameters: ["pointer", "buffer"], result: "i32" },
  ncclCommAbort: { parameters: ["pointer"], result: "i32" },
  ncclCommFinalize: { parameters: ["pointer"], result: "i32", optional: true },
  ncclCommDestroy: { parameters: ["pointer"], result: "i32" },
  ncclGetErrorString: { parameters: ["i32"], result: "pointer" },
  ncclGetLastError: { parameters: ["pointer"], result: "pointer", optional: true },
  // (sendbuff, recvbuff, count, datatype, op, comm, stream)
  ncclAllReduce: { parameters: ["u64", "u64", "usize", "i32", "i32", "pointer", "pointer"], result: "i32" },
  // (sendbuff, recvbuff, count, datatype, root, comm, stream)
  ncclBroadcast: { parameters: ["u64", "u64", "usize", "i32", "i32", "pointer", "pointer"], result: "i32" },
  // (sendbuff, recvbuff, sendcount, datatype, comm, stream)
  ncclAllGather: { parameters: ["u64", "u64", "usize", "i32", "pointer", "pointer"], result: "i32" },
  // (sendbuff, recvbuff, recvcount, datatype, op, comm, stream)
  ncclReduceScatter: { parameters: ["u64", "u64", "usize", "i32", "i32", "pointer", "pointer"], result: "i32" },
} as const;

/**
 * `ncclResult_t` values used here.
 *
 * @example
 * ```ts
 * import { NCCL_RESULT } from "./nccl.ts";
 * NCCL_RESULT.inProgress; // 7
 * ```
 */
export const NCCL_RESULT = { success: 0, remoteError: 6, inProgress: 7 } as const;

/**
 * `ncclDataType_t` of each tensor dtype.
 *
 * @example
 * ```ts
 * import { NCCL_DTYPE } from "./nccl.ts";
 * NCCL_DTYPE.float64; // 8
 * ```
 */
export const NCCL_DTYPE: Readonly<Record<DType, number>> = { int32: 2, float32: 7, float64: 8, bfloat16: 9 };

/**
 * `ncclRedOp_t` of each reduction (`avg` needs NCCL 2.10).
 *
 * @example
 * ```ts
 * import { NCCL_OP } from "./nccl.ts";
 * NCCL_OP.avg; // 4
 * ```
 */
export const NCCL_OP: Readonly<Record<ReduceOp, number>> = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 };

/** NCCL_VERSION(2, 14, 0): the first with `ncclConfig_t` and non-blocking communicators. */
const CONFIG_VERSION = 21400;
const CONFIG_MAGIC = 0xcafebeef;
const INT_MIN = -2147483648;

/**
 * A non-blocking communicator configuration: the leading fields of `ncclConfig_t` as NCCL 2.14
 * defined them (size, magic, version, blocking = 0, cgaClusterSize, minCTAs, maxCTAs left
 * undefined). NCCL reads `size` bytes and gives later fields their defaults, so newer versions
 * accept it.
 *
 * @example
 * ```ts
 * import { nonBlockingConfig } from "./nccl.ts";
 * nonBlockingConfig().length; // 32
 * ```
 */
export function nonBlockingConfig(): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(32);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(0, 32n, true); // size
  dv.setUint32(8, CONFIG_MAGIC, true);
  dv.setUint32(12, CONFIG_VERSION, true);
  dv.setInt32(16, 0, true); // blocking
  for (const at of [20, 24, 28]) dv.setInt32(at, INT_MIN, true); // cgaClusterSize, minCTAs, maxCTAs
  return bytes;
}

/**
 * The version code as NCCL encodes it: `major·10000 + minor·100 + patch` (from 2.9 on).
 *
 * @example
 * ```ts
 * import { versionString } from "./nccl.ts";
 * versionString(22105); // "2.21.5"
 * ```
 */
export function versionString(code: number): string {
  if (code < 10000) return `${Math.floor(code / 1000)}.${Math.floor((code % 1000) / 100)}.${code % 100}`;
  return `${Math.floor(code / 10000)}.${Math.floor((code % 10000) / 100)}.${code % 100}`;
}

/**
 * The loaded NCCL library with error checking.
 *
 * @example
 * ```ts
 * import { loadNccl } from "./nccl.ts";
 * // const nccl = loadNccl(); nccl.version; // "2.21.5"
 * ```
 */
export class Nccl {
  /** Raw symbols. */
  readonly sym: Deno.DynamicLibrary<typeof NCCL_SYMBOLS>["symbols"];
  /** Where the library was loaded from. */
  readonly path: string;
  /** Its version, e.g. "2.21.5". */
  readonly version: string;

  /** Wraps an opened library; refuses NCCL older than 2.14. */
  constructor(sym: Deno.DynamicLibrary<typeof NCCL_SYMBOLS>["symbols"], path: string) {
    this.sym = sym;
    this.path = path;
    const v = new Int32Array(1);
    this.check("ncclGetVersion", sym.ncclGetVersion(v));
    this.version = versionString(v[0]);
    if (v[0] < CONFIG_VERSION || !sym.ncclCommInitRankConfig) {
      throw new NcclError(
        "initProcessGroup",
        -1,
        `NCCL ${this.version} at ${path} is too old: patchwork needs 2.14 or later (non-blocking communicators); ` +
          "point PATCHWORK_NCCL at a newer libnccl.so.2",
      );
    }
  }

  /** Throws an `NcclError` for a status other than success (and in-progress, when `pending` is allowed). */
  check(call: string, status: number, comm: Deno.PointerValue = null, pending = false): void {
    if (status === NCCL_RESULT.success || (pending && status === NCCL_RESULT.inProgress)) return;
    throw this.error(call, status, comm);
  }

  /** The `NcclError` of `status`, with NCCL's last error message when it has one. */
  error(call: string, status: number, comm: Deno.PointerValue = null): NcclError {
    const text = cString(this.sym.ncclGetErrorString(status));
    const last = this.sym.ncclGetLastError ? cString(this.sym.ncclGetLastError(comm)) : "";
    return new NcclError(call, status, last ? `${text} (${last})` : text);
  }
}

let loaded: Nccl | undefined;

/**
 * Loads NCCL once per process; a missing library is a `DeviceError` listing every path tried.
 *
 * @example
 * ```ts
 * import { loadNccl } from "./nccl.ts";
 * // const { version, path } = loadNccl();
 * ```
 */
export function loadNccl(): Nccl {
  if (!loaded) {
    const { lib, path } = openLibrary("nccl", NCCL_SYMBOLS);
    loaded = new Nccl(lib.symbols, path);
  }
  return loaded;
}

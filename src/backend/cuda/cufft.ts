/**
 * Bindings to cuFFT (`libcufft.so.12`/`.11`) and a small plan cache keyed by (type, n, batch).
 *
 * @module
 */

import { CudaError } from "./errors.ts";
import { openLibrary } from "./libraries.ts";

/**
 * Symbol table of the cuFFT functions used.
 *
 * @example
 * ```ts
 * import { CUFFT_SYMBOLS } from "./cufft.ts";
 * CUFFT_SYMBOLS.cufftPlanMany.parameters.length; // 11
 * ```
 */
export const CUFFT_SYMBOLS = {
  cufftGetVersion: { parameters: ["buffer"], result: "i32" },
  cufftPlanMany: {
    parameters: ["buffer", "i32", "buffer", "buffer", "i32", "i32", "buffer", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  cufftSetStream: { parameters: ["i32", "pointer"], result: "i32" },
  cufftDestroy: { parameters: ["i32"], result: "i32" },
  cufftExecC2C: { parameters: ["i32", "u64", "u64", "i32"], result: "i32" },
  cufftExecZ2Z: { parameters: ["i32", "u64", "u64", "i32"], result: "i32" },
  cufftExecR2C: { parameters: ["i32", "u64", "u64"], result: "i32" },
  cufftExecD2Z: { parameters: ["i32", "u64", "u64"], result: "i32" },
  cufftExecC2R: { parameters: ["i32", "u64", "u64"], result: "i32" },
  cufftExecZ2D: { parameters: ["i32", "u64", "u64"], result: "i32" },
} as const;

/**
 * cuFFT's typed symbols.
 *
 * @example
 * ```ts
 * import type { CufftSymbols } from "./cufft.ts";
 * // const sym: CufftSymbols = loadCufft().sym;
 * ```
 */
export type CufftSymbols = Deno.DynamicLibrary<typeof CUFFT_SYMBOLS>["symbols"];

/**
 * `cufftType` values.
 *
 * @example
 * ```ts
 * import { CUFFT_TYPE } from "./cufft.ts";
 * CUFFT_TYPE.R2C; // 0x2a
 * ```
 */
export const CUFFT_TYPE = { R2C: 0x2a, C2R: 0x2c, C2C: 0x29, D2Z: 0x6a, Z2D: 0x6c, Z2Z: 0x69 } as const;
/**
 * One of the `cufftType` values.
 *
 * @example
 * ```ts
 * import { CUFFT_TYPE, type CufftType } from "./cufft.ts";
 * const t: CufftType = CUFFT_TYPE.Z2Z;
 * ```
 */
export type CufftType = typeof CUFFT_TYPE[keyof typeof CUFFT_TYPE];
/**
 * `CUFFT_FORWARD` / `CUFFT_INVERSE`.
 *
 * @example
 * ```ts
 * import { CUFFT_DIRECTION } from "./cufft.ts";
 * CUFFT_DIRECTION.INVERSE; // 1
 * ```
 */
export const CUFFT_DIRECTION = { FORWARD: -1, INVERSE: 1 } as const;

const STATUS = [
  "CUFFT_SUCCESS",
  "CUFFT_INVALID_PLAN",
  "CUFFT_ALLOC_FAILED",
  "CUFFT_INVALID_TYPE",
  "CUFFT_INVALID_VALUE",
  "CUFFT_INTERNAL_ERROR",
  "CUFFT_EXEC_FAILED",
  "CUFFT_SETUP_FAILED",
  "CUFFT_INVALID_SIZE",
  "CUFFT_UNALIGNED_DATA",
  "CUFFT_INCOMPLETE_PARAMETER_LIST",
  "CUFFT_INVALID_DEVICE",
  "CUFFT_PARSE_ERROR",
  "CUFFT_NO_WORKSPACE",
  "CUFFT_NOT_IMPLEMENTED",
  "CUFFT_LICENSE_ERROR",
  "CUFFT_NOT_SUPPORTED",
];

/**
 * The loaded cuFFT library.
 *
 * @example
 * ```ts
 * import { loadCufft } from "./cufft.ts";
 * // const fft = loadCufft();
 * ```
 */
export class Cufft {
  /** Raw symbols. */
  readonly sym: CufftSymbols;
  /** Where the library was loaded from. */
  readonly path: string;

  /** Wraps an opened library. */
  constructor(sym: CufftSymbols, path: string) {
    this.sym = sym;
    this.path = path;
  }

  /** Throws a CudaError for a non-zero status of `call`. */
  check(call: string, status: number): void {
    if (status === 0) return;
    const name = STATUS[status] ?? `CUFFT_STATUS_${status}`;
    throw new CudaError(call, status, name, "");
  }
}

let cufft: Cufft | undefined;

/**
 * Loads cuFFT once per process (throws a DeviceError listing the paths tried when missing).
 *
 * @example
 * ```ts
 * import { loadCufft } from "./cufft.ts";
 * // loadCufft().path;
 * ```
 */
export function loadCufft(): Cufft {
  if (!cufft) {
    const { lib, path } = openLibrary("cufft", CUFFT_SYMBOLS);
    cufft = new Cufft(lib.symbols, path);
  }
  return cufft;
}

/**
 * Batched 1-D plans on one stream, cached by (type, n, batch); the least recently used plan is
 * destroyed past `capacity`.
 *
 * @example
 * ```ts
 * import { FftPlanCache, CUFFT_TYPE } from "./cufft.ts";
 * // const plans = new FftPlanCache(loadCufft(), stream); plans.get(CUFFT_TYPE.C2C, 1024, 8);
 * ```
 */
export class FftPlanCache {
  readonly #fft: Cufft;
  readonly #stream: Deno.PointerValue;
  readonly #plans = new Map<string, number>();
  readonly #capacity: number;

  /** Plans run on `stream`. */
  constructor(fft: Cufft, stream: Deno.PointerValue, capacity = 32) {
    this.#fft = fft;
    this.#stream = stream;
    this.#capacity = capacity;
  }

  /** Number of cached plans. */
  get size(): number {
    return this.#plans.size;
  }

  /** The plan for `batch` contiguous transforms of length `n` of `type` (default layouts). */
  get(type: CufftType, n: number, batch: number): number {
    const key = `${type}:${n}:${batch}`;
    const hit = this.#plans.get(key);
    if (hit !== undefined) {
      this.#plans.delete(key);
      this.#plans.set(key, hit);
      return hit;
    }
    const out = new Int32Array(1);
    const dims = new Int32Array([n]);
    this.#fft.check(
      "cufftPlanMany",
      this.#fft.sym.cufftPlanMany(out, 1, dims, null, 1, 0, null, 1, 0, type, batch),
    );
    const plan = out[0];
    this.#fft.check("cufftSetStream", this.#fft.sym.cufftSetStream(plan, this.#stream));
    this.#plans.set(key, plan);
    while (this.#plans.size > this.#capacity) {
      const [oldKey, old] = this.#plans.entries().next().value as [string, number];
      this.#plans.delete(oldKey);
      this.#fft.sym.cufftDestroy(old);
    }
    return plan;
  }

  /** Destroys every plan. */
  clear(): void {
    for (const plan of this.#plans.values()) this.#fft.sym.cufftDestroy(plan);
    this.#plans.clear();
  }
}

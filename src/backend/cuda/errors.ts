/**
 * Errors raised by the CUDA backend: a failed CUDA call and an exhausted device memory.
 *
 * @module
 */

import { PatchworkError } from "../../tensor/errors.ts";

/**
 * A CUDA library call returned an error code. The message names the call, the code and the
 * library's own description of it, e.g.
 * `cuMemAlloc_v2: CUDA_ERROR_INVALID_VALUE (1): invalid argument`.
 *
 * @example
 * ```ts
 * import { CudaError } from "./errors.ts";
 * const e = new CudaError("cuInit", 100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected");
 * e.message; // "cuInit: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected"
 * ```
 */
export class CudaError extends PatchworkError {
  /** The numeric status the call returned. */
  readonly code: number;
  /** The status's symbolic name (e.g. `CUDA_ERROR_OUT_OF_MEMORY`, `CUBLAS_STATUS_NOT_SUPPORTED`). */
  readonly status: string;
  /** Builds `call: NAME (code): description`. */
  constructor(call: string, code: number, status: string, description: string) {
    super(call, `${status} (${code})${description && description !== status ? `: ${description}` : ""}`);
    this.code = code;
    this.status = status;
  }
}

/**
 * The device has no room for an allocation, even after the allocator released its cache.
 *
 * @example
 * ```ts
 * import { OutOfMemoryError } from "./errors.ts";
 * const e = new OutOfMemoryError("alloc", 1 << 30, 2 << 30, 0);
 * e.requested; // 1073741824
 * ```
 */
export class OutOfMemoryError extends PatchworkError {
  /** Bytes asked for. */
  readonly requested: number;
  /** Bytes held by live buffers when the request failed. */
  readonly inUse: number;
  /** Bytes that were cached (and released before the last try). */
  readonly cached: number;
  /** Builds the message from the three byte counts. */
  constructor(op: string, requested: number, inUse: number, cached: number, free?: number) {
    super(
      op,
      `out of device memory: asked for ${formatBytes(requested)} with ${formatBytes(inUse)} in live buffers and ` +
        `${formatBytes(cached)} cached (the cache was released and the allocation retried)` +
        (free !== undefined ? `; the device reports ${formatBytes(free)} free` : ""),
    );
    this.requested = requested;
    this.inUse = inUse;
    this.cached = cached;
  }
}

/**
 * Formats a byte count for messages (`1.50 GiB`).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./errors.ts";
 * formatBytes(1536); // "1.50 KiB"
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(2)} ${units[u]}`;
}

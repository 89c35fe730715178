/**
 * A caching device allocator on `cuMemAlloc`. Freed blocks go into size-class bins and are handed
 * out again to later requests of the same class; with a single stream a freed block may be reused
 * at once, since every later use is queued behind the work that read it.
 *
 * Size classes: requests up to 1 MiB round up to a power of two (at least 512 bytes); larger ones
 * round up to a multiple of 2 MiB. On `CUDA_ERROR_OUT_OF_MEMORY` the cache is released (after the
 * stream drains) and the allocation retried once; then an {@link OutOfMemoryError} says how much
 * was asked, in use and cached.
 *
 * @module
 */

import { CUDA_ERROR_OUT_OF_MEMORY, type Driver } from "./driver.ts";
import { OutOfMemoryError } from "./errors.ts";

/**
 * Allocator counters, in bytes.
 *
 * @example
 * ```ts
 * import type { AllocatorStats } from "./allocator.ts";
 * const s: AllocatorStats = { current: 0, peak: 0, cached: 0, reserved: 0, hits: 0, misses: 0 };
 * ```
 */
export interface AllocatorStats {
  /** Bytes requested by live allocations. */
  current: number;
  /** Highest `current` since the last reset. */
  peak: number;
  /** Bytes held in cached (free) blocks. */
  cached: number;
  /** Bytes of device memory held by the allocator (live blocks, rounded, plus cached). */
  reserved: number;
  /** Allocations served from the cache. */
  hits: number;
  /** Allocations that called cuMemAlloc. */
  misses: number;
}

const SMALL = 1 << 20;
const LARGE_STEP = 2 << 20;

/**
 * The size class (block size) of a request of `bytes`.
 *
 * @example
 * ```ts
 * import { sizeClass } from "./allocator.ts";
 * sizeClass(1000); // 1024
 * ```
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 512) return 512;
  if (bytes <= SMALL) return 2 ** (32 - Math.clz32(bytes - 1));
  return Math.ceil(bytes / LARGE_STEP) * LARGE_STEP;
}

/**
 * The caching allocator of one backend.
 *
 * @example
 * ```ts
 * import { CachingAllocator } from "./allocator.ts";
 * // const a = new CachingAllocator(driver, stream); const p = a.alloc(4096); a.free(p, 4096);
 * ```
 */
export class CachingAllocator {
  readonly #drv: Driver;
  readonly #sync: () => void;
  readonly #bins = new Map<number, number[]>();
  readonly #out = new BigUint64Array(1);
  #current = 0;
  #peak = 0;
  #cached = 0;
  #reserved = 0;
  #hits = 0;
  #misses = 0;

  /** `sync` waits for the stream (called before cached blocks are returned to the driver). */
  constructor(driver: Driver, sync: () => void) {
    this.#drv = driver;
    this.#sync = sync;
  }

  /** A device pointer to at least `bytes` bytes (0 for a zero-byte request). */
  alloc(bytes: number): number {
    if (bytes <= 0) return 0;
    const cls = sizeClass(bytes);
    const bin = this.#bins.get(cls);
    let ptr: number;
    if (bin !== undefined && bin.length > 0) {
      ptr = bin.pop()!;
      this.#cached -= cls;
      this.#hits++;
    } else {
      ptr = this.#malloc(cls, bytes);
      this.#reserved += cls;
      this.#misses++;
    }
    this.#current += bytes;
    if (this.#current > this.#peak) this.#peak = this.#current;
    return ptr;
  }

  /** Returns a block obtained for `bytes` to the cache. */
  free(ptr: number, bytes: number): void {
    if (bytes <= 0 || ptr === 0) return;
    const cls = sizeClass(bytes);
    let bin = this.#bins.get(cls);
    if (bin === undefined) {
      bin = [];
      this.#bins.set(cls, bin);
    }
    bin.push(ptr);
    this.#cached += cls;
    this.#current -= bytes;
  }

  /** Frees every cached block (waits for the stream first). Returns the bytes released. */
  releaseCached(): number {
    if (this.#cached === 0) return 0;
    this.#sync();
    let released = 0;
    for (const [cls, bin] of this.#bins) {
      for (const p of bin) {
        this.#drv.check("cuMemFree_v2", this.#drv.sym.cuMemFree_v2(BigInt(p)));
        released += cls;
      }
      bin.length = 0;
    }
    this.#bins.clear();
    this.#cached = 0;
    this.#reserved -= released;
    return released;
  }

  /** Counters. */
  stats(): AllocatorStats {
    return {
      current: this.#current,
      peak: this.#peak,
      cached: this.#cached,
      reserved: this.#reserved,
      hits: this.#hits,
      misses: this.#misses,
    };
  }

  /** Sets `peak` to `current`. */
  resetPeak(): void {
    this.#peak = this.#current;
  }

  #malloc(cls: number, bytes: number): number {
    let status = this.#drv.sym.cuMemAlloc_v2(this.#out, BigInt(cls));
    if (status === CUDA_ERROR_OUT_OF_MEMORY) {
      const cached = this.#cached;
      this.releaseCached();
      status = this.#drv.sym.cuMemAlloc_v2(this.#out, BigInt(cls));
      if (status === CUDA_ERROR_OUT_OF_MEMORY) {
        let free: number | undefined;
        const f = new BigUint64Array(1), t = new BigUint64Array(1);
        if (this.#drv.sym.cuMemGetInfo_v2(f, t) === 0) free = Number(f[0]);
        throw new OutOfMemoryError("cuda alloc", bytes, this.#current, cached, free);
      }
    }
    this.#drv.check("cuMemAlloc_v2", status);
    return Number(this.#out[0]);
  }
}

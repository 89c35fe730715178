/**
 * Kernel parameter packing for `cuLaunchKernel`. One fixed arena holds up to 16 parameters in
 * 256-byte slots; the array of slot addresses (`kernelParams`) is built once, so a launch only
 * writes the values. Layouts of the structs match kernels/common.cuh and kernels/reduce.cu (and
 * kernels/stencil.cu, packed by ./stencil.ts).
 *
 * @module
 */

import { DeviceError } from "../../tensor/errors.ts";

const SLOT = 256;
const SLOTS = 16;
const TWO32 = 4294967296;

/**
 * The reusable parameter block of one backend.
 *
 * @example
 * ```ts
 * import { KernelParams } from "./params.ts";
 * const p = new KernelParams();
 * p.ptr(0, 0x7f0000000000); p.u64(1, 1024); p.f64(2, 0.5);
 * ```
 */
export class KernelParams {
  /** Backing memory (stable address for the life of this object). */
  readonly arena: ArrayBuffer = new ArrayBuffer(SLOT * SLOTS);
  /** `void* kernelParams[]`: the address of each slot. */
  readonly pointers: BigUint64Array<ArrayBuffer> = new BigUint64Array(SLOTS);
  readonly #u32 = new Uint32Array(this.arena);
  readonly #i32 = new Int32Array(this.arena);
  readonly #f32 = new Float32Array(this.arena);
  readonly #f64 = new Float64Array(this.arena);

  /** Fills the slot address table. */
  constructor() {
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.arena));
    for (let i = 0; i < SLOTS; i++) this.pointers[i] = base + BigInt(i * SLOT);
  }

  /** A device pointer (an integer below 2^53). */
  ptr(slot: number, p: number): void {
    const w = slot * (SLOT / 4);
    this.#u32[w] = p >>> 0;
    this.#u32[w + 1] = Math.floor(p / TWO32) >>> 0;
  }

  /** A 64-bit value given as its low and high 32-bit words. */
  words(slot: number, lo: number, hi: number): void {
    const w = slot * (SLOT / 4);
    this.#u32[w] = lo >>> 0;
    this.#u32[w + 1] = hi >>> 0;
  }

  /** An unsigned 64-bit integer (below 2^53). */
  u64(slot: number, v: number): void {
    this.ptr(slot, v);
  }

  /** A signed 64-bit integer (|v| below 2^53). */
  i64(slot: number, v: number): void {
    const w = slot * (SLOT / 4);
    this.#u32[w] = v >>> 0;
    this.#u32[w + 1] = Math.floor(v / TWO32) >>> 0;
  }

  /** An unsigned 32-bit integer. */
  u32(slot: number, v: number): void {
    this.#u32[slot * (SLOT / 4)] = v >>> 0;
  }

  /** A signed 32-bit integer. */
  i32(slot: number, v: number): void {
    this.#i32[slot * (SLOT / 4)] = v | 0;
  }

  /** Consecutive unsigned 32-bit integers (a struct of u32 fields, at most 64). */
  u32s(slot: number, values: readonly number[]): void {
    const w = slot * (SLOT / 4);
    for (let i = 0; i < values.length; i++) this.#u32[w + i] = values[i] >>> 0;
  }

  /** A float. */
  f32(slot: number, v: number): void {
    this.#f32[slot * (SLOT / 4)] = v;
  }

  /** A double. */
  f64(slot: number, v: number): void {
    this.#f64[slot * (SLOT / 8)] = v;
  }

  /**
   * Consecutive doubles from the start of `slot` (an array parameter such as `struct { double
   * c[256]; }`). It may run on into the following slots, which the kernel must then not use.
   */
  f64s(slot: number, values: readonly number[]): void {
    const w = slot * (SLOT / 8);
    if (w + values.length > this.#f64.length) {
      throw new DeviceError(
        "cuda",
        `${values.length} doubles from slot ${slot} overrun the ${SLOT * SLOTS}-byte block`,
      );
    }
    for (let i = 0; i < values.length; i++) this.#f64[w + i] = values[i];
  }

  /** `struct Shape8 { u32 ndim; u32 size[8]; }`. */
  shape8(slot: number, shape: readonly number[]): void {
    const w = slot * (SLOT / 4);
    this.#u32[w] = shape.length;
    for (let d = 0; d < 8; d++) this.#u32[w + 1 + d] = d < shape.length ? shape[d] : 1;
  }

  /** `struct Strides8 { i64 s[8]; }`. */
  strides8(slot: number, strides: readonly number[]): void {
    const w = slot * (SLOT / 4);
    for (let d = 0; d < 8; d++) {
      const v = d < strides.length ? strides[d] : 0;
      this.#u32[w + 2 * d] = v >>> 0;
      this.#u32[w + 2 * d + 1] = Math.floor(v / TWO32) >>> 0;
    }
  }

  /**
   * `struct RDims { u32 kn; u32 ksize[8]; i64 kstride[8]; u32 rn; u32 rsize[8]; i64 rstride[8]; }`
   * (byte offsets 0, 4, 40, 104, 108, 144; 208 bytes).
   */
  rdims(
    slot: number,
    kshape: readonly number[],
    kstrides: readonly number[],
    rshape: readonly number[],
    rstrides: readonly number[],
  ): void {
    const w = slot * (SLOT / 4);
    const put = (word: number, shape: readonly number[], strides: readonly number[]) => {
      this.#u32[word] = shape.length;
      for (let d = 0; d < 8; d++) this.#u32[word + 1 + d] = d < shape.length ? shape[d] : 1;
      for (let d = 0; d < 8; d++) {
        const v = d < strides.length ? strides[d] : 0;
        this.#u32[word + 10 + 2 * d] = v >>> 0;
        this.#u32[word + 10 + 2 * d + 1] = Math.floor(v / TWO32) >>> 0;
      }
    };
    put(w, kshape, kstrides);
    put(w + 26, rshape, rstrides);
  }
}

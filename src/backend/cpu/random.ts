/**
 * Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy
 * as 1, 2, 3", SC11; Random123's `philox4x32_R(10, ...)`), bit-exact across backends.
 *
 * The stream for a seed is defined element by element. Key `(k0, k1) = (seed mod 2^32,
 * floor(seed / 2^32) mod 2^32)`; element i uses the counter `c = offset + i` as words
 * `(c mod 2^32, floor(c / 2^32), 0, 0)` and yields output words `x0..x3`:
 *
 * - uniform: `u = (x0 + 0.5) · 2^-32` in float64, then stored in the dtype;
 * - normal: `u1 = (x0 + 0.5) · 2^-32`, `u2 = (x1 + 0.5) · 2^-32`,
 *   `z = sqrt(-2 ln u1) · cos(2π u2)` in float64, then stored in the dtype.
 *
 * All arithmetic is exact 32-bit integer arithmetic in JavaScript numbers (no BigInt).
 *
 * @module
 */

import { ArgumentError } from "../../tensor/errors.ts";
import type { NumArray } from "./buffer.ts";

const M0 = 0xd2511f53 | 0;
const M1 = 0xcd9e8d57 | 0;
const W0 = 0x9e3779b9 | 0;
const W1 = 0xbb67ae85 | 0;
const M0L = M0 & 0xffff;
const M0H = M0 >>> 16;
const M1L = M1 & 0xffff;
const M1H = M1 >>> 16;
const TWO32 = 4294967296;
const INV_TWO32 = 1 / TWO32;
const TWO_PI = 2 * Math.PI;

/**
 * High 32 bits of the 64-bit product of `a` (given as 16-bit halves `al`, `ah`) and `b` (any
 * int32 bits), as int32. Schoolbook multiplication on 16-bit halves; every partial product is
 * below 2^32, so `Math.imul` yields its exact bits and everything stays in int32 arithmetic.
 */
function mulhi(al: number, ah: number, b: number): number {
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lh = Math.imul(al, bh);
  const hl = Math.imul(ah, bl);
  const mid = (Math.imul(al, bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (((Math.imul(ah, bh) + (lh >>> 16)) | 0) + (((hl >>> 16) + (mid >>> 16)) | 0)) | 0;
}

/**
 * One Philox4x32-10 block: counter `(c0, c1, c2, c3)` and key `(k0, k1)`, all uint32, into `out`
 * (four uint32 words).
 *
 * @example
 * ```ts
 * import { philox4x32_10 } from "./random.ts";
 * const out = new Uint32Array(4);
 * philox4x32_10(0, 0, 0, 0, 0, 0, out);
 * // out = [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
 * ```
 */
export function philox4x32_10(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  c0 |= 0;
  c1 |= 0;
  c2 |= 0;
  c3 |= 0;
  k0 |= 0;
  k1 |= 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) | 0;
      k1 = (k1 + W1) | 0;
    }
    const hi0 = mulhi(M0L, M0H, c0);
    const lo0 = Math.imul(M0, c0);
    const hi1 = mulhi(M1L, M1H, c2);
    const lo1 = Math.imul(M1, c2);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

function checkSeed(seed: number, offset: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new ArgumentError("random", `seed must be a non-negative integer below 2^53, got ${seed}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new ArgumentError("random", `offset must be a non-negative integer below 2^53, got ${offset}`);
  }
}

/**
 * Fills `out` with element `offset + i` of the uniform (0, 1) or standard normal stream of
 * `seed`, for i in [0, out.length) (see the module notes for the exact definition).
 *
 * @example
 * ```ts
 * import { fillRandom } from "./random.ts";
 * const u = new Float64Array(4);
 * fillRandom("uniform", u, 42, 0);
 * ```
 */
export function fillRandom(kind: "uniform" | "normal", out: NumArray, seed: number, offset: number): void {
  checkSeed(seed, offset);
  const key0 = seed % TWO32 | 0;
  const key1 = Math.floor(seed / TWO32) % TWO32 | 0;
  const normal = kind === "normal";
  const block = new Uint32Array(4);
  let ctr0 = offset % TWO32 | 0;
  let ctr1 = Math.floor(offset / TWO32) | 0;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    philox4x32_10(ctr0, ctr1, 0, 0, key0, key1, block);
    const u1 = (block[0] + 0.5) * INV_TWO32;
    if (normal) {
      const u2 = (block[1] + 0.5) * INV_TWO32;
      out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(TWO_PI * u2);
    } else {
      out[i] = u1;
    }
    ctr0 = (ctr0 + 1) | 0;
    if (ctr0 === 0) ctr1 = (ctr1 + 1) | 0;
  }
}

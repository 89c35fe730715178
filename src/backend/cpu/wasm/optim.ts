/**
 * The fused Adam(W) update as SIMD kernels, `adam_f32` and `adam_f64`: each element goes through
 * the composite update's operations in the same order, every one an IEEE operation of the
 * element type rounded once (as the elementwise kernels and `../optim.ts` round them), so the
 * result is the same bits as the TypeScript loop and the composite update.
 *
 * Arguments: param, grad, expAvg, expAvgSq (addresses of contiguous arrays of one dtype), n, then
 * the update's constants already rounded to the element type — L2 weight, decay factor, β₁,
 * 1 − β₁, β₂, 1 − β₂, √(1 − β₂ᵗ), ε, lr / (1 − β₁ᵗ) — and 1 where the L2 term applies, 0 where it
 * does not; the gradient's element size (2 for bfloat16 bits, widened exactly), and the address
 * of a bfloat16 copy of the new parameters with 1 where there is one (`adam_f32` only; rounded to
 * nearest even). A job is a chunk of {@link CHUNK} elements.
 *
 * @module
 */

import type { Expr, Fn, Local, Module } from "./asm.ts";
import { CHUNK } from "./elementwise.ts";
import { F32, F64, kernel } from "./kernel.ts";

/** Argument slots of the constants, in the order of the module's description. */
const CONSTANTS = 9;
/** The argument slot of the gradient's element size (2: bfloat16 bits, float32 only). */
const GRAD_BYTES = 15;
/** The argument slot of the bfloat16 copy's address, then 1 where there is one (float32 only). */
const COPY = 16;

/**
 * Adds `adam_f32` and `adam_f64` to `m`.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { addOptimKernels } from "./optim.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * addOptimKernels(m);
 * ```
 */
export function addOptimKernels(m: Module): void {
  for (const t of [F32, F64]) {
    const E = t.bytes;
    kernel(m, `adam_${t.name}`, (f, args, job) => {
      const L = t.name === "f32" ? f.f32x4 : f.f64x2;
      const [l2, decay, b1, c1b1, b2, c1b2, bc2, eps, step] = Array.from({ length: CONSTANTS }, (_, k) => {
        const c = f.local("v128");
        f.set(c, t.name === "f32" ? f.f32x4.splat(f.f32.demote_f64(args.f64(5 + k))) : f.f64x2.splat(args.f64(5 + k)));
        return c;
      });
      const useL2 = f.local("v128");
      f.set(useL2, f.i32x4.splat(f.i32.sub(f.i32.const(0), args.i32(5 + CONSTANTS))));
      const [i, e0, e1] = f.locals("i32", 3);
      const [P, G, M, V, C] = f.locals("i64", 5);
      const [theta, g, mi, vi, next] = f.locals("v128", 5);
      f.set(e0, f.i32.mul(job, CHUNK));
      f.set(e1, f.i32.min_s(args.i32(4), f.i32.add(e0, CHUNK)));
      const from = (k: number, bytes: Expr) => f.i64.add(args.i64(k), f.i64.mul(f.i64.extend_i32_s(e0), bytes));
      [P, M, V].forEach((p, k) => f.set(p, from([0, 2, 3][k], E)));
      f.set(G, from(1, args.i64(GRAD_BYTES)));
      f.set(C, from(COPY, 2));
      /** One vector (`vector`) or one element in lane 0, with the gradient in bfloat16 bits or not, and a bfloat16 copy or not. */
      const update = (vector: boolean, bits: boolean, copy: boolean) => {
        const load = (a: Expr) => (vector ? f.v128.load(a) : t.loadSplat(f, a));
        const store = (a: Expr, v: Expr) =>
          vector ? f.v128.store(a, v) : E === 4 ? f.v128.store32_lane(a, v, 0) : f.v128.store64_lane(a, v, 0);
        f.set(theta, load(P));
        const raw = bits ? (vector ? f.v128.load64_zero(G) : f.v128.load16_splat(G)) : load(G);
        f.set(g, bits ? f.i32x4.shl(f.i32x4.extend_low_i16x8_u(raw), 16) : raw);
        f.set(g, f.v128.bitselect(L.add(g, L.mul(theta, l2)), g, useL2));
        f.set(mi, L.add(L.mul(load(M), b1), L.mul(g, c1b1)));
        f.set(vi, L.add(L.mul(load(V), b2), L.mul(L.mul(g, g), c1b2)));
        store(M, mi);
        store(V, vi);
        f.set(next, L.sub(L.mul(theta, decay), L.mul(L.div(mi, L.add(L.div(L.sqrt(vi), bc2), eps)), step)));
        store(P, next);
        if (copy) {
          const packed = f.i16x8.narrow_i32x4_u(bfloat16Bits(f, next), bfloat16Bits(f, next));
          if (vector) f.v128.store64_lane(C, packed, 0);
          else f.v128.store16_lane(C, packed, 0);
        }
        const n = vector ? t.lanes : 1;
        for (const p of [P, M, V]) f.set(p, f.i64.add(p, n * E));
        f.set(G, f.i64.add(G, n * (bits ? 2 : E)));
        if (copy) f.set(C, f.i64.add(C, n * 2));
      };
      const body = (bits: boolean, copy: boolean) => {
        f.for(i, e0, f.i32.sub(e1, t.lanes - 1), t.lanes, () => update(true, bits, copy));
        f.for(i, i, e1, 1, () => update(false, bits, copy));
      };
      if (t.name === "f64") return body(false, false);
      const copies = (bits: boolean) => f.if(args.i32(COPY + 1), () => body(bits, true), () => body(bits, false));
      f.if(f.i64.eq(args.i64(GRAD_BYTES), 2), () => copies(true), () => copies(false));
    });
  }
}

/**
 * The bfloat16 bits of float32 lanes in the low half of int32 lanes, rounded to nearest even as
 * `toBFloat16Bits` rounds them (a NaN stays a quiet NaN of its sign).
 */
function bfloat16Bits(f: Fn, x: Local): Expr {
  const splat = (v: number) => f.i32x4.splat(f.i32.const(v));
  const high = f.i32x4.shr_u(x, 16);
  const rounded = f.i32x4.shr_u(f.i32x4.add(f.i32x4.add(x, splat(0x7fff)), f.v128.and(high, splat(1))), 16);
  return f.v128.bitselect(rounded, f.v128.or(high, splat(0x40)), f.f32x4.eq(x, x));
}

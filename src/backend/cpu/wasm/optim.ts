/**
 * The fused Adam(W) update as SIMD kernels, `adam_f32` and `adam_f64`: each element goes through
 * the composite update's operations in the same order, every one an IEEE operation of the
 * element type rounded once (as the elementwise kernels and `../optim.ts` round them), so the
 * result is the same bits as the TypeScript loop and the composite update.
 *
 * Arguments: param, grad, expAvg, expAvgSq (addresses of contiguous arrays of one dtype), n, then
 * the update's constants already rounded to the element type — L2 weight, decay factor, β₁,
 * 1 − β₁, β₂, 1 − β₂, √(1 − β₂ᵗ), ε, lr / (1 − β₁ᵗ) — and 1 where the L2 term applies, 0 where it
 * does not. A job is a chunk of {@link CHUNK} elements.
 *
 * @module
 */

import type { Expr, Module } from "./asm.ts";
import { CHUNK } from "./elementwise.ts";
import { F32, F64, kernel } from "./kernel.ts";

/** Argument slots of the constants, in the order of the module's description. */
const CONSTANTS = 9;

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
      const ptr = f.locals("i64", 4);
      const [theta, g, mi, vi] = f.locals("v128", 4);
      f.set(e0, f.i32.mul(job, CHUNK));
      f.set(e1, f.i32.min_s(args.i32(4), f.i32.add(e0, CHUNK)));
      ptr.forEach((p, k) => f.set(p, f.i64.add(args.i64(k), f.i64.mul(f.i64.extend_i32_s(e0), E))));
      const [P, G, M, V] = ptr;
      const update = (load: (a: Expr) => Expr, store: (a: Expr, v: Expr) => void, width: number) => {
        f.set(theta, load(P));
        f.set(g, load(G));
        f.set(g, f.v128.bitselect(L.add(g, L.mul(theta, l2)), g, useL2));
        f.set(mi, L.add(L.mul(load(M), b1), L.mul(g, c1b1)));
        f.set(vi, L.add(L.mul(load(V), b2), L.mul(L.mul(g, g), c1b2)));
        store(M, mi);
        store(V, vi);
        store(P, L.sub(L.mul(theta, decay), L.mul(L.div(mi, L.add(L.div(L.sqrt(vi), bc2), eps)), step)));
        for (const p of ptr) f.set(p, f.i64.add(p, width));
      };
      f.for(i, e0, f.i32.sub(e1, t.lanes - 1), t.lanes, () => update((a) => f.v128.load(a), f.v128.store, 16));
      const splat = (a: Expr) => t.loadSplat(f, a);
      const lane = (a: Expr, v: Expr) => (E === 4 ? f.v128.store32_lane(a, v, 0) : f.v128.store64_lane(a, v, 0));
      f.for(i, i, e1, 1, () => update(splat, lane, E));
    });
  }
}

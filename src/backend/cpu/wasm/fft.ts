/**
 * FFT kernels: the transforms of `fft.ts` (radix-2 for powers of two, the direct DFT for short
 * other lengths) run on two signals at once, one per float64 lane, with the same operations in
 * the same order as the TypeScript transform (no fused multiply-adds), so they give the same bits.
 *
 * A job takes `pairsPerJob` pairs of lines. For each pair it gathers the two input lines into the
 * thread's scratch (re and im as float64x2 vectors), completes a Hermitian spectrum for irfft,
 * transforms, scales inverses by 1/n and scatters the lanes to the two output lines.
 *
 * @module
 */

import type { Expr, Fn, Local, Module } from "./asm.ts";
import { F32, F64, kernel, loadAsF64, storeFromF64 } from "./kernel.ts";

/** Byte lanes of the low and the high float64 of a vector. */
const LOW = [0, 1, 2, 3, 4, 5, 6, 7];
const HIGH = [8, 9, 10, 11, 12, 13, 14, 15];

/** Transform modes. */
export const MODE = { forward: 0, inverse: 1, rfft: 2, irfft: 3 } as const;

/** i32 → i64. */
function wide(f: Fn, e: Expr): Expr {
  return f.i64.extend_i32_s(e);
}

/** Address of vector `k` of the scratch array at `base` (16 bytes per element). */
function at(f: Fn, base: Expr, k: Expr): Expr {
  return f.i64.add(base, wide(f, f.i32.shl(k, 4)));
}

/**
 * `(re, im, n, swaps, swapCount, tw, sign)`: in-place radix-2 transform of n ≥ 2 vectors;
 * swaps are int32 index pairs, tw holds (cos, sin) float64 pairs at index half + j.
 */
function radix2(m: Module): number {
  const params = ["i64", "i64", "i32", "i64", "i32", "i64", "f64"] as const;
  return m.func(null, params, [], (f, [re, im, n, swaps, count, tw, sign]) => {
    const [s, i, j, half, i0] = f.locals("i32", 5);
    const [tr, ti, xr, xi, ur, ui, wr, wi, lr, li] = f.locals("v128", 10);
    const [r0, i0v, r1, i1, r2, i2, r3, i3] = f.locals("v128", 8);
    const sg = f.local("v128");
    const load = (base: Local, k: Expr) => f.v128.load(at(f, base, k));
    const store = (base: Local, k: Expr, v: Expr) => f.v128.store(at(f, base, k), v);
    const add = (a: Expr, b: Expr) => f.f64x2.add(a, b), sub = (a: Expr, b: Expr) => f.f64x2.sub(a, b);
    const mul = (a: Expr, b: Expr) => f.f64x2.mul(a, b);
    f.set(sg, f.f64x2.splat(sign));
    // Bit-reversal permutation.
    f.for(s, 0, count, 1, () => {
      const pair = f.i64.add(swaps, wide(f, f.i32.shl(s, 3)));
      f.set(i, f.i32.load(pair));
      f.set(j, f.i32.load(pair, 4));
      f.set(tr, load(re, i));
      f.set(ti, load(im, i));
      store(re, i, load(re, j));
      store(im, i, load(im, j));
      store(re, j, tr);
      store(im, j, ti);
    });
    // Size-2 butterflies.
    f.for(i, 0, n, 2, () => {
      f.set(j, f.i32.add(i, 1));
      f.set(xr, load(re, j));
      f.set(xi, load(im, j));
      f.set(ur, load(re, i));
      f.set(ui, load(im, i));
      store(re, j, sub(ur, xr));
      store(im, j, sub(ui, xi));
      store(re, i, add(ur, xr));
      store(im, i, add(ui, xi));
    });
    f.if(f.i32.lt_s(n, 4), () => f.ret());
    // Size-4 butterflies: twiddles 1 and ∓i (sign = +1 inverse, −1 forward).
    f.for(i, 0, n, 4, () => {
      f.set(r0, load(re, i));
      f.set(i0v, load(im, i));
      f.set(r1, load(re, f.i32.add(i, 1)));
      f.set(i1, load(im, f.i32.add(i, 1)));
      f.set(r2, load(re, f.i32.add(i, 2)));
      f.set(i2, load(im, f.i32.add(i, 2)));
      f.set(r3, mul(f.f64x2.neg(sg), load(im, f.i32.add(i, 3))));
      f.set(i3, mul(sg, load(re, f.i32.add(i, 3))));
      store(re, i, add(r0, r2));
      store(im, i, add(i0v, i2));
      store(re, f.i32.add(i, 2), sub(r0, r2));
      store(im, f.i32.add(i, 2), sub(i0v, i2));
      store(re, f.i32.add(i, 1), add(r1, r3));
      store(im, f.i32.add(i, 1), add(i1, i3));
      store(re, f.i32.add(i, 3), sub(r1, r3));
      store(im, f.i32.add(i, 3), sub(i1, i3));
    });
    // Stages of span 4, 8, …: pointers walk the butterflies, the twiddle pointer the stage's table.
    const [pr, pi, pw, span] = f.locals("i64", 4);
    f.for(half, 4, n, half, () => {
      f.set(span, wide(f, f.i32.shl(half, 4)));
      f.for(i0, 0, n, f.i32.shl(half, 1), () => {
        f.set(pr, at(f, re, i0));
        f.set(pi, at(f, im, i0));
        f.set(pw, at(f, tw, half));
        f.for(j, 0, half, 1, () => {
          f.set(wr, f.v128.load64_splat(pw));
          f.set(wi, mul(sg, f.v128.load64_splat(pw, 8)));
          f.set(lr, f.v128.load(f.i64.add(pr, span)));
          f.set(li, f.v128.load(f.i64.add(pi, span)));
          f.set(xr, sub(mul(lr, wr), mul(li, wi)));
          f.set(xi, add(mul(lr, wi), mul(li, wr)));
          f.set(ur, f.v128.load(pr));
          f.set(ui, f.v128.load(pi));
          f.v128.store(f.i64.add(pr, span), sub(ur, xr));
          f.v128.store(f.i64.add(pi, span), sub(ui, xi));
          f.v128.store(pr, add(ur, xr));
          f.v128.store(pi, add(ui, xi));
          f.set(pr, f.i64.add(pr, 16));
          f.set(pi, f.i64.add(pi, 16));
          f.set(pw, f.i64.add(pw, 16));
        });
      });
    });
  });
}

/** `(re, im, outRe, outIm, n, roots, sign)`: direct DFT through the table of n (cos, sin) roots. */
function direct(m: Module): number {
  const params = ["i64", "i64", "i64", "i64", "i32", "i64", "f64"] as const;
  return m.func(null, params, [], (f, [re, im, outRe, outIm, n, roots, sign]) => {
    const [k, j, idx] = f.locals("i32", 3);
    const [sr, si, c, s, xr, xi] = f.locals("v128", 6);
    f.for(k, 0, n, 1, () => {
      f.set(sr, f.f64x2.splat(0));
      f.set(si, f.f64x2.splat(0));
      f.set(idx, 0);
      f.for(j, 0, n, 1, () => {
        const root = f.i64.add(roots, wide(f, f.i32.shl(idx, 4)));
        f.set(c, f.v128.load64_splat(root));
        f.set(s, f.f64x2.mul(f.f64x2.splat(sign), f.v128.load64_splat(root, 8)));
        f.set(xr, f.v128.load(at(f, re, j)));
        f.set(xi, f.v128.load(at(f, im, j)));
        f.set(sr, f.f64x2.add(sr, f.f64x2.sub(f.f64x2.mul(xr, c), f.f64x2.mul(xi, s))));
        f.set(si, f.f64x2.add(si, f.f64x2.add(f.f64x2.mul(xr, s), f.f64x2.mul(xi, c))));
        f.set(idx, f.i32.add(idx, k));
        f.if(f.i32.ge_s(idx, n), () => f.set(idx, f.i32.sub(idx, n)));
      });
      f.v128.store(at(f, outRe, k), sr);
      f.v128.store(at(f, outIm, k), si);
    });
  });
}

/**
 * Adds `fft_f32` and `fft_f64` to `m`. Arguments: input base, output base (addresses); the
 * address of the line table (per pair: two input and two output byte offsets, float64); pairs;
 * pairs per job; mode ({@linkcode MODE}); n (transform length); input length along the axis;
 * input stride and imaginary offset, output stride and imaginary offset (bytes; complex output
 * is written as (re, im) pairs, so the latter must be one element); the plan (0:
 * radix-2, 1: direct) and its tables (swaps and count, twiddles or roots); scratch base and
 * bytes per thread (64·n).
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { addFftKernels } from "./fft.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * addFftKernels(m);
 * ```
 */
export function addFftKernels(m: Module): void {
  const r2 = radix2(m);
  const dft = direct(m);
  for (const t of [F32, F64]) {
    kernel(m, `fft_${t.name}`, (f, args, job, thread) => {
      const [pair, pairEnd, n, len, mode, k, use] = f.locals("i32", 7);
      const [re, im, re2, im2, entry, a0, a1, xs, xt, os] = f.locals("i64", 10);
      const v = f.local("v128");
      const scale = f.local("f64");
      f.set(n, args.i32(6));
      f.set(len, args.i32(7));
      f.set(mode, args.i32(5));
      f.set(xs, args.i64(8));
      f.set(xt, args.i64(9));
      f.set(os, args.i64(10));
      f.set(re, f.i64.add(args.i64(16), f.i64.mul(wide(f, thread), args.i64(17))));
      f.set(im, f.i64.add(re, wide(f, f.i32.shl(n, 4))));
      f.set(re2, f.i64.add(im, wide(f, f.i32.shl(n, 4))));
      f.set(im2, f.i64.add(re2, wide(f, f.i32.shl(n, 4))));
      f.set(scale, f.f64.div(1, f.f64.convert_i32_s(n)));
      f.set(pair, f.i32.mul(job, args.i32(4)));
      f.set(pairEnd, f.i32.min_s(args.i32(3), f.i32.add(pair, args.i32(4))));
      f.for(pair, pair, pairEnd, 1, () => {
        f.set(entry, f.i64.add(args.i64(2), wide(f, f.i32.shl(pair, 5))));
        f.set(a0, f.i64.add(args.i64(0), f.i64.trunc_f64_s(f.f64.load(entry))));
        f.set(a1, f.i64.add(args.i64(0), f.i64.trunc_f64_s(f.f64.load(entry, 8))));
        // Gather: re[k], im[k] for k < use (the rest zero).
        f.set(use, f.i32.min_s(len, n));
        f.for(k, 0, use, 1, () => {
          const pair2 = (off: Expr) =>
            f.f64x2.replace_lane(
              f.f64x2.splat(loadAsF64(f, t, f.i64.add(a0, off))),
              1,
              loadAsF64(f, t, f.i64.add(a1, off)),
            );
          const off = f.local("i64");
          f.set(off, f.i64.mul(wide(f, k), xs));
          f.v128.store(at(f, re, k), pair2(off));
          f.if(
            f.i32.eq(mode, MODE.rfft),
            () => f.v128.store(at(f, im, k), f.f64x2.splat(0)),
            () => f.v128.store(at(f, im, k), pair2(f.i64.add(off, xt))),
          );
        });
        f.for(k, use, n, 1, () => {
          f.v128.store(at(f, re, k), f.f64x2.splat(0));
          f.v128.store(at(f, im, k), f.f64x2.splat(0));
        });
        f.if(f.i32.eq(mode, MODE.irfft), () => {
          // Hermitian completion: imaginary parts of DC and Nyquist dropped, X[n−k] = conj X[k].
          f.v128.store(im, f.f64x2.splat(0));
          f.if(f.i32.eqz(f.i32.and(n, 1)), () => f.v128.store(at(f, im, f.i32.shr_s(n, 1)), f.f64x2.splat(0)));
          f.for(k, 1, f.i32.shr_s(f.i32.add(n, 1), 1), 1, () => {
            f.v128.store(at(f, re, f.i32.sub(n, k)), f.v128.load(at(f, re, k)));
            f.v128.store(at(f, im, f.i32.sub(n, k)), f.f64x2.neg(f.v128.load(at(f, im, k))));
          });
        });
        const inverse = f.i32.or(f.i32.eq(mode, MODE.inverse), f.i32.eq(mode, MODE.irfft));
        const sg = f.local("f64");
        f.set(sg, -1);
        f.if(inverse, () => f.set(sg, 1));
        f.if(f.i32.gt_s(n, 1), () => {
          f.if(f.i32.eqz(args.i32(12)), () => {
            f.push(f.call(r2, re, im, n, args.i64(13), args.i32(14), args.i64(15), sg));
          }, () => {
            f.push(f.call(dft, re, im, re2, im2, n, args.i64(15), sg));
            f.for(k, 0, n, 1, () => {
              f.v128.store(at(f, re, k), f.v128.load(at(f, re2, k)));
              f.v128.store(at(f, im, k), f.v128.load(at(f, im2, k)));
            });
          });
        });
        f.if(inverse, () => {
          f.set(v, f.f64x2.splat(scale));
          f.for(k, 0, n, 1, () => {
            f.v128.store(at(f, re, k), f.f64x2.mul(f.v128.load(at(f, re, k)), v));
            f.v128.store(at(f, im, k), f.f64x2.mul(f.v128.load(at(f, im, k)), v));
          });
        });
        // Scatter lane 0 to the first line, lane 1 to the second.
        const outCount = f.local("i32");
        f.set(outCount, n);
        f.if(f.i32.eq(mode, MODE.rfft), () => f.set(outCount, f.i32.add(f.i32.shr_s(n, 1), 1)));
        const [o0, o1, pr, pi] = f.locals("i64", 4);
        f.set(o0, f.i64.add(args.i64(1), f.i64.trunc_f64_s(f.f64.load(entry, 16))));
        f.set(o1, f.i64.add(args.i64(1), f.i64.trunc_f64_s(f.f64.load(entry, 24))));
        f.set(pr, re);
        f.set(pi, im);
        f.if(
          f.i32.eq(mode, MODE.irfft),
          () =>
            f.for(k, 0, outCount, 1, () => {
              storeFromF64(f, t, o0, f.f64x2.extract_lane(f.v128.load(pr), 0));
              storeFromF64(f, t, o1, f.f64x2.extract_lane(f.v128.load(pr), 1));
              f.set(pr, f.i64.add(pr, 16));
              f.set(o0, f.i64.add(o0, os));
              f.set(o1, f.i64.add(o1, os));
            }),
          () =>
            // Complex output, imaginary part right after the real one: one (re, im) store per line.
            f.for(k, 0, outCount, 1, () => {
              const [vr, vi] = [f.local("v128"), f.local("v128")];
              f.set(vr, f.v128.load(pr));
              f.set(vi, f.v128.load(pi));
              [o0, o1].forEach((o, h) => {
                const z = f.v128.shuffle(
                  vr,
                  vi,
                  h === 0 ? [...LOW, ...LOW.map((b) => b + 16)] : [...HIGH, ...HIGH.map((b) => b + 16)],
                );
                if (t === F64) f.v128.store(o, z);
                else f.v128.store64_lane(o, f.f32x4.demote_f64x2_zero(z), 0);
                f.set(o, f.i64.add(o, os));
              });
              f.set(pr, f.i64.add(pr, 16));
              f.set(pi, f.i64.add(pi, 16));
            }),
        );
      });
    });
  }
}

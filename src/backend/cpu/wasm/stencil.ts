/**
 * Banded-operator kernels (`Backend.stencil`) for float32 and float64: `out[o, i, j] = Σ_taps
 * c · x[o, col, j] (+ add[o, i, j])`, each output summed in float64 in tap order (`acc = 0; acc
 * += c·x`, plain multiplies and adds, then `+ add`) and rounded once, exactly as the TypeScript
 * loops of `stencil.ts` do.
 *
 * Rows whose taps all lie inside the axis (`[a, b)`) read the uniform stencil; the others (head,
 * tail, cut-off or wrapped rows) read their taps from a compressed table built by the caller.
 * With an inner extent above one a row is a vector over the contiguous inner axis; with one, two
 * interior rows share a vector. A job is a block of rows of one outer index.
 *
 * @module
 */

import type { Expr, Fn, Local, Module } from "./asm.ts";
import { F32, F64, kernel, type Lane, loadAsF64, loadWide, storeFromF64, storeWide } from "./kernel.ts";

/** i32 → i64. */
function wide(f: Fn, e: Expr): Expr {
  return f.i64.extend_i32_s(e);
}

/** Two float64 lanes from elements of `t` at `p` and `p + step` (bytes). */
function loadPair(f: Fn, t: Lane, p: Local, step: Local): Expr {
  return f.f64x2.replace_lane(f.f64x2.splat(loadAsF64(f, t, p)), 1, loadAsF64(f, t, f.i64.add(p, step)));
}

/**
 * Adds `stencil_f32` and `stencil_f64` to `m`. Arguments (addresses and strides in bytes): x,
 * x's outer and axis strides; add (0: none), its outer, axis and inner strides; out (contiguous);
 * n, outer, inner; a, b (the uniform rows), lo, the stencil's width and its float64 coefficients;
 * the table of the other rows (for row slot r — rows below a, then rows from b — taps
 * `[start[r], start[r+1])` of the int32 columns and float64 coefficients); rows per job; the
 * scratch base and bytes per thread (a float64 row of `inner`).
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { addStencilKernels } from "./stencil.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * addStencilKernels(m);
 * ```
 */
export function addStencilKernels(m: Module): void {
  for (const t of [F32, F64]) {
    const E = t.bytes;
    kernel(m, `stencil_${t.name}`, (f, args, job, thread) => {
      const [n, inner, a, b, lo, w, blocks, o, i, iEnd, k, j, slot, tap, tapEnd, col] = f.locals("i32", 16);
      const [xo, xa, ad, ado, ada, adi, out, x, row, p, orow, coefs, starts, cols, vals] = f.locals("i64", 15);
      const c = f.local("f64");
      const s = f.local("f64");
      f.set(xa, args.i64(2));
      f.set(ad, args.i64(3));
      f.set(ado, args.i64(4));
      f.set(ada, args.i64(5));
      f.set(adi, args.i64(6));
      f.set(n, args.i32(8));
      f.set(inner, args.i32(10));
      f.set(a, args.i32(11));
      f.set(b, args.i32(12));
      f.set(lo, args.i32(13));
      f.set(w, args.i32(14));
      f.set(coefs, args.i64(15));
      f.set(starts, args.i64(16));
      f.set(cols, args.i64(17));
      f.set(vals, args.i64(18));
      f.set(blocks, f.i32.div_s(f.i32.add(n, f.i32.sub(args.i32(19), 1)), args.i32(19)));
      f.set(o, f.i32.div_s(job, blocks));
      f.set(i, f.i32.mul(f.i32.rem_s(job, blocks), args.i32(19)));
      f.set(iEnd, f.i32.min_s(n, f.i32.add(i, args.i32(19))));
      f.set(xo, f.i64.add(args.i64(0), f.i64.mul(wide(f, o), args.i64(1))));
      f.set(out, f.i64.add(args.i64(7), f.i64.mul(f.i64.mul(wide(f, o), wide(f, n)), f.i64.mul(wide(f, inner), E))));
      const addRow = (ii: Expr) => f.i64.add(f.i64.add(ad, f.i64.mul(wide(f, o), ado)), f.i64.mul(wide(f, ii), ada));
      /** Runs `body(col, coefficient)` for every tap of row `i`, in order. */
      const taps = (body: () => void) => {
        f.if(f.i32.and(f.i32.ge_s(i, a), f.i32.lt_s(i, b)), () => {
          f.for(tap, 0, w, 1, () => {
            f.set(col, f.i32.add(f.i32.add(i, lo), tap));
            f.set(c, f.f64.load(f.i64.add(coefs, wide(f, f.i32.shl(tap, 3)))));
            body();
          });
        }, () => {
          f.set(slot, i);
          f.if(f.i32.ge_s(i, b), () => f.set(slot, f.i32.add(a, f.i32.sub(i, b))));
          f.set(tapEnd, f.i32.load(f.i64.add(starts, wide(f, f.i32.shl(slot, 2))), 4));
          f.for(tap, f.i32.load(f.i64.add(starts, wide(f, f.i32.shl(slot, 2)))), tapEnd, 1, () => {
            f.set(col, f.i32.load(f.i64.add(cols, wide(f, f.i32.shl(tap, 2)))));
            f.set(c, f.f64.load(f.i64.add(vals, wide(f, f.i32.shl(tap, 3)))));
            body();
          });
        });
      };
      const L = 16 / E; // elements per 16 bytes of input
      f.if(f.i32.gt_s(inner, 1), () => {
        // Each row is accumulated tap by tap in the thread's float64 scratch row, then + add.
        const [sc, r, xr] = f.locals("i64", 3);
        const cv = f.local("v128");
        f.set(sc, f.i64.add(args.i64(20), f.i64.mul(wide(f, thread), args.i64(21))));
        f.for(i, i, iEnd, 1, () => {
          f.for(j, 0, inner, 1, () => f.f64.store(f.i64.add(sc, wide(f, f.i32.shl(j, 3))), 0));
          taps(() => {
            f.set(xr, f.i64.add(xo, f.i64.mul(wide(f, col), xa)));
            f.set(cv, f.f64x2.splat(c));
            f.set(r, sc);
            f.for(j, 0, f.i32.sub(inner, L - 1), L, () => {
              loadWide(f, t, xr, 0).forEach((v, h) =>
                f.v128.store(r, f.f64x2.add(f.v128.load(r, 16 * h), f.f64x2.mul(cv, v)), 16 * h)
              );
              f.set(xr, f.i64.add(xr, 16));
              f.set(r, f.i64.add(r, 8 * L));
            });
            f.for(j, f.i32.and(inner, -L), inner, 1, () => {
              f.f64.store(r, f.f64.add(f.f64.load(r), f.f64.mul(c, loadAsF64(f, t, xr))));
              f.set(xr, f.i64.add(xr, E));
              f.set(r, f.i64.add(r, 8));
            });
          });
          f.set(orow, f.i64.add(out, f.i64.mul(f.i64.mul(wide(f, i), wide(f, inner)), E)));
          f.set(r, sc);
          f.set(p, addRow(i));
          const plainAdd = f.i32.or(f.i64.eq(ad, 0), f.i64.eq(adi, E));
          f.if(plainAdd, () => {
            f.for(j, 0, f.i32.sub(inner, L - 1), L, () => {
              const acc = Array.from({ length: L / 2 }, (_, h) => f.v128.load(r, 16 * h));
              f.if(
                f.i64.eq(ad, 0),
                () => storeWide(f, t, orow, acc),
                () => storeWide(f, t, orow, loadWide(f, t, p, 0).map((v, h) => f.f64x2.add(acc[h], v))),
              );
              f.set(r, f.i64.add(r, 8 * L));
              f.set(p, f.i64.add(p, 16));
              f.set(orow, f.i64.add(orow, 16));
            });
            f.set(j, f.i32.and(inner, -L));
          }, () => f.set(j, 0));
          f.for(j, j, inner, 1, () => {
            f.set(s, f.f64.load(r));
            f.if(f.i64.lt_s(0, ad), () => f.set(s, f.f64.add(s, loadAsF64(f, t, p))));
            storeFromF64(f, t, orow, s);
            f.set(r, f.i64.add(r, 8));
            f.set(p, f.i64.add(p, adi));
            f.set(orow, f.i64.add(orow, E));
          });
        });
      }, () => {
        // One line. Interior rows of a contiguous line eight at a time (four float64 vectors),
        // two at a time otherwise, the others one by one.
        const acc = f.locals("v128", 4);
        const cv = f.local("v128");
        f.for(i, i, iEnd, 1, () => {
          f.set(row, f.i64.add(out, wide(f, f.i32.mul(i, E))));
          const eight = f.i32.and(
            f.i32.and(f.i32.ge_s(i, a), f.i32.le_s(f.i32.add(i, 8), b)),
            f.i32.le_s(f.i32.add(i, 8), iEnd),
          );
          f.if(f.i32.and(eight, f.i64.eq(xa, E)), () => {
            for (const v of acc) f.set(v, f.f64x2.splat(0));
            f.for(k, 0, w, 1, () => {
              f.set(x, f.i64.add(xo, wide(f, f.i32.mul(f.i32.add(f.i32.add(i, lo), k), E))));
              f.set(cv, f.f64x2.splat(f.f64.load(f.i64.add(coefs, wide(f, f.i32.shl(k, 3))))));
              const lanes = Array.from({ length: 8 / L }, (_, g) => loadWide(f, t, x, 16 * g)).flat();
              lanes.forEach((v, h) => f.set(acc[h], f.f64x2.add(acc[h], f.f64x2.mul(cv, v))));
            });
            f.if(f.i64.lt_s(0, ad), () => {
              f.set(p, addRow(i));
              acc.forEach((v, h) =>
                f.set(
                  v,
                  f.f64x2.add(
                    v,
                    f.f64x2.replace_lane(
                      f.f64x2.splat(loadAsF64(f, t, f.i64.add(p, f.i64.mul(ada, 2 * h)))),
                      1,
                      loadAsF64(f, t, f.i64.add(p, f.i64.mul(ada, 2 * h + 1))),
                    ),
                  ),
                )
              );
            });
            for (let g = 0; g < 8 / L; g++) {
              storeWide(f, t, f.i64.add(row, 16 * g), acc.slice(g * (L / 2), (g + 1) * (L / 2)));
            }
            f.set(i, f.i32.add(i, 7));
          }, () => {
            f.if(
              f.i32.and(f.i32.and(f.i32.ge_s(i, a), f.i32.lt_s(f.i32.add(i, 1), b)), f.i32.lt_s(f.i32.add(i, 1), iEnd)),
              () => {
                f.set(acc[0], f.f64x2.splat(0));
                f.for(k, 0, w, 1, () => {
                  f.set(x, f.i64.add(xo, f.i64.mul(wide(f, f.i32.add(f.i32.add(i, lo), k)), xa)));
                  f.set(c, f.f64.load(f.i64.add(coefs, wide(f, f.i32.shl(k, 3)))));
                  f.set(acc[0], f.f64x2.add(acc[0], f.f64x2.mul(f.f64x2.splat(c), loadPair(f, t, x, xa))));
                });
                f.if(f.i64.lt_s(0, ad), () => {
                  f.set(p, addRow(i));
                  f.set(acc[0], f.f64x2.add(acc[0], loadPair(f, t, p, ada)));
                });
                storeFromF64(f, t, row, f.f64x2.extract_lane(acc[0], 0));
                storeFromF64(f, t, f.i64.add(row, E), f.f64x2.extract_lane(acc[0], 1));
                f.inc(i);
              },
              () => {
                f.set(s, 0);
                taps(() =>
                  f.set(s, f.f64.add(s, f.f64.mul(c, loadAsF64(f, t, f.i64.add(xo, f.i64.mul(wide(f, col), xa))))))
                );
                f.if(f.i64.lt_s(0, ad), () => f.set(s, f.f64.add(s, loadAsF64(f, t, addRow(i)))));
                storeFromF64(f, t, row, s);
              },
            );
          });
        });
      });
    });
  }
}

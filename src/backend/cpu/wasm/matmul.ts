/**
 * The matrix-product kernels (float32 and float64), Goto/BLIS style in WebAssembly SIMD.
 *
 * A job computes one MB × NB block of one product of a batch: for each KC-deep slice of k it
 * packs its rows of A and its columns of B into the thread's scratch (A as MR-row micro-panels,
 * B as NR-column micro-panels, both k-major, zero-padded), then runs the MR × NR register-tiled
 * micro-kernel over every micro-panel pair; the first slice stores the block, later ones add to
 * it. Each output element is thus the same sequence of fused multiply-adds (KC at a time, in
 * order of k) whichever thread computes it.
 *
 * Micro-tiles: float32 6 × 8 (twelve f32x4 accumulators), float64 6 × 4 (twelve f64x2), the
 * largest that stay in the sixteen SIMD registers with the two B vectors and the A broadcast.
 *
 * @module
 */

import type { Expr, Fn, Module } from "./asm.ts";
import { F32, F64, kernel, type Lane } from "./kernel.ts";

/** Rows of a micro-tile. */
export const MR = 6;
/** Vectors per micro-tile row. */
const NV = 2;
/** Depth of a packed slice. */
export const KC = 256;
/** Rows of a job's block (a multiple of MR). */
export const MB = 120;

/**
 * Columns of a job's block (a multiple of NR) for an element type.
 *
 * @example
 * ```ts
 * import { blockColumns } from "./matmul.ts";
 * blockColumns(4); // 256
 * ```
 */
export function blockColumns(bytes: number): number {
  return bytes === 4 ? 256 : 128;
}

/**
 * Scratch bytes one thread needs for an element type: packed A and B and one edge tile.
 *
 * @example
 * ```ts
 * import { scratchBytes } from "./matmul.ts";
 * scratchBytes(8) > 0; // true
 * ```
 */
export function scratchBytes(bytes: number): number {
  return (MB * KC + KC * blockColumns(bytes) + MR * NV * 4) * bytes + 64;
}

/** i32 → i64. */
function wide(f: Fn, e: Expr): Expr {
  return f.i64.extend_i32_s(e);
}

/** Packs `count` rows × kc of a strided matrix as k-major micro-panels of `panel` rows (the last zero-padded). */
function packPanels(m: Module, t: Lane, panel: number, vectorRows: boolean): number {
  // (src, rs, cs, rows, kc, dst): element (i, p) at src + i·rs + p·cs (bytes).
  return m.func(null, ["i64", "i64", "i64", "i32", "i32", "i64"], [], (f, [src, rs, cs, count, kc, dst]) => {
    const E = t.bytes;
    const i0 = f.local("i32"), p = f.local("i32"), r = f.local("i32"), rows = f.local("i32");
    const s = f.local("i64"), d = f.local("i64");
    const off = f.locals("i64", panel);
    for (let k = 0; k < panel; k++) f.set(off[k], f.i64.mul(rs, k));
    f.set(d, dst);
    f.for(i0, 0, count, panel, () => {
      f.set(rows, f.i32.min_s(panel, f.i32.sub(count, i0)));
      f.set(s, f.i64.add(src, f.i64.mul(rs, wide(f, i0))));
      f.if(
        f.i32.eq(rows, panel),
        () => {
          const scalar = () =>
            f.for(p, 0, kc, 1, () => {
              for (let k = 0; k < panel; k++) t.store(f, d, t.load(f, f.i64.add(s, off[k])), k * E);
              f.set(d, f.i64.add(d, panel * E));
              f.set(s, f.i64.add(s, cs));
            });
          // Rows adjacent in memory (unit stride across the panel): copy whole vectors.
          const vector = () =>
            f.for(p, 0, kc, 1, () => {
              for (let v = 0; v < (panel * E) / 16; v++) f.v128.store(d, f.v128.load(s, 16 * v), 16 * v);
              f.set(d, f.i64.add(d, panel * E));
              f.set(s, f.i64.add(s, cs));
            });
          if (vectorRows) f.if(f.i64.eq(rs, E), vector, scalar);
          else scalar();
        },
        () => {
          f.for(p, 0, kc, 1, () => {
            for (let k = 0; k < panel; k++) t.store(f, d, 0, k * E);
            const q = f.local("i64");
            f.set(q, s);
            f.for(r, 0, rows, 1, () => {
              t.store(f, f.i64.add(d, wide(f, f.i32.mul(r, E))), t.load(f, q));
              f.set(q, f.i64.add(q, rs));
            });
            f.set(d, f.i64.add(d, panel * E));
            f.set(s, f.i64.add(s, cs));
          });
        },
      );
    });
  });
}

/**
 * The micro-kernel: an MR × NR tile of `C (+)= Apanel · Bpanel` over kc steps, stored straight
 * into C (row stride ldc bytes) when whole, else through `tile` for the valid rows × cols.
 */
function microKernel(m: Module, t: Lane): number {
  const NR = NV * t.lanes;
  const E = t.bytes;
  const params = ["i32", "i64", "i64", "i64", "i64", "i32", "i32", "i32", "i64"] as const;
  return m.func(null, params, [], (f, [kc, pa, pb, c, ldc, rows, cols, first, tile]) => {
    const acc = f.locals("v128", MR * NV);
    const b = f.locals("v128", NV);
    const a = f.local("v128");
    const p = f.local("i32"), r = f.local("i32"), j = f.local("i32");
    const row = f.local("i64"), src = f.local("i64"), dst = f.local("i64");
    for (const x of acc) f.set(x, f.v128.xor(x, x));
    f.for(p, 0, kc, 1, () => {
      for (let v = 0; v < NV; v++) f.set(b[v], f.v128.load(pb, 16 * v));
      for (let i = 0; i < MR; i++) {
        f.set(a, t.loadSplat(f, pa, i * E));
        for (let v = 0; v < NV; v++) f.set(acc[i * NV + v], t.vmadd(f, a, b[v], acc[i * NV + v]));
      }
      f.set(pa, f.i64.add(pa, MR * E));
      f.set(pb, f.i64.add(pb, NR * E));
    });
    const whole = f.i32.and(f.i32.eq(rows, MR), f.i32.eq(cols, NR));
    f.if(whole, () => {
      f.set(row, c);
      f.if(first, () => {
        for (let i = 0; i < MR; i++) {
          for (let v = 0; v < NV; v++) f.v128.store(row, acc[i * NV + v], 16 * v);
          f.set(row, f.i64.add(row, ldc));
        }
      }, () => {
        for (let i = 0; i < MR; i++) {
          for (let v = 0; v < NV; v++) f.v128.store(row, t.vadd(f, f.v128.load(row, 16 * v), acc[i * NV + v]), 16 * v);
          f.set(row, f.i64.add(row, ldc));
        }
      });
    }, () => {
      for (let i = 0; i < MR; i++) {
        for (let v = 0; v < NV; v++) f.v128.store(tile, acc[i * NV + v], (i * NV + v) * 16);
      }
      f.set(row, c);
      f.for(r, 0, rows, 1, () => {
        f.set(src, f.i64.add(tile, wide(f, f.i32.mul(r, NR * E))));
        f.set(dst, row);
        f.for(j, 0, cols, 1, () => {
          f.if(
            first,
            () => t.store(f, dst, t.load(f, src)),
            () => t.store(f, dst, t.add(f, t.load(f, dst), t.load(f, src))),
          );
          f.set(src, f.i64.add(src, E));
          f.set(dst, f.i64.add(dst, E));
        });
        f.set(row, f.i64.add(row, ldc));
      });
    });
  });
}

/**
 * Adds `matmul_f32` and `matmul_f64` to `m`. Arguments: A, B, C base addresses; the address of
 * a table of (A, B) byte offsets per product of the batch (float64 pairs); m, n, k; A's row and
 * column strides, B's row and column strides (bytes); blocks along m and along n; the scratch
 * base and bytes per thread. C is the contiguous batch of m × n results. Job = (product, row
 * block, column block), row blocks outer.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { addMatmulKernels } from "./matmul.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * addMatmulKernels(m);
 * ```
 */
export function addMatmulKernels(m: Module): void {
  for (const t of [F32, F64]) {
    const NR = NV * t.lanes;
    const NB = blockColumns(t.bytes);
    const E = t.bytes;
    const packA = packPanels(m, t, MR, false);
    const packB = packPanels(m, t, NR, true);
    const micro = microKernel(m, t);
    kernel(m, `matmul_${t.name}`, (f, args, job, thread) => {
      const [mm, n, k, tilesM, tilesN] = [4, 5, 6, 11, 12].map(() => f.local("i32"));
      const [ars, acs, brs, bcs, ldc] = [0, 0, 0, 0, 0].map(() => f.local("i64"));
      f.set(mm, args.i32(4));
      f.set(n, args.i32(5));
      f.set(k, args.i32(6));
      f.set(ars, args.i64(7));
      f.set(acs, args.i64(8));
      f.set(brs, args.i64(9));
      f.set(bcs, args.i64(10));
      f.set(tilesM, args.i32(11));
      f.set(tilesN, args.i32(12));
      const tiles = f.local("i32"), batch = f.local("i32"), rest = f.local("i32");
      const i0 = f.local("i32"), j0 = f.local("i32"), mb = f.local("i32"), nb = f.local("i32");
      const p0 = f.local("i32"), kc = f.local("i32"), ir = f.local("i32"), jr = f.local("i32");
      const a = f.local("i64"), b = f.local("i64"), c0 = f.local("i64");
      const sA = f.local("i64"), sB = f.local("i64"), tile = f.local("i64");
      f.set(tiles, f.i32.mul(tilesM, tilesN));
      f.set(batch, f.i32.div_s(job, tiles));
      f.set(rest, f.i32.rem_s(job, tiles));
      f.set(i0, f.i32.mul(f.i32.div_s(rest, tilesN), MB));
      f.set(j0, f.i32.mul(f.i32.rem_s(rest, tilesN), NB));
      f.set(mb, f.i32.min_s(MB, f.i32.sub(mm, i0)));
      f.set(nb, f.i32.min_s(NB, f.i32.sub(n, j0)));
      const table = f.i64.add(args.i64(3), wide(f, f.i32.mul(batch, 16)));
      f.set(a, f.i64.add(args.i64(0), f.i64.trunc_f64_s(f.f64.load(table))));
      f.set(a, f.i64.add(a, f.i64.mul(wide(f, i0), ars)));
      f.set(b, f.i64.add(args.i64(1), f.i64.trunc_f64_s(f.f64.load(table, 8))));
      f.set(b, f.i64.add(b, f.i64.mul(wide(f, j0), bcs)));
      f.set(ldc, f.i64.mul(wide(f, n), E));
      // C block origin: C + ((batch·m + i0)·n + j0)·E, in 64-bit arithmetic.
      const rowIndex = f.i64.add(f.i64.mul(wide(f, batch), wide(f, mm)), wide(f, i0));
      f.set(c0, f.i64.add(args.i64(2), f.i64.add(f.i64.mul(rowIndex, ldc), wide(f, f.i32.mul(j0, E)))));
      f.set(sA, f.i64.add(args.i64(13), f.i64.mul(wide(f, thread), args.i64(14))));
      f.set(sB, f.i64.add(sA, MB * KC * E));
      f.set(tile, f.i64.add(sB, KC * NB * E));
      f.for(p0, 0, k, KC, () => {
        f.set(kc, f.i32.min_s(KC, f.i32.sub(k, p0)));
        f.push(f.call(packA, a, ars, acs, mb, kc, sA));
        f.push(f.call(packB, b, bcs, brs, nb, kc, sB));
        f.for(jr, 0, nb, NR, () => {
          f.for(ir, 0, mb, MR, () => {
            const pa = f.i64.add(sA, wide(f, f.i32.mul(f.i32.mul(ir, kc), E)));
            const pb = f.i64.add(sB, wide(f, f.i32.mul(f.i32.mul(jr, kc), E)));
            const cc = f.i64.add(c0, f.i64.add(f.i64.mul(wide(f, ir), ldc), wide(f, f.i32.mul(jr, E))));
            const rows = f.i32.min_s(MR, f.i32.sub(mb, ir));
            const cols = f.i32.min_s(NR, f.i32.sub(nb, jr));
            f.push(f.call(micro, kc, pa, pb, cc, ldc, rows, cols, f.i32.eqz(p0), tile));
          });
        });
        f.set(a, f.i64.add(a, f.i64.mul(acs, KC)));
        f.set(b, f.i64.add(b, f.i64.mul(brs, KC)));
      });
    });
  }
}

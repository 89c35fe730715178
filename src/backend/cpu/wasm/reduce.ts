/**
 * Reduction and softmax kernels (float32 and float64 input, float64 accumulation).
 *
 * - `rows_{t}_{op}`: folds contiguous rows, a fixed chunk of `CH` elements per job; each job
 *   writes one float64 partial (the caller folds a row's partials in chunk order).
 * - `cols_{t}_{op}`: folds along a strided axis into rows of contiguous float64 accumulators
 *   (the reduced axis outside a contiguous one, as in summing a batch of rows); a job takes a
 *   fixed band of `JC` input rows and up to `IC` columns and writes its own partial row.
 * - `softmax_{t}`: softmax or log-softmax of contiguous rows: the exponentials in t's own
 *   precision (float32 on float32 lanes, `vmath32.ts`), their sum and everything after it in
 *   float64.
 *
 * Within a job the order of operations is fixed (four two-lane accumulators over blocks of
 * eight, combined pairwise, then the tail in order), and the chunking depends on the shape
 * alone, so results do not depend on the number of threads.
 *
 * @module
 */

import type { Emit, Expr, Fn, Local, Module } from "./asm.ts";
import { F32, F64, kernel, type Lane, loadAsF64, loadWide, storeFromF64, storeWide, widenF32x4 } from "./kernel.ts";
import { expF64x2, logF64x2 } from "./vmath.ts";
import { expDifferenceF32x4 } from "./vmath32.ts";

/** Elements of a row one job folds. */
export const CH = 16384;
/** Input rows of one column-fold job. */
export const JC = 512;
/** Columns of one column-fold job. */
export const IC = 2048;

/** A fold: identity and the float64 operation on lanes and on scalars. */
interface Fold {
  readonly name: "sum" | "prod" | "max" | "min";
  readonly init: number;
  vec(f: Fn, a: Expr, b: Expr): Emit;
  scalar(f: Fn, a: Expr, b: Expr): Emit;
}

const FOLDS: Fold[] = [
  { name: "sum", init: 0, vec: (f, a, b) => f.f64x2.add(a, b), scalar: (f, a, b) => f.f64.add(a, b) },
  { name: "prod", init: 1, vec: (f, a, b) => f.f64x2.mul(a, b), scalar: (f, a, b) => f.f64.mul(a, b) },
  // wasm's max and min return NaN when either operand is NaN, as the TypeScript folds do.
  { name: "max", init: -Infinity, vec: (f, a, b) => f.f64x2.max(a, b), scalar: (f, a, b) => f.f64.max(a, b) },
  { name: "min", init: Infinity, vec: (f, a, b) => f.f64x2.min(a, b), scalar: (f, a, b) => f.f64.min(a, b) },
];

/** i32 → i64. */
function wide(f: Fn, e: Expr): Expr {
  return f.i64.extend_i32_s(e);
}

/** `(ptr, len) → f64`: the fold of `len` contiguous elements of `t` at `ptr`, in a fixed order. */
function foldRow(m: Module, t: Lane, fold: Fold): number {
  return m.func(null, ["i64", "i32"], ["f64"], (f, [ptr, len]) => {
    const E = t.bytes;
    const acc = f.locals("v128", 4);
    const i = f.local("i32"), r = f.local("f64"), p = f.local("i64");
    for (const a of acc) f.set(a, f.f64x2.splat(fold.init));
    f.set(p, ptr);
    // Blocks of eight elements: eight float64 lanes in four accumulators.
    f.for(i, 0, f.i32.sub(len, 7), 8, () => {
      const lanes = t === F64
        ? [0, 16, 32, 48].flatMap((o) => loadWide(f, t, p, o))
        : [0, 16].flatMap((o) => loadWide(f, t, p, o));
      lanes.forEach((v, j) => f.set(acc[j], fold.vec(f, acc[j], v)));
      f.set(p, f.i64.add(p, 8 * E));
    });
    f.set(acc[0], fold.vec(f, fold.vec(f, acc[0], acc[1]), fold.vec(f, acc[2], acc[3])));
    f.set(r, fold.scalar(f, f.f64x2.extract_lane(acc[0], 0), f.f64x2.extract_lane(acc[0], 1)));
    f.set(i, f.i32.and(len, -8));
    f.for(i, i, len, 1, () => {
      f.set(r, fold.scalar(f, r, loadAsF64(f, t, p)));
      f.set(p, f.i64.add(p, E));
    });
    f.push(r);
  });
}

/** The row kernel: job = row·chunks + chunk; partials[job] = fold of that chunk. */
function addRows(m: Module, t: Lane, fold: Fold): void {
  const row = foldRow(m, t, fold);
  // args: x, row stride (bytes), n, chunks per row, partials (float64)
  kernel(m, `rows_${t.name}_${fold.name}`, (f, args, job) => {
    const n = f.local("i32"), chunks = f.local("i32"), c = f.local("i32");
    f.set(n, args.i32(2));
    f.set(chunks, args.i32(3));
    f.set(c, f.i32.rem_s(job, chunks));
    const ptr = f.i64.add(
      f.i64.add(args.i64(0), f.i64.mul(wide(f, f.i32.div_s(job, chunks)), args.i64(1))),
      f.i64.mul(wide(f, c), CH * t.bytes),
    );
    const len = f.i32.min_s(CH, f.i32.sub(n, f.i32.mul(c, CH)));
    f.f64.store(f.i64.add(args.i64(4), wide(f, f.i32.mul(job, 8))), f.call(row, ptr, len));
  });
}

/**
 * The column kernel: job = (band·outer + o)·colChunks + colChunk. Its partial row (float64, at
 * `partials + ((band·outer + o)·inner + colChunk·IC)·8`) folds input rows
 * `[band·JC, band·JC + JC)` of block o over columns `[colChunk·IC, colChunk·IC + IC)`.
 */
function addCols(m: Module, t: Lane, fold: Fold): void {
  const E = t.bytes;
  // args: x, outer stride, row stride (bytes; columns are contiguous), n, outer, inner, colChunks, partials
  kernel(m, `cols_${t.name}_${fold.name}`, (f, args, job) => {
    const [n, inner, chunks, band, o, cc, cols, j, jEnd, i] = f.locals("i32", 10);
    const acc = f.local("i64"), src = f.local("i64"), a = f.local("i64"), rs = f.local("i64");
    f.set(n, args.i32(3));
    f.set(inner, args.i32(5));
    f.set(chunks, args.i32(6));
    f.set(rs, args.i64(2));
    f.set(cc, f.i32.rem_s(job, chunks));
    f.set(o, f.i32.rem_s(f.i32.div_s(job, chunks), args.i32(4)));
    f.set(band, f.i32.div_s(f.i32.div_s(job, chunks), args.i32(4)));
    f.set(cols, f.i32.min_s(IC, f.i32.sub(inner, f.i32.mul(cc, IC))));
    const rowOfPartials = f.i32.add(f.i32.mul(band, args.i32(4)), o);
    f.set(
      acc,
      f.i64.add(
        args.i64(7),
        f.i64.mul(f.i64.add(f.i64.mul(wide(f, rowOfPartials), wide(f, inner)), wide(f, f.i32.mul(cc, IC))), 8),
      ),
    );
    f.for(i, 0, cols, 1, () => f.f64.store(f.i64.add(acc, wide(f, f.i32.mul(i, 8))), fold.init));
    f.set(j, f.i32.mul(band, JC));
    f.set(jEnd, f.i32.min_s(n, f.i32.add(j, JC)));
    const base = f.i64.add(f.i64.add(args.i64(0), f.i64.mul(wide(f, o), args.i64(1))), wide(f, f.i32.mul(cc, IC * E)));
    f.for(j, j, jEnd, 1, () => {
      f.set(src, f.i64.add(base, f.i64.mul(wide(f, j), rs)));
      f.set(a, acc);
      // Four elements (float32) or two (float64) per step: 16 bytes of input.
      const step = 16 / E;
      f.for(i, 0, f.i32.sub(cols, step - 1), step, () => {
        loadWide(f, t, src, 0).forEach((v, h) => f.v128.store(a, fold.vec(f, f.v128.load(a, 16 * h), v), 16 * h));
        f.set(src, f.i64.add(src, 16));
        f.set(a, f.i64.add(a, 16 * (step / 2)));
      });
      f.for(i, f.i32.and(cols, -step), cols, 1, () => {
        f.f64.store(a, fold.scalar(f, f.f64.load(a), loadAsF64(f, t, src)));
        f.set(src, f.i64.add(src, E));
        f.set(a, f.i64.add(a, 8));
      });
    });
  });
}

/** Lane 0 of `op` applied to a splat of the scalar `x` (the vector functions on one number). */
function scalarOf(f: Fn, op: (f: Fn, x: Expr, out: Local) => void, x: Expr): Expr {
  const y = f.local("v128");
  op(f, f.f64x2.splat(x), y);
  return f.f64x2.extract_lane(y, 0);
}

/**
 * Softmax of contiguous rows: job j takes rows `[j·rowsPerJob, …)`; each row's exponentials are
 * kept in the thread's scratch row (as elements of t) between the sum and the scaling.
 */
function addSoftmax(m: Module, t: Lane): void {
  const E = t.bytes;
  const max = foldRow(m, t, FOLDS[2]);
  // args: x, row stride (bytes), n, out (contiguous rows of t), rows, rowsPerJob, log (0/1), scratch, scratch bytes per thread
  kernel(m, `softmax_${t.name}`, (f, args, job, thread) => {
    const [n, row, rowEnd, i] = f.locals("i32", 4);
    const [x, out, e, p, q] = f.locals("i64", 5);
    const [mx, s, shift] = f.locals("f64", 3);
    const acc = f.locals("v128", 2);
    const [y, m4] = f.locals("v128", 2);
    f.set(n, args.i32(2));
    f.set(e, f.i64.add(args.i64(7), f.i64.mul(wide(f, thread), args.i64(8))));
    f.set(row, f.i32.mul(job, args.i32(5)));
    f.set(rowEnd, f.i32.min_s(args.i32(4), f.i32.add(row, args.i32(5))));
    f.for(row, row, rowEnd, 1, () => {
      f.set(x, f.i64.add(args.i64(0), f.i64.mul(wide(f, row), args.i64(1))));
      f.set(out, f.i64.add(args.i64(3), f.i64.mul(wide(f, row), wide(f, f.i32.mul(n, E)))));
      f.set(mx, f.call(max, x, n));
      // e = exp(x − max) into the scratch row, summed in two float64 accumulators.
      for (const a of acc) f.set(a, f.f64x2.splat(0));
      f.set(p, x);
      f.set(q, e);
      const step = 16 / E;
      if (t === F32) f.set(m4, f.f32x4.splat(f.f32.demote_f64(mx))); // exact: the largest of the row's float32s
      f.for(i, 0, f.i32.sub(n, step - 1), step, () => {
        if (t === F32) {
          expDifferenceF32x4(f, f.v128.load(p), m4, y);
          f.v128.store(q, y);
          widenF32x4(f, y).forEach((v, h) => f.set(acc[h], f.f64x2.add(acc[h], v)));
        } else {
          expF64x2(f, f.f64x2.sub(f.v128.load(p), f.f64x2.splat(mx)), y);
          f.v128.store(q, y);
          f.set(acc[0], f.f64x2.add(acc[0], y));
        }
        f.set(p, f.i64.add(p, 16));
        f.set(q, f.i64.add(q, 16));
      });
      f.set(acc[0], f.f64x2.add(acc[0], acc[1]));
      f.set(s, f.f64.add(f.f64x2.extract_lane(acc[0], 0), f.f64x2.extract_lane(acc[0], 1)));
      f.for(i, f.i32.and(n, -step), n, 1, () => {
        if (t === F32) {
          expDifferenceF32x4(f, f.v128.load32_splat(p), m4, y);
          f.f32.store(q, f.f32x4.extract_lane(y, 0));
        } else f.f64.store(q, scalarOf(f, expF64x2, f.f64.sub(f.f64.load(p), mx)));
        f.set(s, f.f64.add(s, loadAsF64(f, t, q)));
        f.set(p, f.i64.add(p, E));
        f.set(q, f.i64.add(q, E));
      });
      f.set(p, x);
      f.set(q, e);
      const o = f.local("i64");
      f.set(o, out);
      // out = g(x, e) for the scaled exponentials or the shifted logits; `lanes` runs in the loop.
      const finish = (lanes: () => Expr[], scalar: (x: Expr, e: Expr) => Expr) => {
        f.for(i, 0, f.i32.sub(n, step - 1), step, () => {
          storeWide(f, t, o, lanes());
          f.set(p, f.i64.add(p, 16));
          f.set(q, f.i64.add(q, 16));
          f.set(o, f.i64.add(o, 16));
        });
        f.for(i, f.i32.and(n, -step), n, 1, () => {
          storeFromF64(f, t, o, scalar(loadAsF64(f, t, p), loadAsF64(f, t, q)));
          f.set(p, f.i64.add(p, E));
          f.set(q, f.i64.add(q, E));
          f.set(o, f.i64.add(o, E));
        });
      };
      f.if(args.i32(6), () => {
        // log-softmax: x − max − log Σ
        f.set(shift, f.f64.add(mx, scalarOf(f, logF64x2, s)));
        const v = f.local("v128");
        f.set(v, f.f64x2.splat(shift));
        finish(() => loadWide(f, t, p, 0).map((x) => f.f64x2.sub(x, v)), (x) => f.f64.sub(x, shift));
      }, () => {
        f.set(s, f.f64.div(1, s));
        const v = f.local("v128");
        f.set(v, f.f64x2.splat(s));
        finish(() => loadWide(f, t, q, 0).map((e) => f.f64x2.mul(e, v)), (_, e) => f.f64.mul(e, s));
      });
    });
  });
}

/**
 * Adds the reduction and softmax kernels to `m`.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { addReduceKernels } from "./reduce.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * addReduceKernels(m);
 * ```
 */
export function addReduceKernels(m: Module): void {
  for (const t of [F32, F64]) {
    for (const fold of FOLDS) {
      addRows(m, t, fold);
      addCols(m, t, fold);
    }
    addSoftmax(m, t);
  }
}

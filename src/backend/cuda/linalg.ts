/**
 * Dense linear algebra of the CUDA backend: batched Cholesky, triangular solves, LU with partial
 * pivoting, solves from an LU factorisation and thin Householder QR, one kernel launch per call
 * (kernels/linalg.cu), whatever the batch size.
 *
 * - One thread block per matrix. The kernels read their operands straight from the strided views
 *   (transposed, broadcast or reversed operands need no copy; only a dtype conversion, or a batch
 *   that does not fit eight collapsed axes, makes a contiguous copy first).
 * - The working matrix lives in shared memory when it fits the device's opt-in limit (227 KiB on
 *   an H100: order ≤ 168 in double precision), else in a global workspace of float64 (the float64
 *   output itself for Cholesky and LU). Cholesky of order ≤ 128 keeps the matrix in registers
 *   (for order ≤ 64 with a lower-latency step body when the batch fits one wave of blocks).
 * - Arithmetic is in double precision for float32 too, as on the CPU backend, whose results these
 *   match: LU (factors, pivots, info) bit for bit, the others to rounding.
 * - Status arrays (`info`, `pivots`) are written by the kernels; nothing is read back to the host.
 *
 * @module
 */

import type { DeviceBuffer, LinalgPrimitives, TriangularSolveOptions, View } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { DTypeError, ShapeError } from "../../tensor/errors.ts";
import type { CudaBuffer } from "./backend.ts";
import { coalesce } from "../../tensor/shape.ts";
import type { KernelParams } from "./params.ts";

/**
 * A strided operand given by raw device address (element strides).
 *
 * @example
 * ```ts
 * import type { LinalgOperand } from "./linalg.ts";
 * const a: LinalgOperand = { ptr: 0x7f0000000000, dtype: "float32", shape: [4, 4], strides: [4, 1] };
 * ```
 */
export interface LinalgOperand {
  /** Address of the view's first element. */
  readonly ptr: number;
  /** Element type. */
  readonly dtype: DType;
  /** Extents. */
  readonly shape: readonly number[];
  /** Element strides. */
  readonly strides: readonly number[];
}

/**
 * What {@link CudaLinalg} needs from its backend (the backend passes closures over its private
 * state; nothing here is public API of the backend).
 *
 * @example
 * ```ts
 * import type { CudaLinalgHost } from "./linalg.ts";
 * // const host: CudaLinalgHost = { alloc, free, operand, contiguous, kernel, launch, params, memset0, maxSharedBytes };
 * ```
 */
export interface CudaLinalgHost {
  /** A new (uninitialised) device buffer. */
  alloc(size: number, dtype: DType): CudaBuffer;
  /** Returns a buffer to the allocator (stream-ordered: queued work still sees it). */
  free(buffer: CudaBuffer): void;
  /** `view` as an operand of `dtype`: itself, or a converted contiguous copy (`temp`, to free). */
  operand(view: View, dtype: DType, op: string): { raw: LinalgOperand; temp: CudaBuffer | null };
  /** A contiguous copy of `raw` (`temp`, to free). */
  contiguous(raw: LinalgOperand): { raw: LinalgOperand; temp: CudaBuffer };
  /** The function handle of a kernel of kernels/linalg.cu. */
  kernel(name: string): Deno.PointerValue;
  /** Launches on the backend's stream with the current parameters and `shared` bytes of dynamic shared memory. */
  launch(fn: Deno.PointerValue, blocks: number, threads: number, shared: number): void;
  /** The parameter block the next launch passes. */
  readonly params: KernelParams;
  /** Zeroes `bytes` bytes at `ptr` (queued). */
  memset0(ptr: number, bytes: number): void;
  /** Largest dynamic shared memory a block may ask for (bytes). */
  readonly maxSharedBytes: number;
  /** Streaming multiprocessors of the device. */
  readonly multiprocessors: number;
}

const SFX: Readonly<Record<string, string>> = { float32: "f32", float64: "f64" };
const MAX_BATCH_DIMS = 8;
const MAX_BLOCKS = 2 ** 31 - 1;
const F64 = 8;

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

function floatSuffix(op: string, dtype: DType): string {
  const s = SFX[dtype];
  if (!s) throw new DTypeError(op, `dense linear algebra needs float32 or float64, got ${dtype}`);
  return s;
}

function matrixShape(op: string, v: View): { batch: number[]; rows: number; cols: number } {
  const r = v.shape.length;
  if (r < 2) throw new ShapeError(op, `needs a matrix operand, got rank ${r}`);
  return { batch: v.shape.slice(0, r - 2), rows: v.shape[r - 2], cols: v.shape[r - 1] };
}

/**
 * The batch axes of several operands (each given by its batch strides) merged where every operand
 * allows it, size-1 axes dropped; at least one axis. Null when more than eight remain.
 */
function batchLayout(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } | null {
  const merged = coalesce(shape, strides);
  return merged.shape.length > MAX_BATCH_DIMS ? null : merged;
}

/** Warps of a block for matrices of order n: between lo and hi, about n/per. */
function warpsFor(n: number, per: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.ceil(n / per)));
}

/**
 * The CUDA implementation of {@linkcode LinalgPrimitives}; {@link CudaBackend} exposes one as
 * `linalg`.
 *
 * @example
 * ```ts
 * import { createCudaBackend } from "./backend.ts";
 * // const cuda = await createCudaBackend();
 * // const a = { buffer: cuda.fromHost([4, 2, 2, 5], "float64"), shape: [2, 2], strides: [2, 1], offset: 0 };
 * // const { factor, info } = cuda.linalg.cholesky(a, "float64");
 * // cuda.toHost({ buffer: factor, shape: [2, 2], strides: [2, 1], offset: 0 }); // [2, 0, 1, 2]
 * ```
 */
export class CudaLinalg implements LinalgPrimitives {
  readonly #h: CudaLinalgHost;

  /** Creates the primitives over a backend's internals. */
  constructor(host: CudaLinalgHost) {
    this.#h = host;
  }

  /** Operands of one launch with their batch axes laid out together (copies only when they must be). */
  #prepare(
    op: string,
    views: readonly View[],
    dtypes: readonly DType[],
    batch: readonly number[],
  ): { ops: LinalgOperand[]; bshape: number[]; bstrides: number[][]; temps: CudaBuffer[] } {
    const temps: CudaBuffer[] = [];
    const ops: LinalgOperand[] = views.map((v, i) => {
      const { raw, temp } = this.#h.operand(v, dtypes[i], op);
      if (temp) temps.push(temp);
      return raw;
    });
    const nb = batch.length;
    let layout = batchLayout(batch, ops.map((o) => o.strides.slice(0, nb)));
    if (!layout) {
      for (let i = 0; i < ops.length; i++) {
        const c = this.#h.contiguous(ops[i]);
        temps.push(c.temp);
        ops[i] = c.raw;
      }
      layout = batchLayout(batch, ops.map((o) => o.strides.slice(0, nb)))!;
    }
    if (numel(batch) > MAX_BLOCKS) throw new ShapeError(op, `a batch of ${numel(batch)} matrices is too large`);
    return { ops, bshape: layout.shape, bstrides: layout.strides, temps };
  }

  #release(temps: readonly CudaBuffer[]): void {
    for (const t of temps) this.#h.free(t);
  }

  /** Batched Cholesky; see {@linkcode LinalgPrimitives.cholesky}. */
  cholesky(a: View, dtype: DType): { factor: DeviceBuffer; info: DeviceBuffer } {
    const op = "cholesky";
    const sfx = floatSuffix(op, dtype);
    const { batch, rows: n, cols } = matrixShape(op, a);
    if (cols !== n) throw new ShapeError(op, `needs square matrices, got ${n} × ${cols}`);
    const count = numel(batch);
    const h = this.#h;
    const factor = h.alloc(count * n * n, dtype);
    const info = h.alloc(count, "int32");
    if (count === 0) return { factor, info };
    if (n === 0) {
      h.memset0(info.ptr, count * 4);
      return { factor, info };
    }
    const { ops, bshape, bstrides, temps } = this.#prepare(op, [a], [dtype], batch);
    const A = ops[0];
    const r = A.shape.length;
    let name: string, threads: number, shared = 2 * n * F64, ws = 0;
    // A batch that fits one wave (two blocks an SM) takes the low-latency step body ("h"),
    // larger batches the one with fewer instructions (see kernels/linalg.cu).
    const hoist = count <= 2 * h.multiprocessors ? "h" : "";
    if (n <= 32) [name, threads] = [`cholesky_r32${hoist}`, 128];
    else if (n <= 64) [name, threads] = [`cholesky_r64${hoist}`, 256];
    else if (n <= 128) [name, threads] = ["cholesky_r128", 512];
    else {
      [name, threads] = ["cholesky", 512];
      const need = shared + n * (n | 1) * F64;
      if (need <= h.maxSharedBytes) shared = need;
      else if (dtype === "float64") ws = factor.ptr;
      else {
        const t = h.alloc(count * n * n, "float64");
        temps.push(t);
        ws = t.ptr;
      }
    }
    const p = h.params;
    p.ptr(0, A.ptr);
    p.shape8(1, bshape);
    p.strides8(2, bstrides[0]);
    p.i64(3, A.strides[r - 2]);
    p.i64(4, A.strides[r - 1]);
    p.ptr(5, factor.ptr);
    p.ptr(6, info.ptr);
    p.ptr(7, ws);
    p.u32s(8, [n, 0, 0, 0, count, n]);
    h.launch(h.kernel(`${name}_${sfx}`), count, threads, shared);
    this.#release(temps);
    return { factor, info };
  }

  /** Batched triangular solve; see {@linkcode LinalgPrimitives.triangularSolve}. */
  triangularSolve(a: View, b: View, options: TriangularSolveOptions, dtype: DType): DeviceBuffer {
    const op = "triangularSolve";
    const sfx = floatSuffix(op, dtype);
    const { rows: n, cols: na } = matrixShape(op, a);
    const mb = matrixShape(op, b);
    if (na !== n || mb.rows !== n || a.shape.length !== b.shape.length) {
      throw new ShapeError(op, `needs a square matrix and n rows of right-hand sides, got ${n} × ${na} and ${mb.rows}`);
    }
    const k = mb.cols;
    const count = numel(mb.batch);
    const h = this.#h;
    const out = h.alloc(count * n * k, dtype);
    if (count * n * k === 0) return out;
    const { ops, bshape, bstrides, temps } = this.#prepare(op, [a, b], [dtype, dtype], mb.batch);
    const [A, B] = ops;
    const r = A.shape.length;
    // op(a) is a read with its strides swapped; a lower matrix transposed is upper.
    const ars = options.transpose ? A.strides[r - 1] : A.strides[r - 2];
    const acs = options.transpose ? A.strides[r - 2] : A.strides[r - 1];
    const upper = options.lower === options.transpose;
    const flags = (upper ? 1 : 0) | (options.unitDiagonal ? 2 : 0);
    const plan = this.#solvePlan(n, k, 0, count, temps);
    const p = h.params;
    p.ptr(0, A.ptr);
    p.shape8(1, bshape);
    p.strides8(2, bstrides[0]);
    p.i64(3, ars);
    p.i64(4, acs);
    p.ptr(5, B.ptr);
    p.strides8(6, bstrides[1]);
    p.i64(7, B.strides[r - 2]);
    p.i64(8, B.strides[r - 1]);
    p.ptr(9, out.ptr);
    p.ptr(10, plan.ws);
    p.u32s(11, [n, k, plan.kc, flags, count, n]);
    h.launch(h.kernel(`trsm_${sfx}`), count, plan.threads, plan.shared);
    this.#release(temps);
    return out;
  }

  /**
   * Shared memory or workspace for a solve of order n with k right-hand sides: the matrix and as
   * many right-hand-side columns as fit (the kernel loops over column chunks), after `head` bytes.
   */
  #solvePlan(
    n: number,
    k: number,
    head: number,
    count: number,
    temps: CudaBuffer[],
  ): { ws: number; kc: number; shared: number; threads: number } {
    const h = this.#h;
    const ld = n | 1;
    const fixed = head + n * ld * F64;
    const kc = Math.min(k, Math.floor((h.maxSharedBytes - fixed) / (n * F64)));
    const threads = n * Math.max(n, kc) >= 8192 ? 512 : n * Math.max(n, kc) >= 1024 ? 256 : 128;
    if (kc >= 1) return { ws: 0, kc, shared: fixed + n * kc * F64, threads };
    const t = h.alloc(count * (n * n + n * k), "float64");
    temps.push(t);
    return { ws: t.ptr, kc: k, shared: head, threads: 512 };
  }

  /** Batched LU with partial pivoting; see {@linkcode LinalgPrimitives.lu}. */
  lu(a: View, dtype: DType): { lu: DeviceBuffer; pivots: DeviceBuffer; info: DeviceBuffer } {
    const op = "lu";
    const sfx = floatSuffix(op, dtype);
    const { batch, rows: n, cols } = matrixShape(op, a);
    if (cols !== n) throw new ShapeError(op, `needs square matrices, got ${n} × ${cols}`);
    const count = numel(batch);
    const h = this.#h;
    const lu = h.alloc(count * n * n, dtype);
    const pivots = h.alloc(count * n, "int32");
    const info = h.alloc(count, "int32");
    if (count === 0) return { lu, pivots, info };
    if (n === 0) {
      h.memset0(info.ptr, count * 4);
      return { lu, pivots, info };
    }
    const { ops, bshape, bstrides, temps } = this.#prepare(op, [a], [dtype], batch);
    const A = ops[0];
    const r = A.shape.length;
    let shared = n * (n | 1) * F64, ws = 0;
    if (shared > h.maxSharedBytes) {
      shared = 0;
      if (dtype === "float64") ws = lu.ptr;
      else {
        const t = h.alloc(count * n * n, "float64");
        temps.push(t);
        ws = t.ptr;
      }
    }
    const p = h.params;
    p.ptr(0, A.ptr);
    p.shape8(1, bshape);
    p.strides8(2, bstrides[0]);
    p.i64(3, A.strides[r - 2]);
    p.i64(4, A.strides[r - 1]);
    p.ptr(5, lu.ptr);
    p.ptr(6, pivots.ptr);
    p.ptr(7, info.ptr);
    p.ptr(8, ws);
    p.u32s(9, [n, 0, 0, 0, count, n]);
    h.launch(h.kernel(`lu_${sfx}`), count, 32 * warpsFor(n, 8, 2, 16), shared);
    this.#release(temps);
    return { lu, pivots, info };
  }

  /** Batched solve from an LU factorisation; see {@linkcode LinalgPrimitives.luSolve}. */
  luSolve(lu: View, pivots: View, b: View, transpose: boolean, dtype: DType): DeviceBuffer {
    const op = "luSolve";
    const sfx = floatSuffix(op, dtype);
    const { rows: n, cols: nl } = matrixShape(op, lu);
    const mb = matrixShape(op, b);
    const pr = pivots.shape.length;
    if (
      nl !== n || mb.rows !== n || lu.shape.length !== b.shape.length || pr !== b.shape.length - 1 ||
      pivots.shape[pr - 1] !== n
    ) {
      throw new ShapeError(
        op,
        `expected [..., ${n}, ${n}] factors, [..., ${n}] pivots and [..., ${n}, k] right-hand sides`,
      );
    }
    const k = mb.cols;
    const count = numel(mb.batch);
    const h = this.#h;
    const out = h.alloc(count * n * k, dtype);
    if (count * n * k === 0) return out;
    const { ops, bshape, bstrides, temps } = this.#prepare(op, [lu, pivots, b], [dtype, "int32", dtype], mb.batch);
    const [L, P, B] = ops;
    const r = L.shape.length;
    const head = Math.ceil((n * 4) / 16) * 16;
    const plan = this.#solvePlan(n, k, head, count, temps);
    const p = h.params;
    p.ptr(0, L.ptr);
    p.shape8(1, bshape);
    p.strides8(2, bstrides[0]);
    p.i64(3, L.strides[r - 2]);
    p.i64(4, L.strides[r - 1]);
    p.ptr(5, P.ptr);
    p.strides8(6, bstrides[1]);
    p.i64(7, P.strides[pr - 1]);
    p.ptr(8, B.ptr);
    p.strides8(9, bstrides[2]);
    p.i64(10, B.strides[r - 2]);
    p.i64(11, B.strides[r - 1]);
    p.ptr(12, out.ptr);
    p.ptr(13, plan.ws);
    p.u32s(14, [n, k, plan.kc, transpose ? 1 : 0, count, n]);
    h.launch(h.kernel(`lu_solve_${sfx}`), count, plan.threads, plan.shared);
    this.#release(temps);
    return out;
  }

  /** Batched thin QR; see {@linkcode LinalgPrimitives.qr}. */
  qr(a: View, dtype: DType): { q: DeviceBuffer; r: DeviceBuffer } {
    const op = "qr";
    const sfx = floatSuffix(op, dtype);
    const { batch, rows: m, cols: n } = matrixShape(op, a);
    if (m < n) throw new ShapeError(op, `needs at least as many rows as columns, got ${m} × ${n}`);
    const count = numel(batch);
    const h = this.#h;
    const q = h.alloc(count * m * n, dtype);
    const r = h.alloc(count * n * n, dtype);
    if (count === 0 || n === 0) return { q, r };
    const { ops, bshape, bstrides, temps } = this.#prepare(op, [a], [dtype], batch);
    const A = ops[0];
    const rank = A.shape.length;
    let shared = (3 * n + m * n) * F64, ws = 0;
    if (shared > h.maxSharedBytes) {
      shared = 3 * n * F64;
      const t = h.alloc(count * m * n, "float64");
      temps.push(t);
      ws = t.ptr;
    }
    const p = h.params;
    p.ptr(0, A.ptr);
    p.shape8(1, bshape);
    p.strides8(2, bstrides[0]);
    p.i64(3, A.strides[rank - 2]);
    p.i64(4, A.strides[rank - 1]);
    p.ptr(5, q.ptr);
    p.ptr(6, r.ptr);
    p.ptr(7, ws);
    p.u32s(8, [n, 0, 0, 0, count, m]);
    h.launch(h.kernel(`qr_${sfx}`), count, 32 * warpsFor(n, 1, 2, 16), shared);
    this.#release(temps);
    return { q, r };
  }
}

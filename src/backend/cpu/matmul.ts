/**
 * Dense matrix product on typed arrays: the CPU backend's `matmul`.
 *
 * {@linkcode matmulBatch} runs a batch of products on the WebAssembly SIMD kernel
 * (`wasm/matmul.ts`: packed panels, a 6-row register-tiled micro-kernel with fused
 * multiply-adds, every thread working on its own blocks of the output) when the arrays live in
 * the heap and the products are not tiny or skinny. Everything else — products with m, n or k
 * of 1, a few thousand multiply-adds, arrays outside the heap — runs {@linkcode matmulKernel},
 * TypeScript on typed arrays:
 *
 * Large products there use the Goto/BLIS scheme too: panels of B (kc × nc) and blocks of A (mc ×
 * kc) are packed into contiguous float64 scratch, so that a fully unrolled 4 × 4
 * register-blocked micro-kernel reads both operands at unit stride and keeps its sixteen
 * accumulators in local variables. Packing into float64 keeps the micro-kernel monomorphic (V8
 * compiles it for one array type) and removes the float32 → float64 conversion from the inner
 * loop; V8 computes in doubles anyway, so float32 inputs are accumulated in double precision
 * within each kc block. Small products and vector products (m, n or k equal to 1) skip packing
 * and run a plain loop that also accumulates in doubles.
 *
 * @module
 */

import { BLAS_COLS, BLAS_ROWS } from "./blas.ts";
import { heapAddress, heapAlloc, heapFree, heapTemp } from "./heap.ts";
import { BLAS_KERNEL, hasKernel, MAX_JOBS, runKernel, threadCount } from "./threads.ts";
import { blockColumns, MB, scratchBytes } from "./wasm/matmul.ts";

/** Element arrays the kernel reads and writes (all three arguments share one type). */
type FloatArray = Float32Array | Float64Array;

/** Lines of a packed micro-panel (rows of A, columns of B): the micro-tile is 4 × 4. */
const PANEL = 4;
/** Rows of the micro-tile. */
const MR = PANEL;
/** Columns of the micro-tile. */
const NR = PANEL;
/** Depth of a packed block (a 4-wide micro-panel of it is 8 KiB of float64, resident in L1). */
const KC = 256;
/** Rows of a packed block of A (MC × KC float64 = 256 KiB, resident in L2). */
const MC = 128;
/** Columns of a packed panel of B (KC × NC float64 = 4 MiB, resident in L3). */
const NC = 2048;
/** Below this many multiply-adds (m·n·k) packing does not pay for itself. */
const SMALL_WORK = 8 * 8 * 8;

const packedA = new Float64Array(MC * KC);
let packedB = new Float64Array(0);
let rowAcc = new Float64Array(0);
const tile = new Float64Array(MR * NR);

/**
 * Computes `out = A · B` for strided A (m × k) and B (k × n) into a contiguous m × n window of
 * `out`, overwriting it:
 * `out[outOffset + i*n + j] = Σ_p a[aOffset + i*aRowStride + p*aColStride] * b[bOffset + p*bRowStride + j*bColStride]`.
 * Strides may be any integers (transposed, reversed or broadcast operands need no copy). `out`
 * must not overlap `a` or `b`. With `k = 0` the result is all zeros. Sums are accumulated in
 * float64; a float32 `out` is rounded once per 256-deep block of k.
 *
 * @example
 * ```ts
 * import { matmulKernel } from "./matmul.ts";
 * const a = new Float64Array([1, 2, 3, 4, 5, 6]); // 2 × 3, row-major
 * const b = new Float64Array([1, 0, 0, 1, 1, 1]); // 3 × 2, row-major
 * const out = new Float64Array(4);
 * matmulKernel(a, 0, 3, 1, b, 0, 2, 1, out, 0, 2, 2, 3);
 * // out = [4, 5, 10, 11]
 * ```
 */
export function matmulKernel(
  a: Float32Array | Float64Array,
  aOffset: number,
  aRowStride: number,
  aColStride: number,
  b: Float32Array | Float64Array,
  bOffset: number,
  bRowStride: number,
  bColStride: number,
  out: Float32Array | Float64Array,
  outOffset: number,
  m: number,
  n: number,
  k: number,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    out.fill(0, outOffset, outOffset + m * n);
    return;
  }
  if (m === 1 || n === 1 || k === 1 || m * n * k < SMALL_WORK) {
    smallMatmul(a, aOffset, aRowStride, aColStride, b, bOffset, bRowStride, bColStride, out, outOffset, m, n, k);
    return;
  }
  blockedMatmul(a, aOffset, aRowStride, aColStride, b, bOffset, bRowStride, bColStride, out, outOffset, m, n, k);
}

/** Unpacked product for small or skinny shapes; accumulates in doubles. */
function smallMatmul(
  a: FloatArray,
  aOffset: number,
  aRowStride: number,
  aColStride: number,
  b: FloatArray,
  bOffset: number,
  bRowStride: number,
  bColStride: number,
  out: FloatArray,
  outOffset: number,
  m: number,
  n: number,
  k: number,
): void {
  if (n > 1 && Math.abs(bColStride) <= Math.abs(bRowStride)) {
    // Rows of B are the short stride: out row i = Σ_p a[i, p] · B[p, :], accumulated in a
    // float64 row so float32 outputs are rounded once.
    if (rowAcc.length < n) rowAcc = new Float64Array(n);
    const acc = rowAcc;
    for (let i = 0; i < m; i++) {
      acc.fill(0, 0, n);
      const aRow = aOffset + i * aRowStride;
      for (let p = 0; p < k; p++) {
        const av = a[aRow + p * aColStride];
        const bRow = bOffset + p * bRowStride;
        for (let j = 0; j < n; j++) acc[j] += av * b[bRow + j * bColStride];
      }
      const o = outOffset + i * n;
      for (let j = 0; j < n; j++) out[o + j] = acc[j];
    }
    return;
  }
  // Columns of B are the short stride (B transposed) or n = 1: dot products.
  for (let i = 0; i < m; i++) {
    const aRow = aOffset + i * aRowStride;
    const o = outOffset + i * n;
    for (let j = 0; j < n; j++) {
      const bCol = bOffset + j * bColStride;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[aRow + p * aColStride] * b[bCol + p * bRowStride];
      out[o + j] = s;
    }
  }
}

/** Packed, cache-blocked product (Goto/BLIS loop nest: jc → pc → ic → jr → ir). */
function blockedMatmul(
  a: FloatArray,
  aOffset: number,
  aRowStride: number,
  aColStride: number,
  b: FloatArray,
  bOffset: number,
  bRowStride: number,
  bColStride: number,
  out: FloatArray,
  outOffset: number,
  m: number,
  n: number,
  k: number,
): void {
  const ncMax = Math.min(NC, n);
  const bNeed = Math.min(KC, k) * Math.ceil(ncMax / NR) * NR;
  if (packedB.length < bNeed) packedB = new Float64Array(bNeed);
  const pa = packedA;
  const pb = packedB;
  const t = tile;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = Math.min(NC, n - j0);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = Math.min(KC, k - p0);
      const accumulate = p0 > 0;
      packPanels(b, bOffset + p0 * bRowStride + j0 * bColStride, bColStride, bRowStride, nc, kc, pb);
      for (let i0 = 0; i0 < m; i0 += MC) {
        const mc = Math.min(MC, m - i0);
        packPanels(a, aOffset + i0 * aRowStride + p0 * aColStride, aRowStride, aColStride, mc, kc, pa);
        for (let jr = 0; jr < nc; jr += NR) {
          const bi = jr * kc; // (jr / NR) * kc * NR
          const cols = Math.min(NR, nc - jr);
          for (let ir = 0; ir < mc; ir += MR) {
            microKernel4x4(kc, pa, ir * kc, pb, bi, t);
            const rows = Math.min(MR, mc - ir);
            storeTile(t, out, outOffset + (i0 + ir) * n + j0 + jr, n, rows, cols, accumulate);
          }
        }
      }
    }
  }
}

/**
 * Packs `width` lines of `depth` elements (element (i, p) at `src[base + i*ls + p*ds]`) as
 * consecutive 4-line micro-panels, each stored p-major (4 values per p), zero-padding the last
 * panel: an mc × kc block of A (lines are rows, MR of them a panel) or a kc × nc panel of B (lines
 * are columns, NR of them a panel).
 */
function packPanels(
  src: FloatArray,
  base: number,
  ls: number,
  ds: number,
  width: number,
  depth: number,
  dst: Float64Array,
) {
  let d = 0;
  for (let i0 = 0; i0 < width; i0 += PANEL) {
    const l0 = base + i0 * ls;
    if (width - i0 >= PANEL) {
      for (let p = 0; p < depth; p++) {
        const s = l0 + p * ds;
        dst[d] = src[s];
        dst[d + 1] = src[s + ls];
        dst[d + 2] = src[s + 2 * ls];
        dst[d + 3] = src[s + 3 * ls];
        d += PANEL;
      }
    } else {
      const lines = width - i0;
      for (let p = 0; p < depth; p++) {
        const s = l0 + p * ds;
        for (let ii = 0; ii < PANEL; ii++) dst[d + ii] = ii < lines ? src[s + ii * ls] : 0;
        d += PANEL;
      }
    }
  }
}

/**
 * The 4 × 4 micro-kernel: t[i*4 + j] = Σ_p A[ai + 4p + i] · B[bi + 4p + j] over kc steps, with
 * sixteen accumulators in locals (registers) and eight loads per 32 flops.
 */
function microKernel4x4(kc: number, A: Float64Array, ai: number, B: Float64Array, bi: number, t: Float64Array) {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let p = 0; p < kc; p++) {
    const a0 = A[ai], a1 = A[ai + 1], a2 = A[ai + 2], a3 = A[ai + 3];
    const b0 = B[bi], b1 = B[bi + 1], b2 = B[bi + 2], b3 = B[bi + 3];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c02 += a0 * b2;
    c03 += a0 * b3;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c12 += a1 * b2;
    c13 += a1 * b3;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c22 += a2 * b2;
    c23 += a2 * b3;
    c30 += a3 * b0;
    c31 += a3 * b1;
    c32 += a3 * b2;
    c33 += a3 * b3;
    ai += MR;
    bi += NR;
  }
  t[0] = c00;
  t[1] = c01;
  t[2] = c02;
  t[3] = c03;
  t[4] = c10;
  t[5] = c11;
  t[6] = c12;
  t[7] = c13;
  t[8] = c20;
  t[9] = c21;
  t[10] = c22;
  t[11] = c23;
  t[12] = c30;
  t[13] = c31;
  t[14] = c32;
  t[15] = c33;
}

/** Writes (or adds, for later kc blocks) the valid rows × cols corner of a micro-tile to `out`. */
function storeTile(
  t: Float64Array,
  out: FloatArray,
  o: number,
  n: number,
  rows: number,
  cols: number,
  accumulate: boolean,
): void {
  for (let ii = 0; ii < rows; ii++) {
    const r = o + ii * n;
    const s = ii * NR;
    if (accumulate) {
      for (let jj = 0; jj < cols; jj++) out[r + jj] += t[s + jj];
    } else {
      for (let jj = 0; jj < cols; jj++) out[r + jj] = t[s + jj];
    }
  }
}

/** Below this many multiply-adds per product the TypeScript kernel beats packing for SIMD. */
const SIMD_WORK = 16 * 16 * 16;
/** Below this many multiply-adds per product the WebAssembly kernel is used even with OpenBLAS. */
const BLAS_WORK = 32 * 32 * 32;
/** Below this many multiply-adds in all the call stays on one thread. */
const PARALLEL_WORK = 1 << 21;

/** Per-thread packing scratch of each element size, in the heap (grown with the thread count). */
const scratch = new Map<number, Float64Array>();

function scratchFor(bytes: number, threads: number): Float64Array {
  const need = (scratchBytes(bytes) * threads) / 8;
  let s = scratch.get(bytes);
  if (!s || s.length < need) {
    if (s) heapFree(s);
    s = heapAlloc(Float64Array, need, false);
    scratch.set(bytes, s);
  }
  return s;
}

/**
 * A batch of products `out[t] = A_t · B_t` (t < `aOffsets.length`), each m × n, written
 * contiguously into `out` from index 0: `A_t` is the m × k matrix at element offset
 * `aOffsets[t]` of `a` with row and column strides `ars`, `acs` (likewise `B_t` of `b`). Runs the
 * WebAssembly SIMD kernel on every thread when all three arrays live in the heap and the
 * products are large enough — or, for products of 32³ multiply-adds and more whose operands
 * BLAS can read, the system's OpenBLAS when it is installed (`blas.ts`; `useBlas` false keeps
 * the kernel) — else {@linkcode matmulKernel} per product. float32 products are
 * accumulated in float32 by the SIMD kernel (fused multiply-adds, 256 terms at a time, then
 * added to the output), in float64 by the TypeScript kernel; float64 in float64. Each output
 * element is computed by one job the same way whatever the number of threads.
 *
 * @example
 * ```ts
 * import { matmulBatch } from "./matmul.ts";
 * const a = new Float64Array([1, 2, 3, 4]); // two 1 × 2 rows
 * const b = new Float64Array([1, 1]); // one 2 × 1 column, shared
 * const out = new Float64Array(2);
 * matmulBatch(a, [0, 2], 2, 1, b, [0, 0], 1, 1, out, 1, 1, 2);
 * // out = [3, 7]
 * ```
 */
export function matmulBatch(
  a: Float32Array | Float64Array,
  aOffsets: ArrayLike<number>,
  ars: number,
  acs: number,
  b: Float32Array | Float64Array,
  bOffsets: ArrayLike<number>,
  brs: number,
  bcs: number,
  out: Float32Array | Float64Array,
  m: number,
  n: number,
  k: number,
  useBlas = true,
): void {
  const count = aOffsets.length;
  const mn = m * n;
  if (count === 0 || mn === 0) return;
  const simd = k > 0 && m > 1 && n > 1 && m * n * k >= SIMD_WORK && heapAddress(out) >= 0 &&
    a.constructor === out.constructor && b.constructor === out.constructor;
  if (!simd) {
    for (let t = 0; t < count; t++) {
      matmulKernel(a, aOffsets[t], ars, acs, b, bOffsets[t], brs, bcs, out, t * mn, m, n, k);
    }
    return;
  }
  // Operands outside the heap (converted from bfloat16, say) are copied in for the kernel.
  const aIn = inHeap(a), bIn = inHeap(b);
  const addresses = [heapAddress(aIn), heapAddress(bIn), heapAddress(out)];
  const E = out.BYTES_PER_ELEMENT;
  const la = blasLayout(ars, acs, m, k), lb = blasLayout(brs, bcs, k, n);
  const threads = threadCount();
  const parallel = threads > 1 && count * m * n * k >= PARALLEL_WORK;
  try {
    const [blocksM, blocksN] = [Math.ceil(m / BLAS_ROWS), Math.ceil(n / BLAS_COLS)];
    const blasJobs = count * blocksM * blocksN;
    if (useBlas && la && lb && m * n * k >= BLAS_WORK && blasJobs <= MAX_JOBS && hasKernel(BLAS_KERNEL)) {
      const table = heapTemp(Float64Array, 3 * count, false);
      for (let t = 0; t < count; t++) {
        table.set([addresses[0] + aOffsets[t] * E, addresses[1] + bOffsets[t] * E, addresses[2] + t * mn * E], 3 * t);
      }
      try {
        const args = [E, +la.trans, +lb.trans, m, n, k, la.ld, lb.ld, table.byteOffset, blocksM, blocksN];
        runKernel(BLAS_KERNEL, args, blasJobs, parallel);
      } finally {
        heapFree(table);
      }
      return;
    }
    wasmBatch(aIn, aOffsets, ars, acs, bIn, bOffsets, brs, bcs, out, m, n, k, parallel);
  } finally {
    if (aIn !== a) heapFree(aIn);
    if (bIn !== b) heapFree(bIn);
  }
}

/** {@linkcode matmulBatch} on the WebAssembly kernel (all arrays in the heap). */
function wasmBatch(
  a: FloatArray,
  aOffsets: ArrayLike<number>,
  ars: number,
  acs: number,
  b: FloatArray,
  bOffsets: ArrayLike<number>,
  brs: number,
  bcs: number,
  out: FloatArray,
  m: number,
  n: number,
  k: number,
  parallel: boolean,
): void {
  const count = aOffsets.length, mn = m * n, E = out.BYTES_PER_ELEMENT;
  const addresses = [heapAddress(a), heapAddress(b), heapAddress(out)];
  const tilesM = Math.ceil(m / MB);
  const tilesN = Math.ceil(n / blockColumns(E));
  const perCall = Math.max(1, Math.floor(MAX_JOBS / (tilesM * tilesN)));
  const work = scratchFor(E, parallel ? threadCount() : 1);
  const table = heapTemp(Float64Array, 2 * Math.min(count, perCall), false);
  try {
    for (let t0 = 0; t0 < count; t0 += perCall) {
      const batch = Math.min(perCall, count - t0);
      for (let t = 0; t < batch; t++) {
        table[2 * t] = aOffsets[t0 + t] * E;
        table[2 * t + 1] = bOffsets[t0 + t] * E;
      }
      runKernel(
        E === 4 ? "matmul_f32" : "matmul_f64",
        [
          addresses[0],
          addresses[1],
          addresses[2] + t0 * mn * E,
          table.byteOffset,
          m,
          n,
          k,
          ars * E,
          acs * E,
          brs * E,
          bcs * E,
          tilesM,
          tilesN,
          work.byteOffset,
          scratchBytes(E),
        ],
        batch * tilesM * tilesN,
        parallel,
      );
    }
  } finally {
    heapFree(table);
  }
}

/**
 * How BLAS reads a rows × cols matrix with these element strides: stored row-major (`trans`
 * false) or column-major, with its leading dimension; null for layouts BLAS cannot read
 * (broadcast, reversed or doubly strided).
 */
function blasLayout(rs: number, cs: number, rows: number, cols: number): { trans: boolean; ld: number } | null {
  if ((cs === 1 || cols === 1) && (rows === 1 || rs >= Math.max(1, cols))) {
    return { trans: false, ld: rows === 1 ? Math.max(1, cols) : rs };
  }
  if ((rs === 1 || rows === 1) && (cols === 1 || cs >= Math.max(1, rows))) {
    return { trans: true, ld: cols === 1 ? Math.max(1, rows) : cs };
  }
  return null;
}

/** `x` itself when it lives in the heap, else a heap copy of it. */
function inHeap(x: FloatArray): FloatArray {
  if (heapAddress(x) >= 0) return x;
  const copy = heapTemp(x.constructor as Float32ArrayConstructor | Float64ArrayConstructor, x.length, false);
  copy.set(x);
  return copy;
}

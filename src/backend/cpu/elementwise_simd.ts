/**
 * Elementwise ops on the WebAssembly SIMD kernels (`wasm/elementwise.ts`), found by the op's
 * name: float32 or float64 operands in the heap (a constant operand is a broadcast value) whose
 * lines, after merging axes, form rows of one stride each with elements contiguous or broadcast.
 * `elementwise.ts` calls these first and keeps its loops for everything else. Work is split into
 * jobs of whole rows or fixed chunks of a row; no result depends on how it is split.
 *
 * @module
 */

import type { BinaryOp, UnaryOp } from "../../tensor/op_defs.ts";
import { coalesce, contiguousStrides, sizeOf } from "../../tensor/shape.ts";
import type { NumArray, Operand } from "./buffer.ts";
import type { StorageWindow } from "./elementwise.ts";
import { heapAddress, heapFree, heapTemp } from "./heap.ts";
import { runKernel, threadCount } from "./threads.ts";
import { CHUNK, hasSimd, simdLimit } from "./wasm/elementwise.ts";

/** Below this many elements a call stays on one thread. */
const PARALLEL_ELEMENTS = 1 << 16;

/** The kernel suffix for an output array, or null. */
function laneOf(out: NumArray): "f32" | "f64" | null {
  return out instanceof Float32Array ? "f32" : out instanceof Float64Array ? "f64" : null;
}

/**
 * The operands as rows: after merging axes, at most two remain (rows × n), the output's inner
 * stride is 1 and every operand's inner stride is 1 or 0. Returns the row count, n and each
 * operand's row and element strides (in elements), or null.
 */
function rowsOf(
  shape: readonly number[],
  strides: number[][],
): { rows: number; n: number; row: number[]; step: number[] } | null {
  const c = coalesce(shape, [contiguousStrides(shape), ...strides]);
  const d = c.shape.length;
  if (d > 2) return null;
  const inner = c.strides.map((s) => s[d - 1]);
  if (inner[0] !== 1 || inner.some((s) => s !== 0 && s !== 1)) return null;
  const rows = d === 2 ? c.shape[0] : 1;
  return { rows, n: c.shape[d - 1], row: c.strides.map((s) => (d === 2 ? s[0] : 0)), step: inner };
}

/**
 * Scratch kept between calls: two 16-byte cells for constant operands, then 32 bytes per job for
 * the tail of its rows.
 */
let scratch: Float64Array | null = null;

function scratchFor(jobs: number): Float64Array {
  const need = 4 + 4 * jobs;
  if (!scratch || scratch.length < need) {
    if (scratch) heapFree(scratch);
    scratch = heapTemp(Float64Array, Math.max(need, 1024), false);
  }
  return scratch;
}

/**
 * A heap address for operand `k` (0 or 1): its own, or for a single value outside the heap (a
 * constant), a scratch cell holding it; -1 for other arrays outside the heap.
 */
function addressOf(x: Operand, single: boolean, E: number, cells: Float64Array, k: number): number {
  const a = heapAddress(x.data);
  if (a >= 0) return a + x.offset * E;
  if (!single) return -1;
  const at = cells.byteOffset + 16 * k;
  if (E === 4) new Float32Array(cells.buffer, at, 1)[0] = x.data[x.offset];
  else cells[2 * k] = x.data[x.offset];
  return at;
}

/** Jobs for rows × n elements: whole rows up to CHUNK elements a job, or CHUNK-element pieces of longer rows. */
function jobsOf(rows: number, n: number): number {
  return n > CHUNK ? rows * Math.ceil(n / CHUNK) : Math.ceil(rows / Math.max(1, Math.floor(CHUNK / Math.max(n, 1))));
}

/** Runs the kernel; returns the largest |x| its jobs reported (see `simdLimit`), or 0. */
function run(kernel: string, args: number[], rows: number, n: number): number {
  const jobs = jobsOf(rows, n);
  const cells = scratchFor(jobs);
  runKernel(kernel, [...args, cells.byteOffset + 32], jobs, threadCount() > 1 && rows * n >= PARALLEL_ELEMENTS);
  let largest = 0;
  for (let j = 0; j < jobs; j++) largest = Math.max(largest, cells[4 + 4 * j + 2], cells[4 + 4 * j + 3]);
  return largest;
}

/**
 * `op(x)` into the contiguous `out` on the SIMD kernel; false where it does not apply (nothing
 * written) or where x reaches beyond the kernel's range (sin, cos of huge arguments: `out` then
 * holds partial results for the caller to overwrite).
 *
 * @example
 * ```ts
 * import { simdUnary } from "./elementwise_simd.ts";
 * import { heapAlloc } from "./heap.ts";
 * const x = heapAlloc(Float64Array, 3, true), out = heapAlloc(Float64Array, 3, false);
 * simdUnary("exp", { data: x, offset: 0, strides: [1] }, [3], out); // true; out = [1, 1, 1]
 * ```
 */
export function simdUnary(op: UnaryOp, x: Operand, shape: readonly number[], out: NumArray): boolean {
  const lane = laneOf(out);
  if (!lane || !hasSimd("unary", op) || x.data.constructor !== out.constructor || sizeOf(shape) === 0) return false;
  if (heapAddress(x.data) < 0 || heapAddress(out) < 0) return false;
  const r = rowsOf(shape, [[...x.strides]]);
  if (!r || r.step[1] !== 1) return false;
  const E = out.BYTES_PER_ELEMENT;
  const args = [heapAddress(x.data) + x.offset * E, r.row[1] * E, heapAddress(out), r.rows, r.n];
  const largest = run(`unary_${op}_${lane}`, args, r.rows, r.n);
  const limit = simdLimit(op);
  return limit === undefined || largest <= limit;
}

/**
 * `op(a, b)` into the contiguous `out` on the SIMD kernel; false (nothing written) where it does
 * not apply (int32 arithmetic included: callers pass only float ops).
 *
 * @example
 * ```ts
 * import { simdBinary } from "./elementwise_simd.ts";
 * import { heapAlloc } from "./heap.ts";
 * const a = heapAlloc(Float32Array, 5, true), out = heapAlloc(Float32Array, 5, false);
 * const two = { data: new Float32Array([2]), offset: 0, strides: [0] };
 * simdBinary("add", { data: a, offset: 0, strides: [1] }, two, [5], out); // true; out = [2, 2, 2, 2, 2]
 * ```
 */
export function simdBinary(op: BinaryOp, a: Operand, b: Operand, shape: readonly number[], out: NumArray): boolean {
  const lane = laneOf(out);
  if (!lane || !hasSimd("binary", op) || sizeOf(shape) === 0 || heapAddress(out) < 0) return false;
  if (a.data.constructor !== out.constructor || b.data.constructor !== out.constructor) return false;
  const r = rowsOf(shape, [[...a.strides], [...b.strides]]);
  if (!r || (r.step[1] === 0 && r.step[2] === 0)) return false;
  const E = out.BYTES_PER_ELEMENT;
  const single = (k: number) => r.step[k] === 0 && (r.row[k] === 0 || r.rows === 1);
  const cells = scratchFor(jobsOf(r.rows, r.n));
  const [aa, ba] = [addressOf(a, single(1), E, cells, 0), addressOf(b, single(2), E, cells, 1)];
  if (aa < 0 || ba < 0) return false;
  const args = [aa, r.row[1] * E, r.step[1] * E, ba, r.row[2] * E, r.step[2] * E, heapAddress(out), r.rows, r.n];
  run(`binary_${op}_${lane}`, args, r.rows, r.n);
  return true;
}

/**
 * Copies `src` over `shape` into `dst` on the copy kernel when both hold the same element type
 * of 4 or 8 bytes in the heap, the merged axes number at most three and the source's elements
 * along the last lie less than 64 bytes apart (or there is one axis); false (nothing written)
 * otherwise.
 *
 * @example
 * ```ts
 * import { simdCopy } from "./elementwise_simd.ts";
 * import { heapAlloc } from "./heap.ts";
 * const a = heapAlloc(Float32Array, 6, true), b = heapAlloc(Float32Array, 6, false);
 * simdCopy({ data: a, offset: 0, strides: [1, 2] }, { data: b, offset: 0, strides: [3, 1] }, [2, 3]); // a transpose
 * ```
 */
export function simdCopy(src: StorageWindow, dst: StorageWindow, shape: readonly number[]): boolean {
  const E = dst.data.BYTES_PER_ELEMENT;
  if (src.data.constructor !== dst.data.constructor || (E !== 4 && E !== 8) || sizeOf(shape) === 0) return false;
  const [sa, da] = [heapAddress(src.data), heapAddress(dst.data)];
  if (sa < 0 || da < 0) return false;
  const c = coalesce(shape, [[...dst.strides], [...src.strides]]);
  const d = c.shape.length;
  if (d > 3) return false;
  const dims = [...new Array(3 - d).fill(1), ...c.shape];
  const [ds, ss] = c.strides.map((st) => [...new Array(3 - d).fill(0), ...st].map((x) => x * E));
  // A source read a cache line apart at every element (a transpose) is walked faster by the loop.
  if (d > 1 && Math.abs(ss[2]) >= 64) return false;
  const [planes, rows, n] = dims;
  const args = [sa + src.offset * E, ...ss, da + dst.offset * E, ...ds, planes, rows, n];
  runKernel(`copy_b${E}`, args, jobsOf(planes * rows, n), threadCount() > 1 && planes * rows * n >= PARALLEL_ELEMENTS);
  return true;
}

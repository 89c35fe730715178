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
import { coalesce, sizeOf } from "../../tensor/shape.ts";
import type { NumArray, Operand } from "./buffer.ts";
import type { StorageWindow } from "./elementwise.ts";
import { heapAddress, heapFree, heapTemp } from "./heap.ts";
import { kernelIndex, runKernel, threadCount } from "./threads.ts";
import { CHUNK, hasSimd, simdLimit } from "./wasm/elementwise.ts";

/** Below this many elements a call stays on one thread. */
const PARALLEL_ELEMENTS = 1 << 16;

/** The kernel suffix for an output array, or null. */
function laneOf(out: NumArray): "f32" | "f64" | null {
  return out instanceof Float32Array ? "f32" : out instanceof Float64Array ? "f64" : null;
}

/**
 * The operands as rows, written by {@link rowsOf} (reused from call to call, so that the hot path
 * allocates nothing): `rows` × `n` elements; operand k (0 the output, 1 and 2 the inputs) steps
 * `row[k]` elements from row to row and `step[k]` (1 or 0) from element to element.
 */
const rows = { rows: 0, n: 0, row: [0, 0, 0], step: [0, 0, 0] };

/**
 * Lays the output (contiguous over `shape`) and the operands of strides `a` and `b` (null for a
 * unary op) out as rows in {@link rows}: after merging adjacent axes that every operand lays out
 * contiguously and dropping axes of extent 1 (as `coalesce` does), at most two axes may remain,
 * and every operand's inner stride must be 1 or 0. False where they do not.
 */
function rowsOf(shape: readonly number[], a: readonly number[], b: readonly number[] | null): boolean {
  let dims = 0, n = 1, count = 1, out = 1;
  let in0 = 0, in1 = 0, in2 = 0, row0 = 0, row1 = 0, row2 = 0;
  for (let d = shape.length - 1; d >= 0; d--) {
    const e = shape[d];
    const s0 = out, s1 = a[d], s2 = b ? b[d] : 0;
    out *= e;
    if (e === 1) continue;
    if (dims === 0) {
      dims = 1;
      n = e;
      in0 = s0;
      in1 = s1;
      in2 = s2;
    } else if (dims === 1 && s0 === in0 * n && s1 === in1 * n && s2 === in2 * n) {
      n *= e;
    } else if (dims === 1) {
      dims = 2;
      count = e;
      row0 = s0;
      row1 = s1;
      row2 = s2;
    } else if (s0 === row0 * count && s1 === row1 * count && s2 === row2 * count) {
      count *= e;
    } else {
      return false;
    }
  }
  if (dims === 0 || in0 !== 1 || (in1 !== 0 && in1 !== 1) || (in2 !== 0 && in2 !== 1)) return false;
  const { row, step } = rows;
  rows.rows = count;
  rows.n = n;
  row[0] = dims === 2 ? row0 : 0;
  row[1] = dims === 2 ? row1 : 0;
  row[2] = dims === 2 ? row2 : 0;
  step[0] = in0;
  step[1] = in1;
  step[2] = in2;
  return true;
}

/**
 * Scratch kept between calls: two 16-byte cells for constant operands, then 32 bytes per job for
 * the tail of its rows; and a float32 view of the cells.
 */
let scratch: Float64Array | null = null;
let cells32: Float32Array | null = null;

function scratchFor(jobs: number): Float64Array {
  const need = 4 + 4 * jobs;
  if (!scratch || scratch.length < need) {
    if (scratch) heapFree(scratch);
    scratch = heapTemp(Float64Array, Math.max(need, 1024), false);
    cells32 = new Float32Array(scratch.buffer, scratch.byteOffset, 8);
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
  if (E === 4) cells32![4 * k] = x.data[x.offset];
  else cells[2 * k] = x.data[x.offset];
  return cells.byteOffset + 16 * k;
}

/** Jobs for rows × n elements: whole rows up to CHUNK elements a job, or CHUNK-element pieces of longer rows. */
function jobsOf(rows: number, n: number): number {
  return n > CHUNK ? rows * Math.ceil(n / CHUNK) : Math.ceil(rows / Math.max(1, Math.floor(CHUNK / Math.max(n, 1))));
}

/** Kernel indices (see {@linkcode kernelIndex}) by kind and lane, then op: `unary_f32` → `exp` → that of `unary_exp_f32`. */
const kernels = new Map<string, Map<string, number>>();

/** The index of the kernel `${kind}_${op}_${lane}`, found once. */
function kernelOf(kind: "unary" | "binary", op: string, lane: "f32" | "f64"): number {
  const family = kind === "unary"
    ? (lane === "f32" ? "unary_f32" : "unary_f64")
    : (lane === "f32" ? "binary_f32" : "binary_f64");
  let byOp = kernels.get(family);
  if (!byOp) kernels.set(family, byOp = new Map());
  let k = byOp.get(op);
  if (k === undefined) byOp.set(op, k = kernelIndex(`${kind}_${op}_${lane}`));
  return k;
}

/**
 * Runs the kernel on `rows` × `n` elements, its scratch address written into the last argument;
 * with `limit`, returns the largest |x| its jobs reported (see `simdLimit`), else 0.
 */
function run(kernel: number, args: number[], count: number, n: number, limit: boolean): number {
  const jobs = jobsOf(count, n);
  const cells = scratchFor(jobs);
  args[args.length - 1] = cells.byteOffset + 32;
  runKernel(kernel, args, jobs, threadCount() > 1 && count * n >= PARALLEL_ELEMENTS);
  let largest = 0;
  if (limit) { for (let j = 0; j < jobs; j++) largest = Math.max(largest, cells[4 + 4 * j + 2], cells[4 + 4 * j + 3]); }
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
  const xa = heapAddress(x.data), oa = heapAddress(out);
  if (xa < 0 || oa < 0 || !rowsOf(shape, x.strides, null) || rows.step[1] !== 1) return false;
  const E = out.BYTES_PER_ELEMENT;
  const limit = simdLimit(op);
  const args = [xa + x.offset * E, rows.row[1] * E, oa, rows.rows, rows.n, 0];
  const largest = run(kernelOf("unary", op, lane), args, rows.rows, rows.n, limit !== undefined);
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
  const oa = heapAddress(out);
  if (!lane || !hasSimd("binary", op) || sizeOf(shape) === 0 || oa < 0) return false;
  if (a.data.constructor !== out.constructor || b.data.constructor !== out.constructor) return false;
  if (!rowsOf(shape, a.strides, b.strides) || (rows.step[1] === 0 && rows.step[2] === 0)) return false;
  const { row, step } = rows;
  const E = out.BYTES_PER_ELEMENT;
  const cells = scratchFor(jobsOf(rows.rows, rows.n));
  const aa = addressOf(a, step[1] === 0 && (row[1] === 0 || rows.rows === 1), E, cells, 0);
  const ba = addressOf(b, step[2] === 0 && (row[2] === 0 || rows.rows === 1), E, cells, 1);
  if (aa < 0 || ba < 0) return false;
  const args = [aa, row[1] * E, step[1] * E, ba, row[2] * E, step[2] * E, oa, rows.rows, rows.n, 0];
  run(kernelOf("binary", op, lane), args, rows.rows, rows.n, false);
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

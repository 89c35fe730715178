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
import { contiguousStrides, sizeOf } from "../../tensor/shape.ts";
import type { NumArray, Operand } from "./buffer.ts";
import { heapAddress, heapAlloc, heapFree } from "./heap.ts";
import { coalesce } from "./strided.ts";
import { runKernel, threadCount } from "./threads.ts";
import { CHUNK, hasSimd } from "./wasm/elementwise.ts";

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
 * A heap address for an operand: its own, or for a single value outside the heap (a constant),
 * a scratch cell holding it; -1 for other arrays outside the heap.
 */
function addressOf(x: Operand, single: boolean, E: number, cells: NumArray[]): number {
  const a = heapAddress(x.data);
  if (a >= 0) return a + x.offset * E;
  if (!single) return -1;
  const cell = heapAlloc(E === 4 ? Float32Array : Float64Array, 1, false);
  cell[0] = x.data[x.offset];
  cells.push(cell);
  return cell.byteOffset;
}

function run(kernel: string, args: (jobs: number, scratch: number) => number[], rows: number, n: number): void {
  const jobs = n > CHUNK
    ? rows * Math.ceil(n / CHUNK)
    : Math.ceil(rows / Math.max(1, Math.floor(CHUNK / Math.max(n, 1))));
  const scratch = heapAlloc(Float64Array, 4 * jobs, false);
  try {
    runKernel(kernel, args(jobs, scratch.byteOffset), jobs, threadCount() > 1 && rows * n >= PARALLEL_ELEMENTS);
  } finally {
    heapFree(scratch);
  }
}

/**
 * `op(x)` into the contiguous `out` on the SIMD kernel; false (nothing written) where it does not
 * apply.
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
  run(
    `unary_${op}_${lane}`,
    (_, scratch) => [
      heapAddress(x.data) + x.offset * E,
      r.row[1] * E,
      heapAddress(out),
      r.rows,
      r.n,
      scratch,
    ],
    r.rows,
    r.n,
  );
  return true;
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
  const cells: NumArray[] = [];
  try {
    const single = (k: number) => r.step[k] === 0 && (r.row[k] === 0 || r.rows === 1);
    const [aa, ba] = [addressOf(a, single(1), E, cells), addressOf(b, single(2), E, cells)];
    if (aa < 0 || ba < 0) return false;
    run(
      `binary_${op}_${lane}`,
      (_, scratch) => [
        aa,
        r.row[1] * E,
        r.step[1] * E,
        ba,
        r.row[2] * E,
        r.step[2] * E,
        heapAddress(out),
        r.rows,
        r.n,
        scratch,
      ],
      r.rows,
      r.n,
    );
  } finally {
    cells.forEach(heapFree);
  }
  return true;
}

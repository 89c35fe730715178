/**
 * Reductions and softmax on the WebAssembly SIMD kernels (`wasm/reduce.ts`), for float32 and
 * float64 operands in the heap whose layout the kernels take: after merging axes, the reduced
 * run is either contiguous (rows) or outside a contiguous run of kept elements (columns);
 * softmax along a contiguous last axis. Everything else stays with the TypeScript loops of
 * `reduce.ts`, which call these first.
 *
 * The kernels write float64 partial results per fixed chunk of the input; they are folded here in
 * chunk order, so results do not depend on the number of threads.
 *
 * @module
 */

import type { ReduceOp } from "../../tensor/backend.ts";
import { coalesce, contiguousStrides, sizeOf } from "../../tensor/shape.ts";
import type { NumArray, Operand } from "./buffer.ts";
import { heapAddress, heapFree, heapTemp } from "./heap.ts";
import { runKernel, threadCount } from "./threads.ts";
import { CH, IC, JC } from "./wasm/reduce.ts";

/** Below this many input elements a call stays on one thread. */
const PARALLEL_ELEMENTS = 1 << 16;

const FOLD: Record<ReduceOp, (a: number, b: number) => number> = {
  sum: (a, b) => a + b,
  prod: (a, b) => a * b,
  max: (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b)),
  min: (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b)),
};

/** The kernel suffix of a float array, or null for other arrays and arrays outside the heap. */
function laneOf(data: NumArray): "f32" | "f64" | null {
  if (heapAddress(data) < 0) return null;
  return data instanceof Float32Array ? "f32" : data instanceof Float64Array ? "f64" : null;
}

/**
 * Reduces `x` over `axes` into `out` on the SIMD kernels; false (nothing written) when the
 * operands or the layout are not ones the kernels take.
 *
 * @example
 * ```ts
 * import { simdReduce } from "./reduce_simd.ts";
 * import { heapAlloc } from "./heap.ts";
 * const x = heapAlloc(Float64Array, 4, false);
 * x.set([1, 2, 3, 4]);
 * const out = new Float64Array(1);
 * simdReduce("sum", { data: x, offset: 0, strides: [1] }, [4], [0], out); // true; out = [10]
 * ```
 */
export function simdReduce(
  op: ReduceOp,
  x: Operand,
  shape: readonly number[],
  axes: readonly number[],
  out: NumArray,
): boolean {
  const lane = laneOf(x.data);
  if (!lane || out instanceof Int32Array || sizeOf(shape) === 0) return false;
  const outShape = shape.map((n, d) => (axes.includes(d) ? 1 : n));
  const accStrides = contiguousStrides(outShape).map((s, d) => (axes.includes(d) ? 0 : s));
  const c = coalesce(shape, [x.strides, accStrides]);
  const reduced = c.strides[1].map((s) => s === 0);
  const r = reduced.indexOf(true);
  if (r < 0 || reduced.lastIndexOf(true) !== r || c.shape.length - r > 2 || r > 1) return false;
  const E = x.data.BYTES_PER_ELEMENT;
  const outer = r === 1 ? c.shape[0] : 1;
  const so = r === 1 ? c.strides[0][0] * E : 0;
  const n = c.shape[r];
  const sn = c.strides[0][r];
  const inner = r + 1 < c.shape.length ? c.shape[r + 1] : 1;
  const base = heapAddress(x.data) + x.offset * E;
  const parallel = threadCount() > 1 && sizeOf(shape) >= PARALLEL_ELEMENTS;
  if (inner === 1 && sn === 1) {
    const chunks = Math.ceil(n / CH);
    const partials = heapTemp(Float64Array, outer * chunks, false);
    runKernel(`rows_${lane}_${op}`, [base, so, n, chunks, partials.byteOffset], outer * chunks, parallel);
    const fold = FOLD[op];
    for (let o = 0; o < outer; o++) {
      let v = partials[o * chunks];
      for (let k = 1; k < chunks; k++) v = fold(v, partials[o * chunks + k]);
      out[o] = v;
    }
    heapFree(partials);
    return true;
  }
  if (inner > 1 && c.strides[0][r + 1] === 1) {
    const bands = Math.ceil(n / JC);
    const colChunks = Math.ceil(inner / IC);
    const size = outer * inner;
    const partials = heapTemp(Float64Array, bands * size, false);
    runKernel(
      `cols_${lane}_${op}`,
      [base, so, sn * E, n, outer, inner, colChunks, partials.byteOffset],
      bands * outer * colChunks,
      parallel,
    );
    if (bands === 1) out.set(partials);
    else {
      const fold = FOLD[op];
      for (let i = 0; i < size; i++) {
        let v = partials[i];
        for (let b = 1; b < bands; b++) v = fold(v, partials[b * size + i]);
        out[i] = v;
      }
    }
    heapFree(partials);
    return true;
  }
  return false;
}

/**
 * Softmax (or log-softmax) along `axis` into the contiguous `out` on the SIMD kernel when `axis`
 * is the last, contiguous in `x`, and `x` and `out` are float arrays of one type in the heap;
 * false (nothing written) otherwise.
 *
 * @example
 * ```ts
 * import { simdSoftmax } from "./reduce_simd.ts";
 * import { heapAlloc } from "./heap.ts";
 * const x = heapAlloc(Float64Array, 2, true);
 * const out = heapAlloc(Float64Array, 2, false);
 * simdSoftmax({ data: x, offset: 0, strides: [1] }, [2], 0, false, out); // true; out = [0.5, 0.5]
 * ```
 */
export function simdSoftmax(x: Operand, shape: readonly number[], axis: number, log: boolean, out: NumArray): boolean {
  const lane = laneOf(x.data);
  if (!lane || lane !== laneOf(out) || axis !== shape.length - 1 || x.strides[axis] !== 1) return false;
  const n = shape[axis];
  const rowsShape = shape.slice(0, axis);
  const rows = sizeOf(rowsShape);
  if (n === 0 || rows === 0) return false;
  const c = coalesce(rowsShape, [x.strides.slice(0, axis)]);
  if (c.shape.length > 1) return false;
  const E = x.data.BYTES_PER_ELEMENT;
  const rowStride = c.strides[0][0] * E;
  const rowsPerJob = Math.max(1, Math.floor(4096 / n));
  const jobs = Math.ceil(rows / rowsPerJob);
  const parallel = threadCount() > 1 && rows * n >= PARALLEL_ELEMENTS;
  const threads = parallel ? threadCount() : 1;
  const scratch = heapTemp(Float64Array, threads * n, false);
  try {
    runKernel(
      `softmax_${lane}`,
      [
        heapAddress(x.data) + x.offset * E,
        rowStride,
        n,
        heapAddress(out),
        rows,
        rowsPerJob,
        log ? 1 : 0,
        scratch.byteOffset,
        n * 8,
      ],
      jobs,
      parallel,
    );
  } finally {
    heapFree(scratch);
  }
  return true;
}

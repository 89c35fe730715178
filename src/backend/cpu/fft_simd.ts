/**
 * FFTs on the WebAssembly SIMD kernel (`wasm/fft.ts`): the lines along the axis are taken two at
 * a time (one per float64 lane) and split into jobs, for float32 and float64 operands in the heap
 * whose length has a radix-2 or direct plan. `fft_ops.ts` calls this first and keeps its
 * TypeScript loops for everything else (Bluestein lengths, bfloat16, arrays outside the heap).
 * The kernel repeats the TypeScript transform's arithmetic exactly, so either path gives the
 * same bits.
 *
 * @module
 */

import type { NumArray, Operand } from "./buffer.ts";
import { simdPlan } from "./fft.ts";
import { heapAddress, heapFree, heapTemp } from "./heap.ts";
import type { LinePlan } from "./strided.ts";
import { runKernel, threadCount } from "./threads.ts";
import { MODE } from "./wasm/fft.ts";

/** Below this many elements in all a call stays on one thread. */
const PARALLEL_ELEMENTS = 1 << 15;

/** Geometry of one transform call (strides in elements). */
export interface FftGeometry {
  /** Forward, inverse, real-to-complex or complex-to-real. */
  readonly mode: keyof typeof MODE;
  /** Transform length. */
  readonly n: number;
  /** Input elements read along the axis (the rest are zero). */
  readonly len: number;
  /** The lines: one per position of the other axes, with input and output start offsets. */
  readonly plan: LinePlan;
  /** Offset of an imaginary part from its real part in the input (complex input). */
  readonly xt: number;
  /** Offset of an imaginary part from its real part in the output (complex output). */
  readonly ot: number;
}

/**
 * Runs a transform on the SIMD kernel; false (nothing written) where it does not apply.
 *
 * @example
 * ```ts
 * import { simdFft } from "./fft_simd.ts";
 * // if (simdFft(x, { mode: "rfft", n, len: n, plan, xt: 0, ot: 1 }, out)) return;
 * ```
 */
export function simdFft(x: Operand, g: FftGeometry, out: NumArray): boolean {
  const xa = heapAddress(x.data), oa = heapAddress(out);
  const lane = x.data instanceof Float64Array ? "f64" : x.data instanceof Float32Array ? "f32" : null;
  if (xa < 0 || oa < 0 || !lane || x.data.constructor !== out.constructor || g.plan.count === 0) return false;
  if (g.mode !== "irfft" && g.ot !== 1) return false; // the kernel writes (re, im) pairs
  const tables = simdPlan(g.n);
  if (!tables) return false;
  const E = x.data.BYTES_PER_ELEMENT;
  const lines = g.plan.count;
  const pairs = Math.ceil(lines / 2);
  // Per pair: two input and two output offsets (bytes); an odd last line is paired with itself.
  const table = heapTemp(Float64Array, 4 * pairs, false);
  const pos = g.plan.walker.pos;
  for (let l = 0; l < lines; l++, g.plan.walker.next()) {
    const p = l >> 1, h = l & 1;
    table[4 * p + h] = pos[0] * E;
    table[4 * p + 2 + h] = pos[1] * E;
  }
  if (lines & 1) {
    table[4 * pairs - 3] = table[4 * pairs - 4];
    table[4 * pairs - 1] = table[4 * pairs - 2];
  }
  const pairsPerJob = Math.max(1, Math.floor(2048 / g.n));
  const [xs, os] = g.plan.inner;
  const parallel = threadCount() > 1 && lines * g.n >= PARALLEL_ELEMENTS;
  const scratch = heapTemp(Float64Array, 8 * g.n * (parallel ? threadCount() : 1), false);
  try {
    runKernel(
      `fft_${lane}`,
      [
        xa,
        oa,
        table.byteOffset,
        pairs,
        pairsPerJob,
        MODE[g.mode],
        g.n,
        g.len,
        xs * E,
        g.xt * E,
        os * E,
        g.ot * E,
        tables.kind,
        tables.swaps.byteOffset,
        tables.swaps.length / 2,
        tables.table.byteOffset,
        heapAddress(scratch),
        64 * g.n,
      ],
      Math.ceil(pairs / pairsPerJob),
      parallel,
    );
  } finally {
    heapFree(table);
    heapFree(scratch);
  }
  return true;
}

/**
 * Host side of the banded-operator kernels (kernels/stencil.cu): the launch ({@link stencil}), and
 * how a strided view is laid out for the kernels and how an operator travels as kernel parameters
 * (pure functions, tested without a GPU).
 *
 * The kernels see the input as `[outer, n, inner]` with one element stride per group, the operator
 * acting along `n`; a view whose axes before (or after) the operator axis do not merge into one
 * strided group is copied to contiguous first. A block of {@link STENCIL_THREADS} threads covers
 * tiles of `TO` lines × `TI · rows` rows × `TJ` inner positions (powers of two, `TO·TI·TJ` =
 * {@link STENCIL_THREADS}): `TJ` up to 32 consecutive inner positions, so a warp reads and writes
 * whole segments, and when `inner` is small the spare threads take more rows and lines.
 *
 * @module
 */

import type { BandedOperator, View } from "../../tensor/backend.ts";
import { MAX_BANDED_COEFFICIENTS } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { DeviceError, DTypeError } from "../../tensor/errors.ts";
import { sizeOf } from "../../tensor/shape.ts";
import { normalizeAxis } from "../../tensor/validate.ts";
import type { KernelFamily } from "./compiler.ts";
import { type CudaBuffer, type CudaDevice, SFX } from "./device.ts";
import { contiguous, materialize, operand } from "./transfer.ts";

/**
 * Threads per block of the stencil kernels.
 *
 * @example
 * ```ts
 * import { STENCIL_THREADS } from "./stencil.ts";
 * STENCIL_THREADS; // 256
 * ```
 */
export const STENCIL_THREADS = 256;

/** Rows a thread computes per tile (at most). */
const ROWS_PER_THREAD = 4;
const U32_LIMIT = 2 ** 32;

/**
 * One launch of a stencil kernel: the words of `struct StencilDims`, the three element strides
 * (outer, operator axis, inner) and the number of tiles (blocks needed).
 *
 * @example
 * ```ts
 * import { planStencil, type StencilPlan } from "./stencil.ts";
 * const plan: StencilPlan | null = planStencil([4, 64], [64, 1], 1);
 * ```
 */
export interface StencilPlan {
  /** `outer, n, inner, lj, li, rows, tiles_i, tiles_j, tiles` (see kernels/stencil.cu). */
  readonly dims: readonly number[];
  /** Element strides of the outer group, the operator axis and the inner group. */
  readonly strides: readonly [number, number, number];
  /** Tiles in all: the kernel's blocks loop over them. */
  readonly tiles: number;
}

/** The axes of one group merged into one (extent, stride), or null when they do not merge. */
function mergeGroup(shape: readonly number[], strides: readonly number[]): { n: number; s: number } | null {
  let n = 1, s = 0;
  for (let d = shape.length - 1; d >= 0; d--) {
    const e = shape[d];
    if (e === 1) continue;
    if (n === 1) {
      n = e;
      s = strides[d];
    } else if (strides[d] === s * n) {
      n *= e;
    } else {
      return null;
    }
  }
  return { n, s };
}

function log2Ceil(v: number): number {
  let l = 0;
  while (1 << l < v) l++;
  return l;
}

/**
 * Plans the launch of a stencil along `axis` of a non-empty view with these strides, or returns
 * null when the axes before or after `axis` do not each merge into one strided group (copy the
 * view to contiguous first). Throws a DeviceError when a group or the tile count does not fit in
 * 32 bits, or the axis in 31.
 *
 * @example
 * ```ts
 * import { planStencil } from "./stencil.ts";
 * const p = planStencil([6, 101, 1024, 16], [101 * 16384, 16384, 16, 1], 1)!;
 * p.strides; // [1654784, 16384, 1]: outer 6, n 101, inner 16384
 * planStencil([2, 3, 4], [1, 8, 2], 2); // null: [2, 3] with strides [1, 8] is not one group
 * ```
 */
export function planStencil(shape: readonly number[], strides: readonly number[], axis: number): StencilPlan | null {
  const outerG = mergeGroup(shape.slice(0, axis), strides.slice(0, axis));
  const innerG = mergeGroup(shape.slice(axis + 1), strides.slice(axis + 1));
  if (!outerG || !innerG) return null;
  const outer = outerG.n, n = shape[axis], inner = innerG.n;
  const lj = Math.min(5, log2Ceil(inner));
  const li = Math.min(log2Ceil(STENCIL_THREADS) - lj, log2Ceil(n));
  const ti = 1 << li, tj = 1 << lj;
  const to = STENCIL_THREADS / (ti * tj);
  const rows = Math.max(1, Math.min(ROWS_PER_THREAD, Math.ceil(n / ti)));
  const tilesI = Math.ceil(n / (ti * rows));
  const tilesJ = Math.ceil(inner / tj);
  const tiles = Math.ceil(outer / to) * tilesI * tilesJ;
  if (outer >= U32_LIMIT || inner >= U32_LIMIT || n >= 2 ** 31 || tiles >= U32_LIMIT) {
    throw new DeviceError("stencil", `a view of shape [${shape.join(",")}] is too large for one stencil launch`);
  }
  return {
    dims: [outer, n, inner, lj, li, rows, tilesI, tilesJ, tiles],
    strides: [outerG.s, strides[axis], innerG.s],
    tiles,
  };
}

/**
 * The words of `struct BandMeta` for an operator: `lo` (as two's complement), the stencil width,
 * periodicity, and the head and tail block sizes.
 *
 * @example
 * ```ts
 * import { bandWords } from "./stencil.ts";
 * const none = { rows: 0, cols: 0, values: [] };
 * bandWords({ n: 8, lo: -1, stencil: [1, -2, 1], periodic: true, head: none, tail: none });
 * // [4294967295, 3, 1, 0, 0, 0, 0]
 * ```
 */
export function bandWords(op: BandedOperator): number[] {
  return [
    op.lo >>> 0,
    op.stencil.length,
    op.periodic ? 1 : 0,
    op.head.rows,
    op.head.cols,
    op.tail.rows,
    op.tail.cols,
  ];
}

/**
 * The coefficients of `struct BandCoefs`: the stencil, then the head block, then the tail block
 * (row-major). Throws a DeviceError beyond `MAX_BANDED_COEFFICIENTS`.
 *
 * @example
 * ```ts
 * import { bandCoefficients } from "./stencil.ts";
 * bandCoefficients({
 *   n: 5, lo: -1, stencil: [-0.5, 0, 0.5], periodic: false,
 *   head: { rows: 1, cols: 3, values: [-1.5, 2, -0.5] }, tail: { rows: 1, cols: 3, values: [0.5, -2, 1.5] },
 * }); // [-0.5, 0, 0.5, -1.5, 2, -0.5, 0.5, -2, 1.5]
 * ```
 */
export function bandCoefficients(op: BandedOperator): number[] {
  const head = op.head.values.slice(0, op.head.rows * op.head.cols);
  const tail = op.tail.values.slice(0, op.tail.rows * op.tail.cols);
  const all = [...op.stencil, ...head, ...tail];
  if (all.length > MAX_BANDED_COEFFICIENTS) {
    throw new DeviceError(
      "stencil",
      `the operator has ${all.length} coefficients; the cuda kernel takes at most ${MAX_BANDED_COEFFICIENTS}`,
    );
  }
  return all;
}

function stencilKernel(dtype: DType): string {
  return `stencil_${SFX[dtype]}`;
}

/**
 * Every kernel name the banded operators can ask for: one per float type.
 *
 * @example
 * ```ts
 * import { stencilKernelNames } from "./stencil.ts";
 * stencilKernelNames().stencil; // ["stencil_f32", "stencil_f64", "stencil_bf16"]
 * ```
 */
export function stencilKernelNames(): Partial<Record<KernelFamily, string[]>> {
  return { stencil: (["float32", "float64", "bfloat16"] as const).map(stencilKernel) };
}

/**
 * The banded operator `op` along `axis` of `x` (+ `add`) in one launch (see `Backend.stencil`),
 * summed in float64 in the CPU backend's order, into a new buffer of float `dtype`.
 *
 * @example
 * ```ts
 * import { stencil } from "./stencil.ts";
 * // const y = stencil(dev, view, 1, op, null, "float64");
 * ```
 */
export function stencil(
  dev: CudaDevice,
  x: View,
  axis: number,
  op: BandedOperator,
  add: View | null,
  dtype: DType,
): CudaBuffer {
  if (dtype !== "float32" && dtype !== "float64" && dtype !== "bfloat16") {
    throw new DTypeError("stencil", `${dtype} output; use a float dtype`);
  }
  const ax = normalizeAxis("stencil", axis, x.shape.length);
  const size = sizeOf(x.shape);
  const out = dev.newBuffer(size, dtype);
  if (size === 0) return out;
  const coefs = bandCoefficients(op);
  let { raw, temp } = operand(dev, x, dtype, "stencil");
  let plan = planStencil(raw.shape, raw.strides, ax);
  if (!plan) {
    const m = materialize(dev, raw, dtype);
    dev.release(temp);
    ({ raw, temp } = m);
    plan = planStencil(raw.shape, raw.strides, ax)!;
  }
  let addPtr = 0;
  const addTemps: (CudaBuffer | null)[] = [];
  if (add) {
    const a = operand(dev, add, dtype, "stencil");
    const c = contiguous(dev, a.raw);
    addPtr = c.raw.ptr;
    addTemps.push(a.temp, c.temp);
  }
  const p = dev.params;
  p.ptr(0, raw.ptr);
  p.ptr(1, out.ptr);
  p.ptr(2, addPtr);
  p.u32s(3, plan.dims);
  p.strides8(4, plan.strides);
  p.u32s(5, bandWords(op));
  p.f64s(6, coefs); // struct BandCoefs (2 KiB) runs on through slot 13: it must stay the last parameter
  dev.launch(
    dev.kernel("stencil", stencilKernel(dtype)),
    Math.max(1, Math.min(plan.tiles, dev.maxBlocks)),
    STENCIL_THREADS,
  );
  dev.release(temp);
  for (const t of addTemps) dev.release(t);
  return out;
}

/**
 * Seeded choice of constraint points on a grid, as flat indices into the grid's space-time points
 * (row-major over `[nt, nx(, ny)]`, see `grid.ts`).
 *
 * {@link PointSampler} draws M points per step uniformly without replacement, from the whole grid
 * or from a subdomain given as an index range per axis (a mixture-of-experts layer calls it once per
 * expert); {@link initialPoints} and {@link boundaryPoints} give the fixed point sets of the initial
 * time slice and of the walls; {@link gatherPoints} picks a field's values at a point set.
 *
 * The random stream is the tensor layer's counter-based generator (Philox), computed on the host, so
 * a seed gives the same points on every backend and drawing them waits for no device.
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  fmtShape,
  Generator,
  reshape,
  ShapeError,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
import { fillRandom } from "../backend/cpu/random.ts";
import type { AxisName, Grid } from "./grid.ts";

/** A half-open index range `[start, stop)` along one axis. */
export type IndexRange = readonly [number, number];

/** Options of {@link PointSampler}. */
export interface SamplerOptions {
  /** Seed of the point stream (default 0). */
  seed?: number;
  /**
   * Restrict the points to a box of the grid: one `[start, stop)` index range per grid axis, in
   * layout order (t, x, y). Omitted: the whole grid.
   */
  region?: readonly IndexRange[];
  /**
   * `"global"` (default): flat indices into the whole grid. `"local"`: flat indices into the
   * region's own box (row-major over its extents), as an expert holding only its block uses them.
   */
  indexing?: "global" | "local";
  /** Backend of the index tensors (default: the default backend). */
  backend?: Backend;
}

function checkRegion(op: string, shape: readonly number[], region?: readonly IndexRange[]): IndexRange[] {
  if (region === undefined) return shape.map((n): IndexRange => [0, n]);
  if (region.length !== shape.length) {
    throw new ArgumentError(op, `region has ${region.length} ranges for a grid of rank ${shape.length}`);
  }
  return region.map(([a, b], i): IndexRange => {
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b > shape[i] || b <= a) {
      throw new ArgumentError(op, `region range [${a}, ${b}) does not fit axis ${i} of size ${shape[i]}`);
    }
    return [a, b];
  });
}

/**
 * Draws `m` distinct points per call, uniformly without replacement, from a grid or a box of it.
 * Each call advances the stream, so successive steps see fresh points; the same seed replays the
 * same sequence. The returned int32 indices are sorted ascending.
 *
 * @example
 * ```ts
 * import { Grid1D, PointSampler } from "./mod.ts";
 * const g = new Grid1D({ nt: 101, t: [0, 500], x: { n: 1024, centering: "cell" } });
 * // Expert 2 of 4 along x: columns 512..767, all times.
 * const s = new PointSampler(g, { seed: 3, region: [[0, 101], [512, 768]] });
 * const idx = s.next(20000); // int32 [20000], flat indices into the 101×1024 grid
 * ```
 */
export class PointSampler {
  /** Shape of the grid sampled from. */
  readonly shape: readonly number[];
  /** The box points come from. */
  readonly region: readonly IndexRange[];
  /** Number of points in the box. */
  readonly size: number;
  readonly #generator: Generator;
  readonly #indexing: "global" | "local";
  readonly #backend?: Backend;

  /** A sampler over `grid` (or a shape `[nt, nx(, ny)]`). */
  constructor(grid: Grid | readonly number[], options: SamplerOptions = {}) {
    this.shape = Array.isArray(grid) ? [...grid] : [...(grid as Grid).shape];
    if (this.shape.some((n) => !Number.isInteger(n) || n < 1)) {
      throw new ArgumentError("PointSampler", `grid shape ${fmtShape(this.shape)} must be positive integers`);
    }
    this.region = checkRegion("PointSampler", this.shape, options.region);
    this.size = this.region.reduce((s, [a, b]) => s * (b - a), 1);
    this.#generator = new Generator(options.seed ?? 0);
    this.#indexing = options.indexing ?? "global";
    if (this.#indexing !== "global" && this.#indexing !== "local") {
      throw new ArgumentError("PointSampler", `indexing must be "global" or "local", got ${this.#indexing}`);
    }
    this.#backend = options.backend;
  }

  /**
   * The next `m` points as host integers (sorted), without creating a tensor.
   *
   * @example
   * ```ts
   * import { PointSampler } from "./mod.ts";
   * new PointSampler([4, 8], { seed: 1 }).nextHost(5).length; // 5
   * ```
   */
  nextHost(m: number): Int32Array {
    if (!Number.isInteger(m) || m < 0 || m > this.size) {
      throw new ArgumentError("PointSampler", `cannot draw ${m} distinct points from a box of ${this.size}`);
    }
    // Sparse Fisher–Yates: a partial shuffle of 0..size−1 that stores only the displaced entries.
    // The stream's uniforms drawn here, bit for bit what `rand` gives on any backend: no device work, no read.
    const u = new Float64Array(m);
    fillRandom("uniform", u, this.#generator.seed, this.#generator.take(m));
    const moved = new Map<number, number>();
    const picked = new Int32Array(m);
    for (let i = 0; i < m; i++) {
      const j = i + Math.min(this.size - i - 1, Math.floor(u[i] * (this.size - i)));
      const vj = moved.get(j) ?? j;
      moved.set(j, moved.get(i) ?? i);
      picked[i] = vj;
    }
    picked.sort();
    if (this.#indexing === "local") return picked;
    return localToGlobal(picked, this.shape, this.region);
  }

  /**
   * The next `m` points as an int32 tensor of flat indices (sorted).
   *
   * @example
   * ```ts
   * import { Grid2D, PointSampler } from "./mod.ts";
   * const g = new Grid2D({ nt: 64, x: { n: 64, periodic: true }, y: { n: 64, periodic: true } });
   * const s = new PointSampler(g, { seed: 0 });
   * const first = s.next(20000);
   * const second = s.next(20000); // a fresh draw
   * ```
   */
  next(m: number): Tensor {
    return tensor(this.nextHost(m), { dtype: "int32", backend: this.#backend });
  }
}

function localToGlobal(local: Int32Array, shape: readonly number[], region: readonly IndexRange[]): Int32Array {
  const ext = region.map(([a, b]) => b - a);
  const out = new Int32Array(local.length);
  for (let k = 0; k < local.length; k++) {
    let rem = local[k];
    let flat = 0;
    let inner = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const i = rem % ext[d];
      rem = Math.floor(rem / ext[d]);
      flat += (region[d][0] + i) * inner;
      inner *= shape[d];
    }
    out[k] = flat;
  }
  return out;
}

/**
 * Splits flat indices into per-axis indices (host arrays, one per grid axis).
 *
 * @example
 * ```ts
 * import { unravelIndices } from "./mod.ts";
 * unravelIndices(new Int32Array([0, 5, 7]), [2, 4]); // [[0, 1, 1], [0, 1, 3]]
 * ```
 */
export function unravelIndices(flat: Int32Array | readonly number[], shape: readonly number[]): Int32Array[] {
  const out = shape.map(() => new Int32Array(flat.length));
  for (let k = 0; k < flat.length; k++) {
    let rem = flat[k];
    for (let d = shape.length - 1; d >= 0; d--) {
      out[d][k] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
    }
  }
  return out;
}

/**
 * Flat indices of the initial time slice (t = t0): all `nx(·ny)` points of the first time step.
 *
 * @example
 * ```ts
 * import { Grid1D, initialPoints } from "./mod.ts";
 * const g = new Grid1D({ nt: 10, x: { n: 32 } });
 * initialPoints(g).shape; // [32]: indices 0..31
 * ```
 */
export function initialPoints(grid: Grid, options: { backend?: Backend } = {}): Tensor {
  const n = grid.spaceShape.reduce((s, v) => s * v, 1);
  return tensor(Int32Array.from({ length: n }, (_, i) => i), { dtype: "int32", backend: options.backend });
}

/** Options of {@link boundaryPoints}. */
export interface BoundaryPointOptions {
  /** Leave out the points at t = t0 (where the initial condition already holds). Default false. */
  skipInitial?: boolean;
  /** Backend of the index tensor. */
  backend?: Backend;
}

/**
 * Flat indices of a wall: the grid points whose index along the space axis `axis` is the first
 * (`"low"`) or the last (`"high"`), at every time (row-major order).
 *
 * @example
 * ```ts
 * import { boundaryPoints, Grid1D } from "./mod.ts";
 * const g = new Grid1D({ nt: 3, x: { n: 4 } });
 * boundaryPoints(g, "x", "high").toArray(); // [3, 7, 11]
 * ```
 */
export function boundaryPoints(
  grid: Grid,
  axis: Exclude<AxisName, "t">,
  side: "low" | "high",
  options: BoundaryPointOptions = {},
): Tensor {
  const shape = grid.shape;
  const k = shape.length + grid.axisFromEnd(axis);
  const fixed = side === "low" ? 0 : shape[k] - 1;
  const out: number[] = [];
  const total = grid.size;
  const inner = shape.slice(k + 1).reduce((s, v) => s * v, 1);
  const perT = total / shape[0];
  for (let i = options.skipInitial ? perT : 0; i < total; i++) {
    if (Math.floor(i / inner) % shape[k] === fixed) out.push(i);
  }
  return tensor(Int32Array.from(out), { dtype: "int32", backend: options.backend });
}

/**
 * The values of a field at flat grid indices: `[...batch, nt, nx(, ny)]` → `[...batch, m]`.
 * Differentiable in the field (a gather).
 *
 * @example
 * ```ts
 * import { gatherPoints, Grid1D, PointSampler } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
 * const idx = new PointSampler(g, { seed: 1 }).next(10);
 * gatherPoints(randn([2, 8, 16]), g, idx).shape; // [2, 10]
 * ```
 */
export function gatherPoints(field: Tensor, grid: Grid, indices: Tensor): Tensor {
  grid.checkField("gatherPoints", field);
  if (indices.ndim !== 1) {
    throw new ShapeError("gatherPoints", `indices must be 1-D, got shape ${fmtShape(indices.shape)}`);
  }
  const lead = field.shape.slice(0, field.ndim - grid.shape.length);
  return reshape(field, [...lead, grid.size]).indexSelect(lead.length, indices);
}

/**
 * Regions for a uniform split of a grid into blocks: `parts[k]` pieces along axis k (layout order
 * t, x, y), each an index range per axis, ordered row-major over the blocks (the layout of
 * PI-HC-MoE's `dimension_partition`). Axes that do not divide evenly give the remainder to the
 * first blocks.
 *
 * @example
 * ```ts
 * import { blockRegions } from "./mod.ts";
 * blockRegions([101, 1024], [1, 4]); // [[[0,101],[0,256]], [[0,101],[256,512]], …] (4 regions)
 * ```
 */
export function blockRegions(shape: readonly number[], parts: readonly number[]): IndexRange[][] {
  if (parts.length !== shape.length) {
    throw new ArgumentError("blockRegions", `${parts.length} part counts for a grid of rank ${shape.length}`);
  }
  const perAxis = shape.map((n, k) => {
    const p = parts[k];
    if (!Number.isInteger(p) || p < 1 || p > n) {
      throw new ArgumentError("blockRegions", `cannot split axis ${k} of size ${n} into ${p} parts`);
    }
    const base = Math.floor(n / p);
    const extra = n % p;
    const ranges: IndexRange[] = [];
    let at = 0;
    for (let i = 0; i < p; i++) {
      const len = base + (i < extra ? 1 : 0);
      ranges.push([at, at + len]);
      at += len;
    }
    return ranges;
  });
  let out: IndexRange[][] = [[]];
  for (const ranges of perAxis) out = out.flatMap((prefix) => ranges.map((r) => [...prefix, r]));
  return out;
}

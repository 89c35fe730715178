/**
 * Uniform space-time grids: {@link Grid1D} (t, x) and {@link Grid2D} (t, x, y).
 *
 * **Field layout.** A field on a grid is a tensor whose trailing axes are the grid axes in the
 * order time, then space: `[...batch, nt, nx]` in 1D+t and `[...batch, nt, nx, ny]` in 2D+t
 * (the leading batch axes are optional and may be several). A field at one time (an initial
 * condition) drops the time axis: `[...batch, nx]` or `[...batch, nx, ny]`. Flat point indices
 * (see `sampling.ts`) count the grid axes row-major: `i = (it·nx + ix)·ny + iy`.
 *
 * **Axes.** Time is always bounded with nodes at both ends: `t_i = t0 + i·dt`, `dt = (t1 − t0)/(nt − 1)`.
 * A periodic space axis on `[a, b)` has `n` nodes `a + i·h` with `h = (b − a)/n` (the end point is the
 * start point again). A bounded space axis has either nodes on both walls (`"node"`, the default:
 * `h = (b − a)/(n − 1)`) or cell centres (`"cell"`: `a + (i + ½)·h`, `h = (b − a)/n`, as PDEBench's
 * finite-volume grids).
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  type DType,
  fmtShape,
  getDefaultBackend,
  ShapeError,
  Tensor,
} from "../tensor/mod.ts";

/** The name of a grid axis. */
export type AxisName = "t" | "x" | "y";

/** Where the points of a bounded space axis sit: on the walls and between them, or at cell centres. */
export type Centering = "node" | "cell";

/** Options for building tensors on a grid. */
export interface GridTensorOptions {
  /** Element type (default float32). */
  dtype?: DType;
  /** Backend (default: the default backend). */
  backend?: Backend;
}

/** Description of one space axis of a grid. */
export interface SpaceAxisOptions {
  /** Number of points. */
  n: number;
  /** Interval `[start, end]` (default `[0, 1]`). */
  range?: readonly [number, number];
  /** Periodic wrap-around (default false: bounded, with walls at both ends). */
  periodic?: boolean;
  /** Point placement on a bounded axis (default `"node"`; ignored for periodic axes). */
  centering?: Centering;
}

/**
 * One uniform axis of a grid.
 *
 * @example
 * ```ts
 * import { Axis } from "./mod.ts";
 * const x = new Axis("x", 8, [0, 1], true);
 * x.spacing; // 0.125
 * ```
 */
export class Axis {
  /** Axis name. */
  readonly name: AxisName;
  /** Number of points. */
  readonly n: number;
  /** Interval start. */
  readonly start: number;
  /** Interval end. */
  readonly end: number;
  /** Whether the axis wraps around. */
  readonly periodic: boolean;
  /** Point placement on a bounded axis. */
  readonly centering: Centering;
  /** Distance between neighbouring points. */
  readonly spacing: number;

  /** An axis of `n` points over `[start, end]` (see the module notes for where the points sit). */
  constructor(
    name: AxisName,
    n: number,
    range: readonly [number, number] = [0, 1],
    periodic = false,
    centering: Centering = "node",
  ) {
    if (!Number.isInteger(n) || n < 1) throw new ArgumentError("Grid", `axis ${name} needs n ≥ 1 points, got ${n}`);
    const [a, b] = range;
    if (!Number.isFinite(a) || !Number.isFinite(b) || !(b > a)) {
      throw new ArgumentError("Grid", `axis ${name} needs a finite range with end > start, got [${a}, ${b}]`);
    }
    if (name === "t" && periodic) throw new ArgumentError("Grid", "the time axis cannot be periodic");
    if (centering !== "node" && centering !== "cell") {
      throw new ArgumentError("Grid", `axis ${name}: centering must be "node" or "cell", got ${centering}`);
    }
    const nodes = !periodic && centering === "node";
    if (nodes && n < 2) throw new ArgumentError("Grid", `axis ${name} with nodes on both ends needs n ≥ 2`);
    this.name = name;
    this.n = n;
    this.start = a;
    this.end = b;
    this.periodic = periodic;
    this.centering = periodic ? "node" : centering;
    this.spacing = nodes ? (b - a) / (n - 1) : (b - a) / n;
  }

  /** Length of the interval. */
  get length(): number {
    return this.end - this.start;
  }

  /**
   * The coordinates of the points, in float64 on the host.
   *
   * @example
   * ```ts
   * import { Axis } from "./mod.ts";
   * new Axis("x", 4, [0, 1], false, "cell").points(); // [0.125, 0.375, 0.625, 0.875]
   * ```
   */
  points(): Float64Array {
    const out = new Float64Array(this.n);
    const shift = this.centering === "cell" ? 0.5 : 0;
    for (let i = 0; i < this.n; i++) out[i] = this.start + (i + shift) * this.spacing;
    return out;
  }

  /** A copy with `n` points over the same interval, periodicity and centering. */
  withPoints(n: number): Axis {
    return new Axis(this.name, n, [this.start, this.end], this.periodic, this.centering);
  }
}

/**
 * What every grid offers; {@link Grid1D} and {@link Grid2D} implement it.
 *
 * @example
 * ```ts
 * import { type Grid, Grid1D } from "./mod.ts";
 * const g: Grid = new Grid1D({ nt: 5, x: { n: 16, periodic: true } });
 * g.shape; // [5, 16]
 * ```
 */
export interface Grid {
  /** Number of space dimensions (1 or 2). */
  readonly dims: 1 | 2;
  /** The axes in layout order: t, x (, y). */
  readonly axes: readonly Axis[];
  /** The time axis. */
  readonly t: Axis;
  /** The first space axis. */
  readonly x: Axis;
  /** Grid shape in layout order `[nt, nx(, ny)]`. */
  readonly shape: readonly number[];
  /** Shape of one time slice `[nx(, ny)]`. */
  readonly spaceShape: readonly number[];
  /** Total number of space-time points. */
  readonly size: number;
  /** The axis called `name` (throws for `y` on a 1D grid). */
  axis(name: AxisName): Axis;
  /** Position of axis `name` counted from the end of a field's shape (t is −2 in 1D, −3 in 2D). */
  axisFromEnd(name: AxisName, withTime?: boolean): number;
  /** Coordinate tensors, each of the grid's shape. */
  coordinates(options?: GridTensorOptions): Record<string, Tensor>;
  /** Checks that `field` ends with this grid's axes (`withTime` false: the space axes only). */
  checkField(op: string, field: Tensor, withTime?: boolean): void;
}

/** What Grid1D and Grid2D share: axes, shape, spacing, coordinates and field checks. */
export abstract class GridBase implements Grid {
  abstract readonly dims: 1 | 2;
  abstract readonly axes: readonly Axis[];
  abstract readonly t: Axis;
  abstract readonly x: Axis;

  get shape(): readonly number[] {
    return this.axes.map((a) => a.n);
  }

  get spaceShape(): readonly number[] {
    return this.axes.slice(1).map((a) => a.n);
  }

  get size(): number {
    return this.axes.reduce((s, a) => s * a.n, 1);
  }

  axis(name: AxisName): Axis {
    const a = this.axes.find((ax) => ax.name === name);
    if (!a) throw new ArgumentError("Grid", `a ${this.dims}D grid has no axis ${name}`);
    return a;
  }

  axisFromEnd(name: AxisName, withTime = true): number {
    const names = (withTime ? this.axes : this.axes.slice(1)).map((a) => a.name);
    const i = names.indexOf(name);
    if (i < 0) {
      throw new ArgumentError(
        "Grid",
        name === "t" ? "a field without a time axis has no t derivative" : `a ${this.dims}D grid has no axis ${name}`,
      );
    }
    return i - names.length;
  }

  coordinates(options: GridTensorOptions = {}): Record<string, Tensor> {
    const backend = options.backend ?? getDefaultBackend();
    const dtype = options.dtype ?? "float32";
    const shape = this.shape;
    const size = this.size;
    const out: Record<string, Tensor> = {};
    this.axes.forEach((axis, k) => {
      const pts = axis.points();
      const inner = shape.slice(k + 1).reduce((s, n) => s * n, 1);
      const host = new Float64Array(size);
      for (let i = 0; i < size; i++) host[i] = pts[Math.floor(i / inner) % axis.n];
      const data = dtype === "float64" ? host : new Float32Array(host);
      out[axis.name] = Tensor.fromBuffer(backend.fromHost(data, dtype), shape, dtype);
    });
    return out;
  }

  checkField(op: string, field: Tensor, withTime = true): void {
    const want = withTime ? this.shape : this.spaceShape;
    const have = field.shape.slice(field.ndim - want.length);
    if (field.ndim < want.length || have.some((d, i) => d !== want[i])) {
      throw new ShapeError(
        op,
        `field of shape ${fmtShape(field.shape)} does not end with the grid's ${
          withTime ? "[nt, nx" + (this.dims === 2 ? ", ny]" : "]") : "[nx" + (this.dims === 2 ? ", ny]" : "]")
        } = ${fmtShape(want)}`,
      );
    }
  }
}

/** Options of {@link Grid1D}. */
export interface Grid1DOptions {
  /** Number of time points, including t0 and t1. */
  nt: number;
  /** Time interval (default `[0, 1]`). */
  t?: readonly [number, number];
  /** The space axis. */
  x: SpaceAxisOptions;
}

/**
 * A uniform 1D+t grid; fields are laid out `[...batch, nt, nx]`.
 *
 * @example
 * ```ts
 * import { Grid1D } from "./mod.ts";
 * const g = new Grid1D({ nt: 101, t: [0, 500], x: { n: 1024, centering: "cell" } });
 * g.t.spacing; // 5
 * g.x.spacing; // 1/1024
 * const { t, x } = g.coordinates({ dtype: "float64" }); // each [101, 1024]
 * ```
 */
export class Grid1D extends GridBase {
  /** Number of space dimensions. */
  readonly dims = 1 as const;
  /** The time axis. */
  readonly t: Axis;
  /** The first space axis. */
  readonly x: Axis;
  /** The axes in layout order. */
  readonly axes: readonly Axis[];

  /** A grid from its time and space axes. */
  constructor(options: Grid1DOptions) {
    super();
    this.t = new Axis("t", options.nt, options.t ?? [0, 1]);
    this.x = spaceAxis("x", options.x);
    this.axes = [this.t, this.x];
  }

  /**
   * The same domain with other point counts.
   *
   * @example
   * ```ts
   * import { Grid1D } from "./mod.ts";
   * new Grid1D({ nt: 11, x: { n: 16, periodic: true } }).resized({ nx: 32 }).shape; // [11, 32]
   * ```
   */
  resized(counts: { nt?: number; nx?: number }): Grid1D {
    return new Grid1D({
      nt: counts.nt ?? this.t.n,
      t: [this.t.start, this.t.end],
      x: axisOptions(this.x, counts.nx),
    });
  }
}

/** Options of {@link Grid2D}. */
export interface Grid2DOptions {
  /** Number of time points, including t0 and t1. */
  nt: number;
  /** Time interval (default `[0, 1]`). */
  t?: readonly [number, number];
  /** The first space axis. */
  x: SpaceAxisOptions;
  /** The second space axis. */
  y: SpaceAxisOptions;
}

/**
 * A uniform 2D+t grid; fields are laid out `[...batch, nt, nx, ny]`.
 *
 * @example
 * ```ts
 * import { Grid2D } from "./mod.ts";
 * const g = new Grid2D({ nt: 64, t: [0, 5], x: { n: 64, periodic: true }, y: { n: 64, periodic: true } });
 * g.shape; // [64, 64, 64]
 * g.x.spacing; // 1/64
 * ```
 */
export class Grid2D extends GridBase {
  /** Number of space dimensions. */
  readonly dims = 2 as const;
  /** The time axis. */
  readonly t: Axis;
  /** The first space axis. */
  readonly x: Axis;
  /** The second space axis. */
  readonly y: Axis;
  /** The axes in layout order. */
  readonly axes: readonly Axis[];

  /** A grid from its time and space axes. */
  constructor(options: Grid2DOptions) {
    super();
    this.t = new Axis("t", options.nt, options.t ?? [0, 1]);
    this.x = spaceAxis("x", options.x);
    this.y = spaceAxis("y", options.y);
    this.axes = [this.t, this.x, this.y];
  }

  /**
   * The same domain with other point counts.
   *
   * @example
   * ```ts
   * import { Grid2D } from "./mod.ts";
   * const g = new Grid2D({ nt: 5, x: { n: 8, periodic: true }, y: { n: 8, periodic: true } });
   * g.resized({ nx: 16, ny: 16 }).shape; // [5, 16, 16]
   * ```
   */
  resized(counts: { nt?: number; nx?: number; ny?: number }): Grid2D {
    return new Grid2D({
      nt: counts.nt ?? this.t.n,
      t: [this.t.start, this.t.end],
      x: axisOptions(this.x, counts.nx),
      y: axisOptions(this.y, counts.ny),
    });
  }
}

function spaceAxis(name: "x" | "y", o: SpaceAxisOptions): Axis {
  if (!o || typeof o !== "object") throw new ArgumentError("Grid", `axis ${name} needs options { n, ... }`);
  return new Axis(name, o.n, o.range ?? [0, 1], o.periodic ?? false, o.centering ?? "node");
}

function axisOptions(a: Axis, n?: number): SpaceAxisOptions {
  return { n: n ?? a.n, range: [a.start, a.end], periodic: a.periodic, centering: a.centering };
}

/**
 * Finite-difference derivatives of fields laid out on a {@link Grid} (`[...batch, nt, nx(, ny)]`, see
 * `grid.ts`). Each derivative is one banded operator applied along its axis by the differentiable
 * `stencil` op (one fused pass, one CUDA kernel on the GPU; its gradient applies the transposed
 * operator), so gradients flow through them to any order.
 *
 * Every stencil is second-order accurate:
 * - interior (and every point of a periodic axis, which wraps around): central
 *   `(u[i+1] − u[i−1]) / 2h` and `(u[i+1] − 2u[i] + u[i−1]) / h²`;
 * - walls of a bounded axis (and both ends of the time axis): one-sided
 *   `(∓3u₀ ± 4u₁ ∓ u₂) / 2h` and `(2u₀ − 5u₁ + 4u₂ − u₃) / h²`.
 *
 * First derivatives are exact on quadratics and second derivatives on cubics. The operators are
 * linear (their float64 coefficients include the 1/2h or 1/h²): applied to basis functions they
 * give the columns of a residual's Jacobian.
 *
 * @module
 */

import { ArgumentError, type BandedOperator, bandedOperator, stencil, type Tensor } from "../tensor/mod.ts";
import type { AxisName, Grid } from "./grid.ts";

/** Options of the derivative functions. */
export interface DiffOptions {
  /** Whether the field has the time axis (default true). False for fields at one time, `[...batch, nx(, ny)]`. */
  withTime?: boolean;
}

/**
 * A derivative of a field: how many times along each axis, or the Laplacian. `{}` is the field itself.
 *
 * @example
 * ```ts
 * import type { DerivativeSpec } from "./finite_difference.ts";
 * const uxx: DerivativeSpec = { x: 2 };
 * const lap: DerivativeSpec = { laplacian: true };
 * ```
 */
export interface DerivativeSpec {
  /** Order in t. */
  t?: number;
  /** Order in x. */
  x?: number;
  /** Order in y. */
  y?: number;
  /** The Laplacian (sum of the second space derivatives), applied after the axis derivatives. */
  laplacian?: boolean;
}

/** Operators already built, by axis length, spacing, order and periodicity (a few per grid). */
const operators = new Map<string, BandedOperator>();
const MAX_CACHED_OPERATORS = 256;

/** The derivative operator of one axis: `c·(integer stencil)` with c = 1/2h or 1/h². */
function derivativeOperator(n: number, h: number, order: 1 | 2, periodic: boolean): BandedOperator {
  const key = `${n} ${h} ${order} ${periodic}`;
  let op = operators.get(key);
  if (op) return op;
  const c = order === 1 ? 1 / (2 * h) : 1 / (h * h);
  const scaled = (row: number[]) => row.map((v) => v * c);
  const interior = order === 1 ? [-1, 0, 1] : [1, -2, 1];
  const head = order === 1 ? [-3, 4, -1] : [2, -5, 4, -1];
  const tail = order === 1 ? [1, -4, 3] : [-1, 4, -5, 2];
  op = bandedOperator({
    n,
    lo: -1,
    stencil: scaled(interior),
    periodic,
    head: periodic ? [] : [scaled(head)],
    tail: periodic ? [] : [scaled(tail)],
  });
  if (operators.size >= MAX_CACHED_OPERATORS) operators.clear();
  operators.set(key, op);
  return op;
}

/** The operator of `order` along `axis` and the tensor axis it acts on; checks the field and the axis length. */
function axisOperator(u: Tensor, grid: Grid, axis: AxisName, order: 1 | 2, withTime: boolean) {
  grid.checkField("diff", u, withTime);
  const a = grid.axis(axis);
  const dim = u.ndim + grid.axisFromEnd(axis, withTime);
  const n = a.n;
  if (order !== 1 && order !== 2) throw new ArgumentError("diff", `order must be 1 or 2, got ${order}`);
  if (a.periodic) {
    if (n < 3) throw new ArgumentError("diff", `periodic axis ${axis} needs at least 3 points, has ${n}`);
  } else if (order === 1) {
    if (n < 3) throw new ArgumentError("diff", `bounded axis ${axis} needs at least 3 points for d/d${axis}, has ${n}`);
  } else if (n < 4) {
    throw new ArgumentError("diff", `bounded axis ${axis} needs at least 4 points for d²/d${axis}², has ${n}`);
  }
  return { op: derivativeOperator(n, a.spacing, order, a.periodic), dim };
}

/**
 * First or second derivative of `u` along one grid axis (second-order stencils; see the module notes).
 *
 * @example
 * ```ts
 * import { diff, Grid1D } from "./mod.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 2, x: { n: 5 } }); // x = 0, 0.25, …, 1
 * const u = tensor([[0, 0.0625, 0.25, 0.5625, 1], [0, 0.0625, 0.25, 0.5625, 1]], { dtype: "float64" }); // x²
 * diff(u, g, "x").toArray(); // 2x at every point, walls included: [[0, 0.5, 1, 1.5, 2], …]
 * diff(u, g, "x", 2).toArray(); // 2 everywhere
 * ```
 */
export function diff(u: Tensor, grid: Grid, axis: AxisName, order: 1 | 2 = 1, options: DiffOptions = {}): Tensor {
  const { op, dim } = axisOperator(u, grid, axis, order, options.withTime ?? true);
  return stencil(u, op, dim);
}

/**
 * ∂u/∂t (central inside, one-sided second order at t0 and t1).
 *
 * @example
 * ```ts
 * import { dt, Grid1D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
 * dt(randn([2, 8, 16]), g).shape; // [2, 8, 16]
 * ```
 */
export function dt(u: Tensor, grid: Grid): Tensor {
  return diff(u, grid, "t", 1);
}

/**
 * ∂u/∂x.
 *
 * @example
 * ```ts
 * import { dx, Grid1D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
 * dx(randn([8, 16]), g).shape; // [8, 16]
 * ```
 */
export function dx(u: Tensor, grid: Grid, options: DiffOptions = {}): Tensor {
  return diff(u, grid, "x", 1, options);
}

/**
 * ∂u/∂y (2D grids).
 *
 * @example
 * ```ts
 * import { dy, Grid2D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid2D({ nt: 4, x: { n: 8, periodic: true }, y: { n: 8, periodic: true } });
 * dy(randn([4, 8, 8]), g).shape; // [4, 8, 8]
 * ```
 */
export function dy(u: Tensor, grid: Grid, options: DiffOptions = {}): Tensor {
  return diff(u, grid, "y", 1, options);
}

/**
 * ∂²u/∂x².
 *
 * @example
 * ```ts
 * import { dxx, Grid1D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 8, x: { n: 16 } });
 * dxx(randn([8, 16]), g).shape; // [8, 16]
 * ```
 */
export function dxx(u: Tensor, grid: Grid, options: DiffOptions = {}): Tensor {
  return diff(u, grid, "x", 2, options);
}

/**
 * ∂²u/∂y² (2D grids).
 *
 * @example
 * ```ts
 * import { dyy, Grid2D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid2D({ nt: 4, x: { n: 8 }, y: { n: 8 } });
 * dyy(randn([4, 8, 8]), g).shape; // [4, 8, 8]
 * ```
 */
export function dyy(u: Tensor, grid: Grid, options: DiffOptions = {}): Tensor {
  return diff(u, grid, "y", 2, options);
}

/**
 * ∂²u/∂x∂y (2D grids): the first-derivative stencils applied in turn.
 *
 * @example
 * ```ts
 * import { dxy, Grid2D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid2D({ nt: 4, x: { n: 8, periodic: true }, y: { n: 8 } });
 * dxy(randn([4, 8, 8]), g).shape; // [4, 8, 8]
 * ```
 */
export function dxy(u: Tensor, grid: Grid, options: DiffOptions = {}): Tensor {
  return diff(diff(u, grid, "y", 1, options), grid, "x", 1, options);
}

/**
 * The Laplacian: ∂²u/∂x² in 1D, ∂²u/∂x² + ∂²u/∂y² in 2D.
 *
 * @example
 * ```ts
 * import { Grid2D, laplacian } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid2D({ nt: 4, x: { n: 8, periodic: true }, y: { n: 8, periodic: true } });
 * laplacian(randn([2, 4, 8, 8]), g).shape; // [2, 4, 8, 8]
 * ```
 */
export function laplacian(u: Tensor, grid: Grid, options: DiffOptions = {}): Tensor {
  const uxx = diff(u, grid, "x", 2, options);
  if (grid.dims === 1) return uxx;
  // ∂²u/∂y² with ∂²u/∂x² added in the same pass.
  const { op, dim } = axisOperator(u, grid, "y", 2, options.withTime ?? true);
  return stencil(u, op, dim, { add: uxx });
}

/**
 * Applies the derivative `spec` to `u`: for each axis, its order's worth of second-derivative
 * stencils (two at a time) then one first-derivative stencil for an odd order; then the Laplacian
 * if asked. `{}` returns `u` itself.
 *
 * @example
 * ```ts
 * import { applyDerivative, Grid1D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
 * const u = randn([8, 16]);
 * applyDerivative(u, g, { t: 1, x: 1 }).shape; // [8, 16]: ∂²u/∂t∂x
 * ```
 */
export function applyDerivative(u: Tensor, grid: Grid, spec: DerivativeSpec, options: DiffOptions = {}): Tensor {
  let out = u;
  for (const axis of ["t", "x", "y"] as const) {
    const k = spec[axis] ?? 0;
    if (!Number.isInteger(k) || k < 0) {
      throw new ArgumentError("applyDerivative", `order along ${axis} must be a non-negative integer, got ${k}`);
    }
    for (let i = 0; i + 1 < k; i += 2) out = diff(out, grid, axis, 2, options);
    if (k % 2 === 1) out = diff(out, grid, axis, 1, options);
  }
  if (spec.laplacian) out = laplacian(out, grid, options);
  return out;
}

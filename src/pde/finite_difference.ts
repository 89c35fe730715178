/**
 * Finite-difference derivatives of fields laid out on a {@link Grid} (`[...batch, nt, nx(, ny)]`, see
 * `grid.ts`), built from differentiable tensor ops (narrow, concat, roll), so gradients flow through
 * them to any order.
 *
 * Every stencil is second-order accurate:
 * - interior (and every point of a periodic axis, which wraps around): central
 *   `(u[i+1] − u[i−1]) / 2h` and `(u[i+1] − 2u[i] + u[i−1]) / h²`;
 * - walls of a bounded axis (and both ends of the time axis): one-sided
 *   `(∓3u₀ ± 4u₁ ∓ u₂) / 2h` and `(2u₀ − 5u₁ + 4u₂ − u₃) / h²`.
 *
 * So first derivatives are exact on quadratics and second derivatives on cubics. The operators are
 * linear: applied to basis functions they give the columns of a residual's Jacobian.
 *
 * @module
 */

import { ArgumentError, concat, narrow, roll, type Tensor } from "../tensor/mod.ts";
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

function axisView(u: Tensor, grid: Grid, axis: AxisName, withTime: boolean) {
  grid.checkField("diff", u, withTime);
  const a = grid.axis(axis);
  const dim = u.ndim + grid.axisFromEnd(axis, withTime);
  return { a, dim };
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
  const { a, dim } = axisView(u, grid, axis, options.withTime ?? true);
  const h = a.spacing;
  const n = a.n;
  if (order !== 1 && order !== 2) throw new ArgumentError("diff", `order must be 1 or 2, got ${order}`);
  if (a.periodic) {
    if (n < 3) throw new ArgumentError("diff", `periodic axis ${axis} needs at least 3 points, has ${n}`);
    const next = roll(u, -1, dim);
    const prev = roll(u, 1, dim);
    return order === 1 ? next.sub(prev).mul(1 / (2 * h)) : next.sub(u.mul(2)).add(prev).mul(1 / (h * h));
  }
  const at = (i: number, len = 1) => narrow(u, dim, i, len);
  if (order === 1) {
    if (n < 3) throw new ArgumentError("diff", `bounded axis ${axis} needs at least 3 points for d/d${axis}, has ${n}`);
    const c = 1 / (2 * h);
    const left = at(1).mul(4).sub(at(0).mul(3)).sub(at(2)).mul(c);
    const inner = at(2, n - 2).sub(at(0, n - 2)).mul(c);
    const right = at(n - 1).mul(3).sub(at(n - 2).mul(4)).add(at(n - 3)).mul(c);
    return concat([left, inner, right], dim);
  }
  if (n < 4) throw new ArgumentError("diff", `bounded axis ${axis} needs at least 4 points for d²/d${axis}², has ${n}`);
  const c = 1 / (h * h);
  const left = at(0).mul(2).sub(at(1).mul(5)).add(at(2).mul(4)).sub(at(3)).mul(c);
  const inner = at(2, n - 2).sub(at(1, n - 2).mul(2)).add(at(0, n - 2)).mul(c);
  const right = at(n - 1).mul(2).sub(at(n - 2).mul(5)).add(at(n - 3).mul(4)).sub(at(n - 4)).mul(c);
  return concat([left, inner, right], dim);
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
  return grid.dims === 1 ? uxx : uxx.add(diff(u, grid, "y", 2, options));
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

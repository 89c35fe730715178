/**
 * What every PDE problem offers: its residual as a mathjs expression (the same path a user's own
 * PDE takes, see `expression.ts`), parameters, initial and boundary conditions as residual terms,
 * a seeded initial-condition sampler and a classical reference solver written in tensor ops (so it
 * runs on the CPU and the GPU), which together generate datasets in the grid layout
 * `[n, nt, nx(, ny)]`.
 *
 * @module
 */

import { ArgumentError, type Backend, concat, type DType, narrow, type Tensor, tidy } from "../tensor/mod.ts";
import { type ExpressionOptions, parseResidual, type ResidualExpression, type Values } from "./expression.ts";
import type { Grid } from "./grid.ts";

/**
 * A boundary condition as a residual that vanishes on a wall: `expression` is evaluated at the
 * points of the wall (`axis` index 0 for `"low"`, n − 1 for `"high"`) at every time, with the
 * problem's fields, derivatives (one-sided finite differences at the wall) and parameters.
 *
 * @example
 * ```ts
 * import type { BoundaryCondition } from "./problem.ts";
 * const left: BoundaryCondition = { name: "left", axis: "x", side: "low", expression: "u - 1" };
 * const right: BoundaryCondition = { name: "right", axis: "x", side: "high", expression: "u + D * u_x" };
 * ```
 */
export interface BoundaryCondition {
  /** Name of the condition (key of {@link PdeProblem.boundaryResiduals}). */
  readonly name: string;
  /** The space axis whose wall it holds on. */
  readonly axis: "x" | "y";
  /** Which wall. */
  readonly side: "low" | "high";
  /** Residual on the wall (mathjs syntax, as the PDE residual). */
  readonly expression: string;
}

/** Where tensors are made and in what precision. */
export interface TensorPlacement {
  /** Element type (default float32 for datasets; solvers follow their input). */
  dtype?: DType;
  /** Backend (default: the default backend). */
  backend?: Backend;
}

/** A generated dataset: initial conditions and reference solutions on a grid. */
export interface Dataset<G extends Grid = Grid> {
  /** The grid of `u`. */
  readonly grid: G;
  /** Initial conditions `[n, nx(, ny)]`. */
  readonly u0: Tensor;
  /** Solutions `[n, nt, nx(, ny)]` (the first time slice is `u0`). */
  readonly u: Tensor;
  /** The parameters it was made with. */
  readonly parameters: Readonly<Record<string, number>>;
}

/**
 * Base class of the built-in PDE problems. A subclass states its residual, definitions, fields,
 * parameters and boundary conditions, and implements its initial-condition sampler and solver.
 *
 * @example
 * ```ts
 * import { Grid1D, Heat1D } from "./mod.ts";
 * const heat = new Heat1D({ kappa: 0.1 });
 * const g = new Grid1D({ nt: 21, x: { n: 33 } });
 * const u0 = heat.initialConditions(2, g, { seed: 0, dtype: "float64" });
 * const u = heat.solve(u0, g); // [2, 21, 33]
 * heat.residual(u, g).abs().max().item(); // small: O(dt² + dx²)
 * ```
 */
export abstract class PdeProblem<G extends Grid = Grid> {
  /** Short name. */
  abstract readonly name: string;
  /** Number of space dimensions. */
  abstract readonly dims: 1 | 2;
  /** The residual, in mathjs syntax. */
  abstract readonly residualSource: string;
  /** Parameter values. */
  abstract readonly parameters: Readonly<Record<string, number>>;
  /** Helper definitions used by the residual. */
  readonly definitions: readonly string[] = [];
  /** Field names; the first is the unknown, the others are derived from it ({@link fieldsOf}). */
  readonly fields: readonly string[] = ["u"];
  /** Conditions on the walls of bounded axes (none for periodic problems). */
  readonly boundaryConditions: readonly BoundaryCondition[] = [];
  #expression?: ResidualExpression;
  #boundary?: Map<string, ResidualExpression>;

  /** Options the residual and the boundary conditions are parsed with. */
  protected expressionOptions(): ExpressionOptions {
    return { fields: this.fields, parameters: this.parameters, definitions: this.definitions, dims: this.dims };
  }

  /**
   * The compiled residual (parsed on first use).
   *
   * @example
   * ```ts
   * import { Burgers1D } from "./mod.ts";
   * new Burgers1D().expression.partial("u_x").text; // "u"
   * ```
   */
  get expression(): ResidualExpression {
    this.#expression ??= parseResidual(this.residualSource, this.expressionOptions());
    return this.#expression;
  }

  /** The compiled boundary conditions, by name. */
  get boundaryExpressions(): ReadonlyMap<string, ResidualExpression> {
    if (!this.#boundary) {
      this.#boundary = new Map(
        this.boundaryConditions.map((bc) => [bc.name, parseResidual(bc.expression, this.expressionOptions())]),
      );
    }
    return this.#boundary;
  }

  /**
   * The fields the residual reads, given the unknown (`[...batch, nt, nx(, ny)]`). Problems with
   * derived fields (Navier–Stokes: velocity from vorticity) add them here.
   */
  fieldsOf(u: Tensor, _grid: G): Record<string, Tensor> {
    return { [this.fields[0]]: u };
  }

  /**
   * Values of every symbol of the residual on the grid (finite-difference derivatives).
   *
   * @example
   * ```ts
   * import { Burgers1D, Grid1D } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
   * Object.keys(new Burgers1D().terms(randn([8, 16]), g)); // ["u_t", "u", "u_x", "u_xx"]
   * ```
   */
  terms(u: Tensor, grid: G, inputs: Values = {}): Record<string, Tensor | number> {
    return this.expression.terms(this.fieldsOf(u, grid), grid, inputs);
  }

  /**
   * The PDE residual of `u` on every grid point (finite differences in space and time).
   *
   * @example
   * ```ts
   * import { Grid1D, Heat1D } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const g = new Grid1D({ nt: 8, x: { n: 16 } });
   * new Heat1D().residual(randn([2, 8, 16]), g).shape; // [2, 8, 16]
   * ```
   */
  residual(u: Tensor, grid: G, inputs: Values = {}): Tensor {
    grid.checkField(`${this.name}.residual`, u);
    return this.expression.evaluate(this.terms(u, grid, inputs));
  }

  /**
   * The initial-condition residual `u(t0) − u0`: `[...batch, nx(, ny)]`.
   *
   * @example
   * ```ts
   * import { Grid1D, Heat1D } from "./mod.ts";
   * import { randn, zeros } from "../tensor/mod.ts";
   * const g = new Grid1D({ nt: 8, x: { n: 16 } });
   * new Heat1D().initialResidual(randn([2, 8, 16]), g, zeros([2, 16])).shape; // [2, 16]
   * ```
   */
  initialResidual(u: Tensor, grid: G, u0: Tensor): Tensor {
    grid.checkField(`${this.name}.initialResidual`, u);
    const tAxis = u.ndim + grid.axisFromEnd("t");
    return narrow(u, tAxis, 0, 1).squeeze(tAxis).sub(u0);
  }

  /**
   * Each boundary condition's residual on its wall, at every time: `[...batch, nt(, n_other)]`.
   *
   * @example
   * ```ts
   * import { DiffusionSorption } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const ds = new DiffusionSorption();
   * const g = ds.grid({ nt: 11, nx: 64 });
   * const bc = ds.boundaryResiduals(randn([1, 11, 64], { dtype: "float64" }).abs(), g);
   * bc.left.shape; // [1, 11]
   * ```
   */
  boundaryResiduals(u: Tensor, grid: G, inputs: Values = {}): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const fields = this.fieldsOf(u, grid);
    for (const bc of this.boundaryConditions) {
      const axis = grid.axis(bc.axis);
      if (axis.periodic) {
        throw new ArgumentError(`${this.name}.boundaryResiduals`, `axis ${bc.axis} of the grid is periodic`);
      }
      const expr = this.boundaryExpressions.get(bc.name)!;
      const dim = u.ndim + grid.axisFromEnd(bc.axis);
      const at = bc.side === "low" ? 0 : axis.n - 1;
      const terms = expr.terms(fields, grid, inputs);
      const wall: Record<string, Tensor | number> = {};
      for (const [k, v] of Object.entries(terms)) {
        if (typeof v === "number") {
          wall[k] = v;
        } else {
          const d = v.ndim - (u.ndim - dim);
          wall[k] = narrow(v, d, at, 1).squeeze(d);
        }
      }
      out[bc.name] = expr.evaluate(wall);
    }
    return out;
  }

  /** Seeded initial conditions `[n, nx(, ny)]` on the grid's first time slice. */
  abstract initialConditions(n: number, grid: G, options?: TensorPlacement & { seed?: number }): Tensor;

  /** The reference solution `[...batch, nt, nx(, ny)]` from initial conditions `[...batch, nx(, ny)]`. */
  abstract solve(u0: Tensor, grid: G): Tensor;

  /**
   * Solves in batches of `batchSize` (each in its own memory scope) and stacks the results.
   *
   * @example
   * ```ts
   * import { Grid1D, Heat1D } from "./mod.ts";
   * const heat = new Heat1D();
   * const g = new Grid1D({ nt: 11, x: { n: 33 } });
   * const u0 = heat.initialConditions(8, g, { seed: 1 });
   * heat.solveBatched(u0, g, 4, (x) => heat.solve(x, g)).shape; // [8, 11, 33]
   * ```
   */
  solveBatched(u0: Tensor, grid: G, batchSize: number, solve: (u0: Tensor) => Tensor): Tensor {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ArgumentError(`${this.name}.generateDataset`, `batchSize must be a positive integer, got ${batchSize}`);
    }
    grid.checkField(`${this.name}.solve`, u0, false);
    const n = u0.shape[0];
    if (n <= batchSize) return solve(u0);
    const parts: Tensor[] = [];
    for (let i = 0; i < n; i += batchSize) {
      parts.push(tidy(() => solve(narrow(u0, 0, i, Math.min(batchSize, n - i)))));
    }
    return concat(parts, 0);
  }
}

/**
 * The hard-constraint layer of PI-HC (Chalapathi, Du & Krishnapriyan, ICLR 2024): a network
 * outputs N basis functions Φ on the space-time grid, and the solution is the combination
 * `u = u_off + Φ·w` whose coefficients w make the PDE residual vanish (in the least-squares
 * sense) at sampled points:
 *
 *     w* = argmin_w ½‖r(w)‖²,   r = [ F(Φw)(x_i) for the sampled x_i;  IC rows;  BC rows ]
 *
 * solved by the batched Levenberg–Marquardt of `src/solve`, whose implicit adjoint carries the
 * gradient of any loss of u back to Φ (and so to the network) without unrolling the iterations.
 *
 * **How the residual is built.** The PDE residual is the problem's mathjs expression
 * (`PdeProblem.expression`). It is pointwise in its field and derivative symbols (u, u_t, u_xx,
 * …), and each symbol is a linear operator D_s of the field, so `D_s(Φw) = (D_sΦ)·w`: the layer
 * applies every operator the residual (and the boundary conditions) read to the basis once, on the
 * whole grid (finite differences, as the reference code does before sampling), and each symbol
 * becomes a linear feature `u_s = (D_sΦ)(x_i)·w` of the structured {@link BasisResidual}. The
 * Jacobian's coefficients `∂F/∂s` are the expression's symbolic partials. Derived fields
 * (Navier–Stokes' velocity from vorticity) must be linear in the unknown, as they are for the
 * built-in problems.
 *
 * **Rows.** Each expert (see `experts.ts`; one expert is plain PI-HC) solves for its own w on:
 * - its `M` sampled PDE points;
 * - the initial condition `u(t0, ·) − u0` on every space point (`initialCondition: "rows"`, the
 *   default; as the reference code's diffusion–sorption layer), unless the mollifier enforces it
 *   exactly (`"mollifier"`: `u = u0 + s·((t − t0)/(t1 − t0))·Φw`, the reference's Navier–Stokes
 *   layer, optionally mean-free in space);
 * - each boundary condition of the problem on its wall at every time after t0.
 * The initial and boundary rows are global: every expert sees all of them (as in the paper), or
 * with `conditions: "local"` only those inside its own box.
 *
 * The rows themselves — their groups, layout, gathered features and the structured residual — are
 * {@link ConstraintRows} (`constraint_rows.ts`); the training loss of u is `pdeLoss`
 * (`pde_loss.ts`), and a solve's summary `checkSolve` (`expert_solve.ts`).
 *
 * **Batches and experts.** Φ is `[B, ...grid, N]` (channels last, an FNO's output) and u0
 * `[B, ...space]`. For K experts the B·K problems are stacked expert-major (problem `k·B + b`)
 * into ONE batched solve.
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const heat = new Heat1D({ boundary: "periodic" });
 * const grid = heat.grid({ nt: 9, nx: 16 });
 * const layer = new HardConstraint({ problem: heat, grid, basis: 8, initialCondition: "mollifier" });
 * const phi = randn([2, 9, 16, 8], { dtype: "float64", seed: 0 }); // basis from a network
 * const u0 = heat.initialConditions(2, grid, { dtype: "float64" });
 * const { u, result } = layer.forward(phi, u0, [Int32Array.from({ length: 8 }, (_, i) => 16 + 7 * i)]);
 * u.shape; // [2, 9, 16]
 * result.residualNorm; // ≈ 0 per problem: 8 points, 8 basis functions
 * ```
 *
 * @module
 */

import { ArgumentError, fmtShape, full, ShapeError, type Tensor, tensor } from "../tensor/mod.ts";
import { ImplicitAdjoint } from "../solve/adjoint.ts";
import { implicitNode, leastSquares, type LeastSquaresResult } from "../solve/least_squares.ts";
import type { BasisResidual } from "../solve/residual.ts";
import { GaussNewton, type LeastSquaresSolver, LevenbergMarquardt } from "../solve/solvers.ts";
import {
  type BasisFeatures,
  ConstraintRows,
  type ExpertParams,
  type RowGroup,
  type RowLayout,
} from "./constraint_rows.ts";
import type { ExpertSolve } from "./expert_solve.ts";
import { applyDerivative } from "./finite_difference.ts";
import type { SymbolInfo } from "./expression.ts";
import type { Grid } from "./grid.ts";
import type { PdeProblem } from "./problem.ts";
import type { IndexRange } from "./sampling.ts";

/**
 * Options of {@link HardConstraint}.
 *
 * @example
 * ```ts
 * import { HardConstraint, type HardConstraintOptions, NavierStokes2D } from "./mod.ts";
 * const ns = new NavierStokes2D();
 * const options: HardConstraintOptions = {
 *   problem: ns,
 *   grid: ns.grid({ nx: 32, nt: 16 }),
 *   basis: 64,
 *   initialCondition: "mollifier",
 *   mollifierScale: 0.005,
 *   meanFree: true,
 * };
 * new HardConstraint(options);
 * ```
 */
export interface HardConstraintOptions<G extends Grid = Grid> {
  /** The PDE (its residual expression, boundary conditions and derived fields). */
  problem: PdeProblem<G>;
  /** The grid the basis lives on. */
  grid: G;
  /** Number N of basis functions (the network's output channels). */
  basis: number;
  /**
   * How the initial condition enters: `"rows"` (default: residual rows `u(t0) − u0` in every
   * expert's solve) or `"mollifier"` (`u = u0 + s·τ(t)·Φw` with τ = (t − t0)/(t1 − t0), exact at t0).
   */
  initialCondition?: "rows" | "mollifier";
  /** The factor s of the mollifier (default 1; the reference Navier–Stokes model uses 0.005). */
  mollifierScale?: number;
  /** Subtract the spatial mean from the basis and from u (periodic vorticity; default false). */
  meanFree?: boolean;
  /** Add rows for the problem's boundary conditions (default true). */
  boundaryConditions?: boolean;
  /** Weights of the initial-condition and boundary rows (default 1 each). */
  weights?: { ic?: number; bc?: number };
  /**
   * Which initial and boundary rows an expert solves: `"global"` (default, the paper: every expert
   * sees all of them) or `"local"` (only those inside its own box; the others are masked out).
   */
  conditions?: "global" | "local";
  /** The solver (default Levenberg–Marquardt, atol = rtol = 1e-6, at most 50 iterations as the paper). */
  solver?: LeastSquaresSolver;
  /** How w* is differentiated (default the Gauss–Newton implicit adjoint). */
  adjoint?: ImplicitAdjoint;
  /** Every coefficient's starting value (default 0; the reference diffusion–sorption layer starts at 1). */
  initialGuess?: number;
}

/**
 * A hard-constraint layer for one PDE on one grid: builds every expert's residual rows from a
 * network's basis functions, solves all experts of a batch in one batched Levenberg–Marquardt
 * call, and combines the basis with the coefficients (see the module notes).
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const layer = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 17, nx: 33 }), basis: 16 });
 * layer.symbols.map((s) => s.name); // ["u_t", "u_xx", "u"]: the features the rows read
 * layer.groups.map((g) => g.name); // ["pde", "ic", "bc:left", "bc:right"]
 * ```
 */
export class HardConstraint<G extends Grid = Grid> {
  /** The PDE. */
  readonly problem: PdeProblem<G>;
  /** The grid. */
  readonly grid: G;
  /** Number N of basis functions. */
  readonly n: number;
  /** How the initial condition enters. */
  readonly initialCondition: "rows" | "mollifier";
  /** The mollifier's factor. */
  readonly mollifierScale: number;
  /** Whether the basis and u are mean-free in space. */
  readonly meanFree: boolean;
  /** Whether experts solve all initial and boundary rows or only those in their box. */
  readonly conditions: "global" | "local";
  /** The solver. */
  readonly solver: LeastSquaresSolver;
  /** The adjoint. */
  readonly adjoint: ImplicitAdjoint;
  /** The coefficients' starting value. */
  readonly initialGuess: number;
  /** The rows of every expert's solve: groups, features, layout, the structured residual. */
  readonly rows: ConstraintRows<G>;

  /** A layer; see {@link HardConstraintOptions}. */
  constructor(options: HardConstraintOptions<G>) {
    const op = "HardConstraint";
    const { problem, grid } = options;
    if (!problem || typeof problem.residual !== "function") throw new ArgumentError(op, "needs a PdeProblem");
    if (!grid || !Array.isArray(grid.shape)) throw new ArgumentError(op, "needs a grid");
    if (grid.dims !== problem.dims) {
      throw new ArgumentError(op, `the ${problem.name} problem is ${problem.dims}-D but the grid is ${grid.dims}-D`);
    }
    if (!Number.isInteger(options.basis) || options.basis < 1) {
      throw new ArgumentError(
        op,
        `basis must be a positive integer (the number N of basis functions), got ${options.basis}`,
      );
    }
    this.problem = problem;
    this.grid = grid;
    this.n = options.basis;
    this.initialCondition = options.initialCondition ?? "rows";
    if (this.initialCondition !== "rows" && this.initialCondition !== "mollifier") {
      throw new ArgumentError(op, `initialCondition must be "rows" or "mollifier", got ${this.initialCondition}`);
    }
    this.mollifierScale = options.mollifierScale ?? 1;
    if (!Number.isFinite(this.mollifierScale) || this.mollifierScale === 0) {
      throw new ArgumentError(op, `mollifierScale must be a finite nonzero number, got ${this.mollifierScale}`);
    }
    this.meanFree = options.meanFree ?? false;
    this.conditions = options.conditions ?? "global";
    if (this.conditions !== "global" && this.conditions !== "local") {
      throw new ArgumentError(op, `conditions must be "global" or "local", got ${this.conditions}`);
    }
    this.solver = options.solver ?? new LevenbergMarquardt({ atol: 1e-6, rtol: 1e-6, maxSteps: 50 });
    if (!(this.solver instanceof LevenbergMarquardt) && !(this.solver instanceof GaussNewton)) {
      throw new ArgumentError(op, "solver must be a LevenbergMarquardt or GaussNewton instance");
    }
    this.adjoint = options.adjoint ?? new ImplicitAdjoint();
    this.initialGuess = options.initialGuess ?? 0;
    const icWeight = options.weights?.ic ?? 1;
    const bcWeight = options.weights?.bc ?? 1;
    for (const [name, v] of [["ic", icWeight], ["bc", bcWeight], ["initialGuess", this.initialGuess]] as const) {
      if (!Number.isFinite(v)) throw new ArgumentError(op, `${name} must be a finite number, got ${v}`);
    }
    for (const s of problem.expression.symbols) {
      if (s.kind === "input") {
        throw new ArgumentError(
          op,
          `the residual reads the input "${s.name}", which the hard-constraint layer cannot supply`,
        );
      }
    }
    this.rows = new ConstraintRows({
      problem,
      grid,
      basis: this.n,
      initialRows: this.initialCondition === "rows",
      boundaryConditions: options.boundaryConditions ?? true,
      weights: { ic: icWeight, bc: bcWeight },
      conditions: this.conditions,
    });
  }

  /** The row groups every expert solves (see {@link ConstraintRows.groups}). */
  get groups(): readonly RowGroup[] {
    return this.rows.groups;
  }

  /** The field and derivative symbols read by any group: the linear features of the solve. */
  get symbols(): readonly SymbolInfo[] {
    return this.rows.symbols;
  }

  /** The structured residual of the stacked problems (for custom solves). */
  get residual(): BasisResidual<ExpertParams> {
    return this.rows.residual;
  }

  /**
   * The basis and every feature field from a network output `phi` `[B, ...grid, N]` (channels
   * last) and the initial conditions `u0` `[B, ...space]`. Differentiable in `phi`.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const f = layer.features(randn([2, 9, 16, 4]), heat.initialConditions(2, grid));
   * f.fields.length; // 3: u_t, u_xx and u of each basis function, [2, 4, 9, 16] each
   * ```
   */
  features(phi: Tensor, u0: Tensor): BasisFeatures {
    const op = "HardConstraint.features";
    const grid = this.grid;
    const d = grid.shape.length;
    const want = `[B, ${grid.shape.join(", ")}, ${this.n}] (batch, the grid's ${
      grid.axes.map((a) => a.name).join(", ")
    } axes, then N = ${this.n} basis functions)`;
    if (phi.ndim !== d + 2 || phi.shape.slice(1, 1 + d).some((v, i) => v !== grid.shape[i])) {
      throw new ShapeError(op, `the basis has shape ${fmtShape(phi.shape)}, expected ${want}`);
    }
    if (phi.shape[d + 1] !== this.n) {
      throw new ShapeError(
        op,
        `the basis has ${phi.shape[d + 1]} functions (shape ${
          fmtShape(phi.shape)
        }) but the layer was built for N = ${this.n}`,
      );
    }
    if (phi.dtype !== "float32" && phi.dtype !== "float64") {
      throw new ShapeError(op, `the basis must be float32 or float64, got ${phi.dtype}`);
    }
    const b = phi.shape[0];
    const space = grid.spaceShape;
    if (u0.ndim !== space.length + 1 || u0.shape[0] !== b || u0.shape.slice(1).some((v, i) => v !== space[i])) {
      throw new ShapeError(
        op,
        `the initial conditions have shape ${fmtShape(u0.shape)}, expected [${b}, ${
          space.join(", ")
        }] for a batch of ${b}`,
      );
    }
    const ic = u0.dtype === phi.dtype ? u0 : u0.cast(phi.dtype);
    const spaceAxes = space.map((_, i) => -1 - i);
    // [B, N, ...grid]
    let basis = phi.permute([0, d + 1, ...Array.from({ length: d }, (_, i) => i + 1)]);
    let offset: Tensor | null = null;
    if (this.initialCondition === "mollifier") {
      const t = grid.t.points();
      const tau = Float64Array.from(t, (v) => (this.mollifierScale * (v - grid.t.start)) / grid.t.length);
      const shape = [grid.t.n, ...space.map(() => 1)];
      const factor = tensor(phi.dtype === "float64" ? tau : new Float32Array(tau), {
        dtype: phi.dtype,
        backend: phi.backend,
      }).reshape(shape);
      basis = basis.mul(factor);
      offset = ic.unsqueeze(1).expand([b, grid.t.n, ...space]);
    } else {
      basis = basis.contiguous();
    }
    if (this.meanFree) {
      basis = basis.sub(basis.mean(spaceAxes, true));
      if (offset) offset = offset.sub(offset.mean(spaceAxes, true));
    }
    const fieldsB = this.problem.fieldsOf(basis, grid);
    const fieldsO = offset ? this.problem.fieldsOf(offset, grid) : null;
    const apply = (fields: Record<string, Tensor>, s: SymbolInfo) => {
      const f = fields[s.field!];
      return s.kind === "field" ? f : applyDerivative(f, grid, s.spec!);
    };
    const fields = this.symbols.map((s) => apply(fieldsB, s));
    const offsets = fieldsO ? this.symbols.map((s) => apply(fieldsO, s)) : [];
    return { batch: b, n: this.n, basis, fields, offset, offsets, u0: ic };
  }

  /**
   * The rows of K experts' solves from their sampled PDE points (see {@link ConstraintRows.layout}).
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * const heat = new Heat1D();
   * const layer = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 9, nx: 16 }), basis: 4 });
   * layer.layout([Int32Array.from([20, 40, 60, 80])]).starts; // [0, 4, 20, 28]
   * ```
   */
  layout(points: readonly (Int32Array | readonly number[])[], regions?: readonly (readonly IndexRange[])[]): RowLayout {
    return this.rows.layout(points, regions);
  }

  /**
   * What the solves of `experts` read from the basis features (see {@link ConstraintRows.params}).
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const f = layer.features(randn([2, 9, 16, 4]), heat.initialConditions(2, grid));
   * layer.params(f, layer.layout([Int32Array.from([20, 40, 60, 80])])).feats[0].shape; // [2, 36, 4]
   * ```
   */
  params(features: BasisFeatures, layout: RowLayout, experts?: readonly number[]): ExpertParams {
    return this.rows.params(features, layout, experts);
  }

  /**
   * Solves the experts `experts` (default all of the layout) for a batch in ONE batched call:
   * `[experts·B]` problems, expert-major. Under `noGrad` (or with features that do not require
   * grad) w is a constant; otherwise it is differentiable through the implicit adjoint.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { noGrad, randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const f = layer.features(randn([2, 9, 16, 4], { dtype: "float64" }), heat.initialConditions(2, grid, { dtype: "float64" }));
   * const s = noGrad(() => layer.solve(f, layer.layout([Int32Array.from([20, 40, 60, 80])])));
   * s.w.shape; // [2, 4]
   * s.result.status; // per problem
   * ```
   */
  solve(features: BasisFeatures, layout: RowLayout, experts?: readonly number[]): ExpertSolve {
    const list = experts ?? Array.from({ length: layout.experts }, (_, k) => k);
    const params = this.params(features, layout, list);
    const w0 = full([list.length * features.batch, this.n], this.initialGuess, {
      dtype: features.basis.dtype,
      backend: features.basis.backend,
    });
    const result = leastSquares(this.rows.residual, w0, params, { solver: this.solver, adjoint: this.adjoint });
    return { w: result.value, result, experts: list };
  }

  /**
   * The implicit-function node of a known solution: `w*` `[P, N]` of the problems `params` were
   * gathered for, returned as a tensor whose backward pass is the implicit adjoint (no iterations
   * are run: the Jacobian is formed once at w*). This is how each expert's backward pass runs
   * alone after one batched forward solve.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { noGrad, randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const phi = randn([1, 9, 16, 4], { dtype: "float64" }).requireGrad();
   * const f = layer.features(phi, heat.initialConditions(1, grid, { dtype: "float64" }));
   * const rows = layer.layout([Int32Array.from([20, 40, 60, 80])]);
   * const wStar = noGrad(() => layer.solve(f, rows)).w; // the batched forward solve
   * const w = layer.adjointNode(layer.params(f, rows, [0]), wStar); // same values, implicit backward
   * w.sum().backward(); // phi.grad
   * ```
   */
  adjointNode(params: ExpertParams, wStar: Tensor): Tensor {
    if (this.adjoint.kind !== "implicit") {
      throw new ArgumentError(
        "HardConstraint.adjointNode",
        "needs an implicit adjoint (the layer's adjoint is unrolled)",
      );
    }
    return implicitNode(this.rows.residual, wStar, params, {
      adjoint: this.adjoint,
      regularization: this.solver.regularization,
    });
  }

  /**
   * One expert's part of u on its box `region` (index ranges per grid axis): `basis·w` there,
   * `[B, ...extent]`, with w `[B, N]`. Differentiable in both.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { ones, randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const f = layer.features(randn([2, 9, 16, 4]), heat.initialConditions(2, grid));
   * layer.expertField(f, ones([2, 4]), [[0, 9], [0, 8]]).shape; // [2, 9, 8]
   * ```
   */
  expertField(features: BasisFeatures, w: Tensor, region: readonly IndexRange[]): Tensor {
    const b = features.batch;
    let block = features.basis;
    region.forEach(([a, z], i) => {
      if (a !== 0 || z !== this.grid.shape[i]) block = block.narrow(2 + i, a, z - a);
    });
    const ext = region.map(([a, z]) => z - a);
    const cells = ext.reduce((s, v) => s * v, 1);
    return w.unsqueeze(1).matmul(block.reshape([b, this.n, cells])).reshape([b, ...ext]);
  }

  /**
   * Stitches u on the whole grid from each expert's coefficients: `offset + Σ_k 1_{Ω_k}·basis·w_k`
   * (mean-free in space when the layer is). `w` is `[K·B, N]` expert-major, `regions` the K boxes
   * (default: one expert on the whole grid).
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, Router } from "./mod.ts";
   * import { ones, randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const f = layer.features(randn([2, 9, 16, 4]), heat.initialConditions(2, grid));
   * const router = new Router(grid, [1, 2]);
   * layer.stitch(f, ones([4, 4]), router.regions).shape; // [2, 9, 16]: two experts × batch 2 coefficients
   * ```
   */
  stitch(features: BasisFeatures, w: Tensor, regions?: readonly (readonly IndexRange[])[]): Tensor {
    const shape = this.grid.shape;
    const list = regions ?? [shape.map((n): IndexRange => [0, n])];
    const b = features.batch;
    if (w.ndim !== 2 || w.shape[0] !== list.length * b || w.shape[1] !== this.n) {
      throw new ShapeError(
        "HardConstraint.stitch",
        `coefficients of shape ${fmtShape(w.shape)} for ${list.length} experts × batch ${b} × N = ${this.n}`,
      );
    }
    const parts = list.map((region, k) => {
      const block = this.expertField(features, w.narrow(0, k * b, b), region);
      const whole = region.every(([a, z], i) => a === 0 && z === shape[i]);
      return whole ? block : block.pad(region.map(([a, z], i): [number, number] => [a, shape[i] - z]));
    });
    let out = parts.reduce((acc, p) => acc.add(p));
    if (features.offset) out = out.add(features.offset);
    if (this.meanFree && list.length > 1) {
      out = out.sub(out.mean(this.grid.spaceShape.map((_, i) => -1 - i), true));
    }
    return out;
  }

  /**
   * The whole layer in one graph: features, one batched solve of every expert (implicit adjoint)
   * and the stitched u. `points` holds each expert's sampled PDE points; `regions` the experts'
   * boxes (default one expert on the whole grid: PI-HC). Gradients of any loss of u reach `phi`.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const phi = randn([2, 9, 16, 4], { dtype: "float64", seed: 1 }).requireGrad();
   * const { u } = layer.forward(phi, heat.initialConditions(2, grid, { dtype: "float64" }), [Int32Array.from([20, 40, 60, 80])]);
   * u.square().mean().backward(); // phi.grad through the implicit adjoint
   * ```
   */
  forward(
    phi: Tensor,
    u0: Tensor,
    points: readonly (Int32Array | readonly number[])[],
    regions?: readonly (readonly IndexRange[])[],
  ): { u: Tensor; w: Tensor; result: LeastSquaresResult; features: BasisFeatures; layout: RowLayout } {
    if (regions && regions.length !== points.length) {
      throw new ArgumentError("HardConstraint.forward", `${points.length} point sets for ${regions.length} experts`);
    }
    const features = this.features(phi, u0);
    const layout = this.layout(points, regions);
    const { w, result } = this.solve(features, layout);
    return { u: this.stitch(features, w, regions), w, result, features, layout };
  }
}

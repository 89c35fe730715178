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

import {
  ArgumentError,
  concat,
  fmtShape,
  full,
  noGrad,
  NonFiniteError,
  ShapeError,
  type Tensor,
  tensor,
  zeros,
} from "../tensor/mod.ts";
import { ImplicitAdjoint } from "../solve/adjoint.ts";
import { SolverError } from "../solve/errors.ts";
import { implicitSolution, leastSquares, type LeastSquaresResult } from "../solve/least_squares.ts";
import { BasisResidual } from "../solve/residual.ts";
import { GaussNewton, type LeastSquaresSolver, LevenbergMarquardt } from "../solve/solvers.ts";
import { applyDerivative } from "./finite_difference.ts";
import { parseResidual, type ResidualExpression, spacingOf, type SymbolInfo } from "./expression.ts";
import type { Grid } from "./grid.ts";
import type { PdeProblem } from "./problem.ts";
import { boundaryPoints, type IndexRange, initialPoints, unravelIndices } from "./sampling.ts";

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
 * The basis and everything the residual reads from it, on the whole grid (see
 * {@link HardConstraint.features}).
 *
 * @example
 * ```ts
 * import type { BasisFeatures } from "./hard_constraint.ts";
 * const describe = (f: BasisFeatures) => `${f.n} basis functions, ${f.fields.length} feature fields`;
 * ```
 */
export interface BasisFeatures {
  /** Batch size B. */
  readonly batch: number;
  /** Number N of basis functions. */
  readonly n: number;
  /** The (mollified, mean-free) basis `[B, N, ...grid]`: u = offset + Σ_n basis[:, n]·w_n. */
  readonly basis: Tensor;
  /** Each feature symbol's field `D_s(fields(basis))`, `[B, N, ...grid]`, in {@link HardConstraint.symbols} order. */
  readonly fields: readonly Tensor[];
  /** The part of u not multiplied by w, `[B, ...grid]` (the mollified initial condition), or null. */
  readonly offset: Tensor | null;
  /** Each feature symbol applied to the offset, `[B, ...grid]` (empty without an offset). */
  readonly offsets: readonly Tensor[];
  /** The initial conditions `[B, ...space]`. */
  readonly u0: Tensor;
}

/**
 * One block of rows of every expert's residual: the PDE points, the initial condition, or a wall.
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const layer = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 9, nx: 16 }), basis: 4 });
 * layer.groups[2].indices!.length; // 8: the left wall after t0
 * ```
 */
export interface RowGroup {
  /** `"pde"`, `"ic"` or `"bc:<name>"`. */
  readonly name: string;
  /** The residual these rows evaluate. */
  readonly expression: ResidualExpression;
  /** The group's weight (multiplies its rows). */
  readonly weight: number;
  /** Fixed flat grid indices of its rows (null for the PDE group: each expert's sampled points). */
  readonly indices: Int32Array | null;
}

/**
 * The rows of a batch of experts' solves (see {@link HardConstraint.layout}).
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const layer = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 9, nx: 16 }), basis: 4 });
 * const rows = layer.layout([Int32Array.from([20, 40, 60, 80])]);
 * rows.starts; // [0, 4, 20, 28]: PDE points, initial rows, left wall, right wall
 * ```
 */
export interface RowLayout {
  /** Number of experts. */
  readonly experts: number;
  /** Sampled PDE points per expert. */
  readonly points: number;
  /** Rows per expert (points + initial + boundary rows). */
  readonly rows: number;
  /** Where each group's rows start, in {@link HardConstraint.groups} order. */
  readonly starts: readonly number[];
  /** Flat grid indices of every expert's rows, expert-major: `[experts · rows]`. */
  readonly indices: Int32Array;
  /** With local conditions: 1 for the rows an expert solves, 0 for masked ones (`[experts · rows]`); else null. */
  readonly mask: Float64Array | null;
}

/**
 * What the stacked least-squares problems read: per feature symbol the gathered features
 * `[P, M, N]` and offsets `[P, M]`; per group its other inputs (coordinates, the initial values).
 *
 * @example
 * ```ts
 * import type { ExpertParams } from "./hard_constraint.ts";
 * const problems = (p: ExpertParams) => p.feats[0].shape[0]; // experts × batch
 * ```
 */
export interface ExpertParams {
  /** Gathered features, in {@link HardConstraint.symbols} order: `[P, rows, N]`. */
  feats: Tensor[];
  /** Gathered offsets (empty without an offset): `[P, rows]`. */
  offsets: Tensor[];
  /** Per group, the values of its non-field symbols at its rows: `[P, length]` each (grid spacings: numbers). */
  inputs: Record<string, Tensor | number>[];
  /** Row mask `[P, rows]` (local conditions), or null. */
  mask: Tensor | null;
}

/**
 * The result of a batched expert solve.
 *
 * @example
 * ```ts
 * import type { ExpertSolve } from "./hard_constraint.ts";
 * const iterations = (s: ExpertSolve) => s.result.steps; // per problem, expert-major
 * ```
 */
export interface ExpertSolve {
  /** The coefficients `[K·B, N]` (problem `k·B + b`); differentiable when solved with grad. */
  w: Tensor;
  /** The solver's per-problem report. */
  result: LeastSquaresResult;
  /** The experts solved, in order. */
  experts: readonly number[];
}

/**
 * Some expert solves did not converge (raised by `checkSolve` with `strict`).
 *
 * @example
 * ```ts
 * import { ExpertSolveError } from "./hard_constraint.ts";
 * const e = new ExpertSolveError("HardConstraint", ["converged", "max_steps"], "expert 0 sample 1: max_steps");
 * e.status[1]; // "max_steps"
 * ```
 */
export class ExpertSolveError extends SolverError {}

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
  /** The row groups every expert solves. */
  readonly groups: readonly RowGroup[];
  /** Whether experts solve all initial and boundary rows or only those in their box. */
  readonly conditions: "global" | "local";
  /** The field and derivative symbols read by any group: the linear features of the solve. */
  readonly symbols: readonly SymbolInfo[];
  /** The solver. */
  readonly solver: LeastSquaresSolver;
  /** The adjoint. */
  readonly adjoint: ImplicitAdjoint;
  /** The coefficients' starting value. */
  readonly initialGuess: number;
  readonly #residual: BasisResidual<ExpertParams>;
  readonly #coords: Record<string, Float64Array>;

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
    const groups: RowGroup[] = [{ name: "pde", expression: problem.expression, weight: 1, indices: null }];
    if (this.initialCondition === "rows" && icWeight !== 0) {
      const ic = parseResidual(`${problem.fields[0]} - initial`, {
        fields: problem.fields,
        inputs: ["initial"],
        dims: problem.dims,
      });
      groups.push({
        name: "ic",
        expression: ic,
        weight: icWeight,
        indices: noGrad(() => initialPoints(grid).toTypedArray() as Int32Array),
      });
    }
    if ((options.boundaryConditions ?? true) && bcWeight !== 0) {
      for (const bc of problem.boundaryConditions) {
        if (grid.axis(bc.axis).periodic) continue;
        const idx = noGrad(() => boundaryPoints(grid, bc.axis, bc.side, { skipInitial: true }).toTypedArray());
        groups.push({
          name: `bc:${bc.name}`,
          expression: problem.boundaryExpressions.get(bc.name)!,
          weight: bcWeight,
          indices: idx as Int32Array,
        });
      }
    }
    this.groups = groups;
    const seen = new Map<string, SymbolInfo>();
    for (const g of groups) for (const s of g.expression.unknowns) if (!seen.has(s.name)) seen.set(s.name, s);
    this.symbols = [...seen.values()];
    // Coordinates of every grid point, flat (only the axes some group reads).
    const reads = new Set(
      groups.flatMap((g) => g.expression.symbols.filter((s) => s.kind === "coordinate").map((s) => s.name)),
    );
    this.#coords = {};
    if (reads.size) {
      const all = unravelIndices(Int32Array.from({ length: grid.size }, (_, i) => i), grid.shape);
      grid.axes.forEach((axis, k) => {
        if (!reads.has(axis.name)) return;
        const pts = axis.points();
        this.#coords[axis.name] = Float64Array.from(all[k], (i) => pts[i]);
      });
    }
    this.#residual = this.#makeResidual();
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
   * The rows of K experts' solves from their sampled PDE points (flat grid indices, one array per
   * expert, all of one length M ≥ N). With local conditions, `regions` (the experts' boxes) says
   * which initial and boundary rows each expert keeps.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * const heat = new Heat1D();
   * const layer = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 9, nx: 16 }), basis: 4 });
   * const rows = layer.layout([Int32Array.from([20, 40, 60, 80]), Int32Array.from([21, 41, 61, 81])]);
   * rows.rows; // 4 points + 16 initial rows + 2·8 wall rows = 36
   * ```
   */
  layout(points: readonly (Int32Array | readonly number[])[], regions?: readonly (readonly IndexRange[])[]): RowLayout {
    const op = "HardConstraint.layout";
    if (!Array.isArray(points) || points.length === 0) {
      throw new ArgumentError(op, "needs one array of sampled points per expert (at least one expert)");
    }
    const m = points[0].length;
    points.forEach((p, k) => {
      if (p.length !== m) {
        throw new ArgumentError(
          op,
          `expert ${k} has ${p.length} sampled points but expert 0 has ${m}; give every expert M points`,
        );
      }
    });
    if (m < this.n) {
      throw new ArgumentError(
        op,
        `each expert has ${m} sampled points but there are N = ${this.n} basis functions; every expert needs at least N ` +
          `points (sample more points or use fewer basis functions)`,
      );
    }
    const size = this.grid.size;
    const fixed = this.groups.slice(1).map((g) => g.indices!);
    const rows = m + fixed.reduce((s, g) => s + g.length, 0);
    const starts: number[] = [0];
    let at = m;
    for (const g of fixed) {
      starts.push(at);
      at += g.length;
    }
    const indices = new Int32Array(points.length * rows);
    points.forEach((p, k) => {
      const base = k * rows;
      for (let i = 0; i < m; i++) {
        const v = p[i];
        if (!Number.isInteger(v) || v < 0 || v >= size) {
          throw new ArgumentError(op, `expert ${k}: point index ${v} is outside the grid's ${size} points`);
        }
        indices[base + i] = v;
      }
      fixed.forEach((g, j) => indices.set(g, base + starts[j + 1]));
    });
    let mask: Float64Array | null = null;
    if (this.conditions === "local" && fixed.length) {
      if (!regions || regions.length !== points.length) {
        throw new ArgumentError(op, `local conditions need the ${points.length} experts' boxes (regions)`);
      }
      const shape = this.grid.shape;
      mask = new Float64Array(indices.length);
      const coords = unravelIndices(indices, shape);
      regions.forEach((region, k) => {
        for (let i = k * rows; i < (k + 1) * rows; i++) {
          let inside = true;
          for (let a = 0; a < shape.length && inside; a++) {
            const c = coords[a][i];
            inside = c >= region[a][0] && c < region[a][1];
          }
          mask![i] = i - k * rows < m || inside ? 1 : 0;
        }
      });
    }
    return { experts: points.length, points: m, rows, starts, indices, mask };
  }

  /**
   * Gathers what the solves of `experts` (default all of the layout) read: features at each
   * expert's rows, stacked expert-major into `[experts·B, rows, N]`. Differentiable in the
   * feature fields.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 9, nx: 16 });
   * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
   * const f = layer.features(randn([2, 9, 16, 4]), heat.initialConditions(2, grid));
   * const rows = layer.layout([Int32Array.from([20, 40, 60, 80])]);
   * layer.params(f, rows).feats[0].shape; // [2, 36, 4]
   * ```
   */
  params(features: BasisFeatures, layout: RowLayout, experts?: readonly number[]): ExpertParams {
    const list = experts ?? Array.from({ length: layout.experts }, (_, k) => k);
    for (const k of list) {
      if (!Number.isInteger(k) || k < 0 || k >= layout.experts) {
        throw new ArgumentError("HardConstraint.params", `expert ${k} is not in a layout of ${layout.experts}`);
      }
    }
    const b = features.batch;
    const rows = layout.rows;
    const kk = list.length;
    const sel = new Int32Array(kk * rows);
    list.forEach((k, i) => sel.set(layout.indices.subarray(k * rows, (k + 1) * rows), i * rows));
    const backend = features.basis.backend;
    const dtype = features.basis.dtype;
    const idx = tensor(sel, { dtype: "int32", backend });
    const g = this.grid.size;
    const n = this.n;
    const gatherField = (f: Tensor) =>
      f.reshape([b, n, g]).indexSelect(2, idx).reshape([b, n, kk, rows]).permute([2, 0, 3, 1]).reshape([
        kk * b,
        rows,
        n,
      ]);
    const gatherOffset = (f: Tensor) =>
      f.reshape([b, g]).indexSelect(1, idx).reshape([b, kk, rows]).permute([1, 0, 2]).reshape([kk * b, rows]);
    const feats = features.fields.map(gatherField);
    const offsets = features.offsets.map(gatherOffset);
    const host = (data: Float64Array, start: number, length: number) => {
      const out = new Float64Array(kk * b * length);
      for (let i = 0; i < kk; i++) {
        const src = data.subarray(i * rows + start, i * rows + start + length);
        for (let j = 0; j < b; j++) out.set(src, (i * b + j) * length);
      }
      return tensor(dtype === "float64" ? out : new Float32Array(out), { dtype, backend }).reshape([kk * b, length]);
    };
    const inputs = this.groups.map((grp, gi) => {
      const start = layout.starts[gi];
      const length = gi === 0 ? layout.points : grp.indices!.length;
      const values: Record<string, Tensor | number> = {};
      for (const s of grp.expression.symbols) {
        if (s.kind === "spacing") {
          values[s.name] = spacingOf(this.grid, s.name);
        } else if (s.kind === "coordinate") {
          const c = this.#coords[s.name];
          values[s.name] = host(Float64Array.from(sel, (v) => c[v]), start, length);
        } else if (s.kind === "input" && s.name === "initial") {
          // The IC rows are the first time slice in order: u0 itself, once per expert.
          const u0 = features.u0.reshape([b, length]);
          values[s.name] = kk === 1 ? u0 : concat(Array.from({ length: kk }, () => u0), 0);
        }
      }
      return values;
    });
    let mask: Tensor | null = null;
    if (layout.mask) {
      const hm = new Float64Array(kk * b * rows);
      list.forEach((k, i) => {
        const src = layout.mask!.subarray(k * rows, (k + 1) * rows);
        for (let j = 0; j < b; j++) hm.set(src, (i * b + j) * rows);
      });
      mask = tensor(dtype === "float64" ? hm : new Float32Array(hm), { dtype, backend }).reshape([kk * b, rows]);
    }
    return { feats, offsets, inputs, mask };
  }

  #makeResidual(): BasisResidual<ExpertParams> {
    const symbolIndex = new Map(this.symbols.map((s, i) => [s.name, i]));
    const groupValues = (u: Tensor[], p: ExpertParams, gi: number, start: number, length: number) => {
      const grp = this.groups[gi];
      const values: Record<string, Tensor | number> = { ...p.inputs[gi] };
      for (const s of grp.expression.unknowns) {
        const k = symbolIndex.get(s.name)!;
        let v = u[k].narrow(1, start, length);
        if (p.offsets.length) v = v.add(p.offsets[k].narrow(1, start, length));
        values[s.name] = v;
      }
      return values;
    };
    const spans = (u: Tensor[], p: ExpertParams) => {
      const rows = u[0].shape[1];
      const fixed = this.groups.slice(1).reduce((s, g) => s + g.indices!.length, 0);
      const out: [number, number][] = [];
      let at = 0;
      this.groups.forEach((g, gi) => {
        const length = gi === 0 ? rows - fixed : g.indices!.length;
        out.push([at, length]);
        at += length;
      });
      void p;
      return out;
    };
    const rowsOf = (v: Tensor | number, like: Tensor, length: number): Tensor => {
      const shape = [like.shape[0], length];
      if (typeof v === "number") return full(shape, v, { dtype: like.dtype, backend: like.backend });
      return v.shape.length === 2 && v.shape[0] === shape[0] && v.shape[1] === length ? v : v.expand(shape);
    };
    return new BasisResidual<ExpertParams>({
      features: (p) => p.feats,
      pointwise: (u, p) => {
        const parts = spans(u, p).map(([start, length], gi) => {
          const grp = this.groups[gi];
          const r = rowsOf(grp.expression.evaluate(groupValues(u, p, gi, start, length)), u[0], length);
          return grp.weight === 1 ? r : r.mul(grp.weight);
        });
        const r = parts.length === 1 ? parts[0] : concat(parts, 1);
        return p.mask ? r.mul(p.mask) : r;
      },
      derivative: (u, p) => {
        const sp = spans(u, p);
        const vals = sp.map(([start, length], gi) => groupValues(u, p, gi, start, length));
        return this.symbols.map((s) => {
          let any = false;
          const parts = sp.map(([, length], gi) => {
            const grp = this.groups[gi];
            if (!grp.expression.unknowns.some((x) => x.name === s.name)) {
              return zeros([u[0].shape[0], length], { dtype: u[0].dtype, backend: u[0].backend });
            }
            const partial = grp.expression.partial(s.name);
            if (partial.constant !== 0) any = true;
            const d = rowsOf(partial.evaluate(vals[gi]), u[0], length);
            return grp.weight === 1 ? d : d.mul(grp.weight);
          });
          if (!any) return null;
          const d = parts.length === 1 ? parts[0] : concat(parts, 1);
          return p.mask ? d.mul(p.mask) : d;
        });
      },
    });
  }

  /** The structured residual of the stacked problems (for custom solves). */
  get residual(): BasisResidual<ExpertParams> {
    return this.#residual;
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
    const result = leastSquares(this.#residual, w0, params, { solver: this.solver, adjoint: this.adjoint });
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
    return implicitSolution(this.#residual, wStar, params, {
      adjoint: this.adjoint,
      regularization: this.solver.regularization,
    }).value;
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

/**
 * Weights of the terms of {@link pdeLoss}.
 *
 * @example
 * ```ts
 * import type { PdeLossWeights } from "./hard_constraint.ts";
 * const weights: PdeLossWeights = { pde: 500, ic: 1, bc: 1 }; // diffusion–sorption: the residual is per second
 * ```
 */
export interface PdeLossWeights {
  /** The PDE residual (default 1). */
  pde?: number;
  /** The initial condition (default 1). */
  ic?: number;
  /** The boundary conditions (default 1). */
  bc?: number;
  /**
   * Agreement of neighbouring experts across their interfaces, when the loss takes each point's
   * residual from its own expert's field (default 0; see {@link pdeLoss}).
   */
  interface?: number;
}

/**
 * Each expert's own field on the whole grid with the mask of the box it owns (a mixture of
 * experts' prediction is `Σ_k masks[k] ⊙ fields[k]`). Given to {@link pdeLoss}, the PDE residual at
 * every grid point is that of the field of the expert owning the point, with its finite-difference
 * stencil reading that same field across the box's edges, so the jumps between neighbouring experts
 * never enter the residual.
 *
 * @example
 * ```ts
 * import type { ExpertFields } from "./hard_constraint.ts";
 * const count = (e: ExpertFields) => e.fields.length; // K
 * ```
 */
export interface ExpertFields {
  /** Per expert, `Φ·w_k` (plus the layer's offset) on the whole grid, `[B, ...grid]`. */
  readonly fields: readonly Tensor[];
  /** Per expert, 1 on its box and 0 elsewhere, `[...grid]`. */
  readonly masks: readonly Tensor[];
  /**
   * Per expert, 1 on its neighbours' points one cell outside its box along each split axis (across
   * a periodic wrap too) and 0 elsewhere, `[...grid]`: where its field meets theirs.
   */
  readonly halos: readonly Tensor[];
}

/**
 * The terms of {@link pdeLoss}, each a scalar tensor (root mean square over batch and points).
 *
 * @example
 * ```ts
 * import { Heat1D, pdeLoss } from "./mod.ts";
 * const heat = new Heat1D();
 * const d = heat.generateDataset({ n: 1, nx: 17, nt: 9 });
 * const { loss, pde, ic, bc } = pdeLoss(heat, d.grid, d.u, d.u0);
 * ```
 */
export interface PdeLossTerms {
  /** The weighted sum. */
  loss: Tensor;
  /** RMS of the PDE residual over the grid. */
  pde: Tensor;
  /** RMS of `u(t0) − u0` (when weighted). */
  ic: Tensor | null;
  /** RMS of the boundary residuals (when weighted and the problem has walls). */
  bc: Tensor | null;
  /** RMS over the expert halos of `field_k − u` (when weighted and given expert fields). */
  interface: Tensor | null;
}

function rms(r: Tensor): Tensor {
  return r.square().mean().add(1e-30).sqrt();
}

/**
 * The physics loss of a prediction u `[B, ...grid]`: the root-mean-square PDE residual over the
 * grid (finite differences), plus the RMS initial-condition and boundary residuals, weighted. It
 * is the training loss of the hard-constraint methods (as the paper: no solution data) and of the
 * soft-constraint baseline. With `experts`, the residual at each point is that of the expert owning
 * it ({@link ExpertFields}); the initial and boundary terms read the stitched u either way. Such a
 * residual never sees how neighbouring experts meet, so `weights.interface` adds the RMS over every
 * expert's halo of `field_k − u` (its field against its neighbours' one cell beyond its box: their
 * values and, through the two cells either side, their slopes), the coupling that the stitched
 * residual gets from differencing the jumps.
 *
 * @example
 * ```ts
 * import { Heat1D, pdeLoss } from "./mod.ts";
 * const heat = new Heat1D();
 * const d = heat.generateDataset({ n: 2, nx: 33, nt: 17, dtype: "float64" });
 * pdeLoss(heat, d.grid, d.u, d.u0).pde.item(); // small: the exact solution's FD residual
 * ```
 */
export function pdeLoss<G extends Grid>(
  problem: PdeProblem<G>,
  grid: G,
  u: Tensor,
  u0: Tensor,
  weights: PdeLossWeights = {},
  experts?: ExpertFields,
): PdeLossTerms {
  const wp = weights.pde ?? 1;
  const wi = weights.ic ?? 1;
  const wb = weights.bc ?? 1;
  const wf = weights.interface ?? 0;
  for (const [name, w] of [["pde", wp], ["ic", wi], ["bc", wb], ["interface", wf]] as const) {
    if (!Number.isFinite(w) || w < 0) {
      throw new ArgumentError("pdeLoss", `weights.${name} must be a finite number ≥ 0, got ${w}`);
    }
  }
  let residual: Tensor;
  if (experts) {
    if (experts.fields.length !== experts.masks.length || experts.fields.length === 0) {
      throw new ArgumentError(
        "pdeLoss",
        `experts needs one mask per field, got ${experts.fields.length} fields and ${experts.masks.length} masks`,
      );
    }
    residual = experts.fields.map((f, k) => problem.residual(f, grid).mul(experts.masks[k]))
      .reduce((a, b) => a.add(b));
  } else {
    residual = problem.residual(u, grid);
  }
  const pde = rms(residual);
  let loss = wp === 1 ? pde : pde.mul(wp);
  let ic: Tensor | null = null;
  let bc: Tensor | null = null;
  if (wi !== 0) {
    ic = rms(problem.initialResidual(u, grid, u0.dtype === u.dtype ? u0 : u0.cast(u.dtype)));
    loss = loss.add(ic.mul(wi));
  }
  const walls = problem.boundaryConditions.filter((b) => !grid.axis(b.axis).periodic);
  if (wb !== 0 && walls.length) {
    const res = problem.boundaryResiduals(u, grid);
    const flat = walls.map((w) => res[w.name].reshape([-1]));
    bc = rms(flat.length === 1 ? flat[0] : concat(flat, 0));
    loss = loss.add(bc.mul(wb));
  }
  let meet: Tensor | null = null;
  if (wf !== 0 && experts && experts.fields.length > 1) {
    if (experts.halos.length !== experts.fields.length) {
      throw new ArgumentError(
        "pdeLoss",
        `experts needs one halo per field, got ${experts.fields.length} fields and ${experts.halos.length} halos`,
      );
    }
    const squares = experts.fields.map((f, k) => f.sub(u).square().mul(experts.halos[k]).sum());
    const cells = experts.halos.map((h) => h.sum()).reduce((a, b) => a.add(b)).mul(u.shape[0]);
    meet = squares.reduce((a, b) => a.add(b)).div(cells).add(1e-30).sqrt();
    loss = loss.add(meet.mul(wf));
  }
  return { loss, pde, ic, bc, interface: meet };
}

/**
 * A summary of a batched expert solve (host numbers).
 *
 * @example
 * ```ts
 * import type { SolveSummary } from "./hard_constraint.ts";
 * const line = (s: SolveSummary) => `${s.converged}/${s.problems} converged, ${s.meanIterations.toFixed(1)} iterations`;
 * ```
 */
export interface SolveSummary {
  /** Number of problems (experts × batch). */
  problems: number;
  /** How many converged. */
  converged: number;
  /** Mean iterations per problem. */
  meanIterations: number;
  /** Largest iteration count. */
  maxIterations: number;
  /** Mean ‖r(w*)‖₂ over problems. */
  meanResidual: number;
  /** Problems that did not converge: `{ expert, sample, status, residual }`. */
  failed: { expert: number; sample: number; status: string; residual: number }[];
}

/**
 * Summarises a batched expert solve, naming each problem that did not converge by expert and
 * batch entry. Raises a `NonFiniteError` when a problem met NaN or Inf (its basis or residual is
 * not finite), and with `strict` an {@link ExpertSolveError} when any problem did not converge.
 *
 * @example
 * ```ts
 * import { checkSolve, HardConstraint, Heat1D } from "./mod.ts";
 * import { noGrad, randn } from "../tensor/mod.ts";
 * const heat = new Heat1D();
 * const grid = heat.grid({ nt: 9, nx: 16 });
 * const layer = new HardConstraint({ problem: heat, grid, basis: 4 });
 * const f = layer.features(randn([2, 9, 16, 4], { dtype: "float64" }), heat.initialConditions(2, grid, { dtype: "float64" }));
 * const solved = noGrad(() => layer.solve(f, layer.layout([Int32Array.from([20, 40, 60, 80])])));
 * const summary = checkSolve(solved, 2);
 * summary.converged; // of summary.problems (2)
 * ```
 */
export function checkSolve(solve: ExpertSolve, batch: number, options: { strict?: boolean } = {}): SolveSummary {
  const r = solve.result;
  const failed: SolveSummary["failed"] = [];
  r.status.forEach((s, p) => {
    if (s === "converged") return;
    failed.push({
      expert: solve.experts[Math.floor(p / batch)],
      sample: p % batch,
      status: s,
      residual: r.residualNorm[p],
    });
  });
  const describe = (list: typeof failed) =>
    list.slice(0, 6).map((f) =>
      `expert ${f.expert} sample ${f.sample}: ${f.status} (‖r‖ = ${f.residual.toExponential(2)})`
    )
      .join("; ") + (list.length > 6 ? `; … ${list.length - 6} more` : "");
  const nonfinite = failed.filter((f) => f.status === "nonfinite");
  if (nonfinite.length) {
    throw new NonFiniteError(
      "HardConstraint",
      `${nonfinite.length} expert solve(s) met NaN or Inf in the basis or the residual (${describe(nonfinite)}); ` +
        "the network's output or the data is not finite",
    );
  }
  if (options.strict && failed.length) {
    throw new ExpertSolveError(
      "HardConstraint",
      r.status,
      `${failed.length} of ${r.status.length} expert solves did not converge within ${r.iterations} iterations: ${
        describe(failed)
      }`,
    );
  }
  const steps = r.steps;
  return {
    problems: r.status.length,
    converged: r.status.length - failed.length,
    meanIterations: steps.reduce((s, v) => s + v, 0) / Math.max(1, steps.length),
    maxIterations: steps.reduce((s, v) => Math.max(s, v), 0),
    meanResidual: r.residualNorm.reduce((s, v) => s + v, 0) / Math.max(1, r.residualNorm.length),
    failed,
  };
}

/**
 * The rows of the hard-constraint layer's least-squares problems: which residuals every expert's
 * solve evaluates ({@link RowGroup}: the PDE at its sampled points, the initial condition, each
 * wall), the linear features they read ({@link ConstraintRows.symbols}), where each expert's rows
 * lie on the grid ({@link ConstraintRows.layout}), what the stacked problems read from a basis
 * ({@link ConstraintRows.params}), and the structured residual with its Jacobian coefficients
 * (the expressions' symbolic partials) that the solver runs on ({@link ConstraintRows.residual}).
 *
 * @example
 * ```ts
 * import { ConstraintRows, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const rows = new ConstraintRows({ problem: heat, grid: heat.grid({ nt: 9, nx: 16 }), basis: 4 });
 * rows.groups.map((g) => g.name); // ["pde", "ic", "bc:left", "bc:right"]
 * rows.layout([Int32Array.from([20, 40, 60, 80])]).rows; // 4 points + 16 initial + 2·8 wall rows
 * ```
 *
 * @module
 */

import { ArgumentError, concat, full, noGrad, type Tensor, tensor, zeros } from "../tensor/mod.ts";
import { BasisResidual } from "../solve/residual.ts";
import { parseResidual, type ResidualExpression, spacingOf, type SymbolInfo } from "./expression.ts";
import type { Grid } from "./grid.ts";
import type { PdeProblem } from "./problem.ts";
import { boundaryPoints, type IndexRange, initialPoints, unravelIndices } from "./sampling.ts";

/**
 * The basis and everything the residual reads from it, on the whole grid (see
 * {@link HardConstraint.features}).
 *
 * @example
 * ```ts
 * import type { BasisFeatures } from "./constraint_rows.ts";
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
  /** Each feature symbol's field `D_s(fields(basis))`, `[B, N, ...grid]`, in {@link ConstraintRows.symbols} order. */
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
 * The rows of a batch of experts' solves (see {@link ConstraintRows.layout}).
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
  /** Where each group's rows start, in {@link ConstraintRows.groups} order. */
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
 * import type { ExpertParams } from "./constraint_rows.ts";
 * const problems = (p: ExpertParams) => p.feats[0].shape[0]; // experts × batch
 * ```
 */
export interface ExpertParams {
  /** Gathered features, in {@link ConstraintRows.symbols} order: `[P, rows, N]`. */
  feats: Tensor[];
  /** Gathered offsets (empty without an offset): `[P, rows]`. */
  offsets: Tensor[];
  /** Per group, the values of its non-field symbols at its rows: `[P, length]` each (grid spacings: numbers). */
  inputs: Record<string, Tensor | number>[];
  /** Row mask `[P, rows]` (local conditions), or null. */
  mask: Tensor | null;
}

/**
 * Options of {@link ConstraintRows} (checked by the hard-constraint layer that builds them).
 *
 * @example
 * ```ts
 * import { type ConstraintRowsOptions, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const options: ConstraintRowsOptions = { problem: heat, grid: heat.grid({ nt: 9, nx: 16 }), basis: 4, conditions: "local" };
 * ```
 */
export interface ConstraintRowsOptions<G extends Grid = Grid> {
  /** The PDE (its residual expression and boundary conditions). */
  problem: PdeProblem<G>;
  /** The grid. */
  grid: G;
  /** Number N of basis functions. */
  basis: number;
  /** Add initial-condition rows (default true; false when a mollifier makes it exact). */
  initialRows?: boolean;
  /** Add rows for the problem's boundary conditions (default true). */
  boundaryConditions?: boolean;
  /** Weights of the initial-condition and boundary rows (default 1 each; 0 drops them). */
  weights?: { ic?: number; bc?: number };
  /** Which initial and boundary rows an expert solves: all (`"global"`, default) or those in its box. */
  conditions?: "global" | "local";
}

/**
 * The rows of every expert's solve for one PDE on one grid (see the module notes).
 *
 * @example
 * ```ts
 * import { ConstraintRows, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const rows = new ConstraintRows({ problem: heat, grid: heat.grid({ nt: 17, nx: 33 }), basis: 16 });
 * rows.symbols.map((s) => s.name); // ["u_t", "u_xx", "u"]: the features the rows read
 * ```
 */
export class ConstraintRows<G extends Grid = Grid> {
  /** The grid. */
  readonly grid: G;
  /** Number N of basis functions. */
  readonly n: number;
  /** The row groups every expert solves, the PDE first. */
  readonly groups: readonly RowGroup[];
  /** Whether experts solve all initial and boundary rows or only those in their box. */
  readonly conditions: "global" | "local";
  /** The field and derivative symbols read by any group: the linear features of the solve. */
  readonly symbols: readonly SymbolInfo[];
  /** The structured residual of the stacked problems (what the solver runs on). */
  readonly residual: BasisResidual<ExpertParams>;
  readonly #coords: Record<string, Float64Array>;

  /** The rows of `options.problem` on `options.grid`. */
  constructor(options: ConstraintRowsOptions<G>) {
    const { problem, grid } = options;
    this.grid = grid;
    this.n = options.basis;
    this.conditions = options.conditions ?? "global";
    const icWeight = options.weights?.ic ?? 1;
    const bcWeight = options.weights?.bc ?? 1;
    const groups: RowGroup[] = [{ name: "pde", expression: problem.expression, weight: 1, indices: null }];
    if ((options.initialRows ?? true) && icWeight !== 0) {
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
    this.residual = this.#makeResidual();
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
}

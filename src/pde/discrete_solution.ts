/**
 * The discrete solution of a physics loss: the field on the grid that minimises the loss's own
 * finite-difference residuals — the PDE residual at every grid point, the initial-condition and
 * the wall residuals, weighted as {@link pdeLoss} weighs them — found directly over every grid
 * value by Gauss–Newton, with no network in between.
 *
 * It answers a question no training run can: how close to the reference data can *any* method
 * trained on this loss get? A network trained on the physics loss alone (PI-SC, PI-HC, PI-HC-MoE)
 * is pulled towards this field, not towards the reference solution, so its distance from the
 * reference is a floor under their test errors set by the grid (coarse time steps through an
 * initial layer, one-sided stencils at walls), not by the method. The floor falls as the grid is
 * refined; on PDEBench's diffusion–sorption grid (dt = 5 s) it is measured in bench/RESULTS.md.
 *
 * How: the residual is local (finite differences), so the Jacobian is sparse and is recovered
 * exactly from one Jacobian–vector product per colour of a grid colouring (columns that share no
 * residual row share a colour; the stencil reach is probed on a small copy of the grid and the
 * assembled Jacobian is checked against a product with a random vector). With the unknowns
 * ordered time-innermost, JᵀJ is banded (half-bandwidth ≈ 2·reach_x·nt): the solve is
 * `leastSquares` with Gauss–Newton, a banded Cholesky as its linear solver and a backtracking line
 * search that keeps every step a descent.
 * 1D+t problems on bounded space axes; samples are solved side by side.
 *
 * @module
 */

import { BandedCholesky } from "../solve/banded.ts";
import type { Status } from "../solve/iterate.ts";
import { leastSquares } from "../solve/least_squares.ts";
import { BacktrackingLineSearch } from "../solve/search.ts";
import { GaussNewton } from "../solve/solvers.ts";
import {
  ArgumentError,
  concat,
  enableGrad,
  Generator,
  jacobian,
  jvp,
  noGrad,
  PatchworkError,
  rand,
  type Tensor,
  tensor,
  tidy,
} from "../tensor/mod.ts";
import type { Grid1D } from "./grid.ts";
import type { PdeLossWeights } from "./pde_loss.ts";
import type { PdeProblem } from "./problem.ts";

/**
 * Options of {@link discreteSolution}.
 *
 * @example
 * ```ts
 * import type { DiscreteSolutionOptions } from "./discrete_solution.ts";
 * // Diffusion–sorption's training loss: the residual (u/s) weighed by T = 500 s.
 * const options: DiscreteSolutionOptions = { weights: { pde: 500, ic: 1, bc: 1 }, maxIterations: 40 };
 * ```
 */
export interface DiscreteSolutionOptions {
  /** The loss weights of the PDE, initial and wall terms, as {@link pdeLoss} (default 1 each). */
  weights?: Pick<PdeLossWeights, "pde" | "ic" | "bc">;
  /** Starting fields `[B, nt, nx]` (default u0 at every time). */
  init?: Tensor;
  /** Gauss–Newton steps at most (default 50). */
  maxIterations?: number;
  /** Stop when a step lowers the objective by less than this fraction of it (default 1e-12). */
  tol?: number;
}

/**
 * The result of {@link discreteSolution}.
 *
 * @example
 * ```ts
 * import type { DiscreteSolution } from "./discrete_solution.ts";
 * const line = (s: DiscreteSolution) => `${s.iterations} steps, loss ${s.loss.map((l) => l.toExponential(2))}`;
 * ```
 */
export interface DiscreteSolution {
  /** The fields `[B, nt, nx]` (float64). */
  u: Tensor;
  /** Per sample: the objective, (w_pde·RMS_pde)² + (w_ic·RMS_ic)² + (w_bc·RMS_bc)². */
  loss: number[];
  /** Per sample: whether the steps stalled below `tol` (rather than hitting the step limit). */
  converged: boolean[];
  /**
   * Per sample, the solver's status: "converged" (a stationary point of the objective), "stalled"
   * (the steps stopped lowering it elsewhere), "max_steps", "singular" or "nonfinite".
   */
  status: Status[];
  /** Gauss–Newton steps taken (the most over the samples). */
  iterations: number;
  /** Half-bandwidth of the normal matrix (unknowns). */
  bandwidth: number;
  /** Stencil reach probed along t and x (grid points from a residual's own point). */
  reach: { t: number; x: number };
}

/** One residual row's position on the grid: the point its stencil is centred on. */
interface Rows {
  count: number;
  t: Int32Array;
  x: Int32Array;
}

/**
 * The field minimising the physics loss's residuals over every grid value (see the module notes):
 * the best any method trained on that loss alone can do, as a field to compare with the reference.
 *
 * @example
 * ```ts
 * import { DiffusionSorption, discreteSolution } from "./mod.ts";
 * const ds = new DiffusionSorption();
 * const data = ds.generateDataset({ n: 1, nx: 32, nt: 11, T: 50, seed: 0, dtype: "float64" });
 * const sol = discreteSolution(ds, data.grid, data.u0, { weights: { pde: 50 } });
 * const gap = sol.u.sub(data.u).norm().div(data.u.norm()).item(); // the grid's floor under any physics-trained method
 * ```
 */
export function discreteSolution(
  problem: PdeProblem<Grid1D>,
  grid: Grid1D,
  u0: Tensor,
  options: DiscreteSolutionOptions = {},
): DiscreteSolution {
  const op = "discreteSolution";
  if (grid.dims !== 1 || grid.shape.length !== 2) {
    throw new ArgumentError(op, `needs a 1D+t grid (t, x); got a grid of shape [${grid.shape}]`);
  }
  if (grid.x.periodic) {
    throw new ArgumentError(
      op,
      "the x axis is periodic: its wrap-around couples the first and last columns and the normal matrix is no " +
        "longer banded; discreteSolution handles bounded x axes",
    );
  }
  const [nt, nx] = grid.shape;
  if (u0.ndim !== 2 || u0.shape[1] !== nx) {
    throw new ArgumentError(op, `u0 must be [B, ${nx}] (initial conditions on the grid), got [${u0.shape}]`);
  }
  const batch = u0.shape[0];
  const weights = { pde: options.weights?.pde ?? 1, ic: options.weights?.ic ?? 1, bc: options.weights?.bc ?? 1 };
  for (const [name, w] of Object.entries(weights)) {
    if (!Number.isFinite(w) || w < 0) {
      throw new ArgumentError(op, `weights.${name} must be a finite number ≥ 0, got ${w}`);
    }
  }
  if (weights.pde === 0 && weights.ic === 0 && weights.bc === 0) {
    throw new ArgumentError(op, "every weight is 0: there is nothing to solve");
  }
  const maxIterations = options.maxIterations ?? 50;
  const tol = options.tol ?? 1e-12;
  if (!Number.isInteger(maxIterations) || maxIterations < 1) {
    throw new ArgumentError(op, `maxIterations must be a positive integer, got ${maxIterations}`);
  }
  if (!(tol >= 0)) throw new ArgumentError(op, `tol must be ≥ 0, got ${tol}`);
  const target = u0.cast("float64");
  const init = options.init ? options.init.cast("float64") : null;
  if (init && init.shape.join() !== [batch, nt, nx].join()) {
    throw new ArgumentError(op, `init must be [${batch}, ${nt}, ${nx}], got [${init.shape}]`);
  }

  const residuals = (field: Tensor): Tensor => lossRows(problem, grid, weights, field, target);
  const rows = rowPositions(problem, nt, nx, weights);
  const reach = probeReach(problem, grid, weights);
  const pt = Math.min(2 * reach.t + 1, nt);
  const px = Math.min(2 * reach.x + 1, nx);
  const bandwidth = Math.min(nt * nx - 1, 2 * reach.x * nt + 2 * reach.t);
  const n = nt * nx;
  const slots = pt * px;
  const width = bandwidth + 1;

  // The unknowns in the band's order, time innermost: w[b, j·nt + i] = u[b, i, j].
  const toField = (w: Tensor): Tensor => w.reshape([batch, nx, nt]).transpose(1, 2).contiguous();
  const toUnknowns = (u: Tensor): Tensor => u.transpose(1, 2).contiguous().reshape([batch, n]);
  const residual = (w: Tensor): Tensor => residuals(toField(w));
  let checked = false;
  // JᵀJ (as bands) and Jᵀr from the coloured Jacobian: per sample and row, up to pt·px
  // (column, value) slots, one Jacobian–vector product per colour.
  const normalEquations = (w: Tensor, r: Tensor): { jtj: Tensor; jtr: Tensor } => {
    const u = toField(w);
    const cols = Array.from({ length: batch }, () => new Int32Array(rows.count * slots).fill(-1));
    const vals = Array.from({ length: batch }, () => new Float64Array(rows.count * slots));
    for (let ct = 0; ct < pt; ct++) {
      for (let cx = 0; cx < px; cx++) {
        const g = tidy(() => {
          const tangent = colourTangent(batch, nt, nx, pt, px, ct, cx);
          // (the solver iterates without recording; the product needs autodiff on)
          return enableGrad(() => jvp(residuals, [u], [tangent]))[1].toTypedArray() as Float64Array;
        });
        const slot = ct * px + cx;
        for (let b = 0; b < batch; b++) {
          const off = b * rows.count;
          for (let row = 0; row < rows.count; row++) {
            const v = g[off + row];
            if (v === 0) continue;
            const i = nearestOfColour(rows.t[row], ct, pt, reach.t);
            const j = nearestOfColour(rows.x[row], cx, px, reach.x);
            if (i < 0 || i >= nt || j < 0 || j >= nx) {
              throw new PatchworkError(
                op,
                `residual row ${row} depends on a column beyond the probed stencil reach (t ±${reach.t}, x ±${reach.x}); ` +
                  "the residual is not local in the way its small-grid probe showed",
              );
            }
            cols[b][row * slots + slot] = j * nt + i;
            vals[b][row * slots + slot] = v;
          }
        }
      }
    }
    if (!checked) checkJacobian(op, u, residuals, rows.count, slots, cols, vals);
    checked = true;
    u.dispose();
    const f = r.toTypedArray();
    const band = new Float64Array(batch * n * width);
    const jtr = new Float64Array(batch * n);
    for (let b = 0; b < batch; b++) {
      const c = cols[b];
      const v = vals[b];
      const mb = b * n * width;
      for (let row = 0; row < rows.count; row++) {
        const fr = f[b * rows.count + row];
        for (let s = 0; s < slots; s++) {
          const ca = c[row * slots + s];
          if (ca < 0) continue;
          const va = v[row * slots + s];
          jtr[b * n + ca] += va * fr;
          for (let s2 = 0; s2 < slots; s2++) {
            const cb = c[row * slots + s2];
            if (cb < 0 || cb > ca) continue;
            band[mb + ca * width + (ca - cb)] += va * v[row * slots + s2];
          }
        }
      }
    }
    return {
      jtj: tensor(band, { dtype: "float64", shape: [batch, n, width] }),
      jtr: tensor(jtr, { dtype: "float64", shape: [batch, n] }),
    };
  };

  // Gauss–Newton with a backtracking line search (lengths 1, ½, ¼, … until the objective does not
  // rise), a whisper of Levenberg damping where a column is barely seen, and a stop when a step
  // lowers the objective by less than `tol` of it.
  const solver = new GaussNewton({
    search: new BacktrackingLineSearch({ tries: 40 }),
    linearSolver: new BandedCholesky({ bandwidth, shift: 1e-12 }),
    atol: 0,
    rtol: 0,
    ftol: tol,
    maxSteps: maxIterations,
  });
  const w0 = noGrad(() => toUnknowns(init ?? target.unsqueeze(1).expand([batch, nt, nx])));
  const sol = noGrad(() => leastSquares(residual, w0, {}, { solver, jacobian: { normalEquations } }));
  w0.dispose();
  const u = noGrad(() => toField(sol.value));
  sol.value.dispose();
  const loss = tidy(() => Array.from(noGrad(() => residuals(u)).square().sum(1).toTypedArray()));
  const converged = sol.status.map((st) => st === "converged" || st === "stalled");
  return { u, loss, converged, status: sol.status, iterations: sol.iterations, bandwidth, reach };
}

/**
 * The loss's residual rows `[B, m]` of fields `[B, nt, nx]`: PDE, initial and wall residuals, each
 * scaled so that the sum of squares is (w_pde·RMS_pde)² + (w_ic·RMS_ic)² + (w_bc·RMS_bc)².
 */
function lossRows(
  problem: PdeProblem<Grid1D>,
  grid: Grid1D,
  weights: { pde: number; ic: number; bc: number },
  field: Tensor,
  u0: Tensor,
): Tensor {
  const [nt, nx] = grid.shape;
  const walls = problem.boundaryConditions.filter((b) => b.axis === "x");
  const parts: Tensor[] = [];
  if (weights.pde > 0) {
    parts.push(problem.residual(field, grid).reshape([field.shape[0], -1]).mul(weights.pde / Math.sqrt(nt * nx)));
  }
  if (weights.ic > 0) parts.push(problem.initialResidual(field, grid, u0).mul(weights.ic / Math.sqrt(nx)));
  if (weights.bc > 0 && walls.length) {
    const res = problem.boundaryResiduals(field, grid);
    const scale = weights.bc / Math.sqrt(walls.length * nt);
    for (const w of walls) parts.push(res[w.name].mul(scale));
  }
  return parts.length === 1 ? parts[0] : concat(parts, 1);
}

/** Every residual row's grid point, in the order {@link lossRows} concatenates them. */
function rowPositions(
  problem: PdeProblem<Grid1D>,
  nt: number,
  nx: number,
  weights: { pde: number; ic: number; bc: number },
): Rows {
  const wallColumns = problem.boundaryConditions.filter((b) => b.axis === "x").map((
    w,
  ) => (w.side === "low" ? 0 : nx - 1));
  const t: number[] = [];
  const x: number[] = [];
  if (weights.pde > 0) {
    for (let i = 0; i < nt; i++) for (let j = 0; j < nx; j++) t.push(i), x.push(j);
  }
  if (weights.ic > 0) { for (let j = 0; j < nx; j++) t.push(0), x.push(j); }
  if (weights.bc > 0) { for (const j of wallColumns) for (let i = 0; i < nt; i++) t.push(i), x.push(j); }
  return { count: t.length, t: Int32Array.from(t), x: Int32Array.from(x) };
}

/** The grid index of colour `c` (mod p) within `reach` of `at`; unique since p = 2·reach + 1. */
function nearestOfColour(at: number, c: number, p: number, reach: number): number {
  const lo = at - reach;
  return lo + ((((c - lo) % p) + p) % p);
}

/** The tangent with ones on the columns of colour (ct, cx), in every sample. */
function colourTangent(batch: number, nt: number, nx: number, pt: number, px: number, ct: number, cx: number): Tensor {
  const data = new Float64Array(batch * nt * nx);
  for (let i = ct; i < nt; i += pt) {
    for (let j = cx; j < nx; j += px) for (let b = 0; b < batch; b++) data[(b * nt + i) * nx + j] = 1;
  }
  return tensor(data, { dtype: "float64", shape: [batch, nt, nx] });
}

/**
 * The stencil reach along t and x: the farthest column any residual row reads, from the dense
 * Jacobian on a small grid of the same kind (walls and one-sided rows included).
 */
function probeReach(
  problem: PdeProblem<Grid1D>,
  grid: Grid1D,
  weights: { pde: number; ic: number; bc: number },
): { t: number; x: number } {
  const nt = Math.min(grid.t.n, 12);
  const nx = Math.min(grid.x.n, 16);
  const small = grid.resized({ nt, nx });
  const rows = rowPositions(problem, nt, nx, weights);
  return tidy(() => {
    const field = rand([1, nt, nx], { dtype: "float64", generator: new Generator(7) }).mul(0.5).add(0.25);
    const ic = rand([1, nx], { dtype: "float64", generator: new Generator(8) });
    const f = (v: Tensor): Tensor => lossRows(problem, small, weights, v, ic);
    const jac = jacobian(f, field).toTypedArray();
    let rt = 0;
    let rx = 0;
    for (let r = 0; r < rows.count; r++) {
      for (let i = 0; i < nt; i++) {
        for (let j = 0; j < nx; j++) {
          if (jac[r * nt * nx + i * nx + j] === 0) continue;
          rt = Math.max(rt, Math.abs(i - rows.t[r]));
          rx = Math.max(rx, Math.abs(j - rows.x[r]));
        }
      }
    }
    if (2 * rt + 1 > nt || 2 * rx + 1 > nx) {
      throw new ArgumentError(
        "discreteSolution",
        `the residual reads ${rt} points away in t and ${rx} in x on a ${nt} × ${nx} grid: it is not a local ` +
          "finite-difference residual (spectral terms, say), so its Jacobian is not sparse",
      );
    }
    return { t: rt, x: rx };
  });
}

/** Checks the assembled Jacobian against one Jacobian–vector product with a random vector. */
function checkJacobian(
  op: string,
  u: Tensor,
  f: (v: Tensor) => Tensor,
  count: number,
  slots: number,
  cols: Int32Array[],
  vals: Float64Array[],
): void {
  const [batch, nt, nx] = u.shape;
  tidy(() => {
    const v = rand(u.shape, { dtype: "float64", generator: new Generator(11) }).sub(0.5);
    const host = v.toTypedArray() as Float64Array;
    const [, jv] = enableGrad(() => jvp(f, [u], [v]));
    const ref = jv.toTypedArray();
    let err = 0;
    let scale = 0;
    for (let b = 0; b < batch; b++) {
      for (let r = 0; r < count; r++) {
        let s = 0;
        for (let k = 0; k < slots; k++) {
          const c = cols[b][r * slots + k];
          if (c < 0) continue;
          const i = c % nt;
          const j = (c - i) / nt;
          s += vals[b][r * slots + k] * host[(b * nt + i) * nx + j];
        }
        err = Math.max(err, Math.abs(s - ref[b * count + r]));
        scale = Math.max(scale, Math.abs(ref[b * count + r]));
      }
    }
    if (err > 1e-9 * Math.max(scale, 1e-300)) {
      throw new PatchworkError(op, `the coloured Jacobian misses J·v by ${err} (of ${scale}); the colouring is wrong`);
    }
  });
}

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
 * ordered time-innermost, JᵀJ is banded (half-bandwidth ≈ 2·reach_x·nt) and each step is a banded
 * Cholesky solve (`BandedMatrix`); a backtracking line search keeps every step a descent.
 * 1D+t problems on bounded space axes; samples are solved side by side.
 *
 * @module
 */

import { BandedMatrix } from "../solve/banded.ts";
import {
  ArgumentError,
  concat,
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
  let u = options.init
    ? options.init.cast("float64")
    : noGrad(() => target.unsqueeze(1).expand([batch, nt, nx]).contiguous());
  if (u.shape.join() !== [batch, nt, nx].join()) {
    throw new ArgumentError(op, `init must be [${batch}, ${nt}, ${nx}], got [${u.shape}]`);
  }

  const residuals = (field: Tensor): Tensor => lossRows(problem, grid, weights, field, target);
  const rows = rowPositions(problem, nt, nx, weights);
  const reach = probeReach(problem, grid, weights);
  const pt = Math.min(2 * reach.t + 1, nt);
  const px = Math.min(2 * reach.x + 1, nx);
  const bandwidth = Math.min(nt * nx - 1, 2 * reach.x * nt + 2 * reach.t);
  const n = nt * nx;
  const slots = pt * px;

  const objective = (field: Tensor): number[] =>
    tidy(() => {
      const r = noGrad(() => residuals(field));
      return Array.from(r.square().sum(1).toTypedArray());
    });
  let loss = objective(u);
  const converged = new Array<boolean>(batch).fill(false);
  const active = () => converged.some((c) => !c);
  let iterations = 0;
  while (iterations < maxIterations && active()) {
    iterations++;
    // Jacobian entries, per sample and row: up to pt·px (column, value) slots.
    const cols = Array.from({ length: batch }, () => new Int32Array(rows.count * slots).fill(-1));
    const vals = Array.from({ length: batch }, () => new Float64Array(rows.count * slots));
    let f: Float64Array | null = null;
    for (let ct = 0; ct < pt; ct++) {
      for (let cx = 0; cx < px; cx++) {
        const [fv, g] = tidy(() => {
          const tangent = colourTangent(batch, nt, nx, pt, px, ct, cx);
          const [value, dir] = jvp(residuals, [u], [tangent]);
          return [value.toTypedArray() as Float64Array, dir.toTypedArray() as Float64Array];
        });
        f ??= fv;
        const slot = ct * px + cx;
        for (let b = 0; b < batch; b++) {
          const off = b * rows.count;
          for (let r = 0; r < rows.count; r++) {
            const v = g[off + r];
            if (v === 0) continue;
            const i = nearestOfColour(rows.t[r], ct, pt, reach.t);
            const j = nearestOfColour(rows.x[r], cx, px, reach.x);
            if (i < 0 || i >= nt || j < 0 || j >= nx) {
              throw new PatchworkError(
                op,
                `residual row ${r} depends on a column beyond the probed stencil reach (t ±${reach.t}, x ±${reach.x}); ` +
                  "the residual is not local in the way its small-grid probe showed",
              );
            }
            cols[b][r * slots + slot] = j * nt + i;
            vals[b][r * slots + slot] = v;
          }
        }
      }
    }
    if (iterations === 1) checkJacobian(op, u, residuals, rows.count, slots, cols, vals);
    const steps: Float64Array[] = [];
    for (let b = 0; b < batch; b++) {
      if (converged[b]) {
        steps.push(new Float64Array(n));
        continue;
      }
      const m = new BandedMatrix(n, bandwidth);
      const rhs = new Float64Array(n);
      const c = cols[b];
      const v = vals[b];
      for (let r = 0; r < rows.count; r++) {
        const fr = f![b * rows.count + r];
        for (let s = 0; s < slots; s++) {
          const ca = c[r * slots + s];
          if (ca < 0) continue;
          const va = v[r * slots + s];
          rhs[ca] -= va * fr;
          for (let s2 = 0; s2 < slots; s2++) {
            const cb = c[r * slots + s2];
            if (cb < 0 || cb > ca) continue;
            m.band[ca * (m.bandwidth + 1) + (ca - cb)] += va * v[r * slots + s2];
          }
        }
      }
      // A whisper of Levenberg damping keeps the factorisation safe where a column is barely seen.
      let diag = 0;
      for (let j = 0; j < n; j++) diag = Math.max(diag, m.band[j * (m.bandwidth + 1)]);
      for (let j = 0; j < n; j++) m.band[j * (m.bandwidth + 1)] += 1e-12 * diag;
      m.factor();
      const sol = m.solve(rhs);
      // Back to the field's layout [nt, nx] from the time-innermost ordering.
      const step = new Float64Array(n);
      for (let j = 0; j < nx; j++) for (let i = 0; i < nt; i++) step[i * nx + j] = sol[j * nt + i];
      steps.push(step);
    }
    // Backtracking: halve each sample's step until its objective falls; none falls at any length
    // means a stationary point.
    const alpha = converged.map((c) => (c ? 0 : 1));
    const pending = converged.map((c) => !c);
    const base = u.toTypedArray() as Float64Array;
    const along = (a: number[]): Tensor => {
      const flat = Float64Array.from(base);
      for (let b = 0; b < batch; b++) {
        if (a[b] !== 0) { for (let k = 0; k < n; k++) flat[b * n + k] += a[b] * steps[b][k]; }
      }
      return tensor(flat, { dtype: "float64", shape: [batch, nt, nx] });
    };
    for (let tries = 0; tries < 40 && pending.some((p) => p); tries++) {
      const trial = along(alpha);
      const trialLoss = objective(trial);
      trial.dispose();
      for (let b = 0; b < batch; b++) {
        if (!pending[b]) continue;
        if (trialLoss[b] <= loss[b]) pending[b] = false;
        else alpha[b] /= 2;
      }
    }
    for (let b = 0; b < batch; b++) if (pending[b]) alpha[b] = 0;
    const next = along(alpha);
    const nextLoss = objective(next);
    for (let b = 0; b < batch; b++) {
      if (!converged[b] && (alpha[b] === 0 || loss[b] - nextLoss[b] <= tol * loss[b])) converged[b] = true;
    }
    if (u !== options.init) u.dispose();
    u = next;
    loss = nextLoss;
  }
  return { u, loss, converged, iterations, bandwidth, reach };
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
    const [, jv] = jvp(f, [u], [v]);
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

/**
 * The physics loss of a prediction on the grid ({@link pdeLoss}): the root-mean-square PDE residual
 * (finite differences), the initial- and boundary-condition residuals, and for a mixture of experts
 * whose residual each expert owns, how neighbouring experts' fields meet. It is the training loss
 * of the hard-constraint methods (as the paper: no solution data) and of the soft-constraint
 * baseline.
 *
 * @example
 * ```ts
 * import { Heat1D, pdeLoss } from "./mod.ts";
 * const heat = new Heat1D();
 * const d = heat.generateDataset({ n: 2, nx: 33, nt: 17, dtype: "float64" });
 * pdeLoss(heat, d.grid, d.u, d.u0).loss.item(); // small: the exact solution's FD residual
 * ```
 *
 * @module
 */

import { ArgumentError, concat, type Tensor } from "../tensor/mod.ts";
import type { Grid } from "./grid.ts";
import type { PdeProblem } from "./problem.ts";

/**
 * Weights of the terms of {@link pdeLoss}.
 *
 * @example
 * ```ts
 * import type { PdeLossWeights } from "./pde_loss.ts";
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
 * import type { ExpertFields } from "./pde_loss.ts";
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

/**
 * PDE toolkit: space-time grids, finite-difference operators, constraint-point sampling, PDE
 * residuals written as mathjs expressions (compiled to differentiable tensor ops, with symbolic
 * partials for structured Jacobians), and PDE problems with classical reference solvers that make
 * training and test data. On top of them, PI-HC-MoE (Chalapathi, Du & Krishnapriyan, ICLR 2024):
 * the hard-constraint layer (`hard_constraint.ts`; its solves' rows in `constraint_rows.ts`, their
 * summary in `expert_solve.ts`), the physics loss (`pde_loss.ts`), the mixture of experts over a domain
 * decomposition (`experts.ts`), the data-only and soft-constraint baselines with the same network
 * (`baselines.ts`), their evaluation (`evaluate.ts`), and their training on the shared loop of
 * `src/train` (`train.ts`).
 *
 * @example
 * ```ts
 * import { pde } from "../../mod.ts";
 * const burgers = new pde.Burgers1D({ nu: 0.01 });
 * const data = burgers.generateDataset({ n: 4, seed: 0, nx: 128, nt: 51 });
 * const r = burgers.residual(data.u, data.grid); // FD residual of the reference solution
 * ```
 *
 * @module
 */

import "../backend/select.ts";

export * from "./grid.ts";
export * from "./finite_difference.ts";
export * from "./sampling.ts";
export * from "./expression.ts";
export * from "./problem.ts";
export * from "./tridiagonal.ts";
export * from "./random_fields.ts";
export { velocityFromVorticity, wavenumbers } from "./spectral.ts";
export * from "./problems/heat_1d.ts";
export * from "./problems/burgers_1d.ts";
export * from "./problems/heat_2d.ts";
export * from "./problems/diffusion_sorption.ts";
export * from "./problems/navier_stokes_2d.ts";
export * from "./constraint_rows.ts";
export * from "./hard_constraint.ts";
export * from "./pde_loss.ts";
export * from "./expert_solve.ts";
export * from "./experts.ts";
export * from "./baselines.ts";
export * from "./evaluate.ts";
export * from "./train.ts";
export * from "./discrete_solution.ts";
export { DataFileError, type FileDataset, type SampleRange } from "./data_files.ts";
export * from "./pdebench.ts";
export * from "./tfrecord.ts";

/**
 * 1D diffusion–sorption (PDEBench; PI-HC-MoE's first benchmark): a contaminant diffusing into
 * soil with Freundlich sorption,
 *
 *     u_t = D / R(u) · u_xx,   R(u) = 1 + (1 − φ)/φ · ρ_s · k_f · n_f · (u + 10⁻⁶)^(n_f − 1),
 *
 * on x ∈ (0, 1), t ∈ (0, 500] s, with PDEBench's constants D = 5·10⁻⁴, φ = 0.29, ρ_s = 2880,
 * k_f = 3.5·10⁻⁴, n_f = 0.874, and its data layout: 1024 cell centres (dx = 1/1024) by 101 times
 * (every 5 s). Initial conditions are constant in x, u0 ~ U(0, 0.2) per sample (PDEBench draws them
 * with NumPy's `uniform(0, 0.2)`; ours come from the tensor layer's seeded stream).
 *
 * **Boundary conditions.** u(0, t) = 1 (the solubility). At x = 1 PDEBench's finite-volume code sets
 * the ghost cell to `D·(c[N−2] − c[N−1])/dx ≈ −D·u_x`, i.e. the Robin condition **u + D·u_x = 0**
 * (an outflow). PDEBench's PINN code and the PI-HC-MoE paper write it `u = D·u_x`; with that sign
 * the problem is ill-posed here (a boundary mode grows like exp(t/(R·D)), about e^600 per second),
 * so the boundary residuals use the finite-volume sign, which the data satisfies. Both values sit
 * at PDEBench's ghost-cell centres, one cell outside the first and last centres, so the residuals
 * extrapolate there from the wall: `u − h_x·u_x − 1` on the left and `u + (h_x + D)·u_x` on the
 * right (second order in h_x with the one-sided u_x, so the reference data satisfies them to the
 * scheme's own accuracy instead of missing the wall value by h_x/2·u_x).
 *
 * **Reference solver.** PDEBench's method of lines: cell-centred finite volumes with the ghost cells
 * above (`boundary: "pdebench"`, the default, which puts the Dirichlet value at the ghost centre
 * x = −dx/2, so the scheme is first order in dx) or with the conditions imposed on the faces
 * (`"face"`: ghost = 2 − c[0] and the Robin condition on the face x = 1; second order in dx). PDEBench
 * integrated in time with scipy's adaptive RK45. That explicit scheme is bound by the diffusive
 * stability limit `dt ≤ c·dx²·R/D` (≈ 3·10⁻³ s at dx = 1/1024, some 10⁵ steps for 500 s), so we use
 * a linearly implicit, variable-step BDF2 instead: each step solves one tridiagonal system
 * `(I − τ·a*·L) u_{n+1} = rhs` (batched parallel cyclic reduction, `tridiagonal.ts`) with the
 * coefficient `a* = D/R(u*)` at the second-order extrapolation `u*`, so it is unconditionally stable
 * and second order in dt. The first output interval starts with a geometric ramp of steps (from
 * 10⁻⁴·dt, ratio 1.5) to resolve the initial layer where u jumps from u0 to 1 at the wall.
 *
 * @module
 */

import { ArgumentError, concat, Generator, rand, type Tensor, tidy } from "../../tensor/mod.ts";
import { Grid1D } from "../grid.ts";
import { type BoundaryCondition, type Dataset, PdeProblem, type TensorPlacement } from "../problem.ts";
import { constant } from "../spectral.ts";
import { solveTridiagonal } from "../tridiagonal.ts";

/** PDEBench's diffusion–sorption constants. */
export const DIFFUSION_SORPTION_PARAMETERS: Readonly<Record<string, number>> = Object.freeze({
  D: 5e-4,
  phi: 0.29,
  rho_s: 2880,
  k_f: 3.5e-4,
  n_f: 0.874,
});

/** Options of {@link DiffusionSorption}. */
export interface DiffusionSorptionOptions {
  /** Override some of the constants D, phi, rho_s, k_f, n_f. */
  parameters?: Partial<Record<"D" | "phi" | "rho_s" | "k_f" | "n_f", number>>;
  /** Boundary value at x = 0 (PDEBench's solubility `sol`, default 1). */
  inflow?: number;
}

/** Options of {@link DiffusionSorption.solve}. */
export interface DiffusionSorptionSolveOptions {
  /** BDF2 steps per output interval (default 10: 0.5 s on PDEBench's grid). At least 4. */
  steps?: number;
  /** Ghost cells as PDEBench (`"pdebench"`, default) or conditions on the faces (`"face"`). */
  boundary?: "pdebench" | "face";
  /** Ramp the first output interval's steps up from a tiny one (default true). */
  ramp?: boolean;
}

/** Options of {@link DiffusionSorption.generateDataset}. */
export interface DiffusionSorptionDatasetOptions extends TensorPlacement, DiffusionSorptionSolveOptions {
  /** Number of samples. */
  n: number;
  /** Seed (default 0). */
  seed?: number;
  /** Cells (default 1024). */
  nx?: number;
  /** Time points including t = 0 (default 101). */
  nt?: number;
  /** Final time in seconds (default 500). */
  T?: number;
  /** Samples solved at once (default all). */
  batchSize?: number;
}

/**
 * The diffusion–sorption problem.
 *
 * @example
 * ```ts
 * import { DiffusionSorption } from "../mod.ts";
 * const ds = new DiffusionSorption();
 * const { u, grid } = ds.generateDataset({ n: 2, seed: 0, nx: 256, nt: 101 });
 * u.shape; // [2, 101, 256]
 * ds.boundaryResiduals(u, grid).left; // u − h·u_x − 1: u at the ghost centre x₀ − h, minus 1
 * ```
 */
export class DiffusionSorption extends PdeProblem<Grid1D> {
  /** Short name. */
  readonly name = "diffusion_sorption";
  /** Number of space dimensions. */
  readonly dims = 1 as const;
  /** The residual, in mathjs syntax (parsed by `parseResidual`, as a user's PDE is). */
  readonly residualSource = "u_t - D / R(u) * u_xx";
  /**
   * Helper definitions used by the residual. PDEBench writes (u + 10⁻⁶)^(n_f − 1), which is NaN
   * wherever a trial u dips below −10⁻⁶; |u| keeps R finite there and equals PDEBench's form for
   * u ≥ 0 (the reference solver likewise clamps u at 0).
   */
  override readonly definitions: readonly string[] = [
    "R(u) = 1 + (1 - phi) / phi * rho_s * k_f * n_f * (abs(u) + 1e-6)^(n_f - 1)",
  ];
  /** Parameter values. */
  readonly parameters: Readonly<Record<string, number>>;
  /** Conditions on the walls, as residual expressions. */
  override readonly boundaryConditions: readonly BoundaryCondition[];
  /** The boundary value at x = 0. */
  readonly inflow: number;

  /** The problem with PDEBench's constants (or overrides). */
  constructor(options: DiffusionSorptionOptions = {}) {
    super();
    this.parameters = { ...DIFFUSION_SORPTION_PARAMETERS, ...(options.parameters ?? {}) };
    this.inflow = options.inflow ?? 1;
    this.boundaryConditions = [
      { name: "left", axis: "x", side: "low", expression: `u - h_x * u_x - ${this.inflow}` },
      { name: "right", axis: "x", side: "high", expression: "u + (h_x + D) * u_x" },
    ];
  }

  /**
   * PDEBench's grid: `nx` cell centres on (0, 1) and `nt` times on [0, T].
   *
   * @example
   * ```ts
   * import { DiffusionSorption } from "../mod.ts";
   * const g = new DiffusionSorption().grid(); // 101 × 1024, dt = 5 s, dx = 1/1024
   * ```
   */
  grid(options: { nt?: number; nx?: number; T?: number } = {}): Grid1D {
    return new Grid1D({
      nt: options.nt ?? 101,
      t: [0, options.T ?? 500],
      x: { n: options.nx ?? 1024, centering: "cell" },
    });
  }

  /** Constant initial conditions u0 ~ U(0, 0.2), one value per sample: `[n, nx]`. */
  initialConditions(n: number, grid: Grid1D, options: TensorPlacement & { seed?: number } = {}): Tensor {
    const level = rand([n, 1], { generator: new Generator(options.seed ?? 0), dtype: "float64" }).toTypedArray();
    const nx = grid.x.n;
    const host = new Float64Array(n * nx);
    for (let s = 0; s < n; s++) host.fill(0.2 * level[s], s * nx, (s + 1) * nx);
    return constant(host, [n, nx], options.dtype ?? "float32", options.backend);
  }

  /**
   * The finite-volume solution on the grid from `u0` (`[...batch, nx]` → `[...batch, nt, nx]`).
   * The grid's x axis must be cell-centred.
   *
   * @example
   * ```ts
   * import { DiffusionSorption } from "../mod.ts";
   * const ds = new DiffusionSorption();
   * const g = ds.grid({ nx: 64, nt: 11, T: 50 });
   * const u = ds.solve(ds.initialConditions(2, g, { dtype: "float64" }), g, { steps: 20 });
   * ```
   */
  solve(u0: Tensor, grid: Grid1D, options: DiffusionSorptionSolveOptions = {}): Tensor {
    grid.checkField("DiffusionSorption.solve", u0, false);
    if (grid.x.periodic || grid.x.centering !== "cell") {
      throw new ArgumentError("DiffusionSorption.solve", "the grid's x axis must be bounded and cell-centred");
    }
    const steps = options.steps ?? 10;
    const boundary = options.boundary ?? "pdebench";
    if (!Number.isInteger(steps) || steps < 1) {
      throw new ArgumentError("DiffusionSorption.solve", `steps must be a positive integer, got ${steps}`);
    }
    if (boundary !== "pdebench" && boundary !== "face") {
      throw new ArgumentError("DiffusionSorption.solve", `boundary must be "pdebench" or "face", got ${boundary}`);
    }
    const { D, phi, rho_s, k_f, n_f } = this.parameters;
    const coef = ((1 - phi) / phi) * rho_s * k_f * n_f;
    const nx = grid.x.n;
    const h = grid.x.spacing;
    const ih2 = 1 / (h * h);
    // Rows of the finite-volume Laplacian with the ghost cells folded in, and its constant part g.
    const sub = new Float64Array(nx).fill(ih2);
    const diag = new Float64Array(nx).fill(-2 * ih2);
    const sup = new Float64Array(nx).fill(ih2);
    const g = new Float64Array(nx);
    const r = D / h;
    if (boundary === "pdebench") {
      g[0] = this.inflow * ih2; // ghost c[−1] = sol
      sub[nx - 1] = (1 + r) * ih2; // ghost c[N] = D·(c[N−2] − c[N−1])/dx
      diag[nx - 1] = -(2 + r) * ih2;
    } else {
      diag[0] = -3 * ih2; // ghost c[−1] = 2·sol − c[0]
      g[0] = 2 * this.inflow * ih2;
      diag[nx - 1] = (-2 + (r - 0.5) / (r + 0.5)) * ih2; // (c[N−1] + c[N])/2 + D·(c[N] − c[N−1])/dx = 0
    }
    const dtype = u0.dtype;
    const be = u0.backend;
    const Ls = constant(sub, [nx], dtype, be);
    const Ld = constant(diag, [nx], dtype, be);
    const Lu = constant(sup, [nx], dtype, be);
    const G = constant(g, [nx], dtype, be);
    const a = (c: Tensor) => c.maximum(0).add(1e-6).pow(n_f - 1).mul(coef).add(1).pow(-1).mul(D);
    // One linearly implicit BDF2 step of size dt; omega = dt / previous dt (null: backward Euler).
    const step = (cn: Tensor, cp: Tensor | null, dt: number, omega: number | null): Tensor => {
      let tau: number, rhs: Tensor, aStar: Tensor;
      if (cp === null || omega === null) {
        tau = dt;
        aStar = a(cn);
        rhs = cn;
      } else {
        const a0 = (1 + 2 * omega) / (1 + omega);
        const a1 = 1 + omega;
        const a2 = (omega * omega) / (1 + omega);
        tau = dt / a0;
        aStar = a(cn.mul(1 + omega).sub(cp.mul(omega)));
        rhs = cn.mul(a1 / a0).sub(cp.mul(a2 / a0));
      }
      const ta = aStar.mul(tau);
      return solveTridiagonal(ta.mul(Ls).neg(), ta.mul(Ld).neg().add(1), ta.mul(Lu).neg(), rhs.add(ta.mul(G)));
    };
    const interval = grid.t.spacing;
    const dt = interval / steps;
    const schedule = (first: boolean): number[] => {
      if (!first || options.ramp === false || steps < 4) return new Array(steps).fill(dt);
      const grow = 1.5;
      const ramp: number[] = [];
      for (let hk = 1e-4 * dt; hk < dt; hk *= grow) ramp.push(hk);
      const rest = interval - ramp.reduce((s, v) => s + v, 0);
      const m = Math.max(1, Math.round(rest / dt));
      return [...ramp, ...new Array(m).fill(rest / m)];
    };
    const frames: Tensor[] = [u0.unsqueeze(-2)];
    let cur = u0;
    let prev: Tensor | null = null;
    let lastDt = 0;
    for (let j = 1; j < grid.t.n; j++) {
      const [c, p, last] = tidy(() => {
        let c = cur;
        let p = prev;
        let hPrev = lastDt;
        for (const hk of schedule(j === 1)) {
          const next = step(c, p, hk, p === null ? null : hk / hPrev);
          p = c;
          c = next;
          hPrev = hk;
        }
        return [c, p!, hPrev] as const;
      });
      cur = c;
      prev = p;
      lastDt = last;
      frames.push(cur.unsqueeze(-2));
    }
    return concat(frames, frames[0].ndim - 2);
  }

  /**
   * Seeded initial conditions and reference solutions on PDEBench's grid (or a coarser one).
   *
   * @example
   * ```ts
   * import { DiffusionSorption } from "../mod.ts";
   * const d = new DiffusionSorption().generateDataset({ n: 4, seed: 0, nx: 128 });
   * d.u.shape; // [4, 101, 128]
   * ```
   */
  generateDataset(options: DiffusionSorptionDatasetOptions): Dataset<Grid1D> {
    const grid = this.grid(options);
    const u0 = this.initialConditions(options.n, grid, options);
    const u = this.solveBatched(u0, grid, options.batchSize ?? options.n, (x) => this.solve(x, grid, options));
    return { grid, u0, u, parameters: this.parameters };
  }
}

/**
 * 1D heat equation `u_t = κ u_xx` on [0, 1], with u = 0 on both walls (`"dirichlet"`, the
 * default) or periodic. A small, fast problem for demos and tests.
 *
 * Reference solvers (both exact in their own sense, via FFTs):
 * - `"exact"`: the solution of the PDE for the grid-interpolated initial condition: each sine
 *   (Dirichlet, through the odd extension) or Fourier (periodic) mode decays by `exp(−κ ω² t)`.
 *   Exact at the grid points when u0 is a sum of the first n − 2 sine modes (n/2 Fourier modes),
 *   which the sampler draws.
 * - `"crank-nicolson"`: the classical scheme, second-order central differences in x and
 *   Crank–Nicolson in t (`steps` per output interval), solved mode by mode since the sine or
 *   Fourier modes diagonalise the difference operator. Second order in dx and dt.
 *
 * @module
 */

import { ArgumentError, concat, Generator, irfft, narrow, randn, rfft, type Tensor } from "../../tensor/mod.ts";
import { Grid1D } from "../grid.ts";
import { type BoundaryCondition, type Dataset, PdeProblem, type TensorPlacement } from "../problem.ts";
import { constant } from "../spectral.ts";

/** Options of {@link Heat1D}. */
export interface Heat1DOptions {
  /** Diffusivity κ (default 0.1). */
  kappa?: number;
  /** `"dirichlet"` (u = 0 at x = 0 and 1, default) or `"periodic"`. */
  boundary?: "dirichlet" | "periodic";
  /** Number of random modes in the initial conditions (default 8). */
  modes?: number;
}

/** Options of {@link Heat1D.solve}. */
export interface Heat1DSolveOptions {
  /** `"exact"` (default) or `"crank-nicolson"`. */
  method?: "exact" | "crank-nicolson";
  /** Crank–Nicolson steps per output interval (default 1). */
  steps?: number;
}

/** Options of {@link Heat1D.generateDataset}. */
export interface Heat1DDatasetOptions extends TensorPlacement {
  /** Number of samples. */
  n: number;
  /** Seed of the initial conditions (default 0). */
  seed?: number;
  /** Space points (default 128). */
  nx?: number;
  /** Time points (default 101). */
  nt?: number;
  /** Final time (default 1). */
  T?: number;
}

/**
 * The 1D heat equation.
 *
 * @example
 * ```ts
 * import { Heat1D } from "../mod.ts";
 * const heat = new Heat1D({ kappa: 0.1 });
 * const { grid, u } = heat.generateDataset({ n: 4, seed: 0, nx: 65, nt: 51 });
 * u.shape; // [4, 51, 65]
 * heat.residualSource; // "u_t - kappa * u_xx"
 * ```
 */
export class Heat1D extends PdeProblem<Grid1D> {
  /** Short name. */
  readonly name = "heat_1d";
  /** Number of space dimensions. */
  readonly dims = 1 as const;
  /** The residual, in mathjs syntax (parsed by `parseResidual`, as a user's PDE is). */
  readonly residualSource = "u_t - kappa * u_xx";
  /** Parameter values. */
  readonly parameters: Readonly<Record<string, number>>;
  /** Conditions on the walls, as residual expressions. */
  override readonly boundaryConditions: readonly BoundaryCondition[];
  /** Wall condition. */
  readonly boundary: "dirichlet" | "periodic";
  /** Number of random modes in the initial conditions. */
  readonly modes: number;

  /** A heat problem; see {@link Heat1DOptions}. */
  constructor(options: Heat1DOptions = {}) {
    super();
    this.parameters = { kappa: options.kappa ?? 0.1 };
    this.boundary = options.boundary ?? "dirichlet";
    if (this.boundary !== "dirichlet" && this.boundary !== "periodic") {
      throw new ArgumentError("Heat1D", `boundary must be "dirichlet" or "periodic", got ${this.boundary}`);
    }
    this.modes = options.modes ?? 8;
    this.boundaryConditions = this.boundary === "dirichlet"
      ? [
        { name: "left", axis: "x", side: "low", expression: "u" },
        { name: "right", axis: "x", side: "high", expression: "u" },
      ]
      : [];
  }

  /**
   * The problem's grid on [0, 1] × [0, T].
   *
   * @example
   * ```ts
   * import { Heat1D } from "../mod.ts";
   * new Heat1D().grid({ nt: 11, nx: 33 }).x.spacing; // 1/32
   * ```
   */
  grid(options: { nt?: number; nx?: number; T?: number } = {}): Grid1D {
    return new Grid1D({
      nt: options.nt ?? 101,
      t: [0, options.T ?? 1],
      x: { n: options.nx ?? 128, periodic: this.boundary === "periodic" },
    });
  }

  /**
   * Random sums of modes: `Σ_k a_k sin(kπx)` (Dirichlet) or `Σ_k a_k sin(2πkx) + b_k cos(2πkx)`
   * plus a mean (periodic), with `a_k, b_k ~ N(0, 1) / k`, k = 1..modes.
   */
  initialConditions(n: number, grid: Grid1D, options: TensorPlacement & { seed?: number } = {}): Tensor {
    const dtype = options.dtype ?? "float32";
    const nx = grid.x.n;
    const maxModes = this.boundary === "dirichlet" ? nx - 2 : Math.floor((nx - 1) / 2);
    const K = Math.min(this.modes, maxModes);
    const gen = new Generator(options.seed ?? 0);
    const coef = randn([n, 2 * K + 1], { generator: gen, dtype: "float64" }).toTypedArray();
    const x = grid.x.points();
    const L = grid.x.length;
    const host = new Float64Array(n * nx);
    for (let s = 0; s < n; s++) {
      for (let i = 0; i < nx; i++) {
        const xi = (x[i] - grid.x.start) / L;
        let v = this.boundary === "periodic" ? 0.5 * coef[s * (2 * K + 1) + 2 * K] : 0;
        for (let k = 1; k <= K; k++) {
          const a = coef[s * (2 * K + 1) + 2 * (k - 1)] / k;
          const b = coef[s * (2 * K + 1) + 2 * (k - 1) + 1] / k;
          v += this.boundary === "dirichlet"
            ? a * Math.sin(k * Math.PI * xi)
            : a * Math.sin(2 * Math.PI * k * xi) + b * Math.cos(2 * Math.PI * k * xi);
        }
        host[s * nx + i] = v;
      }
    }
    if (this.boundary === "dirichlet") {
      for (let s = 0; s < n; s++) host[s * nx] = host[s * nx + nx - 1] = 0;
    }
    return constant(host, [n, nx], dtype, options.backend);
  }

  /**
   * The solution on the grid from `u0` (`[...batch, nx]` → `[...batch, nt, nx]`). For Dirichlet
   * walls the values of u0 on the walls are taken as 0.
   *
   * @example
   * ```ts
   * import { Heat1D } from "../mod.ts";
   * const heat = new Heat1D();
   * const g = heat.grid({ nt: 11, nx: 33 });
   * const u0 = heat.initialConditions(1, g, { dtype: "float64" });
   * const exact = heat.solve(u0, g);
   * const cn = heat.solve(u0, g, { method: "crank-nicolson", steps: 4 });
   * ```
   */
  solve(u0: Tensor, grid: Grid1D, options: Heat1DSolveOptions = {}): Tensor {
    grid.checkField("Heat1D.solve", u0, false);
    if (grid.x.periodic !== (this.boundary === "periodic")) {
      throw new ArgumentError("Heat1D.solve", `the grid's x axis must be ${this.boundary}`);
    }
    const method = options.method ?? "exact";
    const steps = options.steps ?? 1;
    if (method !== "exact" && method !== "crank-nicolson") {
      throw new ArgumentError("Heat1D.solve", `method must be "exact" or "crank-nicolson", got ${method}`);
    }
    if (!Number.isInteger(steps) || steps < 1) {
      throw new ArgumentError("Heat1D.solve", `steps must be a positive integer, got ${steps}`);
    }
    const kappa = this.parameters.kappa;
    const nx = grid.x.n;
    const h = grid.x.spacing;
    const L = grid.x.length;
    const nt = grid.t.n;
    const times = grid.t.points().map((t) => t - grid.t.start);
    const dtOut = grid.t.spacing;
    // Extended periodic signal: the odd extension for Dirichlet walls, u0 itself when periodic.
    let ext: Tensor;
    let period: number; // length of the extended signal in points
    if (this.boundary === "dirichlet") {
      const inner = narrow(u0, -1, 1, nx - 2);
      const zero = narrow(u0, -1, 0, 1).mul(0);
      ext = concat([zero, inner, zero, inner.flip(-1).neg()], -1);
      period = 2 * (nx - 1);
    } else {
      ext = u0;
      period = nx;
    }
    const m = Math.floor(period / 2) + 1;
    // Angular wavenumber of bin k: 2πk over the extended length (2L for the odd extension).
    const extLength = this.boundary === "dirichlet" ? 2 * L : L;
    const gain = new Float64Array(nt * m);
    for (let j = 0; j < nt; j++) {
      for (let k = 0; k < m; k++) {
        const w = (2 * Math.PI * k) / extLength;
        if (method === "exact") {
          gain[j * m + k] = Math.exp(-kappa * w * w * times[j]);
        } else {
          const lam = (2 - 2 * Math.cos(w * h)) / (h * h); // symbol of −(central second difference)
          const dt = dtOut / steps;
          const r = (1 - 0.5 * dt * kappa * lam) / (1 + 0.5 * dt * kappa * lam);
          gain[j * m + k] = Math.pow(r, j * steps);
        }
      }
    }
    const spec = rfft(ext, -1).unsqueeze(-3); // [..., 1, m, 2]
    const g = constant(gain, [nt, m, 1], u0.dtype, u0.backend);
    const out = irfft(spec.mul(g), period, -1); // [..., nt, period]
    return this.boundary === "dirichlet" ? narrow(out, -1, 0, nx) : out;
  }

  /**
   * Seeded initial conditions and their exact solutions.
   *
   * @example
   * ```ts
   * import { Heat1D } from "../mod.ts";
   * const d = new Heat1D({ boundary: "periodic" }).generateDataset({ n: 8, seed: 1, nx: 64, nt: 21 });
   * d.u.shape; // [8, 21, 64]
   * ```
   */
  generateDataset(options: Heat1DDatasetOptions): Dataset<Grid1D> {
    const grid = this.grid(options);
    const u0 = this.initialConditions(options.n, grid, options);
    return { grid, u0, u: this.solve(u0, grid), parameters: this.parameters };
  }
}

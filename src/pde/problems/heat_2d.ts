/**
 * 2D heat equation `u_t = κ Δu` on the periodic unit torus. A small, fast 2D problem for demos
 * and tests (the linear cousin of the Navier–Stokes vorticity problem, on the same grids).
 *
 * Initial conditions are FNO-style Gaussian random fields (`random_fields.ts`, α = 2.5, τ = 7 by
 * default) plus a random mean. The reference solver is exact for the grid-interpolated initial
 * condition: each Fourier mode decays by `exp(−κ|k|²t)` (one rfftn / irfftn pair for all times).
 *
 * @module
 */

import { ArgumentError, Generator, irfftn, randn, rfftn, type Tensor } from "../../tensor/mod.ts";
import { Grid2D } from "../grid.ts";
import { type Dataset, PdeProblem, type TensorPlacement } from "../problem.ts";
import { gaussianRandomField2D } from "../random_fields.ts";
import { constant, wavenumbers } from "../spectral.ts";

/** Options of {@link Heat2D}. */
export interface Heat2DOptions {
  /** Diffusivity κ (default 0.01). */
  kappa?: number;
  /** GRF smoothness α of the initial conditions (default 2.5). */
  alpha?: number;
  /** GRF inverse length scale τ of the initial conditions (default 7). */
  tau?: number;
}

/** Options of {@link Heat2D.generateDataset}. */
export interface Heat2DDatasetOptions extends TensorPlacement {
  /** Number of samples. */
  n: number;
  /** Seed (default 0). */
  seed?: number;
  /** Points per space axis (default 64). */
  nx?: number;
  /** Time points (default 21). */
  nt?: number;
  /** Final time (default 1). */
  T?: number;
}

/**
 * The 2D periodic heat equation.
 *
 * @example
 * ```ts
 * import { Heat2D } from "../mod.ts";
 * const heat = new Heat2D();
 * const { u, grid } = heat.generateDataset({ n: 2, seed: 0, nx: 32, nt: 11 });
 * u.shape; // [2, 11, 32, 32]
 * ```
 */
export class Heat2D extends PdeProblem<Grid2D> {
  /** Short name. */
  readonly name = "heat_2d";
  /** Number of space dimensions. */
  readonly dims = 2 as const;
  /** The residual, in mathjs syntax (parsed by `parseResidual`, as a user's PDE is). */
  readonly residualSource = "u_t - kappa * lap_u";
  /** Parameter values. */
  readonly parameters: Readonly<Record<string, number>>;
  /** GRF α and τ of the initial conditions. */
  readonly field: { alpha: number; tau: number };

  /** A 2D heat problem; see {@link Heat2DOptions}. */
  constructor(options: Heat2DOptions = {}) {
    super();
    const kappa = options.kappa ?? 0.01;
    if (!(kappa >= 0)) throw new ArgumentError("Heat2D", `kappa must be ≥ 0, got ${kappa}`);
    this.parameters = { kappa };
    this.field = { alpha: options.alpha ?? 2.5, tau: options.tau ?? 7 };
  }

  /**
   * The periodic grid on [0, 1)² × [0, T].
   *
   * @example
   * ```ts
   * import { Heat2D } from "../mod.ts";
   * new Heat2D().grid({ nx: 32, nt: 11 }).shape; // [11, 32, 32]
   * ```
   */
  grid(options: { nt?: number; nx?: number; ny?: number; T?: number } = {}): Grid2D {
    const nx = options.nx ?? 64;
    return new Grid2D({
      nt: options.nt ?? 21,
      t: [0, options.T ?? 1],
      x: { n: nx, periodic: true },
      y: { n: options.ny ?? nx, periodic: true },
    });
  }

  /** Gaussian random fields plus a N(0, 1) mean: `[n, nx, ny]` (needs nx = ny). */
  initialConditions(n: number, grid: Grid2D, options: TensorPlacement & { seed?: number } = {}): Tensor {
    if (grid.x.n !== grid.y.n) throw new ArgumentError("Heat2D.initialConditions", "needs nx = ny");
    const gen = new Generator(options.seed ?? 0);
    const w = gaussianRandomField2D(n, grid.x.n, {
      ...this.field,
      generator: gen,
      dtype: "float64",
      backend: options.backend,
    });
    const mean = randn([n, 1, 1], { generator: gen, dtype: "float64", backend: w.backend });
    const out = w.add(mean);
    const dtype = options.dtype ?? "float32";
    return dtype === "float64" ? out : out.cast(dtype);
  }

  /**
   * The exact solution on the grid from `u0` (`[...batch, nx, ny]` → `[...batch, nt, nx, ny]`).
   *
   * @example
   * ```ts
   * import { Heat2D } from "../mod.ts";
   * const heat = new Heat2D();
   * const g = heat.grid({ nx: 16, nt: 5 });
   * heat.solve(heat.initialConditions(1, g), g).shape; // [1, 5, 16, 16]
   * ```
   */
  solve(u0: Tensor, grid: Grid2D): Tensor {
    grid.checkField("Heat2D.solve", u0, false);
    if (!grid.x.periodic || !grid.y.periodic) throw new ArgumentError("Heat2D.solve", "the grid must be periodic");
    const nx = grid.x.n;
    const ny = grid.y.n;
    const kx = wavenumbers(nx, grid.x.length);
    const ky = wavenumbers(ny, grid.y.length, true);
    const m = ky.length;
    const times = grid.t.points().map((t) => t - grid.t.start);
    const nt = times.length;
    const kappa = this.parameters.kappa;
    const gain = new Float64Array(nt * nx * m);
    for (let j = 0; j < nt; j++) {
      for (let a = 0; a < nx; a++) {
        for (let b = 0; b < m; b++) {
          gain[(j * nx + a) * m + b] = Math.exp(-kappa * (kx[a] * kx[a] + ky[b] * ky[b]) * times[j]);
        }
      }
    }
    const spec = rfftn(u0, [-2, -1]).unsqueeze(-4); // [..., 1, nx, m, 2]
    const g = constant(gain, [nt, nx, m, 1], u0.dtype, u0.backend);
    return irfftn(spec.mul(g), [-2, -1], [nx, ny]);
  }

  /**
   * Seeded initial conditions and their exact solutions.
   *
   * @example
   * ```ts
   * import { Heat2D } from "../mod.ts";
   * new Heat2D().generateDataset({ n: 4, seed: 2, nx: 32 }).u.shape; // [4, 21, 32, 32]
   * ```
   */
  generateDataset(options: Heat2DDatasetOptions): Dataset<Grid2D> {
    const grid = this.grid(options);
    const u0 = this.initialConditions(options.n, grid, options);
    return { grid, u0, u: this.solve(u0, grid), parameters: this.parameters };
  }
}

/**
 * 1D viscous Burgers `u_t + u u_x = ν u_xx` on the periodic interval [0, 1).
 *
 * Initial conditions follow PDEBench's Burgers data: a sum of two sine waves
 * `Σ_i A_i sin(2π k_i x + φ_i)` with k_i ∈ {1, …, 4}, A_i ~ U(0, 1), φ_i ~ U(0, 2π).
 *
 * Reference solver: Fourier pseudo-spectral in space (conservative flux `(u²/2)_x`, 2/3-rule
 * dealiasing) with the integrating-factor fourth-order Runge–Kutta scheme in time (the viscous
 * term integrated exactly, Trefethen's "Spectral Methods in MATLAB" p27 form). Spectrally accurate
 * in x and fourth order in t; the step is the largest that fits `cfl · dx / max|u0|` and divides
 * the output interval.
 *
 * @module
 */

import { ArgumentError, concat, Generator, irfft, rand, rfft, type Tensor, tidy } from "../../tensor/mod.ts";
import { Grid1D } from "../grid.ts";
import { type Dataset, PdeProblem, type TensorPlacement } from "../problem.ts";
import { constant, iFactor, mulI, wavenumbers } from "../spectral.ts";

/** Options of {@link Burgers1D}. */
export interface Burgers1DOptions {
  /** Viscosity ν (default 0.01). */
  nu?: number;
}

/** Options of {@link Burgers1D.solve}. */
export interface Burgers1DSolveOptions {
  /** Time-step bound as a CFL number: `dt ≤ cfl · dx / max|u0|` (default 0.5). */
  cfl?: number;
  /** Steps per output interval (overrides `cfl`). */
  steps?: number;
}

/** Options of {@link Burgers1D.generateDataset}. */
export interface Burgers1DDatasetOptions extends TensorPlacement, Burgers1DSolveOptions {
  /** Number of samples. */
  n: number;
  /** Seed (default 0). */
  seed?: number;
  /** Space points of the output (default 256). */
  nx?: number;
  /** Time points (default 101). */
  nt?: number;
  /** Final time (default 1). */
  T?: number;
  /** Points the solver uses (a multiple of `nx`, default `nx`); the output takes every k-th. */
  solveNx?: number;
  /** Samples solved at once (default all). */
  batchSize?: number;
}

/**
 * The viscous Burgers equation.
 *
 * @example
 * ```ts
 * import { Burgers1D } from "../mod.ts";
 * const b = new Burgers1D({ nu: 0.01 });
 * const { u, grid } = b.generateDataset({ n: 2, seed: 0, nx: 128, nt: 51 });
 * b.residual(u, grid).shape; // [2, 51, 128]
 * ```
 */
export class Burgers1D extends PdeProblem<Grid1D> {
  /** Short name. */
  readonly name = "burgers_1d";
  /** Number of space dimensions. */
  readonly dims = 1 as const;
  /** The residual, in mathjs syntax (parsed by `parseResidual`, as a user's PDE is). */
  readonly residualSource = "u_t + u * u_x - nu * u_xx";
  /** Parameter values. */
  readonly parameters: Readonly<Record<string, number>>;

  /** A Burgers problem; see {@link Burgers1DOptions}. */
  constructor(options: Burgers1DOptions = {}) {
    super();
    const nu = options.nu ?? 0.01;
    if (!(nu > 0)) throw new ArgumentError("Burgers1D", `nu must be > 0, got ${nu}`);
    this.parameters = { nu };
  }

  /**
   * The periodic grid on [0, 1) × [0, T].
   *
   * @example
   * ```ts
   * import { Burgers1D } from "../mod.ts";
   * new Burgers1D().grid({ nx: 256, nt: 101 }).shape; // [101, 256]
   * ```
   */
  grid(options: { nt?: number; nx?: number; T?: number } = {}): Grid1D {
    return new Grid1D({ nt: options.nt ?? 101, t: [0, options.T ?? 1], x: { n: options.nx ?? 256, periodic: true } });
  }

  /** PDEBench-style sums of two sine waves (see the module notes): `[n, nx]`. */
  initialConditions(n: number, grid: Grid1D, options: TensorPlacement & { seed?: number } = {}): Tensor {
    const gen = new Generator(options.seed ?? 0);
    const r = rand([n, 2, 3], { generator: gen, dtype: "float64" }).toTypedArray();
    const x = grid.x.points();
    const L = grid.x.length;
    const nx = grid.x.n;
    const host = new Float64Array(n * nx);
    for (let s = 0; s < n; s++) {
      for (let w = 0; w < 2; w++) {
        const k = 1 + Math.min(3, Math.floor(r[s * 6 + w * 3] * 4));
        const A = r[s * 6 + w * 3 + 1];
        const phi = 2 * Math.PI * r[s * 6 + w * 3 + 2];
        for (let i = 0; i < nx; i++) {
          host[s * nx + i] += A * Math.sin((2 * Math.PI * k * (x[i] - grid.x.start)) / L + phi);
        }
      }
    }
    return constant(host, [n, nx], options.dtype ?? "float32", options.backend);
  }

  /**
   * The solution on the grid from `u0` (`[...batch, nx]` → `[...batch, nt, nx]`).
   *
   * @example
   * ```ts
   * import { Burgers1D } from "../mod.ts";
   * const b = new Burgers1D({ nu: 0.05 });
   * const g = b.grid({ nx: 64, nt: 11, T: 0.5 });
   * const u = b.solve(b.initialConditions(2, g, { dtype: "float64" }), g, { steps: 20 });
   * ```
   */
  solve(u0: Tensor, grid: Grid1D, options: Burgers1DSolveOptions = {}): Tensor {
    grid.checkField("Burgers1D.solve", u0, false);
    if (!grid.x.periodic) throw new ArgumentError("Burgers1D.solve", "the grid's x axis must be periodic");
    const nx = grid.x.n;
    const nu = this.parameters.nu;
    const dtOut = grid.t.spacing;
    const steps = options.steps ?? this.stepsFor(u0, grid, options.cfl);
    if (!Number.isInteger(steps) || steps < 1) {
      throw new ArgumentError("Burgers1D.solve", `steps must be a positive integer, got ${steps}`);
    }
    const dt = dtOut / steps;
    const k = wavenumbers(nx, grid.x.length, true);
    const m = k.length;
    const kmax = Math.floor(nx / 2);
    const e1 = new Float64Array(m);
    const e2 = new Float64Array(m);
    const nl = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      e1[j] = Math.exp(-nu * k[j] * k[j] * dt);
      e2[j] = Math.exp(-nu * k[j] * k[j] * dt * 0.5);
      // −i k/2 · FFT(u²), dealiased by the 2/3 rule.
      nl[j] = j <= (2 / 3) * kmax ? -0.5 * k[j] : 0;
    }
    const dtype = u0.dtype;
    const be = u0.backend;
    const E = constant(e1, [m, 1], dtype, be);
    const E2 = constant(e2, [m, 1], dtype, be);
    const f = iFactor(nl, [m]);
    const NL = constant(f.data, f.shape, dtype, be);
    const N = (vh: Tensor) => mulI(rfft(irfft(vh, nx, -1).square(), -1), NL).mul(dt);
    let vh = rfft(u0, -1);
    const frames: Tensor[] = [u0.unsqueeze(-2)];
    for (let j = 1; j < grid.t.n; j++) {
      vh = tidy(() => {
        let v = vh;
        for (let s = 0; s < steps; s++) {
          const next = tidy(() => {
            const k1 = N(v);
            const k2 = N(v.add(k1.mul(0.5)).mul(E2));
            const k3 = N(v.mul(E2).add(k2.mul(0.5)));
            const k4 = N(v.mul(E).add(k3.mul(E2)));
            return v.mul(E).add(k1.mul(E).add(k2.add(k3).mul(E2).mul(2)).add(k4).mul(1 / 6));
          });
          if (v !== vh) v.dispose();
          v = next;
        }
        return v;
      });
      frames.push(irfft(vh, nx, -1).unsqueeze(-2));
    }
    return concat(frames, frames[0].ndim - 2);
  }

  /**
   * Steps per output interval that keep `dt ≤ cfl · dx / max|u0|` (cfl default 0.5).
   *
   * @example
   * ```ts
   * import { Burgers1D } from "../mod.ts";
   * const b = new Burgers1D();
   * const g = b.grid({ nx: 256, nt: 101 });
   * b.stepsFor(b.initialConditions(4, g), g); // steps per 0.01 time units
   * ```
   */
  stepsFor(u0: Tensor, grid: Grid1D, cfl = 0.5): number {
    const umax = Math.max(u0.abs().max().item(), 1e-12);
    const dtMax = (cfl * grid.x.spacing) / umax;
    return Math.max(1, Math.ceil(grid.t.spacing / dtMax - 1e-9));
  }

  /**
   * Seeded initial conditions and reference solutions.
   *
   * @example
   * ```ts
   * import { Burgers1D } from "../mod.ts";
   * const d = new Burgers1D().generateDataset({ n: 4, seed: 0, nx: 128, solveNx: 512, nt: 101 });
   * d.u.shape; // [4, 101, 128]
   * ```
   */
  generateDataset(options: Burgers1DDatasetOptions): Dataset<Grid1D> {
    const grid = this.grid(options);
    const solveNx = options.solveNx ?? grid.x.n;
    if (!Number.isInteger(solveNx / grid.x.n)) {
      throw new ArgumentError("Burgers1D.generateDataset", `solveNx ${solveNx} must be a multiple of nx ${grid.x.n}`);
    }
    const fine = grid.resized({ nx: solveNx });
    const stride = solveNx / grid.x.n;
    const u0fine = this.initialConditions(options.n, fine, options);
    // One step size for the whole set, so the data do not depend on how it is batched.
    const steps = options.steps ?? this.stepsFor(u0fine, fine, options.cfl);
    const u = this.solveBatched(u0fine, fine, options.batchSize ?? options.n, (x) => {
      const full = this.solve(x, fine, { steps });
      return stride === 1 ? full : full.slice([null, null, [0, null, stride]]).contiguous();
    });
    const u0 = stride === 1 ? u0fine : u0fine.slice([null, [0, null, stride]]).contiguous();
    return { grid, u0, u, parameters: this.parameters };
  }
}

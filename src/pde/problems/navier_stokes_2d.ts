/**
 * 2D incompressible Navier–Stokes in vorticity form on the periodic unit torus:
 *
 *     w_t + u·∇w = ν Δw + f,   u = (ψ_y, −ψ_x),   −Δψ = w,
 *
 * with the forcing `f = F·(sin 2π(x + y) + cos 2π(x + y))`. Two presets:
 * - `"pihcmoe"` (default; PI-HC-MoE's benchmark): ν = 10⁻⁴, no forcing (F = 0), T = 5 s on 64
 *   times, 64 × 64 space points, initial vorticity a Gaussian random field with a periodic kernel of
 *   length scale 0.8, mean removed (the paper's description; its generator is not published, see
 *   `random_fields.ts`).
 * - `"fno"` (the FNO paper's data): ν = 10⁻³, F = 0.1, T = 50 recorded every time unit, solved on
 *   256 × 256 and subsampled to 64 × 64, initial vorticity FNO's `GaussianRF(α = 2.5, τ = 7)`.
 *
 * The residual is written over the fields w, u, v; {@link NavierStokes2D.fieldsOf} supplies the
 * velocity from the vorticity (spectrally, as PI-HC-MoE's code does), so u and v are linear in w
 * and the structured Jacobian composes the partials ∂r/∂u = w_x, ∂r/∂v = w_y with that map.
 *
 * Reference solver: a port of the FNO repository's `navier_stokes_2d` (stream-function
 * pseudo-spectral method with the 2/3 rule on the nonlinear term, Crank–Nicolson on the viscous
 * term, explicit Euler on advection and forcing, default step 10⁻⁴), in rfftn/irfftn tensor ops so
 * it runs batched on the CPU or the GPU. It is spectrally accurate in space and first order in time
 * (the explicit advection step); one difference: the viscous factor uses |k|² = 0 for the mean mode
 * (FNO sets it to 1, which damps a nonzero mean slightly).
 *
 * @module
 */

import { ArgumentError, concat, Generator, irfftn, rfftn, type Tensor, tidy } from "../../tensor/mod.ts";
import { Grid2D } from "../grid.ts";
import { type Dataset, PdeProblem, type TensorPlacement } from "../problem.ts";
import { gaussianRandomField2D, periodicKernelField2D } from "../random_fields.ts";
import { constant, iFactor, velocityFromVorticity, wavenumbers } from "../spectral.ts";

/** How initial vorticities are drawn. */
export type VorticityPrior =
  | { kind: "periodic-kernel"; lengthScale?: number; amplitude?: number }
  | { kind: "fno-grf"; alpha?: number; tau?: number };

/** Options of {@link NavierStokes2D}. */
export interface NavierStokes2DOptions {
  /** Settings to start from (default `"pihcmoe"`). */
  preset?: "pihcmoe" | "fno";
  /** Viscosity ν. */
  nu?: number;
  /** Forcing amplitude F. */
  forcing?: number;
  /** Initial-vorticity distribution. */
  initial?: VorticityPrior;
}

/** Options of {@link NavierStokes2D.solve}. */
export interface NavierStokes2DSolveOptions {
  /** Largest time step (default 10⁻⁴, FNO's); shrunk to divide the output interval. */
  dt?: number;
}

/** Options of {@link NavierStokes2D.generateDataset}. */
export interface NavierStokes2DDatasetOptions extends TensorPlacement, NavierStokes2DSolveOptions {
  /** Number of samples. */
  n: number;
  /** Seed (default 0). */
  seed?: number;
  /** Output points per space axis (default 64). */
  nx?: number;
  /** Output times including t = 0 (preset default: 64, or 51 for FNO). */
  nt?: number;
  /** Final time (preset default: 5, or 50 for FNO). */
  T?: number;
  /** Points per axis the solver uses, a multiple of `nx` (preset default: `nx`, or 256 for FNO). */
  solveNx?: number;
  /** Samples solved at once (default all). */
  batchSize?: number;
}

const PRESETS = {
  pihcmoe: { nu: 1e-4, forcing: 0, T: 5, nt: 64, solveNx: undefined, initial: { kind: "periodic-kernel" } },
  fno: { nu: 1e-3, forcing: 0.1, T: 50, nt: 51, solveNx: 256, initial: { kind: "fno-grf" } },
} as const;

/**
 * The vorticity-form Navier–Stokes problem.
 *
 * @example
 * ```ts
 * import { NavierStokes2D } from "../mod.ts";
 * const ns = new NavierStokes2D({ preset: "pihcmoe" });
 * const { u: w, grid } = ns.generateDataset({ n: 1, seed: 0, nx: 32, nt: 11, T: 0.5, dt: 1e-3 });
 * w.shape; // [1, 11, 32, 32]
 * ns.residual(w, grid).shape; // [1, 11, 32, 32]
 * ```
 */
export class NavierStokes2D extends PdeProblem<Grid2D> {
  /** Short name. */
  readonly name = "navier_stokes_2d";
  /** Number of space dimensions. */
  readonly dims = 2 as const;
  /** The residual, in mathjs syntax (parsed by `parseResidual`, as a user's PDE is). */
  readonly residualSource =
    "w_t + u * w_x + v * w_y - nu * lap_w - F * (sin(2 * pi * (x + y)) + cos(2 * pi * (x + y)))";
  /** Fields: the vorticity w (the unknown) and the velocity (u, v) derived from it. */
  override readonly fields: readonly string[] = ["w", "u", "v"];
  /** Parameter values. */
  readonly parameters: Readonly<Record<string, number>>;
  /** The preset the defaults come from. */
  readonly preset: "pihcmoe" | "fno";
  /** Initial-vorticity distribution. */
  readonly initial: VorticityPrior;

  /** The problem; see {@link NavierStokes2DOptions}. */
  constructor(options: NavierStokes2DOptions = {}) {
    super();
    this.preset = options.preset ?? "pihcmoe";
    const p = PRESETS[this.preset];
    if (!p) throw new ArgumentError("NavierStokes2D", `preset must be "pihcmoe" or "fno", got ${options.preset}`);
    const nu = options.nu ?? p.nu;
    if (!(nu >= 0)) throw new ArgumentError("NavierStokes2D", `nu must be ≥ 0, got ${nu}`);
    this.parameters = { nu, F: options.forcing ?? p.forcing };
    this.initial = options.initial ?? { ...p.initial };
  }

  /**
   * The periodic grid on [0, 1)² × [0, T] (preset defaults).
   *
   * @example
   * ```ts
   * import { NavierStokes2D } from "../mod.ts";
   * new NavierStokes2D().grid().shape; // [64, 64, 64]
   * ```
   */
  grid(options: { nt?: number; nx?: number; T?: number } = {}): Grid2D {
    const p = PRESETS[this.preset];
    const nx = options.nx ?? 64;
    return new Grid2D({
      nt: options.nt ?? p.nt,
      t: [0, options.T ?? p.T],
      x: { n: nx, periodic: true },
      y: { n: nx, periodic: true },
    });
  }

  /** Adds the velocity (u, v) computed spectrally from the vorticity w. */
  override fieldsOf(w: Tensor, _grid: Grid2D): Record<string, Tensor> {
    const { u, v } = velocityFromVorticity(w);
    return { w, u, v };
  }

  /** Initial vorticities from the problem's prior, mean-free: `[n, nx, nx]`. */
  initialConditions(n: number, grid: Grid2D, options: TensorPlacement & { seed?: number } = {}): Tensor {
    if (grid.x.n !== grid.y.n) throw new ArgumentError("NavierStokes2D.initialConditions", "needs nx = ny");
    const o = { generator: new Generator(options.seed ?? 0), dtype: options.dtype, backend: options.backend };
    const prior = this.initial;
    if (prior.kind === "fno-grf") {
      return gaussianRandomField2D(n, grid.x.n, { ...o, alpha: prior.alpha, tau: prior.tau });
    }
    if (prior.kind === "periodic-kernel") {
      // The kernel has a constant mode; vorticity on the torus has zero mean, so remove it.
      const w = periodicKernelField2D(n, grid.x.n, {
        ...o,
        lengthScale: prior.lengthScale,
        amplitude: prior.amplitude,
      });
      return w.sub(w.mean([1, 2], true));
    }
    throw new ArgumentError("NavierStokes2D", `unknown initial-condition kind ${(prior as { kind: string }).kind}`);
  }

  /**
   * The vorticity on the grid from `w0` (`[...batch, nx, ny]` → `[...batch, nt, nx, ny]`).
   *
   * @example
   * ```ts
   * import { NavierStokes2D } from "../mod.ts";
   * const ns = new NavierStokes2D({ nu: 1e-3 });
   * const g = ns.grid({ nx: 32, nt: 5, T: 0.2 });
   * const w = ns.solve(ns.initialConditions(2, g, { dtype: "float64" }), g, { dt: 1e-3 });
   * ```
   */
  solve(w0: Tensor, grid: Grid2D, options: NavierStokes2DSolveOptions = {}): Tensor {
    grid.checkField("NavierStokes2D.solve", w0, false);
    if (!grid.x.periodic || !grid.y.periodic) {
      throw new ArgumentError("NavierStokes2D.solve", "the grid must be periodic");
    }
    const dtMax = options.dt ?? 1e-4;
    if (!(dtMax > 0)) throw new ArgumentError("NavierStokes2D.solve", `dt must be > 0, got ${dtMax}`);
    const interval = grid.t.spacing;
    const nSteps = Math.max(1, Math.ceil(interval / dtMax - 1e-9));
    const dt = interval / nSteps;
    const nx = grid.x.n;
    const ny = grid.y.n;
    const kx = wavenumbers(nx, grid.x.length);
    const ky = wavenumbers(ny, grid.y.length, true);
    const m = ky.length;
    const { nu, F } = this.parameters;
    const kmaxX = Math.floor(nx / 2);
    const kmaxY = Math.floor(ny / 2);
    const fq = new Float64Array(4 * nx * m);
    const A = new Float64Array(nx * m);
    const B = new Float64Array(nx * m);
    const C = new Float64Array(nx * m);
    for (let i = 0; i < nx; i++) {
      const ix = i < Math.ceil(nx / 2) ? i : i - nx; // integer wavenumbers for the 2/3 rule
      for (let j = 0; j < m; j++) {
        const k2 = kx[i] * kx[i] + ky[j] * ky[j];
        const at = i * m + j;
        fq[at] = k2 === 0 ? 0 : ky[j] / k2; // û = i·ky·ŵ/|k|²
        fq[nx * m + at] = k2 === 0 ? 0 : -kx[i] / k2; // v̂ = −i·kx·ŵ/|k|²
        fq[2 * nx * m + at] = kx[i]; // ŵ_x = i·kx·ŵ
        fq[3 * nx * m + at] = ky[j]; // ŵ_y = i·ky·ŵ
        const den = 1 + 0.5 * dt * nu * k2;
        A[at] = (1 - 0.5 * dt * nu * k2) / den;
        const keep = Math.abs(ix) <= (2 / 3) * kmaxX && j <= (2 / 3) * kmaxY;
        B[at] = keep ? dt / den : 0;
        C[at] = dt / den;
      }
    }
    const dtype = w0.dtype;
    const be = w0.backend;
    const iq = iFactor(fq, [4, nx, m]);
    const K4 = constant(iq.data, iq.shape, dtype, be);
    const tA = constant(A, [nx, m, 1], dtype, be);
    const tB = constant(B, [nx, m, 1], dtype, be);
    let forcing: Tensor | null = null;
    if (F !== 0) {
      const xs = grid.x.points();
      const ys = grid.y.points();
      const f = new Float64Array(nx * ny);
      for (let i = 0; i < nx; i++) {
        for (let j = 0; j < ny; j++) {
          const s = 2 * Math.PI * (xs[i] + ys[j]);
          f[i * ny + j] = F * (Math.sin(s) + Math.cos(s));
        }
      }
      forcing = rfftn(constant(f, [nx, ny], dtype, be), [0, 1]).mul(constant(C, [nx, m, 1], dtype, be));
    }
    const advance = (wh: Tensor): Tensor => {
      const phys = irfftn(wh.flip(-1).unsqueeze(-4).mul(K4), [-2, -1], [nx, ny]); // [..., 4, nx, ny]
      const q = phys.narrow(-3, 0, 1);
      const v = phys.narrow(-3, 1, 1);
      const wx = phys.narrow(-3, 2, 1);
      const wy = phys.narrow(-3, 3, 1);
      const adv = q.mul(wx).add(v.mul(wy)).squeeze(-3);
      const next = wh.mul(tA).sub(rfftn(adv, [-2, -1]).mul(tB));
      return forcing ? next.add(forcing) : next;
    };
    let wh = rfftn(w0, [-2, -1]);
    const frames: Tensor[] = [w0.unsqueeze(-3)];
    for (let r = 1; r < grid.t.n; r++) {
      wh = tidy(() => {
        let cur = wh;
        for (let s = 0; s < nSteps; s++) {
          const next = tidy(() => advance(cur));
          if (cur !== wh) cur.dispose();
          cur = next;
        }
        return cur;
      });
      frames.push(irfftn(wh, [-2, -1], [nx, ny]).unsqueeze(-3));
    }
    return concat(frames, frames[0].ndim - 3);
  }

  /**
   * Seeded initial vorticities and reference solutions, solved at `solveNx` and subsampled to `nx`.
   *
   * @example
   * ```ts
   * import { NavierStokes2D } from "../mod.ts";
   * // PI-HC-MoE's training data shape is [n, 64, 64, 64]; a small, quick variant:
   * const d = new NavierStokes2D().generateDataset({ n: 2, seed: 0, nx: 32, nt: 9, T: 0.4, dt: 1e-3 });
   * d.u.shape; // [2, 9, 32, 32]
   * ```
   */
  generateDataset(options: NavierStokes2DDatasetOptions): Dataset<Grid2D> {
    const grid = this.grid(options);
    const solveNx = options.solveNx ?? PRESETS[this.preset].solveNx ?? grid.x.n;
    const stride = solveNx / grid.x.n;
    if (!Number.isInteger(stride) || stride < 1) {
      throw new ArgumentError(
        "NavierStokes2D.generateDataset",
        `solveNx ${solveNx} must be a multiple of nx ${grid.x.n}`,
      );
    }
    const fine = grid.resized({ nx: solveNx, ny: solveNx });
    const w0fine = this.initialConditions(options.n, fine, options);
    const sub = (t: Tensor, lead: number) =>
      stride === 1 ? t : t.slice([...new Array(lead).fill(null), [0, null, stride], [0, null, stride]]).contiguous();
    const u = this.solveBatched(
      w0fine,
      fine,
      options.batchSize ?? options.n,
      (x) => sub(this.solve(x, fine, options), 2),
    );
    return { grid, u0: sub(w0fine, 1), u, parameters: this.parameters };
  }
}

/**
 * The four training methods of the PI-HC-MoE comparison, all with the same network (an FNO over
 * the space-time grid whose input is the initial condition broadcast over time plus the grid
 * coordinates, {@link PdeNetwork}) and the same data:
 *
 * - `"data"`: data-only regression on the reference solutions (relative L2 loss). It sees the
 *   solutions, which the physics-informed methods never do.
 * - `"soft"`: PI-SC, the soft constraint: the network outputs u, and the loss is the PDE residual
 *   over the grid plus initial- and boundary-condition penalties ({@link pdeLoss}).
 * - `"hard"`: PI-HC, the hard constraint with one expert: the network outputs N basis functions,
 *   the Levenberg–Marquardt layer fits their coefficients at M sampled points, and the loss is the
 *   PDE residual of the result over the grid.
 * - `"moe"`: PI-HC-MoE: the same with K experts over a uniform domain decomposition
 *   ({@link MixtureOfExperts}), M points each.
 *
 * Each is a {@link TrainingMethod}: `lossAndGrad` runs one step's forward and backward (gradients in
 * the network's `.grad`), `predict` maps initial conditions to solutions. `train.ts` drives them.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const grid = heat.grid({ nt: 17, nx: 32 });
 * const moe = createMethod("moe", { problem: heat, grid, basis: 8, experts: [1, 2], points: 64, seed: 0 });
 * moe.label; // "PI-HC-MoE (1×2 experts)"
 * ```
 *
 * @module
 */

import { FNO } from "../nn/fno.ts";
import type { SpectralMethod } from "../nn/spectral.ts";
import { Module } from "../nn/module.ts";
import type { ActivationLike } from "../nn/activation.ts";
import { ArgumentError, type DType, fmtShape, noGrad, ShapeError, type Tensor } from "../tensor/mod.ts";
import { MixtureOfExperts, type MoEStepOptions, type Router } from "./experts.ts";
import type { Grid } from "./grid.ts";
import type { SolveSummary } from "./expert_solve.ts";
import { HardConstraint, type HardConstraintOptions } from "./hard_constraint.ts";
import { pdeLoss, type PdeLossWeights } from "./pde_loss.ts";
import type { PdeProblem } from "./problem.ts";

/**
 * The methods compared.
 *
 * @example
 * ```ts
 * import type { MethodKind } from "./baselines.ts";
 * const kind: MethodKind = "moe";
 * ```
 */
export type MethodKind = "data" | "soft" | "hard" | "moe";

/**
 * Every method kind, in the order they are usually reported.
 *
 * @example
 * ```ts
 * import { METHOD_KINDS } from "./baselines.ts";
 * METHOD_KINDS.join(", "); // "data, soft, hard, moe"
 * ```
 */
export const METHOD_KINDS: readonly MethodKind[] = ["data", "soft", "hard", "moe"];

/**
 * Options of {@link PdeNetwork}: the FNO's sizes (defaults are CPU-sized).
 *
 * @example
 * ```ts
 * import type { PdeNetworkOptions } from "./baselines.ts";
 * // PI-HC-MoE's Navier–Stokes FNO3d.
 * const paper: PdeNetworkOptions = { width: 64, modes: 8, layers: 8, fc: 256, dtype: "float32" };
 * ```
 */
export interface PdeNetworkOptions {
  /** Channels of the Fourier layers (default 16; the paper uses 64). */
  width?: number;
  /** Fourier modes per grid axis (default 8). */
  modes?: number | readonly number[];
  /** Fourier layers (default 4; the paper: 5 for diffusion–sorption, 8 for Navier–Stokes). */
  layers?: number;
  /** Hidden width of the projection (default 64; the paper 128 / 256). */
  fc?: number;
  /** Zero padding per grid axis (default 0). */
  padding?: number | readonly number[];
  /** Activation (default "gelu"). */
  activation?: ActivationLike;
  /** Apply the activation to the output too (the reference diffusion–sorption model does). */
  activateLast?: boolean;
  /** Parameter dtype (default float64). */
  dtype?: DType;
  /** Seed of the initial weights (default 0). */
  seed?: number;
  /** Recompute each Fourier layer in the backward pass instead of keeping its activations (default false). */
  checkpoint?: boolean;
  /**
   * The dtype of the network's output (default: `dtype`). With `dtype: "float32"` and
   * `outputDtype: "float64"` the network runs in float32 (TF32 matrix products on a GPU that
   * allows them) and the solve, the residual and the loss stay in float64: mixed precision.
   */
  outputDtype?: DType;
  /** How the Fourier layers compute (`"dft"`, default, or `"fft"`; see `nn.SpectralConv`). */
  spectral?: SpectralMethod;
}

/**
 * The network every method shares: an FNO over the space-time grid (2-D for 1D+t problems, 3-D
 * for 2D+t), input the initial condition broadcast over time with the normalised grid coordinates
 * appended (the paper's input), output `channels` values per grid point: u itself (1 channel) for
 * the data-only and soft-constraint baselines, N basis functions for the hard-constraint methods.
 *
 * @example
 * ```ts
 * import { Grid1D, PdeNetwork } from "./mod.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const grid = new Grid1D({ nt: 17, x: { n: 32 } });
 * const net = new PdeNetwork(grid, 8, { width: 8, modes: 4, dtype: "float32" });
 * net.forward(zeros([2, 32])).shape; // [2, 17, 32, 8]
 * ```
 */
export class PdeNetwork extends Module {
  /** The grid. */
  readonly grid: Grid;
  /** Output channels per grid point. */
  readonly channels: number;
  /** The FNO. */
  readonly fno: FNO;
  /** The dtype of the output (the network's own, or the one it is cast to: mixed precision). */
  readonly outputDtype: DType;

  /** A network on `grid` with `channels` outputs per point. */
  constructor(grid: Grid, channels: number, options: PdeNetworkOptions = {}) {
    super();
    this.grid = grid;
    this.channels = channels;
    this.fno = this.module(
      "fno",
      new FNO({
        dims: grid.shape.length as 2 | 3,
        inChannels: 1,
        outChannels: channels,
        modes: options.modes ?? 8,
        width: options.width ?? 16,
        layers: options.layers ?? 4,
        fc: options.fc ?? 64,
        padding: options.padding ?? 0,
        activation: options.activation,
        activateLast: options.activateLast,
        coordinates: true,
        checkpoint: options.checkpoint,
        spectral: options.spectral,
        dtype: options.dtype ?? "float64",
        seed: options.seed ?? 0,
      }),
    );
    this.outputDtype = options.outputDtype ?? options.dtype ?? "float64";
  }

  /** `u0` `[B, ...space]` → `[B, ...grid, channels]`. */
  forward(u0: Tensor): Tensor {
    const grid = this.grid;
    const space = grid.spaceShape;
    if (u0.ndim !== space.length + 1 || u0.shape.slice(1).some((v, i) => v !== space[i])) {
      throw new ShapeError(
        "PdeNetwork",
        `initial conditions of shape ${fmtShape(u0.shape)} do not match the grid's space axes [B, ${space.join(", ")}]`,
      );
    }
    const dtype = this.fno.lift.weight.dtype;
    const x = (u0.dtype === dtype ? u0 : u0.cast(dtype)).unsqueeze(1).expand([u0.shape[0], grid.t.n, ...space]);
    const out = this.fno.forward(x.unsqueeze(-1));
    return out.dtype === this.outputDtype ? out : out.cast(this.outputDtype);
  }
}

/**
 * A batch of training data: initial conditions and reference solutions.
 *
 * @example
 * ```ts
 * import { Heat1D, type PdeBatch } from "./mod.ts";
 * const d = new Heat1D().generateDataset({ n: 4, nx: 17, nt: 9 });
 * const batch: PdeBatch = { u0: d.u0, u: d.u };
 * ```
 */
export interface PdeBatch {
  /** `[B, ...space]`. */
  u0: Tensor;
  /** `[B, nt, ...space]` (read by the data-only method only). */
  u: Tensor;
}

/**
 * What one training step reports (host numbers).
 *
 * @example
 * ```ts
 * import type { StepStats } from "./baselines.ts";
 * const rate = (s: StepStats, seconds: number) => s.points / seconds;
 * ```
 */
export interface StepStats {
  /** The loss. */
  loss: number;
  /** RMS PDE residual of the batch's prediction over the grid. */
  residual: number;
  /** Points processed: sampled constraint points (hard, moe) or grid points (data, soft). */
  points: number;
  /** RMS mismatch of neighbouring experts' fields at their interfaces (moe with an interface term). */
  interface?: number;
  /** Expert solves: mean Levenberg–Marquardt iterations. */
  solverIterations?: number;
  /** Expert solves that converged, of `problems`. */
  converged?: number;
  /** Expert solves (experts × batch). */
  problems?: number;
}

/**
 * A prediction and, for the hard-constraint methods, the solve summary.
 *
 * @example
 * ```ts
 * import type { Prediction } from "./baselines.ts";
 * const converged = (p: Prediction) => p.solve ? p.solve.converged === p.solve.problems : true;
 * ```
 */
export interface Prediction {
  /** `[B, nt, ...space]`. */
  u: Tensor;
  /** The expert solves. */
  solve?: SolveSummary;
}

/**
 * A training method: a network and how its loss and prediction are made.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, type TrainingMethod } from "./mod.ts";
 * const heat = new Heat1D();
 * const m: TrainingMethod = createMethod("soft", { problem: heat, grid: heat.grid({ nt: 9, nx: 16 }) });
 * m.model.numParameters();
 * ```
 */
export interface TrainingMethod {
  /** Which method. */
  readonly kind: MethodKind;
  /** A readable name ("PI-HC-MoE (1×2 experts)"). */
  readonly label: string;
  /** The trained network. */
  readonly model: PdeNetwork;
  /** The PDE. */
  readonly problem: PdeProblem;
  /** The grid. */
  readonly grid: Grid;
  /** The experts' router (hard-constraint methods), for plots. */
  readonly router: Router | null;
  /**
   * One step's loss and gradients (into `model`'s `.grad`; the caller zeroes them and steps).
   * `options.onPhase` hears the parts of a hard-constraint step end (`MoEPhase`), for timing.
   */
  lossAndGrad(batch: PdeBatch, step: number, options?: MoEStepOptions): StepStats;
  /** Solutions for initial conditions `[B, ...space]`, without gradients. */
  predict(u0: Tensor): Prediction;
  /** The method's settings, for metrics files. */
  config(): Record<string, unknown>;
}

/**
 * Options of {@link createMethod}.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, type MethodOptions } from "./mod.ts";
 * const heat = new Heat1D();
 * const options: MethodOptions = {
 *   problem: heat,
 *   grid: heat.grid({ nt: 17, nx: 32 }),
 *   basis: 16,
 *   experts: [2, 1],
 *   points: 128,
 *   network: { width: 16, modes: 8 },
 *   constraint: { initialCondition: "mollifier" },
 * };
 * createMethod("moe", options);
 * ```
 */
export interface MethodOptions<G extends Grid = Grid> {
  /** The PDE. */
  problem: PdeProblem<G>;
  /** The grid. */
  grid: G;
  /** The network (shared by every method). */
  network?: PdeNetworkOptions;
  /** Basis functions N of the hard-constraint methods (default 16). */
  basis?: number;
  /** Experts per grid axis for `"moe"` (default 2 along x: [1, 2] or [1, 2, 2] in 2D). `"hard"` uses one. */
  experts?: readonly number[];
  /** Sampled PDE points per expert and step (default 256). */
  points?: number;
  /** Seed of the point streams (default 0). */
  seed?: number;
  /** Settings of the hard-constraint layer (initial condition, mollifier, solver, adjoint, weights). */
  constraint?: Omit<HardConstraintOptions<G>, "problem" | "grid" | "basis">;
  /** Weights of the physics loss (soft, hard, moe). */
  loss?: PdeLossWeights;
  /**
   * How `"moe"` evaluates the PDE residual of its loss: on the stitched prediction, whose finite
   * differences across box edges also penalise the jumps between experts (`"stitched"`, default, as
   * the paper), or at each grid point with the field of the expert owning it, stencils reading that
   * field across box edges (`"expert"`). Jump terms grow like 1/h² through second derivatives, so
   * on fine grids split in space they swamp the loss (diffusion–sorption 1×4 at 1024 cells stalls
   * at 70% error stitched); across a time split they are mild and couple the experts in time (the
   * heat demo's 2×1 split: 3.4% stitched, 9.9% expert-owned). With `"expert"`, `loss.interface`
   * weighs how well neighbouring experts' fields meet ({@link pdeLoss}); without it nothing in the
   * loss joins them (diffusion–sorption at 1024 cells: 29% owned alone, 4.6% with weight 100 after
   * 2400 steps, 3.8% after 3905; the heat demo: 4.3% with weight 10).
   */
  residual?: "expert" | "stitched";
  /** Raise when an expert solve does not converge (default false: report it). */
  strict?: boolean;
  /** `"moe"`: back-propagate this many experts per step, drawn and reweighted without bias (default all). */
  sampledExperts?: number;
}

/**
 * Human names of the methods.
 *
 * @example
 * ```ts
 * import { methodLabel } from "./baselines.ts";
 * methodLabel("moe", [1, 2, 2]); // "PI-HC-MoE (1×2×2 experts)"
 * ```
 */
export function methodLabel(kind: MethodKind, experts?: readonly number[]): string {
  switch (kind) {
    case "data":
      return "data-only";
    case "soft":
      return "PI-SC (soft constraint)";
    case "hard":
      return "PI-HC (hard constraint)";
    case "moe":
      return `PI-HC-MoE (${(experts ?? []).join("×")} experts)`;
  }
}

function residualOf(problem: PdeProblem, grid: Grid, u: Tensor): number {
  return noGrad(() => problem.residual(u, grid).square().mean().sqrt().item());
}

class DataOnly implements TrainingMethod {
  readonly kind = "data" as const;
  readonly label = methodLabel("data");
  readonly router = null;
  readonly model: PdeNetwork;
  constructor(readonly problem: PdeProblem, readonly grid: Grid, readonly network: PdeNetworkOptions) {
    this.model = new PdeNetwork(grid, 1, network);
  }
  lossAndGrad(batch: PdeBatch): StepStats {
    const u = this.model.forward(batch.u0).squeeze(-1);
    const truth = batch.u.dtype === u.dtype ? batch.u : batch.u.cast(u.dtype);
    const axes = Array.from({ length: u.ndim - 1 }, (_, i) => i + 1);
    const rel = u.sub(truth).square().sum(axes).div(truth.square().sum(axes).add(1e-30)).sqrt().mean();
    rel.backward();
    return { loss: rel.item(), residual: residualOf(this.problem, this.grid, u.detach()), points: u.size };
  }
  predict(u0: Tensor): Prediction {
    return { u: noGrad(() => this.model.forward(u0).squeeze(-1)) };
  }
  config(): Record<string, unknown> {
    return { method: this.kind, label: this.label, parameters: this.model.numParameters(), network: this.network };
  }
}

class SoftConstraint implements TrainingMethod {
  readonly kind = "soft" as const;
  readonly label = methodLabel("soft");
  readonly router = null;
  readonly model: PdeNetwork;
  constructor(
    readonly problem: PdeProblem,
    readonly grid: Grid,
    readonly network: PdeNetworkOptions,
    readonly weights: PdeLossWeights,
  ) {
    this.model = new PdeNetwork(grid, 1, network);
  }
  lossAndGrad(batch: PdeBatch): StepStats {
    const u = this.model.forward(batch.u0).squeeze(-1);
    const terms = pdeLoss(this.problem, this.grid, u, batch.u0, this.weights);
    terms.loss.backward();
    return { loss: terms.loss.item(), residual: terms.pde.item(), points: u.size };
  }
  predict(u0: Tensor): Prediction {
    return { u: noGrad(() => this.model.forward(u0).squeeze(-1)) };
  }
  config(): Record<string, unknown> {
    return {
      method: this.kind,
      label: this.label,
      parameters: this.model.numParameters(),
      network: this.network,
      loss: this.weights,
    };
  }
}

class HardConstraintMethod implements TrainingMethod {
  readonly model: PdeNetwork;
  readonly moe: MixtureOfExperts;
  readonly label: string;
  constructor(
    readonly kind: "hard" | "moe",
    readonly problem: PdeProblem,
    readonly grid: Grid,
    readonly network: PdeNetworkOptions,
    readonly options: MethodOptions,
  ) {
    const n = options.basis ?? 16;
    const residual = options.residual ?? "stitched";
    if (residual !== "expert" && residual !== "stitched") {
      throw new ArgumentError("createMethod", `residual must be "expert" or "stitched", got ${options.residual}`);
    }
    if (kind === "moe" && (options.loss?.interface ?? 0) !== 0 && residual !== "expert") {
      throw new ArgumentError(
        "createMethod",
        `loss.interface (${options.loss?.interface}) weighs how the experts' own fields meet; it needs ` +
          `residual: "expert" (the stitched residual already sees the jumps)`,
      );
    }
    const rank = grid.shape.length;
    const experts = kind === "hard"
      ? new Array(rank).fill(1)
      : [...(options.experts ?? [1, 2, ...new Array(rank - 2).fill(2)])];
    this.model = new PdeNetwork(grid, n, network);
    const layer = new HardConstraint({ ...(options.constraint ?? {}), problem, grid, basis: n });
    this.moe = new MixtureOfExperts({
      constraint: layer,
      experts,
      points: options.points ?? 256,
      seed: options.seed ?? 0,
      strict: options.strict,
      sampledExperts: options.sampledExperts,
    });
    this.label = kind === "hard" ? methodLabel("hard") : methodLabel("moe", experts);
  }
  get router(): Router {
    return this.moe.router;
  }
  lossAndGrad(batch: PdeBatch, step: number, options?: MoEStepOptions): StepStats {
    const phi = this.model.forward(batch.u0);
    const weights = this.options.loss ?? {};
    const own = this.options.residual === "expert";
    const out = this.moe.lossAndBackward(phi, batch.u0, this.moe.samplePoints(step), (u, experts) => {
      const t = pdeLoss(this.problem, this.grid, u, batch.u0, weights, own ? experts : undefined);
      return { loss: t.loss, metrics: { residual: t.pde, interface: t.interface } };
    }, { sampling: this.moe.expertSampling(step), ...options });
    return {
      loss: out.loss,
      residual: out.metrics.residual,
      ...(out.metrics.interface === undefined ? {} : { interface: out.metrics.interface }),
      points: this.moe.points * this.moe.count * batch.u0.shape[0],
      solverIterations: out.solve.meanIterations,
      converged: out.solve.converged,
      problems: out.solve.problems,
    };
  }
  predict(u0: Tensor): Prediction {
    const phi = noGrad(() => this.model.forward(u0));
    return this.moe.predict(phi, u0, this.moe.evaluationPoints());
  }
  config(): Record<string, unknown> {
    const layer = this.moe.constraint;
    return {
      method: this.kind,
      label: this.label,
      parameters: this.model.numParameters(),
      network: this.network,
      basis: layer.n,
      experts: this.moe.router.parts,
      pointsPerExpert: this.moe.points,
      sampledExperts: this.moe.sampledExperts,
      initialCondition: layer.initialCondition,
      mollifierScale: layer.mollifierScale,
      meanFree: layer.meanFree,
      rows: layer.groups.map((g) => g.name),
      solver: {
        kind: layer.solver.kind,
        atol: layer.solver.atol,
        rtol: layer.solver.rtol,
        maxSteps: layer.solver.maxSteps,
      },
      adjoint: { hessian: layer.adjoint.hessian, damping: layer.adjoint.damping },
      loss: this.options.loss ?? {},
      residual: this.options.residual ?? "stitched",
    };
  }
}

/**
 * Builds one of the four methods with the shared network settings.
 *
 * @example
 * ```ts
 * import { createMethod, DiffusionSorption } from "./mod.ts";
 * const ds = new DiffusionSorption();
 * const grid = ds.grid({ nt: 21, nx: 64 });
 * const hard = createMethod("hard", { problem: ds, grid, basis: 16, points: 512, constraint: { initialGuess: 1 } });
 * hard.model.channels; // 16
 * ```
 */
export function createMethod<G extends Grid>(kind: MethodKind, options: MethodOptions<G>): TrainingMethod {
  const { problem, grid } = options;
  const network = options.network ?? {};
  switch (kind) {
    case "data":
      return new DataOnly(problem as PdeProblem, grid, network);
    case "soft":
      return new SoftConstraint(problem as PdeProblem, grid, network, options.loss ?? {});
    case "hard":
    case "moe":
      return new HardConstraintMethod(kind, problem as PdeProblem, grid, network, options as MethodOptions);
    default:
      throw new ArgumentError("createMethod", `method must be one of ${METHOD_KINDS.join(", ")}, got "${kind}"`);
  }
}

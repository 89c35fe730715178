/**
 * The mixture of experts of PI-HC-MoE: a uniform domain decomposition of the space-time grid into
 * K = kt × kx (× ky) boxes, a {@link Router} that maps every grid point to the expert owning it,
 * and {@link MixtureOfExperts}, which gives each expert its own sampled points and its own
 * coefficients w_k, solves all experts of a batch in ONE batched Levenberg–Marquardt call, and
 * stitches the prediction `u = Σ_k 1_{Ω_k}·Φ·w_k` from them.
 *
 * **Backward, expert by expert.** The training loss L(u) (the PDE residual over the whole grid) is
 * cheap to differentiate with respect to u; its gradient ū is computed once. Then
 * `∂L/∂Φ = Σ_k [ ū|_{Ω_k}·w_kᵀ + (∂w_k/∂Φ)ᵀ Φ|_{Ω_k}ᵀ ū|_{Ω_k} ]`, a sum of independent expert
 * terms, each the gradient of the scalar `⟨ū|_{Ω_k}, Φ|_{Ω_k}·w_k(Φ)⟩` where w_k(Φ) is the
 * implicit-function node of expert k's solution. These pieces run one at a time through
 * `independentBackward` (src/local) on the shared feature fields, so peak memory holds one
 * expert's adjoint graph, and the summed gradient flows once through the finite differences and
 * the network. The result equals one backward pass through a single graph of every expert
 * ({@link MixtureOfExperts.forward}).
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const heat = new Heat1D();
 * const grid = heat.grid({ nt: 17, nx: 32 });
 * const layer = new HardConstraint({ problem: heat, grid, basis: 8 });
 * const moe = new MixtureOfExperts({ constraint: layer, experts: [1, 2], points: 64, seed: 0 });
 * const phi = randn([2, 17, 32, 8], { dtype: "float64", seed: 1 }).requireGrad(); // a network's output
 * const u0 = heat.initialConditions(2, grid, { dtype: "float64" });
 * const step = moe.lossAndBackward(phi, u0, moe.samplePoints(0), (u) => u.square().mean());
 * step.loss; // the loss; phi.grad holds its gradient
 * ```
 *
 * @module
 */

import {
  ArgumentError,
  cacheConstant,
  type DType,
  enableGrad,
  gradients,
  noGrad,
  NonFiniteError,
  ShapeError,
  stack,
  type Tensor,
  tensor,
  tidy,
} from "../tensor/mod.ts";
import { independentBackward } from "../local/independent.ts";
import type { PieceSampling } from "../local/sampling.ts";
import type { LeastSquaresResult } from "../solve/least_squares.ts";
import type { AxisName, Grid } from "./grid.ts";
import type { BasisFeatures, RowLayout } from "./constraint_rows.ts";
import { checkSolve, type SolveSummary } from "./expert_solve.ts";
import type { HardConstraint } from "./hard_constraint.ts";
import type { ExpertFields } from "./pde_loss.ts";
import { blockRegions, type IndexRange, PointSampler } from "./sampling.ts";
import { contiguousStrides, sizeOf } from "../tensor/shape.ts";

/**
 * Parses an expert split such as `"1x2"` or `"1x2x2"` (parts along t, x(, y)); a bare `"K"` splits
 * the first space axis into K. Checks the count against the grid's rank.
 *
 * @example
 * ```ts
 * import { parseExperts } from "./experts.ts";
 * parseExperts("1x2x2", 3); // [1, 2, 2]
 * parseExperts("4", 2); // [1, 4]
 * ```
 */
export function parseExperts(spec: string, rank: number): number[] {
  const text = String(spec).trim().toLowerCase();
  const parts = text.split(/[x×*,]/).map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((p) => !Number.isInteger(p) || p < 1)) {
    throw new ArgumentError(
      "parseExperts",
      `experts must look like "1x2" or "1x2x2" (parts along t, x, y), got "${spec}"`,
    );
  }
  if (parts.length === 1 && rank > 1) return [1, parts[0], ...new Array(rank - 2).fill(1)];
  if (parts.length !== rank) {
    throw new ArgumentError(
      "parseExperts",
      `"${spec}" gives ${parts.length} part counts but the grid has ${rank} axes (t, x${rank === 3 ? ", y" : ""})`,
    );
  }
  return parts;
}

/** A 32-bit hash of a list of integers (the seed of one sampling stream). */
function streamSeed(key: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const v of key) {
    let x = Math.trunc(v) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
    x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
    h = Math.imul(h ^ x ^ (x >>> 16), 0x27d4eb2f) + 0x165667b1;
    h ^= h >>> 15;
  }
  return h >>> 0;
}

/**
 * The router of a uniform domain decomposition: `parts[a]` equal pieces along each grid axis
 * (layout order t, x(, y); remainders go to the first pieces), experts numbered row-major over the
 * blocks (as the reference code's `dimension_partition`). Every grid point belongs to exactly one
 * expert.
 *
 * @example
 * ```ts
 * import { Router } from "./experts.ts";
 * const r = new Router([101, 1024], [1, 4]);
 * r.count; // 4
 * r.expertOf(3 * 1024 + 700); // 2: columns 512..767
 * r.regions[2]; // [[0, 101], [512, 768]]
 * ```
 */
export class Router {
  /** The grid shape. */
  readonly shape: readonly number[];
  /** Pieces per axis. */
  readonly parts: readonly number[];
  /** Each expert's box: one `[start, stop)` range per axis. */
  readonly regions: readonly (readonly IndexRange[])[];
  readonly #edges: number[][];

  /** A router splitting a grid (or a grid shape) into `parts[a]` pieces along each axis. */
  constructor(grid: Grid | readonly number[], parts: readonly number[]) {
    this.shape = Array.isArray(grid) ? [...grid] : [...(grid as Grid).shape];
    this.parts = [...parts];
    this.regions = blockRegions(this.shape, this.parts);
    // Start index of each piece along each axis, for the lookup.
    this.#edges = this.shape.map((_, a) => {
      const stride = this.parts.slice(a + 1).reduce((s, p) => s * p, 1);
      return Array.from({ length: this.parts[a] }, (_, i) => this.regions[i * stride][a][0]);
    });
  }

  /** Number of experts K. */
  get count(): number {
    return this.regions.length;
  }

  /** Number of grid points of expert k's box. */
  regionSize(k: number): number {
    return this.regions[k].reduce((s, [a, b]) => s * (b - a), 1);
  }

  /**
   * The expert owning a flat grid index.
   *
   * @example
   * ```ts
   * import { Router } from "./experts.ts";
   * new Router([4, 8], [2, 2]).expertOf(2 * 8 + 5); // 3
   * ```
   */
  expertOf(index: number): number {
    let rem = index;
    const coords = new Array(this.shape.length);
    for (let a = this.shape.length - 1; a >= 0; a--) {
      coords[a] = rem % this.shape[a];
      rem = Math.floor(rem / this.shape[a]);
    }
    let k = 0;
    for (let a = 0; a < this.shape.length; a++) {
      const edges = this.#edges[a];
      let piece = 0;
      while (piece + 1 < edges.length && coords[a] >= edges[piece + 1]) piece++;
      k = k * this.parts[a] + piece;
    }
    return k;
  }

  /**
   * The expert of every grid point, flat row-major: the routing table.
   *
   * @example
   * ```ts
   * import { Router } from "./experts.ts";
   * new Router([2, 4], [1, 2]).assign(); // [0, 0, 1, 1, 0, 0, 1, 1]
   * ```
   */
  assign(): Int32Array {
    const size = this.shape.reduce((s, n) => s * n, 1);
    const out = new Int32Array(size);
    this.regions.forEach((region, k) => {
      const ext = region.map(([a, b]) => b - a);
      const cells = ext.reduce((s, v) => s * v, 1);
      for (let c = 0; c < cells; c++) {
        let rem = c;
        let flat = 0;
        let inner = 1;
        for (let a = this.shape.length - 1; a >= 0; a--) {
          const i = rem % ext[a];
          rem = Math.floor(rem / ext[a]);
          flat += (region[a][0] + i) * inner;
          inner *= this.shape[a];
        }
        out[flat] = k;
      }
    });
    return out;
  }

  /**
   * `m` distinct points per expert (flat grid indices inside its box, sorted), drawn uniformly
   * without replacement from a stream keyed by `key` (e.g. `[seed, step]`) and the expert: the same
   * key gives the same points on every run and backend, so a resumed run replays them exactly.
   *
   * @example
   * ```ts
   * import { Router } from "./mod.ts";
   * const pts = new Router([17, 32], [1, 2]).sample(64, [0, 5]); // two Int32Arrays of 64 points
   * ```
   */
  sample(m: number, key: readonly number[]): Int32Array[] {
    return this.regions.map((region, k) => {
      const size = this.regionSize(k);
      if (!Number.isInteger(m) || m < 1 || m > size) {
        throw new ArgumentError(
          "Router.sample",
          `expert ${k} (box ${
            region.map(([a, b]) => `${a}..${b}`).join(" × ")
          }) has ${size} grid points; cannot sample ${m}`,
        );
      }
      return new PointSampler(this.shape, { seed: streamSeed([...key, k]), region }).nextHost(m);
    });
  }

  /**
   * Coordinates of the expert boundaries along a grid axis (midway between the last point of one
   * piece and the first of the next), for plots.
   *
   * @example
   * ```ts
   * import { Grid1D } from "./grid.ts";
   * import { Router } from "./experts.ts";
   * const g = new Grid1D({ nt: 5, x: { n: 8 } });
   * new Router(g, [1, 2]).boundaries(g, "x"); // [0.5]
   * ```
   */
  boundaries(grid: Grid, axis: AxisName): number[] {
    const a = grid.axes.findIndex((ax) => ax.name === axis);
    if (a < 0) throw new ArgumentError("Router.boundaries", `the grid has no axis ${axis}`);
    const pts = grid.axes[a].points();
    return this.#edges[a].slice(1).map((i) => (pts[i - 1] + pts[i]) / 2);
  }
}

/**
 * Options of {@link MixtureOfExperts}.
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D, type MixtureOfExpertsOptions } from "./mod.ts";
 * const heat = new Heat1D();
 * const constraint = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 17, nx: 32 }), basis: 8 });
 * const options: MixtureOfExpertsOptions = { constraint, experts: [2, 1], points: 64, seed: 1 };
 * ```
 */
export interface MixtureOfExpertsOptions<G extends Grid = Grid> {
  /** The hard-constraint layer every expert uses. */
  constraint: HardConstraint<G>;
  /** Pieces per grid axis (t, x(, y)); all ones is plain PI-HC. */
  experts: readonly number[];
  /** Sampled PDE points per expert and step (at least N, at most the expert's box). */
  points: number;
  /** Seed of the point streams (default 0). */
  seed?: number;
  /** Raise an `ExpertSolveError` when any expert solve does not converge (default false: report it). */
  strict?: boolean;
  /**
   * Back-propagate only this many of the K experts per step, drawn uniformly by
   * {@link MixtureOfExperts.expertSampling} (SpaCO's reweighting: each drawn expert's gradient × K/t, an
   * exactly unbiased estimate). Every expert is still solved (the loss needs the whole u); the
   * experts' implicit backward passes are what is saved. Default: all.
   */
  sampledExperts?: number;
}

/**
 * What a loss function of u returns: the scalar loss, and optionally scalar metrics to report.
 *
 * @example
 * ```ts
 * import type { LossOutput } from "./experts.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * const loss = (u: Tensor): LossOutput => ({ loss: u.square().mean(), metrics: { max: u.abs().max() } });
 * ```
 */
export type LossOutput = Tensor | { loss: Tensor; metrics?: Record<string, Tensor | null> };

/**
 * The parts of a {@link MixtureOfExperts.lossAndBackward} call, announced as each ends (for a
 * caller that times them):
 * - `"features"`: the feature fields (the basis and its finite differences);
 * - `"solve"`: the batched expert solve (forward);
 * - `"head"`: stitching u, the loss and its gradient ū;
 * - `"experts"`: the experts' implicit backward passes, one at a time (only when `phi` requires grad);
 * - `"upstream"`: the summed gradient through the shared feature graph and the network.
 *
 * @example
 * ```ts
 * import type { MoEPhase } from "./experts.ts";
 * const inSolver = (p: MoEPhase) => p === "solve" || p === "experts";
 * ```
 */
export type MoEPhase = "features" | "solve" | "head" | "experts" | "upstream";

/**
 * Options of {@link MixtureOfExperts.lossAndBackward}.
 *
 * @example
 * ```ts
 * import type { MoEStepOptions } from "./experts.ts";
 * import { Stopwatch } from "../train/progress.ts";
 * const watch = new Stopwatch();
 * const options: MoEStepOptions = { onPhase: watch.lap }; // watch.ms.solve: ms in the batched solve
 * ```
 */
export interface MoEStepOptions {
  /** Called as each part of the step ends, in order. */
  onPhase?: (phase: MoEPhase) => void;
  /**
   * Back-propagate a drawn subset of the experts (of this process's, when sharded), each scaled by
   * 1/π: an unbiased estimate of the gradient (`local.independentBackward`'s sampling). Default:
   * every expert.
   */
  sampling?: PieceSampling;
  /**
   * Solve and back-propagate only some experts here, the others' coefficients coming from
   * `gather` (experts sharded over processes, as the reference code shards the expert axis over
   * devices): the loss is then the whole loss, and the gradients are this process's experts'
   * share of it — their sum over the processes is the unsharded gradient.
   */
  shard?: ExpertShard;
}

/**
 * The experts one process owns in a sharded step ({@link MoEStepOptions.shard}) and how every
 * expert's coefficients are put together from each process's own (`dist.shardExperts` makes one
 * from a process group).
 *
 * @example
 * ```ts
 * import type { ExpertShard } from "./experts.ts";
 * const alone: ExpertShard = { experts: [0, 1], gather: (w) => w }; // one process owning both experts
 * ```
 */
export interface ExpertShard {
  /** The experts solved and back-propagated here (distinct, increasing). */
  readonly experts: readonly number[];
  /** Every expert's coefficients `[K·B, N]`, expert-major, from this process's `[experts.length·B, N]`. */
  gather(w: Tensor): Tensor;
}

/**
 * The result of one {@link MixtureOfExperts.lossAndBackward} call.
 *
 * @example
 * ```ts
 * import type { MoEStep } from "./experts.ts";
 * const report = (s: MoEStep) => `loss ${s.loss}, ${s.solve.converged}/${s.solve.problems} solves converged`;
 * ```
 */
export interface MoEStep {
  /** The loss value. */
  loss: number;
  /** The metrics the loss function reported, as numbers. */
  metrics: Record<string, number>;
  /** The stitched prediction `[B, ...grid]` (no graph). */
  u: Tensor;
  /** The expert solves. */
  solve: SolveSummary;
  /** The experts back-propagated (all of this process's, unless `sampling` drew some). */
  backpropagated: number[];
}

/**
 * PI-HC-MoE: K experts over a uniform decomposition, all solved in one batched call, trained
 * expert by expert in backward (see the module notes).
 *
 * @example
 * ```ts
 * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
 * const heat = new Heat1D();
 * const grid = heat.grid({ nt: 17, nx: 32 });
 * const layer = new HardConstraint({ problem: heat, grid, basis: 8 });
 * const moe = new MixtureOfExperts({ constraint: layer, experts: [1, 2], points: 64 });
 * moe.router.count; // 2
 * ```
 */
export class MixtureOfExperts<G extends Grid = Grid> {
  /** The hard-constraint layer. */
  readonly constraint: HardConstraint<G>;
  /** The router. */
  readonly router: Router;
  /** PDE points per expert. */
  readonly points: number;
  /** Seed of the point streams. */
  readonly seed: number;
  /** Whether a non-converged expert solve raises. */
  readonly strict: boolean;
  /** Experts back-propagated per step (null: all). */
  readonly sampledExperts: number | null;

  /** A mixture; see {@link MixtureOfExpertsOptions}. */
  constructor(options: MixtureOfExpertsOptions<G>) {
    const op = "MixtureOfExperts";
    const layer = options.constraint;
    if (!layer || typeof layer.layout !== "function") throw new ArgumentError(op, "needs a HardConstraint layer");
    if (layer.adjoint.kind !== "implicit") {
      throw new ArgumentError(
        op,
        "the experts back-propagate one at a time through the implicit adjoint; give the layer an ImplicitAdjoint",
      );
    }
    const grid = layer.grid;
    if (!Array.isArray(options.experts) || options.experts.length !== grid.shape.length) {
      throw new ArgumentError(
        op,
        `experts must give a part count per grid axis (${grid.axes.map((a) => a.name).join(", ")}), got ${
          JSON.stringify(options.experts)
        }`,
      );
    }
    this.constraint = layer;
    this.router = new Router(grid, options.experts);
    this.points = options.points;
    this.seed = options.seed ?? 0;
    this.strict = options.strict ?? false;
    const t = options.sampledExperts ?? null;
    if (t !== null && !(Number.isInteger(t) && t >= 1 && t <= this.router.count)) {
      throw new ArgumentError(
        op,
        `sampledExperts must be an integer in 1..${this.router.count} (the experts), got ${t}`,
      );
    }
    this.sampledExperts = t;
    const m = options.points;
    if (!Number.isInteger(m) || m < 1) throw new ArgumentError(op, `points must be a positive integer, got ${m}`);
    if (m < layer.n) {
      throw new ArgumentError(
        op,
        `each expert samples ${m} points but there are N = ${layer.n} basis functions; an expert needs at least N ` +
          "points (raise points or lower the number of basis functions)",
      );
    }
    this.router.regions.forEach((region, k) => {
      const size = this.router.regionSize(k);
      if (m > size) {
        throw new ArgumentError(
          op,
          `expert ${k} (box ${region.map(([a, b]) => `${a}..${b}`).join(" × ")}) has only ${size} grid points; ` +
            `cannot sample ${m} points from it (lower points or use fewer experts)`,
        );
      }
    });
  }

  /** Number of experts K. */
  get count(): number {
    return this.router.count;
  }

  /**
   * Each expert's sampled points for training step `step` (a pure function of the seed and the
   * step, so a resumed run sees the same points).
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 17, nx: 32 });
   * const moe = new MixtureOfExperts({ constraint: new HardConstraint({ problem: heat, grid, basis: 8 }), experts: [1, 2], points: 64 });
   * moe.samplePoints(3).map((p) => p.length); // [64, 64]: each expert's points in its own box
   * ```
   */
  samplePoints(step: number): Int32Array[] {
    return this.router.sample(this.points, [this.seed, step]);
  }

  /**
   * The points used at evaluation (a fixed stream apart from the training steps).
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 17, nx: 32 });
   * const moe = new MixtureOfExperts({ constraint: new HardConstraint({ problem: heat, grid, basis: 8 }), experts: [1, 2], points: 64 });
   * moe.evaluationPoints().length; // 2
   * ```
   */
  evaluationPoints(): Int32Array[] {
    return this.router.sample(this.points, [this.seed, 0x7fffffff, 1]);
  }

  /**
   * Every expert in one graph: one batched solve with the implicit adjoint, then the stitched u
   * (for inference with gradients, and as the reference the expert-by-expert backward is checked
   * against).
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 17, nx: 32 });
   * const moe = new MixtureOfExperts({ constraint: new HardConstraint({ problem: heat, grid, basis: 8 }), experts: [1, 2], points: 64 });
   * const phi = randn([2, 17, 32, 8], { dtype: "float64" }).requireGrad();
   * const u0 = heat.initialConditions(2, grid, { dtype: "float64" });
   * const { u } = moe.forward(phi, u0, moe.samplePoints(0));
   * u.square().mean().backward(); // phi.grad through the batched solve's implicit adjoint
   * ```
   */
  forward(phi: Tensor, u0: Tensor, points: readonly Int32Array[]): {
    u: Tensor;
    w: Tensor;
    result: LeastSquaresResult;
    features: BasisFeatures;
    layout: RowLayout;
  } {
    this.#checkPoints(points);
    return this.constraint.forward(phi, u0, points, this.router.regions);
  }

  /**
   * The stitched prediction without gradients, and the solve summary.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 17, nx: 32 });
   * const moe = new MixtureOfExperts({ constraint: new HardConstraint({ problem: heat, grid, basis: 8 }), experts: [1, 2], points: 64 });
   * const phi = randn([2, 17, 32, 8], { dtype: "float64" }).requireGrad();
   * const u0 = heat.initialConditions(2, grid, { dtype: "float64" });
   * const { u, solve } = moe.predict(phi, u0, moe.evaluationPoints());
   * u.shape; // [2, 17, 32]
   * solve.problems; // 4: two experts × batch 2
   * ```
   */
  predict(phi: Tensor, u0: Tensor, points: readonly Int32Array[]): { u: Tensor; solve: SolveSummary } {
    this.#checkPoints(points);
    return noGrad(() => {
      const features = this.constraint.features(phi, u0);
      const solved = this.constraint.solve(features, this.constraint.layout(points, this.router.regions));
      const solve = checkSolve(solved, features.batch, { strict: this.strict });
      return { u: this.constraint.stitch(features, solved.w, this.router.regions), solve };
    });
  }

  readonly #maskCache = new Map<object, Map<DType, { masks: Tensor[]; halos: Tensor[] }>>();

  /**
   * Per expert, its box mask (1 on the points it owns) and its halo mask (1 on the neighbours'
   * points one cell outside its box along each split axis, across a periodic wrap too), `[...grid]`
   * in `like`'s dtype and backend (cached).
   */
  #masks(like: Tensor): { masks: Tensor[]; halos: Tensor[] } {
    let byType = this.#maskCache.get(like.backend);
    if (!byType) this.#maskCache.set(like.backend, byType = new Map());
    let cached = byType.get(like.dtype);
    if (!cached) {
      const grid = this.constraint.grid;
      const shape = grid.shape;
      const size = sizeOf(shape);
      const table = this.router.assign();
      const box = Array.from({ length: this.count }, () => new Float64Array(size));
      const halo = Array.from({ length: this.count }, () => new Float64Array(size));
      const strides = contiguousStrides(shape);
      for (let i = 0; i < size; i++) {
        const k = table[i];
        box[k][i] = 1;
        // Point i lies in the halo of the expert owning its neighbour one step along a split axis.
        for (let a = 0; a < shape.length; a++) {
          if (this.router.parts[a] === 1) continue;
          const c = Math.floor(i / strides[a]) % shape[a];
          const periodic = grid.axes[a].periodic;
          for (const step of [-1, 1]) {
            if (!periodic && (c + step < 0 || c + step >= shape[a])) continue;
            const other = table[i + (((c + step + shape[a]) % shape[a]) - c) * strides[a]];
            if (other !== k) halo[other][i] = 1;
          }
        }
      }
      const upload = (h: Float64Array) =>
        cacheConstant(noGrad(() => tensor(h, { dtype: like.dtype, backend: like.backend }).reshape(shape)));
      cached = { masks: box.map(upload), halos: halo.map(upload) };
      byType.set(like.dtype, cached);
    }
    return cached;
  }

  #checkPoints(points: readonly Int32Array[]): void {
    if (!Array.isArray(points) || points.length !== this.count) {
      throw new ArgumentError(
        "MixtureOfExperts",
        `expected ${this.count} point sets (one per expert), got ${points?.length}`,
      );
    }
    const assign = this.router;
    points.forEach((p, k) => {
      for (const i of p) {
        if (assign.expertOf(i) !== k) {
          throw new ArgumentError(
            "MixtureOfExperts",
            `point ${i} of expert ${k} lies in expert ${assign.expertOf(i)}'s box`,
          );
        }
      }
    });
  }

  /**
   * The draw of step `step` (0-based) when `sampledExperts` is set: t of the K experts uniformly,
   * seeded by the mixture's seed and the step (a resumed run draws what an uninterrupted one would);
   * undefined when every expert is back-propagated. Pass it as `sampling` to {@link MixtureOfExperts.lossAndBackward}.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, MixtureOfExperts } from "./mod.ts";
   * const heat = new Heat1D();
   * const constraint = new HardConstraint({ problem: heat, grid: heat.grid({ nt: 17, nx: 32 }), basis: 8 });
   * const moe = new MixtureOfExperts({ constraint, experts: [1, 4], points: 32, sampledExperts: 2 });
   * moe.expertSampling(0); // { mode: "fixed", count: 2, seed: … }
   * ```
   */
  expertSampling(step: number): PieceSampling | undefined {
    if (this.sampledExperts === null) return undefined;
    return { mode: "fixed", count: this.sampledExperts, seed: streamSeed([this.seed, step, 0x5eed]) };
  }

  /**
   * One training step's forward and backward: the basis features (graph from `phi`), ONE batched
   * solve of every expert, the stitched u, the loss and ū = ∂L/∂u, then each expert's implicit
   * backward alone through `independentBackward`, and the summed gradient once through the graph of
   * `phi` (into the network's `.grad`). A non-finite loss raises a `NonFiniteError` before any
   * gradient is written. `options.onPhase` hears each part end ({@link MoEPhase}), for timing.
   *
   * @example
   * ```ts
   * import { HardConstraint, Heat1D, MixtureOfExperts, pdeLoss } from "./mod.ts";
   * import { Stopwatch } from "../train/progress.ts";
   * import { randn } from "../tensor/mod.ts";
   * const heat = new Heat1D();
   * const grid = heat.grid({ nt: 17, nx: 32 });
   * const moe = new MixtureOfExperts({ constraint: new HardConstraint({ problem: heat, grid, basis: 8 }), experts: [1, 2], points: 64 });
   * const phi = randn([2, 17, 32, 8], { dtype: "float64" }).requireGrad();
   * const u0 = heat.initialConditions(2, grid, { dtype: "float64" });
   * const watch = new Stopwatch();
   * const step = moe.lossAndBackward(phi, u0, moe.samplePoints(0), (u) => pdeLoss(heat, grid, u, u0).loss, {
   *   onPhase: watch.lap,
   * });
   * watch.ms.solve; // ms in the one batched solve; phi.grad holds ∂loss/∂Φ
   * ```
   */
  lossAndBackward(
    phi: Tensor,
    u0: Tensor,
    points: readonly Int32Array[],
    lossFn: (u: Tensor, experts: ExpertFields) => LossOutput,
    options: MoEStepOptions = {},
  ): MoEStep {
    this.#checkPoints(points);
    const layer = this.constraint;
    const regions = this.router.regions;
    const k = this.count;
    const phase = options.onPhase ?? (() => {});
    const mine = this.#shardExperts(options.shard);
    const features = layer.features(phi, u0);
    const layout = layer.layout(points, regions);
    const b = features.batch;
    phase("features");
    const solved = noGrad(() => layer.solve(features, layout, mine));
    const solve = checkSolve(solved, b, { strict: this.strict });
    const wStar = options.shard ? this.#gathered(options.shard, solved.w, b) : solved.w;
    phase("solve");
    // The head: every expert's own field on the whole grid from the constant solution, the
    // stitched u, the loss, and ū_k = ∂L/∂(field k) for each expert.
    const whole = layer.grid.shape.map((n): IndexRange => [0, n]);
    const raw = noGrad(() =>
      tidy(() => stack(regions.map((_, e) => layer.expertField(features, wStar.narrow(0, e * b, b), whole)), 0))
    );
    const rawLeaf = raw.requireGrad();
    const { masks, halos } = this.#masks(raw);
    const head = enableGrad(() => {
      const spaceAxes = layer.grid.spaceShape.map((_, i) => -1 - i);
      const centred = (x: Tensor) => (layer.meanFree && k > 1 ? x.sub(x.mean(spaceAxes, true)) : x);
      const offset = features.offset?.detach();
      const own = regions.map((_, e) => {
        const f = rawLeaf.narrow(0, e, 1).squeeze(0);
        return offset ? f.add(offset) : f;
      });
      const u = centred(k === 1 ? own[0] : own.map((f, e) => f.mul(masks[e])).reduce((a, c) => a.add(c)));
      // The owned fields are made only when the loss reads them (a stitched loss does not).
      let fields: Tensor[] | undefined;
      const out = lossFn(u, {
        masks,
        halos,
        get fields() {
          return fields ??= own.map(centred);
        },
      });
      return { u, ...(out instanceof Object && "loss" in out ? out : { loss: out as Tensor, metrics: {} }) };
    });
    const loss = head.loss.item();
    if (!Number.isFinite(loss)) {
      throw new NonFiniteError(
        "MixtureOfExperts",
        `the loss is ${loss} (expert solves: ${solve.converged}/${solve.problems} converged)`,
      );
    }
    const metrics: Record<string, number> = {};
    for (const [name, v] of Object.entries(head.metrics ?? {})) if (v) metrics[name] = v.item();
    const [ubar] = gradients([head.loss], [head.loss.mul(0).add(1)], [rawLeaf]);
    const u = head.u.detach();
    phase("head");
    // The experts' backward passes, one at a time, on the shared feature fields.
    let experts: number[] = [];
    if (phi.requiresGrad && ubar) {
      const shared: Tensor[] = [];
      const slot = (x: Tensor) => {
        let i = shared.indexOf(x);
        if (i < 0) i = shared.push(x) - 1;
        return i;
      };
      const basisSlot = slot(features.basis);
      const fieldSlots = features.fields.map(slot);
      const pieces = mine.map((e) => (leaves: Tensor[]) => {
        const f: BasisFeatures = { ...features, basis: leaves[basisSlot], fields: fieldSlots.map((i) => leaves[i]) };
        const params = layer.params(f, layout, [e]);
        const wk = layer.adjointNode(params, wStar.narrow(0, e * b, b));
        return layer.expertField(f, wk, whole).mul(ubar.narrow(0, e, 1).squeeze(0)).sum();
      });
      // The "experts" phase ends with the last piece's backward, before the shared graph's.
      const { backpropagated } = independentBackward(shared, pieces, {
        sampling: options.sampling,
        onPiecesDone: () => phase("experts"),
      });
      experts = backpropagated.map((i) => mine[i]);
    }
    phase("upstream");
    ubar?.dispose();
    if (options.shard) wStar.dispose();
    return { loss, metrics, u, solve, backpropagated: experts };
  }

  /** The experts solved here: all, or a shard's (checked). */
  #shardExperts(shard: ExpertShard | undefined): number[] {
    const all = this.router.regions.map((_, e) => e);
    if (!shard) return all;
    const list = [...shard.experts];
    if (!list.length || list.some((e, i) => !Number.isInteger(e) || e < 0 || e >= this.count || list[i - 1] >= e)) {
      throw new ArgumentError(
        "MixtureOfExperts",
        `a shard's experts must be distinct, increasing expert numbers from 0 to ${this.count - 1}, got [${list}]`,
      );
    }
    return list;
  }

  /** Every expert's coefficients from the shard's gather, checked. */
  #gathered(shard: ExpertShard, w: Tensor, b: number): Tensor {
    const all = noGrad(() => shard.gather(w));
    const want = [this.count * b, this.constraint.n];
    if (all.ndim !== 2 || all.shape[0] !== want[0] || all.shape[1] !== want[1]) {
      throw new ShapeError(
        "MixtureOfExperts",
        `the shard's gather returned coefficients of shape [${all.shape}], expected [${want}] (${this.count} ` +
          `experts × batch ${b}, N = ${this.constraint.n})`,
      );
    }
    return all;
  }
}

/**
 * The Gauss–Newton family as an {@link IterativeSolver} (Optimistix's `AbstractGaussNewton`): each
 * iteration takes the damped Gauss–Newton descent `(JᵀJ + λD + τI)·δ = −Jᵀr` (factorised by the
 * solver's linear solver), lets the search judge the trial point(s) per problem, moves the
 * problems whose step is accepted, and tests termination there. {@link GaussNewton} and
 * {@link LevenbergMarquardt} (solvers.ts) are this iteration with a search, a damping and a
 * linear solver each; see `mod.ts` for the equations.
 *
 * Device tensors hold what scales with M or N (w, r, JᵀJ, Jᵀr, the Marquardt scaling); the
 * per-problem scalars (λ, ν, cost, status, step counts) live on the host. An eager search reads
 * one packed `[8, B]` tensor of reductions per iteration (its only synchronisation) and uploads the
 * `[3, B]` accept mask and damping; a lazy one (a line search) reads each trial's cost, and forms
 * J only at the accepted points.
 *
 * @module
 */

import { enableGrad, noGrad } from "../tensor/autograd.ts";
import { tidy } from "../tensor/storage.ts";
import { Tensor } from "../tensor/tensor.ts";
import { where } from "../tensor/ops_elementwise.ts";
import { stack } from "../tensor/ops_shape.ts";
import { evaluate, type Evaluation, halfSquaredNorm, type Problem, residualAt } from "./evaluate.ts";
import { epsilonOf } from "./internal.ts";
import type { IterativeSolver, SolverState } from "./iterate.ts";
import { type LinearSolver, regularizedFactor } from "./linear_solver.ts";
import type { Search, Verdict } from "./search.ts";

const CONVERGED = 0;
const MAX_STEPS = 1;
const SINGULAR = 2;
const NONFINITE = 3;
const STALLED = 4;

/**
 * The iteration's state: the iterate and the model there (device), and the per-problem record
 * (host).
 *
 * @example
 * ```ts
 * import type { GaussNewtonState } from "./gauss_newton.ts";
 * const iterations = (s: GaussNewtonState) => s.iterations;
 * ```
 */
export interface GaussNewtonState extends SolverState {
  /** r(w) `[B, M]` (a constant). */
  r: Tensor;
  /** Jᵀr at w `[B, N]`. */
  jtr: Tensor;
  /** Marquardt's D (the largest diag JᵀJ seen), or null for D = I. */
  scale: Tensor | null;
  /** The uploaded `[accept, λ, τ]` `[3, B]` of the last iteration. */
  coef: Tensor;
  /** Nielsen's ν per problem. */
  readonly nu: Float64Array;
  /** max diag JᵀJ per problem. */
  readonly maxDiag: Float64Array;
}

/**
 * The default relative Tikhonov term: 10·n·ε of the dtype.
 *
 * @example
 * ```ts
 * import { defaultRegularization } from "./gauss_newton.ts";
 * defaultRegularization(4, "float64"); // 8.9e-15
 * ```
 */
export function defaultRegularization(n: number, dtype: "float32" | "float64"): number {
  return 10 * n * epsilonOf(dtype);
}

/**
 * The shared iteration of {@link GaussNewton} and {@link LevenbergMarquardt}: `init`, `step`,
 * `terminate` over a batch, with `lambda0` (λ₀ from max diag J₀ᵀJ₀) left to each solver.
 *
 * @example
 * ```ts
 * import { LevenbergMarquardt } from "./mod.ts";
 * const lm = new LevenbergMarquardt();
 * lm.search.kind; // "trust-region"
 * ```
 */
export abstract class AbstractGaussNewton implements IterativeSolver<GaussNewtonState> {
  /** Absolute tolerance. */
  readonly atol: number;
  /** Relative tolerance. */
  readonly rtol: number;
  /** Stationarity tolerance. */
  readonly gtol: number;
  /** Relative cost-decrease tolerance (0: off). */
  readonly ftol: number;
  /** Iteration limit. */
  readonly maxSteps: number;
  /** Relative Tikhonov fallback (undefined: 10·n·ε). */
  readonly regularization: number | undefined;
  /** The search. */
  readonly search: Search;
  /** The linear solver of the steps. */
  readonly linearSolver: LinearSolver;
  /** D = I, or Marquardt's scaling. */
  readonly scaling: "identity" | "marquardt";

  /** The iteration with the given parts (validated by the solver's constructor). */
  constructor(
    parts: Pick<
      AbstractGaussNewton,
      "atol" | "rtol" | "gtol" | "ftol" | "maxSteps" | "regularization" | "search" | "linearSolver" | "scaling"
    >,
  ) {
    this.atol = parts.atol;
    this.rtol = parts.rtol;
    this.gtol = parts.gtol;
    this.ftol = parts.ftol;
    this.maxSteps = parts.maxSteps;
    this.regularization = parts.regularization;
    this.search = parts.search;
    this.linearSolver = parts.linearSolver;
    this.scaling = parts.scaling;
  }

  /** λ₀ of a problem whose J₀ᵀJ₀ has largest diagonal entry `maxDiag`. */
  abstract lambda0(maxDiag: number): number;

  #relReg<P>(pb: Problem<P>): number {
    return this.regularization ?? defaultRegularization(pb.n, pb.dtype);
  }

  /** The state at w0. */
  init<P>(pb: Problem<P>, w0: Tensor): GaussNewtonState {
    const b = pb.b;
    const lin = this.linearSolver;
    const first = tidy(() => {
      const ev = evaluate(pb, w0);
      const packed = noGrad(() =>
        stack([
          halfSquaredNorm(ev.r),
          ev.jtj.detach().sum([1, 2]),
          ev.jtr.detach().sum(-1),
          ev.jtr.detach().abs().max(-1),
          lin.diagonal(ev.jtj).max(-1),
        ]).cast("float64").toTypedArray()
      );
      const scale = this.scaling === "marquardt" ? noGrad(() => lin.diagonal(ev.jtj).contiguous()) : null;
      return { ev, packed, scale };
    });
    const diff = pb.differentiable;
    const s: GaussNewtonState = {
      w: diff ? w0 : w0.detach(),
      r: diff ? first.ev.r.detach() : first.ev.r,
      jtj: first.ev.jtj,
      jtr: first.ev.jtr,
      scale: first.scale,
      coef: null as unknown as Tensor,
      lam: new Float64Array(b),
      nu: new Float64Array(b).fill(2),
      cost: new Float64Array(b),
      gnorm: new Float64Array(b),
      maxDiag: new Float64Array(b),
      status: new Int32Array(b).fill(MAX_STEPS),
      steps: new Int32Array(b),
      active: new Uint8Array(b),
      regularized: new Uint8Array(b),
      iterations: 0,
    };
    const h = first.packed;
    for (let k = 0; k < b; k++) {
      s.cost[k] = h[k];
      s.gnorm[k] = h[3 * b + k];
      s.maxDiag[k] = h[4 * b + k];
      if (!(Number.isFinite(h[k]) && Number.isFinite(h[b + k]) && Number.isFinite(h[2 * b + k]))) {
        s.status[k] = NONFINITE;
        continue;
      }
      s.active[k] = 1;
      s.lam[k] = this.lambda0(s.maxDiag[k]);
    }
    s.coef = this.#upload(pb, s, new Float64Array(b));
    return s;
  }

  /** Whether every problem has stopped. */
  terminate(s: GaussNewtonState): boolean {
    return !s.active.some((a) => a === 1);
  }

  /** Frees the damping upload and, unless recorded, the model at the last iterate. */
  release(s: GaussNewtonState, differentiable: boolean): void {
    s.coef.dispose();
    if (!differentiable) { for (const t of [s.r, s.jtr, s.scale]) t?.dispose(); }
  }

  /** Uploads `[accept (B), λ (B), τ (B)]` as one `[3, B]` tensor of the working dtype. */
  #upload<P>(pb: Problem<P>, s: GaussNewtonState, accept: Float64Array): Tensor {
    const b = pb.b;
    const relReg = this.#relReg(pb);
    const host = new Float64Array(3 * b);
    host.set(accept, 0);
    for (let k = 0; k < b; k++) {
      host[b + k] = s.lam[k];
      host[2 * b + k] = s.regularized[k] ? relReg * (s.maxDiag[k] > 0 ? s.maxDiag[k] : 1) : 0;
    }
    return Tensor.fromBuffer(s.w.backend.fromHost(host, pb.dtype), [3, b], pb.dtype);
  }

  /** The damped Gauss–Newton direction δ̃ = A⁻¹Jᵀr (the step is −α·δ̃) and A's singularity flags. */
  #direction<P>(pb: Problem<P>, s: GaussNewtonState): { dt: Tensor; bad: Tensor } {
    const b = pb.b;
    const lin = this.linearSolver;
    return tidy(() => {
      const lam = s.coef.narrow(0, 1, 1).reshape([b, 1]);
      const tau = s.coef.narrow(0, 2, 1).reshape([b, 1]);
      // A = JᵀJ + λD + τI, with D = I or diag(scale).
      const d = s.scale ? noGrad(() => s.scale!.mul(lam).add(tau)) : noGrad(() => lam.add(tau));
      const a = lin.addDiagonal(s.jtj, d);
      const fac = lin.factor(a);
      let dt = fac.solve(a, s.jtr);
      if (pb.differentiable) dt = where(noGrad(() => dt.sub(dt).eq(0)), dt, 0); // keep NaN out of the recorded graph
      return { dt, bad: fac.bad };
    });
  }

  /** Per-problem reductions at a trial point: cost, finiteness probes, ‖Jᵀr‖∞, max diag, the Cauchy ratio. */
  #reductions(s: GaussNewtonState, step: Tensor, wn: Tensor, ev: Evaluation): Tensor[] {
    const { atol, rtol } = this;
    const d = step.detach();
    const rn = ev.r.detach();
    const yRatio = d.abs().div(wn.detach().abs().mul(rtol).add(atol)).max(-1);
    const fRatio = rn.sub(s.r).abs().div(rn.abs().mul(rtol).add(atol)).max(-1);
    return [
      halfSquaredNorm(rn),
      ev.jtj.detach().sum([1, 2]),
      ev.jtr.detach().sum(-1),
      ev.jtr.detach().abs().max(-1),
      this.linearSolver.diagonal(ev.jtj).max(-1),
      yRatio.maximum(fRatio),
    ];
  }

  /** One iteration for every active problem; returns the tensors the caller may now dispose. */
  step<P>(pb: Problem<P>, s: GaussNewtonState): Tensor[] {
    const b = pb.b;
    const search = this.search;
    const lin = this.linearSolver;
    const eps = epsilonOf(pb.dtype);
    const m = s.r.shape[1];
    // Relative rounding level of the cost: at least √ε, since each rᵢ may cancel larger terms.
    const noise = Math.max(eps * (8 + Math.sqrt(m)), Math.sqrt(eps));
    const dir = this.#direction(pb, s);
    const dead: Tensor[] = [dir.dt, dir.bad];
    const verdict: (Verdict | null)[] = new Array(b).fill(null);
    const pending = Uint8Array.from(s.active);
    const alpha = new Float64Array(b); // this try's lengths
    const chosen = new Float64Array(b); // the accepted lengths (0: not moved)
    // Rows of the packed reductions at the accepted trial of each problem.
    const taken = new Float64Array(6 * b).fill(NaN);
    let accepted: { w: Tensor; ev: Evaluation } | null = null;
    for (let t = 0; t < search.tries && pending.some((p) => p === 1); t++) {
      for (let k = 0; k < b; k++) alpha[k] = pending[k] ? search.length(t) : 0;
      const trial = tidy(() => {
        const step = search.lazy
          ? dir.dt.mul(Tensor.fromBuffer(s.w.backend.fromHost(alpha, pb.dtype), [b, 1], pb.dtype))
          : dir.dt;
        const wTrial = s.w.sub(step);
        if (search.lazy) {
          const cost = noGrad(() => halfSquaredNorm(residualAt(pb, wTrial)).cast("float64").toTypedArray());
          return { wTrial, ev: null, packed: Float64Array.from([...cost, ...new Float64Array(5 * b).fill(0)]) };
        }
        const ev = evaluate(pb, wTrial);
        const packed = noGrad(() => {
          const d = step.detach();
          // The model's reduction −gᵀδ − ½δᵀJᵀJδ.
          const hd = lin.mv(s.jtj, d);
          const predicted = d.mul(s.jtr.detach().sub(hd.mul(0.5))).sum(-1);
          return stack([...this.#reductions(s, step, wTrial, ev), predicted, dir.bad])
            .cast("float64").toTypedArray();
        });
        return { wTrial, ev, packed };
      });
      const h = trial.packed;
      const badHost = t === 0 ? (search.lazy ? dir.bad.cast("float64").toTypedArray() : h.subarray(7 * b)) : null;
      for (let k = 0; k < b; k++) {
        if (!pending[k]) continue;
        if (t === 0) s.steps[k]++;
        if (badHost && badHost[k] > 0) {
          // The damped normal matrix was numerically singular: retry with the Tikhonov term from
          // the next iteration on (sticky), or stop when that is off or already in.
          pending[k] = 0;
          if (this.#relReg(pb) > 0 && !s.regularized[k]) s.regularized[k] = 1;
          else {
            s.status[k] = SINGULAR;
            s.active[k] = 0;
          }
          continue;
        }
        const trialCost = h[k];
        const finite = Number.isFinite(trialCost) && Number.isFinite(h[b + k]) && Number.isFinite(h[2 * b + k]);
        const v = search.judge(k, {
          cost: s.cost[k],
          trialCost,
          finite,
          predicted: search.lazy ? NaN : h[6 * b + k],
          noise,
          lastTry: t === search.tries - 1,
        }, s);
        if (v === "retry") continue;
        pending[k] = 0;
        verdict[k] = v;
        if (v === "accept") {
          chosen[k] = alpha[k];
          for (let row = 0; row < 6; row++) taken[row * b + k] = h[row * b + k];
        }
      }
      if (search.lazy) dead.push(trial.wTrial);
      else accepted = { w: trial.wTrial, ev: trial.ev! };
    }
    const accept = Float64Array.from(verdict, (v) => (v === "accept" ? 1 : 0));
    if (search.lazy && accept.some((a) => a === 1)) accepted = this.#evaluateAccepted(pb, s, dir.dt, chosen, taken);
    const candidates = new Uint8Array(b);
    for (let k = 0; k < b; k++) {
      const v = verdict[k];
      if (v === "nonfinite") {
        s.status[k] = NONFINITE;
        s.active[k] = 0;
      } else if (v === "exhausted") {
        candidates[k] = 1;
      } else if (v === "accept") {
        const before = s.cost[k];
        s.cost[k] = taken[k];
        s.gnorm[k] = taken[3 * b + k];
        s.maxDiag[k] = taken[4 * b + k];
        if (!(Number.isFinite(taken[b + k]) && Number.isFinite(taken[2 * b + k]))) {
          s.status[k] = NONFINITE; // J at the accepted point is not finite
          s.active[k] = 0;
        } else if (taken[5 * b + k] < 1 || (this.ftol > 0 && before - s.cost[k] <= this.ftol * before)) {
          candidates[k] = 1;
        }
      }
    }
    s.iterations++;
    const prevCoef = s.coef;
    s.coef = this.#upload(pb, s, accept);
    dead.push(prevCoef);
    if (accepted && accept.some((a) => a === 1)) dead.push(...this.#move(s, accepted, b, pb.differentiable));
    else if (accepted) dead.push(accepted.w, accepted.ev.r, accepted.ev.jtj, accepted.ev.jtr);
    if (candidates.some((c) => c === 1)) this.#stationarity(pb, s, candidates);
    return dead;
  }

  /**
   * J at the points a line search accepted (one evaluation for the batch at w − α·δ̃), with the
   * reductions there written into `taken` (the trial costs are kept: they are the same numbers).
   */
  #evaluateAccepted<P>(
    pb: Problem<P>,
    s: GaussNewtonState,
    dt: Tensor,
    alpha: Float64Array,
    taken: Float64Array,
  ): { w: Tensor; ev: Evaluation } {
    const b = pb.b;
    return tidy(() => {
      const step = dt.mul(Tensor.fromBuffer(s.w.backend.fromHost(alpha, pb.dtype), [b, 1], pb.dtype));
      const w = s.w.sub(step);
      const ev = evaluate(pb, w);
      const h = noGrad(() => stack(this.#reductions(s, step, w, ev)).cast("float64").toTypedArray());
      for (let k = 0; k < b; k++) {
        if (Number.isNaN(taken[k])) continue;
        for (let row = 1; row < 6; row++) taken[row * b + k] = h[row * b + k];
      }
      return { w, ev };
    });
  }

  /** Moves the accepted problems to their trial point; returns the tensors replaced. */
  #move(s: GaussNewtonState, at: { w: Tensor; ev: Evaluation }, b: number, diff: boolean): Tensor[] {
    const mask = s.coef.narrow(0, 0, 1).reshape([b]).gt(0);
    const pick = (x: Tensor, y: Tensor) => where(mask.reshape([b, ...new Array(x.ndim - 1).fill(1)]), x, y);
    const sel = (diff ? enableGrad : noGrad)(() => ({
      w: pick(at.w, s.w),
      jtj: pick(at.ev.jtj, s.jtj),
      jtr: pick(at.ev.jtr, s.jtr),
    }));
    const r = noGrad(() => pick(at.ev.r.detach(), s.r));
    const scale = s.scale
      ? noGrad(() => pick(s.scale!.maximum(this.linearSolver.diagonal(at.ev.jtj)), s.scale!))
      : s.scale;
    const dead = [s.w, s.r, s.jtj, s.jtr, mask, at.w, at.ev.r, at.ev.jtj, at.ev.jtr];
    if (scale !== s.scale) dead.push(s.scale!);
    s.w = sel.w;
    s.r = r;
    s.jtj = sel.jtj;
    s.jtr = sel.jtr;
    s.scale = scale;
    return dead;
  }

  /**
   * The termination test passed for the `candidates`: "converged" where the point is first-order
   * stationary — the Gauss–Newton step from it would change the residual by
   * ‖P_J r‖₂ = (gᵀ(JᵀJ)⁻¹g)^½ ≤ √M·atol + gtol·‖r‖₂ (the cosine of the angle between r and the
   * range of J is at most gtol, or P_J r is within the absolute tolerance) — else "stalled".
   * JᵀJ is scaled to a unit diagonal first (q is invariant to scaling the unknowns, and columns of
   * very different sizes then do not read as rank deficiency).
   */
  #stationarity<P>(pb: Problem<P>, s: GaussNewtonState, candidates: Uint8Array): void {
    const b = pb.b;
    const m = s.r.shape[1];
    const lin = this.linearSolver;
    const q = tidy(() =>
      noGrad(() => {
        const d = lin.diagonal(s.jtj);
        const inv = where(d.gt(0), d, 1).rsqrt();
        const a = lin.scale(s.jtj, inv);
        const g = s.jtr.detach().mul(inv);
        const f = regularizedFactor(lin, a, defaultRegularization(pb.n, pb.dtype));
        return g.mul(f.factorization.solve(f.matrix, g)).sum(-1).cast("float64").toTypedArray();
      })
    );
    for (let k = 0; k < b; k++) {
      if (!candidates[k]) continue;
      const bound = Math.sqrt(m) * this.atol + this.gtol * Math.sqrt(2 * s.cost[k]);
      s.status[k] = q[k] <= bound * bound ? CONVERGED : STALLED;
      s.active[k] = 0;
    }
  }
}

/**
 * Batched nonlinear least squares `min_w ½‖r(w; θ)‖²` for B independent problems (w `[B, N]`,
 * r `[B, M]`), solved by {@link LevenbergMarquardt} or {@link GaussNewton} and differentiated by
 * an {@link ImplicitAdjoint} (default) or an {@link UnrolledAdjoint}. The equations, termination
 * tests and conditioning rules are in the module doc of `mod.ts`.
 *
 * Everything that scales with M or N runs as tensor ops and backend primitives (so on the GPU
 * unchanged). Each iteration synchronises once: it reads a packed `[8, B]` tensor of per-problem
 * reductions, decides acceptance, damping and termination on the host, and uploads the `[3, B]`
 * accept mask and damping for the next step. Iterations run inside `tidy` and the previous
 * iterate is disposed, so memory stays bounded by one iteration's temporaries (implicit adjoint).
 *
 * @module
 */

import { enableGrad, gradients, isGradEnabled, noGrad, record } from "../tensor/autograd.ts";
import { arange, zeros } from "../tensor/creation.ts";
import { ArgumentError, AutodiffError, DTypeError, ShapeError } from "../tensor/errors.ts";
import { fmtShape } from "../tensor/shape.ts";
import { keep, tidy } from "../tensor/storage.ts";
import { Tensor } from "../tensor/tensor.ts";
import { where } from "../tensor/ops_elementwise.ts";
import { matmul } from "../tensor/ops_matmul.ts";
import { stack, transpose } from "../tensor/ops_shape.ts";
import { type Adjoint, ImplicitAdjoint } from "./adjoint.ts";
import { SolverError } from "./errors.ts";
import { type Factor, factoredSolve, rawCholesky, rawFactoredSolve } from "./factored.ts";
import { constantMatrix, diagonalView, epsilonOf, linalgOf } from "./internal.ts";
import { BasisResidual } from "./residual.ts";
import { type GaussNewton, type LeastSquaresSolver, LevenbergMarquardt } from "./solvers.ts";

/** How a problem of the batch ended. */
export type Status = "converged" | "max_steps" | "singular" | "nonfinite";

/**
 * The status names by code (codes are what the solver keeps on the device).
 *
 * @example
 * ```ts
 * import { STATUS } from "./least_squares.ts";
 * STATUS[0]; // "converged"
 * ```
 */
export const STATUS: readonly Status[] = ["converged", "max_steps", "singular", "nonfinite"];

const CONVERGED = 0;
const MAX_STEPS = 1;
const SINGULAR = 2;
const NONFINITE = 3;

/**
 * A batched residual: w `[B, N]` and the parameters θ give r `[B, M]`; row b of r must depend
 * only on row b of w (independent problems).
 *
 * @example
 * ```ts
 * import type { ResidualFn } from "./least_squares.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * const fit: ResidualFn<{ t: Tensor; y: Tensor }> = (w, p) =>
 *   w.narrow(1, 0, 1).mul(w.narrow(1, 1, 1).neg().mul(p.t).exp()).sub(p.y);
 * ```
 */
export type ResidualFn<P> = (w: Tensor, params: P) => Tensor;

/**
 * A caller-supplied Jacobian: J `[B, M, N]` at w (written in tensor ops if the unrolled adjoint is
 * used).
 *
 * @example
 * ```ts
 * import type { JacobianFn } from "./least_squares.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * const linear: JacobianFn<{ a: Tensor }> = { jacobian: (_w, p) => p.a };
 * ```
 */
export interface JacobianFn<P> {
  /** J `[B, M, N]` at w `[B, N]`. */
  jacobian: (w: Tensor, params: P) => Tensor;
}

/**
 * Caller-supplied normal equations: JᵀJ `[B, N, N]` and Jᵀr `[B, N]` at w, given the residual
 * there (when they are cheaper to form directly than J).
 *
 * @example
 * ```ts
 * import type { NormalEquationsFn } from "./least_squares.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * const ne: NormalEquationsFn<{ ata: Tensor; a: Tensor }> = {
 *   normalEquations: (_w, r, p) => ({ jtj: p.ata, jtr: p.a.transpose().matmul(r.unsqueeze(-1)).squeeze(-1) }),
 * };
 * ```
 */
export interface NormalEquationsFn<P> {
  /** `{ jtj: [B, N, N], jtr: [B, N] }` at w. */
  normalEquations: (w: Tensor, residual: Tensor, params: P) => { jtj: Tensor; jtr: Tensor };
}

/**
 * How J is obtained: "forward" (N Jacobian–vector products, sharing one forward and one reverse
 * pass; the default), "reverse" (M vector–Jacobian products: only for M < N), or a structured
 * {@link JacobianFn} / {@link NormalEquationsFn}. A {@link BasisResidual} brings its own.
 *
 * @example
 * ```ts
 * import type { JacobianOption } from "./least_squares.ts";
 * const j: JacobianOption<unknown> = "forward";
 * ```
 */
export type JacobianOption<P> = "forward" | "reverse" | JacobianFn<P> | NormalEquationsFn<P>;

/** Options of {@link leastSquares}. */
export interface LeastSquaresOptions<P> {
  /** The solver (default `new LevenbergMarquardt()`). */
  solver?: LeastSquaresSolver;
  /** How to differentiate the solution (default `new ImplicitAdjoint()`). */
  adjoint?: Adjoint;
  /** How to form J (default "forward"; ignored for a {@link BasisResidual}). */
  jacobian?: JacobianOption<P>;
  /** Throw a {@link SolverError} when any problem did not converge. Default false (read `status`). */
  throwOnFailure?: boolean;
}

/** What the adjoint's linear solve needed, per problem (filled when a backward pass runs). */
export interface AdjointReport {
  /** The Tikhonov fallback was added to the adjoint system. */
  regularized: boolean[];
  /** The adjoint system stayed singular (the problem's gradient is zero). */
  singular: boolean[];
}

/** The solution and per-problem diagnostics of {@link leastSquares}. */
export interface LeastSquaresResult {
  /** The solution w* `[B, N]`, differentiable with respect to the tensors in `params`. */
  value: Tensor;
  /**
   * How each problem ended: "converged", "max_steps", "singular" (the step's linear system was
   * singular even after regularization, or regularization is off) or "nonfinite" (NaN / Inf in
   * the residual or Jacobian at the start; the value is then the last finite iterate, w0 if none).
   */
  status: Status[];
  /** Iterations each problem ran. */
  steps: number[];
  /** ‖r(w*)‖₂ per problem. */
  residualNorm: number[];
  /** ‖J(w*)ᵀr(w*)‖∞ per problem. */
  gradientNorm: number[];
  /** Whether the Tikhonov fallback was needed in some step of the problem. */
  regularized: boolean[];
  /** The final damping λ per problem (Levenberg–Marquardt; the fixed μ for Gauss–Newton). */
  damping: number[];
  /** Iterations of the batched loop (the largest of `steps`). */
  iterations: number;
  /** Whether every problem converged. */
  converged: boolean;
  /** The adjoint's conditioning report, once a backward pass through `value` has run (else null). */
  adjointReport(): AdjointReport | null;
}

// --------------------------------------------------------------------------------------- helpers

function tensorsOf(tree: unknown, out: Tensor[] = [], seen = new Set<unknown>()): Tensor[] {
  if (tree instanceof Tensor) {
    if (!seen.has(tree)) {
      seen.add(tree);
      out.push(tree);
    }
  } else if (Array.isArray(tree)) {
    for (const t of tree) tensorsOf(t, out, seen);
  } else if (tree !== null && typeof tree === "object" && Object.getPrototypeOf(tree) === Object.prototype) {
    for (const t of Object.values(tree)) tensorsOf(t, out, seen);
  }
  return out;
}

/** Rebuilds arrays and plain objects of `tree` with each tensor replaced by `fn(tensor)`. */
function mapTensors<P>(tree: P, fn: (t: Tensor) => Tensor): P {
  const go = (x: unknown): unknown => {
    if (x instanceof Tensor) return fn(x);
    if (Array.isArray(x)) return x.map(go);
    if (x !== null && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
      return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, go(v)]));
    }
    return x;
  };
  return go(tree) as P;
}

/** A fresh autodiff input standing for `x`: gradients stop here and flow on to `x` when it is tracked. */
function entry(x: Tensor): Tensor {
  const e = x.detach();
  if (x.requiresGrad && isGradEnabled()) return record("input", e, [x], [], (g) => [g]);
  e.requiresGrad = true;
  return e;
}

/** `[B, N]` × column of ones at index j: row j of the identity, broadcast to the batch. */
function unitRows(j: number, b: number, n: number, like: Tensor): Tensor {
  return constantMatrix("eye", n, like.dtype, like.backend).narrow(0, j, 1).expand([b, n]);
}

function col(x: Tensor): Tensor {
  return x.unsqueeze(-1);
}

function uncol(x: Tensor): Tensor {
  return x.reshape(x.shape.slice(0, -1));
}

/** Per-problem (0/1) flags combined: a ∨ b. */
function or(a: Tensor, b: Tensor): Tensor {
  return a.maximum(b);
}

/** a ∧ b for 0/1 flags. */
function and(a: Tensor, b: Tensor): Tensor {
  return a.mul(b);
}

/** ¬a for 0/1 flags. */
function not(a: Tensor): Tensor {
  return a.neg().add(1);
}

function batched(x: Tensor, rank: number): Tensor {
  // [B] → [B, 1, …] with `rank` trailing singleton axes.
  return x.reshape([x.shape[0], ...new Array(rank).fill(1)]);
}

interface Evaluation {
  r: Tensor;
  jtj: Tensor;
  jtr: Tensor;
}

interface Problem<P> {
  residual: ResidualFn<P>;
  basis: BasisResidual<P> | null;
  params: P;
  jacobian: JacobianOption<P>;
  b: number;
  n: number;
  dtype: "float32" | "float64";
}

function checkResidual(op: string, r: unknown, b: number, dtype: string): Tensor {
  if (!(r instanceof Tensor)) throw new ArgumentError(op, "the residual function must return a Tensor");
  if (r.ndim !== 2 || r.shape[0] !== b) {
    throw new ShapeError(op, `the residual must be [B, M] with B = ${b}, got ${fmtShape(r.shape)}`);
  }
  if (r.dtype !== dtype) {
    throw new DTypeError(op, `the residual is ${r.dtype} but w0 is ${dtype}; use one dtype`);
  }
  return r;
}

function checkShape(op: string, what: string, t: Tensor, shape: number[]): void {
  if (!(t instanceof Tensor) || t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(
      op,
      `${what} must have shape ${fmtShape(shape)}, got ${t instanceof Tensor ? fmtShape(t.shape) : typeof t}`,
    );
  }
}

/**
 * How many row chunks to split the M-long reduction of JᵀJ into: a batched product of B tiny
 * N × N outputs over a long M keeps few multiprocessors busy, so for small B the rows are cut into
 * C chunks (C divides M, chunks of at least 512 rows) multiplied as B·C products and summed.
 */
function splitRows(b: number, m: number): number {
  const target = Math.min(Math.ceil(64 / b), Math.floor(m / 512));
  for (let c = target; c > 1; c--) if (m % c === 0) return c;
  return 1;
}

function normalEquations(j: Tensor, r: Tensor): { jtj: Tensor; jtr: Tensor } {
  const [b, m, n] = j.shape;
  const jtr = uncol(matmul(transpose(j), col(r)));
  const c = splitRows(b, m);
  if (c === 1 || !j.isContiguous) return { jtj: matmul(transpose(j), j), jtr };
  const jc = j.reshape([b * c, m / c, n]);
  return { jtj: matmul(transpose(jc), jc).reshape([b, c, n, n]).sum(1), jtr };
}

/**
 * Residual, JᵀJ and Jᵀr at w. `differentiable` keeps the graph (unrolled adjoint); otherwise the
 * results are constants and only internal autodiff is recorded.
 */
function evaluate<P>(pb: Problem<P>, feats: Tensor[] | null, w: Tensor, differentiable: boolean): Evaluation {
  const op = "leastSquares";
  const { b, n, params } = pb;
  const m0 = (r: Tensor) => checkResidual(op, r, b, pb.dtype);
  const constant = (t: Tensor) => (differentiable ? t : t.detach());
  if (pb.basis && feats) {
    const spec = pb.basis.spec;
    let r: Tensor;
    let d: (Tensor | null)[];
    const u = pb.basis.apply(feats, w);
    if (spec.derivative) {
      r = m0(spec.pointwise(u, params));
      d = spec.derivative(u, params);
    } else {
      const ul = u.map((t) => (differentiable ? entry(t) : t.detach().requireGrad()));
      r = m0(enableGrad(() => spec.pointwise(ul, params)));
      const ones = Tensor.fromBuffer(r.backend.full(r.size, 1, r.dtype), r.shape, r.dtype);
      d = r.requiresGrad
        ? gradients([r], [ones], ul, { createGraph: differentiable, retainGraph: differentiable })
        : ul.map(() => null);
    }
    let j: Tensor | null = null;
    feats.forEach((phi, k) => {
      const dk = d[k];
      if (!dk) return;
      checkShape(op, `∂F/∂u_${k}`, dk, [...r.shape]);
      const term = col(dk).mul(phi);
      j = j ? j.add(term) : term;
    });
    const jac = j ?? zeros([b, r.shape[1], n], { dtype: r.dtype, backend: r.backend });
    const ne = normalEquations(jac, r);
    return { r: constant(r), jtj: constant(ne.jtj), jtr: constant(ne.jtr) };
  }
  const jopt = pb.jacobian;
  if (typeof jopt === "object" && "jacobian" in jopt) {
    const r = m0(pb.residual(w, params));
    const j = jopt.jacobian(w, params);
    checkShape(op, "the Jacobian", j, [b, r.shape[1], n]);
    const ne = normalEquations(j, r);
    return { r: constant(r), jtj: constant(ne.jtj), jtr: constant(ne.jtr) };
  }
  if (typeof jopt === "object" && "normalEquations" in jopt) {
    const r = m0(pb.residual(w, params));
    const ne = jopt.normalEquations(w, r, params);
    checkShape(op, "JᵀJ", ne?.jtj, [b, n, n]);
    checkShape(op, "Jᵀr", ne?.jtr, [b, n]);
    return { r: constant(r), jtj: constant(ne.jtj), jtr: constant(ne.jtr) };
  }
  if (jopt !== "forward" && jopt !== "reverse") {
    throw new ArgumentError(op, `jacobian must be "forward", "reverse", { jacobian } or { normalEquations }`);
  }
  const wl = differentiable ? entry(w) : w.detach().requireGrad();
  const r = m0(enableGrad(() => pb.residual(wl, params)));
  const m = r.shape[1];
  let jac: Tensor;
  if (!r.requiresGrad) {
    jac = zeros([b, m, n], { dtype: r.dtype, backend: r.backend });
  } else if (jopt === "forward") {
    // One reverse pass with a symbolic cotangent u gives gw = Jᵀu (linear in u); differentiating
    // gw·e_j with respect to u gives J·e_j — N cheap passes over the same graph.
    const u = zeros(r.shape, { dtype: r.dtype, backend: r.backend }).requireGrad();
    const [gw] = gradients([r], [u], [wl], { createGraph: true, retainGraph: true });
    const cols: Tensor[] = [];
    for (let k = 0; k < n; k++) {
      const [c] = gw && gw.requiresGrad
        ? gradients([gw], [unitRows(k, b, n, r)], [u], { createGraph: differentiable, retainGraph: true })
        : [null];
      cols.push(c ?? zeros([b, m], { dtype: r.dtype, backend: r.backend }));
    }
    jac = stack(cols, -1);
  } else {
    const rows: Tensor[] = [];
    const idx = noGrad(() => arange(0, m, 1, { dtype: r.dtype, backend: r.backend }));
    for (let i = 0; i < m; i++) {
      const unit = noGrad(() => idx.eq(i).expand([b, m]));
      const [g] = gradients([r], [unit], [wl], { createGraph: differentiable, retainGraph: true });
      rows.push(g ?? zeros([b, n], { dtype: r.dtype, backend: r.backend }));
    }
    jac = stack(rows, 1);
  }
  const ne = normalEquations(jac, r);
  return { r: constant(r), jtj: constant(ne.jtj), jtr: constant(ne.jtr) };
}

function halfSquaredNorm(r: Tensor): Tensor {
  return noGrad(() => r.square().sum(-1).mul(0.5));
}

function defaultRegularization(n: number, dtype: "float32" | "float64"): number {
  return 10 * n * epsilonOf(dtype);
}

interface DampedFactor {
  /** The matrix that was factorised (A, or A + τI where regularized), for recorded solves. */
  matrix: Tensor;
  factor: Factor;
  regularized: Tensor;
  singular: Tensor;
}

/**
 * Cholesky of the damped normal matrices `a` `[B, N, N]` with the Tikhonov fallback: entries whose
 * factorisation fails (or whose pivot ratio is below n·ε) are re-factorised as `a + τ·s·I`, with
 * `s = max diag(a)` (1 when that is not positive).
 */
function dampedCholesky(a: Tensor, relReg: number): DampedFactor {
  const n = a.shape[a.ndim - 1];
  const tol = n * epsilonOf(a.dtype);
  const ad = a.detach();
  const first = rawCholesky(ad);
  const bad = noGrad(() => {
    const d = diagonalView(first.factor).square();
    const tiny = d.min(-1).le(d.max(-1).mul(tol));
    return or(first.info.gt(0).cast(a.dtype), tiny.cast(a.dtype));
  });
  // Re-factorise only when some problem needs it (reading one number; the common case pays a
  // synchronisation instead of a second factorisation).
  if (relReg <= 0 || noGrad(() => bad.max().item()) === 0) {
    const none = bad.mul(0);
    return {
      matrix: a,
      factor: { kind: "cholesky", l: first.factor },
      regularized: relReg <= 0 ? none : bad,
      singular: relReg <= 0 ? bad : none,
    };
  }
  const tau = noGrad(() => {
    const md = diagonalView(ad).max(-1);
    return where(md.gt(0), md, 1).mul(relReg).mul(bad);
  });
  const a2 = a.add(constantMatrix("eye", n, a.dtype, a.backend).mul(batched(tau, 2)));
  const second = rawCholesky(a2.detach());
  return {
    matrix: a2,
    factor: { kind: "cholesky", l: second.factor },
    regularized: bad,
    singular: noGrad(() => second.info.gt(0).cast(a.dtype)),
  };
}

/** LU of general (possibly indefinite) `a` `[B, N, N]` with the same Tikhonov fallback. */
function dampedLu(a: Tensor, relReg: number): DampedFactor {
  const n = a.shape[a.ndim - 1];
  const tol = n * epsilonOf(a.dtype);
  const linalg = linalgOf("leastSquares", a);
  const run = (m: Tensor) => {
    const r = linalg.lu(m, m.dtype);
    const luT = Tensor.fromBuffer(r.lu, [...m.shape], m.dtype);
    const piv = Tensor.fromBuffer(r.pivots, [...m.shape.slice(0, -1)], "int32");
    const info = Tensor.fromBuffer(r.info, m.shape.slice(0, -2), "int32");
    const bad = noGrad(() => {
      const d = diagonalView(luT).abs();
      return or(info.gt(0).cast(m.dtype), d.min(-1).le(d.max(-1).mul(tol)).cast(m.dtype));
    });
    return { f: { kind: "lu", lu: luT, pivots: piv } as Factor, bad };
  };
  const first = run(a.detach());
  if (relReg <= 0 || noGrad(() => first.bad.max().item()) === 0) {
    const none = first.bad.mul(0);
    return {
      matrix: a,
      factor: first.f,
      regularized: relReg <= 0 ? none : first.bad,
      singular: relReg <= 0 ? first.bad : none,
    };
  }
  const tau = noGrad(() => {
    const md = diagonalView(a.detach()).abs().max(-1);
    return where(md.gt(0), md, 1).mul(relReg).mul(first.bad);
  });
  const a2 = a.add(constantMatrix("eye", n, a.dtype, a.backend).mul(batched(tau, 2)));
  const second = run(a2.detach());
  const singular = noGrad(() => {
    const d = diagonalView((second.f as { lu: Tensor }).lu).abs();
    return d.min(-1).eq(0).cast(a.dtype);
  });
  return { matrix: a2, factor: second.f, regularized: first.bad, singular };
}

// ------------------------------------------------------------------------------------ the loop

/**
 * The iteration. Device tensors hold what scales with M or N (w, r, JᵀJ, Jᵀr, the Marquardt
 * scaling); the per-problem scalars (λ, ν, cost, status, step counts) live on the host. Each
 * iteration reads one packed `[8, B]` tensor of reductions to the host (its only synchronisation),
 * decides acceptance, damping and termination there in a few lines of plain code, and uploads one
 * `[2, B]` tensor (the accept mask and the next damping coefficients). This keeps the device
 * launches per iteration to the factorisation, the solve, the residual / Jacobian evaluation and a
 * handful of reductions, whatever the batch size.
 */
class Loop<P> {
  w: Tensor;
  r: Tensor;
  jtj: Tensor;
  jtr: Tensor;
  scale: Tensor | null;
  coef: Tensor;
  readonly lam: Float64Array;
  readonly nu: Float64Array;
  readonly cost: Float64Array;
  readonly gnorm: Float64Array;
  readonly maxDiag: Float64Array;
  readonly status: Int32Array;
  readonly steps: Int32Array;
  readonly active: Uint8Array;
  readonly regularized: Uint8Array;
  iterations = 0;
  readonly #pb: Problem<P>;
  readonly #solver: LeastSquaresSolver;
  readonly #feats: Tensor[] | null;
  readonly #differentiable: boolean;
  readonly #relReg: number;
  readonly #lm: boolean;
  readonly #marquardt: boolean;

  constructor(
    pb: Problem<P>,
    solver: LeastSquaresSolver,
    feats: Tensor[] | null,
    w0: Tensor,
    differentiable: boolean,
    relReg: number,
  ) {
    this.#pb = pb;
    this.#solver = solver;
    this.#feats = feats;
    this.#differentiable = differentiable;
    this.#relReg = relReg;
    this.#lm = solver.kind === "levenberg-marquardt";
    this.#marquardt = solver.kind === "levenberg-marquardt" && solver.scaling === "marquardt";
    const b = pb.b;
    this.lam = new Float64Array(b);
    this.nu = new Float64Array(b).fill(2);
    this.cost = new Float64Array(b);
    this.gnorm = new Float64Array(b);
    this.maxDiag = new Float64Array(b);
    this.status = new Int32Array(b).fill(MAX_STEPS);
    this.steps = new Int32Array(b);
    this.active = new Uint8Array(b);
    this.regularized = new Uint8Array(b);
    const first = tidy(() => {
      const ev = evaluate(pb, feats, w0, differentiable);
      const packed = noGrad(() =>
        stack([
          halfSquaredNorm(ev.r),
          ev.jtj.detach().sum([1, 2]),
          ev.jtr.detach().sum(-1),
          ev.jtr.detach().abs().max(-1),
          diagonalView(ev.jtj.detach()).max(-1),
        ]).cast("float64").toTypedArray()
      );
      const scale = this.#marquardt ? noGrad(() => diagonalView(ev.jtj.detach()).contiguous()) : null;
      return { ev, packed, scale };
    });
    this.w = differentiable ? w0 : w0.detach();
    this.r = differentiable ? first.ev.r.detach() : first.ev.r;
    this.jtj = first.ev.jtj;
    this.jtr = first.ev.jtr;
    this.scale = first.scale;
    const h = first.packed;
    for (let k = 0; k < b; k++) {
      const cost = h[k];
      const finite = Number.isFinite(cost) && Number.isFinite(h[b + k]) && Number.isFinite(h[2 * b + k]);
      this.cost[k] = cost;
      this.gnorm[k] = h[3 * b + k];
      this.maxDiag[k] = h[4 * b + k];
      if (!finite) {
        this.status[k] = NONFINITE;
        continue;
      }
      if (solver.gtol > 0 && this.gnorm[k] <= solver.gtol) {
        this.status[k] = CONVERGED;
        continue;
      }
      this.active[k] = 1;
      this.lam[k] = this.#lm
        ? (solver as LevenbergMarquardt).initialDamping * (this.maxDiag[k] > 0 ? this.maxDiag[k] : 1)
        : (solver as GaussNewton).damping;
    }
    this.coef = this.#upload(new Float64Array(b), this.#coefficients());
  }

  get anyActive(): boolean {
    return this.active.some((a) => a === 1);
  }

  /** The damping coefficient of the identity (or of D) per problem: λ (+ the Tikhonov term). */
  #coefficients(): Float64Array {
    const b = this.#pb.b;
    const out = new Float64Array(2 * b);
    for (let k = 0; k < b; k++) {
      const tau = this.regularized[k] ? this.#relReg * (this.maxDiag[k] > 0 ? this.maxDiag[k] : 1) : 0;
      out[k] = this.lam[k];
      out[b + k] = tau;
    }
    return out;
  }

  /** Uploads `[accept (B), λ (B), τ (B)]` as one `[3, B]` tensor of the working dtype. */
  #upload(accept: Float64Array, coef: Float64Array): Tensor {
    const b = this.#pb.b;
    const host = new Float64Array(3 * b);
    host.set(accept, 0);
    host.set(coef, b);
    return Tensor.fromBuffer(this.w.backend.fromHost(host, this.#pb.dtype), [3, b], this.#pb.dtype);
  }

  /** One iteration for every active problem; returns the tensors the caller may now dispose. */
  step(): Tensor[] {
    const pb = this.#pb;
    const { b, n } = pb;
    const solver = this.#solver;
    const diff = this.#differentiable;
    const out = tidy(() => {
      const eye = constantMatrix("eye", n, pb.dtype, this.w.backend);
      const lam = this.coef.narrow(0, 1, 1).reshape([b, 1, 1]);
      const tau = this.coef.narrow(0, 2, 1).reshape([b, 1, 1]);
      // A = JᵀJ + λD + τI, with D = I or diag(scale).
      const shift = this.#marquardt
        ? eye.mul(this.scale!.unsqueeze(-2)).mul(lam).add(eye.mul(tau))
        : eye.mul(noGrad(() => lam.add(tau)));
      const a = this.jtj.add(shift);
      const { factor, info } = rawCholesky(a.detach());
      const piv = noGrad(() => diagonalView(factor).square());
      // δ̃ = A⁻¹ Jᵀr, w⁺ = w − δ̃ (δ = −δ̃).
      let dt = uncol(factoredSolve(a, { kind: "cholesky", l: factor }, col(this.jtr), false));
      if (diff) dt = where(noGrad(() => dt.sub(dt).eq(0)), dt, 0); // keep NaN out of the recorded graph
      const wTrial = this.w.sub(dt);
      const ev = evaluate(pb, this.#feats, wTrial, diff);
      const packed = noGrad(() => {
        const d = dt.detach();
        const jtj = this.jtj.detach();
        const jtr = this.jtr.detach();
        const hd = uncol(matmul(jtj, col(d)));
        const predicted = d.mul(jtr.sub(hd.mul(0.5))).sum(-1); // −gᵀδ − ½δᵀJᵀJδ
        const wn = wTrial.detach();
        const rn = ev.r.detach();
        const { atol, rtol } = solver;
        const yRatio = d.abs().div(wn.abs().mul(rtol).add(atol)).max(-1);
        const fRatio = rn.sub(this.r).abs().div(rn.abs().mul(rtol).add(atol)).max(-1);
        const tol = n * epsilonOf(pb.dtype);
        const bad = info.gt(0).cast(pb.dtype).maximum(piv.min(-1).le(piv.max(-1).mul(tol)).cast(pb.dtype));
        return stack([
          halfSquaredNorm(rn),
          ev.jtj.detach().sum([1, 2]),
          ev.jtr.detach().sum(-1),
          ev.jtr.detach().abs().max(-1),
          diagonalView(ev.jtj.detach()).max(-1),
          predicted,
          yRatio.maximum(fRatio),
          bad,
        ]).cast("float64").toTypedArray();
      });
      return { wTrial, ev, packed };
    });
    const h = out.packed;
    const accept = new Float64Array(b);
    // Relative rounding level of the cost: at least √ε, since each rᵢ may cancel larger terms.
    const eps = epsilonOf(pb.dtype);
    const noiseLevel = Math.max(eps * (8 + Math.sqrt(this.r.shape[1])), Math.sqrt(eps));
    let anyAccepted = false;
    for (let k = 0; k < b; k++) {
      if (!this.active[k]) continue;
      this.steps[k]++;
      const cost = h[k];
      const finite = Number.isFinite(cost) && Number.isFinite(h[b + k]) && Number.isFinite(h[2 * b + k]);
      const predicted = h[5 * b + k];
      const cauchy = h[6 * b + k] < 1;
      const bad = h[7 * b + k] > 0;
      if (bad) {
        // The damped normal matrix was numerically singular: retry with the Tikhonov term from the
        // next iteration on (sticky), or stop when that is off or already in.
        if (this.#relReg > 0 && !this.regularized[k]) {
          this.regularized[k] = 1;
        } else {
          this.status[k] = SINGULAR;
          this.active[k] = 0;
        }
        continue;
      }
      let ok: boolean;
      if (this.#lm) {
        const actual = this.cost[k] - cost;
        const noise = noiseLevel * Math.max(this.cost[k], finite ? cost : 0);
        const atNoise = finite && Math.abs(actual) <= noise && predicted <= noise;
        const rho = atNoise ? 1 : predicted > 0 ? actual / predicted : actual >= 0 ? 1 : -1;
        ok = finite && (actual >= 0 || atNoise);
        if (ok) {
          const t = 2 * rho - 1;
          this.lam[k] = Math.min(1e30, Math.max(1e-30, this.lam[k] * Math.max(1 / 3, 1 - t * t * t)));
          this.nu[k] = 2;
        } else {
          this.lam[k] = Math.min(1e30, this.lam[k] * this.nu[k]);
          this.nu[k] = Math.min(1e8, this.nu[k] * 2);
        }
      } else {
        ok = finite;
        if (!finite) {
          this.status[k] = NONFINITE;
          this.active[k] = 0;
        }
      }
      if (!ok) continue;
      accept[k] = 1;
      anyAccepted = true;
      this.cost[k] = cost;
      this.gnorm[k] = h[3 * b + k];
      this.maxDiag[k] = h[4 * b + k];
      if (cauchy || (solver.gtol > 0 && this.gnorm[k] <= solver.gtol)) {
        this.status[k] = CONVERGED;
        this.active[k] = 0;
      }
    }
    this.iterations++;
    const prevCoef = this.coef;
    this.coef = this.#upload(accept, this.#coefficients());
    const dead: Tensor[] = [prevCoef];
    if (anyAccepted) {
      const mask = this.coef.narrow(0, 0, 1).reshape([b]).gt(0);
      const pick = (x: Tensor, y: Tensor) => where(mask.reshape([b, ...new Array(x.ndim - 1).fill(1)]), x, y);
      const sel = (diff ? enableGrad : noGrad)(() => ({
        w: pick(out.wTrial, this.w),
        jtj: pick(out.ev.jtj, this.jtj),
        jtr: pick(out.ev.jtr, this.jtr),
      }));
      const r = noGrad(() => pick(out.ev.r.detach(), this.r));
      const scale = this.#marquardt
        ? noGrad(() => pick(this.scale!.maximum(diagonalView(out.ev.jtj.detach())), this.scale!))
        : this.scale;
      dead.push(this.w, this.r, this.jtj, this.jtr, mask);
      if (scale !== this.scale) dead.push(this.scale!);
      this.w = sel.w;
      this.r = r;
      this.jtj = sel.jtj;
      this.jtr = sel.jtr;
      this.scale = scale;
    }
    dead.push(out.wTrial, out.ev.r, out.ev.jtj, out.ev.jtr);
    return dead;
  }
}

// ------------------------------------------------------------------------------------ the solve

/**
 * Solves `min_w ½‖r(w; θ)‖²` for a batch of independent problems from w0 `[B, N]`, returning the
 * solution (differentiable with respect to every tensor in `params` through the chosen adjoint)
 * and per-problem status, iteration counts and residual norms. Tensors the residual reads that
 * should receive gradients must be passed in `params` (a tensor, or arrays / plain objects of
 * them); the implicit adjoint raises an `AutodiffError` when the residual reads other tensors that
 * require grad.
 *
 * @example
 * ```ts
 * import { leastSquares, LevenbergMarquardt } from "./mod.ts";
 * import { tensor, type Tensor } from "../tensor/mod.ts";
 * // Fit y = a·exp(−k t) for two data sets at once.
 * const t = tensor([[0, 1, 2, 3]]);
 * const y = tensor([[2, 1.2131, 0.7358, 0.4463], [1, 0.3679, 0.1353, 0.0498]]).requireGrad();
 * const fit = (w: Tensor, p: { y: Tensor }) =>
 *   w.narrow(1, 0, 1).mul(w.narrow(1, 1, 1).neg().mul(t).exp()).sub(p.y);
 * const sol = leastSquares(fit, tensor([[1, 1], [1, 1]]), { y }, { solver: new LevenbergMarquardt() });
 * sol.status; // ["converged", "converged"]
 * sol.value.sum().backward(); // y.grad by the implicit function theorem
 * ```
 */
export function leastSquares<P>(
  residual: ResidualFn<P> | BasisResidual<P>,
  w0: Tensor,
  params: P,
  options: LeastSquaresOptions<P> = {},
): LeastSquaresResult {
  const op = "leastSquares";
  const solver = options.solver ?? new LevenbergMarquardt();
  const adjoint = options.adjoint ?? new ImplicitAdjoint();
  if (solver?.kind !== "levenberg-marquardt" && solver?.kind !== "gauss-newton") {
    throw new ArgumentError(op, "solver must be a LevenbergMarquardt or GaussNewton instance");
  }
  if (adjoint?.kind !== "implicit" && adjoint?.kind !== "unrolled") {
    throw new ArgumentError(op, "adjoint must be an ImplicitAdjoint or UnrolledAdjoint instance");
  }
  if (!(w0 instanceof Tensor)) throw new ArgumentError(op, "w0 must be a Tensor");
  if (w0.ndim !== 2) throw new ShapeError(op, `w0 must be [B, N] (B problems, N unknowns), got ${fmtShape(w0.shape)}`);
  if (w0.dtype !== "float32" && w0.dtype !== "float64") {
    throw new DTypeError(op, `w0 must be float32 or float64, got ${w0.dtype}`);
  }
  linalgOf(op, w0);
  const basis = residual instanceof BasisResidual ? residual : null;
  if (!basis && typeof residual !== "function") {
    throw new ArgumentError(op, "residual must be a function (w, params) => Tensor or a BasisResidual");
  }
  const [b, n] = w0.shape;
  const pb: Problem<P> = {
    residual: basis ? (w, p) => basis.residual(w, p) : residual as ResidualFn<P>,
    basis,
    params,
    jacobian: options.jacobian ?? "forward",
    b,
    n,
    dtype: w0.dtype,
  };
  const unrolled = adjoint.kind === "unrolled";
  const relReg = solver.regularization ?? defaultRegularization(n, w0.dtype);
  for (const t of tensorsOf(params)) w0.sameBackend(op, t);
  // The implicit adjoint iterates on constants: the residual sees detached parameters, so the
  // internal Jacobian passes never walk into (or record onto) the caller's graph.
  const loopProblem: Problem<P> = unrolled ? pb : { ...pb, params: mapTensors(params, (t) => t.detach()) };
  const feats = basis
    ? (unrolled ? basis.features(params, n) : noGrad(() => basis.features(loopProblem.params, n)))
    : null;
  if (feats) {
    for (const phi of feats) {
      w0.sameBackend(op, phi);
      if (phi.ndim === 3 && phi.shape[0] !== b) {
        throw new ShapeError(op, `feature of shape ${fmtShape(phi.shape)} does not match B = ${b} problems`);
      }
      if (phi.dtype !== w0.dtype) throw new DTypeError(op, `features are ${phi.dtype} but w0 is ${w0.dtype}`);
    }
  }

  const mode = <T>(fn: () => T): T => (unrolled ? enableGrad(fn) : noGrad(fn));
  const loop = mode(() => new Loop(loopProblem, solver, feats, w0, unrolled, relReg));
  while (loop.anyActive && loop.iterations < solver.maxSteps) {
    const dead = mode(() => loop.step());
    // The implicit adjoint needs none of the previous iterates (the unrolled one keeps its graph).
    if (!unrolled) { for (const t of dead) if (t !== loop.w && t !== loop.jtj && t !== loop.jtr) t.dispose(); }
  }
  loop.coef.dispose();
  const iterations = loop.iterations;
  const host = [
    Array.from(loop.status),
    Array.from(loop.steps),
    Array.from(loop.cost, (c) => Math.sqrt(2 * c)),
    Array.from(loop.gnorm),
    Array.from(loop.regularized),
    Array.from(loop.lam),
  ];
  const row = (k: number) => host[k];
  const status = row(0).map((c) => STATUS[c] ?? "nonfinite");
  let reportFlags: Tensor | null = null;
  let value: Tensor;
  if (unrolled) {
    value = loop.w;
  } else {
    value = implicitValue(pb, adjoint as ImplicitAdjoint, loop.w, loop.jtj, loop.status, relReg, (f) => {
      reportFlags?.dispose();
      reportFlags = f;
    });
    for (const t of [loop.r, loop.jtr, loop.scale]) t?.dispose();
    if (!value.node) { for (const t of [loop.w, loop.jtj]) t.dispose(); // no backward pass will read them
     }
  }
  const adjointReport = (): AdjointReport | null => {
    const f = reportFlags as Tensor | null;
    if (!f || f.disposed) return null;
    const flags = f.toTypedArray();
    return {
      regularized: Array.from(flags.subarray(0, b), (x) => x > 0),
      singular: Array.from(flags.subarray(b, 2 * b), (x) => x > 0),
    };
  };
  const result: LeastSquaresResult = {
    value,
    status,
    steps: row(1),
    residualNorm: row(2),
    gradientNorm: row(3),
    regularized: row(4).map((v) => v > 0),
    damping: row(5),
    iterations,
    converged: status.every((s) => s === "converged"),
    adjointReport,
  };
  if (options.throwOnFailure && !result.converged) {
    const failed = status.flatMap((s, i) => (s === "converged" ? [] : [`problem ${i}: ${s}`]));
    throw new SolverError(
      op,
      status,
      `${failed.length} of ${b} problems did not converge (${failed.slice(0, 8).join(", ")}${
        failed.length > 8 ? ", …" : ""
      }) after ${iterations} iterations`,
    );
  }
  return result;
}

/** Options of {@link implicitSolution}. */
export interface ImplicitSolutionOptions<P> {
  /** The implicit adjoint (default `new ImplicitAdjoint()`). */
  adjoint?: ImplicitAdjoint;
  /** How to form J (default "forward"; ignored for a {@link BasisResidual}). */
  jacobian?: JacobianOption<P>;
  /** The relative Tikhonov fallback of the adjoint system (default: as {@link leastSquares}). */
  regularization?: number;
}

/**
 * The implicit-function node of a solution found elsewhere: returns `wStar` `[B, N]` unchanged in
 * value, as a tensor whose backward pass is the implicit adjoint of `min_w ½‖r(w; θ)‖²` at w*
 * (the Jacobian is formed once there; no iterations run). This is how one batched forward solve is
 * split into independent backward pieces: solve all problems at once without recording, then give
 * each piece its own node over its own slice of the parameters. The status it reports is
 * "max_steps" for every problem (it never iterates); `residualNorm` and `gradientNorm` are at w*.
 *
 * @example
 * ```ts
 * import { implicitSolution, leastSquares } from "./mod.ts";
 * import { noGrad, tensor, type Tensor } from "../tensor/mod.ts";
 * const y = tensor([[1, 2, 3]], { dtype: "float64" }).requireGrad();
 * const r = (w: Tensor, p: { y: Tensor }) => w.mul(w).sub(p.y); // w² = y
 * const wStar = noGrad(() => leastSquares(r, tensor([[1, 1, 1]], { dtype: "float64" }), { y }).value);
 * const w = implicitSolution(r, wStar, { y }).value;
 * w.sum().backward(); // y.grad ≈ 1 / (2√y)
 * ```
 */
export function implicitSolution<P>(
  residual: ResidualFn<P> | BasisResidual<P>,
  wStar: Tensor,
  params: P,
  options: ImplicitSolutionOptions<P> = {},
): LeastSquaresResult {
  const adjoint = options.adjoint ?? new ImplicitAdjoint();
  if (adjoint?.kind !== "implicit") {
    throw new ArgumentError("implicitSolution", "adjoint must be an ImplicitAdjoint instance (nothing to unroll)");
  }
  if (!(wStar instanceof Tensor)) throw new ArgumentError("implicitSolution", "wStar must be a Tensor");
  const solver = new LevenbergMarquardt({ maxSteps: 0, regularization: options.regularization });
  return leastSquares(residual, wStar.detach(), params, { solver, adjoint, jacobian: options.jacobian });
}

// ------------------------------------------------------------------------------ implicit adjoint

/** Whether the graph of `out` reads tensors that require grad other than through `stops`. */
function readsOtherTensors(out: Tensor, stops: Set<Tensor>): boolean {
  const seen = new Set<Tensor>();
  const stack: Tensor[] = [out];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || !t.requiresGrad) continue;
    seen.add(t);
    if (stops.has(t)) continue;
    if (!t.node) return true;
    stack.push(...t.node.inputs);
  }
  return false;
}

function implicitValue<P>(
  pb: Problem<P>,
  adjoint: ImplicitAdjoint,
  wStar: Tensor,
  jtjStar: Tensor,
  status: Int32Array,
  relRegSolver: number,
  report: (flags: Tensor) => void,
): Tensor {
  const targets = tensorsOf(pb.params).filter((t) => t.requiresGrad);
  const out = wStar.detach();
  if (targets.length === 0 || !isGradEnabled()) return out;
  const okHost = Float64Array.from(status, (c) => (c <= MAX_STEPS ? 1 : 0));
  const ok = Tensor.fromBuffer(wStar.backend.fromHost(okHost, wStar.dtype), [okHost.length], wStar.dtype);
  const relReg = adjoint.regularization ?? relRegSolver;
  const { b, n, params } = pb;
  const backward = (wbar: Tensor, needs: readonly boolean[]): (Tensor | null)[] => {
    const outer = isGradEnabled();
    return tidy(() => {
      const okRows = batched(ok, 1).gt(0);
      const wb = noGrad(() => where(okRows, wbar, 0));
      // Local stand-ins for the parameters: gradients are taken with respect to them and handed to
      // the real parameters by this node, so no pass here walks into the caller's graph.
      const standIns = new Map<Tensor, Tensor>();
      const local = mapTensors(params, (t) => {
        let s = standIns.get(t);
        if (!s) {
          s = t.detach();
          if (t.requiresGrad) s.requiresGrad = true;
          standIns.set(t, s);
        }
        return s;
      });
      const leaves = targets.map((t) => standIns.get(t)!);
      const wl = wStar.detach().requireGrad();
      const r = enableGrad(() => pb.residual(wl, local));
      const stops = new Set<Tensor>([wl, ...leaves]);
      if (readsOtherTensors(r, stops)) {
        throw new AutodiffError(
          "leastSquares",
          "the residual reads tensors that require grad but are not in params; the implicit adjoint only " +
            "routes gradients to tensors passed in params (pass them there, or use UnrolledAdjoint)",
        );
      }
      const eye = constantMatrix("eye", n, wStar.dtype, wStar.backend);
      let gs: (Tensor | null)[];
      let fac: DampedFactor;
      if (adjoint.hessian === "gauss-newton") {
        const a = noGrad(() => (adjoint.damping > 0 ? jtjStar.add(eye.mul(adjoint.damping)) : jtjStar));
        fac = noGrad(() => dampedCholesky(a, relReg));
        const v = noGrad(() =>
          where(and(ok, not(fac.singular)).unsqueeze(-1).gt(0), uncol(rawFactoredSolve(fac.factor, col(wb), false)), 0)
        );
        // Jv by the transpose trick on r's graph, then θ̄ = −(∂r/∂θ)ᵀ(J v).
        const u = zeros(r.shape, { dtype: r.dtype, backend: r.backend }).requireGrad();
        const [gw] = r.requiresGrad ? gradients([r], [u], [wl], { createGraph: true, retainGraph: true }) : [null];
        const [jv] = gw && gw.requiresGrad ? gradients([gw], [v], [u], { retainGraph: true }) : [null];
        const c = jv ? noGrad(() => where(okRows, jv, 0).neg()) : null;
        gs = c && r.requiresGrad
          ? gradients([r], [c], leaves, { createGraph: outer, retainGraph: true })
          : targets.map(() => null);
      } else {
        // Exact Hessian of L = ½‖r‖² by N Hessian–vector products, then θ̄ = −∂/∂θ (vᵀ ∇_w L).
        const loss = enableGrad(() => r.square().sum().mul(0.5));
        const one = Tensor.fromBuffer(loss.backend.full(1, 1, loss.dtype), [], loss.dtype);
        const [gw] = loss.requiresGrad
          ? gradients([loss], [one], [wl], { createGraph: true, retainGraph: true })
          : [null];
        if (!gw || !gw.requiresGrad) {
          return targets.map(() => null);
        }
        const cols: Tensor[] = [];
        for (let j = 0; j < n; j++) {
          const [h] = gradients([gw], [unitRows(j, b, n, gw)], [wl], { retainGraph: true });
          cols.push(h ?? zeros([b, n], { dtype: gw.dtype, backend: gw.backend }));
        }
        const h = noGrad(() => stack(cols, -1));
        const a = noGrad(() => (adjoint.damping > 0 ? h.add(eye.mul(adjoint.damping)) : h));
        fac = noGrad(() => dampedLu(a, relReg));
        const v = noGrad(() =>
          where(and(ok, not(fac.singular)).unsqueeze(-1).gt(0), uncol(rawFactoredSolve(fac.factor, col(wb), false)), 0)
        );
        gs = gradients([gw], [noGrad(() => v.neg())], leaves, { createGraph: outer, retainGraph: true });
      }
      report(keep(noGrad(() => stack([fac.regularized, fac.singular]))));
      return targets.map((_, i) => (needs[i] ? gs[i] : null));
    });
  };
  return record("leastSquares", out, targets, [wStar, jtjStar, ok], backward);
}

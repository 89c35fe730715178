/**
 * What the iteration evaluates at a point: the residual, and J through its normal equations (JᵀJ,
 * Jᵀr) — by forward or reverse autodiff, from a caller's J or normal equations, or from the
 * structure of a {@link BasisResidual}. Also the residual's types and the tree helpers shared by
 * the solve and its adjoint.
 *
 * @module
 */

import { enableGrad, gradients, isGradEnabled, noGrad, record } from "../tensor/autograd.ts";
import { arange, zeros } from "../tensor/creation.ts";
import { ArgumentError, DTypeError, ShapeError } from "../tensor/errors.ts";
import { fmtShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { matmul } from "../tensor/ops_matmul.ts";
import { stack, transpose } from "../tensor/ops_shape.ts";
import { constantMatrix } from "./internal.ts";
import type { BasisResidual } from "./residual.ts";

/**
 * A batched residual: w `[B, N]` and the parameters θ give r `[B, M]`; row b of r must depend
 * only on row b of w (independent problems).
 *
 * @example
 * ```ts
 * import type { ResidualFn } from "./evaluate.ts";
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
 * import type { JacobianFn } from "./evaluate.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * const linear: JacobianFn<{ a: Tensor }> = { jacobian: (_w, p) => p.a };
 * ```
 */
export interface JacobianFn<P> {
  /** J `[B, M, N]` at w `[B, N]`. */
  jacobian: (w: Tensor, params: P) => Tensor;
}

/**
 * Caller-supplied normal equations: JᵀJ and Jᵀr `[B, N]` at w, given the residual there (when they
 * are cheaper to form directly than J). JᵀJ is stored as the solver's linear solver takes it:
 * `[B, N, N]` for the dense ones, the band `[B, N, b + 1]` for a `BandedCholesky`.
 *
 * @example
 * ```ts
 * import type { NormalEquationsFn } from "./evaluate.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * const ne: NormalEquationsFn<{ ata: Tensor; a: Tensor }> = {
 *   normalEquations: (_w, r, p) => ({ jtj: p.ata, jtr: p.a.transpose().matmul(r.unsqueeze(-1)).squeeze(-1) }),
 * };
 * ```
 */
export interface NormalEquationsFn<P> {
  /** `{ jtj, jtr: [B, N] }` at w. */
  normalEquations: (w: Tensor, residual: Tensor, params: P) => { jtj: Tensor; jtr: Tensor };
}

/**
 * How J is obtained: "forward" (N Jacobian–vector products, sharing one forward and one reverse
 * pass; the default), "reverse" (M vector–Jacobian products: only for M < N), or a structured
 * {@link JacobianFn} / {@link NormalEquationsFn}. A {@link BasisResidual} brings its own.
 *
 * @example
 * ```ts
 * import type { JacobianOption } from "./evaluate.ts";
 * const j: JacobianOption<unknown> = "forward";
 * ```
 */
export type JacobianOption<P> = "forward" | "reverse" | JacobianFn<P> | NormalEquationsFn<P>;

/**
 * The distinct tensors of a tree of arrays and plain objects.
 *
 * @example
 * ```ts
 * import { tensorsOf } from "./evaluate.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const t = tensor([1]);
 * tensorsOf({ a: t, b: [t, 2] }).length; // 1
 * ```
 */
export function tensorsOf(tree: unknown, out: Tensor[] = [], seen: Set<unknown> = new Set()): Tensor[] {
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

/**
 * Rebuilds arrays and plain objects of `tree` with each tensor replaced by `fn(tensor)`.
 *
 * @example
 * ```ts
 * import { mapTensors } from "./evaluate.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const detached = mapTensors({ a: tensor([1]).requireGrad() }, (t) => t.detach());
 * ```
 */
export function mapTensors<P>(tree: P, fn: (t: Tensor) => Tensor): P {
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

/**
 * A fresh autodiff input standing for `x`: gradients stop here and flow on to `x` when it is
 * tracked. An untracked `x` gives a leaf, listed in `leaves` so that it can stop requiring grad once
 * the iteration is over (no gradient is then accumulated, or kept, for it).
 */
function entry(x: Tensor, leaves: Tensor[]): Tensor {
  const e = x.detach();
  if (x.requiresGrad && isGradEnabled()) return record("input", e, [x], [], (g) => [g]);
  e.requiresGrad = true;
  leaves.push(e);
  return e;
}

/**
 * Row j of the identity, broadcast to `[B, N]`.
 *
 * @example
 * ```ts
 * import { unitRows } from "./evaluate.ts";
 * import { zeros } from "../tensor/mod.ts";
 * unitRows(1, 2, 3, zeros([1])).toArray(); // [[0, 1, 0], [0, 1, 0]]
 * ```
 */
export function unitRows(j: number, b: number, n: number, like: Tensor): Tensor {
  return constantMatrix("eye", n, like.dtype, like.backend).narrow(0, j, 1).expand([b, n]);
}

function col(x: Tensor): Tensor {
  return x.unsqueeze(-1);
}

function uncol(x: Tensor): Tensor {
  return x.reshape(x.shape.slice(0, -1));
}

/**
 * The residual, JᵀJ (in the linear solver's storage) and Jᵀr at a point (Optimistix's
 * `FunctionInfo.ResidualJac`, with J carried as its normal equations).
 *
 * @example
 * ```ts
 * import type { Evaluation } from "./evaluate.ts";
 * const cost = (e: Evaluation) => e.r.square().sum(-1).mul(0.5);
 * ```
 */
export interface Evaluation {
  /** r `[B, M]`. */
  r: Tensor;
  /** JᵀJ, stored as the linear solver takes it. */
  jtj: Tensor;
  /** Jᵀr `[B, N]`. */
  jtr: Tensor;
}

/**
 * A batch of least-squares problems as the iteration sees them.
 *
 * @example
 * ```ts
 * import type { Problem } from "./evaluate.ts";
 * const size = (p: Problem<unknown>) => `${p.b} problems of ${p.n} unknowns`;
 * ```
 */
export interface Problem<P> {
  /** r(w; θ). */
  residual: ResidualFn<P>;
  /** The structured form, when the residual is one. */
  basis: BasisResidual<P> | null;
  /** θ (detached where the implicit adjoint iterates). */
  params: P;
  /** How J is formed. */
  jacobian: JacobianOption<P>;
  /** Number of problems. */
  b: number;
  /** Unknowns per problem. */
  n: number;
  /** The working dtype. */
  dtype: "float32" | "float64";
  /** The storage shape of JᵀJ (the linear solver's). */
  gramShape: number[];
  /** The linear features of a structured residual (null otherwise). */
  feats: Tensor[] | null;
  /** Several features stacked `[B, M, K, N]` once per solve (see {@link stackFeatures}), else null. */
  stacked: Tensor | null;
  /** Whether the iteration is recorded (unrolled adjoint). */
  differentiable: boolean;
  /** Autodiff leaves made for untracked inputs (see `entry`). */
  leaves: Tensor[];
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
 * The K features of a structured residual stacked `[B, M, K, N]` (a feature shared by every problem,
 * `[M, N]`, repeated per problem), so that one matmul gives every `u_k = Φ_k·w` and one batched
 * product per row gives J: with the stacking of the K derivatives and a transposing copy, K + 5
 * launches per evaluation instead of 3K − 1, and J's assembly reads the features once instead of
 * writing and reading K partial sums. Null for a single feature.
 *
 * @example
 * ```ts
 * import { stackFeatures } from "./evaluate.ts";
 * import { ones } from "../tensor/mod.ts";
 * stackFeatures([ones([2, 5, 3]), ones([5, 3])], 2)!.shape; // [2, 5, 2, 3]
 * ```
 */
export function stackFeatures(feats: readonly Tensor[], b: number): Tensor | null {
  if (feats.length < 2) return null;
  return stack(feats.map((phi) => (phi.ndim === 2 ? phi.unsqueeze(0).expand([b, ...phi.shape]) : phi)), 2);
}

/** Every `u_k = Φ_k·w` `[B, M]` from the stacked features `[B, M, K, N]`: one matmul, one transposing copy. */
function featureValues(stacked: Tensor, w: Tensor): Tensor[] {
  const [b, m, k, n] = stacked.shape;
  const u = matmul(stacked.reshape([b, m * k, n]), col(w)).reshape([b, m, k]).permute([2, 0, 1]).contiguous();
  return Array.from({ length: k }, (_, i) => u.narrow(0, i, 1).squeeze(0));
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
 * The residual alone at w (a constant), for searches that judge a trial point by its cost.
 *
 * @example
 * ```ts
 * import { residualAt } from "./evaluate.ts";
 * // residualAt(problem, wTrial).square().sum(-1)
 * ```
 */
export function residualAt<P>(pb: Problem<P>, w: Tensor): Tensor {
  return checkResidual("leastSquares", noGrad(() => pb.residual(w, pb.params)), pb.b, pb.dtype);
}

/**
 * Residual, JᵀJ and Jᵀr at w. A differentiable problem keeps the graph (unrolled adjoint);
 * otherwise the results are constants and only internal autodiff is recorded.
 *
 * @example
 * ```ts
 * import { evaluate } from "./evaluate.ts";
 * // const { r, jtj, jtr } = evaluate(problem, w);
 * ```
 */
export function evaluate<P>(pb: Problem<P>, w: Tensor): Evaluation {
  const op = "leastSquares";
  const { b, n, params, feats, differentiable } = pb;
  const m0 = (r: Tensor) => checkResidual(op, r, b, pb.dtype);
  const constant = (t: Tensor) => (differentiable ? t : t.detach());
  if (pb.basis && feats) {
    const spec = pb.basis.spec;
    let r: Tensor;
    let d: (Tensor | null)[];
    const u = pb.stacked ? featureValues(pb.stacked, w) : pb.basis.apply(feats, w);
    if (spec.derivative) {
      r = m0(spec.pointwise(u, params));
      d = spec.derivative(u, params);
    } else {
      const ul = u.map((t) => (differentiable ? entry(t, pb.leaves) : t.detach().requireGrad()));
      r = m0(enableGrad(() => spec.pointwise(ul, params)));
      const ones = Tensor.fromBuffer(r.backend.full(r.size, 1, r.dtype), r.shape, r.dtype);
      d = r.requiresGrad
        ? gradients([r], [ones], ul, { createGraph: differentiable, retainGraph: differentiable })
        : ul.map(() => null);
    }
    d.forEach((dk, k) => dk && checkShape(op, `∂F/∂u_${k}`, dk, [...r.shape]));
    let j: Tensor | null = null;
    if (pb.stacked && d.some((dk) => dk)) {
      // J_m = Σ_k ∂F/∂u_k[m]·Φ_k[m]: one batched product of the row's K derivatives with its K features.
      const m = r.shape[1], k = feats.length;
      const dm = stack(d.map((dk) => dk ?? zeros([b, m], { dtype: r.dtype, backend: r.backend })), -1);
      j = matmul(dm.reshape([b * m, 1, k]), pb.stacked.reshape([b * m, k, n])).reshape([b, m, n]);
    } else {
      feats.forEach((phi, k) => {
        const dk = d[k];
        if (!dk) return;
        const term = col(dk).mul(phi);
        j = j ? j.add(term) : term;
      });
    }
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
    checkShape(op, "JᵀJ", ne?.jtj, pb.gramShape);
    checkShape(op, "Jᵀr", ne?.jtr, [b, n]);
    return { r: constant(r), jtj: constant(ne.jtj), jtr: constant(ne.jtr) };
  }
  if (jopt !== "forward" && jopt !== "reverse") {
    throw new ArgumentError(op, `jacobian must be "forward", "reverse", { jacobian } or { normalEquations }`);
  }
  const wl = differentiable ? entry(w, pb.leaves) : w.detach().requireGrad();
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

/**
 * ½‖r‖² per problem (not recorded).
 *
 * @example
 * ```ts
 * import { halfSquaredNorm } from "./evaluate.ts";
 * import { tensor } from "../tensor/mod.ts";
 * halfSquaredNorm(tensor([[3, 4]])).toArray(); // [12.5]
 * ```
 */
export function halfSquaredNorm(r: Tensor): Tensor {
  return noGrad(() => r.square().sum(-1).mul(0.5));
}

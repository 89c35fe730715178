/**
 * The implicit adjoint of a least-squares solution: a tensor node whose backward pass applies the
 * implicit function theorem at w* with the adjoint's linear solver (see `mod.ts` for the
 * equations).
 *
 * @module
 */

import { enableGrad, gradients, isGradEnabled, noGrad, record } from "../tensor/autograd.ts";
import { zeros } from "../tensor/creation.ts";
import { AutodiffError } from "../tensor/errors.ts";
import { tidy } from "../tensor/storage.ts";
import { Tensor } from "../tensor/tensor.ts";
import { where } from "../tensor/ops_elementwise.ts";
import { stack } from "../tensor/ops_shape.ts";
import type { ImplicitAdjoint } from "./adjoint.ts";
import { mapTensors, type Problem, tensorsOf, unitRows } from "./evaluate.ts";
import { constantMatrix } from "./internal.ts";
import type { Status } from "./iterate.ts";
import { regularizedFactor, type RegularizedFactorization } from "./linear_solver.ts";

/** Statuses whose solution is differentiated (the others get a zero gradient). */
export const OK_STATUS: ReadonlySet<Status> = new Set<Status>(["converged", "max_steps", "stalled"]);

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

/**
 * The solution `wStar` as a tensor whose backward pass is the implicit adjoint of
 * `min_w ½‖r(w; θ)‖²` at w* (see `mod.ts`): one solve of the adjoint system with the adjoint's
 * linear solver, then one VJP of the residual. `atStar` gives J*ᵀJ* and `ok` `[B]`, made only when a
 * node is recorded: problems where `ok` is 0 (a status not in {@link OK_STATUS}) get a zero
 * gradient. `report`, when given, receives the adjoint system's
 * `[regularized; singular]` flags (2·B numbers, read to the host) at each backward pass — without
 * it the backward pass reads nothing.
 *
 * @example
 * ```ts
 * import { implicitValue } from "./implicit.ts";
 * // const w = implicitValue(problem, new ImplicitAdjoint(), wStar, () => ({ jtj, ok }), relReg, (f) => {});
 * ```
 */
export function implicitValue<P>(
  pb: Problem<P>,
  adjoint: ImplicitAdjoint,
  wStar: Tensor,
  atStar: () => { jtj: Tensor; ok: Tensor },
  relRegSolver: number,
  report: ((flags: Float64Array) => void) | null,
): Tensor {
  const targets = tensorsOf(pb.params).filter((t) => t.requiresGrad);
  const out = wStar.detach();
  if (targets.length === 0 || !isGradEnabled()) return out;
  const { jtj: jtjStar, ok } = atStar();
  const relReg = adjoint.regularization ?? relRegSolver;
  const { b, n, params } = pb;
  const backward = (wbar: Tensor, needs: readonly boolean[]): (Tensor | null)[] => {
    const outer = isGradEnabled();
    // The report's flags are read to the host (a few bytes, beside the factorisation's own read), so
    // nothing of this pass outlives it on the device; without a report nothing is read.
    const done = tidy((): { grads: (Tensor | null)[]; flags: Float64Array | null } => {
      const okRows = ok.reshape([b, 1]).gt(0);
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
      // v = (H + μI)⁻¹ w̄ with the adjoint's linear solver (zero where the problem failed).
      const adjointSolve = (h: Tensor) =>
        noGrad(() => {
          const a = adjoint.damping > 0 ? h.add(eye.mul(adjoint.damping)) : h;
          const f = regularizedFactor(adjoint.linearSolver, a, relReg);
          const keep = ok.mul(f.singular.neg().add(1)).unsqueeze(-1).gt(0);
          return { f, v: where(keep, f.factorization.solve(f.matrix, wb), 0) };
        });
      let gs: (Tensor | null)[];
      let fac: RegularizedFactorization;
      if (adjoint.hessian === "gauss-newton") {
        const { f, v } = adjointSolve(jtjStar);
        fac = f;
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
        if (!gw || !gw.requiresGrad) return { grads: targets.map(() => null), flags: null };
        const cols: Tensor[] = [];
        for (let j = 0; j < n; j++) {
          const [h] = gradients([gw], [unitRows(j, b, n, gw)], [wl], { retainGraph: true });
          cols.push(h ?? zeros([b, n], { dtype: gw.dtype, backend: gw.backend }));
        }
        const { f, v } = adjointSolve(noGrad(() => stack(cols, -1)));
        fac = f;
        gs = gradients([gw], [noGrad(() => v.neg())], leaves, { createGraph: outer, retainGraph: true });
      }
      return {
        grads: targets.map((_, i) => (needs[i] ? gs[i] : null)),
        flags: report
          ? noGrad(() => stack([fac.regularized, fac.singular]).cast("float64").toTypedArray() as Float64Array)
          : null,
      };
    });
    if (done.flags) report?.(done.flags);
    return done.grads;
  };
  return record("leastSquares", out, targets, [wStar, jtjStar, ok], backward);
}

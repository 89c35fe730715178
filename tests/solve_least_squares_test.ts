/**
 * Batched nonlinear least squares of src/solve: solutions, per-problem status, and gradients of
 * the solution — implicit (Gauss–Newton and exact Hessian) against unrolled and against float64
 * central finite differences — on linear least squares (closed form), exponential and Rosenbrock
 * fits, a batch mixing easy, non-converging, non-finite and singular problems, and the u = Φw
 * structure with a nonlinear PDE-like residual. Runs on the default backend (PATCHWORK_BACKEND).
 */

import assert from "node:assert/strict";
import {
  ArgumentError,
  AutodiffError,
  concat,
  DTypeError,
  noGrad,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  tidy,
} from "../mod.ts";
import {
  type Adjoint,
  BasisResidual,
  GaussNewton,
  ImplicitAdjoint,
  implicitSolution,
  leastSquares,
  type LeastSquaresOptions,
  LevenbergMarquardt,
  lstsq,
  type ResidualFn,
  SolverError,
  UnrolledAdjoint,
} from "../src/solve/mod.ts";
import { assertClose } from "./helpers.ts";

const TIGHT = { atol: 1e-13, rtol: 1e-13, maxSteps: 200 };

function f64(data: number[] | number[][] | number[][][]): Tensor {
  return tensor(data, { dtype: "float64" });
}

function host(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

/**
 * Gradient of L(θ) = Σ c ⊙ w*(θ) with respect to each listed parameter, through `leastSquares`
 * with the given adjoint.
 */
function solutionGrad<P extends Record<string, Tensor>>(
  residual: ResidualFn<P> | BasisResidual<P>,
  w0: Tensor,
  params: P,
  wrt: (keyof P)[],
  c: Tensor,
  options: LeastSquaresOptions<P>,
): { value: number[]; grads: number[][]; status: string[] } {
  const leaves = Object.fromEntries(
    Object.entries(params).map(([k, v]) => [k, wrt.includes(k) ? v.detach().requireGrad() : v]),
  ) as P;
  const sol = leastSquares(residual, w0, leaves, options);
  sol.value.mul(c).sum().backward();
  return {
    value: host(sol.value),
    grads: wrt.map((k) => host(leaves[k].grad ?? leaves[k].mul(0))),
    status: sol.status,
  };
}

/** Central finite differences of L(θ) = Σ c ⊙ w*(θ) in float64. */
function finiteDiff<P extends Record<string, Tensor>>(
  residual: ResidualFn<P> | BasisResidual<P>,
  w0: Tensor,
  params: P,
  wrt: (keyof P)[],
  c: Tensor,
  options: LeastSquaresOptions<P>,
  eps = 1e-6,
): number[][] {
  return noGrad(() =>
    wrt.map((key) => {
      const base = host(params[key]);
      const out: number[] = [];
      for (let j = 0; j < base.length; j++) {
        const at = (delta: number) => {
          const h = Float64Array.from(base);
          h[j] += delta;
          const p = { ...params, [key]: tensor(h, { dtype: "float64", shape: params[key].shape }) };
          return leastSquares(residual, w0, p, options).value.mul(c).sum().item();
        };
        out.push((at(eps) - at(-eps)) / (2 * eps));
      }
      return out;
    })
  );
}

function compareGradients<P extends Record<string, Tensor>>(
  name: string,
  residual: ResidualFn<P> | BasisResidual<P>,
  w0: Tensor,
  params: P,
  wrt: (keyof P)[],
  options: LeastSquaresOptions<P>,
  checks: { adjoint: Adjoint; tol: number; label: string }[],
  fdTol: number,
  fdEps = 1e-6,
): void {
  const c = randn(w0.shape, { dtype: "float64", seed: 99 });
  const numeric = finiteDiff(residual, w0, params, wrt, c, options, fdEps);
  for (const { adjoint, tol, label } of checks) {
    const got = solutionGrad(residual, w0, params, wrt, c, { ...options, adjoint });
    assert.ok(got.status.every((s) => s === "converged"), `${name} ${label}: status ${got.status}`);
    wrt.forEach((k, i) =>
      assertClose(
        got.grads[i],
        numeric[i],
        { rtol: Math.max(tol, fdTol), floor: 1 },
        `${name} ${label} d/d${String(k)}`,
      )
    );
  }
}

// ---------------------------------------------------------------------------------------- linear

Deno.test("linear least squares: solution and gradients match the closed form (lstsq)", () => {
  const a = randn([3, 9, 4], { dtype: "float64", seed: 1 });
  const y = randn([3, 9], { dtype: "float64", seed: 2 });
  const res: ResidualFn<{ a: Tensor; y: Tensor }> = (w, p) => p.a.matmul(w.unsqueeze(-1)).squeeze(-1).sub(p.y);
  const w0 = randn([3, 4], { dtype: "float64", seed: 3 });
  const c = randn([3, 4], { dtype: "float64", seed: 4 });
  // Closed form and its gradient, through lstsq's own backward.
  const al = a.detach().requireGrad();
  const yl = y.detach().requireGrad();
  const closed = lstsq(al, yl.unsqueeze(-1)).squeeze(-1);
  closed.mul(c).sum().backward();
  for (const solver of [new GaussNewton(TIGHT), new LevenbergMarquardt(TIGHT)]) {
    // y-gradients: the Gauss–Newton adjoint is exact (J does not depend on y).
    const gn = solutionGrad(res, w0, { a, y }, ["y"], c, { solver });
    assertClose(gn.value, host(closed), { rtol: 1e-10, floor: 1 }, `${solver.kind} value`);
    assertClose(gn.grads[0], host(yl.grad!), { rtol: 1e-9, floor: 1 }, `${solver.kind} dL/dy (implicit GN)`);
    // A-gradients with a non-zero residual need the exact Hessian term.
    const ex = solutionGrad(res, w0, { a, y }, ["a", "y"], c, {
      solver,
      adjoint: new ImplicitAdjoint({ hessian: "exact" }),
    });
    assertClose(ex.grads[0], host(al.grad!), { rtol: 1e-8, floor: 1 }, `${solver.kind} dL/dA (implicit exact)`);
    assertClose(ex.grads[1], host(yl.grad!), { rtol: 1e-8, floor: 1 }, `${solver.kind} dL/dy (implicit exact)`);
    const un = solutionGrad(res, w0, { a, y }, ["a", "y"], c, { solver, adjoint: new UnrolledAdjoint() });
    assertClose(un.grads[0], host(al.grad!), { rtol: 1e-6, floor: 1 }, `${solver.kind} dL/dA (unrolled)`);
    assertClose(un.grads[1], host(yl.grad!), { rtol: 1e-6, floor: 1 }, `${solver.kind} dL/dy (unrolled)`);
  }
  // GN converges in one step on a linear problem (plus the step that confirms it).
  const sol = leastSquares(res, w0, { a, y }, { solver: new GaussNewton(TIGHT) });
  assert.ok(sol.steps.every((s) => s <= 3), `steps ${sol.steps}`);
  const r = a.matmul(closed.detach().unsqueeze(-1)).squeeze(-1).sub(y);
  assertClose(sol.residualNorm, host(r.square().sum(-1).sqrt()), { rtol: 1e-9, floor: 1 }, "residual norms");
});

Deno.test("linear least squares with zero residual: the Gauss–Newton adjoint is exact for A too", () => {
  const a = randn([2, 7, 3], { dtype: "float64", seed: 5 });
  const wTrue = randn([2, 3], { dtype: "float64", seed: 6 });
  const res: ResidualFn<{ a: Tensor; wt: Tensor }> = (w, p) => p.a.matmul(w.sub(p.wt).unsqueeze(-1)).squeeze(-1);
  compareGradients(
    "zero-residual linear",
    res,
    f64([[0, 0, 0], [0, 0, 0]]),
    { a, wt: wTrue },
    ["a", "wt"],
    { solver: new GaussNewton(TIGHT) },
    [
      { adjoint: new ImplicitAdjoint(), tol: 1e-7, label: "implicit GN" },
      { adjoint: new UnrolledAdjoint(), tol: 1e-7, label: "unrolled" },
    ],
    1e-6,
  );
});

// ------------------------------------------------------------------------------------ exponential

const T = f64([[0, 0.4, 0.8, 1.2, 1.6, 2, 2.4, 2.8]]);

/** r = w₀·exp(−w₁ t) − (θ₀·exp(−θ₁ t) + θ₂·sin(3t)): zero residual when θ₂ = 0. */
const expFit: ResidualFn<{ theta: Tensor }> = (w, p) => {
  const th = p.theta;
  const model = w.narrow(1, 0, 1).mul(w.narrow(1, 1, 1).neg().mul(T).exp());
  const data = th.narrow(1, 0, 1).mul(th.narrow(1, 1, 1).neg().mul(T).exp()).add(
    th.narrow(1, 2, 1).mul(T.mul(3).sin()),
  );
  return model.sub(data);
};

Deno.test("exponential fit, zero residual: implicit (GN) = unrolled = finite differences", () => {
  const theta = f64([[2, 0.7, 0], [1, 1.3, 0]]);
  const w0 = f64([[1, 1], [1, 1]]);
  for (const solver of [new LevenbergMarquardt(TIGHT), new GaussNewton(TIGHT)]) {
    const start = solver.kind === "gauss-newton" ? f64([[1.8, 0.6], [1.1, 1.2]]) : w0;
    const sol = leastSquares(expFit, start, { theta }, { solver });
    assert.deepEqual(sol.status, ["converged", "converged"]);
    assertClose(host(sol.value), [2, 0.7, 1, 1.3], { rtol: 1e-9, floor: 1 }, `${solver.kind} value`);
    compareGradients("exp", expFit, start, { theta }, ["theta"], { solver }, [
      { adjoint: new ImplicitAdjoint(), tol: 1e-7, label: "implicit GN" },
      { adjoint: new ImplicitAdjoint({ hessian: "exact" }), tol: 1e-7, label: "implicit exact" },
      { adjoint: new UnrolledAdjoint(), tol: 1e-6, label: "unrolled" },
    ], 1e-6);
  }
});

Deno.test("implicitSolution: the adjoint at a known w* equals the solve's own implicit gradient", () => {
  const theta = f64([[2, 0.7, 0.05], [1, 1.3, -0.02]]); // non-zero residuals
  const c = f64([[0.3, -1.1], [0.8, 0.4]]);
  const w0 = f64([[1, 1], [1, 1]]);
  const solver = new LevenbergMarquardt(TIGHT);
  for (const adjoint of [new ImplicitAdjoint(), new ImplicitAdjoint({ hessian: "exact" })]) {
    const ref = solutionGrad(expFit, w0, { theta }, ["theta"], c, { solver, adjoint });
    const wStar = noGrad(() => leastSquares(expFit, w0, { theta }, { solver }).value);
    const leaf = theta.detach().requireGrad();
    const node = implicitSolution(expFit, wStar, { theta: leaf }, { adjoint });
    assert.deepEqual(node.steps, [0, 0]);
    assertClose(host(node.value), host(wStar), {}, "value is w* unchanged");
    node.value.mul(c).sum().backward();
    assertClose(host(leaf.grad!), ref.grads[0], { rtol: 1e-10, floor: 1 }, `${adjoint.hessian} adjoint`);
  }
  assert.throws(
    () => implicitSolution(expFit, w0, { theta }, { adjoint: new UnrolledAdjoint() as never }),
    ArgumentError,
  );
});

Deno.test("exponential fit, non-zero residual: exact-Hessian implicit = unrolled = finite differences", () => {
  const theta = f64([[2, 0.7, 0.1], [1, 1.3, -0.05]]);
  const w0 = f64([[1, 1], [1, 1]]);
  compareGradients("exp (misfit)", expFit, w0, { theta }, ["theta"], { solver: new LevenbergMarquardt(TIGHT) }, [
    { adjoint: new ImplicitAdjoint({ hessian: "exact" }), tol: 1e-6, label: "implicit exact" },
    { adjoint: new UnrolledAdjoint(), tol: 1e-5, label: "unrolled" },
  ], 1e-6);
  // The Gauss–Newton adjoint drops Σ rᵢ∇²rᵢ: close, not exact, when the residual is not zero.
  const c = randn([2, 2], { dtype: "float64", seed: 99 });
  const gn = solutionGrad(expFit, w0, { theta }, ["theta"], c, { solver: new LevenbergMarquardt(TIGHT) });
  const ex = solutionGrad(expFit, w0, { theta }, ["theta"], c, {
    solver: new LevenbergMarquardt(TIGHT),
    adjoint: new ImplicitAdjoint({ hessian: "exact" }),
  });
  const diff = Math.max(...gn.grads[0].map((g, i) => Math.abs(g - ex.grads[0][i])));
  assert.ok(diff > 1e-6 && diff < 0.5, `GN vs exact adjoint differ by ${diff}`);
});

Deno.test('"converged" means a stationary point: Gauss–Newton stalls on exponential fits are "stalled"', () => {
  // y = a·exp(−k t) + 0.01 sin 7t sampled at 10 points on [0, T], fitted by w = (a, k) from (1, 1).
  // Undamped Gauss–Newton runs off towards a → 0, k → −∞ on several of these, where its steps
  // shrink while ‖Jᵀr‖ does not: the step test passes at a point that is not stationary.
  const cases = [[5, 10, 0.5], [10, 2, 0.2], [20, 2, 0.5], [3, 5, 0.2], [1, 2, 0.5], [3, 2, 0.5], [10, 0.5, 0.2]];
  const ts = cases.map(([tmax]) => Array.from({ length: 10 }, (_, i) => (i * tmax) / 9));
  const t = f64(ts);
  const y = f64(cases.map(([, a, k], b) => ts[b].map((v) => a * Math.exp(-k * v) + 0.01 * Math.sin(7 * v))));
  const fit: ResidualFn<{ y: Tensor }> = (w, p) => w.narrow(1, 0, 1).mul(w.narrow(1, 1, 1).neg().mul(t).exp()).sub(p.y);
  const w0 = f64(cases.map(() => [1, 1]));
  /** ‖P_J r‖₂ / ‖r‖₂ at w from the closed-form J (columns e^(−kt) and −a·t·e^(−kt)): gᵀ(JᵀJ)⁻¹g = ‖P_J r‖². */
  const cosine = (w: number[], b: number): number => {
    const [a, k] = w;
    let s11 = 0, s12 = 0, s22 = 0, g1 = 0, g2 = 0, rr = 0;
    ts[b].forEach((tv, i) => {
      const e = Math.exp(-k * tv);
      const j1 = e;
      const j2 = -a * tv * e;
      const r = a * e - host(y)[b * 10 + i];
      s11 += j1 * j1, s12 += j1 * j2, s22 += j2 * j2, g1 += j1 * r, g2 += j2 * r, rr += r * r;
    });
    const det = s11 * s22 - s12 * s12;
    const q = (s22 * g1 * g1 - 2 * s12 * g1 * g2 + s11 * g2 * g2) / det;
    return Math.sqrt(Math.max(q, 0) / rr);
  };
  const gtol = 1e-4;
  for (const solver of [new GaussNewton({ gtol }), new LevenbergMarquardt({ gtol })]) {
    const sol = leastSquares(fit, w0, { y }, { solver });
    const w = host(sol.value);
    sol.status.forEach((s, b) => {
      const c = cosine(w.slice(2 * b, 2 * b + 2), b);
      if (s === "converged") assert.ok(c <= gtol, `${solver.kind} problem ${b}: converged at cos ${c}`);
      if (c > 1e-2) assert.notEqual(s, "converged", `${solver.kind} problem ${b}: cos ${c}`);
    });
    if (solver.kind === "gauss-newton") {
      assert.ok(sol.status.includes("stalled"), `Gauss–Newton statuses ${sol.status}`);
      assert.ok(sol.status.every((s) => s === "converged" || s === "stalled"), `${sol.status}`);
    } else {
      assert.deepEqual(sol.status, cases.map(() => "converged"), "Levenberg–Marquardt reaches every minimum");
    }
  }
});

// -------------------------------------------------------------------------------------- Rosenbrock

/** r = [θ₀ (w₁ − w₀²), θ₁ − w₀]: solution w = (θ₁, θ₁²) for every θ₀ ≠ 0. */
const rosenbrock: ResidualFn<{ theta: Tensor }> = (w, p) => {
  const w0 = w.narrow(1, 0, 1);
  const w1 = w.narrow(1, 1, 1);
  const th = p.theta;
  return concat([w1.sub(w0.square()).mul(th.narrow(1, 0, 1)), th.narrow(1, 1, 1).sub(w0)], 1);
};

Deno.test("Rosenbrock from (−1.2, 1): LM converges; gradients match the closed form, unrolled and FD", () => {
  const theta = f64([[10, 1], [10, 1.5], [3, -0.5]]);
  const w0 = f64([[-1.2, 1], [-1.2, 1], [0.5, 0.5]]);
  const sol = leastSquares(rosenbrock, w0, { theta }, { solver: new LevenbergMarquardt(TIGHT) });
  assert.deepEqual(sol.status, ["converged", "converged", "converged"]);
  assertClose(host(sol.value), [1, 1, 1.5, 2.25, -0.5, 0.25], { rtol: 1e-9, floor: 1 }, "solution");
  // w* = (θ₁, θ₁²): ∂L/∂θ₀ = 0, ∂L/∂θ₁ = c₀ + 2θ₁c₁.
  const c = randn([3, 2], { dtype: "float64", seed: 99 });
  const ch = host(c);
  const th = host(theta);
  const expected = [0, 1, 2].flatMap((b) => [0, ch[2 * b] + 2 * th[2 * b + 1] * ch[2 * b + 1]]);
  const got = solutionGrad(rosenbrock, w0, { theta }, ["theta"], c, { solver: new LevenbergMarquardt(TIGHT) });
  assertClose(got.grads[0], expected, { rtol: 1e-8, floor: 1 }, "implicit vs closed form");
  compareGradients("rosenbrock", rosenbrock, w0, { theta }, ["theta"], { solver: new LevenbergMarquardt(TIGHT) }, [
    { adjoint: new ImplicitAdjoint(), tol: 1e-7, label: "implicit GN" },
    { adjoint: new UnrolledAdjoint(), tol: 1e-6, label: "unrolled" },
  ], 1e-6);
  // Gauss–Newton from a nearby start, and Marquardt scaling from the far one.
  const gn = leastSquares(rosenbrock, f64([[0.9, 0.8], [1.4, 2], [-0.4, 0.2]]), { theta }, {
    solver: new GaussNewton(TIGHT),
  });
  assert.deepEqual(gn.status, ["converged", "converged", "converged"]);
  const sc = leastSquares(rosenbrock, w0, { theta }, {
    solver: new LevenbergMarquardt({ ...TIGHT, scaling: "marquardt" }),
  });
  assert.deepEqual(sc.status, ["converged", "converged", "converged"]);
  assertClose(host(sc.value), [1, 1, 1.5, 2.25, -0.5, 0.25], { rtol: 1e-8, floor: 1 }, "solution (Marquardt scaling)");
});

// -------------------------------------------------------------------------------- mixed batch

/** Per problem b: r = [α_b (w − 1), β_b e^(−w)] (N = 1, M = 2). */
const mixed: ResidualFn<{ ab: Tensor }> = (w, p) =>
  concat([p.ab.narrow(1, 0, 1).mul(w.sub(1)), p.ab.narrow(1, 1, 1).mul(w.neg().exp())], 1);

Deno.test("a batch mixing easy, non-converging, non-finite and singular problems: status per problem", () => {
  // easy: w* = 1; runaway: e^(−w) → 0 only as w → ∞; NaN data; all-zero residual (J = 0).
  const ab = f64([[2, 0], [0, 1], [NaN, 1], [0, 0]]);
  const w0 = f64([[3], [0], [0], [0.5]]);
  const lm = leastSquares(mixed, w0, { ab }, { solver: new LevenbergMarquardt({ maxSteps: 30 }) });
  assert.deepEqual(lm.status, ["converged", "max_steps", "nonfinite", "converged"]);
  assert.equal(lm.steps[1], 30);
  assert.equal(lm.steps[2], 0);
  assertClose([host(lm.value)[0]], [1], { rtol: 1e-6, floor: 1 }, "easy problem");
  assert.ok(host(lm.value).every(Number.isFinite), "no NaN in the returned value");
  assert.ok(!lm.converged);

  const gn0 = leastSquares(mixed, w0, { ab }, { solver: new GaussNewton({ maxSteps: 30, regularization: 0 }) });
  assert.deepEqual(gn0.status, ["converged", "max_steps", "nonfinite", "singular"]);
  assert.deepEqual(gn0.regularized, [false, false, false, false]);
  const gn = leastSquares(mixed, w0, { ab }, { solver: new GaussNewton({ maxSteps: 30 }) });
  assert.deepEqual(gn.status, ["converged", "max_steps", "nonfinite", "converged"]);
  assert.deepEqual(gn.regularized, [false, false, false, true]);

  // Gradients: finite everywhere; the failed problem contributes zero.
  const abl = ab.detach().requireGrad();
  const sol = leastSquares(mixed, w0, { ab: abl }, { solver: new LevenbergMarquardt({ maxSteps: 30 }) });
  sol.value.sum().backward();
  const g = host(abl.grad!);
  assert.ok(g.every(Number.isFinite), `gradient ${g}`);
  assert.deepEqual(g.slice(4, 6), [0, 0]);
  assert.ok(sol.adjointReport() !== null);

  assert.throws(
    () => leastSquares(mixed, w0, { ab }, { solver: new LevenbergMarquardt({ maxSteps: 30 }), throwOnFailure: true }),
    (e: unknown) => {
      assert.ok(e instanceof SolverError);
      assert.deepEqual(e.status, ["converged", "max_steps", "nonfinite", "converged"]);
      assert.match(e.message, /problem 1: max_steps, problem 2: nonfinite/);
      return true;
    },
  );
});

// ------------------------------------------------------------------------------- u = Φw structure

/**
 * A 1-D hard-constraint layer: −u'' + u³ = f on (0, 1), u(0) = u(1) = 0, with a "network" basis
 * φ_j(x) = tanh(a_j x + c_j) and u = Φ·w. Interior rows read (u, u''), boundary rows read u.
 */
function pdeProblem(m: number, batch: number) {
  const interior = Array.from({ length: m - 2 }, (_, i) => (i + 1) / (m - 1));
  const xs = [0, ...interior, 1];
  const x = f64(xs.map((v) => [v]));
  const isInt = f64([xs.map((_, i) => (i === 0 || i === m - 1 ? 0 : 1))]);
  const isBd = isInt.neg().add(1);
  const sinPi = f64([xs.map((v) => Math.sin(Math.PI * v))]);
  const features = (p: { a: Tensor; c: Tensor }): Tensor[] => {
    const s = x.mul(p.a).add(p.c); // [M, N]
    const th = s.tanh();
    const sech2 = th.square().neg().add(1);
    const phi = th;
    const phiXX = th.mul(sech2).mul(p.a.square()).mul(-2);
    return [phi, phiXX];
  };
  const pointwise = ([u, uxx]: Tensor[], p: { f: Tensor }) => {
    const f = p.f.narrow(1, 0, 1).mul(sinPi).add(p.f.narrow(1, 1, 1)); // [B, M]
    return uxx.neg().add(u.pow(3)).sub(f).mul(isInt).add(u.mul(isBd));
  };
  const basis = new BasisResidual<{ a: Tensor; c: Tensor; f: Tensor }>({
    features,
    pointwise: (u, p) => pointwise(u, p),
  });
  const plain: ResidualFn<{ a: Tensor; c: Tensor; f: Tensor }> = (w, p) => basis.residual(w, p);
  const n = 5;
  const params = {
    a: f64([[1.5, -2, 3, 0.8, -1.2]]),
    c: f64([[0.1, 0.5, -0.7, 0.3, -0.2]]),
    f: f64(Array.from({ length: batch }, (_, b) => [3 + b, 0.5 - b])),
  };
  return { basis, plain, params, n, w0: f64(Array.from({ length: batch }, () => new Array(n).fill(0))) };
}

Deno.test("u = Φw: the structured Jacobian matches forward-mode autodiff (solution and gradients)", () => {
  const { basis, plain, params, w0 } = pdeProblem(12, 2);
  const solver = new LevenbergMarquardt(TIGHT);
  const c = randn(w0.shape, { dtype: "float64", seed: 99 });
  const fast = solutionGrad(basis, w0, params, ["a", "c", "f"], c, { solver, adjoint: new ImplicitAdjoint() });
  const slow = solutionGrad(plain, w0, params, ["a", "c", "f"], c, { solver, adjoint: new ImplicitAdjoint() });
  assert.deepEqual(fast.status, ["converged", "converged"]);
  assertClose(fast.value, slow.value, { rtol: 1e-9, floor: 1 }, "solution");
  fast.grads.forEach((g, i) => assertClose(g, slow.grads[i], { rtol: 1e-7, floor: 1 }, `gradient ${i}`));
  // Explicit ∂F/∂u agrees with the autodiff one.
  const withDerivative = new BasisResidual<typeof params>({
    features: basis.spec.features,
    pointwise: basis.spec.pointwise,
    derivative: ([u], _p) => [
      u.square().mul(3).mul(f64([[0, ...new Array(10).fill(1), 0]])).add(
        f64([[1, ...new Array(10).fill(0), 1]]),
      ),
      f64([[0, ...new Array(10).fill(-1), 0]]).expand([2, 12]),
    ],
  });
  const sol = leastSquares(withDerivative, w0, params, { solver });
  assertClose(host(sol.value), fast.value, { rtol: 1e-9, floor: 1 }, "solution with explicit derivative");
});

Deno.test("u = Φw, square collocation (zero residual): implicit GN = unrolled = finite differences", () => {
  const { basis, params, w0 } = pdeProblem(5, 2);
  const solver = new LevenbergMarquardt(TIGHT);
  const sol = leastSquares(basis, w0, params, { solver });
  assert.ok(sol.residualNorm.every((r) => r < 1e-9), `residual ${sol.residualNorm}`);
  compareGradients(
    "pde square",
    basis,
    w0,
    params,
    ["a", "c", "f"],
    { solver },
    [
      { adjoint: new ImplicitAdjoint(), tol: 1e-6, label: "implicit GN" },
      { adjoint: new UnrolledAdjoint(), tol: 1e-5, label: "unrolled" },
    ],
    1e-5,
    1e-5,
  );
});

Deno.test("u = Φw, overdetermined (non-zero residual): exact implicit = unrolled = finite differences", () => {
  const { basis, params, w0 } = pdeProblem(9, 2);
  const solver = new LevenbergMarquardt(TIGHT);
  compareGradients(
    "pde overdetermined",
    basis,
    w0,
    params,
    ["a", "c", "f"],
    { solver },
    [
      { adjoint: new ImplicitAdjoint({ hessian: "exact" }), tol: 1e-6, label: "implicit exact" },
      { adjoint: new UnrolledAdjoint(), tol: 1e-4, label: "unrolled" },
    ],
    1e-5,
    1e-5,
  );
});

// --------------------------------------------------------------------------- options and errors

Deno.test("Jacobian modes agree: forward, reverse, caller-supplied J and normal equations", () => {
  const theta = f64([[2, 0.7, 0.1], [1, 1.3, 0]]);
  const w0 = f64([[1, 1], [1, 1]]);
  const solver = new LevenbergMarquardt(TIGHT);
  const ref = host(leastSquares(expFit, w0, { theta }, { solver }).value);
  const rev = host(leastSquares(expFit, w0, { theta }, { solver, jacobian: "reverse" }).value);
  assertClose(rev, ref, { rtol: 1e-10, floor: 1 }, "reverse");
  const jac = (w: Tensor) => {
    const e = w.narrow(1, 1, 1).neg().mul(T).exp(); // [B, M]
    return e.unsqueeze(-1).mul(f64([[1, 0]])).add(
      e.mul(T).mul(w.narrow(1, 0, 1)).neg().unsqueeze(-1).mul(f64([[0, 1]])),
    );
  };
  const withJ = host(leastSquares(expFit, w0, { theta }, { solver, jacobian: { jacobian: (w) => jac(w) } }).value);
  assertClose(withJ, ref, { rtol: 1e-10, floor: 1 }, "caller J");
  const withNe = leastSquares(expFit, w0, { theta }, {
    solver,
    jacobian: {
      normalEquations: (w, r) => {
        const j = jac(w);
        return { jtj: j.transpose().matmul(j), jtr: j.transpose().matmul(r.unsqueeze(-1)).squeeze(-1) };
      },
    },
  });
  assertClose(host(withNe.value), ref, { rtol: 1e-10, floor: 1 }, "caller normal equations");
});

Deno.test("float32 solve converges to float32 accuracy", () => {
  const a = randn([4, 30, 5], { seed: 7 });
  const wt = randn([4, 5], { seed: 8 });
  const y = a.matmul(wt.unsqueeze(-1)).squeeze(-1);
  const res: ResidualFn<{ y: Tensor }> = (w, p) => {
    const u = a.matmul(w.unsqueeze(-1)).squeeze(-1);
    return u.add(u.square().mul(0.1)).sub(p.y.add(p.y.square().mul(0.1)));
  };
  const sol = leastSquares(res, randn([4, 5], { seed: 9 }).mul(0), { y }, {
    solver: new LevenbergMarquardt({ atol: 1e-5, rtol: 1e-5 }),
  });
  assert.deepEqual(sol.status, ["converged", "converged", "converged", "converged"]);
  assertClose(host(sol.value), host(wt), { rtol: 1e-3, floor: 1 }, "float32 solution");
});

Deno.test("long residual vectors (JᵀJ reduced in row chunks) give the least-squares solution", () => {
  const a = randn([2, 4096, 3], { dtype: "float64", seed: 21 });
  const y = randn([2, 4096], { dtype: "float64", seed: 22 });
  const res: ResidualFn<{ y: Tensor }> = (w, p) => a.matmul(w.unsqueeze(-1)).squeeze(-1).sub(p.y);
  const basis = new BasisResidual<{ y: Tensor }>({ features: () => a, pointwise: ([u], p) => u.sub(p.y) });
  const expected = host(lstsq(a, y.unsqueeze(-1)).squeeze(-1));
  for (const r of [res, basis]) {
    const sol = leastSquares(r, f64([[0, 0, 0], [0, 0, 0]]), { y }, { solver: new GaussNewton(TIGHT) });
    assertClose(host(sol.value), expected, { rtol: 1e-9, floor: 1 }, "solution");
  }
});

Deno.test("memory stays bounded: a tidy solve releases every temporary", () => {
  const theta = f64([[2, 0.7, 0.1], [1, 1.3, 0]]);
  const w0 = f64([[1, 1], [1, 1]]);
  const backend = w0.backend;
  tidy(() => leastSquares(expFit, w0, { theta }, { solver: new LevenbergMarquardt(TIGHT) }).value);
  const before = backend.memory().current;
  tidy(() => leastSquares(expFit, w0, { theta }, { solver: new LevenbergMarquardt(TIGHT) }).value.sum().item());
  assert.equal(backend.memory().current, before);
});

Deno.test("memory stays flat over hundreds of solve + backward steps (implicit and unrolled adjoints)", () => {
  // Parameters live across the steps, as a network's do; each step solves and back-propagates
  // inside tidy, so the bytes held after a step are those of theta and its gradient alone.
  const theta = f64([[2, 0.7, 0.1], [1, 1.3, 0], [1.5, 1, 0.05]]).requireGrad();
  const w0 = f64([[1, 1], [1, 1], [1, 1]]);
  const backend = w0.backend;
  for (const adjoint of [new ImplicitAdjoint(), new ImplicitAdjoint({ hessian: "exact" }), new UnrolledAdjoint()]) {
    const step = () =>
      tidy(() => {
        const sol = leastSquares(expFit, w0, { theta }, { solver: new LevenbergMarquardt(), adjoint });
        sol.value.sum().backward();
        assert.ok(adjoint.kind === "unrolled" || sol.adjointReport() !== null, "report readable in the step");
      });
    step(); // first use builds the cached solver constants
    const before = backend.memory().current;
    for (let i = 0; i < 200; i++) step();
    const grown = backend.memory().current - before;
    assert.equal(grown, 0, `${adjoint.kind} adjoint: ${grown / 200} bytes a step stay held`);
  }
});

Deno.test("shape, dtype and option errors are typed", () => {
  const theta = f64([[2, 0.7, 0]]);
  assert.throws(() => leastSquares(expFit, f64([1, 1]), { theta }), ShapeError);
  assert.throws(() => leastSquares(expFit, tensor([[1, 1]]), { theta }), DTypeError);
  assert.throws(() => leastSquares(() => f64([[1, 2, 3]]), f64([[1, 1], [1, 1]]), {}), ShapeError); // B = 1 ≠ 2
  assert.throws(() => leastSquares((w) => w.sum(), f64([[1, 1]]), {}), ShapeError);
  assert.throws(
    () => leastSquares(expFit, f64([[1, 1]]), { theta }, { jacobian: { jacobian: () => f64([[1, 2]]) } }),
    ShapeError,
  );
  assert.throws(() => new LevenbergMarquardt({ atol: -1 }), ArgumentError);
  assert.throws(() => new GaussNewton({ maxSteps: 1.5 }), ArgumentError);
  assert.throws(() => new ImplicitAdjoint({ hessian: "full" as "exact" }), ArgumentError);
  // A tensor that requires grad but is not in params cannot get its gradient implicitly.
  const hidden = f64([[0.5]]).requireGrad();
  const leaky: ResidualFn<{ theta: Tensor }> = (w, p) => expFit(w, p).add(hidden.mul(0));
  const sol = leastSquares(leaky, f64([[1, 1]]), { theta: theta.detach().requireGrad() });
  assert.throws(() => sol.value.sum().backward(), AutodiffError);
});

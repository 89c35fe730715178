/**
 * Differentiable solvers: batched dense linear algebra, batched nonlinear least squares
 * (Gauss–Newton, Levenberg–Marquardt) and the implicit-function backward through their solutions.
 * Modelled on Optimistix / Lineax: solvers are values holding explicit options, and how a solution
 * is differentiated (an adjoint) is chosen apart from how it is found.
 *
 * ## Linear algebra (`linear.ts`)
 *
 * `cholesky`, `triangularSolve`, `solve` (LU with partial pivoting, or Cholesky), `choleskySolve`,
 * `lstsq` (QR, or the normal equations with Cholesky; a rank test scaled as LAPACK's; with fewer
 * equations than unknowns the minimum-norm solution through an LQ factorisation, and for a
 * rank-deficient A on request; `lstsq.ts`), `matrixRank`, and the raw `lu` / `luSolve` / `qr`, each
 * one batched backend call over `[...batch, n, n]` (`Backend.linalg`). The VJP of a solve is a
 * transposed solve with the same factors; see `linear.ts` for every rule. Singular, indefinite
 * and non-finite input raises `SingularMatrixError` / `NonFiniteError` naming the batch entries;
 * `regularization: μ` adds the Tikhonov term μI.
 *
 * ## Nonlinear least squares (`least_squares.ts`)
 *
 * For B independent problems, `w ∈ ℝ^{B×N}`, `r(w; θ) ∈ ℝ^{B×M}`, minimise `L(w) = ½‖r(w; θ)‖²`
 * per problem. With `J = ∂r/∂w` (M × N per problem) and `g = Jᵀr`, each iteration takes the damped
 * Gauss–Newton descent, factorised by the solver's `linearSolver` ({@link Cholesky} by default;
 * {@link BandedCholesky} for banded JᵀJ on the host),
 *
 *     (JᵀJ + λD)·δ = −Jᵀr
 *
 * and a search judges the trial point per problem (`search.ts`). Solvers are values with
 * `init` / `step` / `terminate` (`iterate.ts`, after Optimistix): one loop runs every solver.
 *
 * - **Gauss–Newton**: λD = μI with the fixed `damping` μ (default 0). Its search is
 *   {@link LearningRate} (every finite step is taken) or a {@link BacktrackingLineSearch} (lengths
 *   1, ½, ¼, … until the cost does not increase; J is formed only at accepted points).
 * - **Levenberg–Marquardt**: D = I (`scaling: "identity"`, default) or Moré's
 *   D = diag(maxₖ diag(JₖᵀJₖ)) (`"marquardt"`); λ₀ = τ₀·max diag(J₀ᵀJ₀) (τ₀ = `initialDamping`,
 *   default 10⁻³). Its search is {@link TrustRegion}: the gain ratio
 *   `ρ = (L(w) − L(w+δ)) / (L(w) − m(δ))`, with the model reduction `L(w) − m(δ) = −gᵀδ − ½δᵀJᵀJδ`,
 *   decides: the step is accepted when the cost does not increase, and then
 *   λ ← λ·max(⅓, 1 − (2ρ − 1)³), ν ← 2; otherwise λ ← λ·ν, ν ← 2ν (Nielsen's rule). When both
 *   reductions are within the cost's rounding level (max(ε·(8 + √M), √ε)·L, as each rᵢ may cancel
 *   larger terms) the model is trusted (ρ = 1), so noise does not inflate λ near the solution.
 *
 * **Termination** (per problem, on an accepted step; Optimistix's Cauchy test with max norms):
 *
 *     maxᵢ |δᵢ| / (atol + rtol·|wᵢ⁺|) < 1   and   maxⱼ |rⱼ⁺ − rⱼ| / (atol + rtol·|rⱼ⁺|) < 1,
 *
 * or, with `ftol > 0`, a relative cost decrease `L(w) − L(w⁺) ≤ ftol·L(w)`, or (line search) no
 * length lowering the cost. Then the point is tested for **first-order stationarity**: the
 * Gauss–Newton step from it would change the residual by `P_J r` (r projected on the range of J),
 * and the problem has "converged" when
 *
 *     ‖P_J r‖₂ = (gᵀ(JᵀJ)⁻¹g)^½ ≤ √M·atol + gtol·‖r‖₂
 *
 * (MINPACK's gtol test on the cosine of the angle between r and the range of J, default
 * gtol = 10⁻⁴; JᵀJ is scaled to a unit diagonal for it), else it has "stalled": the iterates
 * stopped moving at a point that is not stationary. Otherwise the problem stops after `maxSteps`
 * iterations. Problems that have stopped are frozen while the rest of the batch iterates. The
 * result gives per problem: `status` — "converged", "stalled", "max_steps", "singular" (the step
 * system stayed singular) or "nonfinite" (NaN / Inf in r, JᵀJ or Jᵀr at the start, or at a
 * Gauss–Newton trial point; a Levenberg–Marquardt trial point that is not finite is rejected like
 * any bad step) — `steps`, `residualNorm` ‖r(w*)‖₂, `gradientNorm` ‖Jᵀr‖∞, `regularized`,
 * `damping`. The returned value is always the last finite iterate: never a silent NaN.
 *
 * **Jacobians.** "forward" (default): one forward pass and one reverse pass with a symbolic
 * cotangent u give `Jᵀu` as a graph linear in u; N reverse passes over that graph give the columns
 * `J·eⱼ` for all problems at once. "reverse": M vector–Jacobian products (only for M < N). A
 * caller's `{ jacobian }` (J `[B, M, N]`) or `{ normalEquations }` (JᵀJ, Jᵀr directly). And the
 * structured fast path `BasisResidual` for `u = Φw`: when r = F(Φ₁w, …, Φ_Kw; θ) is pointwise in
 * its linear features, `J = Σₖ diag(∂F/∂uₖ)·Φₖ` (∂F/∂uₖ from one reverse pass of F, or given), so
 * JᵀJ and Jᵀr are two batched matrix products and no N passes are needed. For r = F(Φw) this is
 * `JᵀJ = Φᵀ diag(F′²) Φ`, `Jᵀr = Φᵀ(F′ ⊙ r)`.
 *
 * **Conditioning.** When `A = JᵀJ + λD` is numerically singular for a problem (Cholesky fails, or
 * its pivot ratio `min Lᵢᵢ² / max Lᵢᵢ²` is at most n·ε), that step is not taken and from then on
 * the problem's steps solve `(JᵀJ + λD + τ·s·I)·δ = −Jᵀr`, `s = max diag(JᵀJ)` (1 if not
 * positive), τ = `regularization` (default 10·n·ε of the dtype); its `regularized` flag says so.
 * If the regularized matrix is still singular, or with `regularization: 0`, the problem stops
 * with status "singular".
 *
 * **Cost per iteration** (eager searches). One batched Cholesky, two batched triangular solves,
 * one residual and Jacobian evaluation at the trial point, a handful of batched reductions, and one
 * synchronisation: a packed `[8, B]` read of per-problem reductions (cost, finiteness, model
 * reduction, the Cauchy ratios, the factorisation check), from which the acceptance, the damping
 * update and termination are decided on the host, and one `[3, B]` upload of the accept mask and
 * the next damping. The stationarity test adds one factorisation on the iterations where some
 * problem passes its termination test.
 *
 * ## Differentiating the solution (`adjoint.ts`)
 *
 * At a solution the optimality condition holds: `F(w*, θ) = ∇_w L = J(w*, θ)ᵀ r(w*, θ) = 0`. By the
 * implicit function theorem
 *
 *     d(w*)/dθ = −H⁻¹ ∂F/∂θ,   H = ∂F/∂w = JᵀJ + Σᵢ rᵢ ∇²_w rᵢ,
 *     ∂F/∂θ = Jᵀ ∂r/∂θ + Σᵢ rᵢ ∂²rᵢ/∂w∂θ.
 *
 * `ImplicitAdjoint` (default) turns an output cotangent w̄ into θ̄ with one batched linear solve
 * by its `linearSolver` (as Optimistix's `ImplicitAdjoint(linear_solver=…)`), whatever the number
 * of iterations:
 *
 * - `hessian: "gauss-newton"` (default) drops the terms weighted by r (`H ≈ JᵀJ`,
 *   `∂F/∂θ ≈ Jᵀ∂r/∂θ`). It is **exact in the zero-residual case** r(w*) = 0 — the hard
 *   constraint, where each expert makes its PDE residual vanish — and an approximation otherwise.
 *   The VJP: solve `(JᵀJ + μI)·v = w̄` (Cholesky; JᵀJ kept from the last iteration), then
 *   `θ̄ = −(∂r/∂θ)ᵀ(J·v)`: J·v by the cotangent trick on one recording of r(w*, θ), and one VJP of r.
 * - `hessian: "exact"` keeps every term: H is formed by N Hessian–vector products of L at w*
 *   (possibly indefinite, so LU), `(H + μI)·v = w̄`, then `θ̄ = −∂/∂θ [vᵀ ∇_w L(w*, θ)]` by one
 *   reverse pass through the recorded gradient. Exact for non-zero residuals too (Optimistix's
 *   ImplicitAdjoint does the same through its `rewrite_fn`).
 *
 * μ = `damping` (default 0) damps the adjoint system; if `H + μI` is numerically singular the same
 * Tikhonov fallback applies and `result.adjointReport()` says so per problem. Problems whose status
 * is "singular" or "nonfinite" get a zero gradient. The implicit adjoint routes gradients only to
 * the tensors passed in `params` (it raises an `AutodiffError` when the residual reads other
 * tensors that require grad), and its gradients are first order.
 *
 * `UnrolledAdjoint` records every iteration instead (λ and the accept / reject decisions treated
 * as constants): the derivative of the iterate actually returned, converged or not; memory grows
 * with the iterations. At convergence it agrees with the exact implicit gradient.
 *
 * @example
 * ```ts
 * import { BasisResidual, ImplicitAdjoint, leastSquares, LevenbergMarquardt } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * // 8 problems, 64 unknowns, 2000 residuals: r = Φw + 0.1(Φw)² − y.
 * const phi = randn([8, 2000, 64]).mul(0.125).requireGrad();
 * const y = randn([8, 2000]);
 * const r = new BasisResidual({
 *   features: (p: { phi: typeof phi; y: typeof y }) => p.phi,
 *   pointwise: ([u], p) => u.add(u.square().mul(0.1)).sub(p.y),
 * });
 * const sol = leastSquares(r, randn([8, 64]).mul(0), { phi, y }, {
 *   solver: new LevenbergMarquardt({ atol: 1e-5, rtol: 1e-5 }),
 *   adjoint: new ImplicitAdjoint(),
 * });
 * sol.value.square().sum().backward(); // phi.grad through one batched solve
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./linear.ts";
export * from "./lstsq.ts";
export * from "./linear_solver.ts";
export * from "./search.ts";
export * from "./iterate.ts";
export type { Evaluation, JacobianFn, JacobianOption, NormalEquationsFn, Problem, ResidualFn } from "./evaluate.ts";
export * from "./gauss_newton.ts";
export * from "./solvers.ts";
export * from "./adjoint.ts";
export * from "./residual.ts";
export * from "./least_squares.ts";
export * from "./banded.ts";

/**
 * PDE residuals as mathjs expressions: parsing, definitions, compilation to tensor ops, symbolic
 * partials (checked against finite differences and autodiff of the compiled residual), the
 * structured Jacobian (checked against a directional derivative of the grid residual), sampled
 * evaluation, and every error pointing at its symbol.
 */

import assert from "node:assert/strict";
import { grad, gradcheck, PatchworkError, randn, type Tensor, tensor } from "../mod.ts";
import {
  applyDerivative,
  Burgers1D,
  DiffusionSorption,
  dt,
  dx,
  dxx,
  ExpressionError,
  gatherPoints,
  gatherTerms,
  Grid1D,
  Grid2D,
  NavierStokes2D,
  parseResidual,
  PointSampler,
  type Value,
  type Values,
} from "../src/pde/mod.ts";
import { assertClose } from "./helpers.ts";

function f64(values: number[]): Tensor {
  return tensor(values, { dtype: "float64" });
}

function arr(v: Value): number[] {
  return typeof v === "number" ? [v] : (v.toArray() as number[]);
}

// ---------------------------------------------------------------------------------------------
// Parsing and evaluation

Deno.test("a residual compiles to tensor ops: symbols, kinds and values", () => {
  const r = parseResidual("u_t + u * u_x - nu * u_xx", { parameters: { nu: 0.1 } });
  assert.deepEqual(r.symbols.map((s) => [s.name, s.kind]), [
    ["u_t", "derivative"],
    ["u", "field"],
    ["u_x", "derivative"],
    ["nu", "parameter"],
    ["u_xx", "derivative"],
  ]);
  assert.deepEqual(r.unknowns.map((s) => s.spec), [{ t: 1 }, {}, { x: 1 }, { x: 2 }]);
  const v = { u_t: f64([1, 2]), u: f64([3, -1]), u_x: f64([0.5, 4]), u_xx: f64([10, 20]) };
  assertClose(arr(r.evaluate(v)), [1 + 1.5 - 1, 2 - 4 - 2], { atol: 1e-14, rtol: 1e-14 });
  // An equation reads as lhs − rhs; numbers mix with tensors on either side.
  const e = parseResidual("u_t + u * u_x = nu * u_xx + 2", { parameters: { nu: 0.1 } });
  assertClose(arr(e.evaluate(v)), [1 + 1.5 - 1 - 2, 2 - 4 - 2 - 2], { atol: 1e-14, rtol: 1e-14 });
  assert.throws(() => r.evaluate({ u: f64([1]) }), ExpressionError);
});

Deno.test("grid spacings h_t, h_x, h_y are symbols filled from the grid (a ghost-point condition)", () => {
  const r = parseResidual("u - h_x * u_x - 1", {});
  assert.deepEqual(r.symbols.map((s) => [s.name, s.kind]), [["u", "field"], ["h_x", "spacing"], ["u_x", "derivative"]]);
  assert.deepEqual(r.unknowns.map((s) => s.name), ["u", "u_x"]);
  const g = new Grid1D({ nt: 3, t: [0, 2], x: { n: 5 } }); // h_t = 1, h_x = 0.25
  const u = tensor([0, 1, 2].map(() => [0, 1, 2, 3, 4].map((i) => 1 + 0.25 * i)), { dtype: "float64" }); // 1 + x
  const terms = r.terms({ u }, g);
  assert.equal(terms.h_x, 0.25);
  // u − h·u_x − 1 = (1 + x) − 0.25 − 1 = x − 0.25: u one cell to the left, minus 1.
  assertClose(Array.from(r.evaluate(terms).toTypedArray()).slice(0, 5), [-0.25, 0, 0.25, 0.5, 0.75], {
    atol: 1e-14,
    rtol: 1e-14,
  });
  assert.equal(parseResidual("h_t * u_t", {}).partial("u_t").text, "h_t");
  assert.throws(() => parseResidual("h_y * u", {}), ExpressionError); // no y axis in 1D
  const g2 = new Grid2D({ nt: 2, x: { n: 4, periodic: true }, y: { n: 8, periodic: true } });
  assert.equal(parseResidual("h_y * u", { dims: 2 }).terms({ u: tensor([[[0]]]) }, g2).h_y, 1 / 8);
});

Deno.test("definitions: helper functions and named sub-expressions are inlined (PDEBench R(u))", () => {
  const p = { D: 5e-4, phi: 0.29, rho_s: 2880, k_f: 3.5e-4, n_f: 0.874 };
  const r = parseResidual("u_t - D * u_xx / R(u)", {
    parameters: p,
    definitions: ["R(c) = 1 + k * (c + 1e-6)^(n_f - 1)", "k = (1 - phi) / phi * rho_s * k_f * n_f"],
  });
  assert.deepEqual(r.unknowns.map((s) => s.name), ["u_t", "u_xx", "u"]);
  const u = [0.05, 0.3, 0.9];
  const k = ((1 - p.phi) / p.phi) * p.rho_s * p.k_f * p.n_f;
  const want = u.map((c, i) => (i + 1) - (p.D * (i - 1)) / (1 + k * Math.pow(c + 1e-6, p.n_f - 1)));
  assertClose(arr(r.evaluate({ u: f64(u), u_t: f64([1, 2, 3]), u_xx: f64([-1, 0, 1]) })), want, {
    atol: 1e-13,
    rtol: 1e-13,
  });
  // The built-in problem is written the same way and gives the same numbers.
  const ds = new DiffusionSorption().expression;
  assertClose(arr(ds.evaluate({ u: f64(u), u_t: f64([1, 2, 3]), u_xx: f64([-1, 0, 1]) })), want, {
    atol: 1e-13,
    rtol: 1e-13,
  });
  // mathjs's own constant names (phi, i, tau, e) are just parameters here.
  const c = parseResidual("u_t - phi * i * tau * u + e", { parameters: { phi: 2, i: 3, tau: 5, e: 7 } });
  assertClose(arr(c.evaluate({ u_t: f64([0]), u: f64([1]) })), [-30 + 7], { atol: 1e-14, rtol: 1e-14 });
  assertClose(arr(c.partial("u").evaluate({})), [-30], { atol: 1e-14, rtol: 1e-14 });
});

Deno.test("every supported function matches Math on tensors, and its partial matches autodiff", () => {
  const x = [0.3, 0.7, 1.4];
  const cases: [string, (v: number) => number][] = [
    ["sin(u)", Math.sin],
    ["cos(u)", Math.cos],
    ["tan(u)", Math.tan],
    ["sec(u)", (v) => 1 / Math.cos(v)],
    ["exp(u)", Math.exp],
    ["log(u)", Math.log],
    ["log(u, 2)", Math.log2],
    ["sqrt(u)", Math.sqrt],
    ["abs(u - 1)", (v) => Math.abs(v - 1)],
    ["tanh(u)", Math.tanh],
    ["sinh(u)", Math.sinh],
    ["cosh(u)", Math.cosh],
    ["sech(u)", (v) => 1 / Math.cosh(v)],
    ["square(u)", (v) => v * v],
    ["cube(u)", (v) => v * v * v],
    ["pow(u, 2.5)", (v) => v ** 2.5],
    ["u^3 - 2^u + -u + +u", (v) => v ** 3 - 2 ** v],
    ["2 u / (1 + u) - pi * e", (v) => (2 * v) / (1 + v) - Math.PI * Math.E],
  ];
  for (const [src, f] of cases) {
    const r = parseResidual(src, {});
    assertClose(arr(r.evaluate({ u: f64(x) })), x.map(f), { atol: 1e-12, rtol: 1e-12 }, src);
    const g = grad((t: Tensor) => r.evaluate({ u: t }).sum())(f64(x)) as Tensor;
    assertClose(arr(r.partial("u").evaluate({ u: f64(x) })), arr(g), { atol: 1e-10, rtol: 1e-10 }, `∂(${src})/∂u`);
  }
});

// ---------------------------------------------------------------------------------------------
// Partials

/** Central finite difference of the compiled residual with respect to one symbol's values. */
function fdPartial(r: ReturnType<typeof parseResidual>, values: Record<string, Tensor>, s: string): number[] {
  const eps = 1e-6;
  const up = { ...values, [s]: values[s].add(eps) };
  const down = { ...values, [s]: values[s].sub(eps) };
  return arr(r.evaluate(up).sub(r.evaluate(down)).mul(1 / (2 * eps)));
}

Deno.test("symbolic partials agree with finite differences and with autodiff of the residual", () => {
  const cases: { src: string; options: Parameters<typeof parseResidual>[1]; values: Record<string, number[]> }[] = [
    {
      src: "u_t + u * u_x - nu * u_xx",
      options: { parameters: { nu: 0.01 } },
      values: { u_t: [0.2, -1], u: [0.5, 1.5], u_x: [2, -3], u_xx: [1, 4] },
    },
    {
      src: "u_t - D * u_xx / R(u)",
      options: {
        parameters: { D: 5e-4, a: 2.157, n: 0.874 },
        definitions: ["R(u) = 1 + a * (u + 1e-6)^(n - 1)"],
      },
      values: { u_t: [0.1, 0.2], u: [0.05, 0.7], u_xx: [30, -12] },
    },
    {
      src: "u_t - exp(-u) * sin(u_x) + tanh(u * u_xx) - sqrt(1 + u^2) * log(2 + u_x^2) + abs(u) * u_x / (1 + u_x^2)",
      options: {},
      values: { u_t: [0.3, -0.4], u: [0.6, -0.8], u_x: [0.9, 0.2], u_xx: [-1.1, 0.5] },
    },
    {
      src: "w_t + u * w_x + v * w_y = nu * lap_w + F * sin(2 * pi * x)",
      options: { fields: ["w", "u", "v"], parameters: { nu: 1e-3, F: 0.1 }, dims: 2 },
      values: { w_t: [1, 2], u: [0.3, -0.2], w_x: [2, 1], v: [-1, 0.5], w_y: [0.4, 3], lap_w: [10, -5], x: [0.1, 0.7] },
    },
  ];
  for (const { src, options, values } of cases) {
    const r = parseResidual(src, options);
    const v: Record<string, Tensor> = Object.fromEntries(Object.entries(values).map(([k, a]) => [k, f64(a)]));
    for (const s of r.unknowns) {
      const p = r.partial(s.name);
      const sym = arr(p.evaluate(v));
      const full = sym.length === 1 ? new Array(2).fill(sym[0]) : sym;
      assertClose(full, fdPartial(r, v, s.name), { atol: 1e-6, rtol: 1e-6 }, `∂/∂${s.name} of ${src}`);
      const g = grad((t: Tensor) => r.evaluate({ ...v, [s.name]: t }).sum())(v[s.name]) as Tensor;
      assertClose(full, arr(g), { atol: 1e-10, rtol: 1e-10 }, `autodiff ∂/∂${s.name} of ${src}`);
    }
  }
});

Deno.test("constant partials are numbers (linear terms); abs differentiates to sign", () => {
  const r = new Burgers1D({ nu: 0.02 }).expression;
  assert.equal(r.partial("u_t").constant, 1);
  assert.equal(r.partial("u_xx").constant, -0.02);
  assert.equal(r.partial("u").text, "u_x");
  assert.equal(r.partial("u").constant, undefined);
  const a = parseResidual("u_t - abs(u)", {});
  assert.match(a.partial("u").text, /sign/);
  assertClose(arr(a.partial("u").evaluate({ u: f64([-2, 0, 3]) })), [1, 0, -1], {});
  assert.throws(() => r.partial("nu"), ExpressionError);
  // A symbol whose partial vanishes identically drops out of the Jacobian.
  const z = parseResidual("u_t + u_x - u_x", {});
  assert.deepEqual(z.linearize({ u_t: f64([1]), u_x: f64([2]) }).map((j) => j.symbol), ["u_t"]);
});

// ---------------------------------------------------------------------------------------------
// On grids: terms, structured Jacobian, sampled points

Deno.test("evaluateOnGrid matches hand-written finite differences and is differentiable", () => {
  const g = new Grid1D({ nt: 6, x: { n: 7, periodic: true } });
  const u = randn([2, 6, 7], { dtype: "float64", seed: 4 });
  const r = parseResidual("u_t + u * u_x - nu * u_xx + sin(2 * pi * x) * t", { parameters: { nu: 0.05 } });
  const { t, x } = g.coordinates({ dtype: "float64" });
  const want = dt(u, g).add(u.mul(dx(u, g))).sub(dxx(u, g).mul(0.05)).add(x.mul(2 * Math.PI).sin().mul(t));
  assert.ok(r.evaluateOnGrid({ u }, g).sub(want).abs().max().item() < 1e-12);
  gradcheck((v) => r.evaluateOnGrid({ u: v }, g), [randn([1, 6, 7], { dtype: "float64", seed: 5 })]);
  // A user-defined PDE (Allen–Cahn) takes the same path.
  const ac = parseResidual("u_t - eps^2 * u_xx + u^3 - u", { parameters: { eps: 0.1 } });
  const acWant = dt(u, g).sub(dxx(u, g).mul(0.01)).add(u.pow(3)).sub(u);
  assert.ok(ac.evaluateOnGrid({ u }, g).sub(acWant).abs().max().item() < 1e-12);
});

/** Directional derivative of the grid residual along δ by central differences. */
function directional(res: (u: Tensor) => Tensor, u: Tensor, delta: Tensor): Tensor {
  const eps = 1e-6;
  return res(u.add(delta.mul(eps))).sub(res(u.sub(delta.mul(eps)))).mul(1 / (2 * eps));
}

Deno.test("linearize gives the structured Jacobian: Σ ∂r/∂s ⊙ D_s δ equals the directional derivative", () => {
  // Burgers and diffusion–sorption (1D), with one-sided walls for the bounded problem.
  const burgers = new Burgers1D({ nu: 0.03 });
  const gb = new Grid1D({ nt: 6, x: { n: 8, periodic: true } });
  const ds = new DiffusionSorption();
  const gd = ds.grid({ nt: 6, nx: 8, T: 10 });
  for (
    const [problem, g, u] of [
      [burgers, gb, randn([2, 6, 8], { dtype: "float64", seed: 1 })],
      [ds, gd, randn([2, 6, 8], { dtype: "float64", seed: 2 }).abs().add(0.1)],
    ] as const
  ) {
    const delta = randn([2, 6, 8], { dtype: "float64", seed: 3 });
    const terms = problem.terms(u, g as Grid1D);
    let jd: Tensor | number = 0;
    for (const term of problem.expression.linearize(terms)) {
      const op = applyDerivative(delta, g as Grid1D, term.spec);
      jd = typeof jd === "number" ? op.mul(term.coefficient) : jd.add(op.mul(term.coefficient));
    }
    const want = directional((v) => problem.residual(v, g as Grid1D), u, delta);
    const err = (jd as Tensor).sub(want).abs().max().item() / want.abs().max().item();
    assert.ok(err < 1e-7, `${problem.name}: relative error ${err}`);
  }
  // Navier–Stokes: u and v are linear in w (Biot–Savart), so δu, δv come from fieldsOf(δw).
  const ns = new NavierStokes2D({ nu: 1e-3, forcing: 0.1 });
  const g2 = new Grid2D({ nt: 4, x: { n: 8, periodic: true }, y: { n: 8, periodic: true } });
  const w = randn([1, 4, 8, 8], { dtype: "float64", seed: 6 });
  const dw = randn([1, 4, 8, 8], { dtype: "float64", seed: 7 });
  const dfields = ns.fieldsOf(dw, g2);
  let jd: Tensor | null = null;
  for (const term of ns.expression.linearize(ns.terms(w, g2))) {
    const piece = applyDerivative(dfields[term.field], g2, term.spec).mul(term.coefficient);
    jd = jd ? jd.add(piece) : piece;
  }
  const want = directional((v) => ns.residual(v, g2), w, dw);
  assert.ok(jd!.sub(want).abs().max().item() / want.abs().max().item() < 1e-7);
});

Deno.test("sampled evaluation: residual and partials at M points equal the full-grid values there", () => {
  const g = new Grid2D({ nt: 5, x: { n: 6, periodic: true }, y: { n: 6, periodic: true } });
  const ns = new NavierStokes2D({ nu: 1e-3, forcing: 0.1 });
  const w = randn([2, 5, 6, 6], { dtype: "float64", seed: 8 });
  const idx = new PointSampler(g, { seed: 1 }).next(25);
  const terms = ns.terms(w, g);
  const at = gatherTerms(terms, g, idx);
  const full = ns.expression.evaluate(terms);
  assert.ok(ns.expression.evaluate(at).sub(gatherPoints(full, g, idx)).abs().max().item() < 1e-12);
  const pu = ns.expression.partial("u").evaluate(at) as Tensor;
  assert.ok(pu.sub(gatherPoints(terms.w_x as Tensor, g, idx)).abs().max().item() < 1e-12);
  assert.deepEqual(pu.shape, [2, 25]);
});

// ---------------------------------------------------------------------------------------------
// Errors

function expectError(
  f: () => unknown,
  check: { symbol?: string; position?: number; message: RegExp },
): ExpressionError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ExpressionError, `expected an ExpressionError, got ${err}`);
  assert.ok(err instanceof PatchworkError);
  assert.match(err.message, check.message);
  if ("symbol" in check) assert.equal(err.symbol, check.symbol);
  if ("position" in check) assert.equal(err.position, check.position);
  return err;
}

Deno.test("errors name the offending symbol and point at it", () => {
  const opts = { parameters: { D: 1 } };
  // Unknown symbol: name, position, and a caret under it in the message.
  const e = expectError(() => parseResidual("u_t - D * u_xx + k", opts), {
    symbol: "k",
    position: 17,
    message: /unknown symbol "k".*u_t - D \* u_xx \+ k\n {4}\s{17}\^/s,
  });
  assert.equal(e.expression, "u_t - D * u_xx + k");
  // Unsupported function.
  expectError(() => parseResidual("u_t - erfc(u)", opts), { symbol: "erfc", position: 6, message: /"erfc"/ });
  // Syntax error: position from mathjs.
  expectError(() => parseResidual("u_t + * u", opts), { position: 6, message: /syntax error/ });
  // Wrong arity.
  expectError(() => parseResidual("u_t - exp(u, 2)", opts), { symbol: "exp", position: 6, message: /argument/ });
  // Derivative letters outside the grid's axes.
  expectError(() => parseResidual("u_t - u_yy", opts), { symbol: "u_yy", position: 6, message: /u_yy/ });
  assert.doesNotThrow(() => parseResidual("u_t - u_yy", { dims: 2 }));
  // Unknown field in a derivative.
  expectError(() => parseResidual("u_t - q_xx", opts), { symbol: "q_xx", message: /q_xx/ });
  // Unsupported constructs.
  expectError(() => parseResidual("u_t - (u > 1 ? 1 : 0)", opts), { message: /unsupported syntax Conditional/ });
  expectError(() => parseResidual("u_t + [1, 2]", opts), { message: /unsupported syntax Array/ });
  expectError(() => parseResidual("u_t + u mod 2", opts), { symbol: "mod", message: /unsupported operator/ });
  expectError(() => parseResidual("u_t = u = 2", opts), { position: 8, message: /at most one `=`/ });
  // Errors inside a definition point into the definition.
  const d = expectError(
    () => parseResidual("u_t - R(u)", { definitions: ["R(v) = v * q"] }),
    { symbol: "q", position: 11, message: /unknown symbol "q"/ },
  );
  assert.equal(d.expression, "R(v) = v * q");
  expectError(() => parseResidual("u_t - exp(u)", { definitions: ["exp(v) = v"] }), {
    symbol: "exp",
    message: /shadows/,
  });
  expectError(() => parseResidual("u_t - R", { definitions: ["R(v) = v"] }), { symbol: "R", message: /function/ });
  // A missing value at evaluation names the symbol.
  const r = parseResidual("u_t - D * u_xx", opts);
  expectError(() => r.evaluate({ u_t: f64([1]) } as Values), { symbol: "u_xx", position: 10, message: /u_xx/ });
  const g = new Grid1D({ nt: 4, x: { n: 5 } });
  expectError(() => parseResidual("u_t - f", { inputs: ["f"] }).evaluateOnGrid({ u: randn([4, 5]) }, g), {
    symbol: "f",
    message: /input "f"/,
  });
});

/**
 * PDE residuals written as mathjs expressions, compiled into differentiable tensor ops.
 *
 * A residual is a string over named symbols:
 * - **fields** (`u`, or `w`, `u`, `v` for Navier–Stokes) and their **derivatives**, written
 *   `<field>_<axes>` with the axes letters t, x, y in any order and count (`u_t`, `u_x`, `u_xx`,
 *   `u_xy`, `w_y`) or `lap_<field>` for the Laplacian;
 * - **parameters**: named numbers (`D`, `nu`);
 * - **inputs**: other named values given at evaluation (a forcing tensor, an initial condition);
 * - the **coordinates** `t`, `x` (and `y` in 2D), the grid **spacings** `h_t`, `h_x` (and `h_y`),
 *   taken from the grid at evaluation (a boundary condition at a ghost point one cell outside the
 *   wall reads `u - h_x * u_x`), and the constants `pi` and `e`;
 * - **definitions**: helper functions `R(u) = 1 + c * u^(n - 1)` and named sub-expressions
 *   `c = (1 - phi) / phi`, inlined where they are used.
 *
 * Functions: sin, cos, tan, exp, log (natural, or `log(x, base)`), sqrt, abs, tanh, sinh, cosh,
 * sech, sec, square, cube, pow; operators + − * / ^, unary minus, parentheses, numbers. An
 * equation `lhs = rhs` is read as the residual `lhs − rhs`.
 *
 * The residual r is pointwise in its field and derivative symbols s, and each s is a linear
 * operator D_s of a field. So its Jacobian with respect to a field perturbation δ is structured:
 * `J·δ = Σ_s (∂r/∂s) ⊙ D_s δ`. The partials ∂r/∂s come from mathjs's symbolic `derivative` (and
 * `simplify`) and compile to tensor ops too; {@link ResidualExpression.linearize} returns them with
 * each symbol's operator, which is all a Gauss–Newton or Levenberg–Marquardt solver needs.
 *
 * Errors (syntax, unknown symbol, unsupported function or construct, wrong arity) throw an
 * {@link ExpressionError} that quotes the expression and points at the offending symbol.
 *
 * @example
 * ```ts
 * import { Grid1D, parseResidual } from "./mod.ts";
 * const r = parseResidual("u_t - D * u_xx / R(u)", {
 *   fields: ["u"],
 *   parameters: { D: 5e-4, c: 2.16, n: 0.874 },
 *   definitions: ["R(u) = 1 + c * (u + 1e-6)^(n - 1)"],
 * });
 * r.unknowns.map((s) => s.name); // ["u_t", "u_xx", "u"]
 * r.partial("u_xx").text; // "-(D / (c * (u + 1e-6) ^ (n - 1) + 1))" or an equivalent form
 * ```
 *
 * @module
 */

import {
  ConstantNode,
  derivative,
  FunctionNode,
  type MathNode,
  OperatorNode,
  ParenthesisNode,
  parse,
  simplify,
  SymbolNode,
  // A full specifier, so the module also resolves when patchwork is imported by URL (where the
  // importer's deno.json does not map bare names). Keep the version equal to deno.json's pin.
  // deno-lint-ignore no-import-prefix
} from "npm:mathjs@15.2.0";
import {
  abs,
  add,
  cos,
  div,
  exp,
  log,
  mul,
  PatchworkError,
  pow,
  sign,
  sin,
  sqrt,
  sub,
  tanh,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
import { applyDerivative, type DerivativeSpec } from "./finite_difference.ts";
import type { Grid } from "./grid.ts";
import { gatherPoints } from "./sampling.ts";

/** Where an {@link ExpressionError} points. */
export interface ExpressionErrorSite {
  /** The expression (or definition) text the error is about. */
  expression: string;
  /** The offending symbol or function name, if one is to blame. */
  symbol?: string;
  /** Zero-based character position in `expression`, when known. */
  position?: number;
}

/**
 * A residual expression that cannot be parsed, names a symbol or function that is not known, or
 * cannot be evaluated or differentiated. The message quotes the expression with a caret under the
 * offending position.
 *
 * @example
 * ```ts
 * import { ExpressionError, parseResidual } from "./mod.ts";
 * try {
 *   parseResidual("u_t - k * u_xx", { fields: ["u"], parameters: { D: 1 } });
 * } catch (e) {
 *   (e as ExpressionError).symbol; // "k"
 *   (e as ExpressionError).position; // 6
 * }
 * ```
 */
export class ExpressionError extends PatchworkError {
  /** The expression text. */
  readonly expression: string;
  /** The offending symbol, if any. */
  readonly symbol: string | undefined;
  /** Zero-based character position of the problem in `expression`, if known. */
  readonly position: number | undefined;

  /** `detail` plus the expression with a caret under `site.position`. */
  constructor(detail: string, site: ExpressionErrorSite) {
    const where = site.position === undefined ? "" : ` at character ${site.position}`;
    const caret = site.position === undefined ? "" : `\n    ${" ".repeat(site.position)}^`;
    super("expression", `${detail}${where} in "${site.expression}"\n    ${site.expression}${caret}`);
    this.expression = site.expression;
    this.symbol = site.symbol;
    this.position = site.position;
  }
}

/** A value bound to a symbol: a tensor (broadcast like any tensor op) or a number. */
export type Value = Tensor | number;

/** Values of the symbols an expression reads. */
export type Values = Readonly<Record<string, Value>>;

/** What a symbol of a residual stands for. */
export type SymbolKind = "field" | "derivative" | "parameter" | "input" | "coordinate" | "spacing" | "constant";

/** A free symbol of a residual and what it stands for. */
export interface SymbolInfo {
  /** The symbol as written. */
  readonly name: string;
  /** Its kind. */
  readonly kind: SymbolKind;
  /** For fields and derivatives: the field it is (a derivative of). */
  readonly field?: string;
  /** For fields and derivatives: the linear operator applied to the field (`{}` for the field itself). */
  readonly spec?: DerivativeSpec;
}

/** Options of {@link parseResidual}. */
export interface ExpressionOptions {
  /** Field names whose values and derivatives the residual may use (default `["u"]`). */
  fields?: readonly string[];
  /** Named constants. */
  parameters?: Readonly<Record<string, number>>;
  /** Helper definitions, `"R(u) = 1 + c * u^(n - 1)"` or `"c = (1 - phi) / phi"`, inlined where used. */
  definitions?: readonly string[];
  /** Other named values supplied at evaluation time (tensors or numbers). */
  inputs?: readonly string[];
  /** Number of space dimensions: which derivative letters and coordinates exist (default 1: t and x). */
  dims?: 1 | 2;
}

/** One term of the structured Jacobian: `coefficient ⊙ applyDerivative(δ[field], grid, spec)`. */
export interface LinearTerm {
  /** The field or derivative symbol. */
  readonly symbol: string;
  /** The field it acts on. */
  readonly field: string;
  /** The linear operator. */
  readonly spec: DerivativeSpec;
  /** ∂r/∂symbol at the given values. */
  readonly coefficient: Value;
}

type Evaluator = (env: Values) => Value;
type Compiled = Evaluator | number;

const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };

interface FnEntry {
  arity: readonly number[];
  /** Only produced by differentiation (not accepted in user expressions). */
  internal?: boolean;
  num: (...a: number[]) => number;
  ten: (...a: Value[]) => Value;
}

const asT = (v: Value): Tensor => v as Tensor;
const coshT = (x: Tensor) => exp(x).add(exp(x.neg())).mul(0.5);

const FUNCTIONS: Record<string, FnEntry> = {
  sin: { arity: [1], num: Math.sin, ten: (x) => sin(asT(x)) },
  cos: { arity: [1], num: Math.cos, ten: (x) => cos(asT(x)) },
  tan: { arity: [1], num: Math.tan, ten: (x) => sin(asT(x)).div(cos(asT(x))) },
  sec: { arity: [1], num: (x) => 1 / Math.cos(x), ten: (x) => div(1, cos(asT(x))) },
  exp: { arity: [1], num: Math.exp, ten: (x) => exp(asT(x)) },
  log: {
    arity: [1, 2],
    num: (x, b) => (b === undefined ? Math.log(x) : Math.log(x) / Math.log(b)),
    ten: (x, b) => {
      if (b === undefined) return log(asT(x));
      if (typeof b === "number") return log(asT(x)).mul(1 / Math.log(b));
      return div(typeof x === "number" ? Math.log(x) : log(asT(x)), log(asT(b)));
    },
  },
  sqrt: { arity: [1], num: Math.sqrt, ten: (x) => sqrt(asT(x)) },
  abs: { arity: [1], num: Math.abs, ten: (x) => abs(asT(x)) },
  sign: { arity: [1], internal: true, num: Math.sign, ten: (x) => sign(asT(x)) },
  tanh: { arity: [1], num: Math.tanh, ten: (x) => tanh(asT(x)) },
  sinh: { arity: [1], num: Math.sinh, ten: (x) => exp(asT(x)).sub(exp(asT(x).neg())).mul(0.5) },
  cosh: { arity: [1], num: Math.cosh, ten: (x) => coshT(asT(x)) },
  sech: { arity: [1], num: (x) => 1 / Math.cosh(x), ten: (x) => div(1, coshT(asT(x))) },
  square: { arity: [1], num: (x) => x * x, ten: (x) => asT(x).square() },
  cube: { arity: [1], num: (x) => x * x * x, ten: (x) => asT(x).pow(3) },
  pow: { arity: [2], num: Math.pow, ten: (a, b) => powValue(a, b) },
};

const USER_FUNCTIONS = Object.keys(FUNCTIONS).filter((f) => !FUNCTIONS[f].internal);

/** Rewrites square(x), cube(x) and pow(a, b) as powers, which mathjs's `derivative` understands. */
function canonical(node: MathNode): MathNode {
  return rewrite(node, (n) => {
    if (n.type !== "FunctionNode") return undefined;
    const f = n as FunctionNode;
    const args = f.args.map(canonical);
    const power = (a: MathNode, b: MathNode) =>
      new OperatorNode("^", "pow", [new ParenthesisNode(a), new ParenthesisNode(b)]);
    if (f.fn.name === "square" && args.length === 1) return power(args[0], new ConstantNode(2));
    if (f.fn.name === "cube" && args.length === 1) return power(args[0], new ConstantNode(3));
    if (f.fn.name === "pow" && args.length === 2) return power(args[0], args[1]);
    return new FunctionNode(f.fn, args);
  });
}

function powValue(a: Value, b: Value): Value {
  if (typeof b === "number" && typeof a !== "number") {
    if (b === 1) return a;
    if (b === 2) return a.square();
    if (b === 0.5) return sqrt(a);
    if (b === -1) return a.pow(-1);
  }
  return pow(a, b);
}

const OPERATORS: Record<string, { num: (...a: number[]) => number; ten: (a: Value, b?: Value) => Value }> = {
  add: { num: (a, b) => a + b, ten: (a, b) => add(a, b!) },
  subtract: { num: (a, b) => a - b, ten: (a, b) => sub(a, b!) },
  multiply: { num: (a, b) => a * b, ten: (a, b) => mul(a, b!) },
  divide: { num: (a, b) => a / b, ten: (a, b) => div(a, b!) },
  pow: { num: Math.pow, ten: (a, b) => powValue(a, b!) },
  unaryMinus: { num: (a) => -a, ten: (a) => asT(a).neg() },
  unaryPlus: { num: (a) => a, ten: (a) => a },
};

/** Zero-based position of the first whole-word occurrence of `name` in `text` (a call when `call`). */
/**
 * The grid spacing a spacing symbol (`h_t`, `h_x`, `h_y`) stands for.
 *
 * @example
 * ```ts
 * import { Grid1D, spacingOf } from "./mod.ts";
 * spacingOf(new Grid1D({ nt: 3, t: [0, 2], x: { n: 5 } }), "h_x"); // 0.25
 * ```
 */
export function spacingOf(grid: Grid, name: string): number {
  return grid.axis(name.slice(2) as "t" | "x" | "y").spacing;
}

function locate(text: string, name: string, call = false): number | undefined {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`(?<![A-Za-z0-9_$])${esc}(?![A-Za-z0-9_$])${call ? "(?=\\s*\\()" : ""}`);
  const m = re.exec(text);
  return m ? m.index : undefined;
}

/** Positions of `=` signs that are assignments (not parts of ==, <=, >=, !=). */
function assignmentSigns(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "=") continue;
    const prev = text[i - 1];
    const next = text[i + 1];
    if (prev === "=" || prev === "<" || prev === ">" || prev === "!" || next === "=") continue;
    out.push(i);
  }
  return out;
}

function parseText(text: string, offset = 0, whole = text): MathNode {
  try {
    return parse(text);
  } catch (e) {
    const err = e as Error & { char?: number };
    const msg = err.message.replace(/\s*\(char \d+\)\s*$/, "");
    const pos = typeof err.char === "number" ? Math.max(0, Math.min(whole.length, offset + err.char - 1)) : undefined;
    throw new ExpressionError(`syntax error: ${msg}`, { expression: whole, position: pos });
  }
}

/** Depth-first rewrite: `fn` may replace a node (its replacement is not visited again). */
function rewrite(node: MathNode, fn: (n: MathNode) => MathNode | undefined): MathNode {
  const r = fn(node);
  if (r !== undefined) return r;
  return node.map((child: MathNode) => rewrite(child, fn));
}

function forEachNode(node: MathNode, fn: (n: MathNode, parent: MathNode | null) => void): void {
  node.traverse((n: MathNode, _path: string, parent: MathNode | null) => fn(n, parent));
}

interface FunctionDef {
  name: string;
  params: string[];
  body: MathNode;
  source: string;
}

interface ValueDef {
  name: string;
  body: MathNode;
  source: string;
}

/**
 * A compiled scalar expression (a residual's partial derivative, or any pointwise formula).
 *
 * @example
 * ```ts
 * import { parseResidual } from "./mod.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const r = parseResidual("u_t + u * u_x - nu * u_xx", { parameters: { nu: 0.01 } });
 * const dr = r.partial("u"); // ∂r/∂u = u_x
 * dr.text; // "u_x"
 * dr.evaluate({ u_x: tensor([1, 2]) }); // the tensor [1, 2]
 * r.partial("u_xx").constant; // -0.01
 * ```
 */
export class CompiledExpression {
  /** The expression as mathjs prints it. */
  readonly text: string;
  /** The symbols it reads at evaluation (fields, derivatives, inputs, coordinates). */
  readonly reads: readonly string[];
  /** Its value when it reads no symbols (a constant partial: the residual is linear in that symbol). */
  readonly constant: number | undefined;
  readonly #compiled: Compiled;
  readonly #where: string;

  /** Low level: built by {@link parseResidual}. */
  constructor(text: string, compiled: Compiled, reads: readonly string[], where: string) {
    this.text = text;
    this.#compiled = compiled;
    this.reads = reads;
    this.constant = typeof compiled === "number" ? compiled : undefined;
    this.#where = where;
  }

  /**
   * Evaluates with tensor ops (differentiable in every tensor value). Returns a number when the
   * expression is constant.
   *
   * @example
   * ```ts
   * import { parseResidual } from "./mod.ts";
   * const r = parseResidual("u_t - u^2", {});
   * r.partial("u").evaluate({ u: 3 }); // -6
   * ```
   */
  evaluate(values: Values): Value {
    if (typeof this.#compiled === "number") return this.#compiled;
    for (const s of this.reads) {
      if (!(s in values)) {
        throw new ExpressionError(`no value given for symbol "${s}"`, {
          expression: this.#where,
          symbol: s,
          position: locate(this.#where, s),
        });
      }
    }
    return this.#compiled(values);
  }
}

/**
 * A parsed and compiled PDE residual with its symbolic partial derivatives. Build one with
 * {@link parseResidual}.
 *
 * @example
 * ```ts
 * import { Grid1D, parseResidual } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const r = parseResidual("u_t - kappa * u_xx", { parameters: { kappa: 0.1 } });
 * const g = new Grid1D({ nt: 16, x: { n: 32 } });
 * const u = randn([2, 16, 32], { dtype: "float64" });
 * r.evaluateOnGrid({ u }, g).shape; // [2, 16, 32]
 * ```
 */
export class ResidualExpression {
  /** The residual as written. */
  readonly source: string;
  /** The residual with every definition inlined, as mathjs prints it. */
  readonly text: string;
  /** Parameter values. */
  readonly parameters: Readonly<Record<string, number>>;
  /** Field names. */
  readonly fields: readonly string[];
  /** Number of space dimensions. */
  readonly dims: 1 | 2;
  /** Every free symbol the inlined residual reads, in order of first appearance. */
  readonly symbols: readonly SymbolInfo[];
  /** The field and derivative symbols (the arguments of the structured Jacobian). */
  readonly unknowns: readonly SymbolInfo[];
  readonly #node: MathNode;
  readonly #compiled: Compiled;
  readonly #resolver: Resolver;
  readonly #partials = new Map<string, CompiledExpression>();

  /** Low level: use {@link parseResidual}. */
  constructor(source: string, node: MathNode, resolver: Resolver) {
    this.source = source;
    this.#node = node;
    this.#resolver = resolver;
    this.parameters = resolver.parameters;
    this.fields = resolver.fields;
    this.dims = resolver.dims;
    this.text = node.toString();
    const seen = new Map<string, SymbolInfo>();
    forEachNode(node, (n, parent) => {
      if (n.type !== "SymbolNode") return;
      if (parent?.type === "FunctionNode" && (parent as FunctionNode).fn === n) return;
      const name = (n as SymbolNode).name;
      if (!seen.has(name)) seen.set(name, resolver.resolve(name)!);
    });
    this.symbols = [...seen.values()];
    this.unknowns = this.symbols.filter((s) => s.kind === "field" || s.kind === "derivative");
    this.#compiled = compileNode(node, resolver, source);
    for (const s of this.unknowns) this.#partials.set(s.name, this.#differentiate(s.name));
  }

  #differentiate(name: string): CompiledExpression {
    // Rename every symbol to a neutral name so mathjs's simplifier never mistakes a user's
    // symbol for one of its constants (i, phi, tau, …).
    const names = this.symbols.map((s) => s.name);
    const alias = new Map(names.map((s, k) => [s, `_s${k}`]));
    const back = new Map(names.map((s, k) => [`_s${k}`, s]));
    const rename = (node: MathNode, map: Map<string, string>): MathNode =>
      rewrite(node, (n) => {
        if (n.type === "SymbolNode" && map.has((n as SymbolNode).name)) {
          return new SymbolNode(map.get((n as SymbolNode).name)!);
        }
        if (n.type === "FunctionNode") {
          const f = n as FunctionNode;
          return new FunctionNode(f.fn, f.args.map((a) => rename(a, map)));
        }
        return undefined;
      });
    let d: MathNode;
    try {
      d = derivative(rename(this.#node, alias), alias.get(name)!, { simplify: false });
    } catch (e) {
      throw new ExpressionError(`cannot differentiate with respect to "${name}": ${(e as Error).message}`, {
        expression: this.source,
        symbol: name,
        position: locate(this.source, name),
      });
    }
    d = rename(simplify(absDerivative(d)), back);
    const text = `∂(${this.source})/∂${name} = ${d.toString()}`;
    const reads: string[] = [];
    forEachNode(d, (n, parent) => {
      if (n.type !== "SymbolNode") return;
      if (parent?.type === "FunctionNode" && (parent as FunctionNode).fn === n) return;
      const s = (n as SymbolNode).name;
      const info = this.#resolver.resolve(s);
      if (info && info.kind !== "parameter" && info.kind !== "constant" && !reads.includes(s)) reads.push(s);
    });
    return new CompiledExpression(d.toString(), compileNode(d, this.#resolver, text), reads, text);
  }

  /**
   * ∂r/∂`symbol` for a field or derivative symbol of the residual.
   *
   * @example
   * ```ts
   * import { parseResidual } from "./mod.ts";
   * parseResidual("u_t + u * u_x", {}).partial("u_x").text; // "u"
   * ```
   */
  partial(symbol: string): CompiledExpression {
    const p = this.#partials.get(symbol);
    if (!p) {
      throw new ExpressionError(
        `"${symbol}" is not a field or derivative symbol of this residual (those are: ${
          this.unknowns.map((s) => s.name).join(", ")
        })`,
        { expression: this.source, symbol },
      );
    }
    return p;
  }

  /** All partials, keyed by symbol. */
  get partials(): ReadonlyMap<string, CompiledExpression> {
    return this.#partials;
  }

  /**
   * Evaluates the residual pointwise from the values of its symbols (tensors broadcast together).
   *
   * @example
   * ```ts
   * import { parseResidual } from "./mod.ts";
   * import { tensor } from "../tensor/mod.ts";
   * const r = parseResidual("u_t - 2 * u_xx", {});
   * r.evaluate({ u_t: tensor([1, 1]), u_xx: tensor([0.5, 1]) }).toArray(); // [0, -1]
   * ```
   */
  evaluate(values: Values): Tensor {
    for (const s of this.symbols) {
      if (s.kind === "parameter" || s.kind === "constant") continue;
      if (!(s.name in values)) {
        throw new ExpressionError(`no value given for ${s.kind} "${s.name}"`, {
          expression: this.source,
          symbol: s.name,
          position: locate(this.source, s.name),
        });
      }
    }
    const out = typeof this.#compiled === "number" ? this.#compiled : this.#compiled(values);
    return typeof out === "number" ? tensor(out, { dtype: "float64" }) : out;
  }

  /**
   * The values of every symbol the residual reads, computed on a grid: fields from `fields`
   * (`[...batch, nt, nx(, ny)]`), derivatives by finite differences (`finite_difference.ts`),
   * coordinates and spacings from the grid (unless given in `inputs`), inputs from `inputs`.
   *
   * @example
   * ```ts
   * import { Grid1D, parseResidual } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const r = parseResidual("u_t + u * u_x - nu * u_xx", { parameters: { nu: 0.01 } });
   * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
   * Object.keys(r.terms({ u: randn([8, 16]) }, g)); // ["u_t", "u", "u_x", "u_xx"]
   * ```
   */
  terms(fields: Readonly<Record<string, Tensor>>, grid: Grid, inputs: Values = {}): Record<string, Value> {
    const out: Record<string, Value> = {};
    let coords: Record<string, Tensor> | undefined;
    const any = Object.values(fields)[0];
    for (const s of this.symbols) {
      if (s.name in inputs) {
        out[s.name] = inputs[s.name];
        continue;
      }
      if (s.kind === "field" || s.kind === "derivative") {
        const f = fields[s.field!];
        if (!f) {
          throw new ExpressionError(`no tensor given for field "${s.field}"`, {
            expression: this.source,
            symbol: s.name,
            position: locate(this.source, s.name),
          });
        }
        out[s.name] = s.kind === "field" ? f : applyDerivative(f, grid, s.spec!);
      } else if (s.kind === "coordinate") {
        coords ??= grid.coordinates({ dtype: any?.dtype ?? "float64", backend: any?.backend });
        out[s.name] = coords[s.name];
      } else if (s.kind === "spacing") {
        out[s.name] = spacingOf(grid, s.name);
      } else if (s.kind === "input") {
        throw new ExpressionError(`no value given for input "${s.name}"`, {
          expression: this.source,
          symbol: s.name,
          position: locate(this.source, s.name),
        });
      }
    }
    return out;
  }

  /**
   * The residual of fields on a grid: `evaluate(terms(fields, grid, inputs))`.
   *
   * @example
   * ```ts
   * import { Grid2D, parseResidual } from "./mod.ts";
   * import { randn } from "../tensor/mod.ts";
   * const r = parseResidual("u_t - kappa * lap_u", { parameters: { kappa: 0.01 }, dims: 2 });
   * const g = new Grid2D({ nt: 4, x: { n: 8, periodic: true }, y: { n: 8, periodic: true } });
   * r.evaluateOnGrid({ u: randn([4, 8, 8]) }, g).shape; // [4, 8, 8]
   * ```
   */
  evaluateOnGrid(fields: Readonly<Record<string, Tensor>>, grid: Grid, inputs: Values = {}): Tensor {
    return this.evaluate(this.terms(fields, grid, inputs));
  }

  /**
   * The structured Jacobian at `values` (as from {@link terms}): one {@link LinearTerm} per field or
   * derivative symbol whose partial is not identically zero. A perturbation δ of the fields changes
   * the residual by `Σ coefficient ⊙ applyDerivative(δ[field], grid, spec)` to first order.
   *
   * @example
   * ```ts
   * import { parseResidual } from "./mod.ts";
   * import { tensor } from "../tensor/mod.ts";
   * const r = parseResidual("u_t + u * u_x - nu * u_xx", { parameters: { nu: 0.1 } });
   * const J = r.linearize({ u: tensor([1]), u_x: tensor([2]), u_t: tensor([0]), u_xx: tensor([0]) });
   * J.map((j) => j.symbol); // ["u_t", "u", "u_x", "u_xx"]; coefficients 1, u_x, u, −0.1
   * ```
   */
  linearize(values: Values): LinearTerm[] {
    const out: LinearTerm[] = [];
    for (const s of this.unknowns) {
      const p = this.#partials.get(s.name)!;
      if (p.constant === 0) continue;
      out.push({ symbol: s.name, field: s.field!, spec: s.spec!, coefficient: p.evaluate(values) });
    }
    return out;
  }
}

/**
 * Picks the values of grid tensors at flat point indices (see `sampling.ts`): every tensor value
 * ending in the grid's shape becomes `[...batch, m]`; numbers pass through. Evaluating a residual
 * or a partial on the result gives it at those points only.
 *
 * @example
 * ```ts
 * import { gatherTerms, Grid1D, parseResidual, PointSampler } from "./mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const g = new Grid1D({ nt: 8, x: { n: 16, periodic: true } });
 * const r = parseResidual("u_t + u * u_x", {});
 * const terms = r.terms({ u: randn([2, 8, 16]) }, g);
 * const idx = new PointSampler(g, { seed: 0 }).next(20);
 * r.evaluate(gatherTerms(terms, g, idx)).shape; // [2, 20]
 * ```
 */
export function gatherTerms(values: Values, grid: Grid, indices: Tensor): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, v] of Object.entries(values)) out[k] = typeof v === "number" ? v : gatherPoints(v, grid, indices);
  return out;
}

/** mathjs differentiates abs(x) as abs(x)/x; rewrite that as sign(x) so it is finite at 0. */
function absDerivative(node: MathNode): MathNode {
  return rewrite(node, (n) => {
    if (n.type !== "OperatorNode") return undefined;
    const op = n as OperatorNode;
    if (op.fn !== "divide") return undefined;
    const [a, b] = op.args;
    if (a.type === "FunctionNode" && (a as FunctionNode).fn.name === "abs") {
      const inner = (a as FunctionNode).args[0];
      if (inner.toString() === b.toString()) return new FunctionNode(new SymbolNode("sign"), [absDerivative(b)]);
    }
    return undefined;
  });
}

class Resolver {
  readonly fields: readonly string[];
  readonly parameters: Readonly<Record<string, number>>;
  readonly inputs: readonly string[];
  readonly dims: 1 | 2;
  readonly functions: Map<string, FunctionDef> = new Map();
  readonly values: Map<string, ValueDef> = new Map();

  constructor(options: ExpressionOptions) {
    this.fields = [...(options.fields ?? ["u"])];
    this.parameters = { ...(options.parameters ?? {}) };
    this.inputs = [...(options.inputs ?? [])];
    this.dims = options.dims ?? 1;
    for (const [k, v] of Object.entries(this.parameters)) {
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new ExpressionError(`parameter "${k}" must be a finite number, got ${v}`, { expression: k, symbol: k });
      }
    }
  }

  /** What `name` is, or undefined for an unknown symbol (function parameters are checked by the caller). */
  resolve(name: string): SymbolInfo | undefined {
    if (name in this.parameters) return { name, kind: "parameter" };
    if (this.inputs.includes(name)) return { name, kind: "input" };
    if (this.fields.includes(name)) return { name, kind: "field", field: name, spec: {} };
    const lap = /^lap_(.+)$/.exec(name);
    if (lap && this.fields.includes(lap[1])) {
      return { name, kind: "derivative", field: lap[1], spec: { laplacian: true } };
    }
    const letters = this.dims === 2 ? "txy" : "tx";
    const m = new RegExp(`^(.+)_([${letters}]+)$`).exec(name);
    if (m && this.fields.includes(m[1])) {
      const spec: { t?: number; x?: number; y?: number } = {};
      for (const c of m[2]) spec[c as "t" | "x" | "y"] = (spec[c as "t" | "x" | "y"] ?? 0) + 1;
      return { name, kind: "derivative", field: m[1], spec };
    }
    if (name === "t" || name === "x" || (name === "y" && this.dims === 2)) return { name, kind: "coordinate" };
    if (name === "h_t" || name === "h_x" || (name === "h_y" && this.dims === 2)) return { name, kind: "spacing" };
    if (name in CONSTANTS) return { name, kind: "constant" };
    return undefined;
  }

  describe(): string {
    const f = this.fields;
    const ex = f.length ? `${f[0]}_t, ${f[0]}_x, ${f[0]}_xx${this.dims === 2 ? `, ${f[0]}_y, lap_${f[0]}` : ""}` : "";
    const parts = [
      `fields: ${f.join(", ") || "none"}`,
      f.length ? `derivatives like ${ex}` : "",
      `parameters: ${Object.keys(this.parameters).join(", ") || "none"}`,
      this.inputs.length ? `inputs: ${this.inputs.join(", ")}` : "",
      this.values.size ? `definitions: ${[...this.values.keys()].join(", ")}` : "",
      `coordinates: ${this.dims === 2 ? "t, x, y" : "t, x"}`,
      `spacings: ${this.dims === 2 ? "h_t, h_x, h_y" : "h_t, h_x"}`,
    ];
    return parts.filter((p) => p).join("; ");
  }

  /** Checks every symbol and function of `node` (text `source`), with `locals` as extra symbols. */
  validate(node: MathNode, source: string, locals: readonly string[] = []): void {
    forEachNode(node, (n, parent) => {
      switch (n.type) {
        case "ConstantNode": {
          if (typeof (n as ConstantNode).value !== "number") {
            throw new ExpressionError(`unsupported constant ${n.toString()} (only numbers)`, {
              expression: source,
              position: source.indexOf(n.toString()) >= 0 ? source.indexOf(n.toString()) : undefined,
            });
          }
          return;
        }
        case "SymbolNode": {
          const name = (n as SymbolNode).name;
          if (parent?.type === "FunctionNode" && (parent as FunctionNode).fn === n) return;
          if (locals.includes(name) || this.values.has(name) || this.resolve(name)) return;
          const isFn = name in FUNCTIONS || this.functions.has(name);
          throw new ExpressionError(
            isFn ? `"${name}" is a function; call it with arguments` : `unknown symbol "${name}" (${this.describe()})`,
            { expression: source, symbol: name, position: locate(source, name) },
          );
        }
        case "FunctionNode": {
          const f = n as FunctionNode;
          if (f.fn.type !== "SymbolNode") {
            throw new ExpressionError(`unsupported call ${n.toString()}`, { expression: source });
          }
          const name = f.fn.name;
          const def = this.functions.get(name);
          const builtin = FUNCTIONS[name]?.internal ? undefined : FUNCTIONS[name];
          const arity = def ? [def.params.length] : builtin?.arity;
          if (!arity) {
            throw new ExpressionError(
              `unsupported function "${name}" (supported: ${USER_FUNCTIONS.join(", ")}${
                this.functions.size ? `; defined: ${[...this.functions.keys()].join(", ")}` : ""
              })`,
              { expression: source, symbol: name, position: locate(source, name, true) },
            );
          }
          if (!arity.includes(f.args.length)) {
            throw new ExpressionError(
              `function "${name}" takes ${arity.join(" or ")} argument(s), got ${f.args.length}`,
              { expression: source, symbol: name, position: locate(source, name, true) },
            );
          }
          return;
        }
        case "OperatorNode": {
          const op = n as OperatorNode;
          if (!(op.fn in OPERATORS)) {
            throw new ExpressionError(`unsupported operator "${op.op}"`, {
              expression: source,
              symbol: op.op,
              position: source.indexOf(op.op) >= 0 ? source.indexOf(op.op) : undefined,
            });
          }
          return;
        }
        case "ParenthesisNode":
          return;
        default:
          throw new ExpressionError(`unsupported syntax ${n.type.replace(/Node$/, "")} "${n.toString()}"`, {
            expression: source,
          });
      }
    });
  }

  /** Replaces calls of defined functions and named definitions by their bodies. */
  inline(node: MathNode, source: string, depth = 0): MathNode {
    if (depth > 32) {
      throw new ExpressionError("definitions refer to each other in a cycle", { expression: source });
    }
    return rewrite(node, (n) => {
      if (n.type === "SymbolNode") {
        const def = this.values.get((n as SymbolNode).name);
        if (def) return new ParenthesisNode(this.inline(def.body, def.source, depth + 1));
        return undefined;
      }
      if (n.type === "FunctionNode") {
        const f = n as FunctionNode;
        const def = this.functions.get(f.fn.name);
        const args = f.args.map((a) => this.inline(a, source, depth));
        if (!def) return new FunctionNode(f.fn, args);
        const body = rewrite(def.body, (b) => {
          if (b.type === "SymbolNode") {
            const k = def.params.indexOf((b as SymbolNode).name);
            if (k >= 0) return new ParenthesisNode(args[k]);
          }
          return undefined;
        });
        return new ParenthesisNode(this.inline(body, def.source, depth + 1));
      }
      return undefined;
    });
  }
}

function compileNode(node: MathNode, r: Resolver, source: string): Compiled {
  switch (node.type) {
    case "ConstantNode":
      return Number((node as ConstantNode).value);
    case "ParenthesisNode":
      return compileNode((node as ParenthesisNode).content, r, source);
    case "SymbolNode": {
      const name = (node as SymbolNode).name;
      const info = r.resolve(name);
      if (!info) {
        throw new ExpressionError(`unknown symbol "${name}" (${r.describe()})`, {
          expression: source,
          symbol: name,
          position: locate(source, name),
        });
      }
      if (info.kind === "parameter") return r.parameters[name];
      if (info.kind === "constant") return CONSTANTS[name];
      return (env: Values) => env[name];
    }
    case "OperatorNode": {
      const op = node as OperatorNode;
      const impl = OPERATORS[op.fn];
      if (!impl) {
        throw new ExpressionError(`unsupported operator "${op.op}"`, { expression: source, symbol: op.op });
      }
      const args = op.args.map((a) => compileNode(a, r, source));
      return combine(args, impl.num, impl.ten);
    }
    case "FunctionNode": {
      const f = node as FunctionNode;
      const impl = FUNCTIONS[f.fn.name];
      if (!impl || !impl.arity.includes(f.args.length)) {
        throw new ExpressionError(`unsupported function "${f.fn.name}"`, {
          expression: source,
          symbol: f.fn.name,
          position: locate(source, f.fn.name, true),
        });
      }
      return combine(f.args.map((a) => compileNode(a, r, source)), impl.num, impl.ten);
    }
    default:
      throw new ExpressionError(`unsupported syntax ${node.type.replace(/Node$/, "")} "${node.toString()}"`, {
        expression: source,
      });
  }
}

/** Folds constant arguments at compile time; otherwise builds a closure over the argument evaluators. */
function combine(
  args: Compiled[],
  num: (...a: number[]) => number,
  ten: (...a: Value[]) => Value,
): Compiled {
  const apply = (vals: Value[]): Value => {
    if (vals.every((v) => typeof v === "number")) return num(...(vals as number[]));
    if (vals.length > 2) {
      // n-ary add / multiply from the simplifier: fold left.
      return vals.slice(1).reduce((acc, v) => ten(acc, v), vals[0]);
    }
    return ten(...vals);
  };
  if (args.every((a) => typeof a === "number")) {
    const vals = args as number[];
    return vals.length > 2 ? vals.slice(1).reduce((acc, v) => num(acc, v), vals[0]) : num(...vals);
  }
  return (env: Values) => apply(args.map((a) => (typeof a === "number" ? a : a(env))));
}

/**
 * Parses a residual (see the module notes for the syntax), checks every symbol and function,
 * inlines the definitions, compiles it to tensor ops and derives its partials with respect to each
 * field and derivative symbol.
 *
 * @example
 * ```ts
 * import { parseResidual } from "./mod.ts";
 * const ns = parseResidual("w_t + u * w_x + v * w_y = nu * lap_w", {
 *   fields: ["w", "u", "v"],
 *   parameters: { nu: 1e-4 },
 *   dims: 2,
 * });
 * ns.unknowns.map((s) => s.name); // ["w_t", "u", "w_x", "v", "w_y", "lap_w"]
 * ```
 */
export function parseResidual(source: string, options: ExpressionOptions = {}): ResidualExpression {
  if (typeof source !== "string" || source.trim() === "") {
    throw new ExpressionError("the residual is empty", { expression: String(source ?? "") });
  }
  const r = new Resolver(options);
  for (const name of r.fields) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) {
      throw new ExpressionError(`field name "${name}" must be letters and digits (no "_")`, {
        expression: name,
        symbol: name,
      });
    }
  }
  const defs = options.definitions ?? [];
  if (!Array.isArray(defs)) {
    throw new ExpressionError("definitions must be an array of strings", { expression: String(defs) });
  }
  const parsedDefs: { node: MathNode; source: string; params: string[] }[] = [];
  for (const text of defs) {
    const node = parseText(text);
    if (node.type === "FunctionAssignmentNode") {
      const fa = node as unknown as { name: string; params: string[]; expr: MathNode };
      checkDefinitionName(r, fa.name, text);
      r.functions.set(fa.name, { name: fa.name, params: fa.params, body: fa.expr, source: text });
      parsedDefs.push({ node: fa.expr, source: text, params: fa.params });
    } else if (node.type === "AssignmentNode") {
      const as = node as unknown as { object: MathNode; value: MathNode; name: string };
      if (as.object.type !== "SymbolNode") {
        throw new ExpressionError("a definition must look like `f(a) = …` or `c = …`", { expression: text });
      }
      checkDefinitionName(r, as.name, text);
      r.values.set(as.name, { name: as.name, body: as.value, source: text });
      parsedDefs.push({ node: as.value, source: text, params: [] });
    } else {
      throw new ExpressionError("a definition must look like `f(a) = …` or `c = …`", { expression: text });
    }
  }
  for (const d of parsedDefs) r.validate(d.node, d.source, d.params);

  const signs = assignmentSigns(source);
  let node: MathNode;
  if (signs.length === 1) {
    const at = signs[0];
    const lhs = parseText(source.slice(0, at), 0, source);
    const rhs = parseText(source.slice(at + 1), at + 1, source);
    r.validate(lhs, source);
    r.validate(rhs, source);
    node = new OperatorNode("-", "subtract", [lhs, new ParenthesisNode(rhs)]);
  } else if (signs.length > 1) {
    throw new ExpressionError("a residual has at most one `=`", { expression: source, position: signs[1] });
  } else {
    node = parseText(source);
    r.validate(node, source);
  }
  return new ResidualExpression(source, canonical(r.inline(node, source)), r);
}

function checkDefinitionName(r: Resolver, name: string, text: string): void {
  if (name in FUNCTIONS || r.fields.includes(name) || name in r.parameters || r.inputs.includes(name)) {
    throw new ExpressionError(`definition "${name}" shadows a built-in function, field, parameter or input`, {
      expression: text,
      symbol: name,
      position: locate(text, name),
    });
  }
  if (r.functions.has(name) || r.values.has(name)) {
    throw new ExpressionError(`"${name}" is defined twice`, { expression: text, symbol: name, position: 0 });
  }
}

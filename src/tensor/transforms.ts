/**
 * Function transforms in the JAX spirit — {@link grad}, {@link valueAndGrad}, {@link vjp},
 * {@link jvp}, {@link jacobian}, {@link hvp} — plus custom differentiable functions and
 * gradient checkpointing.
 *
 * Arguments may be tensors, numbers, or arrays / plain objects of them ("trees"); gradients come
 * back in the same structure. Transforms nest: `grad(grad(f))` differentiates twice. When the
 * function also reads tensors that require grad from outside (a network's parameters inside a
 * PDE residual, say), the gradient it returns is itself differentiable with respect to them, so
 * a loss built from `grad(u)(x)` trains the network.
 *
 * @module
 */

import { type BackwardFn, enableGrad, gradients, isGradEnabled, noGrad, record, recordCount } from "./autograd.ts";
import { isFloat } from "./dtype.ts";
import { ArgumentError, AutodiffError } from "./errors.ts";
import { fmtShape } from "./shape.ts";
import { tidy } from "./storage.ts";
import { Tensor } from "./tensor.ts";
import { zerosLike } from "./creation.ts";
import { mul } from "./ops_elementwise.ts";
import { sum } from "./ops_reduce.ts";
import { reshape, stack } from "./ops_shape.ts";
import {
  checkFunction,
  checkInteger,
  checkLike,
  checkOptions,
  checkTensor,
  checkTensors,
  describe,
} from "./validate.ts";

/** A tensor, a number, or arrays / plain objects of them. */
export type Tree = Tensor | number | readonly Tree[] | { readonly [key: string]: Tree };

/**
 * The gradient of a value of type `T` as the transforms return it: a Tensor for a tensor, the
 * same arrays and objects around the gradients of their entries (a number comes back as it went in).
 *
 * @example
 * ```ts
 * import type { Gradient } from "./transforms.ts";
 * type G = Gradient<{ w: Tensor; b: Tensor; scale: number }>; // { w: Tensor; b: Tensor; scale: number }
 * ```
 */
export type Gradient<T> = T extends Tensor ? Tensor
  : T extends number ? T
  : { -readonly [K in keyof T]: Gradient<T[K]> };

/**
 * Which arguments {@link grad} differentiates: one position, or a list of positions.
 *
 * @example
 * ```ts
 * import type { Argnums } from "./transforms.ts";
 * const both: Argnums = [0, 1];
 * ```
 */
export type Argnums = number | readonly number[];

/**
 * What `grad(f, { argnums })` returns for arguments `A`: the gradient of argument `N`, or a tuple
 * of gradients for a list of positions.
 *
 * @example
 * ```ts
 * import type { GradientOf } from "./transforms.ts";
 * type G = GradientOf<[Tensor, number[]], readonly [0]>; // [Tensor]
 * ```
 */
export type GradientOf<A extends readonly unknown[], N extends Argnums> = N extends number ? Gradient<A[N]>
  : { -readonly [K in keyof N]: N[K] extends number ? Gradient<A[N[K]]> : never };

/** Checks that `tree` holds only tensors and numbers (in arrays and plain objects). */
function checkTree(op: string, name: string, tree: unknown): void {
  if (tree instanceof Tensor || typeof tree === "number") return;
  if (Array.isArray(tree)) tree.forEach((t, i) => checkTree(op, `${name}[${i}]`, t));
  else if (tree !== null && typeof tree === "object" && Object.getPrototypeOf(tree) === Object.prototype) {
    for (const [k, v] of Object.entries(tree)) checkTree(op, `${name}.${k}`, v);
  } else {
    throw new ArgumentError(
      op,
      `${name} must be a Tensor, a number, or arrays / plain objects of them, got ${describe(tree)}`,
    );
  }
}

function leaves(tree: unknown, out: Tensor[] = []): Tensor[] {
  if (tree instanceof Tensor) out.push(tree);
  else if (Array.isArray(tree)) { for (const t of tree) leaves(t, out); }
  else if (tree !== null && typeof tree === "object") { for (const t of Object.values(tree)) leaves(t, out); }
  return out;
}

function rebuild(tree: unknown, next: () => unknown): unknown {
  if (tree instanceof Tensor) return next();
  if (Array.isArray(tree)) return tree.map((t) => rebuild(t, next));
  if (tree !== null && typeof tree === "object") {
    return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, rebuild(v, next)]));
  }
  return tree;
}

function mapTree(tree: unknown, fn: (t: Tensor) => Tensor): unknown {
  const flat = leaves(tree).map(fn);
  let i = 0;
  return rebuild(tree, () => flat[i++]);
}

/** A fresh node standing for input `x`: gradients stop here and flow on to `x` if it is tracked. */
function entry(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) {
    throw new AutodiffError("grad", `cannot differentiate with respect to an ${x.dtype} tensor`);
  }
  const e = x.detach();
  if (x.requiresGrad && isGradEnabled()) return record("input", e, [x], [], (g) => [g]);
  e.requiresGrad = true;
  return e;
}

/** Whether the graph of `out` reaches tensors that require grad other than `inputs`. */
function readsOuterTensors(outs: Tensor[], inputs: Set<Tensor>): boolean {
  const seen = new Set<Tensor>();
  const stack = [...outs];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || !t.requiresGrad) continue;
    seen.add(t);
    if (inputs.has(t)) {
      if (t.node) return true; // an input that is itself tracked by an enclosing transform
      continue;
    }
    if (!t.node) return true;
    stack.push(...t.node.inputs);
  }
  return false;
}

/** Options of {@link vjp}. */
export interface VjpOptions {
  /** Record the backward pass so the returned gradients are differentiable. Default: automatic. */
  createGraph?: boolean;
}

/**
 * Evaluates `f` at `primals` and returns its output with a function mapping an output cotangent
 * to the cotangents of the inputs (the vector–Jacobian product). The VJP function can be called
 * any number of times.
 *
 * @example
 * ```ts
 * import { vjp } from "./transforms.ts";
 * import { tensor, ones } from "./creation.ts";
 * const [y, back] = vjp((x: Tensor) => x.mul(x), tensor([1, 2, 3]));
 * const [gx] = back(ones([3])); // gx: Tensor [2, 4, 6]
 * ```
 */
export function vjp<A extends unknown[]>(
  f: (...args: A) => Tensor,
  ...primals: A
): [Tensor, (cotangent: Tensor) => Gradient<A>] {
  checkFunction("vjp", "f", f);
  checkTree("vjp", "primals", primals);
  const [y, back] = vjpWith({}, f as (...args: Tree[]) => Tensor, primals as Tree[]);
  return [y, back as (cotangent: Tensor) => Gradient<A>];
}

/**
 * The output, the VJP map, whether the output reads tensors that an enclosing computation
 * differentiates (then the map records its own graph unless `options.createGraph` says otherwise),
 * and the fresh nodes standing for the primals' tensors.
 */
function vjpWith(
  options: VjpOptions,
  f: (...args: Tree[]) => Tensor,
  primals: Tree[],
): [Tensor, (cotangent: Tensor) => unknown[], boolean, Tensor[]] {
  const wrapped = mapTree(primals, entry) as Tree[];
  const inputs = leaves(wrapped);
  const out = enableGrad(() => f(...wrapped));
  if (!(out instanceof Tensor)) throw new ArgumentError("vjp", "the function must return a Tensor");
  const outer = isGradEnabled() && readsOuterTensors([out], new Set(inputs));
  const createGraph = options.createGraph ?? outer;
  const back = (cotangent: Tensor): unknown[] => {
    checkTensor("vjp", "cotangent", cotangent);
    if (cotangent.shape.length !== out.shape.length || cotangent.shape.some((d, i) => d !== out.shape[i])) {
      throw new ArgumentError(
        "vjp",
        `cotangent shape ${fmtShape(cotangent.shape)} differs from the output shape ${fmtShape(out.shape)}`,
      );
    }
    const gs = out.requiresGrad
      ? gradients([out], [cotangent], inputs, { createGraph, retainGraph: true })
      : inputs.map(() => null);
    let i = 0;
    return rebuild(wrapped, () => {
      const g = gs[i];
      const x = inputs[i++];
      return g ?? zerosLike(x);
    }) as unknown[];
  };
  return [out, back, outer, inputs];
}

/** Options of {@link grad} and {@link valueAndGrad}. */
export interface GradOptions<N extends Argnums = Argnums> {
  /** Which positional arguments to differentiate (default 0). A list returns a list. */
  argnums?: N;
}

function checkArgnums(argnums: unknown): void {
  if (argnums === undefined || typeof argnums === "number") return;
  if (!Array.isArray(argnums) || argnums.length === 0) {
    throw new ArgumentError("grad", `argnums must be an integer or a non-empty list of them, got ${describe(argnums)}`);
  }
}

function selectArgs(argnums: number | readonly number[] | undefined, n: number): number[] {
  const list = argnums === undefined ? [0] : typeof argnums === "number" ? [argnums] : [...argnums];
  for (const a of list) {
    checkInteger("grad", "argnums", a);
    if (a < 0 || a >= n) throw new ArgumentError("grad", `argnums ${a} is out of range for ${n} arguments`);
  }
  if (new Set(list).size !== list.length) throw new ArgumentError("grad", `argnums ${describe(list)} repeats an index`);
  return list;
}

/**
 * `valueAndGrad(f)(...args)` returns `[f(...args), ∇f]` for a scalar-valued `f`; the gradient has
 * the structure of the selected argument(s).
 *
 * @example
 * ```ts
 * import { valueAndGrad } from "./transforms.ts";
 * import { tensor } from "./creation.ts";
 * const [v, g] = valueAndGrad((x: Tensor) => x.mul(x).sum())(tensor([1, 2]));
 * // v = 5, g = [2, 4] (a Tensor)
 * ```
 */
export function valueAndGrad<A extends unknown[], const N extends Argnums = 0>(
  f: (...args: A) => Tensor,
  options: GradOptions<N> = {},
): (...args: A) => [Tensor, GradientOf<A, N>] {
  checkFunction("grad", "f", f);
  checkArgnums(checkOptions("grad", options, ["argnums"]).argnums);
  // Each call runs in its own scope: the forward graph and the backward temporaries are freed when
  // it returns, unless an enclosing computation differentiates through the result.
  return (...args: A) =>
    tidy(() => {
      const which = selectArgs(options.argnums, args.length);
      const selected = which.map((i) => args[i]);
      which.forEach((i) => {
        checkTree("grad", `argument ${i}`, args[i]);
        if (leaves(args[i]).length === 0) {
          throw new ArgumentError("grad", `argument ${i} holds no tensor to differentiate with respect to`);
        }
      });
      const call = (...sel: Tree[]) => {
        const full: unknown[] = [...args];
        which.forEach((i, k) => (full[i] = sel[k]));
        const y = f(...(full as A));
        if (!(y instanceof Tensor) || y.size !== 1) {
          throw new ArgumentError(
            "grad",
            `the function must return a one-element Tensor, got ${y instanceof Tensor ? fmtShape(y.shape) : typeof y}`,
          );
        }
        return y;
      };
      const [y, back, outer] = vjpWith({}, call, selected as Tree[]);
      const g = back(Tensor.fromBuffer(y.backend.full(1, 1, y.dtype), y.shape, y.dtype));
      const value = outer ? y : y.detach();
      return [value, (typeof options.argnums === "object" ? g : g[0]) as GradientOf<A, N>];
    });
}

/**
 * `grad(f)(...args)`: the gradient of a scalar-valued `f` with respect to argument `argnums`
 * (default 0), typed: a Tensor for a tensor argument, the argument's structure for a tree, a tuple
 * for a list of argnums. Nest it for higher derivatives.
 *
 * @example
 * ```ts
 * import { grad } from "./transforms.ts";
 * import { tensor } from "./creation.ts";
 * const d2 = grad((x: Tensor) => grad((y: Tensor) => y.pow(3).sum())(x).sum());
 * d2(tensor([2])); // [12]
 * const [ga, gb] = grad((a: Tensor, b: Tensor) => a.mul(b).sum(), { argnums: [0, 1] })(tensor([1]), tensor([2]));
 * ```
 */
export function grad<A extends unknown[], const N extends Argnums = 0>(
  f: (...args: A) => Tensor,
  options: GradOptions<N> = {},
): (...args: A) => GradientOf<A, N> {
  const vg = valueAndGrad(f, options);
  return (...args: A) => tidy(() => vg(...args)[1]);
}

/**
 * Forward-mode product: `f(primals)` and the directional derivative J·tangents. Computed as the
 * VJP of a VJP (exact, since the VJP is linear in its cotangent). Each call frees its graphs and
 * temporaries when it returns: the two results carry a graph only when they read tensors that an
 * enclosing computation differentiates (primals tracked by an outer `grad`, a network's parameters).
 *
 * @example
 * ```ts
 * import { jvp } from "./transforms.ts";
 * import { tensor } from "./creation.ts";
 * const [y, dy] = jvp((x: Tensor) => x.sin(), [tensor([0])], [tensor([2])]);
 * // dy = [2]
 * ```
 */
export function jvp<A extends Tree[]>(
  f: (...args: A) => Tensor,
  primals: A,
  tangents: readonly Tree[],
): [Tensor, Tensor] {
  checkFunction("jvp", "f", f);
  if (!Array.isArray(primals)) throw new ArgumentError("jvp", `primals must be a list, got ${describe(primals)}`);
  checkTree("jvp", "primals", primals);
  checkTree("jvp", "tangents", tangents);
  const tan = leaves(tangents as unknown);
  const prim = leaves(primals);
  if (tan.length !== prim.length || tan.some((t, i) => t.shape.join() !== prim[i].shape.join())) {
    throw new ArgumentError("jvp", "tangents must have the structure and shapes of the primals");
  }
  // One scope per call, as in valueAndGrad: both graphs and their temporaries are freed on return,
  // unless an enclosing computation differentiates through the results.
  return tidy(() => {
    const [out, back, outer, inputs] = vjpWith({ createGraph: true }, f as (...args: Tree[]) => Tensor, primals);
    const u = zerosLike(out).requireGrad();
    const gx = leaves(enableGrad(() => back(u)));
    const terms = gx.map((g, i) => sum(mul(g, tan[i])));
    const total = terms.reduce((a, b) => a.add(b));
    const tangentOuter = isGradEnabled() && readsOuterTensors([total], new Set([u, ...inputs]));
    const [tangentOut] = total.requiresGrad
      ? gradients([total], [onesOf(total)], [u], { createGraph: tangentOuter })
      : [null];
    return [outer ? out : out.detach(), tangentOut ?? zerosLike(out)] as [Tensor, Tensor];
  });
}

function onesOf(t: Tensor): Tensor {
  return Tensor.fromBuffer(t.backend.full(t.size, 1, t.dtype), t.shape, t.dtype);
}

/**
 * The Jacobian of `f` at `x`: shape `[...f(x).shape, ...x.shape]`, one VJP per output element.
 *
 * @example
 * ```ts
 * import { jacobian } from "./transforms.ts";
 * import { tensor } from "./creation.ts";
 * jacobian((x: Tensor) => x.mul(2), tensor([1, 2])).toArray(); // [[2, 0], [0, 2]]
 * ```
 */
export function jacobian(f: (x: Tensor) => Tensor, x: Tensor): Tensor {
  checkFunction("jacobian", "f", f);
  checkTensor("jacobian", "x", x);
  return tidy(() => jacobianRows(f, x));
}

function jacobianRows(f: (x: Tensor) => Tensor, x: Tensor): Tensor {
  const [y, back] = vjpWith({}, f as (...args: Tree[]) => Tensor, [x]);
  const rows: Tensor[] = [];
  const host = new Float64Array(y.size);
  for (let i = 0; i < y.size; i++) {
    host.fill(0);
    host[i] = 1;
    const e = Tensor.fromBuffer(y.backend.fromHost(host, "float64"), y.shape, "float64");
    rows.push(back(y.dtype === "float64" ? e : e.cast(y.dtype))[0] as Tensor);
  }
  if (rows.length === 0) return zerosLike(x).reshape([...y.shape, ...x.shape]);
  return reshape(stack(rows, 0), [...y.shape, ...x.shape]);
}

/**
 * Hessian–vector product ∇²f(x)·v of a scalar-valued `f`.
 *
 * @example
 * ```ts
 * import { hvp } from "./transforms.ts";
 * import { tensor } from "./creation.ts";
 * hvp((x: Tensor) => x.pow(3).sum(), tensor([1, 2]), tensor([1, 1])); // [6, 12]
 * ```
 */
export function hvp(f: (x: Tensor) => Tensor, x: Tensor, v: Tensor): Tensor {
  checkFunction("hvp", "f", f);
  checkLike("hvp", "v", v, checkTensor("hvp", "x", x), { dtype: false });
  return grad((y: Tensor) => sum(mul(grad(f)(y), v)))(x);
}

/** What a custom function's forward returns. */
export interface CustomForward<Aux> {
  /** The differentiable result. */
  output: Tensor;
  /** Tensors the backward rule needs (kept alive with the graph). */
  residuals?: Tensor[];
  /** Anything else to hand back to the caller (not differentiated). */
  aux?: Aux;
}

/**
 * A differentiable function with a hand-written backward rule (like `jax.custom_vjp` or a
 * `torch.autograd.Function`). `forward` runs without recording; `backward(residuals, gradOutput,
 * needs)` returns one gradient (or null) per tensor input, written in tensor ops so it can be
 * differentiated again when the caller needs higher derivatives.
 *
 * @example
 * ```ts
 * import { customFunction } from "./transforms.ts";
 * const square = customFunction(
 *   (x: Tensor) => ({ output: x.mul(x), residuals: [x] }),
 *   ([x], g) => [g.mul(x).mul(2)],
 * );
 * // square(x).output
 * ```
 */
export function customFunction<A extends Tensor[], Aux = undefined>(
  forward: (...inputs: A) => CustomForward<Aux>,
  backward: (residuals: Tensor[], gradOutput: Tensor, needs: readonly boolean[]) => (Tensor | null)[],
): (...inputs: A) => { output: Tensor; aux: Aux } {
  checkFunction("customFunction", "forward", forward);
  checkFunction("customFunction", "backward", backward);
  return (...inputs: A) => {
    checkTensors("customFunction", "inputs", inputs);
    const result = noGrad(() => forward(...inputs));
    if (!(result?.output instanceof Tensor)) {
      throw new ArgumentError("customFunction", "forward must return { output: Tensor, ... }");
    }
    const residuals = result.residuals ?? [];
    const rule: BackwardFn = (g, needs) => {
      const gs = backward(residuals, g, needs);
      if (!Array.isArray(gs) || gs.length !== inputs.length) {
        throw new ArgumentError("customFunction", `backward must return ${inputs.length} gradients`);
      }
      return gs;
    };
    const output = record("custom", result.output.detach(), [...inputs], residuals, rule);
    return { output, aux: result.aux as Aux };
  };
}

/**
 * Gradient checkpointing: runs `fn` without keeping its intermediates and recomputes them in the
 * backward pass (memory for time). Gradients reach the inputs and also any tensor requiring grad
 * that `fn` reads from outside (a block's parameters captured by a closure).
 *
 * @example
 * ```ts
 * import { checkpoint } from "./transforms.ts";
 * // const y = checkpoint((x: Tensor) => block(x))(x);
 * ```
 */
export function checkpoint<A extends Tensor[]>(fn: (...inputs: A) => Tensor): (...inputs: A) => Tensor {
  checkFunction("checkpoint", "fn", fn);
  const fresh = (inputs: A) => inputs.map((x) => (isFloat(x.dtype) ? entry(x) : x)) as A;
  return (...inputs: A) => {
    checkTensors("checkpoint", "inputs", inputs);
    if (!isGradEnabled()) return fn(...inputs);
    // Record the forward once, only to learn which outer tensors it reads; the graph is dropped
    // with `probe` when this returns and rebuilt by the backward rule.
    // Both passes run in their own memory scope, so the intermediates go back to the allocator as
    // soon as the output (forward) or the input gradients (backward) are known.
    const start = recordCount();
    const { output, outer } = tidy(() => {
      const leaves = noGrad(() => fresh(inputs)); // detached leaves that require grad
      const probe = fn(...leaves);
      if (!(probe instanceof Tensor)) throw new ArgumentError("checkpoint", "the function must return a Tensor");
      return { output: probe.detach(), outer: outerTensors(probe, start, new Set(leaves)) };
    });
    return record("checkpoint", output, [...inputs, ...outer], [], (g, needs) =>
      tidy(() => {
        const again = fresh(inputs);
        const y = enableGrad(() => fn(...again));
        const all = [...again, ...outer];
        const targets = all.filter((_, i) => needs[i]);
        const gs = gradients([y], [g], targets, { createGraph: isGradEnabled() });
        let k = 0;
        return all.map((_, i) => (needs[i] ? gs[k++] : null));
      }));
  };
}

/** Tensors requiring grad that `out` reads but that were not made after `start` from `inside`. */
function outerTensors(out: Tensor, start: number, inside: Set<Tensor>): Tensor[] {
  const found: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack = [out];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || !t.requiresGrad || inside.has(t)) continue;
    seen.add(t);
    if (!t.node || (t.node.seq ?? 0) <= start) found.push(t);
    else stack.push(...t.node.inputs);
  }
  return found;
}

/**
 * The {@link Module} base class: a tree of named parameters, buffers and child modules.
 *
 * Registration is explicit: a module calls `this.param(name, tensor)` for each learnable tensor,
 * `this.buffer(name, tensor)` for state that is saved but not trained, and
 * `this.module(name, child)` for each sub-module, and usually keeps what these return in a field:
 *
 * ```ts
 * import { Module } from "./module.ts";
 * import { ones, type Tensor, zeros } from "../tensor/mod.ts";
 * class Affine extends Module {
 *   readonly scale = this.param("scale", ones([3]));
 *   readonly shift = this.param("shift", zeros([3]));
 *   forward(x: Tensor): Tensor {
 *     return x.mul(this.scale).add(this.shift);
 *   }
 * }
 * ```
 *
 * Names compose with dots through the tree (`"layers.0.weight"`), exactly as in PyTorch, so state
 * dicts line up with safetensors checkpoints. Parameters are leaf tensors that require grad and
 * are `keep()`-ed: no `tidy` scope disposes them. When a parameter is replaced (by {@link Module.to}
 * or {@link functionalCall}), every field of its module that held the old tensor is updated too.
 *
 * @module
 */

import {
  ArgumentError,
  type DType,
  fmtShape,
  isFloat,
  noGrad,
  ShapeError,
  shapesEqual,
  Tensor,
} from "../tensor/mod.ts";

/**
 * A state dict: parameter and buffer names mapped to tensors (a `Map` or a plain record).
 *
 * @example
 * ```ts
 * import type { StateDict } from "./module.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const sd: StateDict = { "fc.weight": zeros([2, 3]), "fc.bias": zeros([2]) };
 * ```
 */
export type StateDict = Map<string, Tensor> | Record<string, Tensor>;

/**
 * Options of {@link Module.loadStateDict}.
 *
 * @example
 * ```ts
 * import { Linear } from "./linear.ts";
 * const fc = new Linear(2, 3);
 * fc.loadStateDict({ weight: new Linear(2, 3, { seed: 1 }).weight }, { strict: false });
 * ```
 */
export interface LoadStateDictOptions {
  /**
   * Require the keys to match exactly (default true). When false, missing and unexpected keys are
   * reported in the result instead of raising. Shapes must always agree.
   */
  strict?: boolean;
}

/**
 * What {@link Module.loadStateDict} did not load.
 *
 * @example
 * ```ts
 * import { Linear } from "./linear.ts";
 * const fc = new Linear(2, 3);
 * const { missingKeys } = fc.loadStateDict({ weight: new Linear(2, 3).weight }, { strict: false });
 * missingKeys; // ["bias"]
 * ```
 */
export interface LoadStateDictResult {
  /** Names this module has that the dict lacked (left unchanged). */
  missingKeys: string[];
  /** Names in the dict this module does not have (ignored). */
  unexpectedKeys: string[];
}

const NAME = /^[A-Za-z0-9_]+$/;

function checkName(kind: string, name: string): void {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new ArgumentError(
      kind,
      `name ${JSON.stringify(name)} must be non-empty and use only letters, digits and _ (dots join the tree)`,
    );
  }
}

function entriesOf(dict: StateDict): [string, Tensor][] {
  return dict instanceof Map ? [...dict.entries()] : Object.entries(dict);
}

/**
 * Base class of every neural-network layer: owns named parameters, buffers and child modules.
 * Subclasses register what they own in their constructor (or as field initialisers) and define
 * `forward`.
 *
 * @example
 * ```ts
 * import { Module } from "./module.ts";
 * import { ones, type Tensor, zeros } from "../tensor/mod.ts";
 *
 * class Affine extends Module {
 *   readonly scale = this.param("scale", ones([3]));
 *   readonly shift = this.param("shift", zeros([3]));
 *   forward(x: Tensor): Tensor {
 *     return x.mul(this.scale).add(this.shift);
 *   }
 * }
 * const m = new Affine();
 * m.numParameters(); // 6
 * [...m.stateDict().keys()]; // ["scale", "shift"]
 * ```
 */
export class Module {
  #params = new Map<string, Tensor>();
  #buffers = new Map<string, Tensor>();
  #children = new Map<string, Module>();
  #training = true;

  // ------------------------------------------------------------------ registration

  /**
   * Registers `value` as the learnable parameter `name`: it becomes a leaf that requires grad and
   * is `keep()`-ed. Returns it, so it can be stored in a field.
   *
   * @example
   * ```ts
   * import { Module } from "./module.ts";
   * import { zeros } from "../tensor/mod.ts";
   * class Bias extends Module {
   *   readonly b = this.param("b", zeros([4]));
   * }
   * ```
   */
  protected param(name: string, value: Tensor): Tensor {
    checkName("param", name);
    this.#checkFree(name);
    if (!(value instanceof Tensor)) throw new ArgumentError("param", `parameter "${name}" must be a Tensor`);
    if (!isFloat(value.dtype)) {
      throw new ArgumentError("param", `parameter "${name}" must have a float dtype, got ${value.dtype}`);
    }
    const p = value.node ? value.detach() : value;
    p.requireGrad(true);
    p.keep();
    this.#params.set(name, p);
    return p;
  }

  /**
   * Registers `value` as the buffer `name`: saved in the state dict and converted by `to()`, but
   * not trained (no gradient, not in `parameters()`). Returns it.
   *
   * @example
   * ```ts
   * import { Module } from "./module.ts";
   * import { linspace } from "../tensor/mod.ts";
   * class Features extends Module {
   *   readonly freqs = this.buffer("freqs", linspace(1, 8, 8));
   * }
   * ```
   */
  protected buffer(name: string, value: Tensor): Tensor {
    checkName("buffer", name);
    this.#checkFree(name);
    if (!(value instanceof Tensor)) throw new ArgumentError("buffer", `buffer "${name}" must be a Tensor`);
    const b = value.requiresGrad ? value.detach() : value;
    b.keep();
    this.#buffers.set(name, b);
    return b;
  }

  /**
   * Registers `child` as the sub-module `name` (its parameters appear as `name.…`). Returns it.
   *
   * @example
   * ```ts
   * import { Module } from "./module.ts";
   * import { Linear } from "./linear.ts";
   * class Net extends Module {
   *   readonly fc = this.module("fc", new Linear(2, 3));
   * }
   * ```
   */
  protected module<M extends Module>(name: string, child: M): M {
    checkName("module", name);
    this.#checkFree(name);
    if (!(child instanceof Module)) throw new ArgumentError("module", `child "${name}" must be a Module`);
    if ((child as Module) === this) throw new ArgumentError("module", `a module cannot contain itself (as "${name}")`);
    this.#children.set(name, child);
    return child;
  }

  #checkFree(name: string): void {
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new ArgumentError("module", `the name "${name}" is already registered in ${this.constructor.name}`);
    }
  }

  /**
   * The parameter registered directly on this module as `name` (not a dotted path), if any.
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * new Linear(2, 3).getParameter("weight")?.shape; // [3, 2]
   * ```
   */
  getParameter(name: string): Tensor | undefined {
    return this.#params.get(name);
  }

  // ------------------------------------------------------------------ walking the tree

  /**
   * Direct children with their names, in registration order.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * [...new MLP([1, 4, 1]).namedChildren()].map(([n]) => n); // ["layers"]
   * ```
   */
  *namedChildren(): IterableIterator<[string, Module]> {
    yield* this.#children.entries();
  }

  /**
   * This module and every descendant, depth first, with dotted names ("" for this one).
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * [...new MLP([1, 4, 1]).namedModules()].map(([n]) => n); // ["", "layers", "layers.0", "layers.1"]
   * ```
   */
  *namedModules(prefix = ""): IterableIterator<[string, Module]> {
    const seen = new Set<Module>();
    function* walk(m: Module, name: string): IterableIterator<[string, Module]> {
      if (seen.has(m)) return;
      seen.add(m);
      yield [name, m];
      for (const [n, c] of m.#children) yield* walk(c, name ? `${name}.${n}` : n);
    }
    yield* walk(this, prefix);
  }

  /**
   * This module and every descendant, depth first.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * [...new MLP([1, 4, 1]).modules()].length; // 4
   * ```
   */
  *modules(): IterableIterator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /**
   * Every parameter of the tree with its dotted name, depth first in registration order. A tensor
   * shared by two modules is listed once (under its first name). Frozen parameters are included.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * new MLP([2, 8, 1]).namedParameters().map(([n]) => n);
   * // ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
   * ```
   */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, p] of m.#params) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([prefix ? `${prefix}.${n}` : n, p]);
      }
    }
    return out;
  }

  /**
   * Every parameter of the tree (see {@link Module.namedParameters}).
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * new Linear(2, 3).parameters().length; // 2
   * ```
   */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /**
   * Every buffer of the tree with its dotted name.
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * new Linear(2, 3).namedBuffers(); // []
   * ```
   */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, b] of m.#buffers) out.push([prefix ? `${prefix}.${n}` : n, b]);
    }
    return out;
  }

  /**
   * Number of parameter elements (all, or only those that are not frozen).
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * new Linear(2, 3).numParameters(); // 9
   * ```
   */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!options.trainableOnly || p.requiresGrad) n += p.size;
    return n;
  }

  // ------------------------------------------------------------------ modes

  /**
   * Stops gradients to every parameter of the tree (`requiresGrad = false`); optimisers skip
   * frozen parameters. Returns this module.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * const net = new MLP([2, 8, 1]);
   * net.freeze().numParameters({ trainableOnly: true }); // 0
   * ```
   */
  freeze(): this {
    for (const p of this.parameters()) p.requiresGrad = false;
    return this;
  }

  /**
   * Lets gradients reach every parameter of the tree again. Returns this module.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * const net = new MLP([2, 8, 1]).freeze();
   * net.unfreeze().numParameters({ trainableOnly: true }); // 33
   * ```
   */
  unfreeze(): this {
    for (const p of this.parameters()) p.requiresGrad = true;
    return this;
  }

  /** Whether the module is in training mode (affects Dropout and similar layers). */
  get training(): boolean {
    return this.#training;
  }

  /**
   * Sets training mode on the whole tree (default true). Returns this module.
   *
   * @example
   * ```ts
   * import { Dropout } from "./dropout.ts";
   * new Dropout(0.1).train(false).training; // false
   * ```
   */
  train(mode = true): this {
    for (const m of this.modules()) m.#training = mode;
    return this;
  }

  /**
   * Sets evaluation mode on the whole tree (`train(false)`). Returns this module.
   *
   * @example
   * ```ts
   * import { Dropout } from "./dropout.ts";
   * new Dropout(0.1).eval().training; // false
   * ```
   */
  eval(): this {
    return this.train(false);
  }

  // ------------------------------------------------------------------ gradients

  /**
   * Clears `.grad` of every parameter of the tree (sets it to null, freeing the memory).
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * import { ones } from "../tensor/mod.ts";
   * const fc = new Linear(2, 1);
   * fc.forward(ones([1, 2])).sum().backward();
   * fc.zeroGrad(); // fc.weight.grad === null
   * ```
   */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  // ------------------------------------------------------------------ state dict

  /**
   * Every parameter and buffer by dotted name (parameters first, then buffers). The tensors are
   * the live ones, not copies (as in PyTorch): save or clone them to take a snapshot.
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * [...new Linear(2, 3).stateDict().keys()]; // ["weight", "bias"]
   * ```
   */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies values from `dict` into this tree's parameters and buffers, in place (casting to each
   * parameter's dtype). Everything is checked before anything is written: a shape mismatch raises
   * a {@link ShapeError} naming the entry and both shapes; with `strict` (the default) missing or
   * unexpected keys raise an {@link ArgumentError} listing them.
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * const a = new Linear(2, 3, { seed: 1 });
   * const b = new Linear(2, 3, { seed: 2 });
   * b.loadStateDict(a.stateDict()); // b now computes what a computes
   * ```
   */
  loadStateDict(dict: StateDict, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const own = this.stateDict();
    const given = new Map(entriesOf(dict));
    const missingKeys = [...own.keys()].filter((k) => !given.has(k));
    const unexpectedKeys = [...given.keys()].filter((k) => !own.has(k));
    for (const [name, target] of own) {
      const value = given.get(name);
      if (value === undefined) continue;
      if (!(value instanceof Tensor)) {
        throw new ArgumentError("loadStateDict", `entry "${name}" is not a Tensor`);
      }
      if (value.disposed) throw new ArgumentError("loadStateDict", `entry "${name}" was disposed`);
      if (!shapesEqual(value.shape, target.shape)) {
        throw new ShapeError(
          "loadStateDict",
          `"${name}": expected shape ${fmtShape(target.shape)}, got ${fmtShape(value.shape)}`,
        );
      }
    }
    if (strict && (missingKeys.length || unexpectedKeys.length)) {
      const parts: string[] = [];
      if (missingKeys.length) parts.push(`missing keys: ${missingKeys.map((k) => `"${k}"`).join(", ")}`);
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.map((k) => `"${k}"`).join(", ")}`);
      throw new ArgumentError(
        "loadStateDict",
        `${this.constructor.name}: ${parts.join("; ")} (pass { strict: false } to load the rest)`,
      );
    }
    noGrad(() => {
      for (const [name, target] of own) {
        const value = given.get(name);
        if (value !== undefined) target.assign(value.backend === target.backend ? value : moveTo(value, target));
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // ------------------------------------------------------------------ conversion

  /**
   * Converts every float parameter and buffer of the tree to `dtype`, replacing the tensors (the
   * old ones are disposed; fields that held them are updated). Create optimisers afterwards.
   * Returns this module.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * const net = new MLP([1, 16, 1]).to("float64");
   * net.parameters()[0].dtype; // "float64"
   * ```
   */
  to(dtype: DType): this {
    if (!isFloat(dtype)) throw new ArgumentError("to", `modules hold float tensors; cannot convert to ${dtype}`);
    for (const m of this.modules()) {
      for (const [name, p] of [...m.#params]) {
        if (p.dtype === dtype) continue;
        const next = noGrad(() => p.cast(dtype)).keep();
        next.requiresGrad = p.requiresGrad;
        m.#replace(m.#params, name, next);
        this.#replaceShared(p, next);
        p.dispose();
      }
      for (const [name, b] of [...m.#buffers]) {
        if (b.dtype === dtype || !isFloat(b.dtype)) continue;
        const next = noGrad(() => b.cast(dtype)).keep();
        m.#replace(m.#buffers, name, next);
        b.dispose();
      }
    }
    return this;
  }

  /**
   * Replaces the direct child `name` by `child` (fields of this module that held the old child
   * now hold the new one) and returns the old child: how adapters wrap a layer in place.
   *
   * @example
   * ```ts
   * import { Linear } from "./linear.ts";
   * import { Module } from "./module.ts";
   * class Net extends Module {
   *   fc = this.module("fc", new Linear(2, 3));
   * }
   * const net = new Net();
   * net.replaceModule("fc", new Linear(2, 3, { bias: false })); // net.fc is the new layer
   * ```
   */
  replaceModule(name: string, child: Module): Module {
    const old = this.#children.get(name);
    if (!old) throw new ArgumentError("replaceModule", `${this.constructor.name} has no child "${name}"`);
    if (!(child instanceof Module)) throw new ArgumentError("replaceModule", `the new "${name}" must be a Module`);
    this.#children.set(name, child);
    const fields = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) if (fields[key] === old) fields[key] = child;
    return old;
  }

  #replaceShared(old: Tensor, next: Tensor): void {
    for (const m of this.modules()) {
      for (const [name, p] of [...m.#params]) if (p === old) m.#replace(m.#params, name, next);
    }
  }

  /** Swaps the tensor registered as `name` in `registry` and in any own field that held it. */
  #replace(registry: Map<string, Tensor>, name: string, next: Tensor): void {
    const old = registry.get(name);
    registry.set(name, next);
    const fields = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (fields[key] === old) fields[key] = next;
    }
  }

  /** Low level: replaces parameter tensors by dotted name (used by {@link functionalCall}). */
  static swapParameters(module: Module, values: Map<string, Tensor>): Map<string, Tensor> {
    const previous = new Map<string, Tensor>();
    const byName = new Map<string, [Module, string]>();
    for (const [prefix, m] of module.namedModules()) {
      for (const n of m.#params.keys()) byName.set(prefix ? `${prefix}.${n}` : n, [m, n]);
    }
    for (const [name, value] of values) {
      const at = byName.get(name);
      if (!at) throw new ArgumentError("functionalCall", `the module has no parameter "${name}"`);
      const [m, n] = at;
      const old = m.#params.get(n)!;
      if (!shapesEqual(old.shape, value.shape)) {
        throw new ShapeError(
          "functionalCall",
          `"${name}": expected shape ${fmtShape(old.shape)}, got ${fmtShape(value.shape)}`,
        );
      }
      previous.set(name, old);
      m.#replace(m.#params, n, value);
    }
    return previous;
  }

  /**
   * A PyTorch-style outline of the tree with parameter shapes.
   *
   * @example
   * ```ts
   * import { MLP } from "./linear.ts";
   * console.log(String(new MLP([2, 8, 1])));
   * ```
   */
  toString(): string {
    const lines: string[] = [];
    const walk = (m: Module, name: string, depth: number) => {
      const pad = "  ".repeat(depth);
      const params = [...m.#params].map(([n, p]) => `${n}${fmtShape(p.shape)}`).join(", ");
      lines.push(`${pad}${name ? name + ": " : ""}${m.describe()}${params ? ` {${params}}` : ""}`);
      for (const [n, c] of m.#children) walk(c, n, depth + 1);
    };
    walk(this, "", 0);
    return lines.join("\n");
  }

  /** One-line description used by `toString()` (class name; layers add their sizes). */
  describe(): string {
    return this.constructor.name;
  }
}

function moveTo(value: Tensor, target: Tensor): Tensor {
  // Different backends: go through the host (bfloat16 travels as float32 values).
  return Tensor.fromBuffer(target.backend.fromHost(value.toTypedArray(), value.dtype), value.shape, value.dtype);
}

/**
 * Runs `fn` with some of `module`'s parameters replaced by `params` (dotted names; a `Map` or a
 * record), restoring the originals afterwards even if `fn` throws. This turns a module into a
 * pure function of its parameters, for `grad`/`vjp` over parameters, ensembles or meta-learning.
 *
 * @example
 * ```ts
 * import { functionalCall } from "./module.ts";
 * import { Linear } from "./linear.ts";
 * import { grad, ones, type Tensor } from "../tensor/mod.ts";
 * const fc = new Linear(2, 1);
 * const x = ones([4, 2]);
 * const loss = (p: Record<string, Tensor>) => functionalCall(fc, p, () => fc.forward(x).square().mean());
 * const g = grad(loss)(Object.fromEntries(fc.namedParameters())); // { weight, bias }
 * ```
 */
export function functionalCall<T>(module: Module, params: StateDict, fn: () => T): T {
  const previous = Module.swapParameters(module, new Map(entriesOf(params)));
  try {
    return fn();
  } finally {
    Module.swapParameters(module, previous);
  }
}

/**
 * A module whose `forward` maps one tensor to one tensor (what {@link Sequential} chains).
 *
 * @example
 * ```ts
 * import type { TensorModule } from "./module.ts";
 * import { Linear } from "./linear.ts";
 * const m: TensorModule = new Linear(2, 3);
 * ```
 */
export type TensorModule = Module & { forward(x: Tensor): Tensor };

/**
 * The {@link Optimizer} base class: parameter groups, per-parameter state, the update loop and
 * checkpointing. Subclasses ({@link SGD}, {@link Adam}, {@link AdamW}) only say how one parameter is
 * updated.
 *
 * Every `step()` runs under `noGrad` inside a `tidy` scope and writes the new values into the
 * parameters with `assign`, so no graph is recorded and the step's temporaries go back to the
 * allocator at once; state tensors (moments, momentum buffers) are `keep()`-ed and updated in
 * place, so memory stays flat from the second step on.
 *
 * **Mixed precision.** A bfloat16 parameter is updated through a float32 *master copy* kept in
 * its state (slot `"master"`): the gradient is widened to float32, the update and the moments are
 * computed in float32 on the master, and the parameter receives the master rounded to bfloat16.
 * Small updates therefore accumulate instead of vanishing in bfloat16's 8-bit mantissa. The master
 * is saved and restored with the rest of the state. It is the source of truth from the first step
 * on: after writing new values into a bfloat16 parameter yourself (`loadStateDict` on the model),
 * also load the optimiser's state, or make a new optimiser.
 *
 * @module
 */

import { Module } from "../nn/module.ts";
import {
  ArgumentError,
  checkNumber,
  checkOptions,
  describe,
  fmtShape,
  isFloat,
  noGrad,
  ShapeError,
  shapesEqual,
  Tensor,
  tidy,
} from "../tensor/mod.ts";
import { type LearningRate, resolveLr } from "./schedule.ts";

/**
 * Parameters to optimise: a module (all its parameters, by name), tensors, or named tensors.
 *
 * @example
 * ```ts
 * import type { Params } from "./optimizer.ts";
 * import { MLP } from "../nn/linear.ts";
 * const net = new MLP([2, 8, 1]);
 * const all: Params = net;
 * const some: Params = net.namedParameters().filter(([name]) => name.endsWith("weight"));
 * ```
 */
export type Params = Module | Iterable<Tensor> | Iterable<readonly [string, Tensor]>;

/**
 * A parameter group: its parameters and the options that differ from the optimiser's defaults.
 *
 * @example
 * ```ts
 * import { AdamW, type AdamOptions } from "./adam.ts";
 * import type { ParamGroup } from "./optimizer.ts";
 * import { MLP } from "../nn/linear.ts";
 * const net = new MLP([2, 8, 1]);
 * const named = net.namedParameters();
 * const groups: ParamGroup<AdamOptions>[] = [
 *   { params: named.filter(([n]) => n.endsWith("weight")) },
 *   { params: named.filter(([n]) => n.endsWith("bias")), weightDecay: 0 },
 * ];
 * new AdamW(groups, { lr: 1e-3 });
 * ```
 */
export type ParamGroup<O> = { params: Params } & Partial<O>;

/**
 * Options every optimiser has.
 *
 * @example
 * ```ts
 * import type { BaseOptions } from "./optimizer.ts";
 * const options: BaseOptions = { lr: (step) => 0.1 / Math.sqrt(step + 1) };
 * ```
 */
export interface BaseOptions {
  /** Learning rate: a number or a schedule `step → lr` (`step` = updates made so far). */
  lr: LearningRate;
}

/**
 * One parameter and its optimiser state.
 *
 * @example
 * ```ts
 * import { SGD } from "./sgd.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const opt = new SGD([zeros([2]).requireGrad()], { lr: 0.1, momentum: 0.9 });
 * const state = opt.groups[0].params[0]; // { key: "0", param, state: Map {}, steps: 0 }
 * ```
 */
export interface ParamState {
  /** The parameter's key in state dicts: its dotted name, or its position when unnamed. */
  readonly key: string;
  /** The parameter. */
  readonly param: Tensor;
  /** State tensors by slot name (kept, updated in place). */
  readonly state: Map<string, Tensor>;
  /** Updates applied to this parameter (Adam's bias-correction clock). */
  steps: number;
}

/**
 * A group of parameters sharing options.
 *
 * @example
 * ```ts
 * import { SGD } from "./sgd.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const opt = new SGD([zeros([2]).requireGrad()], { lr: 0.1 });
 * opt.groups[0].options.lr = 0.01; // takes effect at the next step()
 * ```
 */
export interface Group<O> {
  /** Options of this group (mutable: change `lr` here between steps). */
  options: O;
  /** The group's parameters and their state. */
  readonly params: ParamState[];
}

/**
 * An optimiser's state as tensors plus string metadata — the shape of a safetensors file, so
 * `saveSafetensors(path, sd.tensors, sd.metadata)` and `loadStateDict(await loadSafetensors(path))`
 * checkpoint it. Tensor keys are `"<param key>.<slot>"` (e.g. `"layers.0.weight.exp_avg"`);
 * metadata holds `optimizer` (class name), `step` and `param_steps` (JSON). Hyperparameters are
 * not saved: they come from the constructor.
 *
 * @example
 * ```ts
 * import { Adam } from "./adam.ts";
 * import { decodeSafetensors, encodeSafetensors } from "../nn/safetensors.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const opt = new Adam([zeros([2]).requireGrad()]);
 * const sd = opt.stateDict();
 * opt.loadStateDict(decodeSafetensors(encodeSafetensors(sd.tensors, sd.metadata)));
 * ```
 */
export interface OptimizerStateDict {
  /** State tensors by `"<param key>.<slot>"`. */
  tensors: Map<string, Tensor>;
  /** `optimizer`, `step` and `param_steps`. */
  metadata: Record<string, string>;
}

function isPair(x: unknown): x is readonly [string, Tensor] {
  return Array.isArray(x) && x.length === 2 && typeof x[0] === "string" && x[1] instanceof Tensor;
}

function isGroup<O>(x: unknown): x is ParamGroup<O> {
  return x !== null && typeof x === "object" && !(x instanceof Tensor) && !Array.isArray(x) && "params" in x;
}

/**
 * The parameters in `params` with their names (null where none is given), checked: a module, or
 * an iterable of tensors or of [name, tensor] pairs. `op` names the caller in errors.
 *
 * @example
 * ```ts
 * import { parameterList } from "./optimizer.ts";
 * import { zeros } from "../tensor/mod.ts";
 * parameterList("clipGradNorm", [zeros([2])]); // [[null, Tensor]]
 * ```
 */
export function parameterList(op: string, params: Params): [string | null, Tensor][] {
  if (params instanceof Module) return params.namedParameters();
  if (params === null || typeof params !== "object" || !(Symbol.iterator in params)) {
    throw new ArgumentError(
      op,
      `params must be a Module, an array of tensors or an array of [name, tensor] pairs, got ${describe(params)}`,
    );
  }
  const out: [string | null, Tensor][] = [];
  for (const item of params as Iterable<unknown>) {
    if (item instanceof Tensor) out.push([null, item]);
    else if (isPair(item)) out.push([item[0], item[1]]);
    else throw new ArgumentError(op, `params must hold tensors or [name, tensor] pairs, got ${describe(item)}`);
  }
  return out;
}

/** `base` with the entries of `over` that are not undefined (an undefined option keeps its default). */
function withDefaults<O>(base: O, over: Partial<O>): O {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * Base class of the optimisers. Construct with parameters (a module, tensors, named tensors, or
 * a list of groups `{ params, ...overrides }`) and options; call `step()` after `backward()`.
 * Parameters that are frozen (`requiresGrad` false) or have no gradient are skipped.
 *
 * @example
 * ```ts
 * import { Adam } from "./adam.ts";
 * import { MLP } from "../nn/linear.ts";
 * import { randn, tidy } from "../tensor/mod.ts";
 * const net = new MLP([1, 16, 1], { activation: "tanh" });
 * const opt = new Adam(net, { lr: 1e-3 });
 * const x = randn([32, 1], { seed: 1 });
 * tidy(() => {
 *   net.forward(x).sub(x.sin()).square().mean().backward();
 *   opt.step();
 *   opt.zeroGrad();
 * });
 * ```
 */
export abstract class Optimizer<O extends BaseOptions = BaseOptions> {
  /** The parameter groups (options are mutable between steps). */
  readonly groups: Group<O>[] = [];
  #step = 0;

  /**
   * Sets up groups from `params`. Each group's options are `defaults` overridden by `options`, then
   * by the group's own entries; every option is checked here (an unknown key, or a value out of
   * its range, raises an ArgumentError naming it), and again at each step.
   */
  constructor(params: Params | ParamGroup<O>[], defaults: Omit<O, "lr"> & Partial<BaseOptions>, options: Partial<O>) {
    const op = this.constructor.name;
    const optionKeys = ["lr", ...Object.keys(defaults).filter((k) => k !== "lr")] as (keyof O)[];
    const base = withDefaults(defaults as O, checkOptions<Partial<O>>(op, options, optionKeys));
    const list = params instanceof Module ? [params] : [...(params as Iterable<unknown>)];
    const groups: ParamGroup<O>[] = params instanceof Module
      ? [{ params } as ParamGroup<O>]
      : list.length > 0 && list.every((g) => isGroup<O>(g))
      ? (list as ParamGroup<O>[])
      : [{ params: list as Iterable<Tensor> } as ParamGroup<O>];
    const seen = new Set<Tensor>();
    const keys = new Set<string>();
    let index = 0;
    for (const g of groups) {
      const { params: gp, ...overrides } = g;
      const options = withDefaults(base, checkOptions<Partial<O>>(op, overrides as unknown as Partial<O>, optionKeys));
      this.#check(options);
      const states: ParamState[] = [];
      for (const [name, p] of parameterList(op, gp)) {
        const key = name ?? String(index);
        index++;
        if (!isFloat(p.dtype)) {
          throw new ArgumentError(op, `parameter "${key}" is ${p.dtype}; only float tensors train`);
        }
        if (p.node) {
          throw new ArgumentError(
            op,
            `parameter "${key}" is the result of an operation, not a leaf; optimise leaf tensors (requireGrad())`,
          );
        }
        if (seen.has(p)) throw new ArgumentError(op, `parameter "${key}" appears more than once`);
        if (keys.has(key)) throw new ArgumentError(op, `two parameters share the key "${key}"`);
        seen.add(p);
        keys.add(key);
        states.push({ key, param: p, state: new Map(), steps: 0 });
      }
      this.groups.push({ options, params: states });
    }
    if (seen.size === 0) throw new ArgumentError(op, "got no parameters to optimise");
  }

  /** Checks a group's options: the learning rate here, the rest in the subclass's {@link Optimizer.validate}. */
  #check(options: O): void {
    // A schedule is checked where it is evaluated, at each step.
    if (typeof options.lr !== "function") checkNumber(this.constructor.name, "lr", options.lr, { min: 0 });
    this.validate(options);
  }

  /** Checks a group's options other than `lr`, raising an ArgumentError naming the bad one. */
  protected abstract validate(options: O): void;

  /** Slot names this optimiser keeps per parameter (for checking loaded state). */
  protected abstract readonly slots: readonly string[];

  /**
   * Computes the new value of one parameter. `param` is the parameter (or its float32 master),
   * `grad` its gradient in the same dtype; use {@link Optimizer.slot} for state. Runs under
   * `noGrad` in the step's `tidy` scope.
   */
  protected abstract update(p: ParamState, param: Tensor, grad: Tensor, lr: number, options: O): Tensor;

  /**
   * Applies the whole update of one parameter in place through a fused backend primitive, when
   * the subclass has one that fits; returns false to fall back to {@link Optimizer.update}.
   * `param` is the parameter or its float32 master, `grad` the gradient as accumulated (the
   * parameter's dtype), `lowPrecision` the bfloat16 parameter to refresh from the master (null
   * when `param` is the parameter itself). The default has none.
   */
  protected fusedUpdate(
    _p: ParamState,
    _param: Tensor,
    _grad: Tensor,
    _lowPrecision: Tensor | null,
    _lr: number,
    _options: O,
  ): boolean {
    return false;
  }

  /**
   * The state tensor `name` of `p`, created by `init` (and kept) on first use.
   *
   * @example
   * ```ts
   * // inside a subclass's update():
   * // const m = this.slot(p, "exp_avg", () => zerosLike(param));
   * ```
   */
  protected slot(p: ParamState, name: string, init: () => Tensor): Tensor {
    let t = p.state.get(name);
    if (!t) {
      const made = init();
      // State must own its storage: never the parameter or its gradient (zeroGrad frees that).
      t = (made === p.param || made === p.param.grad ? made.clone() : made).keep();
      p.state.set(name, t);
    }
    return t;
  }

  /** Number of `step()` calls so far (the schedule's clock). */
  get stepCount(): number {
    return this.#step;
  }

  /**
   * The learning rate the next `step()` will use (of the first group, or of `group`).
   *
   * @example
   * ```ts
   * import { SGD } from "./sgd.ts";
   * import { zeros } from "../tensor/mod.ts";
   * new SGD([zeros([2]).requireGrad()], { lr: (t) => 0.1 / (1 + t) }).lr; // 0.1
   * ```
   */
  get lr(): number {
    return this.lrOf(0);
  }

  /** The learning rate the next `step()` will use for group `group`. */
  lrOf(group: number): number {
    const g = this.groups[group];
    if (!g) throw new ArgumentError("lr", `there is no parameter group ${group}`);
    return resolveLr(g.options.lr, this.#step);
  }

  /**
   * Every parameter the optimiser holds (frozen ones included).
   *
   * @example
   * ```ts
   * import { SGD } from "./sgd.ts";
   * import { zeros } from "../tensor/mod.ts";
   * new SGD([zeros([2]).requireGrad()], { lr: 0.1 }).parameters().length; // 1
   * ```
   */
  parameters(): Tensor[] {
    return this.groups.flatMap((g) => g.params.map((p) => p.param));
  }

  /**
   * Applies one update to every trainable parameter that has a gradient, then advances the
   * step count.
   *
   * @example
   * ```ts
   * import { SGD } from "./sgd.ts";
   * import { tensor } from "../tensor/mod.ts";
   * const w = tensor([1, 2]).requireGrad();
   * w.square().sum().backward();
   * new SGD([w], { lr: 0.1 }).step(); // w = [0.8, 1.6]
   * ```
   */
  step(): void {
    for (const g of this.groups) this.#check(g.options);
    const t = this.#step;
    const lrs = this.groups.map((g) => resolveLr(g.options.lr, t));
    noGrad(() =>
      tidy(() => {
        this.groups.forEach((group, gi) => {
          for (const p of group.params) {
            const param = p.param;
            const grad = param.grad;
            if (!param.requiresGrad || !grad) continue;
            if (param.disposed) {
              throw new ArgumentError("step", `parameter "${p.key}" was disposed`);
            }
            if (!shapesEqual(grad.shape, param.shape)) {
              throw new ShapeError(
                "step",
                `gradient of "${p.key}" has shape ${fmtShape(grad.shape)}, the parameter ${fmtShape(param.shape)}`,
              );
            }
            const target = param.dtype === "bfloat16" ? this.slot(p, "master", () => param.cast("float32")) : param;
            p.steps++;
            if (this.fusedUpdate(p, target, grad, target === param ? null : param, lrs[gi], group.options)) continue;
            const g = grad.dtype === target.dtype ? grad : grad.cast(target.dtype);
            const next = this.update(p, target, g, lrs[gi], group.options);
            target.assign(next);
            if (target !== param) param.assign(target);
          }
        });
      })
    );
    this.#step++;
  }

  /**
   * Clears the gradients of every parameter (sets `.grad` to null, freeing it).
   *
   * @example
   * ```ts
   * import { SGD } from "./sgd.ts";
   * import { tensor } from "../tensor/mod.ts";
   * const w = tensor([1]).requireGrad();
   * w.square().sum().backward();
   * new SGD([w], { lr: 0.1 }).zeroGrad(); // w.grad === null
   * ```
   */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /**
   * The optimiser's state (live tensors, not copies; see {@link OptimizerStateDict}).
   *
   * @example
   * ```ts
   * import { Adam } from "./adam.ts";
   * import { MLP } from "../nn/linear.ts";
   * import { saveSafetensors } from "../nn/safetensors.ts";
   * const net = new MLP([1, 8, 1]);
   * const opt = new Adam(net, { lr: 1e-3 });
   * const sd = opt.stateDict();
   * await saveSafetensors("opt.safetensors", sd.tensors, sd.metadata);
   * ```
   */
  stateDict(): OptimizerStateDict {
    const tensors = new Map<string, Tensor>();
    const paramSteps: Record<string, number> = {};
    for (const g of this.groups) {
      for (const p of g.params) {
        for (const [slot, t] of p.state) tensors.set(`${p.key}.${slot}`, t);
        if (p.steps) paramSteps[p.key] = p.steps;
      }
    }
    return {
      tensors,
      metadata: {
        optimizer: this.constructor.name,
        step: String(this.#step),
        param_steps: JSON.stringify(paramSteps),
      },
    };
  }

  /**
   * Restores state saved by {@link Optimizer.stateDict} (or loaded from safetensors), replacing
   * the current state; the tensors are copied, so the dict may be disposed afterwards. Checks
   * everything first: unknown parameters or slots raise an ArgumentError, shapes that differ
   * from the parameter's a ShapeError.
   *
   * @example
   * ```ts
   * import { Adam } from "./adam.ts";
   * import { MLP } from "../nn/linear.ts";
   * import { loadSafetensors } from "../nn/safetensors.ts";
   * const net = new MLP([1, 8, 1]);
   * const opt = new Adam(net, { lr: 1e-3 });
   * opt.loadStateDict(await loadSafetensors("opt.safetensors"));
   * ```
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const op = "loadStateDict";
    const name = this.constructor.name;
    const meta = dict.metadata ?? {};
    if (meta.optimizer !== undefined && meta.optimizer !== name) {
      throw new ArgumentError(op, `the state was saved by ${meta.optimizer}, not ${name}`);
    }
    const step = Number(meta.step ?? "0");
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new ArgumentError(op, `metadata "step" must be a non-negative integer, got ${JSON.stringify(meta.step)}`);
    }
    let paramSteps: Record<string, number>;
    try {
      paramSteps = JSON.parse(meta.param_steps ?? "{}");
    } catch {
      throw new ArgumentError(op, `metadata "param_steps" is not JSON: ${JSON.stringify(meta.param_steps)}`);
    }
    const byKey = new Map<string, ParamState>();
    for (const g of this.groups) for (const p of g.params) byKey.set(p.key, p);
    for (const [key, n] of Object.entries(paramSteps)) {
      if (!byKey.has(key)) throw new ArgumentError(op, `param_steps names an unknown parameter "${key}"`);
      if (!Number.isSafeInteger(n) || n < 0) throw new ArgumentError(op, `param_steps["${key}"] is ${n}`);
    }
    const allowed = new Set([...this.slots, "master"]);
    const plan: [ParamState, string, Tensor][] = [];
    const entries = dict.tensors instanceof Map ? [...dict.tensors] : Object.entries(dict.tensors ?? {});
    for (const [full, t] of entries) {
      const dot = full.lastIndexOf(".");
      const key = full.slice(0, dot);
      const slot = full.slice(dot + 1);
      const p = dot > 0 ? byKey.get(key) : undefined;
      if (!p) throw new ArgumentError(op, `state "${full}" names no parameter of this ${name}`);
      if (!allowed.has(slot)) {
        throw new ArgumentError(op, `state "${full}": ${name} keeps no slot "${slot}" (it has ${[...allowed]})`);
      }
      if (!(t instanceof Tensor) || t.disposed) throw new ArgumentError(op, `state "${full}" is not a live Tensor`);
      if (!shapesEqual(t.shape, p.param.shape)) {
        throw new ShapeError(
          op,
          `state "${full}": expected shape ${fmtShape(p.param.shape)}, got ${fmtShape(t.shape)}`,
        );
      }
      plan.push([p, slot, t]);
    }
    for (const p of byKey.values()) {
      for (const t of p.state.values()) t.dispose();
      p.state.clear();
      p.steps = paramSteps[p.key] ?? 0;
    }
    noGrad(() =>
      tidy(() => {
        for (const [p, slot, t] of plan) {
          const dtype = p.param.dtype === "bfloat16" ? "float32" : p.param.dtype;
          const here = t.backend === p.param.backend
            ? t
            : Tensor.fromBuffer(p.param.backend.fromHost(t.toTypedArray(), t.dtype), t.shape, t.dtype);
          // Always a fresh tensor: the state must not alias the dict's tensors.
          p.state.set(slot, (here.dtype === dtype ? here.clone() : here.cast(dtype)).keep());
        }
      })
    );
    this.#step = step;
  }
}

/**
 * Containers: {@link Sequential} chains modules; {@link ModuleList} holds them by index.
 *
 * @module
 */

import { ArgumentError, type Tensor } from "../tensor/mod.ts";
import { Module, type TensorModule } from "./module.ts";

/**
 * Modules held by index (children named "0", "1", …), for layers a parent applies itself.
 *
 * @example
 * ```ts
 * import { ModuleList } from "./containers.ts";
 * import { Linear } from "./linear.ts";
 * const blocks = new ModuleList([new Linear(4, 4), new Linear(4, 4)]);
 * blocks.length; // 2
 * ```
 */
export class ModuleList<M extends Module = Module> extends Module {
  readonly #items: M[] = [];

  /** A list holding `modules` in order. */
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  /**
   * Appends a module (named by its index). Returns it.
   *
   * @example
   * ```ts
   * import { ModuleList } from "./containers.ts";
   * import { Linear } from "./linear.ts";
   * new ModuleList().push(new Linear(2, 2));
   * ```
   */
  push(m: M): M {
    this.module(String(this.#items.length), m);
    this.#items.push(m);
    return m;
  }

  /** Replaces the child `name` (an index) and its place in the list; returns the old one. */
  override replaceModule(name: string, child: Module): Module {
    const old = super.replaceModule(name, child);
    const i = this.#items.indexOf(old as M);
    if (i >= 0) this.#items[i] = child as M;
    return old;
  }

  /** Number of modules. */
  get length(): number {
    return this.#items.length;
  }

  /**
   * The module at `index` (negative counts from the end).
   *
   * @example
   * ```ts
   * import { ModuleList } from "./containers.ts";
   * import { Linear } from "./linear.ts";
   * new ModuleList([new Linear(2, 3)]).at(-1).outFeatures; // 3
   * ```
   */
  at(index: number): M {
    const i = index < 0 ? this.#items.length + index : index;
    if (!Number.isInteger(i) || i < 0 || i >= this.#items.length) {
      throw new ArgumentError("ModuleList.at", `index ${index} is out of range for ${this.#items.length} modules`);
    }
    return this.#items[i];
  }

  /** The modules in order. */
  [Symbol.iterator](): IterableIterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

/**
 * Applies its modules in order, each to the previous one's output (children named "0", "1", …).
 *
 * @example
 * ```ts
 * import { Sequential } from "./containers.ts";
 * import { Activation } from "./activation.ts";
 * import { Linear } from "./linear.ts";
 * import { randn } from "../tensor/mod.ts";
 * const net = new Sequential(new Linear(2, 16, { seed: 0 }), new Activation("tanh"), new Linear(16, 1, { seed: 1 }));
 * net.forward(randn([8, 2])).shape; // [8, 1]
 * ```
 */
export class Sequential extends ModuleList<TensorModule> {
  /** A chain of `modules`. */
  constructor(...modules: TensorModule[]) {
    super(modules);
  }

  /** Runs the chain. */
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}

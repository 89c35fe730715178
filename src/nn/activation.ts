/**
 * Activation functions by name, as plain functions ({@link activation}) or as a module
 * ({@link Activation}) for {@link Sequential}.
 *
 * @module
 */

import { ArgumentError, type Tensor } from "../tensor/mod.ts";
import { Module } from "./module.ts";

/**
 * The activations a layer can name. `gelu` is the exact (erf) form; `gelu_tanh` the tanh approximation.
 *
 * @example
 * ```ts
 * import type { ActivationName } from "./activation.ts";
 * const name: ActivationName = "gelu_tanh";
 * ```
 */
export type ActivationName = "relu" | "gelu" | "gelu_tanh" | "tanh" | "sigmoid" | "silu" | "softplus" | "identity";

/**
 * An activation by name or as a function.
 *
 * @example
 * ```ts
 * import type { ActivationLike } from "./activation.ts";
 * const act: ActivationLike = (x) => x.sin(); // or a name such as "tanh"
 * ```
 */
export type ActivationLike = ActivationName | ((x: Tensor) => Tensor);

const TABLE: Record<ActivationName, (x: Tensor) => Tensor> = {
  relu: (x) => x.relu(),
  gelu: (x) => x.gelu("none"),
  gelu_tanh: (x) => x.gelu("tanh"),
  tanh: (x) => x.tanh(),
  sigmoid: (x) => x.sigmoid(),
  silu: (x) => x.silu(),
  softplus: (x) => x.softplus(),
  identity: (x) => x,
};

/**
 * Every activation name, in a fixed order.
 *
 * @example
 * ```ts
 * import { ACTIVATIONS } from "./activation.ts";
 * ACTIVATIONS.includes("silu"); // true
 * ```
 */
export const ACTIVATIONS: readonly ActivationName[] = Object.keys(TABLE) as ActivationName[];

/**
 * The function for an activation name (a function is returned unchanged). Unknown names raise an
 * {@link ArgumentError} listing the known ones.
 *
 * @example
 * ```ts
 * import { activation } from "./activation.ts";
 * import { tensor } from "../tensor/mod.ts";
 * activation("relu")(tensor([-1, 2])).toArray(); // [0, 2]
 * ```
 */
export function activation(name: ActivationLike): (x: Tensor) => Tensor {
  if (typeof name === "function") return name;
  const fn = Object.hasOwn(TABLE, name) ? TABLE[name] : undefined;
  if (!fn) {
    throw new ArgumentError(
      "activation",
      `unknown activation ${JSON.stringify(name)}; expected one of ${ACTIVATIONS.join(", ")} or a function`,
    );
  }
  return fn;
}

/**
 * An activation as a parameter-free module.
 *
 * @example
 * ```ts
 * import { Activation } from "./activation.ts";
 * import { tensor } from "../tensor/mod.ts";
 * new Activation("tanh").forward(tensor([0])).toArray(); // [0]
 * ```
 */
export class Activation extends Module {
  /** The activation's name ("custom" for a function). */
  readonly name: string;
  readonly #fn: (x: Tensor) => Tensor;

  /** The activation `name` (or a function). */
  constructor(name: ActivationLike) {
    super();
    this.#fn = activation(name);
    this.name = typeof name === "string" ? name : "custom";
  }

  /** Applies the activation elementwise. */
  forward(x: Tensor): Tensor {
    return this.#fn(x);
  }

  /** `Activation(name)`. */
  override describe(): string {
    return `Activation(${this.name})`;
  }
}

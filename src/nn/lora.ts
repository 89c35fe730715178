/**
 * Low-rank adapters (LoRA, Hu et al. 2021) as PEFT implements them: a frozen `Linear` W plus a
 * trainable update `(α/r)·B·A` (A `[r, in]` initialised as PyTorch's Linear, B `[out, r]` at zero,
 * so training starts from the base model), with dropout on the adapter's input. Parameter names
 * follow PEFT's (`q_proj.lora_A.weight`, `q_proj.lora_B.weight`) beside the base layer's own
 * (`q_proj.weight`), so the base still saves and loads by its original names.
 *
 * @module
 */

import { ArgumentError, Generator, noGrad, type Tensor } from "../tensor/mod.ts";
import { Dropout } from "./dropout.ts";
import { type Initializer, zeros } from "./init.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";

/**
 * Options of {@link applyLora} and {@link LoRALinear}.
 *
 * @example
 * ```ts
 * import type { LoraOptions } from "./lora.ts";
 * const o: LoraOptions = { r: 8, alpha: 16, dropout: 0.05, targets: ["q_proj", "v_proj"] };
 * ```
 */
export interface LoraOptions {
  /** Rank r. Default 8. */
  r?: number;
  /** Scale α: the update is multiplied by α/r (α/√r with `rslora`). Default 8, as PEFT. */
  alpha?: number;
  /** Dropout probability on the adapter's input. Default 0. */
  dropout?: number;
  /** Names of the `Linear` layers to adapt (the last part of their dotted name). Default q_proj, v_proj. */
  targets?: readonly string[];
  /** Scale by α/√r (rank-stabilised LoRA) instead of α/r. Default false. */
  rslora?: boolean;
  /** Seed of A's initial values and of the dropout masks. Default 0. */
  seed?: number;
}

/**
 * A `Linear` with a low-rank adapter: `y = x·Wᵀ + b + s·dropout(x)·Aᵀ·Bᵀ`, s = α/r. The base
 * weight and bias are registered here under their own names (`weight`, `bias`) and frozen.
 *
 * @example
 * ```ts
 * import { LoRALinear } from "./lora.ts";
 * import { Linear } from "./linear.ts";
 * import { randn } from "../tensor/mod.ts";
 * const layer = new LoRALinear(new Linear(16, 32), { r: 4, alpha: 8 });
 * layer.forward(randn([2, 16])).shape; // [2, 32]
 * layer.lora_A.weight.shape; // [4, 16]
 * ```
 */
export class LoRALinear extends Module {
  /** The adapted layer (its weight and bias are this module's `weight` and `bias`). */
  readonly base: Linear;
  /** A: input features to rank r. */
  readonly lora_A: Linear;
  /** B: rank r to output features (zeros at first). */
  readonly lora_B: Linear;
  /** Dropout on the adapter's input. */
  readonly lora_dropout: Dropout;
  /** The factor s multiplying B·A. */
  readonly scaling: number;
  /** Rank r. */
  readonly r: number;
  /** α. */
  readonly alpha: number;
  /** Whether the scale is α/√r (rank-stabilised) rather than α/r. */
  readonly rslora: boolean;
  #merged = false;

  /** Wraps `base` (its parameters are frozen) with a fresh adapter. */
  constructor(base: Linear, options: LoraOptions = {}) {
    super();
    const r = options.r ?? 8;
    const alpha = options.alpha ?? 8;
    if (!Number.isInteger(r) || r <= 0) throw new ArgumentError("LoRA", `r must be a positive integer, got ${r}`);
    if (!(alpha > 0)) throw new ArgumentError("LoRA", `alpha must be positive, got ${alpha}`);
    this.base = base;
    this.r = r;
    this.alpha = alpha;
    this.rslora = options.rslora ?? false;
    this.scaling = options.rslora ? alpha / Math.sqrt(r) : alpha / r;
    this.param("weight", base.weight).requiresGrad = false;
    if (base.bias) this.param("bias", base.bias).requiresGrad = false;
    const dtype = base.weight.dtype;
    const backend = base.weight.backend;
    const generator = new Generator(options.seed ?? 0);
    const zero: Initializer = (s, o) => zeros(s, o);
    this.lora_A = this.module("lora_A", new Linear(base.inFeatures, r, { bias: false, generator, dtype, backend }));
    this.lora_B = this.module(
      "lora_B",
      new Linear(r, base.outFeatures, { bias: false, weightInit: zero, generator, dtype, backend }),
    );
    this.lora_dropout = this.module("lora_dropout", new Dropout(options.dropout ?? 0, { seed: options.seed ?? 0 }));
  }

  /** Whether the update is folded into the base weight (the adapter then adds nothing). */
  get merged(): boolean {
    return this.#merged;
  }

  /** The base layer plus, unless merged, the scaled low-rank update. */
  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    if (this.#merged) return y;
    return y.add(this.lora_B.forward(this.lora_A.forward(this.lora_dropout.forward(x))).mul(this.scaling));
  }

  /** The update s·B·A, `[out, in]`. */
  delta(): Tensor {
    return noGrad(() => this.lora_B.weight.matmul(this.lora_A.weight).mul(this.scaling));
  }

  /** Folds s·B·A into the base weight (W ← W + s·B·A), for inference without the adapter's cost. */
  merge(): void {
    if (this.#merged) return;
    const w = this.base.weight;
    noGrad(() => w.assign(w.add(this.delta())));
    this.#merged = true;
  }

  /** Takes the update back out of the base weight (exact up to rounding in the weight's dtype). */
  unmerge(): void {
    if (!this.#merged) return;
    const w = this.base.weight;
    noGrad(() => w.assign(w.sub(this.delta())));
    this.#merged = false;
  }

  /** `LoRALinear(in → out, r)`. */
  override describe(): string {
    return `LoRALinear(${this.base.inFeatures} → ${this.base.outFeatures}, r=${this.r}, scaling=${this.scaling})`;
  }
}

/**
 * Wraps every `Linear` of `model` whose name ends in one of `targets` with a {@link LoRALinear}
 * (in place) and freezes every other parameter, as PEFT's `get_peft_model` does. Returns the
 * adapters by dotted name. A target that names no `Linear` raises an {@link ArgumentError}
 * listing the layer names there are.
 *
 * @example
 * ```ts
 * import { applyLora } from "./lora.ts";
 * import { MLP } from "./linear.ts";
 * const net = new MLP([4, 8, 2]);
 * const adapters = applyLora(net, { targets: ["0"], r: 2 });
 * [...adapters.keys()]; // ["layers.0"]
 * net.numParameters({ trainableOnly: true }); // 2·4 + 8·2
 * ```
 */
export function applyLora(model: Module, options: LoraOptions = {}): Map<string, LoRALinear> {
  const targets = options.targets ?? ["q_proj", "v_proj"];
  const found = new Map<string, [Module, string, Linear]>();
  const linears: string[] = [];
  for (const [name, m] of model.namedModules()) {
    for (const [child, c] of m.namedChildren()) {
      if (!(c instanceof Linear)) continue;
      const full = name ? `${name}.${child}` : child;
      linears.push(full);
      if (targets.includes(child)) found.set(full, [m, child, c]);
    }
  }
  const unused = targets.filter((t) => ![...found.keys()].some((k) => k === t || k.endsWith(`.${t}`)));
  if (unused.length) {
    const names = [...new Set(linears.map((n) => n.split(".").pop()))].join(", ");
    throw new ArgumentError(
      "applyLora",
      `target${unused.length > 1 ? "s" : ""} ${
        unused.map((t) => `"${t}"`).join(", ")
      } name no Linear layer (there are: ${names})`,
    );
  }
  model.freeze();
  const adapters = new Map<string, LoRALinear>();
  let seed = options.seed ?? 0;
  for (const [full, [parent, child, linear]] of found) {
    const adapter = new LoRALinear(linear, { ...options, seed: seed++ });
    parent.replaceModule(child, adapter);
    adapters.set(full, adapter);
  }
  return adapters;
}

/**
 * The adapters of a model, by dotted name.
 *
 * @example
 * ```ts
 * import { applyLora, loraLayers } from "./lora.ts";
 * import { MLP } from "./linear.ts";
 * const net = new MLP([4, 8, 2]);
 * applyLora(net, { targets: ["1"] });
 * loraLayers(net).size; // 1
 * ```
 */
export function loraLayers(model: Module): Map<string, LoRALinear> {
  return new Map([...model.namedModules()].filter(([, m]) => m instanceof LoRALinear) as [string, LoRALinear][]);
}

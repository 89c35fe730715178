/**
 * LoRA adapters in PEFT's layout: a folder with `adapter_config.json` and
 * `adapter_model.safetensors`, whose keys are the adapted model's parameter names prefixed with
 * `base_model.model.` and without PEFT's adapter name (`base_model.model.model.layers.0.self_attn.
 * q_proj.lora_A.weight`). PEFT loads what {@link saveAdapter} writes, and {@link loadAdapter} reads
 * what PEFT saves.
 *
 * @module
 */

import {
  applyLora,
  loraLayers,
  type LoraOptions,
  type Module,
  SafetensorsFile,
  writeSafetensorsFile,
} from "../nn/mod.ts";
import type { Tensor } from "../tensor/mod.ts";
import { CheckpointError } from "./checkpoint.ts";

const CONFIG = "adapter_config.json";
const WEIGHTS = "adapter_model.safetensors";
const PREFIX = "base_model.model.";

/**
 * Options of {@link saveAdapter}.
 *
 * @example
 * ```ts
 * import type { SaveAdapterOptions } from "./peft.ts";
 * const o: SaveAdapterOptions = { baseModel: "Qwen/Qwen2.5-0.5B" };
 * ```
 */
export interface SaveAdapterOptions {
  /** `base_model_name_or_path` written to the config. Default null. */
  baseModel?: string | null;
}

/**
 * Writes the model's LoRA adapters as a PEFT folder (`adapter_config.json` with r, α, dropout and
 * target modules; `adapter_model.safetensors` with every `lora_A`/`lora_B` weight).
 *
 * @example
 * ```ts
 * import { saveAdapter } from "./peft.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * import { applyLora } from "../nn/mod.ts";
 * const model = new LlamaForCausalLM(PRESETS.tiny);
 * applyLora(model, { r: 8, alpha: 16 });
 * await saveAdapter(model, "out/adapter");
 * ```
 */
export async function saveAdapter(model: Module, dir: string, options: SaveAdapterOptions = {}): Promise<void> {
  const layers = loraLayers(model);
  if (layers.size === 0) throw new CheckpointError("saveAdapter", "the model has no LoRA adapters (applyLora first)");
  const first = [...layers.values()][0];
  const targets = [...new Set([...layers.keys()].map((k) => k.split(".").pop()!))];
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: options.baseModel ?? null,
    revision: null,
    inference_mode: true,
    r: first.r,
    lora_alpha: first.alpha,
    lora_dropout: first.lora_dropout.p,
    target_modules: targets,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: first.rslora,
    use_dora: false,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
  const tensors = new Map<string, Tensor>();
  for (const [name, layer] of layers) {
    tensors.set(`${PREFIX}${name}.lora_A.weight`, layer.lora_A.weight);
    tensors.set(`${PREFIX}${name}.lora_B.weight`, layer.lora_B.weight);
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${CONFIG}`, JSON.stringify(config, null, 2) + "\n");
  writeSafetensorsFile(`${dir}/${WEIGHTS}`, tensors, { metadata: { format: "pt" } });
}

/**
 * Reads a PEFT LoRA folder into `model`: applies adapters as its `adapter_config.json` says
 * (r, `lora_alpha`, `lora_dropout`, `target_modules` as a list of names or a regular expression
 * over full module names, `use_rslora`) and loads their weights. Only LoRA adapters without DoRA,
 * bias training or extra saved modules are read; anything else, a missing weight or a misshapen
 * one raises a {@link CheckpointError} naming it.
 *
 * @example
 * ```ts
 * import { loadAdapter } from "./peft.ts";
 * import { loadPretrained } from "./checkpoint.ts";
 * const model = await loadPretrained("models/Qwen2.5-0.5B");
 * await loadAdapter(model, "models/my-adapter");
 * ```
 */
export async function loadAdapter(model: Module, dir: string, options: Pick<LoraOptions, "seed"> = {}): Promise<void> {
  const op = "loadAdapter";
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await Deno.readTextFile(`${dir}/${CONFIG}`));
  } catch (e) {
    throw new CheckpointError(op, `cannot read ${dir}/${CONFIG}: ${(e as Error).message}`);
  }
  if (config.peft_type !== "LORA") {
    throw new CheckpointError(op, `peft_type ${JSON.stringify(config.peft_type)} is not LORA`);
  }
  for (const [key, plain] of [["use_dora", false], ["bias", "none"], ["modules_to_save", null]] as const) {
    if ((config[key] ?? plain) !== plain) {
      throw new CheckpointError(
        op,
        `${key} ${JSON.stringify(config[key])} is not supported (only ${JSON.stringify(plain)})`,
      );
    }
  }
  const r = config.r as number;
  const alpha = (config.lora_alpha ?? 8) as number;
  const dropout = (config.lora_dropout ?? 0) as number;
  const rslora = (config.use_rslora ?? false) as boolean;
  let targets = config.target_modules as string[] | string;
  if (typeof targets === "string") {
    const re = new RegExp(`^(?:${targets})$`);
    targets = [...new Set([...model.namedModules()].filter(([n]) => re.test(n)).map(([n]) => n.split(".").pop()!))];
  }
  if (!Array.isArray(targets) || targets.length === 0) throw new CheckpointError(op, "target_modules names no module");
  applyLora(model, { r, alpha, dropout, rslora, targets, seed: options.seed });
  const file = SafetensorsFile.open(`${dir}/${WEIGHTS}`);
  try {
    const keys = new Map([...file.entries.keys()].map((k) => [k.replace(/\.default\.weight$/, ".weight"), k]));
    for (const [name, layer] of loraLayers(model)) {
      for (const [part, target] of [["lora_A", layer.lora_A.weight], ["lora_B", layer.lora_B.weight]] as const) {
        const key = keys.get(`${PREFIX}${name}.${part}.weight`);
        if (!key) throw new CheckpointError(op, `${dir}/${WEIGHTS} lacks "${PREFIX}${name}.${part}.weight"`);
        const shape = file.entries.get(key)!.shape;
        if (shape.join() !== target.shape.join()) {
          throw new CheckpointError(op, `"${key}" has shape [${shape}] but the model needs [${target.shape}]`);
        }
        file.readInto(key, target);
      }
    }
  } finally {
    file.close();
  }
}

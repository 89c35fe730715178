/**
 * State-space models as folders, in the layout of a Hugging Face model folder: `config.json`
 * (the {@link SSMConfig} in snake case, `model_type: "patchwork-ssm"`) and `model.safetensors`
 * (the parameters by their names), written and read with the same safetensors code as every
 * other checkpoint.
 *
 * @module
 */

import { join } from "node:path";
import { loadSafetensors, saveSafetensors } from "../nn/mod.ts";
import type { Backend, DType } from "../tensor/mod.ts";
import { ConfigError } from "./config.ts";
import { type SSMConfig, ssmConfig, SSMForCausalLM } from "./ssm.ts";

/** The `model_type` of an SSM folder's `config.json`. */
const MODEL_TYPE = "patchwork-ssm";

const FIELDS = [
  ["vocab_size", "vocabSize"],
  ["hidden_size", "hiddenSize"],
  ["state_size", "stateSize"],
  ["num_layers", "numLayers"],
  ["rms_norm_eps", "rmsNormEps"],
  ["initializer_range", "initializerRange"],
  ["decay_range", "decayRange"],
] as const;

/**
 * Writes `model` to `dir` (created): `config.json` and `model.safetensors` in the parameters' dtype.
 *
 * @example
 * ```ts
 * import { saveSSM } from "./ssm_checkpoint.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * await saveSSM(new SSMForCausalLM(SSM_PRESETS.tiny), "out/ssm-tiny");
 * ```
 */
export async function saveSSM(model: SSMForCausalLM, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const json: Record<string, unknown> = { model_type: MODEL_TYPE };
  for (const [key, field] of FIELDS) json[key] = model.config[field];
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(json, null, 2) + "\n");
  await saveSafetensors(join(dir, "model.safetensors"), model.stateDict(), { format: "pt" });
}

/**
 * Reads a model written by {@link saveSSM}. A `config.json` of another model type or missing a
 * field is a {@link ConfigError} naming it; a missing or misshapen tensor is an error naming it.
 *
 * @example
 * ```ts
 * import { loadSSM } from "./ssm_checkpoint.ts";
 * const model = await loadSSM("out/ssm-tiny", { dtype: "float64" });
 * ```
 */
export async function loadSSM(
  dir: string,
  options: { dtype?: DType; backend?: Backend } = {},
): Promise<SSMForCausalLM> {
  const json = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  if (json.model_type !== MODEL_TYPE) {
    throw new ConfigError("loadSSM", `${dir}/config.json has model_type ${json.model_type}, not "${MODEL_TYPE}"`);
  }
  const fields: Record<string, unknown> = {};
  for (const [key, field] of FIELDS) {
    if (json[key] === undefined) throw new ConfigError("loadSSM", `${dir}/config.json lacks "${key}"`);
    fields[field] = json[key];
  }
  const model = new SSMForCausalLM(ssmConfig(fields as unknown as SSMConfig), options);
  const { tensors } = await loadSafetensors(join(dir, "model.safetensors"));
  model.loadStateDict(tensors);
  return model;
}

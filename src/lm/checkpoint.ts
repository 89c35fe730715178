/**
 * Hugging Face model folders: `config.json` with `model.safetensors`, or shards listed in
 * `model.safetensors.index.json`; float32, bfloat16 and float16 tensors. Loading builds the model
 * with zero weights and reads each tensor from its file straight into its parameter, converting
 * to the dtype chosen, so host memory holds about one copy of the model. Saving writes the same
 * layout (what transformers' `from_pretrained` reads).
 *
 * @module
 */

import {
  type Backend,
  type DType,
  DTypeError,
  fmtShape,
  getDefaultBackend,
  PatchworkError,
  type Tensor,
} from "../tensor/mod.ts";
import { SafetensorsFile, writeSafetensorsFile } from "../nn/mod.ts";
import { configFromHF, configToHF } from "./config.ts";
import { LlamaForCausalLM } from "./llama.ts";

/**
 * A model folder that cannot be loaded as asked: no config or weights, a tensor missing,
 * misshapen or unexpected.
 *
 * @example
 * ```ts
 * import { CheckpointError, loadPretrained } from "./checkpoint.ts";
 * try {
 *   await loadPretrained("/no/such/folder");
 * } catch (e) {
 *   e instanceof CheckpointError; // true
 * }
 * ```
 */
export class CheckpointError extends PatchworkError {}

/**
 * Options of {@link loadPretrained}.
 *
 * @example
 * ```ts
 * import type { LoadOptions } from "./checkpoint.ts";
 * const o: LoadOptions = { dtype: "bfloat16" };
 * ```
 */
export interface LoadOptions {
  /** Parameter dtype. Default: float32 on the CPU, bfloat16 on a GPU backend. */
  dtype?: DType;
  /** Backend of the parameters. Default: the default backend. */
  backend?: Backend;
  /** Refuse tensors in the files that the model does not have (default true). */
  strict?: boolean;
}

const WEIGHTS = "model.safetensors";
const INDEX = "model.safetensors.index.json";

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new CheckpointError("loadPretrained", `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError("loadPretrained", `${path} is not valid JSON (${(e as Error).message})`);
  }
}

/** Tensor name → file name, from the index of a sharded folder or the single weights file. */
async function weightMap(dir: string): Promise<Map<string, string>> {
  if (exists(join(dir, INDEX))) {
    const index = await readJson(join(dir, INDEX), "the shard index");
    const map = index.weight_map;
    if (map === null || typeof map !== "object") {
      throw new CheckpointError("loadPretrained", `${join(dir, INDEX)} has no "weight_map" object`);
    }
    return new Map(Object.entries(map as Record<string, string>));
  }
  if (exists(join(dir, WEIGHTS))) {
    const f = SafetensorsFile.open(join(dir, WEIGHTS));
    f.close();
    return new Map([...f.entries.keys()].map((k) => [k, WEIGHTS]));
  }
  const found = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  throw new CheckpointError(
    "loadPretrained",
    `${dir} has neither ${WEIGHTS} nor ${INDEX} (found: ${found.join(", ") || "nothing"}); ` +
      `only safetensors weights are read — convert .bin/.pth files with transformers' save_pretrained`,
  );
}

/** Names in a checkpoint that a model legitimately lacks. */
function ignorable(name: string, model: LlamaForCausalLM): boolean {
  return name.endsWith("rotary_emb.inv_freq") || (name === "lm_head.weight" && model.lm_head === null);
}

/**
 * Loads a Hugging Face model folder (Llama, Mistral, Qwen2): reads `config.json`, builds the
 * model with zero weights, then reads every parameter by its Hugging Face name from its file
 * (single or sharded safetensors, F32/BF16/F16) straight into place. A missing tensor, a shape
 * mismatch (both shapes named) or, with `strict`, a tensor the model lacks raises a
 * {@link CheckpointError}.
 *
 * @example
 * ```ts
 * import { loadPretrained } from "./checkpoint.ts";
 * const model = await loadPretrained("models/Qwen2.5-0.5B", { dtype: "float32" });
 * const { logits } = model.forward([[9707, 11, 1879]]);
 * ```
 */
export async function loadPretrained(dir: string, options: LoadOptions = {}): Promise<LlamaForCausalLM> {
  const op = "loadPretrained";
  if (!exists(join(dir, "config.json"))) throw new CheckpointError(op, `${dir} has no config.json`);
  const config = configFromHF(await readJson(join(dir, "config.json"), "the config"));
  const backend = options.backend ?? getDefaultBackend();
  const dtype = options.dtype ?? (backend.name === "cpu" ? "float32" : "bfloat16");
  if (!["float32", "bfloat16", "float64"].includes(dtype)) {
    throw new DTypeError(op, `cannot load weights as ${dtype}; choose float32, bfloat16 or float64`);
  }
  const map = await weightMap(dir);
  const model = new LlamaForCausalLM(config, { dtype, backend, weights: "zeros" });
  const own = model.stateDict();
  const missing = [...own.keys()].filter((k) => !map.has(k));
  if (missing.length) {
    throw new CheckpointError(
      op,
      `${dir}: missing tensor${missing.length > 1 ? "s" : ""} ${
        missing.slice(0, 8).map((k) => `"${k}" ${fmtShape(own.get(k)!.shape)}`).join(", ")
      }` +
        `${missing.length > 8 ? ` and ${missing.length - 8} more` : ""}`,
    );
  }
  const unexpected = [...map.keys()].filter((k) => !own.has(k) && !ignorable(k, model));
  if ((options.strict ?? true) && unexpected.length) {
    throw new CheckpointError(
      op,
      `${dir}: tensors the ${config.modelType} model does not have: ${
        unexpected.slice(0, 8).map((k) => `"${k}"`).join(", ")
      }` +
        ` (pass { strict: false } to skip them)`,
    );
  }
  const files = new Map<string, SafetensorsFile>();
  try {
    for (const [name, param] of own) {
      const fileName = map.get(name)!;
      if (!files.has(fileName)) files.set(fileName, SafetensorsFile.open(join(dir, fileName)));
      const file = files.get(fileName)!;
      const entry = file.entries.get(name);
      if (!entry) throw new CheckpointError(op, `${join(dir, fileName)} lacks tensor "${name}" that the index lists`);
      if (entry.shape.join() !== param.shape.join()) {
        throw new CheckpointError(
          op,
          `tensor "${name}" in ${fileName} has shape ${fmtShape(entry.shape)} but the config gives ${
            fmtShape(param.shape)
          }`,
        );
      }
      file.readInto(name, param);
    }
  } finally {
    for (const f of files.values()) f.close();
  }
  return model;
}

/**
 * Options of {@link savePretrained}.
 *
 * @example
 * ```ts
 * import type { SaveOptions } from "./checkpoint.ts";
 * const o: SaveOptions = { dtype: "bfloat16", maxShardBytes: 2 ** 30 };
 * ```
 */
export interface SaveOptions {
  /** Dtype of the tensors written. Default: the parameters' own (float32 for float64). */
  dtype?: "float32" | "bfloat16" | "float16";
  /** Largest shard; more bytes than this split into `model-0000i-of-0000n.safetensors`. Default 5 GB. */
  maxShardBytes?: number;
}

const FILE_DTYPE = { float32: "F32", bfloat16: "BF16", float16: "F16" } as const;

/**
 * Writes a model as a Hugging Face folder: `config.json` (with `torch_dtype`) and
 * `model.safetensors`, or shards with `model.safetensors.index.json` when it is larger than
 * `maxShardBytes`. A tied LM head is written once, as transformers does.
 *
 * @example
 * ```ts
 * import { savePretrained } from "./checkpoint.ts";
 * import { LlamaForCausalLM } from "./llama.ts";
 * import { PRESETS } from "./config.ts";
 * await savePretrained(new LlamaForCausalLM(PRESETS.tiny), "out/tiny", { dtype: "bfloat16" });
 * ```
 */
export async function savePretrained(model: LlamaForCausalLM, dir: string, options: SaveOptions = {}): Promise<void> {
  const params = [...model.stateDict()];
  const own = params[0][1].dtype;
  const dtype = options.dtype ?? (own === "bfloat16" ? "bfloat16" : "float32");
  const fileDType = FILE_DTYPE[dtype];
  if (!fileDType) {
    throw new DTypeError("savePretrained", `dtype must be float32, bfloat16 or float16, got ${dtype}`);
  }
  const limit = options.maxShardBytes ?? 5e9;
  const item = dtype === "float32" ? 4 : 2;
  const shards: [string, Tensor][][] = [[]];
  let bytes = 0;
  for (const entry of params) {
    const size = entry[1].size * item;
    if (bytes > 0 && bytes + size > limit) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(entry);
    bytes += size;
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(configToHF(model.config, dtype), null, 2) + "\n");
  const pad = (i: number) => String(i).padStart(5, "0");
  const names = shards.length === 1
    ? [WEIGHTS]
    : shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  let total = 0;
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    writeSafetensorsFile(join(dir, names[i]), new Map(shard), { dtype: fileDType, metadata: { format: "pt" } });
    for (const [name, t] of shard) {
      weightMap[name] = names[i];
      total += t.size * item;
    }
  });
  if (shards.length === 1) await Deno.remove(join(dir, INDEX)).catch(() => {});
  else {
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    await Deno.writeTextFile(join(dir, INDEX), JSON.stringify(index, null, 2) + "\n");
  }
}

/**
 * Language models: Llama-family configs read from Hugging Face `config.json`, rotary embeddings,
 * the decoder with a key/value cache passed in and returned, and a token cross-entropy that never
 * holds the logits of more than one slice of the vocabulary.
 *
 * @example
 * ```ts
 * import { lm } from "../../mod.ts";
 * const model = new lm.LlamaForCausalLM(lm.PRESETS.tiny, { seed: 0 });
 * const { logits, cache } = model.forward([[1, 2, 3]]);
 * const next = model.forward([[4]], { cache }); // position 3
 * ```
 *
 * @module
 */

export * from "./config.ts";
export * from "./rope.ts";
export * from "./cache.ts";
export * from "./loss.ts";
export * from "./llama.ts";
export * from "./checkpoint.ts";
export * from "./tokenizer.ts";
export * from "./peft.ts";
export * from "./generate.ts";
export * from "./chunk_attention.ts";
export * from "./chunked.ts";
export * from "./ssm_scan.ts";
export * from "./ssm.ts";
export * from "./adjoint_sharding.ts";
export * from "./sharded_adjoint.ts";
export * from "./data.ts";
export * from "./ssm_checkpoint.ts";

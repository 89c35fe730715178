/**
 * Neural-network building blocks: the {@link Module} parameter tree, layers (Linear, MLP,
 * Sequential, LayerNorm, RMSNorm, Embedding, Dropout, activations, the Fourier neural operator's
 * SpectralConv and FNO, scaled dot-product attention, LoRA adapters), seeded initialisers (`init`),
 * and safetensors checkpoints.
 *
 * @example
 * ```ts
 * import { nn, randn } from "../../mod.ts";
 * const net = new nn.MLP([2, 64, 64, 1], { activation: "gelu", seed: 0 });
 * const y = net.forward(randn([128, 2], { seed: 1 })); // [128, 1]
 * const w = nn.init.xavierUniform([64, 2], { seed: 2 });
 * ```
 *
 * @module
 */

export * from "./module.ts";
export * as init from "./init.ts";
export type { FanMode, GainNonlinearity, Initializer, InitOptions, KaimingOptions } from "./init.ts";
export * from "./activation.ts";
export * from "./containers.ts";
export * from "./linear.ts";
export * from "./norm.ts";
export * from "./embedding.ts";
export * from "./dropout.ts";
export * from "./safetensors.ts";
export * from "./safetensors_file.ts";
export * from "./spectral.ts";
export * from "./fno.ts";
export * from "./fused.ts";
export * from "./attention.ts";
export * from "./lora.ts";

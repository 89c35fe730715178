/**
 * Token embeddings: a learnable table of `numEmbeddings` rows of width `embeddingDim`.
 *
 * @module
 */

import { ArgumentError, embedding, Generator, type Tensor } from "../tensor/mod.ts";
import { type Initializer, normal } from "./init.ts";
import type { LayerOptions } from "./linear.ts";
import { Module } from "./module.ts";

/**
 * Options of {@link Embedding}.
 *
 * @example
 * ```ts
 * import { Embedding, type EmbeddingOptions } from "./embedding.ts";
 * import { normal } from "./init.ts";
 * const options: EmbeddingOptions = { seed: 1, init: (s, o) => normal(s, { ...o, std: 0.02 }) };
 * new Embedding(1000, 64, options);
 * ```
 */
export interface EmbeddingOptions extends LayerOptions {
  /** Initialiser of the table (default N(0, 1), as PyTorch). */
  init?: Initializer;
}

/**
 * A lookup table: `forward(ids)` returns the rows of `weight` (`[numEmbeddings, embeddingDim]`)
 * for int32 `ids` of any shape, giving `[...ids.shape, embeddingDim]`. Gradients accumulate into
 * the rows used.
 *
 * @example
 * ```ts
 * import { Embedding } from "./embedding.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const emb = new Embedding(100, 8, { seed: 0 });
 * emb.forward(tensor([[1, 2, 3]], { dtype: "int32" })).shape; // [1, 3, 8]
 * ```
 */
export class Embedding extends Module {
  /** Number of rows (vocabulary size). */
  readonly numEmbeddings: number;
  /** Width of each row. */
  readonly embeddingDim: number;
  /** The table, `[numEmbeddings, embeddingDim]`. */
  readonly weight: Tensor;

  /** A table of `numEmbeddings` rows of width `embeddingDim`. */
  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    for (const [k, v] of [["numEmbeddings", numEmbeddings], ["embeddingDim", embeddingDim]] as const) {
      if (!Number.isInteger(v) || v <= 0) {
        throw new ArgumentError("Embedding", `${k} must be a positive integer, got ${v}`);
      }
    }
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    const generator = options.generator ?? new Generator(options.seed ?? 0);
    this.weight = this.param(
      "weight",
      (options.init ?? normal)([numEmbeddings, embeddingDim], {
        generator,
        dtype: options.dtype ?? "float32",
        backend: options.backend,
      }),
    );
  }

  /** The rows for `ids` (int32). */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }

  /** `Embedding(n, dim)`. */
  override describe(): string {
    return `Embedding(${this.numEmbeddings}, ${this.embeddingDim})`;
  }
}

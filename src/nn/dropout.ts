/**
 * Dropout: zeroes elements with probability `p` during training and scales the rest by
 * 1/(1 − p); the identity in evaluation mode.
 *
 * @module
 */

import { ArgumentError, Generator, noGrad, rand, type Tensor, tidy } from "../tensor/mod.ts";
import { Module } from "./module.ts";

/**
 * Options of {@link Dropout}.
 *
 * @example
 * ```ts
 * import { Dropout, type DropoutOptions } from "./dropout.ts";
 * const options: DropoutOptions = { seed: 7 };
 * new Dropout(0.1, options);
 * ```
 */
export interface DropoutOptions {
  /** Seed of the mask stream (default 0). */
  seed?: number;
  /** Draw masks from this generator instead (advancing it). */
  generator?: Generator;
}

/**
 * Inverted dropout with a seeded mask stream: each training-mode call draws a fresh mask from the
 * module's generator, so a run is reproducible from its seed.
 *
 * @example
 * ```ts
 * import { Dropout } from "./dropout.ts";
 * import { ones } from "../tensor/mod.ts";
 * const drop = new Dropout(0.5, { seed: 1 });
 * drop.forward(ones([8])).toArray(); // zeros and twos
 * drop.eval().forward(ones([8])).toArray(); // ones
 * ```
 */
export class Dropout extends Module {
  /** Probability of zeroing an element. */
  readonly p: number;
  /** The mask stream. */
  readonly generator: Generator;

  /** Dropout with probability `p` in [0, 1]. */
  constructor(p = 0.5, options: DropoutOptions = {}) {
    super();
    if (!(p >= 0 && p <= 1)) throw new ArgumentError("Dropout", `p must be in [0, 1], got ${p}`);
    this.p = p;
    this.generator = options.generator ?? new Generator(options.seed ?? 0);
  }

  /** Drops elements of `x` in training mode; returns `x` in evaluation mode or when p = 0. */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    if (this.p === 1) return x.mul(0);
    const dtype = x.dtype === "float64" ? "float64" : "float32";
    const mask = noGrad(() =>
      tidy(() =>
        rand(x.shape, { generator: this.generator, dtype, backend: x.backend }).ge(this.p).mul(1 / (1 - this.p))
      )
    );
    return x.mul(mask.dtype === x.dtype ? mask : mask.cast(x.dtype));
  }

  /** `Dropout(p)`. */
  override describe(): string {
    return `Dropout(${this.p})`;
  }
}

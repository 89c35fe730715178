/**
 * Rotary position embeddings as Hugging Face's Llama applies them: the head's first and second
 * halves are the two coordinates of `headDim / 2` planes, each rotated by `position · freq_i`
 * (`x·cos + rotateHalf(x)·sin`), with the frequencies optionally stretched (`linear`, `llama3`).
 *
 * @module
 */

import { type Backend, concat, type DType, Tensor, tensor } from "../tensor/mod.ts";
import { fusedFunction, fusedPrimitives, type Implementation } from "../nn/mod.ts";
import { ConfigError, type LlamaConfig } from "./config.ts";

/**
 * The rotary frequencies `θ^(−2i/d)` of a config (i < headDim/2), after its rope scaling, in float64.
 *
 * @example
 * ```ts
 * import { ropeFrequencies } from "./rope.ts";
 * import { PRESETS } from "./config.ts";
 * ropeFrequencies(PRESETS.tiny)[0]; // 1
 * ```
 */
export function ropeFrequencies(config: LlamaConfig): Float64Array {
  const d = config.headDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / d);
  const s = config.ropeScaling;
  if (s?.type === "linear") return inv.map((f) => f / s.factor);
  if (s?.type === "llama3") {
    const old = s.originalMaxPositionEmbeddings;
    const lowWavelen = old / s.lowFreqFactor;
    const highWavelen = old / s.highFreqFactor;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f;
      if (wavelen > lowWavelen) return f / s.factor;
      const smooth = (old / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * (f / s.factor) + smooth * f;
    });
  }
  return inv;
}

/**
 * Checks that positions `[position, position + length)` fit the config: beyond
 * `maxPositionEmbeddings` only when rope scaling is set. Throws a {@link ConfigError} otherwise.
 *
 * @example
 * ```ts
 * import { checkPositions } from "./rope.ts";
 * import { PRESETS } from "./config.ts";
 * checkPositions(PRESETS.tiny, 0, 128);
 * ```
 */
export function checkPositions(config: LlamaConfig, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new ConfigError("rotary", `position must be a non-negative integer, got ${position}`);
  }
  if (position + length > config.maxPositionEmbeddings && config.ropeScaling === null) {
    throw new ConfigError(
      "rotary",
      `positions ${position}..${position + length - 1} pass max_position_embeddings ` +
        `(${config.maxPositionEmbeddings}) and the config sets no rope_scaling`,
    );
  }
}

/**
 * Options of {@link rotaryTables}.
 *
 * @example
 * ```ts
 * import type { RotaryOptions } from "./rope.ts";
 * const o: RotaryOptions = { dtype: "float64" };
 * ```
 */
export interface RotaryOptions {
  /** Dtype of the tables. Default float32. */
  dtype?: DType;
  /** Backend of the tables. Default: the default backend. */
  backend?: Backend;
}

/**
 * The cosine and sine tables `[length, headDim]` for positions `position … position + length − 1`
 * (computed in float64 on the host, then cast), each half repeating the `headDim / 2` angles.
 *
 * @example
 * ```ts
 * import { rotaryTables } from "./rope.ts";
 * import { PRESETS } from "./config.ts";
 * const { cos, sin } = rotaryTables(PRESETS.tiny, 0, 8);
 * cos.shape; // [8, 16]
 * ```
 */
export function rotaryTables(
  config: LlamaConfig,
  position: number,
  length: number,
  options: RotaryOptions = {},
): { cos: Tensor; sin: Tensor } {
  checkPositions(config, position, length);
  const inv = ropeFrequencies(config);
  const d = config.headDim;
  const half = d / 2;
  const cos = new Float64Array(length * d);
  const sin = new Float64Array(length * d);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = (position + t) * inv[i];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * d + i] = cos[t * d + half + i] = c;
      sin[t * d + i] = sin[t * d + half + i] = s;
    }
  }
  const o = { shape: [length, d], dtype: options.dtype ?? "float32", backend: options.backend };
  return { cos: tensor(cos, o), sin: tensor(sin, o) };
}

/**
 * `[−x₂, x₁]` for `x = [x₁, x₂]` split in halves along the last axis.
 *
 * @example
 * ```ts
 * import { rotateHalf } from "./rope.ts";
 * import { tensor } from "../tensor/mod.ts";
 * rotateHalf(tensor([1, 2, 3, 4])).toArray(); // [-3, -4, 1, 2]
 * ```
 */
export function rotateHalf(x: Tensor): Tensor {
  const half = x.shape[x.ndim - 1] / 2;
  return concat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
}

/**
 * Rotates `x` (`[..., T, headDim]`, positions along the second-to-last axis) by the tables of
 * {@link rotaryTables} (`[T, headDim]`): `x·cos + rotateHalf(x)·sin` (fused where the backend
 * offers it; see `src/nn/fused.ts` for `implementation`).
 *
 * @example
 * ```ts
 * import { applyRotary, rotaryTables } from "./rope.ts";
 * import { PRESETS } from "./config.ts";
 * import { randn } from "../tensor/mod.ts";
 * const { cos, sin } = rotaryTables(PRESETS.tiny, 5, 3);
 * applyRotary(randn([1, 4, 3, 16]), cos, sin).shape; // [1, 4, 3, 16]
 * ```
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor, implementation: Implementation = "auto"): Tensor {
  const composed = (a: Tensor) => a.mul(cos).add(rotateHalf(a).mul(sin));
  const f = fusedPrimitives(implementation, x, "rotary");
  if (!f || cos.dtype !== x.dtype || sin.dtype !== x.dtype) return composed(x);
  const [t, d] = cos.shape;
  const rotate = (a: Tensor, sign: 1 | -1) =>
    Tensor.fromBuffer(
      f.rotary(a.contiguous(), cos.contiguous(), sin.contiguous(), t, d, sign, a.dtype),
      a.shape,
      a.dtype,
    );
  // The rotation's transpose is the rotation by the opposite angles.
  return fusedFunction((a: Tensor) => ({ output: rotate(a, 1), saved: [] }), (_, __, g) => [rotate(g, -1)], composed)(
    x,
  );
}

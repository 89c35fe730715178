// Shared by the language-model tests: tiny configs and a relative-difference check.

import { lm, type Tensor } from "../mod.ts";

/** max |a − b| / max |b| over all elements. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Throws unless `a` and `b` agree to `tol` relative to the largest |b|. */
export function assertRelClose(
  a: Tensor | ArrayLike<number>,
  b: Tensor | ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const x = "toTypedArray" in a ? (a as Tensor).toTypedArray() : a as ArrayLike<number>;
  const y = "toTypedArray" in b ? (b as Tensor).toTypedArray() : b as ArrayLike<number>;
  const r = relDiff(x, y);
  if (!(r <= tol)) throw new Error(`${what}: relative difference ${r.toExponential(3)} > ${tol}`);
}

/** A Llama small enough for finite differences: GQA (2 query heads per key head), 2 layers. */
export function microConfig(overrides: Partial<lm.LlamaConfig> = {}): lm.LlamaConfig {
  return lm.llamaConfig({
    vocabSize: 11,
    hiddenSize: 8,
    intermediateSize: 12,
    numHiddenLayers: 2,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    headDim: 4,
    rmsNormEps: 1e-5,
    initializerRange: 0.4,
    ...overrides,
  });
}

/** A slightly larger tiny Llama for the equality tests. */
export function smallConfig(overrides: Partial<lm.LlamaConfig> = {}): lm.LlamaConfig {
  return lm.llamaConfig({
    vocabSize: 37,
    hiddenSize: 16,
    intermediateSize: 24,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    rmsNormEps: 1e-6,
    ropeTheta: 500,
    initializerRange: 0.3,
    ...overrides,
  });
}

/** A state-space model small enough for finite differences, with strong couplings (weights std 0.3). */
export function microSSMConfig(numLayers: number): lm.SSMConfig {
  return lm.ssmConfig({
    vocabSize: 11,
    hiddenSize: 6,
    stateSize: 3,
    numLayers,
    initializerRange: 0.3,
    decayRange: [0.5, 0.95],
  });
}

// The float64 SSM language model and batch of tests/dist_ssm_adjoint_test.ts: the rank script
// shards its backward over the ranks; the test computes the same gradients in one process.

import { lm } from "../../mod.ts";
import { randomData } from "../helpers.ts";
import { microSSMConfig } from "../lm_helpers.ts";

/** The sharded methods and the options each runs with (small launches, so every layer takes several). */
export const SSM_CASES: readonly { name: string; options: lm.SSMBackwardOptions }[] = [
  { name: "adjoint", options: { method: "adjoint", piecesPerLaunch: 7, blockSize: 4 } },
  { name: "adjoint-window", options: { method: "adjoint", window: 4, piecesPerLaunch: 7, blockSize: 4 } },
  { name: "adjoint-exact", options: { method: "adjoint-exact", piecesPerLaunch: 7, blockSize: 4 } },
  { name: "truncated", options: { method: "truncated", window: 4, piecesPerLaunch: 7, blockSize: 4 } },
  { name: "truncated-whole", options: { method: "truncated", window: 10, piecesPerLaunch: 7, blockSize: 4 } },
];

/** A K-layer model, the same on every rank. */
export function ssmModel(numLayers: number): lm.SSMForCausalLM {
  return new lm.SSMForCausalLM(microSSMConfig(numLayers), { dtype: "float64", seed: 40 + numLayers });
}

/** Two sequences of 11 tokens (10 predicted each). */
export function ssmSequences(): number[][] {
  return [0, 1].map((r) => randomData(11, 70 + r, 0, 11).map(Math.floor));
}

/** Every parameter's gradient by name, null where it has none. */
export function namedGradients(model: lm.SSMForCausalLM): Record<string, number[] | null> {
  return Object.fromEntries(
    model.namedParameters().map(([n, p]) => [n, p.grad ? Array.from(p.grad.toTypedArray()) : null]),
  );
}

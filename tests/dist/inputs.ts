// Inputs of the distributed tests: closed-form functions of the rank, shared by the rank scripts
// and the tests that check their results.

import type { DType } from "../../src/tensor/mod.ts";

/** Element i of rank r's input: small integers (exact in every dtype, products included). */
export function collectiveInput(rank: number, n: number, dtype: DType): number[] {
  return Array.from({ length: n }, (_, i) => {
    const v = ((i * 7 + rank * 3) % 5) - 2 + (dtype === "int32" ? 0 : 0.5 * (rank % 2));
    return i % 3 === 2 ? v * (rank + 1) : v;
  });
}

// The TCP process group's collectives across 3 processes on loopback (started by the launcher),
// against closed forms of the ranks' inputs: every reduction and dtype (bfloat16 reduces in
// float32 and rounds once), uneven chunk sizes, a strided view, collectives in flight together,
// broadcast from the last rank, all-gather, reduce-scatter and host numbers.

import assert from "node:assert/strict";
import { initBackend } from "../src/backend/select.ts";
import { type DType, tensor } from "../src/tensor/mod.ts";
import { assertClose } from "./helpers.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { collectiveInput } from "./dist/inputs.ts";

await initBackend("cpu");
const W = 3;

function reduce(op: string, values: number[][]): number[] {
  return values[0].map((_, i) => {
    const column = values.map((v) => v[i]);
    if (op === "sum" || op === "avg") return column.reduce((a, b) => a + b) / (op === "avg" ? W : 1);
    if (op === "prod") return column.reduce((a, b) => a * b);
    return op === "max" ? Math.max(...column) : Math.min(...column);
  });
}

/** `values` rounded to `dtype` (what an exact result looks like once stored). */
function stored(values: number[], dtype: DType): number[] {
  return Array.from(tensor(values, { dtype }).toTypedArray());
}

Deno.test("TCP group: collectives of 3 ranks equal their closed forms", async () => {
  const run = await launchRanks(W, "collectives_rank.ts");
  assertSucceeded(run);
  const inputs = (n: number, dtype: DType) => Array.from({ length: W }, (_, r) => collectiveInput(r, n, dtype));
  for (const [r, out] of run.ranks.entries()) {
    assert.equal(out.rank, r);
    assert.equal(out.backend, "tcp");
    for (const dtype of ["float64", "float32", "bfloat16", "int32"] as const) {
      for (const n of [1, 7, 1000]) {
        for (const op of ["sum", "max", "min", "prod", "avg"]) {
          const key = `allReduce/${dtype}/${n}/${op}`;
          if (dtype === "int32" && op === "avg") continue;
          const expected = stored(reduce(op, inputs(n, dtype)), dtype);
          const rtol = op !== "avg" ? 0 : dtype === "float64" ? 1e-15 : dtype === "float32" ? 1e-6 : 1e-2;
          assertClose(out[key] as number[], expected, { rtol, atol: 0 }, key);
        }
      }
    }
    const t = reduce("sum", inputs(12, "float64"));
    assert.deepEqual(out["allReduce/transposed"], [t.slice(0, 4), t.slice(4, 8), t.slice(8, 12)]);
    const asyncExpected = [3, 5, 8].map((n) => reduce("avg", inputs(n, "float64")));
    assertClose((out.allReduceAsync as number[][]).flat(), asyncExpected.flat(), { rtol: 1e-15 }, "async");
    assert.deepEqual(out.broadcast, collectiveInput(W - 1, 5, "float32"));
    const gathered = inputs(6, "float64").map((v) => [v.slice(0, 3), v.slice(3, 6)]);
    assert.deepEqual(out.allGather, gathered);
    const summed = reduce("sum", inputs(4 * W, "float64"));
    const mine = summed.slice(4 * r, 4 * r + 4);
    assert.deepEqual(out.reduceScatter, [mine.slice(0, 2), mine.slice(2, 4)]);
    assert.deepEqual(out.allReduceNumbers, [W - 1, 0, 0.5]);
  }
});

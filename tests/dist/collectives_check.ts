// What collectives_rank.ts must have written on a group of W ranks: the closed forms of its
// inputs' reductions (bfloat16 rounded once, as one addition of two ranks or a float32 sum gives).

import assert from "node:assert/strict";
import { type DType, tensor } from "../../src/tensor/mod.ts";
import { assertClose } from "../helpers.ts";
import { collectiveInput } from "./inputs.ts";

function reduce(op: string, values: number[][]): number[] {
  const w = values.length;
  return values[0].map((_, i) => {
    const column = values.map((v) => v[i]);
    if (op === "sum" || op === "avg") return column.reduce((a, b) => a + b) / (op === "avg" ? w : 1);
    if (op === "prod") return column.reduce((a, b) => a * b);
    return op === "max" ? Math.max(...column) : Math.min(...column);
  });
}

/** `values` rounded to `dtype` (what an exact result looks like once stored; on the CPU backend). */
function stored(values: number[], dtype: DType): number[] {
  return Array.from(tensor(values, { dtype }).toTypedArray());
}

/** Checks every rank's results of collectives_rank.ts on a group of `w` ranks of `backend`. */
export function checkCollectives(ranks: Record<string, unknown>[], w: number, backend: "tcp" | "nccl"): void {
  const inputs = (n: number, dtype: DType) => Array.from({ length: w }, (_, r) => collectiveInput(r, n, dtype));
  assert.equal(ranks.length, w);
  for (const [r, out] of ranks.entries()) {
    assert.equal(out.rank, r);
    assert.equal(out.backend, backend);
    for (const dtype of ["float64", "float32", "bfloat16", "int32"] as const) {
      for (const n of [1, 7, 1000]) {
        for (const op of ["sum", "max", "min", "prod", "avg"]) {
          if (dtype === "int32" && op === "avg") continue;
          const key = `allReduce/${dtype}/${n}/${op}`;
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
    assert.deepEqual(out.broadcast, collectiveInput(w - 1, 5, "float32"));
    const gathered = inputs(6, "float64").map((v) => [v.slice(0, 3), v.slice(3, 6)]);
    assert.deepEqual(out.allGather, gathered);
    const summed = reduce("sum", inputs(4 * w, "float64"));
    const mine = summed.slice(4 * r, 4 * r + 4);
    assert.deepEqual(out.reduceScatter, [mine.slice(0, 2), mine.slice(2, 4)]);
    assert.deepEqual(out.allReduceNumbers, [w - 1, 0, 0.5]);
  }
}

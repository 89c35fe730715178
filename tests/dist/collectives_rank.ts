// One rank of tests/dist_collectives_test.ts: every collective of the TCP group on inputs that are
// a closed-form function of the rank, results written to $DIST_OUT/rank<R>.json for the test to
// check against the same closed forms.

import { initBackend } from "../../src/backend/select.ts";
import { initProcessGroup } from "../../src/dist/mod.ts";
import { type DType, tensor } from "../../src/tensor/mod.ts";
import { collectiveInput } from "./inputs.ts";

await initBackend(); // PATCHWORK_BACKEND: cpu by default in the tests, cuda for NCCL
const group = await initProcessGroup({ timeout: 30 });
const { rank, size } = group;
const out: Record<string, unknown> = { rank, size, backend: group.backend };
const input = (n: number, dtype: DType) => tensor(collectiveInput(rank, n, dtype), { dtype });

for (const dtype of ["float64", "float32", "bfloat16", "int32"] as const) {
  for (const n of [1, 7, 1000]) {
    for (const op of ["sum", "max", "min", "prod", ...(dtype === "int32" ? [] : ["avg"] as const)] as const) {
      const x = input(n, dtype);
      group.allReduce(x, { op });
      out[`allReduce/${dtype}/${n}/${op}`] = Array.from(x.toTypedArray());
    }
  }
}
// A non-contiguous view is reduced in place through its strides.
const base = input(12, "float64").reshape([3, 4]);
const view = base.transpose();
group.allReduce(view);
out["allReduce/transposed"] = base.toArray();
// Several buckets in flight at once.
const many = [3, 5, 8].map((n) => input(n, "float64"));
const works = many.map((t) => group.allReduceAsync(t, { op: "avg" }));
works.reverse().forEach((w) => w.wait());
out["allReduceAsync"] = many.map((t) => Array.from(t.toTypedArray()));
const b = input(5, "float32");
group.broadcast(b, size - 1);
out["broadcast"] = Array.from(b.toTypedArray());
out["allGather"] = group.allGather(input(6, "float64").reshape([2, 3])).toArray();
out["reduceScatter"] = group.reduceScatter(input(4 * size, "float64").reshape([2 * size, 2])).toArray();
out["allReduceNumbers"] = group.allReduceNumbers([rank, -rank, 0.5], "max");
group.barrier();
await group.destroy();
await Deno.writeTextFile(`${Deno.env.get("DIST_OUT")}/rank${rank}.json`, JSON.stringify(out));

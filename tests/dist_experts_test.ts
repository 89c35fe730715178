// PI-HC-MoE's experts sharded over 2 processes (TCP group, loopback, started by the launcher):
// each rank solves and back-propagates two of the four experts; the loss equals the unsharded
// step's and the network's gradients summed over the ranks equal its gradients, in float64.

import assert from "node:assert/strict";
import { initBackend } from "../src/backend/select.ts";
import { shardExperts } from "../src/dist/mod.ts";
import type { ProcessGroup } from "../src/dist/mod.ts";
import { ArgumentError } from "../src/tensor/mod.ts";
import { assertClose } from "./helpers.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { moeStep } from "./dist/moe_setup.ts";

await initBackend("cpu");

Deno.test("sharded experts on 2 ranks: the loss and gradients equal the unsharded step", async () => {
  const run = await launchRanks(2, "experts_rank.ts");
  assertSucceeded(run);
  const { method, batch } = moeStep();
  const whole = method.lossAndGrad(batch, 0);
  const grads = method.model.parameters().map((p) => Array.from(p.grad!.toTypedArray()));
  assert.deepEqual(run.ranks.map((r) => r.experts), [[0, 1], [2, 3]]);
  for (const out of run.ranks) {
    assertClose(out.loss as number, whole.loss, { rtol: 1e-12 }, `rank ${out.rank} loss`);
    assertClose(
      (out.grads as number[][]).flat(),
      grads.flat(),
      { rtol: 1e-12, scale: "max" },
      `rank ${out.rank} gradients (normwise)`,
    );
    assert.equal(out.problems, whole.problems! / 2, "each rank solves its half of the problems");
  }
  assert.deepEqual(run.ranks[0].grads, run.ranks[1].grads, "the ranks' summed gradients differ");
});

Deno.test("shardExperts refuses a count that does not split equally over the ranks", () => {
  const group = { rank: 0, size: 3 } as ProcessGroup;
  assert.throws(() => shardExperts(group, 4), ArgumentError);
  assert.deepEqual(shardExperts({ rank: 2, size: 3 } as ProcessGroup, 6).experts, [4, 5]);
});

Deno.test("a shard naming experts out of order or range is an ArgumentError", () => {
  const { method, batch } = moeStep();
  for (const experts of [[1, 0], [4], []]) {
    assert.throws(() => method.lossAndGrad(batch, 0, { shard: { experts, gather: (w) => w } }), ArgumentError);
  }
});

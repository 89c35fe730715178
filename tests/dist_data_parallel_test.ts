// Data parallelism on 2 processes (TCP group, loopback, started by the launcher): the averaged
// gradients equal the single-process gradient of the combined batch, and three Adam steps end at
// the same parameters, in float64 to 1e-12; both ranks agree bit for bit.

import assert from "node:assert/strict";
import { initBackend } from "../src/backend/select.ts";
import { shareOf } from "../src/dist/mod.ts";
import { assertClose } from "./helpers.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { tinyModel, tinyTraining } from "./dist/tiny_model.ts";

await initBackend("cpu");

Deno.test("shareOf splits n items into contiguous shares differing by at most one", () => {
  assert.deepEqual([0, 1, 2, 3].map((r) => shareOf(10, r, 4)), [[0, 3], [3, 6], [6, 8], [8, 10]]);
  assert.deepEqual(shareOf(2, 1, 3), [1, 2]);
  assert.deepEqual(shareOf(2, 2, 3), [2, 2]);
});

Deno.test("data parallel on 2 ranks: gradients and 3 Adam steps equal the whole batch in one process", async () => {
  const run = await launchRanks(2, "data_parallel_rank.ts");
  assertSucceeded(run);
  const net = tinyModel(100); // rank 0's seed: data parallelism broadcasts rank 0's parameters
  const whole = tinyTraining(net, [0, 8], 3);
  const params = net.parameters().map((p) => Array.from(p.toTypedArray()));
  const tol = { rtol: 1e-12, atol: 1e-12 };
  for (const out of run.ranks) {
    assert((out.buckets as number) > 1, `expected several buckets, got ${out.buckets}`);
    assertClose((out.grads as number[][]).flat(), whole.grads.flat(), tol, `rank ${out.rank} gradients`);
    assertClose(out.losses as number[], whole.losses, tol, `rank ${out.rank} losses`);
    assertClose((out.params as number[][]).flat(), params.flat(), tol, `rank ${out.rank} parameters`);
  }
  assert.deepEqual(run.ranks[0].params, run.ranks[1].params, "the ranks' parameters differ");
  assert.deepEqual(run.ranks[0].grads, run.ranks[1].grads, "the ranks' gradients differ");
});

// Data parallelism on 2 processes (TCP group, loopback, started by the launcher): the averaged
// gradients equal the single-process gradient of the combined batch, and three Adam steps end at
// the same parameters, in float64 to 1e-12; both ranks agree bit for bit. On 3 processes whose
// losses reach only some parameters: one no rank reached keeps no gradient and AdamW leaves it
// and its state alone, as one process does; one reached on a single rank gets its gradient over 3
// (mean) or its gradient (sum).

import assert from "node:assert/strict";
import { initBackend } from "../src/backend/select.ts";
import { shareOf } from "../src/dist/mod.ts";
import { AdamW } from "../src/optim/mod.ts";
import { assertClose } from "./helpers.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { tinyModel, tinyTraining } from "./dist/tiny_model.ts";
import { rankLoss, unusedParams } from "./dist/unused_setup.ts";

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

Deno.test("data parallel on 3 ranks: a parameter no rank reached keeps no gradient, one reached on one rank counts as zeros elsewhere", async () => {
  const run = await launchRanks(3, "unused_rank.ts");
  assertSucceeded(run);
  // Rank r's loss: used·[r + 1, 2(r + 1)]; one·[3, −6, 1.5] on rank 1 alone; never on none; Σ empty on rank 2.
  const grad = (data: number[], shape = [data.length]) => ({ shape, data });
  const avg = [grad([2, 4]), grad([1, -2, 0.5]), null, grad([], [0, 2])]; // (1 + 2 + 3)/3 = 2; [3, −6, 1.5]/3
  const sum = [grad([6, 12]), grad([3, -6, 1.5]), null, grad([], [0, 2])];
  // AdamW's first step (lr 0.1, weight decay 0.5, ε 1e-8): θ(1 − 0.05) − 0.1·g/(|g| + ε); never stays.
  const first = (theta: number[], g: number[]) => theta.map((t, i) => t * 0.95 - 0.1 * g[i] / (Math.abs(g[i]) + 1e-8));
  const values = [first([0.5, -1], [2, 4]), first([2, 1, -3], [1, -2, 0.5]), [4, -5], []];
  const stepped = { steps: 1, slots: ["exp_avg", "exp_avg_sq"] };
  const state = [stepped, stepped, { steps: 0, slots: [] }, stepped];
  // One process: the mean of the three ranks' losses, the same AdamW step.
  const params = unusedParams();
  const opt = new AdamW(params, { lr: 0.1, weightDecay: 0.5 });
  rankLoss(params, 0).add(rankLoss(params, 1)).add(rankLoss(params, 2)).div(3).backward();
  assert.equal(params[2].grad, null, "one process: the unreached parameter has no gradient");
  opt.step();
  const one = {
    values: params.map((p) => Array.from(p.toTypedArray())),
    state: opt.groups[0].params.map((p) => ({ steps: p.steps, slots: [...p.state.keys()] })),
  };
  assert.deepEqual(one.state, state, "one process: the optimiser's state");
  for (const out of run.ranks) {
    const runs = out.runs as { buckets: number; avg: unknown[]; sum: unknown[]; values: number[][]; state: unknown }[];
    assert((runs[0].buckets) > 1 && runs[1].buckets === 1, `buckets ${runs.map((r) => r.buckets)}`);
    for (const [k, r] of runs.entries()) {
      const what = `rank ${out.rank}, ${r.buckets} bucket(s)`;
      assert.deepEqual(r.avg, avg, `${what}: averaged gradients`);
      assert.deepEqual(r.sum, sum, `${what}: summed gradients`);
      assert.deepEqual(r.state, state, `${what}: the optimiser's state`);
      assert.deepEqual(r.values, one.values, `${what}: the parameters differ from one process's`);
      assertClose(r.values.flat(), values.flat(), { rtol: 1e-15 }, `${what}: parameters after AdamW (k = ${k})`);
      assert.deepEqual(r.values[2], [4, -5], `${what}: AdamW moved the unreached parameter`);
    }
  }
});

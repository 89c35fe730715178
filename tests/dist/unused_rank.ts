// One rank of the unused-parameter test in tests/dist_data_parallel_test.ts: each rank's loss
// reaches only some of the parameters (tests/dist/unused_setup.ts). Per bucket size (one bucket
// per parameter, one bucket for all): the gradients averaged, an AdamW step, then the gradients
// summed; written to $DIST_OUT/rank<R>.json with the parameters and the optimiser's state.

import { initBackend } from "../../src/backend/select.ts";
import { DataParallel, initProcessGroup } from "../../src/dist/mod.ts";
import { AdamW } from "../../src/optim/mod.ts";
import type { Tensor } from "../../src/tensor/mod.ts";
import { rankLoss, unusedParams } from "./unused_setup.ts";

await initBackend();
const group = await initProcessGroup({ timeout: 30 });
const grads = (ps: Tensor[]) =>
  ps.map((p) => p.grad && { shape: p.grad.shape, data: Array.from(p.grad.toTypedArray()) });
const runs = [1e-9, 25].map((bucketMiB) => {
  const params = unusedParams();
  const dp = new DataParallel(params, group, { bucketMiB });
  const opt = new AdamW(params, { lr: 0.1, weightDecay: 0.5 });
  rankLoss(params, group.rank).backward();
  dp.reduceGradients();
  const avg = grads(params);
  opt.step();
  const state = opt.groups[0].params.map((p) => ({ steps: p.steps, slots: [...p.state.keys()] }));
  const values = params.map((p) => Array.from(p.toTypedArray()));
  opt.zeroGrad();
  rankLoss(params, group.rank).backward();
  dp.reduceGradients({ op: "sum" });
  return { buckets: dp.buckets.length, avg, sum: grads(params), values, state };
});
await group.destroy();
await Deno.writeTextFile(
  `${Deno.env.get("DIST_OUT")}/rank${group.rank}.json`,
  JSON.stringify({ rank: group.rank, runs }),
);

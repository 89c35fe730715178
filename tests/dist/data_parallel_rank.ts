// One rank of tests/dist_data_parallel_test.ts: the tiny regression trained data-parallel on this
// rank's share of the batch (gradients averaged in several small buckets), written to
// $DIST_OUT/rank<R>.json: the first step's gradients, each step's mean loss and the parameters.

import { initBackend } from "../../src/backend/select.ts";
import { DataParallel, initProcessGroup } from "../../src/dist/mod.ts";
import { tinyModel, tinyTraining } from "./tiny_model.ts";

await initBackend(); // PATCHWORK_BACKEND: cpu by default in the tests, cuda for NCCL
const group = await initProcessGroup({ timeout: 30 });
const net = tinyModel(100 + group.rank);
const dp = new DataParallel(net, group, { bucketMiB: 2e-3 }); // ≈ 2 KiB: several buckets
const { grads, losses } = tinyTraining(net, dp.share(8, { even: true }), 3, () => dp.reduceGradients());
const out = {
  rank: group.rank,
  buckets: dp.buckets.length,
  grads,
  losses: losses.map((l) => dp.mean(l)),
  params: net.parameters().map((p) => Array.from(p.toTypedArray())),
};
await group.destroy();
await Deno.writeTextFile(`${Deno.env.get("DIST_OUT")}/rank${out.rank}.json`, JSON.stringify(out));

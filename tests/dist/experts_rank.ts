// One rank of tests/dist_experts_test.ts: the PI-HC-MoE step with this rank's block of the four
// experts, the network's gradients summed over the ranks; the loss, the gradients and the solve
// summary written to $DIST_OUT/rank<R>.json.

import { initBackend } from "../../src/backend/select.ts";
import { DataParallel, initProcessGroup, shardExperts } from "../../src/dist/mod.ts";
import { moeStep } from "./moe_setup.ts";

await initBackend(); // PATCHWORK_BACKEND: cpu by default in the tests, cuda for NCCL
const group = await initProcessGroup({ timeout: 60 });
const { method, batch } = moeStep();
const dp = new DataParallel(method.model, group);
const shard = shardExperts(group, 4);
const stats = method.lossAndGrad(batch, 0, { shard });
dp.reduceGradients({ op: "sum" });
const out = {
  rank: group.rank,
  experts: shard.experts,
  loss: stats.loss,
  problems: stats.problems,
  grads: method.model.parameters().map((p) => Array.from(p.grad!.toTypedArray())),
};
await group.destroy();
await Deno.writeTextFile(`${Deno.env.get("DIST_OUT")}/rank${out.rank}.json`, JSON.stringify(out));

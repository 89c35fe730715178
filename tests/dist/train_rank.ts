// One rank of tests/dist_train_test.ts: three steps of pde.train with PI-HC-MoE's experts split
// over the ranks, checkpoints in $DIST_OUT/ckpt; the logged lines, the history's losses and the
// final parameters written to $DIST_OUT/rank<R>.json.

import { initBackend } from "../../src/backend/select.ts";
import { DataParallel, initProcessGroup } from "../../src/dist/mod.ts";
import { train } from "../../src/pde/mod.ts";
import { moeTraining } from "./moe_setup.ts";

await initBackend(); // PATCHWORK_BACKEND: cpu by default in the tests, cuda for NCCL
const group = await initProcessGroup({ timeout: 60 });
const options = moeTraining();
const lines: string[] = [];
const run = await train({
  ...options,
  checkpointDir: `${Deno.env.get("DIST_OUT")}/ckpt`,
  log: (line) => lines.push(line),
  distributed: { parallel: new DataParallel(options.method.model, group), split: "experts" },
});
const out = {
  rank: group.rank,
  lines,
  losses: run.history.map((h) => h.loss),
  converged: run.history.map((h) => h.convergedShare),
  checkpoint: run.checkpoint,
  params: options.method.model.parameters().map((p) => Array.from(p.toTypedArray())),
};
await group.destroy();
await Deno.writeTextFile(`${Deno.env.get("DIST_OUT")}/rank${out.rank}.json`, JSON.stringify(out));

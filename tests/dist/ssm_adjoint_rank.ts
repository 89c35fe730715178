// One rank of tests/dist_ssm_adjoint_test.ts: adjoint sharding of a K-layer SSM (K the first
// argument) over the ranks for each case of ssm_setup.ts, the group wrapped to log every collective
// it is asked for. Per case: the loss, the VJP counts, which gradients this rank held after the
// backward, the collectives of the backward and of the gather, and every gradient after the gather;
// written to $DIST_OUT/rank<R>.json; then what a non-finite loss did.

import { initBackend } from "../../src/backend/select.ts";
import { initProcessGroup, type ProcessGroup } from "../../src/dist/mod.ts";
import { lm, noGrad, NonFiniteError } from "../../mod.ts";
import { namedGradients, SSM_CASES, ssmModel, ssmSequences } from "./ssm_setup.ts";

await initBackend();
const group = await initProcessGroup({ timeout: 60 });
const calls: string[] = [];
const logged = new Proxy(group, {
  get(target, key) {
    const value = Reflect.get(target, key);
    if (typeof value !== "function") return value;
    return (...args: unknown[]) => {
      calls.push(String(key));
      return value.apply(target, args);
    };
  },
}) as ProcessGroup;
const numLayers = Number(Deno.args[0]);
const out: Record<string, unknown> = { rank: group.rank };
for (const { name, options } of SSM_CASES) {
  const model = ssmModel(numLayers);
  calls.length = 0;
  const r = lm.shardedSSMBackward(logged, model, ssmSequences(), options);
  const held = Object.entries(namedGradients(model)).filter(([, g]) => g).map(([n]) => n);
  const backward = [...calls];
  calls.length = 0;
  lm.gatherSSMGradients(logged, model);
  out[name] = {
    lossSum: r.lossSum,
    vjps: r.vjps,
    shard: r.shard,
    held,
    backward,
    gather: [...calls],
    grads: namedGradients(model),
  };
}
// A non-finite loss (Ω poisoned) on the head's rank stops every rank before any gradient is added.
const poisoned = ssmModel(numLayers);
noGrad(() => poisoned.lm_head.weight.assign(NaN));
try {
  lm.shardedSSMBackward(logged, poisoned, ssmSequences());
  out.nonFinite = "no error";
} catch (e) {
  out.nonFinite = e instanceof NonFiniteError ? "NonFiniteError" : String(e);
}
out.nonFiniteHeld = Object.values(namedGradients(poisoned)).filter((g) => g).length;
await group.destroy();
await Deno.writeTextFile(`${Deno.env.get("DIST_OUT")}/rank${group.rank}.json`, JSON.stringify(out));

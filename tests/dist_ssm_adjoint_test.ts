// Adjoint sharding across processes (TCP group, loopback, started by the launcher): K layers over
// 2 and 3 ranks, each rank computing its K/Υ layers' VJPs. The gathered gradients equal the
// single-process ssmBackward of the same method in float64 — the paper's form (whole and windowed),
// the exact form and the truncated form — and, for the exact form and a window covering the
// sequence, full back-propagation; before the gather each rank holds only its own parameters' gradients; the
// backward's only collectives are the loss's all-reduce and the broadcast of ∂l/∂y_K, the gather's
// one broadcast per rank. A non-finite loss stops every rank with no gradient added; a bad split is
// an ArgumentError.

import assert from "node:assert/strict";
import { initBackend } from "../src/backend/select.ts";
import type { ProcessGroup } from "../src/dist/mod.ts";
import { ArgumentError, lm } from "../mod.ts";
import { assertClose } from "./helpers.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { relDiff } from "./lm_helpers.ts";
import { namedGradients, SSM_CASES, ssmModel, ssmSequences } from "./dist/ssm_setup.ts";

await initBackend("cpu");

interface CaseOut {
  lossSum: number;
  vjps: lm.VJPCount[];
  shard: lm.SSMLayerShard;
  held: string[];
  backward: string[];
  gather: string[];
  grads: Record<string, number[] | null>;
}

function single(numLayers: number, options: lm.SSMBackwardOptions) {
  const model = ssmModel(numLayers);
  const result = lm.ssmBackward(model, ssmSequences(), options);
  return { result, grads: namedGradients(model), names: model.namedParameters().map(([n]) => n) };
}

/** The rank owning parameter `name` of a K-layer model on `size` ranks. */
function owner(name: string, numLayers: number, size: number): number {
  if (name.startsWith("embed_tokens")) return 0;
  const layer = /^layers\.(\d+)\./.exec(name);
  return layer ? Math.floor(Number(layer[1]) / (numLayers / size)) : size - 1;
}

async function checkSharded(size: number, numLayers: number): Promise<void> {
  const run = await launchRanks(size, "ssm_adjoint_rank.ts", [String(numLayers)]);
  assertSucceeded(run);
  for (const [rank, out] of run.ranks.entries()) {
    assert.equal(out.nonFinite, "NonFiniteError", `rank ${rank}: a non-finite loss`);
    assert.equal(out.nonFiniteHeld, 0, `rank ${rank}: a non-finite loss added gradients`);
  }
  const full = single(numLayers, { method: "backprop" });
  for (const { name, options } of SSM_CASES) {
    const want = single(numLayers, options);
    // The exact forms: adjoint-exact, and truncated with a window covering the sequence.
    const exact = options.method === "adjoint-exact" || name === "truncated-whole";
    const carried = options.method !== "adjoint";
    const outs = run.ranks.map((r) => r[name] as CaseOut);
    outs.forEach((out, rank) => {
      const what = `${name}, rank ${rank} of ${size}`;
      assert.deepEqual(out.shard.layers, [rank * numLayers / size, (rank + 1) * numLayers / size], what);
      assertClose(out.lossSum, want.result.lossSum, { rtol: 1e-14 }, `${what}: loss`);
      // Gradients live on their owners until the gather.
      for (const n of out.held) assert.equal(owner(n, numLayers, size), rank, `${what}: holds ${n}`);
      assert.ok(out.held.some((n) => n.startsWith(`layers.${out.shard.layers[0]}.mixer`)), `${what}: owns no gradient`);
      assert.deepEqual(out.backward, ["allReduceNumbers", "broadcast"], `${what}: the backward's collectives`);
      assert.deepEqual(out.gather, Array(size).fill("broadcast"), `${what}: the gather's collectives`);
      for (const n of want.names) {
        // A parameter the method leaves without a gradient (the paper's form: the layers' norms) gathers as zeros.
        const ref = want.grads[n] ?? out.grads[n]!.map(() => 0);
        assertClose(out.grads[n]!, ref, { rtol: carried ? 1e-10 : 1e-13, scale: "max" }, `${what}: ${n}`);
        if (exact) {
          assertClose(out.grads[n]!, full.grads[n]!, { rtol: 1e-10, scale: "max" }, `${what}: ${n} (backprop)`);
        }
      }
      assert.deepEqual(out.grads, outs[0].grads, `${what}: the ranks' gathered gradients differ`);
    });
    if (name === "truncated") {
      // A short window is not the exact gradient below the top layer (so the comparison above can tell).
      const w = "layers.0.mixer.b_proj.weight";
      assert.ok(relDiff(outs[0].grads[w]!, full.grads[w]!) > 1e-6, `${name}: ${w} equals backprop's`);
    }
    // Each layer's VJPs computed once, by its owner, as many as in one process.
    for (let k = 0; k < numLayers; k++) {
      const counts = outs.map((o) => o.vjps[k]).filter((v) => v.a + v.b + v.c > 0);
      assert.deepEqual(counts, [want.result.vjps[k]], `${name}: layer ${k}'s VJPs`);
    }
  }
}

Deno.test("adjoint sharding on 2 ranks (K = 4): gradients equal one process's, owners hold them, one broadcast", async () => {
  await checkSharded(2, 4);
});

Deno.test("adjoint sharding on 3 ranks (K = 6): gradients equal one process's, owners hold them, one broadcast", async () => {
  await checkSharded(3, 6);
});

Deno.test("a layer split that is not K/Υ consecutive layers per rank, backprop or bad windows are ArgumentErrors", () => {
  const model = ssmModel(4);
  const seqs = ssmSequences();
  for (const size of [3, 5, 8]) {
    const group = { rank: 0, size } as ProcessGroup;
    assert.throws(() => lm.shardedSSMBackward(group, model, seqs), ArgumentError, `${size} ranks`);
    assert.throws(() => lm.gatherSSMGradients(group, model), ArgumentError, `${size} ranks (gather)`);
  }
  const two = { rank: 1, size: 2 } as ProcessGroup;
  const refused: [string, lm.SSMBackwardOptions][] = [
    ["backprop", { method: "backprop" }],
    ["window 0", { window: 0 }],
    ["a window on the exact form", { method: "adjoint-exact", window: 3 }],
    ["truncated without a window", { method: "truncated" }],
  ];
  for (const [what, options] of refused) {
    assert.throws(() => lm.shardedSSMBackward(two, model, seqs, options), ArgumentError, what);
  }
  assert.deepEqual(lm.ssmLayerShard(6, 2, 3), { layers: [4, 6], embedding: false, head: true });
  assert.ok(model.parameters().every((p) => p.grad === null), "a refused call added a gradient");
});

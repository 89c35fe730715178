// Training over ranks: pde.train with PI-HC-MoE's experts split over 2 processes follows the
// one-process run (losses and parameters after 3 SGD steps, float64); only rank 0 logs and
// checkpoints; and the loop's group hooks: a rank other than 0 writes nothing, and the ranks stop
// together when any of them reaches the time budget.

import assert from "node:assert/strict";
import { initBackend } from "../src/backend/select.ts";
import { MLP } from "../src/nn/mod.ts";
import { Adam } from "../src/optim/mod.ts";
import { train } from "../src/pde/mod.ts";
import { randn } from "../src/tensor/mod.ts";
import { type LoopGroup, type MetricsRecord, trainLoop } from "../src/train/mod.ts";
import { assertClose } from "./helpers.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { moeTraining } from "./dist/moe_setup.ts";

await initBackend("cpu");

Deno.test("pde.train with experts split over 2 ranks follows the one-process run", async () => {
  const run = await launchRanks(2, "train_rank.ts");
  assertSucceeded(run);
  const options = moeTraining();
  const whole = await train({ ...options, log: () => {} });
  const params = options.method.model.parameters().map((p) => Array.from(p.toTypedArray()));
  const [r0, r1] = run.ranks;
  // The first step's loss agrees to rounding. Later steps agree only as well as the run itself is
  // reproducible: the expert solves stop at a tolerance, so parameters moved by 1e-15 (relative)
  // in one process change the next losses by about 1e-11 (measured on this setup).
  const losses = whole.history.map((h) => h.loss);
  for (const out of run.ranks) {
    assertClose((out.losses as number[])[0], losses[0], { rtol: 1e-12 }, "first loss");
    assertClose(out.losses as number[], losses, { rtol: 1e-9 }, "losses");
    assert.deepEqual(out.converged, whole.history.map((h) => h.convergedShare), "solve summaries over the ranks");
    assertClose((out.params as number[][]).flat(), params.flat(), { rtol: 1e-9, scale: "max" }, "parameters");
  }
  assert.equal((r0.lines as string[]).length, 3, "rank 0 logs a line per step");
  assert.deepEqual(r1.lines, [], "rank 1 logs nothing");
  assert.match(r0.checkpoint as string, /ckpt-000003$/);
  assert.equal(r1.checkpoint, null, "only rank 0 writes checkpoints");
});

/** A stand-in for a process group of which this process is `rank`; `others` answers for the rest. */
function fakeGroup(rank: number, others: (values: readonly number[]) => number[]): LoopGroup & { calls: number } {
  const g = {
    rank,
    size: 2,
    calls: 0,
    allReduceNumbers: (values: readonly number[]) => {
      g.calls++;
      return others(values).map((v, i) => Math.max(v, values[i]));
    },
  };
  return g;
}

Deno.test("trainLoop with a group: rank 1 writes nothing; any rank over the budget stops all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const net = new MLP([1, 4, 1], { seed: 0 });
    const x = randn([8, 1], { seed: 1 });
    const lines: string[] = [];
    const records: MetricsRecord[] = [];
    let step = 0;
    const group = fakeGroup(1, () => [++step >= 2 ? 1 : 0]); // the other rank passes the budget at step 2
    const result = await trainLoop({
      model: net,
      optimizer: new Adam(net, { lr: 1e-2 }),
      steps: 10,
      step: () => {
        const loss = net.forward(x).square().mean();
        loss.backward();
        return { loss: loss.item() };
      },
      maxSeconds: 3600,
      logEvery: 1,
      checkpointDir: dir,
      log: (l) => lines.push(l),
      writers: [{
        start: () => Promise.resolve(),
        write: (r) => Promise.resolve(void records.push(r)),
        close: () => Promise.resolve(),
      }],
      group,
    });
    assert.equal(result.step, 2);
    assert.equal(result.stoppedBy, "time");
    assert.equal(group.calls, 2, "one agreement per step");
    assert.deepEqual(lines, []);
    assert.deepEqual(records, []);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "rank 1 wrote a checkpoint");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an example run with --nproc 2 restarts under the launcher; rank 0 alone reports", async () => {
  const out = await Deno.makeTempDir();
  try {
    const script = new URL("../examples/heat_1d.ts", import.meta.url).pathname;
    const flags = ["--method", "moe", "--steps", "2", "--log-every", "1", "--nx", "16", "--nt", "9", "--train", "4"];
    const sizes = ["--test", "2", "--batch", "2", "--width", "4", "--layers", "1", "--fc", "8", "--basis", "4"];
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, ...flags, ...sizes, "--points", "16", "--nproc", "2", "--out", out],
      env: { PATCHWORK_BACKEND: "cpu" },
    }).output();
    const text = new TextDecoder().decode(stdout);
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.match(text, /\[rank0\]: step 2\/2/);
    assert.doesNotMatch(text, /\[rank1\]: step/);
    assert(Deno.statSync(`${out}/heat_1d/metrics.json`).isFile);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

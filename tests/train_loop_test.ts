import assert from "node:assert/strict";
import { join } from "node:path";
import { ArgumentError, nn, NonFiniteError, optim, type Tensor, tensor, train, useBackend } from "../mod.ts";

useBackend("cpu");
const quiet = () => {};

/**
 * A small regression whose every step depends on host state: the batch comes from a data cursor
 * walking a shuffled pool and a random stream adds noise, so a resume that lost either state (or
 * the optimiser's step count, which drives the schedule) would not reproduce the losses.
 */
function setup() {
  const net = new nn.MLP([2, 16, 1], { activation: "tanh", seed: 3, dtype: "float64" });
  const optimizer = new optim.Adam(net, {
    lr: optim.warmupCosine({ peakLr: 2e-2, warmupSteps: 3, totalSteps: 12, minLr: 1e-3 }),
  });
  const rng = new train.HostRandom(11);
  const pool = Array.from({ length: 40 }, (_, i) => [Math.sin(i), Math.cos(3 * i)]);
  let position = 0;
  const cursor: train.Resumable<{ position: number }> = {
    state: () => ({ position }),
    restore: (s) => void (position = s.position),
  };
  const losses: number[] = [];
  const step = () => {
    const rows = Array.from({ length: 8 }, () => pool[position++ % pool.length]);
    const x = tensor(rows, { dtype: "float64" });
    const noise = tensor(rows.map(() => [0.01 * (rng.next() - 0.5)]), { dtype: "float64" });
    const y = x.narrow(1, 0, 1).mul(x.narrow(1, 1, 1)).add(noise);
    const loss = net.forward(x).sub(y).square().mean();
    loss.backward();
    return { loss: loss.item(), items: 8, sums: { position } };
  };
  return { net, optimizer, rng, cursor, losses, step, states: { data: cursor, random: rng } };
}

const params = (net: nn.Module) => net.parameters().map((p: Tensor) => Array.from(p.toTypedArray()));

type Setup = ReturnType<typeof setup>;
type Options = Partial<train.TrainLoopOptions<train.StepOutcome>>;

/** 12 clipped steps of a setup, recording its losses; `options` override. */
const run = (s: Setup, options: Options = {}) =>
  train.trainLoop({
    model: s.net,
    optimizer: s.optimizer,
    steps: 12,
    step: s.step,
    clipGradNorm: 1,
    log: quiet,
    onStep: (_, o) => s.losses.push(o.loss),
    ...options,
  });

Deno.test("trainLoop: a resumed run repeats the uninterrupted run's losses bit for bit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const full = setup();
    await run(full);
    // The first run crashes at step 8 (index 7): the newest checkpoint is step 5's.
    const first = setup();
    const crash = (i: number) => {
      if (i === 7) throw new Error("power cut");
      return first.step();
    };
    const saving = { checkpointDir: dir, checkpointEvery: 5 };
    await assert.rejects(run(first, { ...saving, step: crash, states: first.states }), /power cut/);
    assert.deepEqual(first.losses, full.losses.slice(0, 7));
    // A fresh process builds the same objects and resumes.
    const second = setup();
    const lines: string[] = [];
    const r = await run(second, { ...saving, resume: true, states: second.states, log: (l) => lines.push(l) });
    assert.equal(r.resumedFrom, 5);
    assert.match(lines[0], /resumed from .*ckpt-000005 at step 5/);
    assert.deepEqual(second.losses, full.losses.slice(5));
    assert.deepEqual(params(second.net), params(full.net));
    // Losing the random stream's state breaks the equality: the test sees what it checks.
    const at5 = setup();
    await run(at5, { steps: 5, checkpointDir: join(dir, "at5"), states: at5.states });
    const careless = setup();
    await run(careless, { checkpointDir: join(dir, "at5"), resume: true, states: { data: careless.cursor } });
    assert.notDeepEqual(careless.losses, full.losses.slice(5));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainLoop: records, progress lines, evaluation and metrics writers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = setup();
    const lines: string[] = [];
    const jsonl = join(dir, "metrics.jsonl");
    const evaluated: number[] = [];
    const r = await run(s, {
      logEvery: 4,
      evalEvery: 6,
      evaluate: (step) => {
        evaluated.push(step);
        return { validation: 0.5 };
      },
      summarize: (sums, steps) => ({ meanPosition: sums.position / steps }),
      unit: { key: "rowsPerSecond", label: "rows" },
      writers: [new train.JsonLinesWriter(jsonl)],
      log: (l) => lines.push(l),
    });
    // Records at 4, 6 (evaluation), 8, 12 (last: logged and evaluated).
    assert.deepEqual(r.history.map((h) => h.step), [4, 6, 8, 12]);
    assert.deepEqual(evaluated, [6, 12]);
    const at4 = r.history[0];
    assert.equal(at4.loss, s.losses.slice(0, 4).reduce((a, b) => a + b, 0) / 4);
    // Positions after steps 1..4 are 8, 16, 24, 32: their mean is 20.
    assert.equal(at4.meanPosition, 20);
    assert.ok(at4.rowsPerSecond > 0 && at4.secondsPerStep > 0 && at4.peakMiB >= at4.memoryMiB);
    assert.equal(r.history[1].validation, 0.5);
    // The record at 6 covers steps 5 and 6 only; the one at 8, steps 7 and 8.
    assert.equal(r.history[1].meanPosition, (40 + 48) / 2);
    const progress = lines.filter((l) => l.startsWith("step"));
    assert.equal(progress.length, 3);
    const parts = progress[0].split("  ");
    assert.ok(progress[0].startsWith("step  4/12  loss "), "the step is padded to the total's width");
    assert.match(parts[2], /^loss \d\.\d\de-?\d+$/);
    assert.equal(parts[3], "meanPosition 2.00e+1");
    assert.match(parts[4], /^[\d.]+k? rows\/s$/);
    assert.match(parts[5], /^\d+\.\d{3} s\/step$/);
    assert.match(parts[6], /^mem [\d.]+\/[\d.]+ MiB$/);
    assert.match(parts[7], /^eta \d+s$/);
    assert.match(progress[2], /^step 12\/12 .* validation 5\.00e-1 .* MiB$/, "the last line has no time left");
    const written = (await Deno.readTextFile(jsonl)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(written, r.history);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainLoop: a NaN loss or gradient stops the run, keeps the last good checkpoint, says what to do", async () => {
  for (const fault of ["loss", "gradient"] as const) {
    const dir = await Deno.makeTempDir();
    try {
      const s = setup();
      let before: number[][] = [];
      await assert.rejects(
        run(s, {
          steps: 10,
          clipGradNorm: 0,
          step: (i) => {
            const out = s.step();
            if (i !== 5) return out;
            if (fault === "loss") return { ...out, loss: NaN };
            const g = s.net.parameters()[0].grad!;
            g.assign(g.add(Infinity));
            return out;
          },
          checkpointDir: dir,
          checkpointEvery: 2,
          onStep: (step) => {
            if (step === 5) before = params(s.net);
          },
        }),
        (e: unknown) => {
          assert.ok(e instanceof train.TrainingDivergedError && e instanceof NonFiniteError);
          assert.equal(e.step, 6);
          assert.match(e.checkpoint!, /ckpt-000004$/);
          assert.match(
            e.message,
            fault === "loss" ? /step 6: the loss is NaN/ : /step 6: the gradient norm is Infinity/,
          );
          assert.match(e.message, /resume from it with a lower learning rate or tighter gradient clipping/);
          return true;
        },
      );
      assert.deepEqual(params(s.net), before, "no update at the bad step");
      assert.equal(JSON.parse(await Deno.readTextFile(join(dir, "latest.json"))).step, 4);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("trainLoop: bad options and foreign checkpoints are refused with what to do", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = setup();
    const base = { model: s.net, optimizer: s.optimizer, step: s.step, log: quiet };
    await assert.rejects(train.trainLoop({ ...base, steps: -1 }), /steps must be an integer ≥ 0, got -1/);
    await assert.rejects(train.trainLoop({ ...base, steps: 1, resume: true }), /resume needs a checkpointDir/);
    await assert.rejects(
      train.trainLoop({ ...base, steps: 1, states: { loop: s.cursor } }),
      (e: unknown) => e instanceof ArgumentError && /may not be named "loop"/.test(e.message),
    );
    await train.trainLoop({ ...base, steps: 2, checkpointDir: dir });
    // A run that expects a data position refuses a checkpoint written without one.
    await assert.rejects(
      train.trainLoop({ ...base, steps: 4, checkpointDir: dir, resume: true, states: { data: s.cursor } }),
      /has no "data" state .*another kind of run/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { nn, optim, tensor, tidy, train, useBackend } from "../mod.ts";

useBackend("cpu");

function model(seed: number) {
  const net = new nn.MLP([2, 4, 1], { seed, dtype: "float64" });
  const optimizer = new optim.Adam(net, { lr: 1e-2 });
  // One step so the optimiser has state and a step count to save.
  tidy(() => {
    net.forward(tensor([[1, 2]], { dtype: "float64" })).sum().backward();
    optimizer.step();
    optimizer.zeroGrad();
  });
  return { net, optimizer };
}

const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
const values = (net: nn.Module) => net.parameters().map((p) => Array.from(p.toTypedArray()));

Deno.test("checkpoints: model, optimiser and named states round-trip; the newest `keep` stay", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = model(1);
    const rng = new train.HostRandom(5);
    rng.next();
    for (const step of [2, 4, 6, 8]) {
      await train.saveCheckpoint(dir, { step, ...a, model: a.net, states: { random: rng }, keep: 2 });
    }
    assert.deepEqual(names(dir), ["ckpt-000006", "ckpt-000008", "latest.json"]);
    const b = model(2);
    const other = new train.HostRandom(0);
    const found = await train.loadCheckpoint(dir, { model: b.net, optimizer: b.optimizer, states: { random: other } });
    assert.equal(found!.step, 8);
    assert.match(found!.path, /ckpt-000008$/);
    assert.deepEqual(values(b.net), values(a.net));
    assert.equal(b.optimizer.stepCount, a.optimizer.stepCount);
    assert.equal(other.next(), rng.next(), "the random stream continues where it was saved");
    // A fresh run in the same directory: its step-2 checkpoint replaces the later leftovers.
    await train.saveCheckpoint(dir, { step: 2, model: a.net, optimizer: a.optimizer, keep: 2 });
    assert.deepEqual(names(dir), ["ckpt-000002", "latest.json"]);
    assert.equal((await train.findCheckpoint(dir))!.step, 2);
    // Re-writing the current step keeps latest.json on a whole checkpoint.
    await train.saveCheckpoint(dir, { step: 2, model: a.net, optimizer: a.optimizer });
    assert.deepEqual(names(dir), ["ckpt-000002", "latest.json"]);
    assert.equal(await train.loadCheckpoint(join(dir, "nothing"), { model: b.net, optimizer: b.optimizer }), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoints: a crash mid-write leaves the previous checkpoint current", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = model(1);
    await train.saveCheckpoint(dir, { step: 3, model: a.net, optimizer: a.optimizer });
    // A write that dies half-way leaves a partial directory and no new index.
    const broken = {
      stateDict: () => {
        throw new Error("disk full");
      },
      loadStateDict: a.net.loadStateDict.bind(a.net),
    };
    await assert.rejects(
      train.saveCheckpoint(dir, { step: 6, model: broken, optimizer: a.optimizer }),
      /disk full/,
    );
    assert.ok(names(dir).includes("ckpt-000006.partial"));
    assert.equal((await train.findCheckpoint(dir))!.step, 3);
    // The next save clears the leftover.
    await train.saveCheckpoint(dir, { step: 6, model: a.net, optimizer: a.optimizer });
    assert.deepEqual(names(dir), ["ckpt-000006", "latest.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoints: refusals say what to do", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = model(1);
    await assert.rejects(
      train.saveCheckpoint(dir, { step: -1, model: a.net, optimizer: a.optimizer }),
      /step must be an integer ≥ 0/,
    );
    await assert.rejects(
      train.saveCheckpoint(dir, { step: 1, model: a.net, optimizer: a.optimizer, keep: 0 }),
      /keep must be an integer ≥ 1/,
    );
    await Deno.writeTextFile(join(dir, "latest.json"), "{ not json");
    await assert.rejects(
      train.findCheckpoint(dir),
      /latest\.json is not a checkpoint index .*remove it to start afresh/,
    );
    await train.saveCheckpoint(dir, { step: 1, model: a.net, optimizer: a.optimizer });
    // A restore that refuses the checkpoint leaves the tensors untouched.
    const b = model(2);
    const before = values(b.net);
    const picky: train.Resumable = {
      state: () => null,
      restore: () => {
        throw new Error("written by another run");
      },
    };
    const missing = train.loadCheckpoint(dir, { model: b.net, optimizer: b.optimizer, states: { run: picky } });
    await assert.rejects(missing, /has no "run" state \(it holds none\).*use another checkpoint directory/);
    await train.saveCheckpoint(dir, { step: 2, model: a.net, optimizer: a.optimizer, states: { run: picky } });
    await assert.rejects(
      train.loadCheckpoint(dir, { model: b.net, optimizer: b.optimizer, states: { run: picky } }),
      /written by another run/,
    );
    assert.deepEqual(values(b.net), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

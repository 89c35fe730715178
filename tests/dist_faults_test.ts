// Faults on 2 processes on loopback, each a typed error rather than a hang: a rank killed or hung
// in a collective (PeerError within the timeout), ranks calling different collectives or sizes
// (CollectiveMismatchError), different world sizes, an unreachable master and a missing rank
// (RendezvousError), and the launcher stopping the other ranks when one fails.

import assert from "node:assert/strict";
import { distSettings, RendezvousError } from "../src/dist/mod.ts";
import { launchRanks, spawnRanks } from "./dist_helpers.ts";

interface Outcome {
  name: string;
  message?: string;
  reason?: string;
  peer?: number;
  ms?: number;
}

function outcome(output: string): Outcome {
  const line = output.split("\n").find((l) => l.startsWith("RESULT "));
  assert(line, `no RESULT line in:\n${output}`);
  return JSON.parse(line.slice(7));
}

const TIMEOUT = 2; // seconds

Deno.test("a rank killed in a collective: the other stops at once with a PeerError naming it", async () => {
  const [r0, r1] = await spawnRanks("fault_rank.ts", [
    { FAULT: "kill", PATCHWORK_DIST_TIMEOUT: String(TIMEOUT) },
    { FAULT: "kill", PATCHWORK_DIST_TIMEOUT: String(TIMEOUT) },
  ]);
  assert.equal(r1.code, 137, r1.output);
  assert.equal(r0.code, 1, r0.output);
  const o = outcome(r0.output);
  assert.equal(o.name, "PeerError", o.message);
  assert.equal(o.reason, "lost");
  assert.equal(o.peer, 1);
  assert(o.ms! < TIMEOUT * 1000, `took ${o.ms} ms: a lost peer must not wait for the timeout`);
});

Deno.test("a rank that hangs: the other stops with a PeerError (timeout) within the timeout", async () => {
  const [r0, r1] = await spawnRanks("fault_rank.ts", [
    { FAULT: "hang", PATCHWORK_DIST_TIMEOUT: String(TIMEOUT) },
    { FAULT: "hang", PATCHWORK_DIST_TIMEOUT: String(TIMEOUT) },
  ], 1);
  assert.equal(r0.code, 1, r0.output);
  assert.notEqual(r1.code, 0, "the hung rank was expected to be killed");
  const o = outcome(r0.output);
  assert.equal(o.name, "PeerError", o.message);
  assert.equal(o.reason, "timeout");
  assert(o.ms! >= TIMEOUT * 1000 * 0.9 && o.ms! < TIMEOUT * 1000 + 3000, `stopped after ${o.ms} ms`);
});

Deno.test("ranks calling different collectives or sizes stop with a CollectiveMismatchError", async () => {
  for (const fault of ["size", "order"]) {
    const runs = await spawnRanks("fault_rank.ts", [{ FAULT: fault }, { FAULT: fault }]);
    for (const [rank, r] of runs.entries()) {
      assert.equal(r.code, 1, r.output);
      const o = outcome(r.output);
      // The rank that reads the other's header first names the mismatch; the other then sees it leave.
      assert(o.name === "CollectiveMismatchError" || (o.name === "PeerError" && o.peer === 1 - rank), r.output);
    }
    assert(runs.some((r) => outcome(r.output).name === "CollectiveMismatchError"), fault);
  }
});

Deno.test("ranks with different world sizes fail with a RendezvousError saying so", async () => {
  const runs = await spawnRanks("fault_rank.ts", [{ WORLD_SIZE: "2" }, { WORLD_SIZE: "3" }]);
  for (const r of runs) {
    const o = outcome(r.output);
    assert.equal(o.name, "RendezvousError", r.output);
    assert.match(o.message!, /rank 1 has WORLD_SIZE 3 but rank 0 has 2/);
  }
});

Deno.test("an unreachable master and a missing rank are RendezvousErrors within the timeout", async () => {
  const [unreachable] = await spawnRanks("fault_rank.ts", [{
    RANK: "1",
    WORLD_SIZE: "2",
    PATCHWORK_DIST_TIMEOUT: "1",
  }]);
  let o = outcome(unreachable.output);
  assert.equal(o.name, "RendezvousError");
  assert.match(o.message!, /could not reach the master at 127\.0\.0\.1:\d+/);
  const [alone] = await spawnRanks("fault_rank.ts", [{ WORLD_SIZE: "2", PATCHWORK_DIST_TIMEOUT: "1" }]);
  o = outcome(alone.output);
  assert.equal(o.name, "RendezvousError");
  assert.match(o.message!, /rank 1 did not join within 1 s/);
});

Deno.test("bad environments are RendezvousErrors naming the variable", () => {
  assert.throws(() => distSettings({ rank: 2, worldSize: 2 }), RendezvousError);
  assert.throws(() => distSettings({ masterPort: 70000 }), /masterPort = 70000/);
  assert.throws(() => distSettings({ timeout: -1 }), /timeout must be a positive number/);
});

Deno.test("the launcher stops the other ranks when one fails, and exits with its code", async () => {
  const run = await launchRanks(2, "fault_rank.ts", [], { FAULT: "exit" });
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, /launch: rank 1 exited with code 3/);
  assert.match(run.stderr, /stopping rank 0/);
  assert(!/RESULT/.test(run.stdout), `rank 0 was expected to be stopped by the launcher:\n${run.stdout}`);
  assert(run.seconds < 30, `took ${run.seconds} s`);
});

import assert from "node:assert/strict";
import { assertRaises } from "./helpers.ts";
import {
  ArgumentError,
  BackendCounter,
  countCalls,
  getDefaultBackend,
  randn,
  subtractCounts,
  tensor,
  tidy,
} from "../mod.ts";

Deno.test("countCalls: primitives by name, host reads and uploads of a known chain", () => {
  const x = randn([3, 4], { seed: 1 });
  const { value, counts } = countCalls(() => tidy(() => x.exp().add(1).mul(x).sum().item()));
  assert.ok(Number.isFinite(value));
  assert.deepEqual(counts.calls["unary:exp"], 1);
  assert.deepEqual(counts.calls["binary:add"], 1);
  assert.deepEqual(counts.calls["binary:mul"], 1);
  assert.deepEqual(counts.calls["reduce:sum"], 1);
  assert.deepEqual(counts.primitives, 4);
  assert.deepEqual(counts.hostReads, 1);
  assert.deepEqual(counts.uploads, 0);
  // float32: exp reads 12 and writes 12, add 12 + 12, mul 24 + 12, sum 12 + 1 elements of 4 bytes.
  assert.deepEqual(counts.bytes, 4 * (24 + 24 + 36 + 13));
  const up = countCalls(() => tensor([1, 2, 3]));
  assert.deepEqual(up.counts.uploads, 1);
  assert.deepEqual(up.counts.primitives, 0);
});

Deno.test("BackendCounter: matmul flops, phases by subtraction, nesting, methods restored", () => {
  const backend = getDefaultBackend();
  const a = randn([2, 4, 8], { seed: 2 }), b = randn([2, 8, 3], { seed: 3 });
  const outer = new BackendCounter().start();
  assert.ok(Object.hasOwn(backend, "matmul"), "counting wraps the instance's methods");
  a.matmul(b);
  const mid = outer.read();
  const inner = new BackendCounter(backend).start();
  a.sum().toTypedArray();
  const innerCounts = inner.stop();
  assert.ok(Object.hasOwn(backend, "matmul"), "the outer counter still runs");
  const all = outer.stop();
  assert.ok(!Object.hasOwn(backend, "matmul") && !Object.hasOwn(backend, "toHost"), "methods restored");
  assert.deepEqual(mid.calls.matmul, 1);
  assert.deepEqual(mid.matmulFlops, 2 * 2 * 4 * 8 * 3);
  assert.deepEqual(innerCounts.calls, { "reduce:sum": 1 });
  assert.deepEqual(innerCounts.hostReads, 1);
  assert.deepEqual(all.primitives, 2);
  const phase = subtractCounts(all, mid);
  assert.deepEqual(phase.calls, { "reduce:sum": 1 });
  assert.deepEqual(phase.hostReads, 1);
  assert.deepEqual(outer.stop(), all, "stop is idempotent");
  // Nothing is counted once stopped.
  a.sum();
  assert.deepEqual(outer.read().primitives, 2);
});

Deno.test("BackendCounter: optional families are counted as family.method", () => {
  const backend = getDefaultBackend();
  if (!backend.linalg) return;
  const m = tensor([[4, 1], [1, 3]], { dtype: "float64" });
  const { counts } = countCalls(() =>
    backend.linalg!.cholesky({ buffer: m.storage.buffer, shape: [2, 2], strides: [2, 1], offset: 0 }, "float64")
  );
  assert.deepEqual(counts.calls["linalg.cholesky"], 1);
  assert.ok(!Object.hasOwn(backend.linalg, "cholesky") || typeof backend.linalg.cholesky === "function");
});

Deno.test("BackendCounter: misuse is an ArgumentError", () => {
  assertRaises(() => new BackendCounter({} as never), ArgumentError, "BackendCounter", "expects a Backend");
  const c = new BackendCounter();
  assertRaises(() => c.read(), ArgumentError, "BackendCounter.read", "not been started");
  c.start();
  assertRaises(() => c.start(), ArgumentError, "BackendCounter.start", "already started");
  c.stop();
});

Deno.test("BackendCounter: a device's own counters (CUDA): a reduction launches, a host read waits once", () => {
  const backend = getDefaultBackend();
  if (!backend.deviceCounts) return; // the CPU backend queues nothing
  const x = randn([1024], { seed: 4 });
  const { counts } = countCalls(() => tidy(() => x.square().sum().item()));
  assert.ok(counts.device, "a backend with deviceCounts reports them");
  assert.ok(counts.device.launches >= 2, `square and sum launch kernels (${counts.device.launches})`);
  assert.equal(counts.device.syncs, 1, "item() waits for the stream once");
  assert.equal(counts.hostReads, 1);
});

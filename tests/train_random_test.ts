import assert from "node:assert/strict";
import { train } from "../mod.ts";
import { rng } from "./helpers.ts";

Deno.test("HostRandom: uniform on [0, 1), saved and restored exactly", () => {
  const r = new train.HostRandom(123);
  const xs = Array.from({ length: 20000 }, () => r.next());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  // Uniform: mean 1/2 (sd of the mean 0.002), variance 1/12.
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.003, `variance ${variance}`);
  const deciles = new Array(10).fill(0);
  for (const x of xs) deciles[Math.floor(10 * x)]++;
  assert.ok(deciles.every((c) => Math.abs(c - 2000) < 200), `deciles ${deciles}`);
  const saved = r.state();
  const next = [r.next(), r.next(), r.int(7)];
  const s = new train.HostRandom(0);
  s.restore(JSON.parse(JSON.stringify(saved)));
  assert.deepEqual([s.next(), s.next(), s.int(7)], next);
  assert.throws(() => s.restore({ word: -1 }), /expected \{ word: a 32-bit unsigned integer \}/);
  assert.throws(() => new train.HostRandom(NaN), /seed must be a finite number/);
  assert.throws(() => s.int(0), /n must be an integer ≥ 1/);
});

Deno.test("the tests' seeded stream is the training layer's, value for value as before", () => {
  // The first values the tests' own copy of mulberry32 gave for these seeds.
  const r = rng(42);
  assert.deepEqual([r(), r(), r(), r()], [
    0.6011037519201636,
    0.44829055899754167,
    0.8524657934904099,
    0.6697340414393693,
  ]);
  const z = train.uniformStream(0);
  assert.deepEqual([z(), z()], [0.26642920868471265, 0.0003297457005828619]);
});

Deno.test("shuffles and epoch orders: permutations, a pure function of seed and epoch", () => {
  const p = train.epochPermutation(50, 3, 2);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(train.epochPermutation(50, 3, 2), p);
  assert.notDeepEqual(train.epochPermutation(50, 3, 3), p);
  assert.notDeepEqual(train.epochPermutation(50, 4, 2), p);
  // Batches cross epoch boundaries: 7 samples, batches of 3.
  const order = Array.from({ length: 7 }, (_, s) => train.batchIndices(7, 3, 1, s)).flat();
  for (let e = 0; e < 3; e++) assert.deepEqual(order.slice(7 * e, 7 * e + 7), train.epochPermutation(7, 1, e));
  assert.throws(() => train.batchIndices(0, 2, 0, 0), /needs n ≥ 1 samples and a batch size ≥ 1/);
  // Fisher–Yates is unbiased: each of the 6 orders of 3 items about equally often.
  const r = new train.HostRandom(9);
  const counts = new Map<string, number>();
  for (let i = 0; i < 6000; i++) {
    const k = r.shuffle([0, 1, 2]).join("");
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  assert.equal(counts.size, 6);
  for (const [k, c] of counts) assert.ok(Math.abs(c - 1000) < 120, `${k}: ${c}`);
});

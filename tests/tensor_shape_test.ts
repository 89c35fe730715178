// coalesce, the axis merging that every CPU loop and every CUDA launch walks views through: on
// random strided views (size-1 and empty axes, broadcast, reversed, transposed and padded
// operands) the merged view addresses exactly the elements of the original, in the same order,
// and nothing that could still be merged is left apart.

import assert from "node:assert/strict";
import { coalesce } from "../src/tensor/shape.ts";
import { rng } from "./helpers.ts";

/** Every element address of each operand, in row-major order of `shape` (offsets at 0). */
function addresses(shape: readonly number[], strides: readonly (readonly number[])[]): number[][] {
  const out: number[][] = strides.map(() => []);
  const idx = new Array<number>(shape.length).fill(0);
  const count = shape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < count; i++) {
    strides.forEach((s, j) => out[j].push(idx.reduce((acc, v, d) => acc + v * s[d], 0)));
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Strides of a view of a padded, possibly permuted, reversed or broadcast buffer of `shape`. */
function randomStrides(shape: readonly number[], r: () => number): number[] {
  const order = shape.map((_, d) => d);
  if (r() < 0.3) order.sort(() => r() - 0.5); // a transposed layout
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = order.length - 1; i >= 0; i--) {
    const d = order[i];
    strides[d] = r() < 0.15 ? 0 : r() < 0.15 ? -step : step; // broadcast or reversed axes
    step *= Math.max(1, shape[d]) + (r() < 0.2 ? 1 : 0); // padding breaks contiguity
  }
  return strides;
}

Deno.test("coalesce: a merged view addresses the same elements in the same order, with nothing left to merge", () => {
  const r = rng(7);
  let merged = 0;
  for (let trial = 0; trial < 2000; trial++) {
    const rank = Math.floor(r() * 6);
    const shape = Array.from({ length: rank }, () => (r() < 0.03 ? 0 : Math.floor(r() * 4) + 1));
    const operands = 1 + Math.floor(r() * 3);
    const strides = Array.from({ length: operands }, () => randomStrides(shape, r));
    const c = coalesce(shape, strides);
    const what = `shape ${JSON.stringify(shape)} strides ${JSON.stringify(strides)} -> ${JSON.stringify(c)}`;
    assert.equal(c.strides.length, operands, what);
    assert.ok(c.shape.length >= 1 && c.shape.length <= Math.max(1, rank), what);
    for (const s of c.strides) assert.equal(s.length, c.shape.length, what);
    const empty = shape.includes(0);
    if (empty) {
      assert.deepEqual(c.shape, [0], what);
      continue;
    }
    assert.deepEqual(addresses(c.shape, c.strides), addresses(shape, strides), what);
    if (c.shape.length > 1) assert.ok(!c.shape.includes(1), `a size-1 axis is kept: ${what}`);
    for (let d = 0; d + 1 < c.shape.length; d++) {
      const mergeable = c.strides.every((s) => s[d] === s[d + 1] * c.shape[d + 1]);
      assert.ok(!mergeable, `axes ${d} and ${d + 1} could still merge: ${what}`);
    }
    if (c.shape.length < shape.filter((n) => n !== 1).length) merged++;
  }
  assert.ok(merged > 150, `only ${merged} of the random views had axes to merge`);
});

Deno.test("coalesce: the documented cases", () => {
  assert.deepEqual(coalesce([2, 3], [[3, 1], [0, 1]]), { shape: [2, 3], strides: [[3, 1], [0, 1]] });
  assert.deepEqual(coalesce([2, 3], [[3, 1], [6, 2]]), { shape: [6], strides: [[1], [2]] });
  assert.deepEqual(coalesce([2, 1, 3], [[3, 3, 1]]), { shape: [6], strides: [[1]] });
  assert.deepEqual(coalesce([], [[], []]), { shape: [1], strides: [[0], [0]] }, "a scalar is one element");
  assert.deepEqual(coalesce([4, 0, 2], [[2, 2, 1]]), { shape: [0], strides: [[0]] }, "an empty view");
  assert.deepEqual(coalesce([3, 2], [[-2, -1]]), { shape: [6], strides: [[-1]] }, "reversed and contiguous");
});

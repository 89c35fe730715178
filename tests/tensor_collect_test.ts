// The garbage collector's safety net: a tensor the program drops without disposing it gives its
// bytes back once it is collected, whichever way it left the scopes (tidy holds what it made until
// it ends, so only tensors no scope holds need watching); on the CPU, so does a raw buffer or heap
// array dropped unfreed (watched from the next allocation on, unless a tensor took charge of it).
// Runs tensor_collect_probe.ts in a process of its own, where the collector can be driven
// (--expose-gc).

import assert from "node:assert/strict";

type Report = Record<string, { held: number; after: number }>;

/** Runs the probe; its report. */
async function probe(): Promise<{ tensors: Report; heap: Report | null }> {
  const url = new URL("./tensor_collect_probe.ts", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", url.pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, "the probe failed");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Checks that each case held the bytes expected and held none after collection. */
function check(report: Report, expected: Record<string, number>): void {
  assert.deepEqual(Object.keys(report), Object.keys(expected));
  for (const [name, bytes] of Object.entries(expected)) {
    assert.equal(report[name].held, bytes, `${name}: bytes held before collection`);
    assert.equal(report[name].after, 0, `${name}: bytes still held after collection`);
  }
}

Deno.test("tensors dropped undisposed, and on the CPU raw buffers and heap arrays, are released when collected", async () => {
  const { tensors, heap } = await probe();
  const f32 = 4, n = 256;
  const expected: Record<string, number> = {
    // zeros and its sum, both dropped
    "made outside every scope": 2 * n * f32,
    // only the result outlives the scope
    "returned from the outermost tidy": n * f32,
    "returned through two tidy scopes": n * f32,
    "kept inside a tidy scope": n * f32,
    // the view holds its base's storage
    "a view of a tensor made inside tidy": n * f32,
    // the leaf and its gradient
    "a kept leaf and its gradient": 2 * n * f32,
  };
  check(tensors, expected);
  // Heap blocks are whole multiples of 64 bytes.
  if (heap) check(heap, { "a raw CPU buffer": n * f32, "a heap array": 128 * 8 });
});

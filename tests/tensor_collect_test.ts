// The garbage collector's safety net: a tensor the program drops without disposing it gives its
// bytes back once it is collected, whichever way it left the scopes (tidy holds what it made until
// it ends, so only tensors no scope holds need watching). Runs tensor_collect_probe.ts in a process
// of its own, where the collector can be driven (--expose-gc).

import assert from "node:assert/strict";

Deno.test("tensors dropped undisposed outside every scope are released when collected", async () => {
  const url = new URL("./tensor_collect_probe.ts", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", url.pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, "the probe failed");
  const report = JSON.parse(new TextDecoder().decode(out.stdout)) as Record<string, { held: number; after: number }>;
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
  assert.deepEqual(Object.keys(report), Object.keys(expected));
  for (const [name, bytes] of Object.entries(expected)) {
    assert.equal(report[name].held, bytes, `${name}: bytes held before collection`);
    assert.equal(report[name].after, 0, `${name}: bytes still held after collection`);
  }
});

/**
 * The package is publishable: a licence, every layer exported as a sub-entry point and
 * doc-linted, and the check task runs `deno publish --dry-run` (offline) so it stays clean.
 */

import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));

Deno.test("the package carries the MIT licence: a LICENSE file and the license field", async () => {
  const text = await Deno.readTextFile(new URL("LICENSE", root));
  assert.ok(text.startsWith("MIT License"), "LICENSE starts with its name");
  assert.ok(text.includes("Copyright (c) the patchwork authors"));
  assert.equal(config.license, "MIT");
});

Deno.test("every layer with a mod.ts is an entry point, doc-linted by the check task", async () => {
  const layers: string[] = [];
  for await (const e of Deno.readDir(new URL("src/", root))) {
    try {
      await Deno.stat(new URL(`src/${e.name}/mod.ts`, root));
      layers.push(e.name);
    } catch {
      // a folder without a mod.ts is not a layer of its own
    }
  }
  assert.ok(layers.includes("local") && layers.includes("tensor"), `layers found: ${layers}`);
  const check: string = config.tasks.check;
  for (const layer of layers) {
    assert.equal(config.exports[`./${layer}`], `./src/${layer}/mod.ts`, `deno.json exports "./${layer}"`);
  }
  for (const target of Object.values(config.exports) as string[]) {
    assert.ok(check.includes(target.replace(/^\.\//, "")), `the check task doc-lints ${target}`);
  }
  assert.ok(/deno publish --dry-run/.test(check), "the check task runs deno publish --dry-run");
  // The backends are reached by path rather than as entry points; their modules are doc-linted too.
  for (const module of ["src/backend/cpu/mod.ts", "src/backend/cuda/mod.ts", "src/backend/select.ts"]) {
    assert.ok(check.includes(module), `the check task doc-lints ${module}`);
  }
});

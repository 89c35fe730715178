/**
 * Every error class the project raises can be caught by its name from the top-level module, and
 * is the same class its layer exports (so `instanceof` agrees whichever import a user took).
 */

import assert from "node:assert/strict";
import * as mod from "../mod.ts";

/** `export class NameError extends …` in every source file below src/. */
async function declaredErrorClasses(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (dir: URL): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(url);
        for (const m of text.matchAll(/^export class (\w+) extends (\w+)/gm)) {
          if (m[1].endsWith("Error")) found.set(m[1], url.pathname.replace(/.*\/src\//, "src/"));
        }
      }
    }
  };
  await walk(new URL("../src/", import.meta.url));
  return found;
}

Deno.test("every error class is exported from the top level and is a PatchworkError", async () => {
  const declared = await declaredErrorClasses();
  assert.ok(declared.size >= 20, `only ${declared.size} error classes found`);
  const top = mod as unknown as Record<string, unknown>;
  for (const [name, file] of declared) {
    const cls = top[name];
    assert.equal(typeof cls, "function", `${name} (${file}) is not exported from mod.ts`);
    assert.ok(
      name === "PatchworkError" || (cls as { prototype: unknown }).prototype instanceof mod.PatchworkError,
      `${name} does not extend PatchworkError`,
    );
  }
  // The layer's export and the top-level one are one class.
  assert.equal(mod.SingularMatrixError, mod.solve.SingularMatrixError);
  assert.equal(mod.ExpressionError, mod.pde.ExpressionError);
  assert.equal(mod.ConfigError, mod.lm.ConfigError);
  const e = new mod.solve.SolverError("leastSquares", ["max_steps"], "did not converge");
  assert.ok(e instanceof mod.SolverError && e instanceof mod.PatchworkError);
});

// Drops tensors undisposed in the ways a program can (made outside every scope, returned from the
// outermost tidy, kept inside one, a view of a tensor made in one, a kept leaf with its gradient)
// and prints, for each, the bytes they held and the bytes still held once the garbage collector
// has run. tensor_collect_test.ts runs it with --expose-gc.

import { memory, randn, tidy, zeros } from "../mod.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

/** Collects garbage until `memory().current` is back to `base` (or ten rounds have passed). */
async function collect(base: number): Promise<number> {
  for (let round = 0; round < 10 && memory().current !== base; round++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 5)); // finalisers run as tasks after a collection
  }
  return memory().current - base;
}

const cases: Record<string, () => void> = {
  "made outside every scope": () => void zeros([256]).add(1),
  "returned from the outermost tidy": () => void tidy(() => zeros([256]).add(1)),
  "returned through two tidy scopes": () => void tidy(() => tidy(() => zeros([256]).mul(2)).add(1)),
  "kept inside a tidy scope": () => void tidy(() => void zeros([256]).add(1).keep()),
  "a view of a tensor made inside tidy": () => void tidy(() => zeros([16, 16]).add(1).reshape([256])),
  "a kept leaf and its gradient": () =>
    void tidy(() => {
      const w = randn([256], { seed: 1 }).requireGrad().keep();
      w.square().sum().backward();
    }),
};

const report: Record<string, { held: number; after: number }> = {};
for (const [name, drop] of Object.entries(cases)) {
  const base = memory().current;
  drop();
  const held = memory().current - base;
  report[name] = { held, after: await collect(base) };
}
console.log(JSON.stringify(report));

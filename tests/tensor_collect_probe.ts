// Drops tensors undisposed in the ways a program can (made outside every scope, returned from the
// outermost tidy, kept inside one, a view of a tensor made in one, a kept leaf with its gradient)
// and prints, for each, the bytes they held and the bytes still held once the garbage collector
// has run; on the CPU backend, the same for raw buffers and heap arrays dropped unfreed (heap
// bytes in use). tensor_collect_test.ts runs it with --expose-gc.

import { getDefaultBackend, memory, randn, tidy, zeros } from "../mod.ts";
import { heapAlloc, heapFree, heapStats } from "../src/backend/cpu/heap.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

/** Collects garbage until `bytes()` is back to `base` (or ten rounds have passed); what is left. */
async function collect(bytes: () => number, base: number): Promise<number> {
  for (let round = 0; round < 10 && bytes() !== base; round++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 5)); // finalisers run as tasks after a collection
  }
  return bytes() - base;
}

/** For each case, the bytes held after it ran and after collection. */
async function run(cases: Record<string, () => void>, bytes: () => number) {
  const report: Record<string, { held: number; after: number }> = {};
  for (const [name, drop] of Object.entries(cases)) {
    const base = bytes();
    drop();
    report[name] = { held: bytes() - base, after: await collect(bytes, base) };
  }
  return report;
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

const backend = getDefaultBackend();
// A heap array nobody took charge of is watched from the next allocation on.
const allocateAnother = () => heapFree(heapAlloc(Float32Array, 16, false));
const heapCases: Record<string, () => void> = {
  "a raw CPU buffer": () => {
    backend.full(256, 0, "float32");
    allocateAnother();
  },
  "a heap array": () => {
    heapAlloc(Float64Array, 128, false);
    allocateAnother();
  },
};
console.log(JSON.stringify({
  tensors: await run(cases, () => memory().current),
  heap: backend.name === "cpu" ? await run(heapCases, () => heapStats().used) : null,
}));

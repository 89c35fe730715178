// examples/train_ssm_lm.ts run as a user runs it: an interrupted and resumed run gives the losses
// of an uninterrupted one bit for bit; --grad reaches the gradient (adjoint-exact trains as backprop
// does, in float64; the paper's form does not); the model folder it writes loads back; --nproc 2
// (each process half of every micro-batch) follows the one-process run of the same batch.

import assert from "node:assert/strict";
import { lm, nn } from "../mod.ts";
import { assertClose } from "./helpers.ts";
import { assertResumeExact, records, runScript, textFile } from "./script_helpers.ts";

const common = (data: string) => [
  `--data=${data}`,
  "--seq-len=32",
  "--batch=2",
  "--log-every=1",
  "--eval-every=2",
  "--eval-sequences=2",
  "--lr=3e-3",
];

Deno.test("train_ssm_lm.ts: a run stopped and resumed gives the uninterrupted run's losses bit for bit", async () => {
  const args = [...common(await textFile(60)), "--grad=truncated", "--grad-accum=2"];
  const { text, whole, records: a } = await assertResumeExact("train_ssm_lm.ts", args);
  assert.match(text, /truncated, T̄ = 4;/); // the default window, T/8
  assert.match(text, /step 6\/6 {2}loss .* VJPs .* tok\/s .* s\/step {2}mem [\d.]+\/[\d.]+ MiB/);
  assert.match(text, /validation loss [\d.]+ vs the unigram model's [\d.]+ nats\/token/);
  // Per step: 2 micro-batches × 2 sequences × 2 layers × (2·Σ_{d<4}(32 − d) through 𝒜 and ℬ + 32 through 𝒞).
  assert.deepEqual(a.map((r) => r.vjps), a.map(() => 8 * (2 * (32 + 31 + 30 + 29) + 32)));
  // The model folder holds the trained weights: those of the last checkpoint.
  const model = await lm.loadSSM(`${whole}/model`);
  const latest = JSON.parse(await Deno.readTextFile(`${whole}/checkpoints/latest.json`));
  const { tensors } = await nn.loadSafetensors(`${whole}/checkpoints/${latest.path}/model.safetensors`);
  for (const [name, value] of model.stateDict()) {
    assert.deepEqual(value.toArray(), tensors.get(name)!.toArray(), name);
  }
});

Deno.test("train_ssm_lm.ts --grad: adjoint-exact trains as backprop does (float64); the paper's form does not", async () => {
  const args = [...common(await textFile(60)), "--dtype=float64", "--steps=4"];
  const losses = async (grad: string) => {
    const out = await Deno.makeTempDir();
    await runScript("train_ssm_lm.ts", [...args, `--grad=${grad}`, `--out=${out}`]);
    return (await records(out)).map((r) => r.loss);
  };
  const backprop = await losses("backprop"), exact = await losses("adjoint-exact"), paper = await losses("adjoint");
  for (let s = 0; s < backprop.length; s++) {
    assert(Math.abs(exact[s] - backprop[s]) <= 1e-10 * backprop[s], `step ${s + 1}: ${exact[s]} vs ${backprop[s]}`);
  }
  assert.equal(paper[0], backprop[0]); // the same weights and batch before any update
  assert(Math.abs(paper[3] - backprop[3]) > 1e-6, `the paper's form (2 layers) trained as backprop: ${paper[3]}`);
});

Deno.test("train_ssm_lm.ts: --window with a gradient that has none is an error naming the flag", async () => {
  const text = await runScript("train_ssm_lm.ts", ["--grad=backprop", "--window=4", "--steps=1"], true);
  assert.match(text, /--window applies to --grad truncated or adjoint, not backprop/);
});

Deno.test("train_ssm_lm.ts --nproc 2: two processes, each half of every batch, follow one process (float64)", async () => {
  const args = [...common(await textFile(60)), "--batch=4", "--grad-accum=2", "--dtype=float64", "--steps=3"];
  for (const grad of lm.SSM_GRADIENT_METHODS) {
    const run = async (nproc: number) => {
      const out = await Deno.makeTempDir();
      const text = await runScript("train_ssm_lm.ts", [...args, `--grad=${grad}`, `--nproc=${nproc}`, `--out=${out}`]);
      const params = [...(await lm.loadSSM(`${out}/model`)).stateDict()].map(([k, v]) => [k, v.toArray()] as const);
      return { text, records: await records(out), params };
    };
    const one = await run(1), two = await run(2);
    assert.match(two.text, /\[rank0\]: step 3\/3 /);
    assert.doesNotMatch(two.text, /\[rank1\]: (step|validation|wrote)/, "rank 1 prints nothing");
    // The whole batch's VJPs: each process did half of them (the same count twice would be the whole batch each).
    assert.deepEqual(two.records.map((r) => r.vjps), one.records.map((r) => r.vjps), `${grad}: VJPs`);
    const losses = (rs: typeof one.records) => rs.map((r) => [r.loss, r.valLoss ?? 0]).flat();
    assertClose(losses(two.records), losses(one.records), { rtol: 1e-12 }, `${grad}: losses`);
    assert.deepEqual(two.params.map(([k]) => k), one.params.map(([k]) => k));
    two.params.forEach(([k, v], i) => assertClose(v, one.params[i][1], { rtol: 1e-12, scale: "max" }, `${grad}: ${k}`));
  }
  const odd = await runScript("train_ssm_lm.ts", [...args, "--batch=3", "--nproc=2"], true);
  assert.match(odd, /3 items do not split equally over 2 ranks; use a batch divisible by 2/);
});

// examples/train_ssm_lm.ts run as a user runs it: an interrupted and resumed run gives the losses
// of an uninterrupted one bit for bit; --grad reaches the gradient (adjoint-exact trains as backprop
// does, in float64; the paper's form does not); the model folder it writes loads back.

import assert from "node:assert/strict";
import { lm, nn } from "../mod.ts";

const script = new URL("../examples/train_ssm_lm.ts", import.meta.url).pathname;

async function run(args: string[], expectFailure = false): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { PATCHWORK_BACKEND: "cpu", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.success, !expectFailure, `train_ssm_lm.ts ${args.join(" ")}:\n${text}`);
  return text;
}

async function records(dir: string): Promise<{ step: number; loss: number; valLoss?: number; vjps: number }[]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

async function textFile(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const words = "the quick brown fox jumps over the lazy dog while a cat sleeps on the warm mat".split(" ");
  const lines = Array.from({ length: 60 }, (_, i) => words.slice(i % 7).concat(words.slice(0, i % 7)).join(" "));
  await Deno.writeTextFile(`${dir}/text.txt`, lines.join("\n"));
  return `${dir}/text.txt`;
}

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
  const args = [...common(await textFile()), "--grad=truncated", "--grad-accum=2", "--steps=6"];
  const whole = await Deno.makeTempDir();
  const text = await run([...args, `--out=${whole}`]);
  assert.match(text, /truncated, T̄ = 4;/); // the default window, T/8
  assert.match(text, /step 6\/6 {2}loss .* VJPs .* tok\/s .* s\/step {2}mem [\d.]+\/[\d.]+ MiB/);
  assert.match(text, /validation loss [\d.]+ vs the unigram model's [\d.]+ nats\/token/);
  const parts = await Deno.makeTempDir();
  await run([...args, "--max-seconds=0.001", `--out=${parts}`]); // stops after one step
  await run([...args, "--checkpoint-every=2", "--resume", `--out=${parts}`]);
  const a = await records(whole), b = await records(parts);
  assert.deepEqual(b.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(b.map((r) => r.loss), a.map((r) => r.loss), "training losses");
  const evaluated = a.filter((r) => r.valLoss !== undefined).map((r) => r.step);
  assert.deepEqual(evaluated, [2, 4, 6]);
  assert.deepEqual(evaluated.map((s) => b[s - 1].valLoss), evaluated.map((s) => a[s - 1].valLoss), "validation losses");
  // Per step: 2 micro-batches × 2 sequences × 2 layers × (2·Σ_{d<4}(32 − d) through 𝒜 and ℬ + 32 through 𝒞).
  assert.deepEqual(a.map((r) => r.vjps), a.map(() => 8 * (2 * (32 + 31 + 30 + 29) + 32)));
  for (const f of ["report.html", "tensorboard", "checkpoints/latest.json"]) await Deno.stat(`${parts}/${f}`);
  // The model folder holds the trained weights: those of the last checkpoint.
  const model = await lm.loadSSM(`${whole}/model`);
  const latest = JSON.parse(await Deno.readTextFile(`${whole}/checkpoints/latest.json`));
  const { tensors } = await nn.loadSafetensors(`${whole}/checkpoints/${latest.path}/model.safetensors`);
  for (const [name, value] of model.stateDict()) {
    assert.deepEqual(value.toArray(), tensors.get(name)!.toArray(), name);
  }
});

Deno.test("train_ssm_lm.ts --grad: adjoint-exact trains as backprop does (float64); the paper's form does not", async () => {
  const args = [...common(await textFile()), "--dtype=float64", "--steps=4"];
  const losses = async (grad: string) => {
    const out = await Deno.makeTempDir();
    await run([...args, `--grad=${grad}`, `--out=${out}`]);
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
  const text = await run(["--grad=backprop", "--window=4", "--steps=1"], true);
  assert.match(text, /--window applies to --grad truncated or adjoint, not backprop/);
});

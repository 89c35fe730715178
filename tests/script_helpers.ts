// Shared by the tests that run the language-model training scripts as a user runs them.

import assert from "node:assert/strict";

/** A metrics.jsonl record of a training run. */
export interface StepRecord {
  step: number;
  loss: number;
  valLoss?: number;
  [key: string]: number | undefined;
}

/** Runs examples/`name` on the CPU; throws with its output unless it succeeds (or fails, when expected). */
export async function runScript(name: string, args: string[], expectFailure = false): Promise<string> {
  const script = new URL(`../examples/${name}`, import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { PATCHWORK_BACKEND: "cpu", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.success, !expectFailure, `${name} ${args.join(" ")}:\n${text}`);
  return text;
}

/** The records of a run's metrics.jsonl in `dir`. */
export async function records(dir: string): Promise<StepRecord[]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

/** A text file of `lines` rotations of one sentence. */
export async function textFile(lines: number): Promise<string> {
  const dir = await Deno.makeTempDir();
  const words = "the quick brown fox jumps over the lazy dog while a cat sleeps on the warm mat".split(" ");
  const text = Array.from({ length: lines }, (_, i) => words.slice(i % 7).concat(words.slice(0, i % 7)).join(" "));
  await Deno.writeTextFile(`${dir}/text.txt`, text.join("\n"));
  return `${dir}/text.txt`;
}

/**
 * Runs `name` for 6 steps (evaluating every 2) uninterrupted, then again stopped after one step and
 * resumed with checkpoints every 2 steps, and asserts that both give the same training and
 * validation losses bit for bit. Returns the uninterrupted run's output, folder and records.
 */
export async function assertResumeExact(
  name: string,
  args: string[],
): Promise<{ text: string; whole: string; records: StepRecord[] }> {
  const whole = await Deno.makeTempDir();
  const text = await runScript(name, [...args, "--steps=6", `--out=${whole}`]);
  const parts = await Deno.makeTempDir();
  await runScript(name, [...args, "--steps=6", "--max-seconds=0.001", `--out=${parts}`]); // stops after one step
  await runScript(name, [...args, "--steps=6", "--checkpoint-every=2", "--resume", `--out=${parts}`]);
  const a = await records(whole), b = await records(parts);
  assert.deepEqual(b.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(b.map((r) => r.loss), a.map((r) => r.loss), "training losses");
  // The stopped run also evaluated at its last step (1); the evaluations of both runs agree.
  const evaluated = a.filter((r) => r.valLoss !== undefined).map((r) => r.step);
  assert.deepEqual(evaluated, [2, 4, 6]);
  assert.deepEqual(evaluated.map((s) => b[s - 1].valLoss), evaluated.map((s) => a[s - 1].valLoss), "validation losses");
  for (const f of ["report.html", "tensorboard", "checkpoints/latest.json"]) await Deno.stat(`${parts}/${f}`);
  return { text, whole, records: a };
}

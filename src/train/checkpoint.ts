/**
 * Checkpoints that resume exactly: the model's tensors, the optimiser's state and step, and any
 * number of named host states (the data position, the random streams, the loop's history) that
 * together make a resumed run continue as if it had never stopped.
 *
 * **Layout.** A checkpoint directory holds `ckpt-<step>/model.safetensors`,
 * `ckpt-<step>/optimizer.safetensors`, `ckpt-<step>/state.json` (the step and the named states) and
 * `latest.json`, which names the newest complete checkpoint.
 *
 * **Atomic writes.** A checkpoint is written into `ckpt-<step>.partial/` and renamed into place;
 * `latest.json` is replaced by rename last. A crash at any moment leaves `latest.json` naming a
 * complete checkpoint (the previous one until the new one is whole). Older checkpoints beyond
 * `keep` are removed after that.
 *
 * @example
 * ```ts
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { HostRandom } from "./random.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const net = new MLP([1, 8, 1]);
 * const optimizer = new Adam(net);
 * const rng = new HostRandom(0);
 * await saveCheckpoint("out/run", { step: 10, model: net, optimizer, states: { random: rng } });
 * const found = await loadCheckpoint("out/run", { model: net, optimizer, states: { random: rng } });
 * found?.step; // 10
 * ```
 *
 * @module
 */

import { join } from "node:path";
import type { Module } from "../nn/module.ts";
import { loadSafetensors, saveSafetensors } from "../nn/safetensors.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { ArgumentError } from "../tensor/errors.ts";
import { writeJson } from "./files.ts";

/**
 * A piece of host state saved in every checkpoint and restored on resume: a data loader's
 * position, a random stream, a run's settings (whose `restore` refuses a checkpoint of another
 * run by throwing). `state()` must return plain JSON.
 *
 * @example
 * ```ts
 * import type { Resumable } from "./checkpoint.ts";
 * let position = 0;
 * const cursor: Resumable<{ position: number }> = {
 *   state: () => ({ position }),
 *   restore: (s) => { position = s.position; },
 * };
 * ```
 */
export interface Resumable<S = unknown> {
  /** The state to save (plain JSON). */
  state(): S;
  /** Continues from a saved state (throws when it does not fit). */
  restore(state: S): void;
}

/**
 * What a checkpoint saves and restores: the model's tensors (any module: a whole network, or a
 * module holding only adapters), the optimiser, and named host states.
 *
 * @example
 * ```ts
 * import type { CheckpointParts } from "./checkpoint.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { SGD } from "../optim/mod.ts";
 * const net = new MLP([1, 4, 1]);
 * const parts: CheckpointParts = { model: net, optimizer: new SGD(net, { lr: 0.1 }) };
 * ```
 */
export interface CheckpointParts {
  /** The tensors saved as `model.safetensors` (its `stateDict()`). */
  model: Pick<Module, "stateDict" | "loadStateDict">;
  /** The optimiser (its state and step count). */
  optimizer: Optimizer;
  /** Named host states (default none). */
  states?: Record<string, Resumable>;
}

/**
 * A checkpoint found on disk.
 *
 * @example
 * ```ts
 * import type { CheckpointInfo } from "./checkpoint.ts";
 * const where = (c: CheckpointInfo) => `${c.path} (step ${c.step})`;
 * ```
 */
export interface CheckpointInfo {
  /** Completed steps when it was written. */
  step: number;
  /** Its directory. */
  path: string;
  /** The saved named states. */
  states: Record<string, unknown>;
}

const FORMAT = 1;
const stepName = (step: number) => `ckpt-${String(step).padStart(6, "0")}`;
const CKPT = /^ckpt-(\d+)$/;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readLatest(dir: string): Promise<{ step: number; path: string } | null> {
  const file = join(dir, "latest.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    const latest = JSON.parse(text);
    if (typeof latest?.path !== "string" || !Number.isInteger(latest?.step)) throw new Error("no step and path");
    return latest;
  } catch (e) {
    throw new ArgumentError(
      "loadCheckpoint",
      `${file} is not a checkpoint index (${(e as Error).message}); remove it to start afresh`,
    );
  }
}

/**
 * Writes a checkpoint of step `step` into `dir` (see the module notes) and returns its path.
 * Keeps the newest `keep` checkpoints (default 1) and removes the others, including those of a
 * later step left by an earlier run in the same directory.
 *
 * @example
 * ```ts
 * import { saveCheckpoint } from "./checkpoint.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const net = new MLP([1, 8, 1]);
 * await saveCheckpoint("out/run", { step: 100, model: net, optimizer: new Adam(net), keep: 3 }); // "out/run/ckpt-000100"
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  options: CheckpointParts & { step: number; keep?: number },
): Promise<string> {
  const { step, model, optimizer } = options;
  const keep = options.keep ?? 1;
  if (!Number.isInteger(step) || step < 0) {
    throw new ArgumentError("saveCheckpoint", `step must be an integer ≥ 0, got ${step}`);
  }
  if (!Number.isInteger(keep) || keep < 1) {
    throw new ArgumentError("saveCheckpoint", `keep must be an integer ≥ 1, got ${keep}`);
  }
  const name = stepName(step);
  const path = join(dir, name);
  const partial = `${path}.partial`;
  await Deno.mkdir(dir, { recursive: true });
  if (await exists(partial)) await Deno.remove(partial, { recursive: true });
  await Deno.mkdir(partial);
  const states: Record<string, unknown> = {};
  for (const [key, part] of Object.entries(options.states ?? {})) states[key] = part.state();
  const opt = optimizer.stateDict();
  await saveSafetensors(join(partial, "model.safetensors"), model.stateDict(), { step: String(step) });
  await saveSafetensors(join(partial, "optimizer.safetensors"), opt.tensors, opt.metadata);
  await Deno.writeTextFile(join(partial, "state.json"), JSON.stringify({ format: FORMAT, step, states }));
  const latest = join(dir, "latest.json");
  if (await exists(path)) {
    // Re-writing a step: keep latest.json on a complete checkpoint while the old one goes.
    if ((await readLatest(dir))?.path === name) await writeJson(latest, { step, path: `${name}.partial` });
    await Deno.remove(path, { recursive: true });
  }
  await Deno.rename(partial, path);
  await writeJson(latest, { step, path: name });
  const older: number[] = [];
  for await (const e of Deno.readDir(dir)) {
    const m = e.isDirectory ? CKPT.exec(e.name) : null;
    if (m && e.name !== name) older.push(Number(m[1]));
  }
  const kept = new Set(older.filter((s) => s < step).sort((a, b) => b - a).slice(0, keep - 1));
  for (const s of older) if (!kept.has(s)) await Deno.remove(join(dir, stepName(s)), { recursive: true });
  return path;
}

/**
 * The newest complete checkpoint of `dir` without loading its tensors, or null when there is none.
 *
 * @example
 * ```ts
 * import { findCheckpoint } from "./checkpoint.ts";
 * const found = await findCheckpoint("out/run");
 * found?.states; // the named states saved with it
 * ```
 */
export async function findCheckpoint(dir: string): Promise<CheckpointInfo | null> {
  const latest = await readLatest(dir);
  if (!latest) return null;
  const path = join(dir, latest.path);
  let saved: { format?: number; step: number; states: Record<string, unknown> };
  try {
    saved = JSON.parse(await Deno.readTextFile(join(path, "state.json")));
  } catch (e) {
    throw new ArgumentError(
      "loadCheckpoint",
      `${join(path, "state.json")} cannot be read (${(e as Error).message}); remove ${dir} to start afresh`,
    );
  }
  if (saved.format !== FORMAT || !Number.isInteger(saved.step) || typeof saved.states !== "object") {
    throw new ArgumentError(
      "loadCheckpoint",
      `${path} is not a checkpoint this version writes (format ${saved.format}, expected ${FORMAT}); ` +
        `remove ${dir} to start afresh`,
    );
  }
  return { step: saved.step, path, states: saved.states };
}

/**
 * Restores the newest checkpoint of `dir`: first each named state (so a `restore` that refuses
 * the checkpoint throws before any tensor changes), then the model and the optimiser. Returns the
 * checkpoint, or null when `dir` has none. A state named in `states` but missing from the
 * checkpoint is an error; saved states nobody asks for are ignored.
 *
 * @example
 * ```ts
 * import { loadCheckpoint } from "./checkpoint.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const net = new MLP([1, 8, 1]);
 * const found = await loadCheckpoint("out/run", { model: net, optimizer: new Adam(net) });
 * found?.step; // null when out/run has no checkpoint
 * ```
 */
export async function loadCheckpoint(dir: string, parts: CheckpointParts): Promise<CheckpointInfo | null> {
  const found = await findCheckpoint(dir);
  if (!found) return null;
  for (const [key, part] of Object.entries(parts.states ?? {})) {
    if (!(key in found.states)) {
      throw new ArgumentError(
        "loadCheckpoint",
        `${found.path} has no "${key}" state (it holds ${
          Object.keys(found.states).join(", ") || "none"
        }); it was written by another kind of run: use another checkpoint directory`,
      );
    }
    part.restore(found.states[key]);
  }
  const m = await loadSafetensors(join(found.path, "model.safetensors"));
  const o = await loadSafetensors(join(found.path, "optimizer.safetensors"));
  try {
    parts.model.loadStateDict(m.tensors);
    parts.optimizer.loadStateDict(o);
  } finally {
    for (const t of [...m.tensors.values(), ...o.tensors.values()]) t.dispose();
  }
  return found;
}

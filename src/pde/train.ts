/**
 * Training and evaluation of the PDE methods (`baselines.ts`): a seeded loop with progress lines,
 * checkpoints that resume bit-identically, a stop on NaN/Inf or divergence that keeps the last good
 * checkpoint, and the metrics of the comparison (test relative L2 error, residual norm, training
 * time per step, inference time).
 *
 * **Determinism.** Every random choice is a pure function of the seed and the step: the batch of
 * step s comes from a seeded permutation of the epoch it falls in, and the experts' sampled points
 * from a counter-based stream keyed by (seed, step, expert). So a checkpoint holds only the
 * parameters, the optimiser state, the step and the history, and `resume` continues exactly as if
 * the run had not stopped.
 *
 * **Checkpoints** live in a directory: `ckpt-<step>/model.safetensors`,
 * `ckpt-<step>/optimizer.safetensors` and `ckpt-<step>/state.json` (step, seed, method, history,
 * the random streams' state), and `latest.json` naming the newest complete one (written last, by
 * rename, so a crash mid-write never leaves a broken checkpoint current). Older ones are removed.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, train } from "./mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const heat = new Heat1D();
 * const data = heat.generateDataset({ n: 8, nx: 32, nt: 17, dtype: "float64" });
 * const method = createMethod("moe", { problem: heat, grid: data.grid, basis: 8, experts: [1, 2], points: 64 });
 * const result = await train({ method, optimizer: new Adam(method.model, { lr: 1e-3 }), train: data, steps: 20 });
 * result.history.at(-1)?.loss;
 * ```
 *
 * @module
 */

import { dirname, join } from "node:path";
import { loadSafetensors, saveSafetensors } from "../nn/safetensors.ts";
import { clipGradNorm } from "../optim/clip.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import {
  ArgumentError,
  concat,
  memory,
  noGrad,
  NonFiniteError,
  ShapeError,
  type Tensor,
  tensor,
  tidy,
} from "../tensor/mod.ts";
import type { PdeBatch, StepStats, TrainingMethod } from "./baselines.ts";

/**
 * Training data: initial conditions `[n, ...space]` and solutions `[n, nt, ...space]`.
 *
 * @example
 * ```ts
 * import { Heat1D, type TrainingData } from "./mod.ts";
 * const data: TrainingData = new Heat1D().generateDataset({ n: 8, nx: 17, nt: 9 });
 * ```
 */
export interface TrainingData {
  /** Initial conditions. */
  readonly u0: Tensor;
  /** Reference solutions. */
  readonly u: Tensor;
}

/**
 * Options of {@link train}.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, type TrainOptions } from "./mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const heat = new Heat1D();
 * const train = heat.generateDataset({ n: 8, nx: 17, nt: 9 });
 * const method = createMethod("hard", { problem: heat, grid: train.grid, basis: 8, points: 32 });
 * const options: TrainOptions = {
 *   method,
 *   optimizer: new Adam(method.model, { lr: 1e-3 }),
 *   train,
 *   steps: 100,
 *   checkpointDir: "out/heat",
 *   checkpointEvery: 25,
 *   resume: true,
 * };
 * ```
 */
export interface TrainOptions {
  /** The method (its `model` is trained). */
  method: TrainingMethod;
  /** The optimiser over `method.model` (its learning-rate schedule runs on its own step count). */
  optimizer: Optimizer;
  /** Training data. */
  train: TrainingData;
  /** Test data for the error curve (optional). */
  test?: TrainingData;
  /** Total optimiser steps (a resumed run continues up to this count). */
  steps: number;
  /** Samples per step (default 4, at most the training set). */
  batchSize?: number;
  /** Seed of the batch order (default 0; the method holds its own point seed). */
  seed?: number;
  /** Print a progress line every this many steps (default 10; 0: none). */
  logEvery?: number;
  /** Evaluate the test error every this many steps (default: 5 logs; 0: only at the end). */
  evalEvery?: number;
  /** Test samples used for the curve (default all, at most 16). */
  evalSamples?: number;
  /** Directory of checkpoints (none without it). */
  checkpointDir?: string;
  /**
   * A wall-clock budget in seconds for this call's steps: after the step that reaches it the run
   * ends as at its last step (progress line, test error, checkpoint) and reports
   * `stoppedBy: "time"`. The learning-rate schedule still follows `steps`. Default: none.
   */
  maxSeconds?: number;
  /** Write a checkpoint every this many steps (default 0: only at the end). */
  checkpointEvery?: number;
  /** Continue from the newest checkpoint in `checkpointDir` when there is one (default false). */
  resume?: boolean;
  /** Clip the gradients' global norm (default 1, as the reference; 0: no clipping). */
  clipGradNorm?: number;
  /** Stop when the loss exceeds this multiple of the best loss so far (default 1e6). */
  divergenceFactor?: number;
  /** Where progress lines go (default `console.log`). */
  log?: (line: string) => void;
  /** Called after every step with its statistics (for tests and custom logging). */
  onStep?: (step: number, stats: StepStats) => void;
}

/**
 * One logged point of the training history (means over the steps since the previous one).
 *
 * @example
 * ```ts
 * import type { HistoryRecord } from "./train.ts";
 * const errors = (h: HistoryRecord[]) => h.filter((r) => r.testError !== undefined).map((r) => [r.step, r.testError]);
 * ```
 */
export interface HistoryRecord {
  /** Completed optimiser steps. */
  step: number;
  /** Training loss. */
  loss: number;
  /** RMS PDE residual of the training batches' predictions. */
  residual: number;
  /** Mean solver iterations (hard-constraint methods). */
  solverIterations?: number;
  /** Share of expert solves that converged. */
  convergedShare?: number;
  /** RMS mismatch of neighbouring experts' fields at their interfaces (a loss with an interface term). */
  interface?: number;
  /** Points per second. */
  pointsPerSecond: number;
  /** Seconds per step. */
  secondsPerStep: number;
  /** Backend memory in use, MiB. */
  memoryMiB: number;
  /** Peak backend memory, MiB. */
  peakMiB: number;
  /** Test relative L2 error (when evaluated at this step). */
  testError?: number;
}

/**
 * What {@link train} returns.
 *
 * @example
 * ```ts
 * import type { TrainResult } from "./train.ts";
 * const summary = (r: TrainResult) => `${r.step} steps, ${r.secondsPerStep.toFixed(3)} s/step`;
 * ```
 */
export interface TrainResult {
  /** The history (restored and continued when resumed). */
  history: HistoryRecord[];
  /** Completed optimiser steps. */
  step: number;
  /** The step a resumed run started from (null for a fresh run). */
  resumedFrom: number | null;
  /** Wall-clock seconds of this call's steps. */
  seconds: number;
  /** Mean seconds per step of this call. */
  secondsPerStep: number;
  /** Path of the last checkpoint written (null without a directory). */
  checkpoint: string | null;
  /** Why the run ended: all `steps` done, or the `maxSeconds` budget reached. */
  stoppedBy: "steps" | "time";
}

/**
 * A run stopped because its loss or gradient became NaN/Inf or diverged. Parameters are those
 * after the last good step (no update was applied), and the last good checkpoint is kept.
 *
 * @example
 * ```ts
 * import { TrainingDivergedError } from "./train.ts";
 * const e = new TrainingDivergedError(17, "out/run/ckpt-000015", "the loss is NaN");
 * e.step; // 17
 * ```
 */
export class TrainingDivergedError extends NonFiniteError {
  /** The step (1-based) that failed. */
  readonly step: number;
  /** The last good checkpoint, or null. */
  readonly checkpoint: string | null;
  /** Builds the message from the step, checkpoint and cause. */
  constructor(step: number, checkpoint: string | null, cause: string) {
    super(
      "train",
      `step ${step}: ${cause}; training stopped. ${
        checkpoint ? `The last good checkpoint is ${checkpoint}` : "No checkpoint was written (no checkpointDir)"
      }; parameters are those after step ${step - 1}.`,
    );
    this.step = step;
    this.checkpoint = checkpoint;
  }
}

/**
 * Checks that a data tensor holds no NaN or Inf, naming the first bad sample.
 *
 * @example
 * ```ts
 * import { checkFinite } from "./mod.ts";
 * import { tensor } from "../tensor/mod.ts";
 * checkFinite("u0", tensor([[1, 2], [3, 4]])); // fine
 * // checkFinite("u0", tensor([[1, NaN]])) throws NonFiniteError: "u0 has NaN or Inf in sample 0 …"
 * ```
 */
export function checkFinite(name: string, t: Tensor): void {
  const bad = noGrad(() =>
    tidy(() => {
      const flat = t.reshape([t.shape[0] ?? 1, -1]);
      return flat.sub(flat).ne(0).max(-1).toTypedArray();
    })
  );
  const idx: number[] = [];
  bad.forEach((v, i) => v > 0 && idx.push(i));
  if (idx.length) {
    throw new NonFiniteError(
      "train",
      `${name} has NaN or Inf in sample${idx.length > 1 ? "s" : ""} ${idx.slice(0, 8).join(", ")}${
        idx.length > 8 ? ", …" : ""
      } (of ${t.shape[0]}); fix or drop them before training`,
    );
  }
}

function checkData(method: TrainingMethod, name: string, d: TrainingData, finite = true): void {
  const grid = method.grid;
  if (!d || !d.u0 || !d.u) throw new ArgumentError("train", `${name} data needs u0 and u tensors`);
  const space = grid.spaceShape;
  const n = d.u0.shape[0];
  if (d.u0.ndim !== space.length + 1 || d.u0.shape.slice(1).some((v, i) => v !== space[i])) {
    throw new ShapeError(
      "train",
      `${name}.u0 has shape [${d.u0.shape}] but the grid's space axes are [${space}] (expected [n, ${space}])`,
    );
  }
  if (
    d.u.ndim !== grid.shape.length + 1 || d.u.shape[0] !== n || d.u.shape.slice(1).some((v, i) => v !== grid.shape[i])
  ) {
    throw new ShapeError(
      "train",
      `${name}.u has shape [${d.u.shape}] but the grid is [${grid.shape}] with ${n} samples (expected [${n}, ${grid.shape}])`,
    );
  }
  if (finite) {
    checkFinite(`${name}.u0`, d.u0);
    checkFinite(`${name}.u`, d.u);
  }
}

/** A small seeded generator (mulberry32) for the batch order. */
function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The training-set indices of step `step` (0-based): consecutive slices of a seeded permutation
 * per epoch, a pure function of its arguments.
 *
 * @example
 * ```ts
 * import { batchIndices } from "./train.ts";
 * batchIndices(10, 4, 0, 0).length; // 4
 * ```
 */
export function batchIndices(n: number, batchSize: number, seed: number, step: number): number[] {
  const perms = new Map<number, number[]>();
  const perm = (epoch: number) => {
    let p = perms.get(epoch);
    if (!p) {
      const rnd = mulberry(Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b));
      p = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [p[i], p[j]] = [p[j], p[i]];
      }
      perms.set(epoch, p);
    }
    return p;
  };
  const out: number[] = [];
  for (let i = 0; i < batchSize; i++) {
    const pos = step * batchSize + i;
    out.push(perm(Math.floor(pos / n))[pos % n]);
  }
  return out;
}

function batchOf(d: TrainingData, idx: readonly number[]): PdeBatch {
  const t = tensor(Int32Array.from(idx), { dtype: "int32", backend: d.u0.backend });
  return { u0: d.u0.indexSelect(0, t), u: d.u.indexSelect(0, t) };
}

const MiB = 1024 * 1024;

/**
 * The state saved beside the tensors of a checkpoint.
 *
 * @example
 * ```ts
 * import type { CheckpointState } from "./train.ts";
 * const where = (s: CheckpointState) => `step ${s.step} of a ${s.method} run (seed ${s.rng.seed})`;
 * ```
 */
export interface CheckpointState {
  /** Completed steps. */
  step: number;
  /** The batch-order seed. */
  seed: number;
  /** The method kind. */
  method: string;
  /** Batch size. */
  batchSize: number;
  /** The best loss so far (divergence test). */
  bestLoss: number;
  /** The random streams: counter-based, keyed by seed and step. */
  rng: { kind: "counter"; seed: number; step: number };
  /** The history so far. */
  history: HistoryRecord[];
}

/**
 * Writes a checkpoint of the model, the optimiser and `state` into `dir` (see the module notes)
 * and returns its path.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, saveCheckpoint } from "./mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const heat = new Heat1D();
 * const method = createMethod("soft", { problem: heat, grid: heat.grid({ nt: 9, nx: 17 }) });
 * const optimizer = new Adam(method.model);
 * const state = { step: 0, seed: 0, method: "soft", batchSize: 4, bestLoss: Infinity, history: [] };
 * await saveCheckpoint("out/run", method.model, optimizer, { ...state, rng: { kind: "counter", seed: 0, step: 0 } });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  model: TrainingMethod["model"],
  optimizer: Optimizer,
  state: CheckpointState,
): Promise<string> {
  const name = `ckpt-${String(state.step).padStart(6, "0")}`;
  const path = join(dir, name);
  await Deno.mkdir(path, { recursive: true });
  const opt = optimizer.stateDict();
  await saveSafetensors(join(path, "model.safetensors"), model.stateDict(), { step: String(state.step) });
  await saveSafetensors(join(path, "optimizer.safetensors"), opt.tensors, opt.metadata);
  await Deno.writeTextFile(join(path, "state.json"), JSON.stringify(state));
  const latest = join(dir, "latest.json");
  await Deno.writeTextFile(`${latest}.tmp`, JSON.stringify({ step: state.step, path: name }));
  await Deno.rename(`${latest}.tmp`, latest);
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory && e.name.startsWith("ckpt-") && e.name !== name) {
      await Deno.remove(join(dir, e.name), { recursive: true });
    }
  }
  return path;
}

/**
 * Restores the newest checkpoint of `dir` into the model and optimiser; returns its state, or
 * null when there is none.
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, loadCheckpoint } from "./mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const heat = new Heat1D();
 * const method = createMethod("soft", { problem: heat, grid: heat.grid({ nt: 9, nx: 17 }) });
 * const optimizer = new Adam(method.model);
 * const state = await loadCheckpoint("out/run", method.model, optimizer); // null when there is none
 * state?.step;
 * ```
 */
export async function loadCheckpoint(
  dir: string,
  model: TrainingMethod["model"],
  optimizer: Optimizer,
): Promise<(CheckpointState & { path: string }) | null> {
  let latest: { step: number; path: string };
  try {
    latest = JSON.parse(await Deno.readTextFile(join(dir, "latest.json")));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new ArgumentError(
      "loadCheckpoint",
      `${join(dir, "latest.json")} is not readable JSON: ${(e as Error).message}`,
    );
  }
  const path = join(dir, latest.path);
  const state = JSON.parse(await Deno.readTextFile(join(path, "state.json"))) as CheckpointState;
  const m = await loadSafetensors(join(path, "model.safetensors"));
  model.loadStateDict(m.tensors);
  const o = await loadSafetensors(join(path, "optimizer.safetensors"));
  optimizer.loadStateDict(o);
  for (const t of [...m.tensors.values(), ...o.tensors.values()]) t.dispose();
  return { ...state, path };
}

/**
 * Relative L2 errors and residuals of a method on a data set.
 *
 * @example
 * ```ts
 * import type { EvaluationMetrics } from "./train.ts";
 * const line = (m: EvaluationMetrics) => `rel. L2 ${m.relL2.mean} ± ${m.relL2.std}, residual ${m.residual}`;
 * ```
 */
export interface EvaluationMetrics {
  /** Samples evaluated. */
  samples: number;
  /** Relative L2 error ‖u − u_ref‖ / ‖u_ref‖ per sample, and its mean and standard deviation. */
  relL2: { mean: number; std: number; perSample: number[] };
  /** Mean RMS PDE residual of the predictions (finite differences over the grid). */
  residual: number;
  /** Mean RMS PDE residual of the reference solutions (the discretisation floor). */
  referenceResidual: number;
  /** Mean seconds per inference batch, and the batch size. */
  inference: { secondsPerBatch: number; secondsPerSample: number; batchSize: number };
  /** Expert solves at inference (hard-constraint methods). */
  solve?: { problems: number; converged: number; meanIterations: number };
  /** The first `keep` predictions `[keep, nt, ...space]`. */
  predictions: Tensor | null;
}

/**
 * Evaluates a method on data: per-sample relative L2 error, residual norms and inference time.
 *
 * @example
 * ```ts
 * import { createMethod, evaluate, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const test = heat.generateDataset({ n: 4, nx: 17, nt: 9, seed: 1 });
 * const method = createMethod("data", { problem: heat, grid: test.grid });
 * const m = evaluate(method, test, { batchSize: 2, keep: 1 });
 * m.relL2.mean; // ≈ 1 before training
 * m.predictions!.shape; // [1, 9, 17]
 * ```
 */
export function evaluate(
  method: TrainingMethod,
  data: TrainingData,
  options: { batchSize?: number; samples?: number; keep?: number; checkFinite?: boolean } = {},
): EvaluationMetrics {
  checkData(method, "test", data, options.checkFinite ?? true);
  const n = Math.min(options.samples ?? data.u0.shape[0], data.u0.shape[0]);
  const bs = Math.max(1, Math.min(options.batchSize ?? 4, n));
  const keep = Math.min(options.keep ?? 0, n);
  const per: number[] = [];
  let residual = 0;
  let refResidual = 0;
  let seconds = 0;
  let batches = 0;
  let problems = 0;
  let converged = 0;
  let iterations = 0;
  const kept: Tensor[] = [];
  const grid = method.grid;
  for (let i = 0; i < n; i += bs) {
    const len = Math.min(bs, n - i);
    const idx = Array.from({ length: len }, (_, j) => i + j);
    noGrad(() =>
      tidy(() => {
        const b = batchOf(data, idx);
        const t0 = performance.now();
        const p = method.predict(b.u0);
        const u = p.u;
        u.toTypedArray(); // synchronise before stopping the clock
        seconds += (performance.now() - t0) / 1000;
        batches++;
        if (p.solve) {
          problems += p.solve.problems;
          converged += p.solve.converged;
          iterations += p.solve.meanIterations * p.solve.problems;
        }
        const truth = b.u.dtype === u.dtype ? b.u : b.u.cast(u.dtype);
        const axes = Array.from({ length: u.ndim - 1 }, (_, j) => j + 1);
        const rel = u.sub(truth).square().sum(axes).div(truth.square().sum(axes)).sqrt().toTypedArray();
        per.push(...Array.from(rel));
        residual += method.problem.residual(u, grid).square().mean(axes).sqrt().sum().item();
        refResidual += method.problem.residual(truth, grid).square().mean(axes).sqrt().sum().item();
        if (kept.length < keep) kept.push(u.narrow(0, 0, Math.min(len, keep - kept.length)).keep());
      })
    );
  }
  const mean = per.reduce((s, v) => s + v, 0) / per.length;
  const std = Math.sqrt(per.reduce((s, v) => s + (v - mean) ** 2, 0) / per.length);
  let predictions: Tensor | null = null;
  if (kept.length) {
    predictions = kept.length === 1 ? kept[0] : noGrad(() => concat(kept, 0));
  }
  return {
    samples: n,
    relL2: { mean, std, perSample: per },
    residual: residual / n,
    referenceResidual: refResidual / n,
    inference: { secondsPerBatch: seconds / batches, secondsPerSample: seconds / n, batchSize: bs },
    solve: problems ? { problems, converged, meanIterations: iterations / problems } : undefined,
    predictions,
  };
}

function fmt(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toExponential(digits - 1) : String(v);
}

function rate(v: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(0);
}

/**
 * Trains `method.model` with `optimizer` for `steps` steps (see the module notes): seeded batches,
 * progress lines (step, loss, residual, solver iterations, points/s, memory), test-error points
 * for the history, checkpoints, exact resume, and a {@link TrainingDivergedError} when the loss or
 * gradient turns NaN/Inf or the loss diverges (no update is applied at that step; the last good
 * checkpoint stays current).
 *
 * @example
 * ```ts
 * import { createMethod, Heat1D, train } from "./mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const heat = new Heat1D();
 * const data = heat.generateDataset({ n: 8, nx: 32, nt: 17, dtype: "float64" });
 * const method = createMethod("hard", { problem: heat, grid: data.grid, basis: 8, points: 64 });
 * const opt = new Adam(method.model, { lr: 1e-3 });
 * await train({ method, optimizer: opt, train: data, steps: 10, checkpointDir: "out/heat", checkpointEvery: 5 });
 * ```
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const op = "train";
  const { method, optimizer } = options;
  const steps = options.steps;
  if (!Number.isInteger(steps) || steps < 0) throw new ArgumentError(op, `steps must be an integer ≥ 0, got ${steps}`);
  checkData(method, "train", options.train);
  if (options.test) checkData(method, "test", options.test);
  const n = options.train.u0.shape[0];
  const batchSize = options.batchSize ?? Math.min(4, n);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > n) {
    throw new ArgumentError(op, `batchSize must be an integer from 1 to the ${n} training samples, got ${batchSize}`);
  }
  const seed = options.seed ?? 0;
  const logEvery = options.logEvery ?? 10;
  const evalEvery = options.evalEvery ?? (logEvery > 0 ? logEvery * 5 : 0);
  const ckptEvery = options.checkpointEvery ?? 0;
  const clip = options.clipGradNorm ?? 1;
  const divergence = options.divergenceFactor ?? 1e6;
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = options.checkpointDir ?? null;
  const model = method.model;

  let step = 0;
  let history: HistoryRecord[] = [];
  let bestLoss = Infinity;
  let resumedFrom: number | null = null;
  let checkpoint: string | null = null;
  if (options.resume) {
    if (!dir) throw new ArgumentError(op, "resume needs a checkpointDir");
    const state = await loadCheckpoint(dir, model, optimizer);
    if (state) {
      if (state.method !== method.kind) {
        throw new ArgumentError(
          op,
          `the checkpoint in ${dir} was written by method "${state.method}", not "${method.kind}"`,
        );
      }
      if (state.seed !== seed || state.batchSize !== batchSize) {
        throw new ArgumentError(
          op,
          `the checkpoint in ${dir} used seed ${state.seed} and batch size ${state.batchSize}; resume with the same ` +
            `(got seed ${seed}, batch size ${batchSize})`,
        );
      }
      step = state.step;
      history = state.history;
      bestLoss = state.bestLoss ?? Infinity;
      resumedFrom = step;
      checkpoint = state.path;
      log(`resumed from ${state.path} at step ${step}`);
    } else {
      log(`no checkpoint in ${dir}; starting from step 0`);
    }
  }
  const save = async () => {
    if (!dir) return;
    checkpoint = await saveCheckpoint(dir, model, optimizer, {
      step,
      seed,
      method: method.kind,
      batchSize,
      bestLoss,
      rng: { kind: "counter", seed, step },
      history,
    });
  };
  const testError = () => {
    if (!options.test) return undefined;
    const k = Math.min(options.evalSamples ?? 16, options.test.u0.shape[0]);
    return evaluate(method, options.test, { batchSize, samples: k, checkFinite: false }).relL2.mean;
  };

  const empty = {
    steps: 0,
    loss: 0,
    residual: 0,
    meet: 0,
    meetSteps: 0,
    iters: 0,
    conv: 0,
    probs: 0,
    points: 0,
    seconds: 0,
  };
  const window = { ...empty };
  const start = step;
  const budget = options.maxSeconds ?? Infinity;
  if (!(budget > 0)) throw new ArgumentError(op, `maxSeconds must be a positive number, got ${budget}`);
  const began = performance.now();
  let stoppedBy: "steps" | "time" = "steps";
  let seconds = 0;
  for (; step < steps;) {
    const s = step; // 0-based index of this step
    const tStep = performance.now();
    let stats: StepStats;
    try {
      stats = tidy(() => {
        optimizer.zeroGrad();
        const batch = batchOf(options.train, batchIndices(n, batchSize, seed, s));
        const st = method.lossAndGrad(batch, s);
        if (!Number.isFinite(st.loss)) throw new NonFiniteError(op, `the loss is ${st.loss}`);
        const gnorm = clipGradNorm(model, clip > 0 ? clip : Infinity);
        if (!Number.isFinite(gnorm)) throw new NonFiniteError(op, `the gradient norm is ${gnorm}`);
        if (st.loss > divergence * bestLoss) {
          throw new NonFiniteError(
            op,
            `the loss ${fmt(st.loss)} exceeds ${divergence}× the best loss ${fmt(bestLoss)} (the run diverged)`,
          );
        }
        optimizer.step();
        return st;
      });
    } catch (e) {
      optimizer.zeroGrad();
      if (e instanceof NonFiniteError) {
        const cause = e.message.replace(/^[^:]*: /, "");
        throw new TrainingDivergedError(s + 1, checkpoint, cause);
      }
      throw e;
    }
    step = s + 1;
    bestLoss = Math.min(bestLoss, stats.loss);
    options.onStep?.(step, stats);
    const dt = (performance.now() - tStep) / 1000;
    seconds += dt;
    window.steps++;
    window.loss += stats.loss;
    window.residual += stats.residual;
    if (stats.interface !== undefined) {
      window.meet += stats.interface;
      window.meetSteps++;
    }
    window.points += stats.points;
    window.seconds += dt;
    if (stats.problems) {
      window.iters += (stats.solverIterations ?? 0) * stats.problems;
      window.conv += stats.converged ?? 0;
      window.probs += stats.problems;
    }
    if (step < steps && (performance.now() - began) / 1000 >= budget) stoppedBy = "time";
    const last = step === steps || stoppedBy === "time";
    const logNow = (logEvery > 0 && step % logEvery === 0) || last;
    const evalNow = options.test && ((evalEvery > 0 && step % evalEvery === 0) || last);
    if (logNow || evalNow) {
      const mem = memory();
      const rec: HistoryRecord = {
        step,
        loss: window.loss / window.steps,
        residual: window.residual / window.steps,
        pointsPerSecond: window.points / window.seconds,
        secondsPerStep: window.seconds / window.steps,
        memoryMiB: mem.current / MiB,
        peakMiB: mem.peak / MiB,
      };
      if (window.probs) {
        rec.solverIterations = window.iters / window.probs;
        rec.convergedShare = window.conv / window.probs;
      }
      if (window.meetSteps) rec.interface = window.meet / window.meetSteps;
      if (evalNow) rec.testError = testError();
      history.push(rec);
      if (logNow) {
        const parts = [
          `step ${String(step).padStart(String(steps).length)}/${steps}`,
          `loss ${fmt(rec.loss)}`,
          `residual ${fmt(rec.residual)}`,
        ];
        if (rec.interface !== undefined) parts.push(`interface ${fmt(rec.interface)}`);
        if (rec.solverIterations !== undefined) {
          parts.push(`LM iters ${rec.solverIterations.toFixed(1)}`);
          parts.push(`converged ${window.conv}/${window.probs}`);
        }
        if (rec.testError !== undefined) parts.push(`test rel. L2 ${fmt(rec.testError)}`);
        parts.push(`${rate(rec.pointsPerSecond)} pts/s`);
        parts.push(`${rec.secondsPerStep.toFixed(3)} s/step`);
        parts.push(`mem ${rec.memoryMiB.toFixed(1)}/${rec.peakMiB.toFixed(1)} MiB`);
        log(parts.join("  "));
        if (window.probs && window.conv < window.probs) {
          log(
            `  note: ${window.probs - window.conv} of ${window.probs} expert solves stopped before converging ` +
              "(iteration limit); their coefficients are the last iterate",
          );
        }
      }
      Object.assign(window, empty);
    }
    if (dir && ((ckptEvery > 0 && step % ckptEvery === 0) || last)) await save();
    if (stoppedBy === "time") {
      log(`time budget of ${budget} s reached after ${step - start} steps (step ${step} of ${steps})`);
      break;
    }
  }
  return {
    history,
    step,
    resumedFrom,
    seconds,
    secondsPerStep: step > start ? seconds / (step - start) : 0,
    checkpoint,
    stoppedBy,
  };
}

/**
 * Parsed command-line flags: `--name value`, `--name=value`, bare `--flag` (true), `--no-flag` (false).
 *
 * @example
 * ```ts
 * import { type Flags, parseFlags } from "./train.ts";
 * const flags: Flags = parseFlags(["--steps", "10"]);
 * ```
 */
export type Flags = Record<string, string | boolean>;

/**
 * A tiny command-line flag parser for the example scripts. Unknown flags raise an ArgumentError
 * listing the known ones (with `known`).
 *
 * @example
 * ```ts
 * import { parseFlags } from "./train.ts";
 * parseFlags(["--method", "moe", "--experts=1x2", "--resume"]); // { method: "moe", experts: "1x2", resume: true }
 * ```
 */
export function parseFlags(args: readonly string[], known?: readonly string[]): Flags {
  const out: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) {
      throw new ArgumentError("flags", `unexpected argument "${a}" (flags look like --name value)`);
    }
    let name = a.slice(2);
    let value: string | boolean;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else if (name.startsWith("no-")) {
      name = name.slice(3);
      value = false;
    } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
      value = args[++i];
    } else {
      value = true;
    }
    if (known && !known.includes(name)) {
      throw new ArgumentError("flags", `unknown flag --${name} (known: ${known.map((k) => `--${k}`).join(", ")})`);
    }
    out[name] = value;
  }
  return out;
}

/**
 * Reads a numeric flag (with a default), checking it.
 *
 * @example
 * ```ts
 * import { numberFlag } from "./train.ts";
 * numberFlag({ steps: "200" }, "steps", 100); // 200
 * ```
 */
export function numberFlag(
  flags: Flags,
  name: string,
  fallback: number,
  options: { integer?: boolean; min?: number } = {},
): number {
  const v = flags[name];
  if (v === undefined) return fallback;
  const x = typeof v === "boolean" ? NaN : Number(v);
  if (
    !Number.isFinite(x) || (options.integer && !Number.isInteger(x)) || (options.min !== undefined && x < options.min)
  ) {
    throw new ArgumentError(
      "flags",
      `--${name} must be ${options.integer ? "an integer" : "a number"}${
        options.min !== undefined ? ` ≥ ${options.min}` : ""
      }, got ${JSON.stringify(v)}`,
    );
  }
  return x;
}

/**
 * Writes JSON to `path` (creating the directory; via a temporary file and a rename).
 *
 * @example
 * ```ts
 * import { writeJson } from "./train.ts";
 * await writeJson("out/heat_1d/metrics.json", { relL2: 0.01 });
 * ```
 */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(`${path}.tmp`, path);
}

/**
 * The training loop every script shares, with hooks for what is its own. Per step: zero the
 * gradients, call `step(index)` (which computes the gradients of one optimiser step — one batch,
 * several micro-batches, a chunk-wise backward — and reports its loss), check the loss and the
 * gradient norm, clip, and step the optimiser. Around it:
 *
 * - **records**: every `logEvery` steps the means since the previous record (loss, the caller's
 *   sums through `summarize`), the rate in the caller's unit, seconds per step and memory; every
 *   `evalEvery` steps the caller's `evaluate` adds its numbers. Records go to the history, to the
 *   metrics writers (JSON lines, TensorBoard) and, as a progress line, to `log`;
 * - **checkpoints** every `checkpointEvery` steps and at the end, with the history, the best loss
 *   and the caller's named states (data position, random streams); `resume` continues from the
 *   newest one exactly;
 * - **stops**: after `steps` (a resumed run continues up to it), after the step that reaches
 *   `maxSeconds`, or at a NaN/Inf loss or gradient or a diverging loss — then no update is applied,
 *   the last good checkpoint stays current, and a {@link TrainingDivergedError} says what to do.
 *
 * @example
 * ```ts
 * import { trainLoop } from "./loop.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const net = new MLP([1, 16, 1], { activation: "tanh" });
 * const x = randn([64, 1], { seed: 1 });
 * const run = await trainLoop({
 *   model: net,
 *   optimizer: new Adam(net, { lr: 1e-2 }),
 *   steps: 50,
 *   step: () => {
 *     const loss = net.forward(x).sub(x.sin()).square().mean();
 *     loss.backward();
 *     return { loss: loss.item(), items: 64 };
 *   },
 * });
 * run.history.at(-1)?.loss;
 * ```
 *
 * @module
 */

import { clipGradNorm } from "../optim/clip.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { ArgumentError, memory, NonFiniteError, tidy } from "../tensor/mod.ts";
import { type CheckpointParts, loadCheckpoint, type Resumable, saveCheckpoint } from "./checkpoint.ts";
import type { MetricsRecord, MetricsWriter } from "./metrics.ts";
import { progressLine, sci } from "./progress.ts";

/**
 * What one step reports: its loss, the items it processed (for the rate), and numbers to be
 * summed over the steps of a record.
 *
 * @example
 * ```ts
 * import type { StepOutcome } from "./loop.ts";
 * const out: StepOutcome = { loss: 2.31, items: 4096, sums: { chunks: 8 } };
 * ```
 */
export interface StepOutcome {
  /** The step's loss (checked: finite, and not beyond `divergenceFactor` × the best so far). */
  loss: number;
  /** Items processed (points, tokens), for the rate (default 0). */
  items?: number;
  /** Numbers added up over a record's steps and turned into its fields by `summarize`. */
  sums?: Record<string, number>;
}

/**
 * How a record's progress line shows the caller's fields: parts between the loss and the rate,
 * and note lines printed under it.
 *
 * @example
 * ```ts
 * import type { Description } from "./loop.ts";
 * const d: Description = { parts: ["residual 1.73e-1"], notes: ["  note: 2 solves did not converge"] };
 * ```
 */
export interface Description {
  /** Parts of the progress line. */
  parts: string[];
  /** Lines logged after it. */
  notes?: string[];
}

/**
 * Options of {@link trainLoop}.
 *
 * @example
 * ```ts
 * import type { StepOutcome, TrainLoopOptions } from "./loop.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * const net = new MLP([1, 8, 1]);
 * const options: TrainLoopOptions<StepOutcome> = {
 *   model: net,
 *   optimizer: new Adam(net),
 *   steps: 1000,
 *   step: () => ({ loss: 0 }),
 *   unit: { key: "tokensPerSecond", label: "tok" },
 *   checkpointDir: "out/lm/checkpoints",
 *   checkpointEvery: 100,
 *   resume: true,
 * };
 * ```
 */
export interface TrainLoopOptions<S extends StepOutcome> {
  /** The trained tensors saved in checkpoints (a module, or one holding only adapters). */
  model: CheckpointParts["model"];
  /** The optimiser: its parameters are clipped and stepped, its state checkpointed. */
  optimizer: Optimizer;
  /** Total optimiser steps (a resumed run continues up to this count). */
  steps: number;
  /** Computes step `index`'s gradients (0-based; inside a `tidy` scope) and reports it. */
  step: (index: number) => S;
  /** Wall-clock seconds for this call's steps: the step that reaches it ends the run as a last step. */
  maxSeconds?: number;
  /** Clip the gradients' global norm to this (default 0: no clipping; the norm is checked either way). */
  clipGradNorm?: number;
  /** Stop when the loss exceeds this multiple of the best loss so far (default 1e6). */
  divergenceFactor?: number;
  /** A record and a progress line every this many steps (default 10; 0: only at the end). */
  logEvery?: number;
  /** Call `evaluate` every this many steps (default 5 × logEvery; 0: only at the end). */
  evalEvery?: number;
  /** Numbers for the record at an evaluation step (validation loss, test error). */
  evaluate?: (step: number) => Record<string, number>;
  /** A record's fields from its steps' sums (default: each sum divided by the step count). */
  summarize?: (sums: Record<string, number>, steps: number) => Record<string, number>;
  /** The progress line's parts for a record (default: each field `summarize` and `evaluate` gave). */
  describe?: (record: MetricsRecord, sums: Record<string, number>) => Description;
  /** The rate's record key and short unit (default `{ key: "itemsPerSecond", label: "items" }`). */
  unit?: { key: string; label: string };
  /** Directory of checkpoints (none without it). */
  checkpointDir?: string;
  /** Write a checkpoint every this many steps (default 0: only at the end). */
  checkpointEvery?: number;
  /** Checkpoints kept (default 1: the newest). */
  keepCheckpoints?: number;
  /** Continue from the newest checkpoint in `checkpointDir` when there is one (default false). */
  resume?: boolean;
  /** Named host states saved in every checkpoint and restored on resume (the name "loop" is taken). */
  states?: Record<string, Resumable>;
  /** Where each record is written as it comes. */
  writers?: readonly MetricsWriter[];
  /** Where progress lines go (default `console.log`). */
  log?: (line: string) => void;
  /** Called after every successful step with its outcome. */
  onStep?: (step: number, outcome: S) => void;
  /**
   * The ranks of a data-parallel run (a `dist.ProcessGroup` fits): only rank 0 logs, writes
   * records and checkpoints (every rank resumes from them), and the ranks agree on the step at
   * which the time budget ends the run. `step` must report the same loss on every rank (its mean
   * over the ranks) and leave the same gradients (reduced over them).
   */
  group?: LoopGroup;
}

/**
 * What {@link trainLoop} needs of a process group.
 *
 * @example
 * ```ts
 * import type { LoopGroup } from "./loop.ts";
 * const alone: LoopGroup = { rank: 0, size: 1, allReduceNumbers: (v) => [...v] };
 * ```
 */
export interface LoopGroup {
  /** This process's rank (0 writes). */
  readonly rank: number;
  /** Number of processes. */
  readonly size: number;
  /** Reduces numbers over the ranks; every rank gets the result. */
  allReduceNumbers(values: readonly number[], op?: "max"): number[];
}

/**
 * What {@link trainLoop} returns.
 *
 * @example
 * ```ts
 * import type { TrainLoopResult } from "./loop.ts";
 * const summary = (r: TrainLoopResult) => `${r.step} steps, ${r.secondsPerStep.toFixed(3)} s/step (${r.stoppedBy})`;
 * ```
 */
export interface TrainLoopResult {
  /** The records (restored and continued when resumed). */
  history: MetricsRecord[];
  /** Completed optimiser steps. */
  step: number;
  /** The step a resumed run started from (null for a fresh run). */
  resumedFrom: number | null;
  /** Wall-clock seconds of this call's steps. */
  seconds: number;
  /** Mean seconds per step of this call. */
  secondsPerStep: number;
  /** Path of the last checkpoint written or resumed from (null without a directory). */
  checkpoint: string | null;
  /** Why the run ended: all `steps` done, or the `maxSeconds` budget reached. */
  stoppedBy: "steps" | "time";
}

/**
 * A run stopped because its loss or gradient became NaN/Inf or its loss diverged. The parameters
 * are those after the last good step (no update was applied), and the last good checkpoint is
 * kept; the message says how to go on.
 *
 * @example
 * ```ts
 * import { TrainingDivergedError } from "./loop.ts";
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
        checkpoint
          ? `The last good checkpoint is ${checkpoint}; resume from it`
          : "No checkpoint was written (no checkpoint directory); start again"
      } with a lower learning rate or tighter gradient clipping, or look for NaN/Inf in the data. ` +
        `Parameters are those after step ${step - 1}.`,
    );
    this.step = step;
    this.checkpoint = checkpoint;
  }
}

const MiB = 1024 * 1024;

function nonNegativeInteger(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new ArgumentError("train", `${name} must be an integer ≥ 0, got ${v}`);
  return v;
}

/** The default `summarize`: each sum's mean over the record's steps. */
function means(sums: Record<string, number>, steps: number): Record<string, number> {
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / steps]));
}

/**
 * Runs the loop (see the module notes) and returns the history and how it ended.
 *
 * @example
 * ```ts
 * import { HostRandom, JsonLinesWriter, TensorBoardWriter, trainLoop } from "./mod.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const net = new MLP([1, 16, 1], { activation: "tanh" });
 * const rng = new HostRandom(0); // checkpointed: a resumed run draws the same batches
 * await trainLoop({
 *   model: net,
 *   optimizer: new Adam(net, { lr: 1e-2 }),
 *   steps: 100,
 *   step: () => {
 *     const x = tensor(Array.from({ length: 32 }, () => [rng.next()]));
 *     const loss = net.forward(x).sub(x.sin()).square().mean();
 *     loss.backward();
 *     return { loss: loss.item(), items: 32 };
 *   },
 *   states: { random: rng },
 *   checkpointDir: "out/fit/checkpoints",
 *   checkpointEvery: 25,
 *   resume: true,
 *   writers: [new JsonLinesWriter("out/fit/metrics.jsonl"), new TensorBoardWriter("out/fit/tensorboard")],
 * });
 * ```
 */
export async function trainLoop<S extends StepOutcome>(options: TrainLoopOptions<S>): Promise<TrainLoopResult> {
  const op = "train";
  const { model, optimizer } = options;
  const steps = nonNegativeInteger("steps", options.steps);
  const logEvery = nonNegativeInteger("logEvery", options.logEvery ?? 10);
  const evalEvery = nonNegativeInteger("evalEvery", options.evalEvery ?? (logEvery > 0 ? logEvery * 5 : 0));
  const ckptEvery = nonNegativeInteger("checkpointEvery", options.checkpointEvery ?? 0);
  const clip = options.clipGradNorm ?? 0;
  const divergence = options.divergenceFactor ?? 1e6;
  const budget = options.maxSeconds ?? Infinity;
  if (!(budget > 0)) throw new ArgumentError(op, `maxSeconds must be a positive number, got ${budget}`);
  if (!(clip >= 0)) throw new ArgumentError(op, `clipGradNorm must be ≥ 0 (0: no clipping), got ${clip}`);
  if (!(divergence > 1)) throw new ArgumentError(op, `divergenceFactor must be > 1, got ${divergence}`);
  if (options.states && "loop" in options.states) {
    throw new ArgumentError(op, `states may not be named "loop" (the loop's own state); rename it`);
  }
  const main = (options.group?.rank ?? 0) === 0;
  const log = main ? options.log ?? ((line: string) => console.log(line)) : () => {};
  const dir = options.checkpointDir ?? null;
  const unit = options.unit ?? { key: "itemsPerSecond", label: "items" };
  const summarize = options.summarize ?? means;

  let step = 0;
  let history: MetricsRecord[] = [];
  let bestLoss = Infinity;
  let resumedFrom: number | null = null;
  let checkpoint: string | null = null;
  const loopState: Resumable<{ bestLoss: number | null; history: MetricsRecord[] }> = {
    state: () => ({ bestLoss: Number.isFinite(bestLoss) ? bestLoss : null, history }),
    restore: (s) => {
      bestLoss = s.bestLoss ?? Infinity;
      history = s.history;
    },
  };
  const parts: CheckpointParts = { model, optimizer, states: { ...options.states, loop: loopState } };
  if (options.resume) {
    if (!dir) throw new ArgumentError(op, "resume needs a checkpointDir");
    const found = await loadCheckpoint(dir, parts);
    if (found) {
      step = resumedFrom = found.step;
      checkpoint = found.path;
      log(`resumed from ${found.path} at step ${step}`);
    } else {
      log(`no checkpoint in ${dir}; starting from step 0`);
    }
  }
  const writers = main ? options.writers ?? [] : [];
  for (const w of writers) await w.start(resumedFrom);

  const window = { steps: 0, loss: 0, items: 0, seconds: 0, sums: {} as Record<string, number> };
  const start = step;
  const began = performance.now();
  let stoppedBy: "steps" | "time" = "steps";
  let seconds = 0;
  try {
    for (; step < steps;) {
      const s = step; // 0-based index of this step
      const tStep = performance.now();
      let out: S;
      try {
        out = tidy(() => {
          optimizer.zeroGrad();
          const o = options.step(s);
          if (!Number.isFinite(o.loss)) throw new NonFiniteError(op, `the loss is ${o.loss}`);
          const gnorm = clipGradNorm(optimizer.parameters(), clip > 0 ? clip : Infinity);
          if (!Number.isFinite(gnorm)) throw new NonFiniteError(op, `the gradient norm is ${gnorm}`);
          if (o.loss > divergence * bestLoss) {
            throw new NonFiniteError(
              op,
              `the loss ${sci(o.loss)} exceeds ${divergence}× the best loss ${sci(bestLoss)} (the run diverged)`,
            );
          }
          optimizer.step();
          return o;
        });
      } catch (e) {
        optimizer.zeroGrad();
        if (e instanceof NonFiniteError) {
          throw new TrainingDivergedError(s + 1, checkpoint, e.message.replace(/^[^:]*: /, ""));
        }
        throw e;
      }
      step = s + 1;
      bestLoss = Math.min(bestLoss, out.loss);
      options.onStep?.(step, out);
      const dt = (performance.now() - tStep) / 1000;
      seconds += dt;
      window.steps++;
      window.loss += out.loss;
      window.items += out.items ?? 0;
      window.seconds += dt;
      for (const [k, v] of Object.entries(out.sums ?? {})) window.sums[k] = (window.sums[k] ?? 0) + v;
      const elapsed = (performance.now() - began) / 1000;
      let over = elapsed >= budget;
      // Every rank must stop at the same step: the budget ends the run when it ends it on any rank.
      if (options.group && budget < Infinity) over = options.group.allReduceNumbers([over ? 1 : 0], "max")[0] > 0;
      if (step < steps && over) stoppedBy = "time";
      const last = step === steps || stoppedBy === "time";
      const logNow = (logEvery > 0 && step % logEvery === 0) || last;
      const evalNow = options.evaluate !== undefined && ((evalEvery > 0 && step % evalEvery === 0) || last);
      if (logNow || evalNow) {
        const mem = memory();
        const record: MetricsRecord = {
          step,
          loss: window.loss / window.steps,
          ...summarize(window.sums, window.steps),
          [unit.key]: window.items / window.seconds,
          secondsPerStep: window.seconds / window.steps,
          memoryMiB: mem.current / MiB,
          peakMiB: mem.peak / MiB,
          ...(evalNow ? options.evaluate!(step) : {}),
        };
        history.push(record);
        for (const w of writers) await w.write(record);
        if (logNow) {
          const d = options.describe?.(record, window.sums) ?? describeFields(record, unit.key);
          const left = last ? undefined : Math.min((steps - step) * (elapsed / (step - start)), budget - elapsed);
          log(progressLine({
            step,
            steps,
            loss: record.loss,
            parts: d.parts,
            rate: record[unit.key],
            unit: unit.label,
            secondsPerStep: record.secondsPerStep,
            memoryMiB: record.memoryMiB,
            peakMiB: record.peakMiB,
            etaSeconds: left,
          }));
          for (const note of d.notes ?? []) log(note);
        }
        Object.assign(window, { steps: 0, loss: 0, items: 0, seconds: 0, sums: {} });
      }
      if (dir && main && ((ckptEvery > 0 && step % ckptEvery === 0) || last)) {
        checkpoint = await saveCheckpoint(dir, { ...parts, step, keep: options.keepCheckpoints });
      }
      if (stoppedBy === "time") {
        log(`time budget of ${budget} s reached after ${step - start} steps (step ${step} of ${steps})`);
        break;
      }
    }
  } finally {
    for (const w of writers) await w.close();
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

const STANDARD = new Set(["step", "loss", "secondsPerStep", "memoryMiB", "peakMiB"]);

/** The default description: every field but the standard ones, `name value`. */
function describeFields(record: MetricsRecord, rateKey: string): Description {
  const parts = Object.entries(record)
    .filter(([k]) => !STANDARD.has(k) && k !== rateKey)
    .map(([k, v]) => `${k} ${sci(v)}`);
  return { parts };
}

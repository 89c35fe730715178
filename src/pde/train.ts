/**
 * Training of the PDE methods (`baselines.ts`) on the shared loop of `src/train`: seeded batches,
 * the methods' own numbers in the history and the progress line (PDE residual, solver iterations
 * and convergence, the experts' interface mismatch, the test error), checkpoints that resume
 * bit-identically, and a stop on NaN/Inf or divergence that keeps the last good checkpoint.
 *
 * **Determinism.** Every random choice is a pure function of the seed and the step: the batch of
 * step s comes from a seeded permutation of the epoch it falls in (`batchIndices`), and the
 * experts' sampled points from a counter-based stream keyed by (seed, step, expert). So a
 * checkpoint holds only the parameters, the optimiser state, the step, the history and the run's
 * settings (method, seed, batch size: a resume with others is refused), and `resume` continues
 * exactly as if the run had not stopped.
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

import type { Optimizer } from "../optim/optimizer.ts";
import { ArgumentError } from "../tensor/mod.ts";
import type { Resumable } from "../train/checkpoint.ts";
import { type Description, trainLoop, type TrainLoopResult } from "../train/loop.ts";
import type { MetricsRecord, MetricsWriter } from "../train/metrics.ts";
import { sci } from "../train/progress.ts";
import { batchIndices } from "../train/random.ts";
import type { StepStats, TrainingMethod } from "./baselines.ts";
import { batchOf, checkData, evaluate, type TrainingData } from "./evaluate.ts";
import type { DataParallel } from "../dist/data_parallel.ts";
import type { ProcessGroup } from "../dist/group.ts";
import { shardExperts } from "../dist/shard.ts";

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
  /** Where each history record is also written (JSON lines, TensorBoard). */
  writers?: readonly MetricsWriter[];
  /**
   * Train over the ranks of a process group (`parallel`'s): `"batch"` splits each step's batch
   * equally over the ranks (data parallelism: gradients averaged, the loss logged is the mean of
   * the ranks' losses); `"experts"` gives every rank the whole batch and an equal block of
   * PI-HC-MoE's experts (gradients summed: the unsharded step). Only rank 0 logs and writes.
   */
  distributed?: { parallel: DataParallel; split: "batch" | "experts" };
}

/**
 * One logged point of the training history (means over the steps since the previous one): the
 * loop's record (step, loss, rate, memory) with the PDE methods' fields.
 *
 * @example
 * ```ts
 * import type { HistoryRecord } from "./train.ts";
 * const errors = (h: HistoryRecord[]) => h.filter((r) => r.testError !== undefined).map((r) => [r.step, r.testError]);
 * ```
 */
export type HistoryRecord = MetricsRecord & {
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
};

/**
 * What {@link train} returns.
 *
 * @example
 * ```ts
 * import type { TrainResult } from "./train.ts";
 * const summary = (r: TrainResult) => `${r.step} steps, ${r.secondsPerStep.toFixed(3)} s/step`;
 * ```
 */
export interface TrainResult extends TrainLoopResult {
  /** The history (restored and continued when resumed). */
  history: HistoryRecord[];
}

/** A step's numbers summed over a record's steps. */
function sumsOf(st: StepStats): Record<string, number> {
  const sums: Record<string, number> = { residual: st.residual };
  if (st.interface !== undefined) Object.assign(sums, { interface: st.interface, interfaceSteps: 1 });
  if (st.problems) {
    Object.assign(sums, {
      iterations: (st.solverIterations ?? 0) * st.problems,
      converged: st.converged ?? 0,
      problems: st.problems,
    });
  }
  return sums;
}

/**
 * A step's statistics over the ranks: the mean loss, residual and interface mismatch, the solves
 * added up, and the points added up when each rank processed its own (else their mean).
 */
function overRanks(st: StepStats, group: ProcessGroup, pointsAdd: boolean): StepStats {
  const problems = st.problems ?? 0;
  const [loss, residual, mismatch, points, iterations, converged, total] = group.allReduceNumbers([
    st.loss,
    st.residual,
    st.interface ?? 0,
    st.points,
    (st.solverIterations ?? 0) * problems,
    st.converged ?? 0,
    problems,
  ]);
  const w = group.size;
  return {
    loss: loss / w,
    residual: residual / w,
    points: pointsAdd ? points : points / w,
    ...(st.interface === undefined ? {} : { interface: mismatch / w }),
    ...(st.problems === undefined ? {} : { solverIterations: iterations / total, converged, problems: total }),
  };
}

/** A record's PDE fields from its steps' sums. */
function summarize(sums: Record<string, number>, steps: number): Record<string, number> {
  const out: Record<string, number> = { residual: sums.residual / steps };
  if (sums.problems) {
    out.solverIterations = sums.iterations / sums.problems;
    out.convergedShare = sums.converged / sums.problems;
  }
  if (sums.interfaceSteps) out.interface = sums.interface / sums.interfaceSteps;
  return out;
}

/** The PDE parts of the progress line, and a note when expert solves stopped early. */
function describe(record: MetricsRecord, sums: Record<string, number>): Description {
  const rec = record as HistoryRecord;
  const parts = [`residual ${sci(rec.residual)}`];
  if (rec.interface !== undefined) parts.push(`interface ${sci(rec.interface)}`);
  if (rec.solverIterations !== undefined) {
    parts.push(`LM iters ${rec.solverIterations.toFixed(1)}`);
    parts.push(`converged ${sums.converged}/${sums.problems}`);
  }
  if (rec.testError !== undefined) parts.push(`test rel. L2 ${sci(rec.testError)}`);
  const notes = sums.problems && sums.converged < sums.problems
    ? [
      `  note: ${sums.problems - sums.converged} of ${sums.problems} expert solves stopped before converging ` +
      "(iteration limit); their coefficients are the last iterate",
    ]
    : [];
  return { parts, notes };
}

/**
 * Trains `method.model` with `optimizer` for `steps` steps (see the module notes): seeded batches,
 * progress lines (step, loss, residual, solver iterations, points/s, memory, time left), test-error
 * points for the history, checkpoints, exact resume, and a `TrainingDivergedError` when the loss or
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
  const { method, optimizer, test } = options;
  const steps = options.steps;
  if (!Number.isInteger(steps) || steps < 0) throw new ArgumentError(op, `steps must be an integer ≥ 0, got ${steps}`);
  checkData(method, "train", options.train);
  if (test) checkData(method, "test", test);
  const n = options.train.u0.shape[0];
  const batchSize = options.batchSize ?? Math.min(4, n);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > n) {
    throw new ArgumentError(op, `batchSize must be an integer from 1 to the ${n} training samples, got ${batchSize}`);
  }
  const seed = options.seed ?? 0;
  const logEvery = options.logEvery ?? 10;
  const dir = options.checkpointDir;
  // The run's settings: a checkpoint of another method, seed or batch size is refused.
  const run: Resumable<{ method: string; seed: number; batchSize: number }> = {
    state: () => ({ method: method.kind, seed, batchSize }),
    restore: (s) => {
      if (s.method !== method.kind) {
        throw new ArgumentError(
          op,
          `the checkpoint in ${dir} was written by method "${s.method}", not "${method.kind}"`,
        );
      }
      if (s.seed !== seed || s.batchSize !== batchSize) {
        throw new ArgumentError(
          op,
          `the checkpoint in ${dir} used seed ${s.seed} and batch size ${s.batchSize}; resume with the same ` +
            `(got seed ${seed}, batch size ${batchSize})`,
        );
      }
    },
  };
  const evalSamples = test ? Math.min(options.evalSamples ?? 16, test.u0.shape[0]) : 0;
  const dist = options.distributed;
  if (dist?.split === "batch") dist.parallel.share(batchSize, { even: true }); // refuses an uneven split
  if (dist?.split === "experts" && method.kind !== "moe") {
    throw new ArgumentError(op, `split "experts" shards PI-HC-MoE's experts; method "${method.kind}" has none`);
  }
  const shard = dist?.split === "experts" ? shardExperts(dist.parallel.group, method.router!.count) : undefined;
  const result = await trainLoop({
    model: method.model,
    optimizer,
    steps,
    step: (s) => {
      let idx = batchIndices(n, batchSize, seed, s);
      if (dist?.split === "batch") idx = idx.slice(...dist.parallel.share(idx.length));
      let stats = method.lossAndGrad(batchOf(options.train, idx), s, shard && { shard });
      if (dist) {
        dist.parallel.reduceGradients({ op: dist.split === "batch" ? "avg" : "sum" });
        stats = overRanks(stats, dist.parallel.group, dist.split === "batch");
      }
      return { ...stats, items: stats.points, sums: sumsOf(stats) };
    },
    maxSeconds: options.maxSeconds,
    clipGradNorm: options.clipGradNorm ?? 1,
    divergenceFactor: options.divergenceFactor,
    logEvery,
    evalEvery: options.evalEvery,
    evaluate: test
      ? () => ({
        testError: evaluate(method, test, { batchSize, samples: evalSamples, checkFinite: false }).relL2.mean,
      })
      : undefined,
    summarize,
    describe,
    unit: { key: "pointsPerSecond", label: "pts" },
    checkpointDir: dir,
    checkpointEvery: options.checkpointEvery,
    resume: options.resume,
    states: { run },
    writers: options.writers,
    log: options.log,
    onStep: options.onStep,
    group: dist?.parallel.group,
  });
  return { ...result, history: result.history as HistoryRecord[] };
}

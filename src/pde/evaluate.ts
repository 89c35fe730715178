/**
 * The data of the PDE methods and how they are measured: training and test sets (initial
 * conditions and reference solutions) checked against a method's grid, batches of them, and the
 * metrics of the comparison — per-sample relative L2 error, the PDE residual of the predictions
 * and of the references, inference time, and the expert solves' convergence.
 *
 * @example
 * ```ts
 * import { createMethod, evaluate, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const test = heat.generateDataset({ n: 4, nx: 17, nt: 9, seed: 1 });
 * const m = evaluate(createMethod("data", { problem: heat, grid: test.grid }), test);
 * m.relL2.mean; // ≈ 1 before training
 * ```
 *
 * @module
 */

import { ArgumentError, concat, noGrad, NonFiniteError, ShapeError, type Tensor, tensor, tidy } from "../tensor/mod.ts";
import type { PdeBatch, TrainingMethod } from "./baselines.ts";

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

/**
 * Checks a data set against a method's grid (`u0` `[n, ...space]`, `u` `[n, ...grid]`) and, with
 * `finite`, that it holds no NaN or Inf; `name` says which set in the messages.
 *
 * @example
 * ```ts
 * import { checkData, createMethod, Heat1D } from "./mod.ts";
 * const heat = new Heat1D();
 * const data = heat.generateDataset({ n: 2, nx: 17, nt: 9 });
 * checkData(createMethod("data", { problem: heat, grid: data.grid }), "train", data); // fine
 * ```
 */
export function checkData(method: TrainingMethod, name: string, d: TrainingData, finite = true): void {
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

/**
 * The samples `idx` of a data set, as a batch.
 *
 * @example
 * ```ts
 * import { batchOf, Heat1D } from "./mod.ts";
 * const data = new Heat1D().generateDataset({ n: 4, nx: 17, nt: 9 });
 * batchOf(data, [2, 0]).u0.shape; // [2, 17]
 * ```
 */
export function batchOf(d: TrainingData, idx: readonly number[]): PdeBatch {
  const t = tensor(Int32Array.from(idx), { dtype: "int32", backend: d.u0.backend });
  return { u0: d.u0.indexSelect(0, t), u: d.u.indexSelect(0, t) };
}

/**
 * Relative L2 errors and residuals of a method on a data set.
 *
 * @example
 * ```ts
 * import type { EvaluationMetrics } from "./evaluate.ts";
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

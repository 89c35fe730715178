/**
 * The machinery the language-model training scripts (`train_chunked_lm.ts`, `train_ssm_lm.ts`)
 * share: their data, optimiser and loop flags; the corpus with its held-out sequences and the
 * unigram baseline; AdamW with warm-up and cosine decay; `--nproc` (data parallelism over
 * processes); the training loop's wiring (progress line, evaluation, checkpoints, `--resume`,
 * metrics.jsonl and TensorBoard events, a clean exit on divergence); and the closing lines with
 * report.html. A script keeps what is its own: the model, how a step computes its gradient, and
 * what else it saves.
 *
 * @module
 */

import { dist, lm, type nn, optim, train, viz } from "../mod.ts";

type Integer = { type: "integer"; default: number; min: number; help: string };
type Num = { type: "number"; default: number; min: number; help: string };

/** The flags every language-model training script takes. */
export type LMTrainingFlagSpecs = {
  data: { type: "string"; default: string; help: string };
  seqLen: Integer;
  batch: Integer;
  gradAccum: Integer;
  lr: Num;
  warmup: { type: "number"; default: number; min: number; max: number; help: string };
  weightDecay: Num;
  clip: Num;
  steps: Integer;
  maxSeconds: { type: "number"; min: number; help: string };
  logEvery: Integer;
  evalEvery: Integer;
  evalSequences: Integer;
  checkpointEvery: Integer;
  resume: { type: "boolean"; help: string };
  out: { type: "string"; default: string; help: string };
  seed: Integer;
  nproc: Integer;
};

/** The values of {@link LMTrainingFlagSpecs}. */
export type LMTrainingFlags = train.FlagValues<LMTrainingFlagSpecs>;

/** A script's defaults for the shared flags, and the words that differ between scripts. */
export interface LMTrainingDefaults {
  /** The symbol of the sequence length in the script's paper (L, T). */
  length: string;
  seqLen: number;
  batch: number;
  lr: number;
  warmup: number;
  steps: number;
  evalSequences: number;
  out: string;
  /** What the seed decides. */
  seedHelp: string;
}

/** The shared flags with a script's defaults; a script adds its own before them. */
export function lmTrainingFlags(d: LMTrainingDefaults): LMTrainingFlagSpecs {
  return {
    data: { type: "string", default: "brown", help: "a .txt or .jsonl file, a folder of them, or brown (npm)" },
    seqLen: { type: "integer", default: d.seqLen, min: 2, help: `tokens per training sequence (${d.length})` },
    batch: { type: "integer", default: d.batch, min: 1, help: "sequences per micro-batch" },
    gradAccum: { type: "integer", default: 1, min: 1, help: "micro-batches per optimiser step" },
    lr: { type: "number", default: d.lr, min: 0, help: "peak learning rate (warm-up, then cosine to 0)" },
    warmup: { type: "number", default: d.warmup, min: 0, max: 1, help: "warm-up share of the steps" },
    weightDecay: { type: "number", default: 0.05, min: 0, help: "AdamW weight decay (betas 0.9, 0.95)" },
    clip: { type: "number", default: 1, min: 0, help: "gradient norm clipping (0: none)" },
    steps: { type: "integer", default: d.steps, min: 0, help: "optimiser steps" },
    maxSeconds: { type: "number", min: 0, help: "stop after the step that reaches this wall time" },
    logEvery: { type: "integer", default: 10, min: 0, help: "progress line and metrics every this many steps" },
    evalEvery: { type: "integer", default: 50, min: 0, help: "validation loss every this many steps" },
    evalSequences: { type: "integer", default: d.evalSequences, min: 1, help: "held-out sequences per evaluation" },
    checkpointEvery: { type: "integer", default: 0, min: 0, help: "checkpoint every this many steps (0: at the end)" },
    resume: { type: "boolean", help: "continue from the newest checkpoint in --out" },
    out: { type: "string", default: d.out, help: "output folder" },
    seed: { type: "integer", default: 0, min: 0, help: d.seedHelp },
    nproc: { type: "integer", default: 1, min: 1, help: "processes (one per GPU), each taking a share of every batch" },
  };
}

/** The training corpus, the held-out sequences evaluated and the unigram model's held-out loss. */
export interface LMTrainingData {
  corpus: lm.Corpus;
  heldOut: number[][];
  unigram: number;
}

/** Documents → tokens joined with EOS → sequences of seqLen + 1; a step's batches follow from its index. */
export async function loadTrainingData(flags: LMTrainingFlags, tokenizer: lm.Tokenizer): Promise<LMTrainingData> {
  const corpus = await lm.loadCorpus(flags.data, tokenizer, { seqLen: flags.seqLen, seed: flags.seed });
  const held = corpus.validation;
  const heldOut = Array.from({ length: Math.min(flags.evalSequences, held.length) }, (_, i) => [...held.get(i)]);
  return { corpus, heldOut, unigram: lm.unigramCrossEntropy(corpus.train, held, tokenizer.vocabSize) };
}

/** AdamW (betas 0.9, 0.95) at the flags' peak rate, warmed up then decayed by a cosine to 0. */
export function lmOptimizer(parameters: optim.Params, flags: LMTrainingFlags): optim.AdamW {
  return new optim.AdamW(parameters, {
    lr: optim.warmupCosine({
      peakLr: flags.lr,
      warmupSteps: Math.round(flags.warmup * flags.steps),
      totalSteps: flags.steps,
    }),
    betas: [0.9, 0.95],
    weightDecay: flags.weightDecay,
  });
}

/**
 * The processes of a run with `--nproc N`: started by hand with N > 1, the script runs again under
 * the launcher as N processes (`dist.launchOrJoin`); each takes an equal share of every
 * micro-batch's rows, the gradients are averaged over them before the optimiser step, and rank 0
 * alone prints, records and checkpoints. With one process every method passes through.
 */
export class LMRanks {
  /** The group, or null for one process. */
  readonly group: dist.ProcessGroup | null;
  /** Whether this process prints and writes (rank 0, or the only one). */
  readonly main: boolean;
  #parallel: dist.DataParallel | null = null;

  private constructor(group: dist.ProcessGroup | null) {
    this.group = group;
    this.main = (group?.rank ?? 0) === 0;
  }

  /** What a script does first: relaunches itself as `--nproc` processes, or joins their group. */
  static async join(flags: LMTrainingFlags): Promise<LMRanks> {
    return new LMRanks(await dist.launchOrJoin(flags.nproc));
  }

  /** The number of processes. */
  get size(): number {
    return this.group?.size ?? 1;
  }

  /** Prints on rank 0 alone. */
  say(message: string): void {
    if (this.main) console.log(message);
  }

  /** Averages the gradients of `model`'s trainable parameters from now on; rank 0's weights go to every rank. */
  wrap(model: nn.Module): void {
    if (this.group) this.#parallel = new dist.DataParallel(model, this.group);
  }

  /** This rank's rows of a micro-batch (all of them in one process); the batch must split equally. */
  share<T>(rows: readonly T[]): T[] {
    return this.#parallel ? rows.slice(...this.#parallel.share(rows.length, { even: true })) : [...rows];
  }

  /**
   * At the end of a step's backward passes: averages the gradients over the ranks, and turns this
   * rank's mean loss and item count into the whole batch's. A parameter that no rank gave a
   * gradient (the adjoint form's norm weights) keeps none, so the optimiser skips it as in one
   * process (`dist.DataParallel.reduceGradients`).
   */
  reduce(loss: number, items: number): { loss: number; items: number } {
    const p = this.#parallel;
    if (!p) return { loss, items };
    p.reduceGradients();
    return { loss: p.mean(loss), items: items * p.group.size };
  }
}

/** What a script hands {@link trainLM}: its model, optimiser, step and evaluation. */
export interface LMTrainingRun<S extends train.StepOutcome> {
  model: train.TrainLoopOptions<S>["model"];
  optimizer: optim.AdamW;
  step: train.TrainLoopOptions<S>["step"];
  /** The held-out loss; the unigram model's is recorded beside it. */
  valLoss: () => number;
  /** The parts of the progress line after the learning rate (the records hold `lr`). */
  parts: (record: Record<string, number>) => string[];
  /** The unigram model's held-out loss. */
  unigram: number;
  states?: train.TrainLoopOptions<S>["states"];
  /** The processes of `--nproc`; after the loop, ranks other than 0 leave the group and exit. */
  ranks: LMRanks;
}

/**
 * The training loop with the flags' steps, time budget, clipping, logging, evaluation and
 * checkpoints in `--out`, writing metrics.jsonl and tensorboard/ there; on NaN or divergence it
 * prints why and exits with status 1, the last good checkpoint staying current. Only rank 0
 * returns: the group is destroyed and the other ranks exit with status 0.
 */
export async function trainLM<S extends train.StepOutcome>(
  flags: LMTrainingFlags,
  run: LMTrainingRun<S>,
): Promise<train.TrainLoopResult> {
  const out = (name: string) => `${flags.out}/${name}`;
  const unigram = run.unigram;
  const group = run.ranks.group;
  const result = await train.trainLoop({
    model: run.model,
    optimizer: run.optimizer,
    steps: flags.steps,
    maxSeconds: flags.maxSeconds,
    clipGradNorm: flags.clip,
    step: run.step,
    evaluate: () => ({ valLoss: run.valLoss(), unigramLoss: unigram }),
    describe: (r) => ({
      parts: [`lr ${train.sci(r.lr)}`, ...run.parts(r)]
        .concat(r.valLoss === undefined ? [] : [`val ${r.valLoss.toFixed(4)} (unigram ${unigram.toFixed(4)})`]),
    }),
    unit: { key: "tokensPerSecond", label: "tok" },
    logEvery: flags.logEvery,
    evalEvery: flags.evalEvery,
    checkpointDir: out("checkpoints"),
    checkpointEvery: flags.checkpointEvery,
    resume: flags.resume,
    states: run.states,
    writers: [new train.JsonLinesWriter(out("metrics.jsonl")), new train.TensorBoardWriter(out("tensorboard"))],
    group: group ?? undefined,
  }).catch((e) => {
    if (!(e instanceof train.TrainingDivergedError)) throw e;
    console.error(e.message); // NaN or divergence: the last good checkpoint stays current
    Deno.exit(1);
  });
  await group?.destroy();
  if (!run.ranks.main) Deno.exit(0);
  return result;
}

/**
 * The closing lines: the last validation loss beside the unigram model's, and report.html in
 * `--out` (losses — training, validation, unigram — in one chart; throughput, memory and the
 * script's own figures in the other). `also` names what else the script wrote there.
 */
export async function finishLM(
  flags: LMTrainingFlags,
  result: train.TrainLoopResult,
  unigram: number,
  report: { title: string; subtitle: string; also?: string[] },
): Promise<void> {
  const last = result.history.findLast((r) => r.valLoss !== undefined);
  console.log(`validation loss ${last?.valLoss.toFixed(4)} vs the unigram model's ${unigram.toFixed(4)} nats/token`);
  const page = new viz.Report(report.title, { subtitle: report.subtitle }).curves(result.history);
  const path = await page.save(`${flags.out}/report.html`);
  const written = ["metrics.jsonl", "tensorboard/", ...report.also ?? []];
  const list = written.length > 2 ? `${written.slice(0, -1).join(", ")} and ${written.at(-1)}` : written.join(" and ");
  console.log(`wrote ${path}, ${list} in ${flags.out}`);
}

/**
 * Metrics of a training run: the record the loop logs every few steps, the writer interface that
 * receives each record (JSON lines here, TensorBoard event files in `tensorboard.ts`), and how a
 * writer behaves when a run resumes (records after the resumed step are dropped, so the file tells
 * the history of the run that continued).
 *
 * @example
 * ```ts
 * import { JsonLinesWriter } from "./metrics.ts";
 * const w = new JsonLinesWriter("out/run/metrics.jsonl");
 * await w.start(null);
 * await w.write({ step: 10, loss: 0.5, tokensPerSecond: 1200 });
 * await w.close();
 * ```
 *
 * @module
 */

import { dirname } from "node:path";
import { writeTextAtomic } from "./files.ts";

/**
 * One logged point of a run: the completed step, the loss, and any other named numbers (means
 * over the steps since the previous record, rates, memory, evaluation results).
 *
 * @example
 * ```ts
 * import type { MetricsRecord } from "./metrics.ts";
 * const r: MetricsRecord = { step: 100, loss: 2.3, tokensPerSecond: 5400, validationLoss: 2.5 };
 * ```
 */
export type MetricsRecord = { step: number; loss: number } & Record<string, number>;

/**
 * Receives the records of a run, in order of step.
 *
 * @example
 * ```ts
 * import type { MetricsRecord, MetricsWriter } from "./metrics.ts";
 * const seen: MetricsRecord[] = [];
 * const memoryWriter: MetricsWriter = {
 *   start: () => Promise.resolve(),
 *   write: (r) => Promise.resolve(void seen.push(r)),
 *   close: () => Promise.resolve(),
 * };
 * ```
 */
export interface MetricsWriter {
  /** Called once before the first record: `null` for a fresh run, else the step it resumed from. */
  start(resumedFrom: number | null): Promise<void>;
  /** Writes one record. */
  write(record: MetricsRecord): Promise<void>;
  /** Flushes and releases the output. */
  close(): Promise<void>;
}

/**
 * Writes each record as one JSON object per line (NaN and ±∞ become `null`). A fresh run starts
 * the file anew; a resumed run keeps the lines up to the step it resumed from and appends after
 * them.
 *
 * @example
 * ```ts
 * import { JsonLinesWriter } from "./metrics.ts";
 * const w = new JsonLinesWriter("out/run/metrics.jsonl");
 * await w.start(40); // keeps the records of steps ≤ 40
 * await w.write({ step: 50, loss: 0.3 });
 * await w.close();
 * ```
 */
export class JsonLinesWriter implements MetricsWriter {
  /** The file written. */
  readonly path: string;

  /** A writer of `path` (its directory is created). */
  constructor(path: string) {
    this.path = path;
  }

  /** Starts or continues the file (see the class notes). */
  async start(resumedFrom: number | null): Promise<void> {
    await Deno.mkdir(dirname(this.path), { recursive: true });
    let kept = "";
    if (resumedFrom !== null) {
      try {
        const lines = (await Deno.readTextFile(this.path)).split("\n").filter((l) => l.trim() !== "");
        kept = lines.filter((l) => (JSON.parse(l).step ?? Infinity) <= resumedFrom).map((l) => l + "\n").join("");
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    await writeTextAtomic(this.path, kept);
  }

  /** Appends one line. */
  async write(record: MetricsRecord): Promise<void> {
    await Deno.writeTextFile(this.path, JSON.stringify(record) + "\n", { append: true });
  }

  /** Nothing to release: every line is written when it comes. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

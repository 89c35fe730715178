/**
 * TensorBoard event files, written by hand: `tensorboard --logdir DIR` reads them as scalar
 * curves.
 *
 * **Format.** An event file is a sequence of TFRecords (see `tfrecord.ts`). Each record is a serialised `tensorboard.Event`
 * protocol buffer (tensorboard/compat/proto/event.proto): the first holds `file_version =
 * "brain.Event:2"`, the next ones `wall_time` (field 1, double), `step` (2, int64) and a `Summary`
 * (5) of `Value`s with `tag` (1, string) and `simple_value` (2, float). A resumed run starts a new
 * file with a `SessionLog { status: START }` (field 7) at the first step it writes, so TensorBoard
 * drops what an earlier run logged past the checkpoint.
 *
 * @example
 * ```ts
 * import { TensorBoardWriter } from "./tensorboard.ts";
 * const tb = new TensorBoardWriter("out/run/tensorboard");
 * await tb.start(null);
 * await tb.write({ step: 1, loss: 0.9 });
 * await tb.close(); // then: tensorboard --logdir out/run/tensorboard
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { ArgumentError } from "../tensor/errors.ts";
import type { MetricsRecord, MetricsWriter } from "./metrics.ts";
import { tfRecord } from "./tfrecord.ts";

/** A protocol-buffer message under construction (the wire types an Event needs). */
class ProtoWriter {
  readonly #bytes: number[] = [];

  #varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.#bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.#bytes.push(Number(x));
  }

  #tag(field: number, wire: number): void {
    this.#varint((field << 3) | wire);
  }

  varint(field: number, v: number): this {
    this.#tag(field, 0);
    this.#varint(v);
    return this;
  }

  double(field: number, v: number): this {
    this.#tag(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.#bytes.push(...b);
    return this;
  }

  float(field: number, v: number): this {
    this.#tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.#bytes.push(...b);
    return this;
  }

  bytes(field: number, v: Uint8Array | string): this {
    const b = typeof v === "string" ? new TextEncoder().encode(v) : v;
    this.#tag(field, 2);
    this.#varint(b.length);
    this.#bytes.push(...b);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

/**
 * What one event carries besides its time and step.
 *
 * @example
 * ```ts
 * import type { EventContent } from "./tensorboard.ts";
 * const scalars: EventContent = { scalars: { loss: 0.5, lr: 1e-3 } };
 * ```
 */
export type EventContent =
  | { fileVersion: string }
  | { scalars: Record<string, number> }
  | { sessionStart: true };

/**
 * A serialised `tensorboard.Event` (see the module notes for the fields).
 *
 * @example
 * ```ts
 * import { encodeEvent } from "./tensorboard.ts";
 * encodeEvent(1.7e9, 0, { fileVersion: "brain.Event:2" });
 * encodeEvent(1.7e9, 10, { scalars: { loss: 0.25 } });
 * ```
 */
export function encodeEvent(wallTime: number, step: number, content: EventContent): Uint8Array {
  const event = new ProtoWriter().double(1, wallTime).varint(2, step);
  if ("fileVersion" in content) {
    event.bytes(3, content.fileVersion);
  } else if ("scalars" in content) {
    const summary = new ProtoWriter();
    for (const [tag, v] of Object.entries(content.scalars)) {
      summary.bytes(1, new ProtoWriter().bytes(1, tag).float(2, v).finish());
    }
    event.bytes(5, summary.finish());
  } else {
    event.bytes(7, new ProtoWriter().varint(1, 1).finish());
  }
  return event.finish();
}

let files = 0;

/**
 * Writes each record as TensorBoard scalars (every field but `step`, tagged by its name) into a
 * new `events.out.tfevents.<seconds>.<host>.<pid>.<n>` file of `dir`, one event per record,
 * written as it comes. See the module notes for resuming.
 *
 * @example
 * ```ts
 * import { TensorBoardWriter } from "./tensorboard.ts";
 * const tb = new TensorBoardWriter("out/run/tensorboard");
 * await tb.start(null);
 * await tb.write({ step: 10, loss: 0.4, tokensPerSecond: 800 });
 * await tb.close();
 * tb.path; // the event file
 * ```
 */
export class TensorBoardWriter implements MetricsWriter {
  /** The log directory (what `tensorboard --logdir` is pointed at). */
  readonly dir: string;
  #path: string | null = null;

  /** A writer into `dir` (created on start). */
  constructor(dir: string) {
    this.dir = dir;
  }

  /** The event file of this run (null before `start`). */
  get path(): string | null {
    return this.#path;
  }

  /** Opens a new event file: the file version, and on resume the session restart. */
  async start(resumedFrom: number | null): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    let host = "localhost";
    try {
      host = Deno.hostname();
    } catch {
      // Without --allow-sys the host name stays generic.
    }
    const now = Date.now() / 1000;
    this.#path = join(this.dir, `events.out.tfevents.${Math.floor(now)}.${host}.${Deno.pid}.${files++}`);
    const head = [tfRecord(encodeEvent(now, 0, { fileVersion: "brain.Event:2" }))];
    if (resumedFrom !== null) head.push(tfRecord(encodeEvent(now, resumedFrom + 1, { sessionStart: true })));
    await Deno.writeFile(this.#path, concatBytes(head));
  }

  /** Appends one event with the record's scalars. */
  async write(record: MetricsRecord): Promise<void> {
    if (!this.#path) throw new ArgumentError("TensorBoardWriter.write", "no event file yet: call start() first");
    const { step, ...values } = record;
    const event = encodeEvent(Date.now() / 1000, step, { scalars: values });
    await Deno.writeFile(this.#path, tfRecord(event), { append: true });
  }

  /** Nothing to release: every event is written when it comes. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// TensorBoard event files: the CRC-32C against published test vectors, and the files decoded by a
// reader written here (TFRecord framing with a bitwise CRC, not the writer's table) with the
// protocol buffers parsed by protobufjs from TensorBoard's own field numbers
// (tensorboard/compat/proto/event.proto and summary.proto).
import assert from "node:assert/strict";
import { join } from "node:path";
import protobuf from "protobufjs";
import { train } from "../mod.ts";

/** CRC-32C bit by bit (reflected polynomial 0x82F63B78), independent of the writer's table. */
function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

const masked = (bytes: Uint8Array) => {
  const c = crcBitwise(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
};

const root = protobuf.Root.fromJSON({
  nested: {
    Event: {
      fields: {
        wall_time: { type: "double", id: 1 },
        step: { type: "int64", id: 2 },
        file_version: { type: "string", id: 3 },
        summary: { type: "Summary", id: 5 },
        session_log: { type: "SessionLog", id: 7 },
      },
    },
    Summary: {
      fields: { value: { rule: "repeated", type: "Value", id: 1 } },
      nested: { Value: { fields: { tag: { type: "string", id: 1 }, simple_value: { type: "float", id: 2 } } } },
    },
    SessionLog: { fields: { status: { type: "int32", id: 1 } } },
  },
});
const EventType = root.lookupType("Event");

interface DecodedEvent {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: { value: { tag: string; simple_value: number }[] };
  session_log?: { status: number };
}

/** Reads every record of an event file, checking both CRCs of each. */
function readEvents(bytes: Uint8Array): DecodedEvent[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: DecodedEvent[] = [];
  let at = 0;
  while (at < bytes.length) {
    const length = Number(view.getBigUint64(at, true));
    assert.equal(view.getUint32(at + 8, true), masked(bytes.subarray(at, at + 8)), `length CRC at ${at}`);
    const data = bytes.subarray(at + 12, at + 12 + length);
    assert.equal(view.getUint32(at + 12 + length, true), masked(data), `data CRC at ${at}`);
    out.push(EventType.toObject(EventType.decode(data), { longs: Number }) as DecodedEvent);
    at += 16 + length;
  }
  assert.equal(at, bytes.length, "the file ends on a record boundary");
  return out;
}

const ascii = (s: string) => new TextEncoder().encode(s);

Deno.test("crc32c: RFC 3720 (iSCSI) test vectors and the usual check value", () => {
  const vectors: [Uint8Array, number][] = [
    [new Uint8Array(32), 0x8a9136aa],
    [new Uint8Array(32).fill(0xff), 0x62a8ab43],
    [Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
    [Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
    [ascii("123456789"), 0xe3069283],
    [new Uint8Array(0), 0],
  ];
  // RFC 3720 B.4: an iSCSI read command PDU (48 bytes).
  const pdu = new Uint8Array(48);
  for (
    const [at, v] of [[0, 0x01], [1, 0xc0], [16, 0x14], [22, 0x04], [27, 0x14], [31, 0x18], [32, 0x28], [40, 0x02]]
  ) {
    pdu[at] = v;
  }
  vectors.push([pdu, 0xd9963a56]);
  for (const [bytes, want] of vectors) {
    assert.equal(train.crc32c(bytes), want, `crc32c of ${bytes.length} bytes`);
    assert.equal(crcBitwise(bytes), want, "the test's own CRC agrees with the vector");
  }
  assert.equal(train.maskedCrc32c(ascii("123456789")), masked(ascii("123456789")));
});

Deno.test("TensorBoardWriter: file version, then one scalar event per record; decoded independently", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tb = new train.TensorBoardWriter(join(dir, "run"));
    const before = Date.now() / 1000;
    await tb.start(null);
    await tb.write({ step: 10, loss: 0.5, tokensPerSecond: 1234.5 });
    await tb.write({ step: 20, loss: 0.25, validation: NaN });
    await tb.close();
    assert.match(tb.path!, /run\/events\.out\.tfevents\.\d+\./);
    const events = readEvents(await Deno.readFile(tb.path!));
    assert.equal(events.length, 3);
    assert.equal(events[0].file_version, "brain.Event:2");
    assert.ok(events[0].wall_time >= before - 1 && events[0].wall_time <= Date.now() / 1000 + 1);
    assert.deepEqual(events.slice(1).map((e) => e.step), [10, 20]);
    assert.deepEqual(events[1].summary!.value, [
      { tag: "loss", simple_value: 0.5 },
      { tag: "tokensPerSecond", simple_value: 1234.5 },
    ]);
    const [loss, validation] = events[2].summary!.value;
    assert.deepEqual(loss, { tag: "loss", simple_value: 0.25 });
    assert.equal(validation.tag, "validation");
    assert.ok(Number.isNaN(validation.simple_value));
    // Values are float32, as TensorBoard stores scalars.
    const tb2 = new train.TensorBoardWriter(join(dir, "f32"));
    await tb2.start(null);
    await tb2.write({ step: 1, loss: 0.1 });
    assert.equal(readEvents(await Deno.readFile(tb2.path!))[1].summary!.value[0].simple_value, Math.fround(0.1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics writers on resume: TensorBoard restarts the session, JSON lines drop the orphaned records", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tb = new train.TensorBoardWriter(dir);
    await tb.start(40);
    await tb.write({ step: 50, loss: 1 });
    const events = readEvents(await Deno.readFile(tb.path!));
    // TensorBoard keeps what an earlier file logged below the START event's step (up to 40 here).
    assert.equal(events[1].session_log!.status, 1);
    assert.equal(events[1].step, 41);
    assert.equal(events[2].step, 50);
    const path = join(dir, "m.jsonl");
    const jl = new train.JsonLinesWriter(path);
    await jl.start(null);
    for (const step of [10, 20, 30, 40, 50, 60]) await jl.write({ step, loss: step / 100 });
    // The run crashed after 60 and resumes from its checkpoint of step 40.
    const again = new train.JsonLinesWriter(path);
    await again.start(40);
    await again.write({ step: 50, loss: 0.55, lr: Infinity });
    const lines = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((r) => r.step), [10, 20, 30, 40, 50]);
    assert.deepEqual(lines.at(-1), { step: 50, loss: 0.55, lr: null });
    await assert.rejects(new train.TensorBoardWriter(dir).write({ step: 1, loss: 0 }), /call start\(\) first/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

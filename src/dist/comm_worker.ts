/**
 * The communication thread of one process (a worker; `comm_thread.ts` starts it): it serves the
 * rendezvous on rank 0, holds this rank's connection to it and its ring of peer connections, and
 * runs the collectives the main thread submits on shared memory, in order, each by its deadline.
 * Completion is published through an `Int32Array` control block (see `comm_thread.ts`), so the
 * main thread can wait for it synchronously while this thread does the socket work.
 *
 * @module
 */

import { parentPort } from "node:worker_threads";
import { DistributedError, PeerError } from "./errors.ts";
import { type HostData, type ReduceOp, Ring, view, type WireDType } from "./ring.ts";
import { RendezvousClient, RendezvousServer } from "./store.ts";
import { type CollectiveKind, CTRL, encodeError, type WorkerCommand, type WorkerReply } from "./comm_protocol.ts";

const port = parentPort!;
let ctrl: Int32Array;
let errorText: Uint8Array;
let server: RendezvousServer | null = null;
let client: RendezvousClient | null = null;
let ring: Ring | null = null;
let listener: Deno.Listener | null = null;
let broken: Error | null = null;
let queue: Promise<void> = Promise.resolve();

function reply(message: WorkerReply): void {
  port.postMessage(message);
}

function publishError(e: unknown): void {
  const text = new TextEncoder().encode(JSON.stringify(encodeError(e)));
  const n = Math.min(text.length, errorText.length);
  errorText.set(text.subarray(0, n));
  Atomics.store(ctrl, CTRL.errorLength, n);
  Atomics.store(ctrl, CTRL.failed, 1);
}

function lose(rank: number): void {
  if (Atomics.load(ctrl, CTRL.lost) === 0) Atomics.store(ctrl, CTRL.lost, rank + 1);
  Atomics.notify(ctrl, CTRL.lost);
  broken ??= new PeerError(
    "collective",
    rank === 0 && client === null ? "the master (rank 0) is gone" : `rank ${rank} exited or crashed`,
    rank,
  );
  ring?.close();
}

async function init(c: Extract<WorkerCommand, { cmd: "init" }>): Promise<void> {
  const deadline = Date.now() + c.timeout * 1000;
  if (c.rank === 0 && c.size > 1) server = RendezvousServer.start(c.masterAddr, c.masterPort, c.size, c.timeout);
  if (c.size === 1) {
    ring = await Ring.connect(0, 1, [], null, deadline);
    return;
  }
  try {
    client = await RendezvousClient.connect(c.masterAddr, c.masterPort, deadline);
    client.onLost = lose;
    if (c.ring) listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const peers = await client.join(c.rank, c.size, listener ? (listener.addr as Deno.NetAddr).port : 0, deadline);
    if (c.ring) ring = await Ring.connect(c.rank, c.size, peers, listener, deadline);
  } catch (e) {
    server?.close();
    client?.close();
    throw e;
  } finally {
    listener?.close();
    listener = null;
  }
}

async function collective(c: Extract<WorkerCommand, { cmd: "collective" }>): Promise<void> {
  try {
    if (broken) throw broken;
    if (!ring) throw new DistributedError(c.kind, "this group has no ring (it was made for NCCL)");
    const bytes = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    const data: HostData = view(c.dtype as WireDType, bytes);
    const kind: CollectiveKind = c.kind;
    if (kind === "allReduce") await ring.allReduce(data, c.dtype, c.op as ReduceOp, c.seq, c.deadline);
    else if (kind === "broadcast") await ring.broadcast(data, c.dtype, c.root, c.seq, c.deadline);
    else if (kind === "allGather") await ring.allGather(data, c.dtype, c.seq, c.deadline);
    else await ring.reduceScatter(data, c.dtype, c.op as ReduceOp, c.seq, c.deadline);
  } catch (e) {
    const error = broken && e instanceof PeerError && e.reason !== "timeout" ? broken : e;
    broken ??= error as Error;
    ring?.close();
    publishError(error);
  }
  Atomics.store(ctrl, CTRL.done, c.seq);
  Atomics.notify(ctrl, CTRL.done);
}

port.on("message", (c: WorkerCommand) => {
  if (c.cmd === "attach") {
    ctrl = new Int32Array(c.control, 0, CTRL.words);
    errorText = new Uint8Array(c.control, CTRL.words * 4);
    reply({ id: c.id, ok: true });
  } else if (c.cmd === "collective") {
    queue = queue.then(() => collective(c));
  } else {
    const run = async () => {
      if (c.cmd === "init") await init(c);
      else if (c.cmd === "set") await client!.set(c.key, c.value);
      else if (c.cmd === "get") return await client!.get(c.key, c.deadline);
      else if (c.cmd === "destroy") {
        await queue;
        ring?.close();
        await client?.leave();
        if (server) await Promise.race([server.closed, new Promise((r) => setTimeout(r, c.wait))]);
        server?.close();
      }
      return undefined;
    };
    run().then(
      (value) => reply({ id: c.id, ok: true, value }),
      (e) => reply({ id: c.id, ok: false, error: encodeError(e) }),
    );
  }
});

port.postMessage({ id: 0, ok: true });

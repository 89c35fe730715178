/**
 * The main thread's handle on the communication thread (`comm_worker.ts`): starts it, runs the
 * rendezvous through it, submits collectives on shared memory and waits for them — synchronously,
 * on an `Atomics.wait` of the shared control block, so a training step stays an ordinary
 * synchronous function while the sockets are served on the other thread (and an asynchronous
 * collective overlaps the caller's work until `wait`). The thread does not keep the process alive.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import { type CollectiveKind, CTRL, decodeError, type WorkerCommand, type WorkerReply } from "./comm_protocol.ts";
import type { DistSettings } from "./env.ts";
import { DistributedError, PeerError } from "./errors.ts";
import type { HostData, ReduceOp, WireDType } from "./ring.ts";

/**
 * A host array of `dtype` on fresh shared memory (what collectives of the communication thread
 * read and write).
 *
 * @example
 * ```ts
 * import { sharedArray } from "./comm_thread.ts";
 * sharedArray("float64", 4).buffer instanceof SharedArrayBuffer; // true
 * ```
 */
export function sharedArray(dtype: WireDType, n: number): HostData {
  const memory = (item: number) => new SharedArrayBuffer(Math.max(1, n) * item);
  if (dtype === "float64") return new Float64Array(memory(8), 0, n);
  return dtype === "float32" ? new Float32Array(memory(4), 0, n) : new Int32Array(memory(4), 0, n);
}

type Pending = { resolve: (v: string | undefined) => void; reject: (e: Error) => void };

/**
 * The communication thread of this process (see the module notes).
 *
 * @example
 * ```ts
 * import { CommThread, sharedArray } from "./comm_thread.ts";
 * import { distSettings } from "./env.ts";
 * const comm = await CommThread.start(distSettings({ rank: 0, worldSize: 1 }), true);
 * const x = sharedArray("float64", 3);
 * comm.wait(comm.submit("allReduce", "float64", "sum", 0, x), "allReduce");
 * await comm.destroy();
 * ```
 */
export class CommThread {
  readonly #worker: Worker;
  readonly #ctrl: Int32Array;
  readonly #errorText: Uint8Array;
  readonly #pending = new Map<number, Pending>();
  readonly #timeout: number;
  #nextId = 1;
  #seq = 0;
  #failure: DistributedError | null = null;
  #destroyed = false;

  private constructor(worker: Worker, control: SharedArrayBuffer, timeout: number) {
    this.#worker = worker;
    this.#ctrl = new Int32Array(control, 0, CTRL.words);
    this.#errorText = new Uint8Array(control, CTRL.words * 4);
    this.#timeout = timeout;
    worker.on("message", (r: WorkerReply) => {
      const p = this.#pending.get(r.id);
      this.#pending.delete(r.id);
      if (r.ok) p?.resolve(r.value);
      else p?.reject(decodeError(r.error));
    });
    worker.on("error", (e: Error) => {
      this.#failure ??= new DistributedError("collective", `the communication thread failed: ${e.message}`);
      for (const p of this.#pending.values()) p.reject(this.#failure);
      this.#pending.clear();
    });
  }

  /**
   * Starts the thread and joins the group of `settings` (with a ring of peer connections when
   * `ring`: the TCP group's transport). Rendezvous failures reject with a `RendezvousError`.
   */
  static async start(settings: DistSettings, ring: boolean): Promise<CommThread> {
    const worker = new Worker(new URL("./comm_worker.ts", import.meta.url));
    await new Promise<void>((resolve, reject) => {
      worker.once("message", () => resolve());
      worker.once("error", reject);
    });
    const control = new SharedArrayBuffer(CTRL.words * 4 + CTRL.errorBytes);
    const comm = new CommThread(worker, control, settings.timeout);
    try {
      await comm.#call({ cmd: "attach", id: 0, control });
      await comm.#call({
        cmd: "init",
        id: 0,
        rank: settings.rank,
        size: settings.worldSize,
        masterAddr: settings.masterAddr,
        masterPort: settings.masterPort,
        timeout: settings.timeout,
        ring,
      });
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    worker.unref();
    return comm;
  }

  #call(command: WorkerCommand & { id: number }): Promise<string | undefined> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const reply = new Promise<string | undefined>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#worker.postMessage({ ...command, id });
    return reply;
  }

  /** Seconds a collective may wait for the others. */
  get timeout(): number {
    return this.#timeout;
  }

  /** The rank announced lost by the rendezvous server, or -1. */
  lostRank(): number {
    return Atomics.load(this.#ctrl, CTRL.lost) - 1;
  }

  /** Stores `value` under `key` in the rendezvous store. */
  async set(key: string, value: string): Promise<void> {
    await this.#call({ cmd: "set", id: 0, key, value });
  }

  /** The value of `key`, waiting for it up to the timeout. */
  async get(key: string): Promise<string> {
    return (await this.#call({ cmd: "get", id: 0, key, deadline: Date.now() + this.#timeout * 1000 }))!;
  }

  /**
   * Queues a collective on `data` (shared memory, see {@link sharedArray}) and returns its
   * sequence number for {@link CommThread.wait}. Every rank must queue the same collectives in
   * the same order.
   */
  submit(kind: CollectiveKind, dtype: WireDType, op: ReduceOp, root: number, data: HostData): number {
    if (!(data.buffer instanceof SharedArrayBuffer)) {
      throw new DistributedError(kind, "the data must live on shared memory (sharedArray)");
    }
    this.#check(kind);
    const seq = ++this.#seq;
    this.#worker.postMessage(
      {
        cmd: "collective",
        seq,
        kind,
        dtype,
        op,
        root,
        buffer: data.buffer,
        byteOffset: data.byteOffset,
        byteLength: data.byteLength,
        deadline: Date.now() + this.#timeout * 1000,
      } satisfies WorkerCommand,
    );
    return seq;
  }

  /** Whether collective `seq` has finished (well or not). */
  finished(seq: number): boolean {
    return Atomics.load(this.#ctrl, CTRL.done) >= seq;
  }

  /**
   * Blocks until collective `seq` has finished; throws its error (a `PeerError` when a peer died
   * or hung, a `CollectiveMismatchError` when ranks disagree) — and the same error for every
   * later collective, since the group is then broken.
   */
  wait(seq: number, op: string): void {
    // The thread enforces the timeout itself; this margin only guards against the thread stalling.
    const limit = Date.now() + this.#timeout * 1000 + 5000;
    for (;;) {
      const done = Atomics.load(this.#ctrl, CTRL.done);
      if (done >= seq) break;
      const left = limit - Date.now();
      if (left <= 0) {
        this.#failure ??= new PeerError(op, "the communication thread did not finish in time", -1, "timeout");
        throw this.#failure;
      }
      Atomics.wait(this.#ctrl, CTRL.done, done, left);
    }
    this.#check(op);
  }

  #check(op: string): void {
    if (!this.#failure && Atomics.load(this.#ctrl, CTRL.failed) === 1) {
      const n = Atomics.load(this.#ctrl, CTRL.errorLength);
      this.#failure = decodeError(JSON.parse(new TextDecoder().decode(this.#errorText.slice(0, n))));
    }
    if (this.#failure) throw this.#failure;
    if (this.#destroyed) throw new DistributedError(op, "the process group was destroyed");
  }

  /** Records `error` as the group's failure: every later collective throws it. */
  fail(error: DistributedError): DistributedError {
    this.#failure ??= error;
    return this.#failure;
  }

  /**
   * Leaves the group: waits for queued collectives, tells the rendezvous server (rank 0 waits up
   * to `wait` ms for the others to leave), and stops the thread.
   */
  async destroy(wait = 10_000): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#worker.ref();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.#call({ cmd: "destroy", id: 0, wait }).catch(() => {}),
        new Promise((r) => timer = setTimeout(r, wait + 3000)),
      ]);
    } finally {
      clearTimeout(timer);
      await this.#worker.terminate();
    }
  }
}

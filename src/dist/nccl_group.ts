/**
 * The process group on CUDA tensors: one NCCL communicator per process (one GPU each), its unique
 * id shared through the rendezvous store, collectives queued on the backend's stream on the
 * tensors' own device memory (no copies).
 *
 * **Faults.** The communicator is non-blocking, so nothing waits inside NCCL: the group waits for
 * a collective by polling an event recorded after it, and between polls asks NCCL for an
 * asynchronous error and the rendezvous for a lost rank. A rank that died (its connection to the
 * master dropped), an NCCL error, or no completion within the timeout aborts the communicator
 * (`ncclCommAbort`: its kernels return) and throws a `PeerError` or `NcclError`. The group is then
 * broken; the process should exit.
 *
 * @module
 */

import { type CudaBackend, CudaBuffer } from "../backend/cuda/mod.ts";
import { openLibrary } from "../backend/cuda/libraries.ts";
import { DeviceError, type DType, getDefaultBackend, noGrad, Tensor, tensor } from "../tensor/mod.ts";
import type { CommThread } from "./comm_thread.ts";
import type { DistSettings } from "./env.ts";
import { DistributedError, PeerError, RendezvousError } from "./errors.ts";
import {
  checkReduce,
  checkRoot,
  type ProcessGroup,
  type ReduceOp,
  type ReduceOptions,
  scatterBlock,
  type Work,
} from "./group.ts";
import { loadNccl, type Nccl, NCCL_DTYPE, NCCL_OP, NCCL_RESULT, nonBlockingConfig } from "./nccl.ts";

/** The driver calls the waits need beyond the backend's own table. */
const EVENT_SYMBOLS = {
  cuEventCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuEventRecord: { parameters: ["pointer", "pointer"], result: "i32" },
  cuEventQuery: { parameters: ["pointer"], result: "i32" },
  cuEventDestroy_v2: { parameters: ["pointer"], result: "i32" },
} as const;
const CU_EVENT_DISABLE_TIMING = 2;
const CUDA_ERROR_NOT_READY = 600;
const ITEM: Readonly<Record<DType, number>> = { float64: 8, float32: 4, bfloat16: 2, int32: 4 };

type Events = Deno.DynamicLibrary<typeof EVENT_SYMBOLS>["symbols"];

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unbase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Sleeps `ms` (fractions allowed) without yielding to the event loop. */
function nap(ms: number, cell = new Int32Array(new SharedArrayBuffer(4))): void {
  Atomics.wait(cell, 0, 0, ms);
}

/**
 * The NCCL process group of one rank (see the module notes); made by `initProcessGroup` when the
 * default backend is CUDA.
 *
 * @example
 * ```ts
 * import { initProcessGroup } from "./mod.ts";
 * // Under PATCHWORK_BACKEND=cuda, started by `deno task launch --nproc 2 script.ts`:
 * // const group = await initProcessGroup(); group.backend; // "nccl"
 * ```
 */
export class NcclGroup implements ProcessGroup {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly backend = "nccl" as const;
  readonly timeout: number;
  /** The NCCL library. */
  readonly nccl: Nccl;
  readonly #cuda: CudaBackend;
  readonly #comm: CommThread;
  readonly #events: Events;
  #handle: Deno.PointerValue;
  #failure: DistributedError | null = null;
  readonly #status = new Int32Array(1);

  private constructor(
    settings: DistSettings,
    comm: CommThread,
    cuda: CudaBackend,
    nccl: Nccl,
    events: Events,
    handle: Deno.PointerValue,
  ) {
    this.rank = settings.rank;
    this.size = settings.worldSize;
    this.localRank = settings.localRank;
    this.timeout = settings.timeout;
    this.nccl = nccl;
    this.#cuda = cuda;
    this.#comm = comm;
    this.#events = events;
    this.#handle = handle;
  }

  /**
   * Makes the communicator: rank 0 draws the unique id and publishes it in the store, every rank
   * joins with it and waits (abortably) until all have.
   */
  static async create(settings: DistSettings, comm: CommThread): Promise<NcclGroup> {
    const op = "initProcessGroup";
    try {
      const backend = getDefaultBackend();
      if (backend.name !== "cuda" || !("raw" in backend)) {
        throw new DeviceError(
          op,
          `NCCL needs the CUDA backend (PATCHWORK_BACKEND=cuda); the default is ${backend.name}`,
        );
      }
      const cuda = backend as CudaBackend;
      const nccl = loadNccl();
      const events = openLibrary("cuda", EVENT_SYMBOLS).lib.symbols;
      const id = new Uint8Array(128);
      const key = "nccl/unique-id";
      if (settings.rank === 0) {
        nccl.check("ncclGetUniqueId", nccl.sym.ncclGetUniqueId(id));
        await comm.set(key, base64(id));
      } else id.set(unbase64(await comm.get(key)));
      const out = new BigUint64Array(1);
      const init = nccl.sym.ncclCommInitRankConfig!;
      nccl.check(
        "ncclCommInitRankConfig",
        init(out, settings.worldSize, id, settings.rank, nonBlockingConfig()),
        null,
        true,
      );
      const handle = Deno.UnsafePointer.create(out[0]);
      const group = new NcclGroup(settings, comm, cuda, nccl, events, handle);
      await group.#settle(op, Date.now() + settings.timeout * 1000);
      return group;
    } catch (e) {
      await comm.destroy(0);
      throw e;
    }
  }

  /** Waits (yielding) until the communicator is no longer in progress; aborts it on error or timeout. */
  async #settle(op: string, deadline: number): Promise<void> {
    for (;;) {
      const state = this.#asyncState(op);
      if (state === NCCL_RESULT.success) return;
      const lost = this.#comm.lostRank();
      if (lost >= 0) throw this.#abort(new RendezvousError(op, `rank ${lost} exited while NCCL was connecting`));
      if (Date.now() > deadline) {
        throw this.#abort(
          new RendezvousError(op, `the NCCL communicator of ${this.size} ranks did not form within ${this.timeout} s`),
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** `ncclCommGetAsyncError`: success, in progress, or (aborting) throws. */
  #asyncState(op: string): number {
    const nccl = this.nccl;
    nccl.check("ncclCommGetAsyncError", nccl.sym.ncclCommGetAsyncError(this.#handle, this.#status), this.#handle);
    const state = this.#status[0];
    if (state !== NCCL_RESULT.success && state !== NCCL_RESULT.inProgress) {
      const error = nccl.error(op, state, this.#handle);
      throw this.#abort(
        state === NCCL_RESULT.remoteError ? new PeerError(op, error.message.replace(/^[^:]*: /, ""), -1) : error,
      );
    }
    return state;
  }

  /** Aborts the communicator (its queued kernels return) and records `error` as the group's failure. */
  #abort(error: DistributedError): DistributedError {
    if (this.#handle !== null) {
      this.nccl.sym.ncclCommAbort(this.#handle);
      this.#handle = null;
    }
    this.#failure ??= error;
    this.#comm.fail(this.#failure);
    return this.#failure;
  }

  #alive(op: string): Deno.PointerValue {
    if (this.#failure) throw this.#failure;
    if (this.#handle === null) throw new DistributedError(op, "the process group was destroyed");
    return this.#handle;
  }

  /** Runs an NCCL call that queues work; a non-blocking in-progress return is waited out. */
  #enqueue(op: string, call: (comm: Deno.PointerValue, stream: Deno.PointerValue) => number): Work {
    const comm = this.#alive(op);
    const stream = this.#cuda.raw.stream;
    const status = call(comm, stream);
    if (status === NCCL_RESULT.inProgress) this.#spin(op, () => this.#asyncState(op) === NCCL_RESULT.success);
    else if (status !== NCCL_RESULT.success) throw this.#abort(this.nccl.error(op, status, comm));
    const ev = this.#event(op);
    let done = false;
    return {
      wait: () => {
        if (done) return;
        done = true;
        try {
          this.#spin(op, () => {
            const s = this.#events.cuEventQuery(ev);
            if (s !== 0 && s !== CUDA_ERROR_NOT_READY) this.#cuda.raw.driver.check("cuEventQuery", s);
            return s === 0;
          });
        } finally {
          this.#events.cuEventDestroy_v2(ev);
        }
      },
    };
  }

  #event(op: string): Deno.PointerValue {
    const drv = this.#cuda.raw.driver;
    const out = new BigUint64Array(1);
    drv.check("cuEventCreate", this.#events.cuEventCreate(out, CU_EVENT_DISABLE_TIMING));
    const ev = Deno.UnsafePointer.create(out[0]);
    drv.check(`cuEventRecord (${op})`, this.#events.cuEventRecord(ev, this.#cuda.raw.stream));
    return ev;
  }

  /** Polls `ready` until true, checking NCCL's errors, lost ranks and the deadline between polls. */
  #spin(op: string, ready: () => boolean): void {
    const deadline = Date.now() + this.timeout * 1000;
    let pause = 0.02;
    while (!ready()) {
      this.#asyncState(op);
      const lost = this.#comm.lostRank();
      if (lost >= 0) throw this.#abort(new PeerError(op, `rank ${lost} exited or crashed`, lost));
      if (Date.now() > deadline) {
        throw this.#abort(
          new PeerError(
            op,
            `not finished within ${this.timeout} s: a rank hangs, is far slower, or runs a different collective; ` +
              "raise the timeout (PATCHWORK_DIST_TIMEOUT, seconds) if it is only slow",
            -1,
            "timeout",
          ),
        );
      }
      nap(pause);
      pause = Math.min(1, pause * 2);
    }
  }

  #address(t: Tensor): bigint {
    const buf = t.buffer;
    if (!(buf instanceof CudaBuffer)) {
      throw new DeviceError("nccl", `NCCL collectives need CUDA tensors, got one on ${t.backend.name}`);
    }
    return BigInt(buf.ptr + t.offset * ITEM[t.dtype]);
  }

  /** Runs `fn` on `t` itself when contiguous, else on a contiguous copy written back afterwards. */
  #inPlace(t: Tensor, fn: (c: Tensor) => Work): Work {
    if (t.isContiguous) return fn(t);
    const c = noGrad(() => t.contiguous());
    const work = fn(c);
    return {
      wait: () => {
        work.wait();
        noGrad(() => t.assign(c));
        c.dispose();
      },
    };
  }

  allReduce(t: Tensor, options: ReduceOptions = {}): void {
    this.allReduceAsync(t, options).wait();
  }

  allReduceAsync(t: Tensor, options: ReduceOptions = {}): Work {
    const op = NCCL_OP[checkReduce("allReduce", t, options)];
    return this.#inPlace(t, (c) => {
      const p = this.#address(c);
      return this.#enqueue(
        "allReduce",
        (comm, s) => this.nccl.sym.ncclAllReduce(p, p, BigInt(c.size), NCCL_DTYPE[c.dtype], op, comm, s),
      );
    });
  }

  broadcast(t: Tensor, root = 0): void {
    checkRoot("broadcast", root, this.size);
    this.#inPlace(t, (c) => {
      const p = this.#address(c);
      return this.#enqueue(
        "broadcast",
        (comm, s) => this.nccl.sym.ncclBroadcast(p, p, BigInt(c.size), NCCL_DTYPE[c.dtype], root, comm, s),
      );
    }).wait();
  }

  #output(shape: number[], like: Tensor): Tensor {
    return Tensor.fromBuffer(this.#cuda.full(shape.reduce((a, b) => a * b, 1), 0, like.dtype), shape, like.dtype);
  }

  allGather(t: Tensor): Tensor {
    const c = t.isContiguous ? t : noGrad(() => t.contiguous());
    const out = this.#output([this.size, ...t.shape], t);
    const [p, q] = [this.#address(c), this.#address(out)];
    this.#enqueue(
      "allGather",
      (comm, s) => this.nccl.sym.ncclAllGather(p, q, BigInt(c.size), NCCL_DTYPE[c.dtype], comm, s),
    )
      .wait();
    if (c !== t) c.dispose();
    return out;
  }

  reduceScatter(t: Tensor, options: ReduceOptions = {}): Tensor {
    const op = NCCL_OP[checkReduce("reduceScatter", t, options)];
    const m = scatterBlock(t, this.size);
    const c = t.isContiguous ? t : noGrad(() => t.contiguous());
    const out = this.#output([m, ...t.shape.slice(1)], t);
    const [p, q] = [this.#address(c), this.#address(out)];
    this.#enqueue(
      "reduceScatter",
      (comm, s) => this.nccl.sym.ncclReduceScatter(p, q, BigInt(out.size), NCCL_DTYPE[c.dtype], op, comm, s),
    ).wait();
    if (c !== t) c.dispose();
    return out;
  }

  allReduceNumbers(values: readonly number[], op: ReduceOp = "sum"): number[] {
    const t = tensor(values.length ? [...values] : [0], { dtype: "float64", backend: this.#cuda });
    this.allReduce(t, { op });
    const out = Array.from(t.toTypedArray()).slice(0, values.length);
    t.dispose();
    return out;
  }

  barrier(): void {
    this.allReduceNumbers([0]);
  }

  async destroy(): Promise<void> {
    if (this.#handle !== null && !this.#failure) {
      try {
        this.barrier();
        const finalize = this.nccl.sym.ncclCommFinalize;
        if (finalize) {
          const s = finalize(this.#handle);
          if (s === NCCL_RESULT.inProgress) {
            this.#spin("destroy", () => this.#asyncState("destroy") === NCCL_RESULT.success);
          } else this.nccl.check("ncclCommFinalize", s, this.#handle);
        }
        this.nccl.check("ncclCommDestroy", this.nccl.sym.ncclCommDestroy(this.#handle));
        this.#handle = null;
      } catch (e) {
        if (!(e instanceof DistributedError)) this.#abort(new DistributedError("destroy", (e as Error).message));
      }
    }
    await this.#comm.destroy();
  }
}

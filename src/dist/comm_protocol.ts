/**
 * What the main thread and the communication thread (`comm_worker.ts`) say to each other: the
 * commands, the replies, the layout of the shared control block, and errors as plain data that
 * come back as the same typed classes.
 *
 * @module
 */

import { PatchworkError } from "../tensor/errors.ts";
import { CollectiveMismatchError, DistributedError, NcclError, PeerError, RendezvousError } from "./errors.ts";
import type { ReduceOp, WireDType } from "./ring.ts";

/**
 * Words of the control block (an `Int32Array` on shared memory), then the error text from byte
 * `words · 4`: `done` is the sequence number of the last finished collective, `failed` is 1 once
 * one failed (its error is the text), `lost` is 1 + the rank announced lost (0: none).
 *
 * @example
 * ```ts
 * import { CTRL } from "./comm_protocol.ts";
 * CTRL.done; // 0
 * ```
 */
export const CTRL = { done: 0, failed: 1, lost: 2, errorLength: 3, words: 16, errorBytes: 8192 } as const;

/**
 * The collectives the communication thread runs.
 *
 * @example
 * ```ts
 * import type { CollectiveKind } from "./comm_protocol.ts";
 * const k: CollectiveKind = "allGather";
 * ```
 */
export type CollectiveKind = "allReduce" | "broadcast" | "allGather" | "reduceScatter";

/**
 * A command to the communication thread.
 *
 * @example
 * ```ts
 * import type { WorkerCommand } from "./comm_protocol.ts";
 * const c: WorkerCommand = { cmd: "get", id: 3, key: "nccl/0", deadline: Date.now() + 1000 };
 * ```
 */
export type WorkerCommand =
  | { cmd: "attach"; id: number; control: SharedArrayBuffer }
  | {
    cmd: "init";
    id: number;
    rank: number;
    size: number;
    masterAddr: string;
    masterPort: number;
    timeout: number;
    ring: boolean;
  }
  | { cmd: "set"; id: number; key: string; value: string }
  | { cmd: "get"; id: number; key: string; deadline: number }
  | { cmd: "destroy"; id: number; wait: number }
  | {
    cmd: "collective";
    seq: number;
    kind: CollectiveKind;
    dtype: WireDType;
    op: ReduceOp;
    root: number;
    buffer: SharedArrayBuffer;
    byteOffset: number;
    byteLength: number;
    deadline: number;
  };

/**
 * An error as plain data.
 *
 * @example
 * ```ts
 * import type { ErrorData } from "./comm_protocol.ts";
 * const e: ErrorData = { name: "PeerError", op: "allReduce", detail: "rank 1 exited", peer: 1, reason: "lost" };
 * ```
 */
export interface ErrorData {
  /** Class name. */
  name: string;
  /** The operation. */
  op: string;
  /** The message after `op: `. */
  detail: string;
  /** PeerError's peer. */
  peer?: number;
  /** PeerError's reason. */
  reason?: "lost" | "timeout" | "aborted";
  /** NcclError's status. */
  status?: number;
}

/**
 * The reply to a command with an `id`.
 *
 * @example
 * ```ts
 * import type { WorkerReply } from "./comm_protocol.ts";
 * const r: WorkerReply = { id: 3, ok: true, value: "abc" };
 * ```
 */
export type WorkerReply = { id: number; ok: true; value?: string } | { id: number; ok: false; error: ErrorData };

/**
 * An error as plain data (any error: a non-patchwork one keeps its message).
 *
 * @example
 * ```ts
 * import { encodeError } from "./comm_protocol.ts";
 * import { PeerError } from "./errors.ts";
 * encodeError(new PeerError("allReduce", "rank 1 exited", 1)).peer; // 1
 * ```
 */
export function encodeError(e: unknown): ErrorData {
  if (e instanceof PatchworkError) {
    const detail = e.message.startsWith(`${e.op}: `) ? e.message.slice(e.op.length + 2) : e.message;
    return {
      name: e.name,
      op: e.op,
      detail,
      ...(e instanceof PeerError ? { peer: e.peer, reason: e.reason } : {}),
      ...(e instanceof NcclError ? { status: e.status } : {}),
    };
  }
  return { name: "DistributedError", op: "collective", detail: e instanceof Error ? e.message : String(e) };
}

/**
 * The typed error back from its data.
 *
 * @example
 * ```ts
 * import { decodeError } from "./comm_protocol.ts";
 * decodeError({ name: "RendezvousError", op: "initProcessGroup", detail: "no master" }).name; // "RendezvousError"
 * ```
 */
export function decodeError(d: ErrorData): DistributedError {
  switch (d.name) {
    case "PeerError":
      return new PeerError(d.op, d.detail, d.peer ?? -1, d.reason ?? "lost");
    case "RendezvousError":
      return new RendezvousError(d.op, d.detail);
    case "CollectiveMismatchError":
      return new CollectiveMismatchError(d.op, d.detail);
    case "NcclError":
      return new NcclError(d.op, d.status ?? -1, d.detail.replace(/^NCCL error -?\d+: /, ""));
    default:
      return new DistributedError(d.op, d.detail);
  }
}

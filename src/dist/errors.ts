/**
 * Typed errors of distributed work. Each names the operation and says what to do:
 * - {@link RendezvousError}: the processes could not form a group (the master is unreachable,
 *   ranks disagree on the world size, a rank is missing or given twice, a bad environment);
 * - {@link PeerError}: a peer died or hung during a collective (its connection closed, or no
 *   answer within the timeout); the group is unusable afterwards and the process should exit;
 * - {@link CollectiveMismatchError}: ranks called different collectives, or the same one on
 *   tensors of different sizes or dtypes;
 * - {@link NcclError}: NCCL returned an error status.
 *
 * @module
 */

import { PatchworkError } from "../tensor/errors.ts";

/**
 * Base class of the errors of distributed work.
 *
 * @example
 * ```ts
 * import { DistributedError, PeerError } from "./errors.ts";
 * new PeerError("allReduce", "rank 1 closed its connection", 1) instanceof DistributedError; // true
 * ```
 */
export class DistributedError extends PatchworkError {}

/**
 * The processes could not form a group: the master is unreachable, the world sizes disagree, a
 * rank is missing, repeated or out of range, or the environment is malformed.
 *
 * @example
 * ```ts
 * import { RendezvousError } from "./errors.ts";
 * new RendezvousError("initProcessGroup", "rank 1 has WORLD_SIZE 3 but rank 0 has 2").message;
 * ```
 */
export class RendezvousError extends DistributedError {}

/**
 * A peer died or hung during a collective. `peer` is the rank blamed (the one this process was
 * waiting for, or the one whose connection closed), or -1 when unknown; `reason` says which.
 *
 * @example
 * ```ts
 * import { PeerError } from "./errors.ts";
 * const e = new PeerError("allReduce", "no answer from rank 1 within 30 s", 1, "timeout");
 * e.peer; // 1
 * ```
 */
export class PeerError extends DistributedError {
  /** The rank blamed, or -1. */
  readonly peer: number;
  /** `"lost"`: the peer's connection closed or its process exited; `"timeout"`: no answer in time; `"aborted"`: the group was already broken. */
  readonly reason: "lost" | "timeout" | "aborted";
  /** Builds `op: detail`. */
  constructor(op: string, detail: string, peer = -1, reason: "lost" | "timeout" | "aborted" = "lost") {
    super(op, detail);
    this.peer = peer;
    this.reason = reason;
  }
}

/**
 * Ranks called different collectives, or the same collective on different sizes or dtypes.
 *
 * @example
 * ```ts
 * import { CollectiveMismatchError } from "./errors.ts";
 * new CollectiveMismatchError("allReduce", "rank 0 sent 10 float64 values, rank 1 expects 12").message;
 * ```
 */
export class CollectiveMismatchError extends DistributedError {}

/**
 * NCCL returned an error status; `status` is the `ncclResult_t`.
 *
 * @example
 * ```ts
 * import { NcclError } from "./errors.ts";
 * new NcclError("ncclAllReduce", 6, "remote process exited or there was a network error").status; // 6
 * ```
 */
export class NcclError extends DistributedError {
  /** The `ncclResult_t` value. */
  readonly status: number;
  /** Builds `op: NCCL error <status>: <text>`. */
  constructor(op: string, status: number, text: string) {
    super(op, `NCCL error ${status}: ${text}`);
    this.status = status;
  }
}

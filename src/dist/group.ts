/**
 * A process group: the ranks that run one program together and the collectives they call on
 * tensors — all-reduce, broadcast, all-gather, reduce-scatter, barrier — as PyTorch's
 * `torch.distributed` has them. Two transports implement it: NCCL on CUDA tensors
 * (`nccl_group.ts`) and TCP on the CPU (`tcp_group.ts`, as gloo is beside NCCL), so the same
 * data-parallel program runs, and is tested, on both.
 *
 * Collectives are synchronous (they return when the result is in place) unless started with the
 * `…Async` form, which returns a {@link Work} to `wait` on. Every rank must call the same
 * collectives in the same order with tensors of the same shape and dtype. A peer that dies or
 * hangs makes the call throw a `PeerError` within the group's timeout; the group is then broken
 * and the process should exit.
 *
 * @module
 */

import { ArgumentError, DTypeError, fmtShape, ShapeError, type Tensor } from "../tensor/mod.ts";
import type { ReduceOp } from "./ring.ts";

export type { ReduceOp } from "./ring.ts";

/**
 * A started collective: `wait` blocks until its result is in place (throwing its error).
 *
 * @example
 * ```ts
 * import type { Work } from "./group.ts";
 * const finish = (works: Work[]) => works.forEach((w) => w.wait());
 * ```
 */
export interface Work {
  /** Blocks until the collective has finished; throws its error. Idempotent. */
  wait(): void;
}

/**
 * Options of a reducing collective.
 *
 * @example
 * ```ts
 * import type { ReduceOptions } from "./group.ts";
 * const mean: ReduceOptions = { op: "avg" };
 * ```
 */
export interface ReduceOptions {
  /** The reduction (default `"sum"`; `"avg"` needs a float dtype). */
  op?: ReduceOp;
}

/**
 * The ranks of one program and their collectives (see the module notes).
 *
 * @example
 * ```ts
 * import { initProcessGroup } from "./mod.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const group = await initProcessGroup(); // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the launcher
 * const x = tensor([group.rank + 1], { dtype: "float64" });
 * group.allReduce(x); // x = [1 + 2 + … + W] on every rank
 * await group.destroy();
 * ```
 */
export interface ProcessGroup {
  /** This process's rank, 0 … size − 1. */
  readonly rank: number;
  /** Number of processes. */
  readonly size: number;
  /** Rank on this machine (the GPU it uses). */
  readonly localRank: number;
  /** The transport: `"nccl"` (CUDA tensors) or `"tcp"` (host memory). */
  readonly backend: "nccl" | "tcp";
  /** Seconds a collective may wait for the others before a `PeerError`. */
  readonly timeout: number;
  /** Reduces `tensor` across the ranks, in place, on every rank. */
  allReduce(tensor: Tensor, options?: ReduceOptions): void;
  /**
   * Starts {@link ProcessGroup.allReduce} and returns at once; the result is in place after
   * `wait()`. Until then `tensor` must be neither read, written nor freed.
   */
  allReduceAsync(tensor: Tensor, options?: ReduceOptions): Work;
  /** Overwrites `tensor` on every rank with root's. */
  broadcast(tensor: Tensor, root?: number): void;
  /** Every rank's `tensor`, stacked on a new leading axis: `[size, ...shape]`. */
  allGather(tensor: Tensor): Tensor;
  /**
   * Reduces `tensor` (leading axis `size·m`) across the ranks and returns this rank's block of
   * `m` along that axis.
   */
  reduceScatter(tensor: Tensor, options?: ReduceOptions): Tensor;
  /** Reduces host numbers across the ranks (float64); every rank gets the result. */
  allReduceNumbers(values: readonly number[], op?: ReduceOp): number[];
  /** Returns once every rank has called it. */
  barrier(): void;
  /** Leaves the group and frees its resources (every rank calls it; later collectives throw). */
  destroy(): Promise<void>;
}

const OPS: readonly ReduceOp[] = ["sum", "prod", "max", "min", "avg"];

/**
 * Checks a reduction and the tensor it applies to; returns the op.
 *
 * @example
 * ```ts
 * import { checkReduce } from "./group.ts";
 * import { zeros } from "../tensor/mod.ts";
 * checkReduce("allReduce", zeros([2]), {}); // "sum"
 * ```
 */
export function checkReduce(name: string, tensor: Tensor, options: ReduceOptions = {}): ReduceOp {
  const op = options.op ?? "sum";
  if (!OPS.includes(op)) throw new ArgumentError(name, `op must be one of ${OPS.join(", ")}, got ${String(op)}`);
  if (op === "avg" && tensor.dtype === "int32") {
    throw new DTypeError(name, `"avg" needs a float tensor, got int32; use "sum" and divide`);
  }
  return op;
}

/**
 * Checks a root rank.
 *
 * @example
 * ```ts
 * import { checkRoot } from "./group.ts";
 * checkRoot("broadcast", 0, 2); // 0
 * ```
 */
export function checkRoot(name: string, root: number, size: number): number {
  if (!Number.isInteger(root) || root < 0 || root >= size) {
    throw new ArgumentError(name, `root must be a rank from 0 to ${size - 1}, got ${root}`);
  }
  return root;
}

/**
 * Checks the input of a reduce-scatter and returns the block length along the leading axis.
 *
 * @example
 * ```ts
 * import { scatterBlock } from "./group.ts";
 * import { zeros } from "../tensor/mod.ts";
 * scatterBlock(zeros([6, 3]), 2); // 3
 * ```
 */
export function scatterBlock(tensor: Tensor, size: number): number {
  if (tensor.ndim === 0 || tensor.shape[0] % size !== 0) {
    throw new ShapeError(
      "reduceScatter",
      `the leading axis must split into ${size} equal blocks (one per rank), got shape ${fmtShape(tensor.shape)}`,
    );
  }
  return tensor.shape[0] / size;
}

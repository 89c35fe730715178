/**
 * Data parallelism as PyTorch's DistributedDataParallel does it: every rank holds the whole model
 * (rank 0's parameters are broadcast at the start), computes the gradient of its own share of the
 * batch, and {@link DataParallel.reduceGradients} averages the gradients across the ranks, so
 * every rank takes the same optimiser step — the step of the whole batch when the loss is a mean
 * over examples and the shares are equal.
 *
 * Gradients travel in buckets (about `bucketMiB` each, parameters in reverse order of
 * registration, which is roughly the order backward finishes them): each bucket is copied into
 * one flat buffer, all-reduced, and handed back as views of that buffer (no copy back). Buckets
 * are started one after another without waiting, so the transport reduces one bucket while the
 * next is being packed (on the CPU the communication thread works beside the main thread; with
 * NCCL the reduction queues on the stream behind the packing kernels).
 *
 * @module
 */

import type { Module } from "../nn/module.ts";
import { ArgumentError, type DType, noGrad, type Tensor, zeros } from "../tensor/mod.ts";
import type { ProcessGroup, ReduceOp, Work } from "./group.ts";
import { shareOf } from "./ring.ts";

export { shareOf };

/**
 * Options of {@link DataParallel}.
 *
 * @example
 * ```ts
 * import type { DataParallelOptions } from "./data_parallel.ts";
 * const options: DataParallelOptions = { bucketMiB: 50, broadcast: true };
 * ```
 */
export interface DataParallelOptions {
  /** Bytes per gradient bucket, in MiB (default 25, as PyTorch). */
  bucketMiB?: number;
  /** Copy rank 0's parameters (and buffers) to every rank now (default true). */
  broadcast?: boolean;
}

interface Bucket {
  dtype: DType;
  params: Tensor[];
  offsets: number[];
  size: number;
  flat: Tensor | null;
}

/**
 * Data-parallel training over a process group (see the module notes).
 *
 * @example
 * ```ts
 * import { DataParallel, initProcessGroup } from "./mod.ts";
 * import { MLP } from "../nn/mod.ts";
 * import { Adam } from "../optim/mod.ts";
 * import { randn } from "../tensor/mod.ts";
 * const group = await initProcessGroup();
 * const net = new MLP([2, 16, 1], { seed: 0 });
 * const dp = new DataParallel(net, group);
 * const opt = new Adam(net, { lr: 1e-3 });
 * const x = randn([64, 2], { seed: 1 });
 * const [a, b] = dp.share(64); // this rank's rows
 * const mine = x.narrow(0, a, b - a);
 * opt.zeroGrad();
 * net.forward(mine).square().mean().backward();
 * dp.reduceGradients(); // the gradient of the mean over all 64 rows, on every rank
 * opt.step();
 * await group.destroy();
 * ```
 */
export class DataParallel {
  /** The group. */
  readonly group: ProcessGroup;
  /** The parameters whose gradients are reduced (those that require grad). */
  readonly parameters: readonly Tensor[];
  readonly #buckets: Bucket[];

  /** Wraps a model (or a list of parameters); broadcasts rank 0's values unless told not to. */
  constructor(model: Module | readonly Tensor[], group: ProcessGroup, options: DataParallelOptions = {}) {
    const all = Array.isArray(model) ? [...model] as Tensor[] : (model as Module).parameters();
    this.group = group;
    this.parameters = all.filter((p) => p.requiresGrad);
    const mib = options.bucketMiB ?? 25;
    if (!(mib > 0)) throw new ArgumentError("DataParallel", `bucketMiB must be positive, got ${mib}`);
    this.#buckets = bucketsOf(this.parameters, mib * 2 ** 20);
    if ((options.broadcast ?? true) && group.size > 1) {
      const buffers = Array.isArray(model) ? [] : (model as Module).namedBuffers().map(([, b]) => b);
      this.broadcast([...all, ...buffers]);
    }
  }

  /** The parameters of each bucket, in the order they are reduced. */
  get buckets(): readonly (readonly Tensor[])[] {
    return this.#buckets.map((b) => b.params);
  }

  /**
   * Overwrites `tensors` on every rank with rank 0's (bucketed by dtype like the gradients).
   *
   * @example
   * ```ts
   * import { DataParallel, initProcessGroup } from "./mod.ts";
   * import { MLP } from "../nn/mod.ts";
   * const group = await initProcessGroup();
   * const net = new MLP([2, 4, 1]);
   * new DataParallel(net, group, { broadcast: false }).broadcast(net.parameters());
   * await group.destroy();
   * ```
   */
  broadcast(tensors: readonly Tensor[]): void {
    for (const b of bucketsOf(tensors, 64 * 2 ** 20)) {
      const flat = this.#pack(b, (p) => p);
      this.group.broadcast(flat, 0);
      noGrad(() => b.params.forEach((p, i) => p.assign(flat.narrow(0, b.offsets[i], p.size).reshape(p.shape))));
      flat.dispose();
    }
  }

  /** Copies each tensor `pick(param)` gives (zeros where it gives null) into a flat buffer of `b`. */
  #pack(b: Bucket, pick: (p: Tensor) => Tensor | null, into?: Tensor): Tensor {
    const flat = into ?? zeros([b.size], { dtype: b.dtype, backend: b.params[0].backend }).keep();
    noGrad(() =>
      b.params.forEach((p, i) => {
        const g = pick(p);
        const slot = flat.narrow(0, b.offsets[i], p.size);
        if (g) slot.assign(g.reshape([p.size]));
        else slot.assign(0);
      })
    );
    return flat;
  }

  /**
   * Reduces every parameter's gradient across the ranks: the mean (default) or, with `op: "sum"`,
   * the sum (when the ranks computed parts of one gradient, as sharded experts do). A parameter
   * without a gradient on a rank counts as zeros there; afterwards every trainable parameter has
   * one. Every rank must call it at the same point of the step.
   */
  reduceGradients(options: { op?: Extract<ReduceOp, "avg" | "sum"> } = {}): void {
    const op = options.op ?? "avg";
    if (op !== "avg" && op !== "sum") {
      throw new ArgumentError("reduceGradients", `op must be "avg" or "sum", got ${String(op)}`);
    }
    if (this.group.size === 1) return;
    const started: [Bucket, Work][] = [];
    for (const b of this.#buckets) {
      b.flat = this.#pack(b, (p) => p.grad, b.flat ?? undefined);
      started.push([b, this.group.allReduceAsync(b.flat, { op })]);
    }
    for (const [b, work] of started) {
      work.wait();
      const flat = b.flat!;
      b.params.forEach((p, i) => p.grad = flat.narrow(0, b.offsets[i], p.size).reshape(p.shape));
    }
  }

  /**
   * This rank's contiguous share `[start, stop)` of `n` items (see `shareOf`). With
   * `even`, `n` must split equally (so that the mean of the shares' means is the mean of all).
   */
  share(n: number, options: { even?: boolean } = {}): [number, number] {
    const size = this.group.size;
    if (options.even && n % size !== 0) {
      throw new ArgumentError(
        "DataParallel.share",
        `${n} items do not split equally over ${size} ranks; use a batch divisible by ${size}`,
      );
    }
    return shareOf(n, this.group.rank, size);
  }

  /** The mean over the ranks of one number per rank (a loss, for the log). */
  mean(value: number): number {
    return this.group.size === 1 ? value : this.group.allReduceNumbers([value], "avg")[0];
  }
}

/** Groups `tensors` into buckets of one dtype and about `cap` bytes, last tensors first. */
function bucketsOf(tensors: readonly Tensor[], cap: number): Bucket[] {
  const out: Bucket[] = [];
  const open = new Map<DType, Bucket>();
  for (const p of [...tensors].reverse()) {
    if (p.shape.some((d) => d === 0)) continue;
    let b = open.get(p.dtype);
    if (!b) {
      b = { dtype: p.dtype, params: [], offsets: [], size: 0, flat: null };
      open.set(p.dtype, b);
      out.push(b);
    }
    b.offsets.push(b.size);
    b.params.push(p);
    b.size += p.size;
    if (b.size * itemBytes(p.dtype) >= cap) open.delete(p.dtype);
  }
  return out;
}

function itemBytes(dtype: DType): number {
  return dtype === "float64" ? 8 : dtype === "bfloat16" ? 2 : 4;
}

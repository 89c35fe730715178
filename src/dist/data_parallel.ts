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
 * As with PyTorch's `find_unused_parameters`, a parameter that no rank gave a gradient keeps
 * none (`.grad === null` on every rank, so the optimiser skips it as it does in one process),
 * and one that some ranks gave a gradient counts as zeros on the others. Which parameters have
 * one travels inside the same buckets, one element per parameter after its gradients, so it costs
 * no collective of its own.
 *
 * @module
 */

import type { Module } from "../nn/module.ts";
import { ArgumentError, type DType, noGrad, type Tensor, tensor, zeros } from "../tensor/mod.ts";
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

/**
 * Tensors of one dtype laid out in one flat buffer: tensor i at `offsets[i]`, `size` elements in
 * all. A gradient bucket's buffer has one more element per tensor after them: 1 where the
 * gradient exists on this rank, 0 where it does not (summed by the reduction).
 */
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
    for (const b of bucketsOf(tensors.filter((t) => t.size > 0), 64 * 2 ** 20)) {
      const flat = flatOf(b, 0);
      this.#pack(b, flat, (p) => p);
      this.group.broadcast(flat, 0);
      noGrad(() => b.params.forEach((p, i) => p.assign(flat.narrow(0, b.offsets[i], p.size).reshape(p.shape))));
      flat.dispose();
    }
  }

  /** Copies each tensor `pick(param)` gives (zeros where it gives null) into `flat` at its offset. */
  #pack(b: Bucket, flat: Tensor, pick: (p: Tensor) => Tensor | null): void {
    noGrad(() =>
      b.params.forEach((p, i) => {
        const g = pick(p);
        const slot = flat.narrow(0, b.offsets[i], p.size);
        if (g) slot.assign(g.reshape([p.size]));
        else slot.assign(0);
      })
    );
  }

  /**
   * Reduces every parameter's gradient across the ranks: the mean (default) or, with `op: "sum"`,
   * the sum (when the ranks computed parts of one gradient, as sharded experts do). Every rank
   * must call it at the same point of the step.
   *
   * A parameter that no rank gave a gradient keeps `grad === null` on every rank, so the optimiser
   * leaves it and its state alone, as in one process (a layer a rank's step did not use, weights
   * a gradient method does not reach). One that only some ranks gave a gradient counts as zeros on
   * the others: with `"avg"` every rank gets the sum of the gradients divided by the number of
   * ranks, with `"sum"` their sum (PyTorch's DDP with `find_unused_parameters` does the same).
   * Which parameters have a gradient travels in the buckets beside the gradients, so this needs
   * no collective of its own; a rank that has every gradient of a bucket reads nothing back, one
   * that lacks some reads that bucket's presence counts (one number per parameter) once it is
   * reduced.
   *
   * @example
   * ```ts
   * import { DataParallel, initProcessGroup } from "./mod.ts";
   * import { tensor } from "../tensor/mod.ts";
   * const group = await initProcessGroup();
   * const used = tensor([1, 2], { requiresGrad: true });
   * const mine = tensor([3], { requiresGrad: true }); // rank 0's step alone uses it
   * const unused = tensor([4], { requiresGrad: true });
   * const dp = new DataParallel([used, mine, unused], group);
   * const loss = group.rank === 0 ? used.sum().add(mine.mul(6).sum()) : used.sum();
   * loss.backward();
   * dp.reduceGradients();
   * // every rank: used.grad = [1, 1], mine.grad = [6 / group.size], unused.grad === null
   * await group.destroy();
   * ```
   */
  reduceGradients(options: { op?: Extract<ReduceOp, "avg" | "sum"> } = {}): void {
    const op = options.op ?? "avg";
    if (op !== "avg" && op !== "sum") {
      throw new ArgumentError("reduceGradients", `op must be "avg" or "sum", got ${String(op)}`);
    }
    if (this.group.size === 1) return;
    const started: [Bucket, Work, boolean[]][] = [];
    for (const b of this.#buckets) {
      const flat = b.flat ??= flatOf(b, b.params.length);
      const here = b.params.map((p) => p.grad !== null);
      this.#pack(b, flat, (p) => p.grad);
      noGrad(() => {
        const flags = tensor(here.map(Number), { dtype: b.dtype, backend: flat.backend });
        flat.narrow(0, b.size, here.length).assign(flags);
        flags.dispose();
      });
      started.push([b, this.group.allReduceAsync(flat, { op }), here]);
    }
    for (const [b, work, here] of started) {
      work.wait();
      const flat = b.flat!;
      // A gradient here is a gradient somewhere; for the others, the reduced presence counts say.
      const counts = here.every(Boolean) ? null : flat.narrow(0, b.size, here.length).toTypedArray();
      b.params.forEach((p, i) => {
        p.grad = here[i] || counts![i] > 0 ? flat.narrow(0, b.offsets[i], p.size).reshape(p.shape) : null;
      });
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

/**
 * Groups `tensors` into buckets of one dtype and about `cap` bytes, last tensors first. The
 * buckets depend on the tensors alone (not on the rank, the number of ranks or which gradients
 * exist), so every rank builds the same ones.
 */
function bucketsOf(tensors: readonly Tensor[], cap: number): Bucket[] {
  const out: Bucket[] = [];
  const open = new Map<DType, Bucket>();
  for (const p of [...tensors].reverse()) {
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

/** A zeroed flat buffer for bucket `b` with `extra` elements after its tensors' (kept out of `tidy`). */
function flatOf(b: Bucket, extra: number): Tensor {
  return zeros([b.size + extra], { dtype: b.dtype, backend: b.params[0].backend }).keep();
}

function itemBytes(dtype: DType): number {
  return dtype === "float64" ? 8 : dtype === "bfloat16" ? 2 : 4;
}

/**
 * The process group on host memory: tensors of any backend are read to shared memory, reduced by
 * the communication thread over the TCP ring (`ring.ts`), and written back. It is the CPU's
 * transport (as gloo is PyTorch's beside NCCL): the same data-parallel program runs, and is
 * tested, with two processes on loopback. Arithmetic is the tensor's own dtype (bfloat16 reduces
 * in float32 and is rounded once when written back).
 *
 * @module
 */

import { type DType, noGrad, Tensor, zeros } from "../tensor/mod.ts";
import { CpuBuffer } from "../backend/cpu/buffer.ts";
import { type CommThread, sharedArray } from "./comm_thread.ts";
import type { CollectiveKind } from "./comm_protocol.ts";
import type { DistSettings } from "./env.ts";
import {
  checkReduce,
  checkRoot,
  type ProcessGroup,
  type ReduceOp,
  type ReduceOptions,
  scatterBlock,
  type Work,
} from "./group.ts";
import type { HostData, WireDType } from "./ring.ts";

/**
 * The wire dtype of a tensor dtype (bfloat16 travels as float32).
 *
 * @example
 * ```ts
 * import { wireDType } from "./tcp_group.ts";
 * wireDType("bfloat16"); // "float32"
 * ```
 */
export function wireDType(dtype: DType): WireDType {
  return dtype === "float64" ? "float64" : dtype === "int32" ? "int32" : "float32";
}

function dtypeOf(data: HostData): WireDType {
  return data instanceof Float64Array ? "float64" : data instanceof Int32Array ? "int32" : "float32";
}

function toShared(tensor: Tensor, blocks = 1, at = 0): HostData {
  const host = tensor.toTypedArray();
  const out = sharedArray(wireDType(tensor.dtype), host.length * blocks);
  out.set(host, at * host.length);
  return out;
}

function fromShared(data: HostData, shape: readonly number[], like: Tensor): Tensor {
  return Tensor.fromBuffer(like.backend.fromHost(data, like.dtype), shape, like.dtype);
}

function writeBack(tensor: Tensor, data: HostData): void {
  const src = fromShared(data, tensor.shape, tensor);
  noGrad(() => tensor.assign(src));
  src.dispose();
}

/**
 * The tensor's own elements as a host array on shared memory, when it has them: a contiguous
 * float32, float64 or int32 tensor of the CPU backend lives in its shared WebAssembly memory, so
 * the communication thread reduces it in place, with no copies. Else null.
 */
function inPlace(tensor: Tensor): HostData | null {
  const buf = tensor.buffer;
  if (!(buf instanceof CpuBuffer) || !tensor.isContiguous || tensor.dtype === "bfloat16") return null;
  const data = buf.data;
  if (!(data.buffer instanceof SharedArrayBuffer) || data instanceof Uint16Array) return null;
  return data.subarray(tensor.offset, tensor.offset + tensor.size);
}

/** The data a collective works on (the tensor's own, or a copy) and what makes the result the tensor's. */
function staged(tensor: Tensor): { data: HostData; finish: () => void } {
  const own = inPlace(tensor);
  if (own) return { data: own, finish: () => {} };
  const data = toShared(tensor);
  return { data, finish: () => writeBack(tensor, data) };
}

/**
 * The TCP process group of one rank (see the module notes); made by `initProcessGroup`.
 *
 * @example
 * ```ts
 * import { initProcessGroup } from "./mod.ts";
 * const group = await initProcessGroup({ backend: "tcp" });
 * group.backend; // "tcp"
 * await group.destroy();
 * ```
 */
export class TcpGroup implements ProcessGroup {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly backend = "tcp" as const;
  readonly timeout: number;
  readonly #comm: CommThread;

  /** A group on a started communication thread with a ring. */
  constructor(settings: DistSettings, comm: CommThread) {
    this.rank = settings.rank;
    this.size = settings.worldSize;
    this.localRank = settings.localRank;
    this.timeout = settings.timeout;
    this.#comm = comm;
  }

  #run(kind: CollectiveKind, data: HostData, op: ReduceOp = "sum", root = 0): void {
    this.#comm.wait(this.#comm.submit(kind, dtypeOf(data), op, root, data), kind);
  }

  allReduce(tensor: Tensor, options: ReduceOptions = {}): void {
    this.allReduceAsync(tensor, options).wait();
  }

  allReduceAsync(tensor: Tensor, options: ReduceOptions = {}): Work {
    const op = checkReduce("allReduce", tensor, options);
    const { data, finish } = staged(tensor);
    const seq = this.#comm.submit("allReduce", wireDType(tensor.dtype), op, 0, data);
    let done = false;
    return {
      wait: () => {
        if (done) return;
        done = true;
        this.#comm.wait(seq, "allReduce");
        finish();
      },
    };
  }

  broadcast(tensor: Tensor, root = 0): void {
    checkRoot("broadcast", root, this.size);
    const { data, finish } = staged(tensor);
    this.#run("broadcast", data, "sum", root);
    if (this.rank !== root) finish();
  }

  allGather(tensor: Tensor): Tensor {
    const shape = [this.size, ...tensor.shape];
    const out = zeros(shape, { dtype: tensor.dtype, backend: tensor.backend });
    const own = inPlace(out);
    if (!own) {
      out.dispose();
      const data = toShared(tensor, this.size, this.rank);
      this.#run("allGather", data);
      return fromShared(data, shape, tensor);
    }
    own.set(tensor.toTypedArray(), this.rank * tensor.size);
    this.#run("allGather", own);
    return out;
  }

  reduceScatter(tensor: Tensor, options: ReduceOptions = {}): Tensor {
    const op = checkReduce("reduceScatter", tensor, options);
    const m = scatterBlock(tensor, this.size);
    const data = toShared(tensor);
    this.#run("reduceScatter", data, op);
    const n = data.length / this.size;
    return fromShared(data.subarray(this.rank * n, (this.rank + 1) * n), [m, ...tensor.shape.slice(1)], tensor);
  }

  allReduceNumbers(values: readonly number[], op: ReduceOp = "sum"): number[] {
    const data = sharedArray("float64", values.length);
    data.set(values);
    this.#run("allReduce", data, op);
    return Array.from(data);
  }

  barrier(): void {
    this.allReduceNumbers([0]);
  }

  async destroy(): Promise<void> {
    await this.#comm.destroy();
  }
}

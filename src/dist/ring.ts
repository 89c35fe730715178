/**
 * Collectives on host arrays over a ring of TCP connections (each rank sends to rank + 1 and
 * receives from rank − 1), as gloo and NCCL's ring algorithms do: all-reduce as a reduce-scatter
 * then an all-gather of W chunks (each rank sends 2(W − 1)/W of the data, whatever W), all-gather
 * and reduce-scatter in W − 1 steps, broadcast as a pipeline from the root. Every rank ends with
 * bit-identical results: each chunk is reduced once, in one order, and then copied.
 *
 * Every message carries the collective's sequence number, its kind, dtype and byte count, so
 * ranks that call different collectives, or the same one on different sizes, stop with a
 * `CollectiveMismatchError` instead of reading each other's data as their own.
 *
 * @module
 */

import { CollectiveMismatchError, PeerError } from "./errors.ts";
import type { PeerAddress } from "./store.ts";
import { Link } from "./wire.ts";

/**
 * Element types of the host arrays (bfloat16 travels as float32).
 *
 * @example
 * ```ts
 * import type { WireDType } from "./ring.ts";
 * const d: WireDType = "float64";
 * ```
 */
export type WireDType = "float32" | "float64" | "int32";

/**
 * Reductions: sum, product, max, min, and the mean (sum / W).
 *
 * @example
 * ```ts
 * import type { ReduceOp } from "./ring.ts";
 * const op: ReduceOp = "avg";
 * ```
 */
export type ReduceOp = "sum" | "prod" | "max" | "min" | "avg";

/**
 * A host array of one of the wire dtypes.
 *
 * @example
 * ```ts
 * import type { HostData } from "./ring.ts";
 * const x: HostData = new Float64Array(4);
 * ```
 */
export type HostData = Float32Array | Float64Array | Int32Array;

const KIND = { allReduce: 1, broadcast: 2, allGather: 3, reduceScatter: 4 } as const;
const DTYPE_CODE: Readonly<Record<WireDType, number>> = { float32: 1, float64: 2, int32: 3 };
const HEADER = 16;

/**
 * The typed array of `dtype` over `bytes` (a view, no copy).
 *
 * @example
 * ```ts
 * import { view } from "./ring.ts";
 * view("float64", new Uint8Array(16)).length; // 2
 * ```
 */
export function view(dtype: WireDType, bytes: Uint8Array): HostData {
  const C = dtype === "float64" ? Float64Array : dtype === "float32" ? Float32Array : Int32Array;
  return new C(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / C.BYTES_PER_ELEMENT);
}

/**
 * `acc[i] = op(acc[i], x[i])` (for `"avg"` a sum: the division comes at the end).
 *
 * @example
 * ```ts
 * import { combine } from "./ring.ts";
 * const a = new Float64Array([1, 5]);
 * combine("max", a, new Float64Array([3, 2])); // a = [3, 5]
 * ```
 */
export function combine(op: ReduceOp, acc: HostData, x: HostData): void {
  const n = acc.length;
  if (op === "sum" || op === "avg") { for (let i = 0; i < n; i++) acc[i] += x[i]; }
  else if (op === "prod") { for (let i = 0; i < n; i++) acc[i] *= x[i]; }
  else if (op === "max") { for (let i = 0; i < n; i++) acc[i] = acc[i] >= x[i] || acc[i] !== acc[i] ? acc[i] : x[i]; }
  else for (let i = 0; i < n; i++) acc[i] = acc[i] <= x[i] || acc[i] !== acc[i] ? acc[i] : x[i];
}

/**
 * The contiguous share `[start, stop)` of `n` items that part `rank` of `size` takes. Shares
 * differ by at most one item; the first `n mod size` parts take the longer ones. (The ring's
 * chunks, and data parallelism's shares of a batch.)
 *
 * @example
 * ```ts
 * import { shareOf } from "./ring.ts";
 * shareOf(10, 1, 4); // [3, 6]
 * ```
 */
export function shareOf(n: number, rank: number, size: number): [number, number] {
  const base = Math.floor(n / size);
  const extra = n % size;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

/**
 * The ring of one rank (see the module notes).
 *
 * @example
 * ```ts
 * import { Ring } from "./ring.ts";
 * // const ring = await Ring.connect(rank, size, peers, listener, deadline);
 * // await ring.allReduce(new Float64Array([rank]), "float64", "sum", 1, Date.now() + 30_000);
 * ```
 */
export class Ring {
  /** This rank. */
  readonly rank: number;
  /** World size. */
  readonly size: number;
  readonly #next: Link | null;
  readonly #prev: Link | null;
  readonly #header = new Uint8Array(HEADER);
  readonly #scratch = { buffer: new Uint8Array(0) };

  private constructor(rank: number, size: number, next: Link | null, prev: Link | null) {
    this.rank = rank;
    this.size = size;
    this.#next = next;
    this.#prev = prev;
  }

  /**
   * Connects rank `rank` to `rank + 1` (at `peers[rank + 1]`) and accepts `rank − 1` on `listener`,
   * each side checking who is on the other end.
   */
  static async connect(
    rank: number,
    size: number,
    peers: readonly PeerAddress[],
    listener: Deno.Listener | null,
    deadline: number,
  ): Promise<Ring> {
    if (size === 1) return new Ring(rank, size, null, null);
    const op = "initProcessGroup";
    const nextRank = (rank + 1) % size;
    const prevRank = (rank + size - 1) % size;
    const accepting = (async () => {
      const conn = await listener!.accept();
      const link = new Link(conn, prevRank);
      const hello = await link.readJson<{ rank: number }>(op, deadline);
      if (hello.rank !== prevRank) {
        throw new CollectiveMismatchError(op, `rank ${hello.rank} connected where rank ${prevRank} was expected`);
      }
      return link;
    })();
    accepting.catch(() => {});
    const { host, port } = peers[nextRank];
    const next = new Link(await Deno.connect({ hostname: host, port }), nextRank);
    await next.sendJson({ rank }, op);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const prev = await Promise.race([
      accepting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new PeerError(op, `rank ${prevRank} did not connect to rank ${rank}`, prevRank, "timeout")),
          Math.max(0, deadline - Date.now()),
        );
      }),
    ]).finally(() => clearTimeout(timer));
    return new Ring(rank, size, next, prev);
  }

  /** Closes both connections. */
  close(): void {
    this.#next?.close();
    this.#prev?.close();
  }

  #stamp(seq: number, kind: number, dtype: WireDType, bytes: number): Uint8Array {
    const h = new Uint8Array(HEADER);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, seq, true);
    dv.setUint16(4, kind, true);
    dv.setUint16(6, DTYPE_CODE[dtype], true);
    dv.setFloat64(8, bytes, true);
    return h;
  }

  async #send(payload: Uint8Array, seq: number, kind: number, dtype: WireDType, op: string): Promise<void> {
    await this.#next!.write(this.#stamp(seq, kind, dtype, payload.byteLength), op);
    if (payload.byteLength) await this.#next!.write(payload, op);
  }

  async #receive(
    into: Uint8Array,
    seq: number,
    kind: number,
    dtype: WireDType,
    op: string,
    deadline: number,
  ): Promise<void> {
    await this.#prev!.readExactly(this.#header, op, deadline);
    const dv = new DataView(this.#header.buffer);
    const [s, k, d, n] = [dv.getUint32(0, true), dv.getUint16(4, true), dv.getUint16(6, true), dv.getFloat64(8, true)];
    if (s !== seq || k !== kind || d !== DTYPE_CODE[dtype] || n !== into.byteLength) {
      const name = (code: number) => Object.entries(KIND).find(([, v]) => v === code)?.[0] ?? `kind ${code}`;
      const type = (code: number) => Object.entries(DTYPE_CODE).find(([, v]) => v === code)?.[0] ?? `dtype ${code}`;
      this.close();
      throw new CollectiveMismatchError(
        op,
        `rank ${this.#prev!.peer} sent collective #${s} (${name(k)}, ${n} bytes of ${type(d)}) but rank ${this.rank} ` +
          `is in collective #${seq} (${name(kind)}, ${into.byteLength} bytes of ${dtype}); every rank must call the ` +
          "same collectives in the same order on tensors of the same size and dtype",
      );
    }
    if (n) await this.#prev!.readExactly(into, op, deadline);
  }

  #bytes(data: HostData, [a, b]: [number, number]): Uint8Array {
    const item = data.BYTES_PER_ELEMENT;
    return new Uint8Array(data.buffer, data.byteOffset + a * item, (b - a) * item);
  }

  #temp(bytes: number): Uint8Array {
    if (this.#scratch.buffer.byteLength < bytes) this.#scratch.buffer = new Uint8Array(bytes);
    return this.#scratch.buffer.subarray(0, bytes);
  }

  /** Reduces `data` across the ranks in place. */
  async allReduce(data: HostData, dtype: WireDType, op: ReduceOp, seq: number, deadline: number): Promise<void> {
    const w = this.size;
    if (w > 1) {
      const name = "allReduce";
      const n = data.length;
      const r = this.rank;
      for (let s = 0; s < w - 1; s++) {
        const out = shareOf(n, (r - s + w) % w, w);
        const inc = shareOf(n, (r - s - 1 + 2 * w) % w, w);
        const tmp = this.#temp((inc[1] - inc[0]) * data.BYTES_PER_ELEMENT);
        await Promise.all([
          this.#send(this.#bytes(data, out), seq, KIND.allReduce, dtype, name),
          this.#receive(tmp, seq, KIND.allReduce, dtype, name, deadline),
        ]);
        combine(op, data.subarray(inc[0], inc[1]), view(dtype, tmp));
      }
      for (let s = 0; s < w - 1; s++) {
        const out = shareOf(n, (r + 1 - s + w) % w, w);
        const inc = shareOf(n, (r - s + w) % w, w);
        await Promise.all([
          this.#send(this.#bytes(data, out), seq, KIND.allReduce, dtype, name),
          this.#receive(this.#bytes(data, inc), seq, KIND.allReduce, dtype, name, deadline),
        ]);
      }
    }
    if (op === "avg") { for (let i = 0; i < data.length; i++) data[i] /= w; }
  }

  /** Copies the root's `data` to every rank (a pipeline along the ring). */
  async broadcast(data: HostData, dtype: WireDType, root: number, seq: number, deadline: number): Promise<void> {
    const w = this.size;
    if (w === 1) return;
    const bytes = this.#bytes(data, [0, data.length]);
    if (this.rank !== root) await this.#receive(bytes, seq, KIND.broadcast, dtype, "broadcast", deadline);
    if ((this.rank + 1) % w !== root) await this.#send(bytes, seq, KIND.broadcast, dtype, "broadcast");
  }

  /** `data` holds W blocks; block `rank` is this rank's: fills in the others'. */
  async allGather(data: HostData, dtype: WireDType, seq: number, deadline: number): Promise<void> {
    const w = this.size;
    const n = data.length / w;
    const block = (c: number): [number, number] => [c * n, (c + 1) * n];
    for (let s = 0; s < w - 1; s++) {
      await Promise.all([
        this.#send(this.#bytes(data, block((this.rank - s + w) % w)), seq, KIND.allGather, dtype, "allGather"),
        this.#receive(
          this.#bytes(data, block((this.rank - s - 1 + 2 * w) % w)),
          seq,
          KIND.allGather,
          dtype,
          "allGather",
          deadline,
        ),
      ]);
    }
  }

  /**
   * `data` holds W blocks; afterwards block `rank` holds the reduction of every rank's block
   * `rank` (the other blocks hold partial sums).
   */
  async reduceScatter(data: HostData, dtype: WireDType, op: ReduceOp, seq: number, deadline: number): Promise<void> {
    const w = this.size;
    const n = data.length / w;
    const block = (c: number): [number, number] => [c * n, (c + 1) * n];
    // Block c travels the ring starting at rank c + 1 and ends reduced at rank c.
    for (let s = 0; s < w - 1; s++) {
      const out = block((this.rank - s - 1 + 2 * w) % w);
      const inc = block((this.rank - s - 2 + 2 * w) % w);
      const tmp = this.#temp(n * data.BYTES_PER_ELEMENT);
      await Promise.all([
        this.#send(this.#bytes(data, out), seq, KIND.reduceScatter, dtype, "reduceScatter"),
        this.#receive(tmp, seq, KIND.reduceScatter, dtype, "reduceScatter", deadline),
      ]);
      combine(op, data.subarray(inc[0], inc[1]), view(dtype, tmp));
    }
    if (op === "avg") {
      const [a, b] = block(this.rank);
      for (let i = a; i < b; i++) data[i] /= w;
    }
  }
}

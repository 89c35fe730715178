/**
 * What a backend is asked to do, counted: primitive calls by name, reads to the host, uploads,
 * synchronisations, the bytes the primitives read and write, and, on a backend that queues work on
 * a device (CUDA), its kernel launches, library calls, copies and stream synchronisations.
 *
 * On the CPU every primitive runs at once; on CUDA each is one or more launches and every host
 * read waits for the device. So "primitives per step" and "host reads per step" measured on the
 * CPU are the launches and synchronisations the same step costs on a GPU (a lower bound: a GPU
 * backend adds copies of strided operands), and tests can pin them.
 *
 * A {@link BackendCounter} wraps the backend instance's methods while it runs (the instance keeps
 * its identity, so tensors made before or during the count stay valid) and restores them when the
 * last counter on that backend stops. Counters nest.
 *
 * @example
 * ```ts
 * import { countCalls } from "./counting.ts";
 * import { tensor } from "./creation.ts";
 * const x = tensor([1, 2, 3]);
 * const { counts } = countCalls(() => x.exp().add(1).sum().item());
 * counts.calls["unary:exp"]; // 1
 * counts.primitives; // 3: exp, add, sum
 * counts.hostReads; // 1: item()
 * ```
 *
 * @module
 */

import { type Backend, type DeviceCounts, getDefaultBackend } from "./backend.ts";
import { itemSize } from "./dtype.ts";
import { ArgumentError } from "./errors.ts";
import { sizeOf } from "./shape.ts";
import { checkFunction, describe } from "./validate.ts";

/**
 * What a backend did during a count.
 *
 * @example
 * ```ts
 * import type { BackendCounts } from "./counting.ts";
 * const perStep = (c: BackendCounts, steps: number) => c.primitives / steps;
 * ```
 */
export interface BackendCounts {
  /**
   * Primitive calls by name: `"matmul"`, `"unary:gelu"`, `"binary:add"`, `"reduce:sum"`,
   * `"linalg.cholesky"`, `"optim.adam"`, `"spectral.spectralMix"`, ….
   */
  readonly calls: Readonly<Record<string, number>>;
  /** Primitive compute calls in all (each is at least one launch on a GPU backend). */
  readonly primitives: number;
  /** Reads to the host (`toHost`; each waits for the device on a GPU backend). */
  readonly hostReads: number;
  /** Uploads from the host (`fromHost`). */
  readonly uploads: number;
  /** Explicit `synchronize` calls. */
  readonly synchronizes: number;
  /** Elements the primitives read (their views) and wrote (their results), in bytes. */
  readonly bytes: number;
  /** Multiply-add flops of the `matmul` calls (2·m·n·k per product). */
  readonly matmulFlops: number;
  /** The device's own counters over the same span (null on a backend without them). */
  readonly device: DeviceCounts | null;
}

type Tally = {
  calls: Record<string, number>;
  primitives: number;
  hostReads: number;
  uploads: number;
  synchronizes: number;
  bytes: number;
  matmulFlops: number;
};

/** Methods of the Backend interface that compute (each a launch on a GPU backend). */
const COMPUTE = [
  "full",
  "arange",
  "random",
  "copy",
  "unary",
  "binary",
  "where",
  "reduce",
  "argReduce",
  "softmax",
  "cumsum",
  "matmul",
  "gather",
  "scatterAdd",
  "fft",
  "rfft",
  "irfft",
  "stencil",
] as const;
/** Families of optional primitives, counted as `family.method`. */
const FAMILIES = ["linalg", "optim", "fused", "spectral"] as const;
/** Primitives whose first argument is the op's name, counted as `method:op`. */
const NAMED = new Set(["unary", "binary", "reduce", "argReduce"]);

function isView(v: unknown): v is { buffer: { dtype: string }; shape: readonly number[] } {
  return typeof v === "object" && v !== null && "buffer" in v && "shape" in v && "strides" in v;
}

function isBuffer(v: unknown): v is { size: number; dtype: string } {
  return typeof v === "object" && v !== null && "size" in v && "dtype" in v && "backend" in v;
}

function bytesOf(args: readonly unknown[], result: unknown): number {
  let bytes = 0;
  for (const a of args) if (isView(a)) bytes += sizeOf(a.shape) * itemSize(a.buffer.dtype as never);
  const outs = isBuffer(result) ? [result] : typeof result === "object" && result ? Object.values(result) : [];
  for (const o of outs) if (isBuffer(o)) bytes += o.size * itemSize(o.dtype as never);
  return bytes;
}

/** The counters listening to one backend, and the originals of the methods wrapped on it. */
interface Hook {
  readonly tallies: Set<Tally>;
  readonly restore: (() => void)[];
}

const hooks = new WeakMap<Backend, Hook>();

/** Wraps `target[key]` so each call reaches `on`; returns how to put it back. */
function wrap(
  target: Record<string, unknown>,
  key: string,
  on: (args: unknown[], result: unknown) => void,
): () => void {
  const own = Object.getOwnPropertyDescriptor(target, key);
  const original = target[key] as (...args: unknown[]) => unknown;
  Object.defineProperty(target, key, {
    configurable: true,
    writable: true,
    value: function (this: unknown, ...args: unknown[]) {
      const result = original.apply(this, args);
      on(args, result);
      return result;
    },
  });
  return () => {
    if (own) Object.defineProperty(target, key, own);
    else delete target[key];
  };
}

function install(backend: Backend): Hook {
  const tallies = new Set<Tally>();
  const restore: (() => void)[] = [];
  const each = (f: (t: Tally) => void) => {
    for (const t of tallies) f(t);
  };
  const target = backend as unknown as Record<string, unknown>;
  const compute = (where: Record<string, unknown>, key: string, label: (args: unknown[]) => string) => {
    if (typeof where[key] !== "function") return;
    restore.push(wrap(where, key, (args, result) => {
      const name = label(args);
      const bytes = bytesOf(args, result);
      let flops = 0;
      if (key === "matmul" && isView(args[0]) && isView(args[1])) {
        const a = args[0].shape, b = args[1].shape;
        flops = 2 * sizeOf(a) * b[b.length - 1];
      }
      each((t) => {
        t.calls[name] = (t.calls[name] ?? 0) + 1;
        t.primitives++;
        t.bytes += bytes;
        t.matmulFlops += flops;
      });
    }));
  };
  for (const key of COMPUTE) compute(target, key, (args) => (NAMED.has(key) ? `${key}:${args[0]}` : key));
  for (const family of FAMILIES) {
    const obj = target[family] as Record<string, unknown> | undefined;
    if (!obj || typeof obj !== "object") continue;
    const keys = new Set<string>();
    for (let p: object | null = obj; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const k of Object.getOwnPropertyNames(p)) if (k !== "constructor") keys.add(k);
    }
    for (const k of keys) compute(obj, k, () => `${family}.${k}`);
  }
  restore.push(wrap(target, "toHost", () => each((t) => t.hostReads++)));
  restore.push(wrap(target, "fromHost", () => each((t) => t.uploads++)));
  restore.push(wrap(target, "synchronize", () => each((t) => t.synchronizes++)));
  return { tallies, restore };
}

function subtractDevice(a: DeviceCounts | null, b: DeviceCounts | null): DeviceCounts | null {
  if (!a || !b) return null;
  return {
    launches: a.launches - b.launches,
    libraryCalls: a.libraryCalls - b.libraryCalls,
    copies: a.copies - b.copies,
    uploads: a.uploads - b.uploads,
    syncs: a.syncs - b.syncs,
  };
}

function checkCounts(op: string, name: string, c: unknown): void {
  if (typeof c !== "object" || c === null || typeof (c as BackendCounts).calls !== "object") {
    throw new ArgumentError(op, `${name} must be the counts a BackendCounter read, got ${describe(c)}`);
  }
}

/**
 * `later − earlier`, field by field (calls by name too): what happened between two readings of
 * one counter, e.g. one phase of a step.
 *
 * @example
 * ```ts
 * import { BackendCounter, subtractCounts } from "./counting.ts";
 * import { tensor } from "./creation.ts";
 * const counter = new BackendCounter().start();
 * const x = tensor([1, 2]).exp();
 * const mid = counter.read();
 * x.sum();
 * subtractCounts(counter.stop(), mid).calls; // { "reduce:sum": 1 }
 * ```
 */
export function subtractCounts(later: BackendCounts, earlier: BackendCounts): BackendCounts {
  if (earlier !== undefined) checkCounts("subtractCounts", "earlier", earlier);
  checkCounts("subtractCounts", "later", later);
  checkCounts("subtractCounts", "earlier", earlier);
  const calls: Record<string, number> = {};
  for (const [k, v] of Object.entries(later.calls)) {
    const d = v - (earlier.calls[k] ?? 0);
    if (d !== 0) calls[k] = d;
  }
  return {
    calls,
    primitives: later.primitives - earlier.primitives,
    hostReads: later.hostReads - earlier.hostReads,
    uploads: later.uploads - earlier.uploads,
    synchronizes: later.synchronizes - earlier.synchronizes,
    bytes: later.bytes - earlier.bytes,
    matmulFlops: later.matmulFlops - earlier.matmulFlops,
    device: subtractDevice(later.device, earlier.device),
  };
}

function checkBackend(op: string, backend: unknown): void {
  if (backend === null || typeof backend !== "object" || typeof (backend as Backend).fromHost !== "function") {
    throw new ArgumentError(op, `expects a Backend (or nothing, for the default backend), got ${describe(backend)}`);
  }
}

/**
 * Counts what one backend is asked to do between {@link BackendCounter.start} and
 * {@link BackendCounter.stop} (see the module notes). Every counter running on a backend sees
 * every call; each reads its own totals.
 *
 * @example
 * ```ts
 * import { BackendCounter } from "./counting.ts";
 * import { randn } from "./creation.ts";
 * const a = randn([4, 8]), b = randn([8, 2]);
 * const counter = new BackendCounter().start();
 * a.matmul(b);
 * const c = counter.stop();
 * c.calls.matmul; // 1
 * c.matmulFlops; // 128 = 2·4·8·2
 * ```
 */
export class BackendCounter {
  /** The backend counted. */
  readonly backend: Backend;
  #tally: Tally | null = null;
  #device0: DeviceCounts | null = null;
  #final: BackendCounts | null = null;

  /** A counter of `backend` (default: the default backend), not yet started. */
  constructor(backend: Backend = getDefaultBackend()) {
    checkBackend("BackendCounter", backend);
    this.backend = backend;
  }

  /** Whether the counter is running. */
  get running(): boolean {
    return this.#tally !== null;
  }

  /** Starts counting (from zero); returns this. A counter starts once. */
  start(): this {
    if (this.#tally || this.#final) {
      throw new ArgumentError("BackendCounter.start", "this counter was already started; make a new one");
    }
    let hook = hooks.get(this.backend);
    if (!hook) hooks.set(this.backend, hook = install(this.backend));
    this.#tally = { calls: {}, primitives: 0, hostReads: 0, uploads: 0, synchronizes: 0, bytes: 0, matmulFlops: 0 };
    hook.tallies.add(this.#tally);
    this.#device0 = this.backend.deviceCounts?.() ?? null;
    return this;
  }

  /** The counts so far (the final counts once stopped). */
  read(): BackendCounts {
    if (this.#final) return this.#final;
    const t = this.#tally;
    if (!t) throw new ArgumentError("BackendCounter.read", "the counter has not been started");
    return {
      calls: { ...t.calls },
      primitives: t.primitives,
      hostReads: t.hostReads,
      uploads: t.uploads,
      synchronizes: t.synchronizes,
      bytes: t.bytes,
      matmulFlops: t.matmulFlops,
      device: subtractDevice(this.backend.deviceCounts?.() ?? null, this.#device0),
    };
  }

  /** Stops counting and returns the counts; the backend's methods are restored when no counter is left. */
  stop(): BackendCounts {
    if (this.#final) return this.#final;
    const counts = this.read();
    const hook = hooks.get(this.backend)!;
    hook.tallies.delete(this.#tally!);
    if (hook.tallies.size === 0) {
      for (const undo of hook.restore.reverse()) undo();
      hooks.delete(this.backend);
    }
    this.#tally = null;
    this.#final = counts;
    return counts;
  }
}

/**
 * Runs `fn` and counts what `backend` (default: the default backend) was asked to do meanwhile.
 *
 * @example
 * ```ts
 * import { countCalls } from "./counting.ts";
 * import { randn } from "./creation.ts";
 * const x = randn([16]);
 * const { value, counts } = countCalls(() => x.square().mean().item());
 * counts.hostReads; // 1
 * ```
 */
export function countCalls<T>(fn: () => T, backend?: Backend): { value: T; counts: BackendCounts } {
  if (backend !== undefined) checkBackend("countCalls", backend);
  checkFunction("countCalls", "fn", fn);
  const counter = new BackendCounter(backend).start();
  try {
    const value = fn();
    return { value, counts: counter.stop() };
  } finally {
    counter.stop();
  }
}

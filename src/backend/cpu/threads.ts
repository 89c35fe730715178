/**
 * Every core on the CPU backend's kernels: a pool of worker threads that share the heap's memory
 * and run the same WebAssembly kernels as the main thread.
 *
 * A kernel call is split into numbered jobs by the kernel itself — a block of rows, a tile of a
 * matrix product, a fixed chunk of a reduction — never by the number of threads, and every job
 * writes its own part of the result. Threads (the main thread included) claim jobs one at a time
 * from a shared counter until none are left, so a thread that the operating system has paused
 * simply does fewer, and the result is bit-identical whatever the thread count. The call returns
 * when every job is done; it is synchronous like the rest of the backend.
 *
 * `PATCHWORK_THREADS` sets the number of threads (default: `navigator.hardwareConcurrency`, all
 * cores); 1 runs everything on the main thread. Workers start at the first parallel call and do
 * not keep the process alive.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import { BLAS_SYMBOLS, GEMM_JOB, openBlas } from "./blas.ts";
import { heapAlloc, heapMemory } from "./heap.ts";
import { kernelModule } from "./wasm/kernels.ts";

/** The name of the host kernel that runs OpenBLAS blocks (see `blas.ts`), present where it is. */
export const BLAS_KERNEL = "gemm_blas";

/** Source of `hostKernels(memory, blasPath, symbols)`: the kernels written in JavaScript. */
const HOST_KERNELS = `function hostKernels(memory, blasPath, symbols) {
  if (!blasPath) return {};
  const lib = Deno.dlopen(blasPath, symbols).symbols;
  lib.openblas_set_num_threads(1);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(memory.buffer, 64, 1)))) - 64n;
  const gemm = (${GEMM_JOB});
  return { ${BLAS_KERNEL}: (args, job) => gemm(lib, base, new Float64Array(memory.buffer), Number(args) / 8, job) };
}`;

/** Words of the control block shared with the workers. */
const BELL = 0, NEXT = 1, COUNT = 2, KERNEL = 3, DONE = 4, FAILED = 5;
/**
 * Bits of `NEXT` that number the next job; the bits above carry the call's generation, so a
 * thread that read a finished call's counter fails to claim from the next call. Job number
 * `CLOSED` (above any count) marks a call being published.
 */
const JOB_BITS = 20;
const CLOSED = (1 << JOB_BITS) - 1;
/**
 * Most jobs in one call (room is left below `CLOSED` for the claims that overshoot the count).
 *
 * @example
 * ```ts
 * import { MAX_JOBS } from "./threads.ts";
 * MAX_JOBS; // 1048000
 * ```
 */
export const MAX_JOBS = 1048000;
/** Most arguments of one kernel call. */
const MAX_ARGS = 32;

/** The worker: claims jobs of the published call until none are left, then sleeps on the bell. */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { kernels, memory, control, names, thread, argsAddress, blasPath, symbols } = workerData;
const instance = new WebAssembly.Instance(kernels, { env: { memory } });
const host = (${HOST_KERNELS})(memory, blasPath, symbols);
const fns = names.map((n) => host[n] ?? instance.exports[n]);
const c = new Int32Array(control);
const MASK = ${CLOSED}, args = BigInt(argsAddress);
let bell = 0;
for (;;) {
  while (Atomics.load(c, ${BELL}) === bell) Atomics.wait(c, ${BELL}, bell);
  bell = Atomics.load(c, ${BELL});
  for (;;) {
    const w = Atomics.load(c, ${NEXT});
    const count = Atomics.load(c, ${COUNT});
    if ((w & MASK) >= count) break;
    const fn = fns[Atomics.load(c, ${KERNEL})];
    if (Atomics.compareExchange(c, ${NEXT}, w, w + 1) !== w) continue;
    try { fn(args, w & MASK, thread); } catch { Atomics.store(c, ${FAILED}, 1); }
    if (Atomics.add(c, ${DONE}, 1) + 1 === count) Atomics.notify(c, ${DONE});
  }
}
`;

/** A kernel: its arguments' address, the job, the calling thread. */
type Kernel = (args: bigint, job: number, thread: number) => void;

interface Pool {
  fns: Kernel[];
  names: string[];
  index: Map<string, number>;
  control: Int32Array;
  args: Float64Array;
  argsAddress: number;
  /** `argsAddress` as the kernels take it. */
  argsPointer: bigint;
  threads: number;
  workers: Worker[] | null;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  generation: number;
  blasPath: string | null;
}

let pool: Pool | null | undefined;

/**
 * Threads the kernels use: `PATCHWORK_THREADS` when set to a positive integer, else every
 * hardware thread (read once).
 *
 * @example
 * ```ts
 * import { threadCount } from "./threads.ts";
 * threadCount() >= 1; // true
 * ```
 */
export function threadCount(): number {
  return chosenThreads ??= readThreadCount();
}

let chosenThreads: number | undefined;

function readThreadCount(): number {
  let env: string | undefined;
  try {
    env = typeof Deno !== "undefined" ? Deno.env.get("PATCHWORK_THREADS") : undefined;
  } catch {
    env = undefined; // no --allow-env
  }
  const n = env === undefined ? NaN : Number(env);
  if (Number.isInteger(n) && n >= 1) return n;
  return Math.max(1, typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? 1 : 1);
}

function createPool(): Pool | null {
  const memory = heapMemory();
  if (!memory) return null;
  const { module, names: wasmNames } = kernelModule();
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const blasPath = openBlas()?.path ?? null;
  const host = new Function(`return ${HOST_KERNELS}`)()(memory, blasPath, BLAS_SYMBOLS) as Record<string, Kernel>;
  const names = [...wasmNames, ...Object.keys(host)];
  const fns = names.map((n) => host[n] ?? exports[n] as Kernel);
  const args = heapAlloc(Float64Array, MAX_ARGS, true);
  return {
    blasPath,
    fns,
    names,
    index: new Map(names.map((n, i) => [n, i])),
    control: new Int32Array(new SharedArrayBuffer(64)),
    args,
    argsAddress: args.byteOffset,
    argsPointer: BigInt(args.byteOffset),
    threads: threadCount(),
    workers: null,
    module,
    memory,
    generation: 0,
  };
}

function getPool(): Pool | null {
  if (pool === undefined) pool = createPool();
  return pool;
}

/**
 * Whether the pool has the kernel `name` (the OpenBLAS kernel exists only where OpenBLAS does).
 *
 * @example
 * ```ts
 * import { BLAS_KERNEL, hasKernel } from "./threads.ts";
 * hasKernel(BLAS_KERNEL); // true where OpenBLAS is installed
 * ```
 */
export function hasKernel(name: string): boolean {
  return getPool()?.names.includes(name) ?? false;
}

/**
 * Whether the WebAssembly kernels can run here (the heap exists and the kernels compiled).
 *
 * @example
 * ```ts
 * import { kernelsAvailable } from "./threads.ts";
 * kernelsAvailable(); // true on Deno
 * ```
 */
export function kernelsAvailable(): boolean {
  return getPool() !== null;
}

function startWorkers(p: Pool): Worker[] {
  const workers: Worker[] = [];
  for (let t = 1; t < p.threads; t++) {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        kernels: p.module,
        memory: p.memory,
        control: p.control.buffer,
        names: p.names,
        thread: t,
        argsAddress: p.argsAddress,
        blasPath: p.blasPath,
        symbols: BLAS_SYMBOLS,
      },
    });
    w.unref();
    workers.push(w);
  }
  return workers;
}

function kernelsOrThrow(name: string): Pool {
  const p = getPool();
  if (!p) throw new Error(`runKernel(${name}): the WebAssembly kernels are unavailable on this engine`);
  return p;
}

/**
 * The index of the kernel `name`, for {@linkcode runKernel} (which then skips the look-up by
 * name); throws where there is no such kernel.
 *
 * @example
 * ```ts
 * import { kernelIndex, runKernel } from "./threads.ts";
 * const exp = kernelIndex("unary_exp_f32");
 * // runKernel(exp, [...], jobs, false);
 * ```
 */
export function kernelIndex(name: string): number {
  const kernel = kernelsOrThrow(name).index.get(name);
  if (kernel === undefined) throw new Error(`runKernel: no kernel named ${name}`);
  return kernel;
}

/**
 * Runs jobs `0 … jobs − 1` of the kernel `kernel` (a name, or its {@linkcode kernelIndex}) with
 * `args` (numbers; addresses and sizes are exact up to 2^53) on every thread when `parallel` is
 * set, else on the calling thread; returns when all are done. A kernel's jobs must write disjoint
 * outputs; each thread passes its index (0 for the main thread) so a kernel can pick its own
 * scratch space.
 *
 * @example
 * ```ts
 * import { runKernel } from "./threads.ts";
 * // runKernel("matmul_f32", [...], jobs, true);
 * ```
 */
export function runKernel(kernel: string | number, args: readonly number[], jobs: number, parallel: boolean): void {
  const p = typeof kernel === "number" ? pool! : kernelsOrThrow(kernel);
  if (typeof kernel === "string") kernel = kernelIndex(kernel);
  const name = p.names[kernel];
  if (args.length > MAX_ARGS) throw new Error(`runKernel(${name}): ${args.length} arguments, at most ${MAX_ARGS}`);
  if (jobs > MAX_JOBS) throw new Error(`runKernel(${name}): ${jobs} jobs, at most ${MAX_JOBS}`);
  p.args.set(args);
  const fn = p.fns[kernel];
  const address = p.argsPointer;
  if (!parallel || p.threads === 1 || jobs < 2) {
    for (let j = 0; j < jobs; j++) fn(address, j, 0);
    return;
  }
  p.workers ??= startWorkers(p);
  const c = p.control;
  p.generation = (p.generation + 1) & 0x7ff;
  const base = p.generation << JOB_BITS;
  Atomics.store(c, NEXT, base | CLOSED);
  Atomics.store(c, COUNT, jobs);
  Atomics.store(c, KERNEL, kernel);
  Atomics.store(c, DONE, 0);
  Atomics.store(c, FAILED, 0);
  Atomics.store(c, NEXT, base);
  Atomics.add(c, BELL, 1);
  Atomics.notify(c, BELL);
  let error: unknown = null;
  for (;;) {
    const w = Atomics.add(c, NEXT, 1);
    const job = w - base;
    if (job >= jobs) break;
    try {
      fn(address, job, 0);
    } catch (e) {
      error ??= e;
    }
    Atomics.add(c, DONE, 1);
  }
  for (let d = Atomics.load(c, DONE); d < jobs; d = Atomics.load(c, DONE)) Atomics.wait(c, DONE, d);
  if (error) throw error;
  if (Atomics.load(c, FAILED)) throw new Error(`runKernel(${name}): a worker's job failed`);
}

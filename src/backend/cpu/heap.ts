/**
 * The CPU backend's memory: one shared WebAssembly memory (a memory64 over a SharedArrayBuffer)
 * that holds every CPU buffer, so the SIMD kernels read and write tensors in place, on every
 * thread, with no copies in or out.
 *
 * A buffer is a typed-array view of the memory at a 64-byte-aligned address. The allocator keeps
 * freed blocks in size bins and coalesces neighbours, so memory is reused without returning to
 * the system; `heapStats()` reports how much is reserved. Views made before the memory grew stay
 * valid (a shared memory is never detached); {@linkcode heapAddress} recognises every
 * generation of it.
 *
 * Limits: the memory grows to at most {@linkcode HEAP_LIMIT_BYTES} (the engine's memory64 cap,
 * 16 GiB). A request past it, or on an engine without shared memory64 and SIMD, gets an ordinary
 * typed array instead: correct everywhere, but the kernels fall back to their TypeScript loops
 * for it.
 *
 * @module
 */

/** Bytes of one WebAssembly page. */
const PAGE = 65536;
/** Alignment of every block (a cache line, and a multiple of every SIMD access). */
const ALIGN = 64;
/** Pages reserved at first use. */
const INITIAL_PAGES = 256;
/**
 * Blocks up to this size are kept whole when freed, for the next request of the same size (a
 * training step asks for the same shapes every time). When the heap would have to grow they are
 * all merged with their free neighbours; when they hold more than three quarters of it, those of
 * the sizes asked for least recently are, until they hold half (a chunk-wise step asks for sizes
 * that change from chunk to chunk; keeping the recent ones whole spares the free lists).
 */
const CACHE_MAX = 1 << 20;

/**
 * The most bytes the heap grows to (V8's limit on a memory64).
 *
 * @example
 * ```ts
 * import { HEAP_LIMIT_BYTES } from "./heap.ts";
 * HEAP_LIMIT_BYTES / 2 ** 30; // 16
 * ```
 */
export const HEAP_LIMIT_BYTES = 16 * 2 ** 30;

/** Typed arrays the heap hands out. */
export type HeapArray = Float32Array | Float64Array | Int32Array | Uint16Array;
/** Their constructors. */
export type HeapArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | Uint16ArrayConstructor;

/** Freed blocks of one size kept whole, and when that size was last asked for. */
interface SizeCache {
  /** Their starts. */
  starts: number[];
  /** The array each was last handed out as (absent where it was collected), to hand out again. */
  views: (HeapArray | undefined)[];
  /** The allocator's clock at the last request of this size. */
  asked: number;
}

/** The memory and its allocator state (null where the engine lacks what the kernels need). */
interface HeapState {
  memory: WebAssembly.Memory;
  /** Every SharedArrayBuffer object the memory has exposed (one per growth). */
  generations: WeakSet<ArrayBufferLike>;
  /** Current view of the whole memory. */
  buffer: SharedArrayBuffer;
  /** First address never handed out (everything above is zero). */
  top: number;
  /** Free blocks: start → size, and end → start for merging with the left neighbour. */
  freeStart: Map<number, number>;
  freeEnd: Map<number, number>;
  /** Free block starts by size bin. */
  bins: Set<number>[];
  /** Live blocks: start → size. */
  live: Map<number, number>;
  /** Freed blocks of at most `CACHE_MAX` bytes kept whole for a request of the same size, by size. */
  cache: Map<number, SizeCache>;
  /** Counts requests of cached sizes (the clock of `SizeCache.asked`). */
  clock: number;
  /** Bytes in `cache`. */
  cached: number;
  /** Bytes in live blocks. */
  used: number;
}

let state: HeapState | null | undefined;

/** Whether this engine runs the kernels (SIMD, relaxed SIMD, shared memory64). */
function supported(): boolean {
  if (typeof WebAssembly === "undefined" || typeof SharedArrayBuffer === "undefined") return false;
  // (module (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))
  const hex = "0061736d0100000001080160037b7b7b017b030201000a0d010b00200020012002fd85020b";
  const relaxed = Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16));
  try {
    return WebAssembly.validate(relaxed);
  } catch {
    return false;
  }
}

function createState(): HeapState | null {
  if (!supported()) return null;
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({
      initial: BigInt(INITIAL_PAGES),
      maximum: BigInt(HEAP_LIMIT_BYTES / PAGE),
      address: "i64",
      shared: true,
    } as unknown as WebAssembly.MemoryDescriptor);
  } catch {
    return null;
  }
  const buffer = memory.buffer as SharedArrayBuffer;
  const generations = new WeakSet<ArrayBufferLike>([buffer]);
  return {
    memory,
    generations,
    buffer,
    top: ALIGN, // address 0 stays unused so a null address can never be a block
    freeStart: new Map(),
    freeEnd: new Map(),
    bins: [],
    live: new Map(),
    cache: new Map(),
    clock: 0,
    cached: 0,
    used: 0,
  };
}

function heap(): HeapState | null {
  if (state === undefined) state = createState();
  return state;
}

/**
 * The shared memory behind the heap, or null where the engine cannot run the kernels.
 *
 * @example
 * ```ts
 * import { heapMemory } from "./heap.ts";
 * heapMemory()?.buffer instanceof SharedArrayBuffer; // true on Deno
 * ```
 */
export function heapMemory(): WebAssembly.Memory | null {
  return heap()?.memory ?? null;
}

/** Size bin of a block (a multiple of 64 bytes): four bins per power of two. */
function binOf(size: number): number {
  const units = size / ALIGN; // below 2^32 for every block of a 16 GiB heap
  const e = 31 - Math.clz32(units);
  const sub = e >= 2 ? (units >>> (e - 2)) & 3 : 0;
  return e * 4 + sub;
}

function addFree(h: HeapState, start: number, size: number): void {
  h.freeStart.set(start, size);
  h.freeEnd.set(start + size, start);
  const b = binOf(size);
  (h.bins[b] ??= new Set()).add(start);
}

function removeFree(h: HeapState, start: number): number {
  const size = h.freeStart.get(start)!;
  h.freeStart.delete(start);
  h.freeEnd.delete(start + size);
  h.bins[binOf(size)].delete(start);
  return size;
}

/** A free block of at least `size` bytes (taken out of the free lists), or -1. */
function takeFree(h: HeapState, size: number): number {
  for (let b = binOf(size); b < h.bins.length; b++) {
    const bin = h.bins[b];
    if (!bin || bin.size === 0) continue;
    for (const start of bin) {
      const have = h.freeStart.get(start)!;
      if (have < size) continue;
      removeFree(h, start);
      if (have > size) addFree(h, start + size, have - size);
      return start;
    }
  }
  return -1;
}

/** Grows the memory so that `end` bytes are addressable; false at the limit. */
function ensure(h: HeapState, end: number): boolean {
  const have = h.buffer.byteLength;
  if (end <= have) return true;
  if (end > HEAP_LIMIT_BYTES) return false;
  // Grow by at least a quarter of the current size so growth is amortised.
  const want = Math.min(HEAP_LIMIT_BYTES, Math.max(end, have + have / 4));
  try {
    h.memory.grow(BigInt(Math.ceil((want - have) / PAGE)) as unknown as number);
  } catch {
    try {
      h.memory.grow(BigInt(Math.ceil((end - have) / PAGE)) as unknown as number);
    } catch {
      return false;
    }
  }
  h.buffer = h.memory.buffer as SharedArrayBuffer;
  h.generations.add(h.buffer);
  return true;
}

/** Returns every cached block to the coalescing free lists. */
function flushCache(h: HeapState): void {
  for (const [size, { starts }] of h.cache) for (const start of starts) release(h, start, size);
  h.cache.clear();
  h.cached = 0;
}

/**
 * Returns the cached blocks of the sizes asked for least recently to the free lists, until at
 * most `keep` bytes are cached.
 */
function trimCache(h: HeapState, keep: number): void {
  const bySize = [...h.cache].sort((a, b) => a[1].asked - b[1].asked);
  for (const [size, { starts }] of bySize) {
    if (h.cached <= keep) break;
    for (const start of starts) release(h, start, size);
    h.cached -= size * starts.length;
    h.cache.delete(size);
  }
}

/** Whether the block {@link allocBlock} returned last was never used before (so it holds zeros). */
let fresh = false;
/** The array the block {@link allocBlock} returned last was handed out as before, if it was cached with it. */
let former: HeapArray | undefined;

/**
 * Allocates `bytes` (rounded up to the alignment): its address, or -1 when the heap is full; sets
 * {@link fresh}.
 */
function allocBlock(h: HeapState, bytes: number): number {
  const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  fresh = false;
  former = undefined;
  const same = h.cache.get(size);
  if (same) same.asked = ++h.clock;
  if (same && same.starts.length > 0) {
    const start = same.starts.pop()!;
    former = same.views.pop();
    h.cached -= size;
    h.live.set(start, size);
    h.used += size;
    return start;
  }
  let start = takeFree(h, size);
  if (start < 0 && h.cached > 0 && h.top + size > h.buffer.byteLength) {
    flushCache(h);
    start = takeFree(h, size);
  }
  if (start < 0) {
    // Extend from the top, absorbing a free block that ends there.
    const below = h.freeEnd.get(h.top);
    const base = below !== undefined ? below : h.top;
    if (!ensure(h, base + size)) return -1;
    if (below !== undefined) removeFree(h, below);
    fresh = below === undefined;
    start = base;
    h.top = Math.max(h.top, base + size);
  }
  h.live.set(start, size);
  h.used += size;
  return start;
}

const registry = new FinalizationRegistry<number>((start) => {
  const h = state;
  watched.delete(start);
  if (h && h.live.has(start)) freeBlock(h, start);
});

/**
 * Arrays {@linkcode heapAlloc} handed out that nobody has taken charge of yet
 * ({@linkcode heapOwn}); the next `heapAlloc` asks the garbage collector to watch them. A caller
 * that takes charge at once (the tensor layer, of every CPU buffer it is given) thus costs the
 * collector nothing, and an array dropped unreleased is watched from the next allocation on.
 */
const pending: HeapArray[] = [];
/** Starts of the blocks whose arrays the garbage collector watches. */
const watched = new Set<number>();

function watchPending(): void {
  for (const view of pending) {
    registry.register(view, view.byteOffset, view);
    watched.add(view.byteOffset);
  }
  pending.length = 0;
}

/** Takes `view` out of {@link pending}; whether it was there. */
function unpend(view: HeapArray): boolean {
  const i = pending.lastIndexOf(view);
  if (i < 0) return false;
  pending[i] = pending[pending.length - 1];
  pending.pop();
  return true;
}

function freeBlock(h: HeapState, start: number, view?: HeapArray): void {
  const size = h.live.get(start)!;
  h.live.delete(start);
  h.used -= size;
  if (size <= CACHE_MAX) {
    const same = h.cache.get(size);
    if (same) {
      same.starts.push(start);
      same.views.push(view);
    } else {
      h.cache.set(size, { starts: [start], views: [view], asked: h.clock });
    }
    h.cached += size;
    if (h.cached > 0.75 * h.buffer.byteLength) trimCache(h, 0.5 * h.buffer.byteLength);
    return;
  }
  release(h, start, size);
}

/** Puts the free block [start, start + size) in the free lists, merged with free neighbours. */
function release(h: HeapState, start: number, size: number): void {
  const leftStart = h.freeEnd.get(start);
  if (leftStart !== undefined) {
    size += removeFree(h, leftStart);
    start = leftStart;
  }
  if (h.freeStart.has(start + size)) size += removeFree(h, start + size);
  addFree(h, start, size);
}

/**
 * `n` elements of `ctor` in the heap (or, where the heap cannot hold them, an ordinary typed
 * array). With `zero` the elements are zero; otherwise they are whatever the memory held, for a
 * caller that overwrites them all. Release heap arrays with {@linkcode heapFree}; one that is
 * dropped instead is reclaimed when the garbage collector finalises it (watched from the next
 * allocation on, unless the caller took charge of it with {@linkcode heapOwn}).
 *
 * @example
 * ```ts
 * import { heapAlloc, heapFree } from "./heap.ts";
 * const x = heapAlloc(Float32Array, 4, true); // Float32Array [0, 0, 0, 0]
 * heapFree(x);
 * ```
 */
export function heapAlloc<C extends HeapArrayConstructor>(ctor: C, n: number, zero: boolean): InstanceType<C> {
  if (pending.length > 0) watchPending();
  const view = heapTemp(ctor, n, zero);
  if (heapAddress(view) >= 0) pending.push(view);
  return view;
}

/**
 * Says that the caller has taken charge of the {@linkcode heapAlloc} array `view`: it will
 * release it with {@linkcode heapFree}, or make sure it is released if dropped (the tensor layer
 * watches the tensors that own a buffer), so the heap need not ask the garbage collector to watch
 * it. Any other array is left as it is.
 *
 * @example
 * ```ts
 * import { heapAlloc, heapFree, heapOwn } from "./heap.ts";
 * const x = heapAlloc(Float32Array, 4, false);
 * heapOwn(x);
 * heapFree(x);
 * ```
 */
export function heapOwn(view: HeapArray): void {
  unpend(view);
}

/**
 * {@linkcode heapAlloc} for scratch that is always released with {@linkcode heapFree} (a
 * kernel's tables and partial results): the garbage collector is not asked to watch it.
 *
 * @example
 * ```ts
 * import { heapFree, heapTemp } from "./heap.ts";
 * const table = heapTemp(Float64Array, 16, false);
 * heapFree(table);
 * ```
 */
export function heapTemp<C extends HeapArrayConstructor>(ctor: C, n: number, zero: boolean): InstanceType<C> {
  const h = heap();
  const start = h && n > 0 ? allocBlock(h, n * ctor.BYTES_PER_ELEMENT) : -1;
  if (start < 0) return new ctor(n) as InstanceType<C>;
  // The block's former array, where it has this type and length, serves again (making one costs more than the rest).
  const view = former?.constructor === ctor && former.length === n
    ? former as InstanceType<C>
    : new ctor(h!.buffer as unknown as ArrayBuffer, start, n) as InstanceType<C>;
  if (zero && !fresh) view.fill(0);
  return view;
}

/**
 * Returns a heap array's memory to the heap (the array must not be used again); ordinary typed
 * arrays are left to the garbage collector.
 *
 * @example
 * ```ts
 * import { heapAlloc, heapFree } from "./heap.ts";
 * heapFree(heapAlloc(Float64Array, 8, false));
 * ```
 */
export function heapFree(view: HeapArray): void {
  const h = state;
  if (!h || view.length === 0 || (view.buffer !== h.buffer && !h.generations.has(view.buffer))) return;
  const start = view.byteOffset;
  if (!h.live.has(start)) return;
  if (!unpend(view) && watched.delete(start)) registry.unregister(view);
  freeBlock(h, start, view);
}

/**
 * The byte address of an array's first element in the heap, or -1 for an array outside it.
 *
 * @example
 * ```ts
 * import { heapAddress, heapAlloc } from "./heap.ts";
 * heapAddress(heapAlloc(Float32Array, 4, false)) % 64; // 0
 * heapAddress(new Float32Array(4)); // -1
 * ```
 */
export function heapAddress(view: ArrayBufferView): number {
  const h = state;
  if (!h) return -1;
  const buffer = view.buffer;
  return buffer === h.buffer || h.generations.has(buffer) ? view.byteOffset : -1;
}

/**
 * Bytes the heap has reserved from the system, in live blocks, and free for reuse.
 *
 * @example
 * ```ts
 * import { heapStats } from "./heap.ts";
 * const { reserved, used, free } = heapStats();
 * ```
 */
export function heapStats(): { reserved: number; used: number; free: number } {
  const h = state;
  if (!h) return { reserved: 0, used: 0, free: 0 };
  return { reserved: h.buffer.byteLength, used: h.used, free: h.top - ALIGN - h.used };
}

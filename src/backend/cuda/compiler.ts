/**
 * Kernel sources and their compilation: the `.cu` files in `kernels/` are found next to this
 * module (`new URL("../../../kernels/...", import.meta.url)`, read with `fetch` when the URL is not
 * a file, so importing patchwork by URL works), compiled by NVRTC for the device's architecture
 * and cached on disk keyed by a hash of the sources, the options, the architecture and the NVRTC
 * version (under `$PATCHWORK_CACHE_DIR`, else `$XDG_CACHE_HOME/patchwork/kernels`, else
 * `~/.cache/patchwork/kernels`).
 *
 * @module
 */

import { ArgumentError, DeviceError } from "../../tensor/errors.ts";
import { describe } from "../../tensor/validate.ts";
import type { CompiledKernel, Nvrtc } from "./nvrtc.ts";

/**
 * The kernel families, one `.cu` file each.
 *
 * @example
 * ```ts
 * import { KERNEL_FAMILIES } from "./compiler.ts";
 * KERNEL_FAMILIES.includes("softmax"); // true
 * ```
 */
export const KERNEL_FAMILIES = [
  "elementwise",
  "copy",
  "reduce",
  "softmax",
  "scan",
  "indexing",
  "random",
  "optim",
  "linalg",
  "stencil",
  "attention",
  "norms",
  "rotary",
  "swiglu",
  "cross_entropy",
  "ssm_scan",
  "spectral",
] as const;

/**
 * One kernel family.
 *
 * @example
 * ```ts
 * import type { KernelFamily } from "./compiler.ts";
 * const f: KernelFamily = "reduce";
 * ```
 */
export type KernelFamily = typeof KERNEL_FAMILIES[number];

/**
 * How many NVRTC programs each family is compiled as (`-DPW_PART=k`, see kernels/common.cuh);
 * the parts of the large families compile in parallel worker threads.
 *
 * @example
 * ```ts
 * import { KERNEL_PARTS } from "./compiler.ts";
 * KERNEL_PARTS.reduce; // 5
 * ```
 */
export const KERNEL_PARTS: Readonly<Record<KernelFamily, number>> = {
  elementwise: 10,
  copy: 1,
  reduce: 5,
  softmax: 1,
  scan: 1,
  indexing: 1,
  random: 1,
  optim: 1,
  linalg: 1,
  stencil: 1,
  attention: 3,
  norms: 1,
  rotary: 1,
  swiglu: 1,
  cross_entropy: 1,
  ssm_scan: 1,
  spectral: 1,
};

/**
 * One compilation unit: a family and a part index.
 *
 * @example
 * ```ts
 * import type { KernelUnit } from "./compiler.ts";
 * const u: KernelUnit = { family: "elementwise", part: 3 };
 * ```
 */
export interface KernelUnit {
  /** The family. */
  readonly family: KernelFamily;
  /** The part (0 when the family has one). */
  readonly part: number;
}

/**
 * Every compilation unit, in family order.
 *
 * @example
 * ```ts
 * import { kernelUnits } from "./compiler.ts";
 * kernelUnits().length; // 31
 * ```
 */
export function kernelUnits(): KernelUnit[] {
  const out: KernelUnit[] = [];
  for (const family of KERNEL_FAMILIES) {
    for (let part = 0; part < KERNEL_PARTS[family]; part++) out.push({ family, part });
  }
  return out;
}

/**
 * Headers every kernel file may include (passed to NVRTC by name).
 *
 * @example
 * ```ts
 * import { KERNEL_HEADERS } from "./compiler.ts";
 * KERNEL_HEADERS[0]; // "common.cuh"
 * ```
 */
export const KERNEL_HEADERS = ["common.cuh"] as const;

/**
 * Source text of every kernel file and header.
 *
 * @example
 * ```ts
 * import type { KernelSources } from "./compiler.ts";
 * // const s: KernelSources = await loadKernelSources(); s.files.copy.length;
 * ```
 */
export interface KernelSources {
  /** `family` → source of `kernels/<family>.cu`. */
  readonly files: Readonly<Record<KernelFamily, string>>;
  /** header name → text. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The directory URL holding the kernel files.
 *
 * @example
 * ```ts
 * import { KERNELS_URL } from "./compiler.ts";
 * new URL("copy.cu", KERNELS_URL).href;
 * ```
 */
export const KERNELS_URL: URL = new URL("../../../kernels/", import.meta.url);

/**
 * Reads every kernel source, with `fetch` for non-file URLs.
 *
 * @example
 * ```ts
 * import { loadKernelSources } from "./compiler.ts";
 * // const sources = await loadKernelSources();
 * ```
 */
export async function loadKernelSources(base: URL = KERNELS_URL): Promise<KernelSources> {
  const read = async (name: string): Promise<string> => {
    const url = new URL(name, base);
    try {
      if (url.protocol === "file:") return await Deno.readTextFile(url);
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return await res.text();
    } catch (e) {
      throw new DeviceError("cuda", `cannot read kernel source ${url.href}: ${(e as Error).message}`);
    }
  };
  const files = {} as Record<KernelFamily, string>;
  const headers: Record<string, string> = {};
  await Promise.all([
    ...KERNEL_FAMILIES.map(async (f) => {
      files[f] = await read(`${f}.cu`);
    }),
    ...KERNEL_HEADERS.map(async (h) => {
      headers[h] = await read(h);
    }),
  ]);
  return { files, headers };
}

/**
 * Reads every kernel source synchronously; works only when the kernels are local files (use
 * `await createCudaBackend()` when patchwork is imported by URL).
 *
 * @example
 * ```ts
 * import { loadKernelSourcesSync } from "./compiler.ts";
 * // const sources = loadKernelSourcesSync();
 * ```
 */
export function loadKernelSourcesSync(base: URL = KERNELS_URL): KernelSources {
  if (base.protocol !== "file:") {
    throw new DeviceError(
      "cuda",
      `kernel sources at ${base.href} are not local files; create the backend with await createCudaBackend()`,
    );
  }
  const read = (name: string): string => {
    const url = new URL(name, base);
    try {
      return Deno.readTextFileSync(url);
    } catch (e) {
      throw new DeviceError("cuda", `cannot read kernel source ${url.href}: ${(e as Error).message}`);
    }
  };
  const files = {} as Record<KernelFamily, string>;
  for (const f of KERNEL_FAMILIES) files[f] = read(`${f}.cu`);
  const headers: Record<string, string> = {};
  for (const h of KERNEL_HEADERS) headers[h] = read(h);
  return { files, headers };
}

/**
 * 128-bit FNV-1a style hash (two 64-bit lanes) of a string, as 32 hex digits. Used only as a
 * cache key, synchronously.
 *
 * @example
 * ```ts
 * import { hashText } from "./compiler.ts";
 * hashText("abc").length; // 32
 * ```
 */
export function hashText(text: string): string {
  const mask = (1n << 64n) - 1n;
  const prime = 0x100000001b3n;
  // Process 32-bit words with Math.imul-based mixing for speed, then fold into BigInt lanes.
  let h1 = 0x811c9dc5 | 0, h2 = 0x01000193 | 0, h3 = 0x9e3779b9 | 0, h4 = 0x85ebca6b | 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h3 = Math.imul(h3 ^ c, 0x27d4eb2f);
    h4 = Math.imul(h4 ^ c, 0x165667b1);
  }
  let a = BigInt(h1 >>> 0) << 32n | BigInt(h2 >>> 0);
  let b = BigInt(h3 >>> 0) << 32n | BigInt(h4 >>> 0);
  a = ((a ^ BigInt(text.length)) * prime) & mask;
  b = ((b ^ (a >> 17n)) * prime) & mask;
  return a.toString(16).padStart(16, "0") + b.toString(16).padStart(16, "0");
}

/**
 * The default on-disk kernel cache directory, or undefined when no home is known.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./compiler.ts";
 * defaultCacheDir(); // e.g. "/home/me/.cache/patchwork/kernels"
 * ```
 */
export function defaultCacheDir(): string | undefined {
  try {
    const explicit = Deno.env.get("PATCHWORK_CACHE_DIR");
    if (explicit) return explicit;
    const xdg = Deno.env.get("XDG_CACHE_HOME");
    if (xdg) return `${xdg}/patchwork/kernels`;
    const home = Deno.env.get("HOME");
    if (home) return `${home}/.cache/patchwork/kernels`;
  } catch {
    // no env permission: no cache
  }
  return undefined;
}

/**
 * The kernel cache directory an option asks for: `null` turns the disk cache off (undefined is
 * returned), a path is used as given, and `undefined` takes {@link defaultCacheDir}.
 *
 * @example
 * ```ts
 * import { kernelCacheDir } from "./compiler.ts";
 * kernelCacheDir(null); // undefined: no disk cache
 * kernelCacheDir("/tmp/kernels"); // "/tmp/kernels"
 * ```
 */
export function kernelCacheDir(option: string | null | undefined): string | undefined {
  if (option === null) return undefined;
  if (option === undefined) return defaultCacheDir();
  if (typeof option !== "string" || option === "") {
    throw new ArgumentError(
      "cuda",
      `cacheDir must be a directory path, or null to turn the kernel cache off, got ${describe(option)}`,
    );
  }
  return option;
}

/**
 * Counters of the kernel cache.
 *
 * @example
 * ```ts
 * import type { KernelCacheStats } from "./compiler.ts";
 * const s: KernelCacheStats = { hits: 19, misses: 0, compileMs: 0 };
 * ```
 */
export interface KernelCacheStats {
  /** Families loaded from the disk cache. */
  hits: number;
  /** Families compiled by NVRTC. */
  misses: number;
  /** Milliseconds spent compiling (wall clock; parallel compiles overlap). */
  compileMs: number;
  /** NVRTC milliseconds of each compiled unit (`family.part`). */
  units?: Record<string, number>;
}

/**
 * Compiles kernel families for one architecture through a disk cache.
 *
 * @example
 * ```ts
 * import { KernelCompiler } from "./compiler.ts";
 * // const c = new KernelCompiler(loadNvrtc(), 90, sources); c.build("elementwise").image;
 * ```
 */
export class KernelCompiler {
  /** Cache counters. */
  readonly stats: KernelCacheStats = { hits: 0, misses: 0, compileMs: 0 };
  /** The options passed to NVRTC. */
  readonly options: readonly string[];
  /** "cubin" for a real architecture NVRTC supports, "ptx" otherwise (the driver JITs it). */
  readonly kind: "cubin" | "ptx";
  readonly #nvrtc: Nvrtc;
  readonly #sources: KernelSources;
  readonly #cacheDir: string | undefined;

  /**
   * `arch` is the device's compute capability as major*10+minor (90 for an H100). When NVRTC
   * cannot build a CUBIN for it, PTX for the newest supported older architecture is built instead.
   * `cacheDir` as {@link kernelCacheDir} reads it: null for no disk cache, undefined for the default.
   */
  constructor(nvrtc: Nvrtc, arch: number, sources: KernelSources, cacheDir?: string | null) {
    this.#nvrtc = nvrtc;
    this.#sources = sources;
    this.#cacheDir = kernelCacheDir(cacheDir);
    const supported = nvrtc.supportedArchs();
    const cubinOk = nvrtc.sym.nvrtcGetCUBIN !== null && (supported.length === 0 || supported.includes(arch));
    let target = `sm_${arch}`;
    if (!cubinOk) {
      const older = supported.filter((a) => a <= arch);
      target = `compute_${older.length ? Math.max(...older) : arch}`;
    }
    this.kind = cubinOk ? "cubin" : "ptx";
    this.options = [`--gpu-architecture=${target}`, "--std=c++17", "-default-device"];
  }

  /** NVRTC options of one unit. */
  unitOptions(unit: KernelUnit): string[] {
    return KERNEL_PARTS[unit.family] > 1 ? [...this.options, `-DPW_PART=${unit.part}`] : [...this.options];
  }

  /** The cache file of a unit (undefined without a cache directory). */
  cachePath(unit: KernelUnit): string | undefined {
    if (!this.#cacheDir) return undefined;
    const key = hashText(
      [
        this.#sources.files[unit.family],
        ...Object.entries(this.#sources.headers).map(([k, v]) => `${k}\n${v}`),
        this.unitOptions(unit).join(" "),
        `nvrtc ${this.#nvrtc.version}`,
      ].join("\n\u0000\n"),
    );
    return `${this.#cacheDir}/${unit.family}.${unit.part}-${key}.${this.kind}`;
  }

  /** The cached image of a unit, if any. */
  cached(unit: KernelUnit): CompiledKernel | undefined {
    const path = this.cachePath(unit);
    if (!path) return undefined;
    try {
      const image = Deno.readFileSync(path);
      if (image.length > 0) {
        this.stats.hits++;
        return { image, kind: this.kind, log: "" };
      }
    } catch {
      // miss
    }
    return undefined;
  }

  #store(unit: KernelUnit, image: Uint8Array): void {
    const path = this.cachePath(unit);
    if (!path || !this.#cacheDir) return;
    try {
      Deno.mkdirSync(this.#cacheDir, { recursive: true });
      const tmp = `${path}.${Deno.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      Deno.writeFileSync(tmp, image);
      Deno.renameSync(tmp, path);
    } catch {
      // an unwritable cache only costs a recompile next time
    }
  }

  /** The compiled image of a unit, from the disk cache or NVRTC (on this thread). */
  build(unit: KernelUnit): CompiledKernel {
    const hit = this.cached(unit);
    if (hit) return hit;
    const t0 = performance.now();
    const out = this.#nvrtc.compile(
      this.#sources.files[unit.family],
      `${unit.family}.cu`,
      this.#sources.headers,
      this.unitOptions(unit),
    );
    const ms = performance.now() - t0;
    this.stats.compileMs += ms;
    this.stats.misses++;
    (this.stats.units ??= {})[unitName(unit)] = Math.round(ms);
    this.#store(unit, out.image);
    return out;
  }

  /**
   * Builds every unit: cache hits are read, misses compile in parallel worker threads (at most
   * `threads`), falling back to this thread where workers cannot start.
   */
  async buildAll(threads = Math.min(8, navigator.hardwareConcurrency || 4)): Promise<Map<string, CompiledKernel>> {
    const out = new Map<string, CompiledKernel>();
    const todo: KernelUnit[] = [];
    for (const unit of kernelUnits()) {
      const hit = this.cached(unit);
      if (hit) out.set(unitName(unit), hit);
      else todo.push(unit);
    }
    if (todo.length === 0) return out;
    // Biggest first so the long units start early.
    todo.sort((a, b) => KERNEL_PARTS[b.family] - KERNEL_PARTS[a.family]);
    const t0 = performance.now();
    const workers: Worker[] = [];
    try {
      const n = Math.max(1, Math.min(threads, todo.length));
      for (let i = 0; i < n; i++) {
        workers.push(new Worker(new URL("./compile_worker.ts", import.meta.url).href, { type: "module" }));
      }
    } catch {
      for (const w of workers) w.terminate();
      workers.length = 0;
    }
    if (workers.length === 0) {
      for (const unit of todo) out.set(unitName(unit), this.build(unit));
      return out;
    }
    let next = 0;
    const run = async (w: Worker): Promise<void> => {
      while (next < todo.length) {
        const unit = todo[next++];
        const res = await new Promise<CompileReply>((resolve) => {
          w.onmessage = (e: MessageEvent<CompileReply>) => resolve(e.data);
          w.onerror = (e: ErrorEvent) => {
            e.preventDefault();
            resolve({ error: e.message });
          };
          const request: CompileRequest = {
            nvrtcPath: this.#nvrtc.path,
            source: this.#sources.files[unit.family],
            name: `${unit.family}.cu`,
            headers: { ...this.#sources.headers },
            options: this.unitOptions(unit),
          };
          w.postMessage(request);
        });
        let compiled: CompiledKernel;
        if (res.image) {
          compiled = { image: res.image, kind: res.kind ?? this.kind, log: res.log ?? "" };
          this.stats.misses++;
          (this.stats.units ??= {})[unitName(unit)] = Math.round(res.ms ?? 0);
          this.#store(unit, compiled.image);
        } else if (res.compileError) {
          throw new DeviceError("cuda", res.compileError);
        } else {
          compiled = this.build(unit); // worker could not run NVRTC: compile here
        }
        out.set(unitName(unit), compiled);
      }
    };
    try {
      await Promise.all(workers.map(run));
    } finally {
      for (const w of workers) w.terminate();
    }
    this.stats.compileMs += performance.now() - t0;
    return out;
  }
}

/**
 * The name of a unit (`family.part`).
 *
 * @example
 * ```ts
 * import { unitName } from "./compiler.ts";
 * unitName({ family: "reduce", part: 2 }); // "reduce.2"
 * ```
 */
export function unitName(unit: KernelUnit): string {
  return `${unit.family}.${unit.part}`;
}

/**
 * A request to the compile worker.
 *
 * @example
 * ```ts
 * import type { CompileRequest } from "./compiler.ts";
 * const r: CompileRequest = { nvrtcPath: "libnvrtc.so.13", source: "", name: "x.cu", headers: {}, options: [] };
 * ```
 */
export interface CompileRequest {
  /** Path of the NVRTC library to open. */
  nvrtcPath: string;
  /** Source text. */
  source: string;
  /** Program name. */
  name: string;
  /** Header name → text. */
  headers: Record<string, string>;
  /** NVRTC options. */
  options: string[];
}

/**
 * The compile worker's reply.
 *
 * @example
 * ```ts
 * import type { CompileReply } from "./compiler.ts";
 * const r: CompileReply = { error: "NVRTC not found" };
 * ```
 */
export interface CompileReply {
  /** The image on success. */
  image?: Uint8Array<ArrayBuffer>;
  /** Its kind. */
  kind?: "cubin" | "ptx";
  /** The compiler log. */
  log?: string;
  /** Milliseconds NVRTC took. */
  ms?: number;
  /** A compile error (bad source): fatal. */
  compileError?: string;
  /** Any other failure (the caller compiles on its own thread instead). */
  error?: string;
}

/**
 * safetensors files read and written tensor by tensor: {@link SafetensorsFile} reads the header
 * once and then any tensor on demand, straight into a tensor that already exists (a model's
 * parameter), in chunks, converting the dtype on the way; {@link writeSafetensorsFile} writes one
 * tensor's bytes at a time. Loading or saving a checkpoint thus holds about one copy of it in
 * host memory, not two.
 *
 * @module
 */

import { type Backend, type DType, fmtShape, getDefaultBackend, shapesEqual, Tensor } from "../tensor/mod.ts";
import type { StateDict } from "./module.ts";
import {
  buildHeader,
  checkEntries,
  FROM_FILE,
  headerLength,
  hostArrayOf,
  ITEM,
  layout,
  parseHeader,
  type SafetensorsEntry,
  SafetensorsError,
  tensorBytes,
} from "./safetensors.ts";

const CHUNK_BYTES = 16 << 20;

function readFully(file: Deno.FsFile, at: number, length: number, into?: Uint8Array): Uint8Array {
  const out = into ? into.subarray(0, length) : new Uint8Array(length);
  file.seekSync(at, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = file.readSync(out.subarray(done));
    if (n === null || n === 0) break;
    done += n;
  }
  return done === length ? out : out.subarray(0, done);
}

/**
 * Options of {@link SafetensorsFile.read}.
 *
 * @example
 * ```ts
 * import type { ReadOptions } from "./safetensors_file.ts";
 * const o: ReadOptions = { dtype: "bfloat16" };
 * ```
 */
export interface ReadOptions {
  /** Dtype of the tensor made (default: the file's, F16 as float32). */
  dtype?: DType;
  /** Backend of the tensor made. Default: the default backend. */
  backend?: Backend;
}

/**
 * An open safetensors file: its header parsed and checked, its tensors read one at a time.
 *
 * @example
 * ```ts
 * import { SafetensorsFile } from "./safetensors_file.ts";
 * const f = SafetensorsFile.open("model.safetensors");
 * const w = f.read("lm_head.weight", { dtype: "float32" });
 * f.close();
 * ```
 */
export class SafetensorsFile {
  /** The path opened. */
  readonly path: string;
  /** Tensor records by name, in header order. */
  readonly entries: Map<string, SafetensorsEntry>;
  /** The `__metadata__` strings. */
  readonly metadata: Record<string, string>;
  readonly #file: Deno.FsFile;
  readonly #dataStart: number;
  /** One read buffer for every chunk, so reading leaves no garbage behind for the collector. */
  #scratch = new Uint8Array(0);

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
    const size = file.statSync().size;
    const n = headerLength(readFully(file, 0, 8), size - 8, path);
    const { entries, metadata } = parseHeader(readFully(file, 8, n), size - 8 - n, path);
    this.entries = new Map(entries.map((e) => [e.name, e]));
    this.metadata = metadata;
    this.#dataStart = 8 + n;
  }

  /** Opens `path` and reads its header (a {@link SafetensorsError} names the file if it is malformed). */
  static open(path: string | URL): SafetensorsFile {
    const file = Deno.openSync(path, { read: true });
    try {
      return new SafetensorsFile(String(path), file);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  #entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError("SafetensorsFile", `${this.path}: no tensor "${name}"`);
    return e;
  }

  /** The tensor `name` as a new tensor (of `options.dtype`, converted while reading). */
  read(name: string, options: ReadOptions = {}): Tensor {
    const e = this.#entry(name);
    const backend = options.backend ?? getDefaultBackend();
    const dtype = options.dtype ?? FROM_FILE[e.dtype];
    const out = Tensor.fromBuffer(backend.full(e.shape.reduce((a, b) => a * b, 1), 0, dtype), e.shape, dtype);
    this.readInto(name, out);
    return out;
  }

  /**
   * Reads the tensor `name` into `target` (contiguous, of the same shape; any dtype), in chunks of
   * a few megabytes, so no second full-size copy is made. Unrecorded (for loading weights).
   */
  readInto(name: string, target: Tensor): void {
    const e = this.#entry(name);
    if (!shapesEqual(e.shape, target.shape)) {
      throw new SafetensorsError(
        "SafetensorsFile",
        `${this.path}: tensor "${name}" has shape ${fmtShape(e.shape)} but the target is ${fmtShape(target.shape)}`,
      );
    }
    if (!target.isContiguous) {
      throw new SafetensorsError("SafetensorsFile", `the target of "${name}" must be contiguous`);
    }
    const item = ITEM[e.dtype];
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / item));
    const count = (e.end - e.begin) / item;
    const backend = target.backend;
    if (this.#scratch.length < Math.min(count, perChunk) * item) this.#scratch = new Uint8Array(perChunk * item);
    for (let start = 0; start < count; start += perChunk) {
      const len = Math.min(perChunk, count - start);
      const bytes = readFully(this.#file, this.#dataStart + e.begin + start * item, len * item, this.#scratch);
      if (bytes.length !== len * item) {
        throw new SafetensorsError("SafetensorsFile", `${this.path}: truncated while reading "${name}"`);
      }
      const chunk = backend.fromHost(hostArrayOf(bytes, e.dtype), target.dtype);
      backend.copy(
        { buffer: chunk, shape: [len], strides: [1], offset: 0 },
        { buffer: target.buffer, shape: [len], strides: [1], offset: target.offset + start },
      );
      backend.free(chunk);
    }
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}

/**
 * Options of {@link writeSafetensorsFile}.
 *
 * @example
 * ```ts
 * import type { WriteOptions } from "./safetensors_file.ts";
 * const o: WriteOptions = { dtype: "F16", metadata: { format: "pt" } };
 * ```
 */
export interface WriteOptions {
  /** safetensors dtype for every float tensor (F32, F64, BF16, F16). Default: each tensor's own. */
  dtype?: "F32" | "F64" | "BF16" | "F16";
  /** `__metadata__` strings. */
  metadata?: Record<string, string>;
}

/**
 * Writes named tensors to a safetensors file one tensor at a time (the header first, then each
 * tensor's bytes), so only one tensor's host copy exists at once. Returns the bytes written.
 *
 * @example
 * ```ts
 * import { writeSafetensorsFile } from "./safetensors_file.ts";
 * import { zeros } from "../tensor/mod.ts";
 * writeSafetensorsFile("w.safetensors", { w: zeros([2, 2]) }, { dtype: "BF16" });
 * ```
 */
export function writeSafetensorsFile(path: string | URL, dict: StateDict, options: WriteOptions = {}): number {
  const metadata = options.metadata ?? {};
  const entries = checkEntries("writeSafetensorsFile", dict, metadata);
  const byName = new Map(entries);
  const plan = layout(entries, (t) => (options.dtype && t.dtype !== "int32" ? options.dtype : undefined));
  const json = buildHeader(plan, metadata);
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    const write = (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
    };
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    write(len);
    write(json);
    for (const e of plan) write(tensorBytes(byName.get(e.name)!, e.dtype));
  } finally {
    file.close();
  }
  return 8 + json.length + (plan.length ? plan[plan.length - 1].end : 0);
}

/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, …}` with
 * an optional `"__metadata__"` map of strings (padded with spaces to a multiple of 8 bytes), then
 * the raw little-endian data, offsets counted from the end of the header. Files written here load
 * in PyTorch/JAX (`safetensors.torch.load_file`) and back.
 *
 * Supported dtypes: F32, F64, BF16 and I32 (patchwork's float32, float64, bfloat16, int32).
 * Anything malformed raises a {@link SafetensorsError} that names the file and the problem.
 *
 * @module
 */

import { type Backend, type DType, fmtShape, PatchworkError, type Tensor, tensor } from "../tensor/mod.ts";
import type { StateDict } from "./module.ts";

/**
 * A safetensors file that is truncated, corrupt, or holds something patchwork cannot represent.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, SafetensorsError } from "./safetensors.ts";
 * try {
 *   decodeSafetensors(new Uint8Array(3), { source: "bad.safetensors" });
 * } catch (e) {
 *   e instanceof SafetensorsError; // true: "...bad.safetensors: truncated..."
 * }
 * ```
 */
export class SafetensorsError extends PatchworkError {}

/**
 * The contents of a safetensors file.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const { tensors, metadata } = decodeSafetensors(encodeSafetensors({ w: zeros([2]) }, { epoch: "1" }));
 * tensors.get("w")!.shape; // [2]
 * ```
 */
export interface SafetensorsContents {
  /** Tensors by name, in file order. */
  tensors: Map<string, Tensor>;
  /** The `__metadata__` strings (empty when absent). */
  metadata: Record<string, string>;
}

/**
 * Options of {@link decodeSafetensors} and {@link loadSafetensors}.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { zeros } from "../tensor/mod.ts";
 * decodeSafetensors(encodeSafetensors({ w: zeros([2]) }), { source: "weights.safetensors" });
 * ```
 */
export interface DecodeOptions {
  /** Backend to create the tensors on. Default: the default backend. */
  backend?: Backend;
  /** Name of the data's origin, used in error messages (loadSafetensors passes the path). */
  source?: string;
}

const TO_FILE: Record<DType, string> = { float32: "F32", float64: "F64", bfloat16: "BF16", int32: "I32" };
const FROM_FILE: Record<string, DType> = { F32: "float32", F64: "float64", BF16: "bfloat16", I32: "int32" };
const ITEM: Record<string, number> = { F32: 4, F64: 8, BF16: 2, I32: 4 };
const MAX_HEADER = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function entriesOf(dict: StateDict): [string, Tensor][] {
  return dict instanceof Map ? [...dict.entries()] : Object.entries(dict);
}

/** The tensor's elements as little-endian bytes in its safetensors dtype. */
function bytesOf(t: Tensor): Uint8Array {
  const host = t.toTypedArray();
  let data: Float32Array | Float64Array | Int32Array | Uint16Array = host;
  if (t.dtype === "bfloat16") {
    // Values read back from a bfloat16 tensor are exact in float32: the low 16 bits are zero.
    const bits = new Uint32Array(host.buffer, host.byteOffset, host.length);
    data = new Uint16Array(host.length);
    for (let i = 0; i < bits.length; i++) data[i] = bits[i] >>> 16;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return LITTLE_ENDIAN ? bytes : swapBytes(bytes, data.BYTES_PER_ELEMENT);
}

function swapBytes(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j];
  }
  return out;
}

/**
 * Serialises named tensors (and optional string metadata) to safetensors bytes. Tensors are
 * written widest dtype first, then in the order given, so every tensor's data is aligned.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const bytes = encodeSafetensors({ w: tensor([[1, 2], [3, 4]]) }, { step: "10" });
 * decodeSafetensors(bytes).metadata.step; // "10"
 * ```
 */
export function encodeSafetensors(dict: StateDict, metadata: Record<string, string> = {}): Uint8Array {
  const op = "encodeSafetensors";
  const entries = entriesOf(dict);
  for (const [name, t] of entries) {
    if (name === "__metadata__" || name.length === 0) {
      throw new SafetensorsError(op, `tensor name ${JSON.stringify(name)} is reserved or empty`);
    }
    if (t === null || typeof t !== "object" || typeof t.toTypedArray !== "function") {
      throw new SafetensorsError(op, `entry "${name}" is not a Tensor`);
    }
    if (t.disposed) throw new SafetensorsError(op, `tensor "${name}" was disposed`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new SafetensorsError(op, `metadata "${k}" must be a string, got ${typeof v}`);
  }
  const order = entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => ITEM[TO_FILE[b.e[1].dtype]] - ITEM[TO_FILE[a.e[1].dtype]] || a.i - b.i)
    .map(({ e }) => e);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of order) {
    const bytes = bytesOf(t);
    header[name] = { dtype: TO_FILE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses safetensors bytes into tensors and metadata. Checks the header length, the JSON, every
 * entry's dtype, shape and byte range (in bounds, sized to the shape, no overlaps or holes) and
 * raises a {@link SafetensorsError} naming `options.source` and the problem otherwise.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const { tensors } = decodeSafetensors(encodeSafetensors({ b: tensor([1, 2], { dtype: "bfloat16" }) }));
 * tensors.get("b")!.dtype; // "bfloat16"
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array, options: DecodeOptions = {}): SafetensorsContents {
  const where = options.source ?? "<bytes>";
  const fail = (detail: string): never => {
    throw new SafetensorsError("loadSafetensors", `${where}: ${detail}`);
  };
  if (!(bytes instanceof Uint8Array)) fail("expected a Uint8Array");
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER) fail(`corrupt header length ${n} (more than ${MAX_HEADER} bytes)`);
  if (8 + n > bytes.length) {
    fail(`truncated: the header claims ${n} bytes but only ${bytes.length - 8} follow the length field`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`corrupt header: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail("corrupt header: expected a JSON object");
  }
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail("__metadata__ must be an object");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__ "${k}" must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (info === null || typeof info !== "object") fail(`tensor "${name}": entry must be an object`);
    const dtype = info.dtype;
    if (typeof dtype !== "string") fail(`tensor "${name}": missing dtype`);
    if (!(dtype as string in FROM_FILE)) {
      fail(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F64, BF16, I32)`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      fail(`tensor "${name}": shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => !Number.isSafeInteger(o) || o < 0)) {
      fail(`tensor "${name}": data_offsets must be [begin, end], got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const want = numel * ITEM[dtype as string];
    if (end < begin || end - begin !== want) {
      fail(
        `tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ` +
          `${fmtShape(shape as number[])} needs ${want}`,
      );
    }
    if (end > dataLength) {
      fail(`truncated: tensor "${name}" ends at byte ${end} of the data but the data has ${dataLength} bytes`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin < pos) fail(`corrupt: tensor "${e.name}" overlaps the previous tensor's data`);
    if (e.begin > pos) fail(`corrupt: a hole in the data before tensor "${e.name}" (bytes ${pos}..${e.begin})`);
    pos = e.end;
  }
  if (pos !== dataLength) fail(`corrupt: ${dataLength - pos} bytes of data after the last tensor`);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    let chunk: Uint8Array = bytes.slice(dataStart + e.begin, dataStart + e.end); // a copy: aligned, owned
    const size = ITEM[e.dtype];
    if (!LITTLE_ENDIAN) chunk = swapBytes(chunk, size);
    const count = (e.end - e.begin) / size;
    const host = e.dtype === "F32"
      ? new Float32Array(chunk.buffer, 0, count)
      : e.dtype === "F64"
      ? new Float64Array(chunk.buffer, 0, count)
      : e.dtype === "I32"
      ? new Int32Array(chunk.buffer, 0, count)
      : new Uint16Array(chunk.buffer, 0, count); // bfloat16 raw bits
    tensors.set(e.name, tensor(host, { shape: e.shape, dtype: FROM_FILE[e.dtype], backend: options.backend }));
  }
  return { tensors, metadata };
}

/**
 * Writes named tensors (a module's `stateDict()`, say) to a safetensors file.
 *
 * @example
 * ```ts
 * import { saveSafetensors } from "./safetensors.ts";
 * import { MLP } from "./linear.ts";
 * const net = new MLP([2, 16, 1]);
 * await saveSafetensors("net.safetensors", net.stateDict(), { epoch: "3" });
 * ```
 */
export async function saveSafetensors(
  path: string | URL,
  dict: StateDict,
  metadata: Record<string, string> = {},
): Promise<void> {
  await Deno.writeFile(path, encodeSafetensors(dict, metadata));
}

/**
 * Reads a safetensors file into tensors and metadata (see {@link decodeSafetensors} for the checks).
 *
 * @example
 * ```ts
 * import { loadSafetensors } from "./safetensors.ts";
 * import { MLP } from "./linear.ts";
 * const net = new MLP([2, 16, 1]);
 * const { tensors } = await loadSafetensors("net.safetensors");
 * net.loadStateDict(tensors);
 * ```
 */
export async function loadSafetensors(path: string | URL, options: DecodeOptions = {}): Promise<SafetensorsContents> {
  const bytes = await Deno.readFile(path);
  return decodeSafetensors(bytes, { ...options, source: options.source ?? String(path) });
}

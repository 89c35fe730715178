/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, …}` with
 * an optional `"__metadata__"` map of strings (padded with spaces to a multiple of 8 bytes), then
 * the raw little-endian data, offsets counted from the end of the header. Files written here load
 * in PyTorch/JAX (`safetensors.torch.load_file`) and back.
 *
 * Supported dtypes: F32, F64, BF16 and I32 (patchwork's float32, float64, bfloat16, int32), and F16,
 * which is read as float32 (patchwork has no float16 tensors) and can be written from any float
 * tensor. Anything malformed raises a {@link SafetensorsError} that names the file and the problem.
 * `safetensors_file.ts` reads and writes files tensor by tensor for checkpoints larger than memory
 * can hold twice.
 *
 * @module
 */

import {
  type Backend,
  type DType,
  fmtShape,
  type HostArray,
  PatchworkError,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
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

/** The safetensors dtype of each patchwork dtype. */
export const TO_FILE: Record<DType, string> = { float32: "F32", float64: "F64", bfloat16: "BF16", int32: "I32" };
/** The patchwork dtype each readable safetensors dtype becomes (F16 widens to float32). */
export const FROM_FILE: Record<string, DType> = {
  F32: "float32",
  F64: "float64",
  BF16: "bfloat16",
  I32: "int32",
  F16: "float32",
};
/** Bytes per element of each safetensors dtype. */
export const ITEM: Record<string, number> = { F32: 4, F64: 8, BF16: 2, I32: 4, F16: 2 };
const MAX_HEADER = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = LITTLE_ENDIAN ? 1 : 0;

/**
 * Widens 16 IEEE half-precision bits to a number.
 *
 * @example
 * ```ts
 * import { fromFloat16Bits } from "./safetensors.ts";
 * fromFloat16Bits(0x3c00); // 1
 * ```
 */
export function fromFloat16Bits(h: number): number {
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Rounds a number to IEEE half precision (to nearest, ties to even; overflow to ±∞) and returns
 * its 16 bits.
 *
 * @example
 * ```ts
 * import { fromFloat16Bits, toFloat16Bits } from "./safetensors.ts";
 * fromFloat16Bits(toFloat16Bits(0.1)); // 0.0999755859375
 * ```
 */
export function toFloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  f64[0] = x;
  const hi = u32[HI];
  const sign = (hi >>> 16) & 0x8000;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest half (65504)
  // The unbiased exponent from the float64 bits (exact, unlike log2), at least −14 (subnormals).
  const exp = Math.max(((hi >>> 20) & 0x7ff) - 1023, -14);
  const q = exp === -14 && a < 2 ** -14 ? a / 2 ** -24 : (a / 2 ** exp - 1) * 1024; // exact
  let r = Math.round(q);
  if (r - q === 0.5 && r % 2 === 1) r--; // ties to even
  if (exp === -14 && a < 2 ** -14) return sign | r; // subnormal (r = 1024 is the smallest normal)
  return sign | (((exp + 15) << 10) + r); // r = 1024 carries into the exponent
}

function entriesOf(dict: StateDict): [string, Tensor][] {
  return dict instanceof Map ? [...dict.entries()] : Object.entries(dict);
}

/**
 * The elements of `t` as little-endian bytes of the safetensors dtype `fileDType` (default: the
 * tensor's own; F16 rounds, BF16 from a wider float rounds, as the backend casts).
 *
 * @example
 * ```ts
 * import { tensorBytes } from "./safetensors.ts";
 * import { tensor } from "../tensor/mod.ts";
 * tensorBytes(tensor([1]), "F16"); // Uint8Array [0, 60]
 * ```
 */
export function tensorBytes(t: Tensor, fileDType: string = TO_FILE[t.dtype]): Uint8Array {
  let data: Float32Array | Float64Array | Int32Array | Uint16Array;
  if (fileDType === "F16") {
    const host = t.toTypedArray();
    data = new Uint16Array(host.length);
    for (let i = 0; i < host.length; i++) data[i] = toFloat16Bits(host[i]);
  } else {
    const dtype = FROM_FILE[fileDType];
    const host = (t.dtype === dtype ? t : t.cast(dtype)).toTypedArray();
    data = host;
    if (dtype === "bfloat16") {
      // Values read back from a bfloat16 tensor are exact in float32: the low 16 bits are zero.
      const bits = new Uint32Array(host.buffer, host.byteOffset, host.length);
      data = new Uint16Array(host.length);
      for (let i = 0; i < bits.length; i++) data[i] = bits[i] >>> 16;
    }
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
 * Little-endian bytes of the safetensors dtype `fileDType` as a host array a backend accepts
 * (F16 widened to a `Float32Array`, BF16 as raw `Uint16Array` bits). `bytes` must start at an
 * offset aligned to the element size (a fresh copy is).
 *
 * @example
 * ```ts
 * import { hostArrayOf } from "./safetensors.ts";
 * hostArrayOf(new Uint8Array([0, 60]), "F16"); // Float32Array [1]
 * ```
 */
export function hostArrayOf(bytes: Uint8Array, fileDType: string): HostArray {
  const size = ITEM[fileDType];
  const own = LITTLE_ENDIAN ? bytes : swapBytes(bytes, size);
  const count = own.length / size;
  switch (fileDType) {
    case "F32":
      return new Float32Array(own.buffer, own.byteOffset, count);
    case "F64":
      return new Float64Array(own.buffer, own.byteOffset, count);
    case "I32":
      return new Int32Array(own.buffer, own.byteOffset, count);
    case "BF16":
      return new Uint16Array(own.buffer, own.byteOffset, count);
    default: {
      const bits = new Uint16Array(own.buffer, own.byteOffset, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = fromFloat16Bits(bits[i]);
      return out;
    }
  }
}

/**
 * One tensor's record in a safetensors header: its file dtype, shape and byte range in the data.
 *
 * @example
 * ```ts
 * import type { SafetensorsEntry } from "./safetensors.ts";
 * const e: SafetensorsEntry = { name: "w", dtype: "BF16", shape: [2, 2], begin: 0, end: 8 };
 * ```
 */
export interface SafetensorsEntry {
  /** Tensor name. */
  name: string;
  /** safetensors dtype (F32, F64, BF16, F16, I32). */
  dtype: string;
  /** Shape. */
  shape: number[];
  /** First byte, counted from the end of the header. */
  begin: number;
  /** One past the last byte. */
  end: number;
}

/**
 * The padded JSON header (without the 8-byte length) for tensors laid out in the order given.
 *
 * @example
 * ```ts
 * import { buildHeader } from "./safetensors.ts";
 * buildHeader([{ name: "w", dtype: "F32", shape: [1], begin: 0, end: 4 }], {}).length % 8; // 0
 * ```
 */
export function buildHeader(entries: readonly SafetensorsEntry[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  for (const e of entries) header[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [e.begin, e.end] };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

/** Checks the names and metadata of tensors to write; returns the entries. */
export function checkEntries(op: string, dict: StateDict, metadata: Record<string, string>): [string, Tensor][] {
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
  return entries;
}

/**
 * Lays out tensors widest file dtype first, then in the order given (so every tensor's data is
 * aligned): the header entries with their byte ranges.
 *
 * @example
 * ```ts
 * import { layout } from "./safetensors.ts";
 * import { zeros } from "../tensor/mod.ts";
 * layout([["a", zeros([1], { dtype: "bfloat16" })], ["b", zeros([1])]], () => undefined).map((e) => e.name); // ["b", "a"]
 * ```
 */
export function layout(
  entries: readonly [string, Tensor][],
  fileDTypeOf: (t: Tensor) => string | undefined,
): SafetensorsEntry[] {
  const typed = entries.map(([name, t], i) => ({ name, t, i, dtype: fileDTypeOf(t) ?? TO_FILE[t.dtype] }));
  typed.sort((a, b) => ITEM[b.dtype] - ITEM[a.dtype] || a.i - b.i);
  let offset = 0;
  return typed.map(({ name, t, dtype }) => {
    const begin = offset;
    offset += t.size * ITEM[dtype];
    return { name, dtype, shape: [...t.shape], begin, end: offset };
  });
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
  const entries = checkEntries("encodeSafetensors", dict, metadata);
  const byName = new Map(entries);
  const plan = layout(entries, () => undefined);
  const json = buildHeader(plan, metadata);
  const total = plan.length ? plan[plan.length - 1].end : 0;
  const out = new Uint8Array(8 + json.length + total);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  for (const e of plan) out.set(tensorBytes(byName.get(e.name)!, e.dtype), 8 + json.length + e.begin);
  return out;
}

/**
 * Parses and checks a safetensors header (the JSON after the 8-byte length) against the length
 * of the data that follows: every entry's dtype, shape and byte range (in bounds, sized to the
 * shape, no overlaps or holes). Raises a {@link SafetensorsError} naming `where` otherwise.
 *
 * @example
 * ```ts
 * import { parseHeader } from "./safetensors.ts";
 * const json = new TextEncoder().encode('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
 * parseHeader(json, 4, "w.safetensors").entries[0].shape; // [1]
 * ```
 */
export function parseHeader(
  json: Uint8Array,
  dataLength: number,
  where: string,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  const fail = (detail: string): never => {
    throw new SafetensorsError("loadSafetensors", `${where}: ${detail}`);
  };
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (e) {
    fail(`corrupt header: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail("corrupt header: expected a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
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
      fail(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F64, BF16, F16, I32)`);
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
  return { entries, metadata };
}

/**
 * The length of the JSON header that follows the first 8 bytes, checked against the bytes
 * available after them.
 *
 * @example
 * ```ts
 * import { headerLength } from "./safetensors.ts";
 * headerLength(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0]), 16, "x.safetensors"); // 8
 * ```
 */
export function headerLength(first8: Uint8Array, available: number, where: string): number {
  const fail = (detail: string): never => {
    throw new SafetensorsError("loadSafetensors", `${where}: ${detail}`);
  };
  if (first8.length < 8) fail(`truncated: ${first8.length} bytes, fewer than the 8-byte header length`);
  const n = Number(new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER) fail(`corrupt header length ${n} (more than ${MAX_HEADER} bytes)`);
  if (n > available) fail(`truncated: the header claims ${n} bytes but only ${available} follow the length field`);
  return n;
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
  if (!(bytes instanceof Uint8Array)) throw new SafetensorsError("loadSafetensors", `${where}: expected a Uint8Array`);
  const n = headerLength(bytes.subarray(0, 8), bytes.length - 8, where);
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, where);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    const host = hostArrayOf(bytes.slice(dataStart + e.begin, dataStart + e.end), e.dtype); // a copy: aligned, owned
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

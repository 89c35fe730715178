/**
 * PI-HC-MoE's Navier–Stokes data as training data. The paper (Chalapathi, Du & Krishnapriyan,
 * ICLR 2024) took its diffusion–sorption data from PDEBench but generated its own 2D Navier–Stokes
 * data (vorticity on the periodic unit square, Re = 10⁴, no forcing), published as TFRecord files
 * (`train/*.tfrecords`, `validation/*.tfrecords`, one trajectory per file), which its code reads
 * with `tf.io.parse_example` and `tf.io.parse_tensor`: each record is a `tf.train.Example` whose
 * features `u` `[nt, nx, ny]`, `t` `[nt]`, `x` `[nx]`, `y` `[ny]` and `reynolds_no` (a scalar) each
 * hold one `tf.io.serialize_tensor` TensorProto (float64). PDEBench's own incompressible
 * Navier–Stokes files are another problem (velocity with no-slip walls, ν = 0.01, a forcing per
 * sample); {@link readNavierStokes} says so when given one.
 *
 * Records are located by their length headers and read one at a time; both masked CRC32C checksums
 * of each record (of its length, of its data) are verified, and a record whose checksum differs,
 * whose length runs past the end of its file, or that does not decode is a {@link DataFileError}.
 * Protocol buffers are decoded by protobufjs.
 *
 * @example
 * ```ts ignore
 * import { NavierStokes2D, readNavierStokes } from "./mod.ts";
 * const ns = new NavierStokes2D();
 * const grid = ns.grid({ nx: 64, nt: 64, T: 5 });
 * const train = await readNavierStokes("NS-no-forcing/train", { grid, nu: ns.parameters.nu, dtype: "float64" });
 * ```
 *
 * @module
 */

// deno-lint-ignore no-import-prefix
import protobuf from "npm:protobufjs@8.8.1";
import { join } from "node:path";
import {
  DataFileError,
  type FileDataset,
  fmt,
  list,
  num,
  planAxis,
  restrict,
  sameShape,
  type SampleRange,
  sampleRange,
  sliced,
} from "./data_files.ts";
import type { Grid2D } from "./grid.ts";
import { maskedCrc32c } from "../train/tfrecord.ts";

/** Options of {@link readNavierStokes}. */
export interface NavierStokesFileOptions extends SampleRange {
  /** The grid to read onto: the file's, or one coarser by integer factors. */
  grid: Grid2D;
  /** The problem's viscosity: the records' `reynolds_no` must be 1/ν (unchecked when absent). */
  nu?: number;
}

/** The TensorFlow protocol buffers a record holds (example.proto, feature.proto, tensor.proto). */
const PROTOS = {
  nested: {
    Example: { fields: { features: { type: "Features", id: 1 } } },
    Features: { fields: { feature: { keyType: "string", type: "Feature", id: 1 } } },
    Feature: {
      oneofs: { kind: { oneof: ["bytesList", "floatList", "int64List"] } },
      fields: {
        bytesList: { type: "BytesList", id: 1 },
        floatList: { type: "FloatList", id: 2 },
        int64List: { type: "Int64List", id: 3 },
      },
    },
    BytesList: { fields: { value: { rule: "repeated", type: "bytes", id: 1 } } },
    FloatList: { fields: { value: { rule: "repeated", type: "float", id: 1, options: { packed: true } } } },
    Int64List: { fields: { value: { rule: "repeated", type: "int64", id: 1, options: { packed: true } } } },
    TensorProto: {
      fields: {
        dtype: { type: "int32", id: 1 },
        tensorShape: { type: "TensorShapeProto", id: 2 },
        tensorContent: { type: "bytes", id: 4 },
        floatVal: { rule: "repeated", type: "float", id: 5, options: { packed: true } },
        doubleVal: { rule: "repeated", type: "double", id: 6, options: { packed: true } },
      },
    },
    TensorShapeProto: {
      fields: { dim: { rule: "repeated", type: "Dim", id: 2 } },
      nested: { Dim: { fields: { size: { type: "int64", id: 1 } } } },
    },
  },
};
const SCHEMA = protobuf.Root.fromJSON(PROTOS);
const EXAMPLE = SCHEMA.lookupType("Example");
const TENSOR = SCHEMA.lookupType("TensorProto");
/** TensorFlow's DataType codes for float32 and float64. */
const DT_FLOAT = 1;
const DT_DOUBLE = 2;

/** The first bytes of an HDF5 file ("\x89HDF\r\n\x1a\n"). */
const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** A record: where it lies, in which file. */
interface RecordRef {
  readonly file: string;
  readonly index: number;
  readonly offset: number;
  readonly length: number;
}

/** A decoded feature: a float tensor. */
interface Feature {
  readonly shape: number[];
  readonly data: Float64Array;
}

/**
 * Reads PI-HC-MoE's Navier–Stokes records (a `.tfrecords` file, or a folder of them read in name
 * order) onto `grid` (see the module notes and `pdebench.ts` for the grid checks): the vorticity
 * `u` `[count, nt, nx, ny]` and `u0` its first time slice, in `dtype` (default float32). The
 * records' `x` and `y` must be the periodic points i/n of [0, 1).
 *
 * @example
 * ```ts ignore
 * import { NavierStokes2D, readNavierStokes } from "./mod.ts";
 * const grid = new NavierStokes2D().grid({ nx: 32, nt: 64, T: 5 }); // the paper's 64³ records, every other point
 * const test = await readNavierStokes("NS-no-forcing/validation", { grid, count: 100 });
 * ```
 */
export async function readNavierStokes(path: string, options: NavierStokesFileOptions): Promise<FileDataset<Grid2D>> {
  const op = "readNavierStokes";
  const { grid } = options;
  const records = await recordsOf(op, path);
  const { start, count } = sampleRange(op, path, records.length, options);
  const [nt, nx, ny] = grid.shape;
  const out = new Float64Array(count * nt * nx * ny);
  let first: { shape: number[]; plans: ReturnType<typeof planAxis>[] } | null = null;
  let nu = options.nu;
  for (let s = 0; s < count; s++) {
    const ref = records[start + s];
    const where = `record ${ref.index}`;
    const features = decode(op, ref, await readRecord(op, ref));
    const get = (name: string, rank: number): Feature => {
      const f = features[name];
      if (!f) {
        throw new DataFileError(
          op,
          ref.file,
          `${where}, feature "${name}"`,
          `missing: the record holds ${list(Object.keys(features))}`,
        );
      }
      if (f.shape.length !== rank) {
        throw new DataFileError(
          op,
          ref.file,
          `${where}, feature "${name}"`,
          `shape ${fmt(f.shape)} has rank ${f.shape.length}; expected ${rank}`,
        );
      }
      return f;
    };
    const u = get("u", 3);
    if (!first) {
      const axes = [get("t", 1), get("x", 1), get("y", 1)];
      const plans = axes.map((a, k) => {
        const name = `${where}, feature "${"txy"[k]}"`;
        if (a.shape[0] !== u.shape[k]) {
          throw new DataFileError(op, ref.file, name, `${a.shape[0]} points, but "u" is ${fmt(u.shape)}`);
        }
        return planAxis(op, ref.file, name, a.data, grid.axes[k]);
      });
      first = { shape: u.shape, plans };
      const re = features.reynolds_no;
      if (re) {
        if (re.data.length !== 1) {
          throw new DataFileError(
            op,
            ref.file,
            `${where}, feature "reynolds_no"`,
            `shape ${fmt(re.shape)}; expected a scalar`,
          );
        }
        nu = 1 / re.data[0];
        if (options.nu !== undefined && !(Math.abs(nu - options.nu) <= 1e-9 * options.nu)) {
          throw new DataFileError(
            op,
            ref.file,
            `${where}, feature "reynolds_no"`,
            `Re = ${num(1 / nu)} (ν = ${num(nu)}), but the problem's ν is ${
              num(options.nu)
            }: make the problem with ν = 1/Re`,
          );
        }
      }
    } else if (!sameShape(u.shape, first.shape)) {
      throw new DataFileError(
        op,
        ref.file,
        `${where}, feature "u"`,
        `shape ${fmt(u.shape)} differs from the first record's ${fmt(first.shape)}`,
      );
    }
    out.set(restrict(u.data, first.plans), s * nt * nx * ny);
  }
  return sliced(grid, out, [count, nt, nx, ny], options, nu === undefined ? {} : { nu, F: 0 }, {
    file: path,
    start,
    total: records.length,
  });
}

/** The records of a file, or of the `.tfrecords` files of a folder in name order. */
async function recordsOf(op: string, path: string): Promise<RecordRef[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new DataFileError(op, path, "", "no such file or folder");
    throw e;
  }
  let files = [path];
  if (info.isDirectory) {
    files = [];
    for await (const e of Deno.readDir(path)) {
      if (e.isFile && /\.tfrecords?$/.test(e.name)) files.push(join(path, e.name));
    }
    files.sort();
    if (!files.length) throw new DataFileError(op, path, "", "holds no .tfrecords files");
  }
  const out: RecordRef[] = [];
  for (const file of files) out.push(...await index(op, file));
  if (!out.length) throw new DataFileError(op, path, "", "holds no records");
  return out;
}

/** Locates the records of one TFRecord file from their headers (length: uint64 LE, then its CRC). */
async function index(op: string, path: string): Promise<RecordRef[]> {
  using f = await Deno.open(path);
  const size = (await f.stat()).size;
  const head = new Uint8Array(12);
  if (size >= 8) {
    await f.read(head.subarray(0, 8));
    if (HDF5_SIGNATURE.every((b, i) => head[i] === b)) {
      throw new DataFileError(
        op,
        path,
        "",
        "is an HDF5 file; PDEBench's 2D incompressible Navier–Stokes " +
          "(velocity with no-slip walls, ν = 0.01, a random forcing per sample) is a different problem from this " +
          "periodic vorticity benchmark, whose data (PI-HC-MoE's) are TFRecord files",
      );
    }
  }
  const out: RecordRef[] = [];
  for (let pos = 0; pos < size;) {
    await f.seek(pos, Deno.SeekMode.Start);
    if (size - pos < 16 || (await f.read(head)) !== 12) {
      throw new DataFileError(op, path, `record ${out.length}`, `truncated header at byte ${pos} of ${size}`);
    }
    const header = new DataView(head.buffer);
    if (header.getUint32(8, true) !== maskedCrc32c(head.subarray(0, 8))) {
      throw new DataFileError(
        op,
        path,
        `record ${out.length}`,
        `the checksum of its length header (byte ${pos}) does not match: not a TFRecord file, or a damaged one`,
      );
    }
    const length = Number(header.getBigUint64(0, true));
    if (pos + 16 + length > size) {
      throw new DataFileError(
        op,
        path,
        `record ${out.length}`,
        `its length ${length} runs past the end of the file ` +
          `(byte ${pos} of ${size}): not a TFRecord file, or a truncated one`,
      );
    }
    out.push({ file: path, index: out.length, offset: pos + 12, length });
    pos += 16 + length;
  }
  return out;
}

async function readRecord(op: string, ref: RecordRef): Promise<Uint8Array> {
  using f = await Deno.open(ref.file);
  await f.seek(ref.offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(ref.length + 4);
  for (let got = 0; got < buf.length;) {
    const n = await f.read(buf.subarray(got));
    if (n === null) throw new DataFileError(op, ref.file, `record ${ref.index}`, "ended early");
    got += n;
  }
  const data = buf.subarray(0, ref.length);
  if (new DataView(buf.buffer).getUint32(ref.length, true) !== maskedCrc32c(data)) {
    throw new DataFileError(
      op,
      ref.file,
      `record ${ref.index}`,
      "the checksum of its data does not match: the file is damaged (copy it again)",
    );
  }
  return data;
}

/** The float features of a `tf.train.Example`: serialized tensors, float lists, int64 lists. */
function decode(op: string, ref: RecordRef, bytes: Uint8Array): Record<string, Feature> {
  const where = `record ${ref.index}`;
  let example: { features?: { feature?: Record<string, Record<string, { value: unknown[] }>> } };
  try {
    example = EXAMPLE.toObject(EXAMPLE.decode(bytes), { longs: Number }) as typeof example;
  } catch (e) {
    throw new DataFileError(op, ref.file, where, `is not a tf.train.Example (${(e as Error).message})`);
  }
  const out: Record<string, Feature> = {};
  for (const [name, feature] of Object.entries(example.features?.feature ?? {})) {
    if (feature.bytesList) {
      const values = feature.bytesList.value as Uint8Array[];
      if (values.length === 1) out[name] = tensor(op, ref, `${where}, feature "${name}"`, values[0]);
    } else {
      const values = (feature.floatList ?? feature.int64List)?.value as number[] | undefined;
      if (values) out[name] = { shape: [values.length], data: Float64Array.from(values) };
    }
  }
  return out;
}

/** A `tf.io.serialize_tensor` TensorProto of float32 or float64 as float64. */
function tensor(op: string, ref: RecordRef, name: string, bytes: Uint8Array): Feature {
  let t: {
    dtype?: number;
    tensorShape?: { dim?: { size: number }[] };
    tensorContent?: Uint8Array;
    floatVal?: number[];
    doubleVal?: number[];
  };
  try {
    t = TENSOR.toObject(TENSOR.decode(bytes), { longs: Number, defaults: true }) as typeof t;
  } catch (e) {
    throw new DataFileError(op, ref.file, name, `is not a serialized tensor (${(e as Error).message})`);
  }
  const shape = (t.tensorShape?.dim ?? []).map((d) => d.size);
  const n = shape.reduce((a, b) => a * b, 1);
  if (t.dtype !== DT_FLOAT && t.dtype !== DT_DOUBLE) {
    throw new DataFileError(op, ref.file, name, `has TensorFlow dtype ${t.dtype}; expected float32 (1) or float64 (2)`);
  }
  const width = t.dtype === DT_DOUBLE ? 8 : 4;
  const content = t.tensorContent ?? new Uint8Array();
  let data: Float64Array;
  if (content.length) {
    if (content.length !== n * width) {
      throw new DataFileError(
        op,
        ref.file,
        name,
        `holds ${content.length} bytes for shape ${fmt(shape)} (${n * width} expected)`,
      );
    }
    const view = new DataView(content.buffer, content.byteOffset, content.length);
    data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = width === 8 ? view.getFloat64(8 * i, true) : view.getFloat32(4 * i, true);
  } else {
    const values = (t.dtype === DT_DOUBLE ? t.doubleVal : t.floatVal) ?? [];
    // TensorFlow stores a tensor of equal values as that value once.
    data = values.length === 1 ? new Float64Array(n).fill(values[0]) : Float64Array.from(values);
    if (data.length !== n) {
      throw new DataFileError(op, ref.file, name, `holds ${data.length} values for shape ${fmt(shape)}`);
    }
  }
  return { shape, data };
}

// PDEBench's HDF5 layouts and PI-HC-MoE's Navier–Stokes records read onto the problems' grids. Every file here is written by the test in
// PDEBench's layout with h5wasm's own writer (LZF like PDEBench where the data compresses), and the
// expected values are computed from the formula the file was filled with, not by the reader.

import assert from "node:assert/strict";
import h5wasm from "h5wasm/node";
import { install_local_plugins } from "h5wasm-plugins";
import protobuf from "protobufjs";
import {
  DataFileError,
  DiffusionSorption,
  NavierStokes2D,
  readDiffusionSorption,
  readNavierStokes,
} from "../src/pde/mod.ts";

const LZF = 32000;

const h5 = await h5wasm.ready;
install_local_plugins(h5);
const dir = await Deno.makeTempDir({ prefix: "pdebench_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const ds = new DiffusionSorption();

/** The value a test file holds at sample s, time index i, cell j (exact in float32). */
const f = (s: number, i: number, j: number) => (s + 1) / 4 + i / 64 + j / 16;

interface SampleSpec {
  /** Group name. */
  name: string;
  /** Seed used in f. */
  seed: number;
  /** Omit the "data" dataset. */
  noData?: boolean;
  /** Shape of "data" (default [nt, nx, 1]). */
  shape?: number[];
}

/** Writes a diffusion–sorption file as PDEBench's gen_diff_sorp.py lays it out. */
function writeDiffSorp(
  name: string,
  samples: SampleSpec[],
  opts: { nt?: number; nx?: number; T?: number; x?: Float32Array } = {},
): string {
  const nt = opts.nt ?? 11;
  const nx = opts.nx ?? 8;
  const T = opts.T ?? 500;
  const path = `${dir}/${name}`;
  const file = new h5wasm.File(path, "w");
  const dx = 1 / nx;
  const x = opts.x ?? Float32Array.from({ length: nx }, (_, j) => dx / 2 + j * (1 - dx) / (nx - 1)); // np.linspace
  const t = Float32Array.from({ length: nt }, (_, i) => (i * T) / (nt - 1));
  for (const s of samples) {
    const g = file.create_group(s.name);
    if (!s.noData) {
      const shape = s.shape ?? [nt, nx, 1];
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < nt; i++) for (let j = 0; j < nx; j++) data[i * nx + j] = f(s.seed, i, j);
      g.create_dataset({
        name: "data",
        data,
        shape,
        dtype: "<f4",
        chunks: shape,
        compression: LZF,
        compression_opts: [],
      });
    }
    const grid = g.create_group("grid");
    grid.create_dataset({ name: "x", data: x, dtype: "<f4" });
    grid.create_dataset({ name: "t", data: t, dtype: "<f4" });
    g.create_attribute("config", "sim:\n  D: 0.0005\n");
  }
  file.close();
  return path;
}

const four = [3, 0, 2, 1].map((s) => ({ name: String(s).padStart(4, "0"), seed: s })); // written out of order
const file4 = writeDiffSorp("ds4.h5", four);

function assertError(e: unknown, file: string, dataset: string, ...phrases: string[]): true {
  assert.ok(e instanceof DataFileError, `expected a DataFileError, got ${e}`);
  assert.equal(e.file, file);
  assert.equal(e.dataset, dataset);
  for (const p of phrases) assert.ok(e.message.includes(p), `"${e.message}" should mention "${p}"`);
  return true;
}

Deno.test("PDEBench diffusion–sorption: values round-trip on the file's own grid, samples in name order", async () => {
  const raw = new h5wasm.File(file4, "r");
  assert.deepEqual((raw.get("0000/data") as { filters: { id: number }[] }).filters.map((x) => x.id), [LZF]);
  raw.close();
  const grid = ds.grid({ nx: 8, nt: 11 });
  const d = await readDiffusionSorption(file4, { grid, dtype: "float64" });
  assert.deepEqual(d.u.shape, [4, 11, 8]);
  assert.deepEqual(d.u0.shape, [4, 8]);
  assert.equal(d.grid, grid);
  const u = d.u.toTypedArray();
  const u0 = d.u0.toTypedArray();
  for (let s = 0; s < 4; s++) {
    for (let i = 0; i < 11; i++) {
      for (let j = 0; j < 8; j++) assert.equal(u[(s * 11 + i) * 8 + j], f(s, i, j));
    }
    for (let j = 0; j < 8; j++) assert.equal(u0[s * 8 + j], f(s, 0, j));
  }
  assert.equal(d.parameters.D, 5e-4);
});

Deno.test("PDEBench diffusion–sorption: sample ranges (from the end when negative), float32", async () => {
  const grid = ds.grid({ nx: 8, nt: 11 });
  const d = await readDiffusionSorption(file4, { grid, start: 1, count: 2 });
  assert.equal(d.u.dtype, "float32");
  assert.deepEqual(d.u.shape, [2, 11, 8]);
  assert.deepEqual([d.file, d.start, d.total], [file4, 1, 4]);
  const u = d.u.toTypedArray();
  assert.equal(u[0], f(1, 0, 0));
  assert.equal(u[11 * 8 + 10 * 8 + 7], f(2, 10, 7));
  const last = await readDiffusionSorption(file4, { grid, start: -1 });
  assert.deepEqual([last.start, last.u.shape[0]], [3, 1]);
  assert.equal(last.u.toTypedArray()[5], f(3, 0, 5));
});

Deno.test("PDEBench diffusion–sorption: coarser grids average cells and keep every r-th time", async () => {
  // File 11 × 8 onto 6 × 4: times 0, 2, …, 10 of the file; cell j is the mean of file cells 2j, 2j + 1.
  const d = await readDiffusionSorption(file4, { grid: ds.grid({ nx: 4, nt: 6 }), dtype: "float64" });
  assert.deepEqual(d.u.shape, [4, 6, 4]);
  const u = d.u.toTypedArray();
  // By hand: sample 2, time index 3 (file row 6), coarse cell 1 (file cells 2, 3):
  // ((3/4 + 6/64 + 2/16) + (3/4 + 6/64 + 3/16)) / 2 = 3/4 + 6/64 + 5/32 = 1.0
  assert.equal(u[(2 * 6 + 3) * 4 + 1], 1.0);
  for (let s = 0; s < 4; s++) {
    for (let k = 0; k < 6; k++) {
      for (let j = 0; j < 4; j++) {
        assert.equal(u[(s * 6 + k) * 4 + j], (f(s, 2 * k, 2 * j) + f(s, 2 * k, 2 * j + 1)) / 2);
      }
    }
  }
  const one = await readDiffusionSorption(file4, { grid: ds.grid({ nx: 1, nt: 2 }), count: 1, dtype: "float64" });
  const mean = (i: number) => Array.from({ length: 8 }, (_, j) => f(0, i, j)).reduce((a, b) => a + b) / 8;
  assert.deepEqual(Array.from(one.u.toTypedArray()), [mean(0), mean(10)]);
});

Deno.test("PDEBench diffusion–sorption: grids that do not fit the file say which flags do", async () => {
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid: ds.grid({ nx: 3, nt: 11 }) }),
    (e) => assertError(e, file4, "0000/grid/x", "3 x points and the file 8", "--nx 1 | 2 | 4 | 8"),
  );
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid: ds.grid({ nx: 16, nt: 11 }) }),
    (e) => assertError(e, file4, "0000/grid/x", "16 x points", "--nx 1 | 2 | 4 | 8"),
  );
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid: ds.grid({ nx: 8, nt: 4 }) }),
    (e) => assertError(e, file4, "0000/grid/t", "4 t points and the file 11", "--nt 2 | 3 | 6 | 11"),
  );
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid: ds.grid({ nx: 8, nt: 11, T: 50 }) }),
    (e) => assertError(e, file4, "0000/grid/t", "from 0 to 500", "nodes on [0, 50]", "another domain"),
  );
  const nodes = writeDiffSorp("nodes.h5", [{ name: "0000", seed: 0 }], {
    x: Float32Array.from({ length: 8 }, (_, j) => j / 7),
  });
  await assert.rejects(
    () => readDiffusionSorption(nodes, { grid: ds.grid({ nx: 8, nt: 11 }) }),
    (e) => assertError(e, nodes, "0000/grid/x", "from 0 to 1", "cell centres on [0, 1]", "from 0.0625 to 0.9375"),
  );
});

Deno.test("PDEBench diffusion–sorption: a missing dataset, a wrong rank, other layouts, bad ranges", async () => {
  const grid = ds.grid({ nx: 8, nt: 11 });
  const holed = writeDiffSorp("holed.h5", [{ name: "0000", seed: 0 }, { name: "0001", seed: 1, noData: true }]);
  await assert.rejects(
    () => readDiffusionSorption(holed, { grid }),
    (e) => assertError(e, holed, "0001/data", "missing", `"0001" holds "grid"`),
  );
  assert.equal((await readDiffusionSorption(holed, { grid, count: 1 })).u.shape[0], 1); // sample 0 alone is fine
  const rank4 = writeDiffSorp("rank4.h5", [{ name: "0000", seed: 0, shape: [11, 8, 1, 1] }]);
  await assert.rejects(
    () => readDiffusionSorption(rank4, { grid }),
    (e) => assertError(e, rank4, "0000/data", "[11, 8, 1, 1] has rank 4", "[nt, nx, 1]"),
  );
  const ragged = writeDiffSorp("ragged.h5", [{ name: "0000", seed: 0 }, { name: "0001", seed: 1, shape: [11, 8] }]);
  await assert.rejects(
    () => readDiffusionSorption(ragged, { grid }),
    (e) => assertError(e, ragged, "0001/data", "[11, 8] differs from the first sample's [11, 8, 1]"),
  );
  const ns = `${dir}/ns.h5`;
  const file = new h5wasm.File(ns, "w");
  const z = (shape: number[]) => ({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, dtype: "<f4" });
  file.create_dataset({ name: "velocity", ...z([1, 3, 4, 4, 2]) });
  file.create_dataset({ name: "particles", ...z([1, 3, 4, 4, 1]) });
  file.create_dataset({ name: "force", ...z([1, 4, 4, 2]) });
  file.create_dataset({ name: "t", ...z([1, 3]) });
  file.close();
  await assert.rejects(
    () => readDiffusionSorption(ns, { grid }),
    (e) => assertError(e, ns, "velocity", "2D incompressible Navier–Stokes"),
  );
  await assert.rejects(
    () => readDiffusionSorption(`${dir}/absent.h5`, { grid }),
    (e) => assertError(e, `${dir}/absent.h5`, "", "no such file"),
  );
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid, start: 4 }),
    (e) => assertError(e, file4, "", "start 4 is outside the file's 4 samples"),
  );
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid, start: -5 }),
    (e) => assertError(e, file4, "", "start -5 is outside the file's 4 samples (0 to 3, or −1 to −4 from the end)"),
  );
  await assert.rejects(
    () => readDiffusionSorption(file4, { grid, start: 1, count: 4 }),
    (e) => assertError(e, file4, "", "4 samples from 1 do not fit in the file's 4; at most 3"),
  );
});

// PI-HC-MoE's Navier–Stokes records, written as its TFRecords are: framed records (length, masked
// CRC32C of the length, data, masked CRC32C of the data) of tf.train.Example messages whose bytes
// features hold tf.io.serialize_tensor TensorProtos, encoded from TensorFlow's .proto text.
const TF = protobuf.parse(`
syntax = "proto3";
message BytesList { repeated bytes value = 1; }
message FloatList { repeated float value = 1 [packed = true]; }
message Int64List { repeated int64 value = 1 [packed = true]; }
message Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
message Features { map<string, Feature> feature = 1; }
message Example { Features features = 1; }
message TensorShapeProto { message Dim { int64 size = 1; string name = 2; } repeated Dim dim = 2; }
message TensorProto {
  int32 dtype = 1; TensorShapeProto tensor_shape = 2; int32 version_number = 3; bytes tensor_content = 4;
  repeated float float_val = 5 [packed = true]; repeated double double_val = 6 [packed = true];
}`).root;

/** CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit, masked as TFRecord does. */
function maskedCrc(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  c = (c ^ 0xffffffff) >>> 0;
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

function frame(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(data.length), true);
  v.setUint32(8, maskedCrc(out.subarray(0, 8)), true);
  out.set(data, 12);
  v.setUint32(12 + data.length, maskedCrc(data), true);
  return out;
}

/** tf.io.serialize_tensor of a float64 array (or a scalar given as double_val). */
function serialized(shape: number[], values: number[], asContent = true): Uint8Array {
  const T = TF.lookupType("TensorProto");
  const body = asContent ? { tensorContent: new Uint8Array(Float64Array.from(values).buffer) } : { doubleVal: values };
  return T.encode(T.create({ dtype: 2, tensorShape: { dim: shape.map((size) => ({ size })) }, ...body })).finish();
}

/** The vorticity a test record holds at sample s, time i, point (a, b) (exact in float64). */
const w = (s: number, i: number, a: number, b: number) => s + i / 8 + a / 64 + b / 512;

function nsRecord(s: number, opts: { drop?: string; re?: number; rank2?: boolean; x?: number[] } = {}): Uint8Array {
  const [nt, n] = [5, 8];
  const u: number[] = [];
  for (let i = 0; i < nt; i++) for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) u.push(w(s, i, a, b));
  const axis = Array.from({ length: n }, (_, a) => a / n); // periodic points of [0, 1)
  const tensors: Record<string, Uint8Array> = {
    u: serialized(opts.rank2 ? [nt, n * n] : [nt, n, n], u),
    t: serialized([nt], Array.from({ length: nt }, (_, i) => i / 10)),
    x: serialized([n], opts.x ?? axis),
    y: serialized([n], axis),
    reynolds_no: serialized([], [opts.re ?? 1e4], false),
  };
  if (opts.drop) delete tensors[opts.drop];
  const E = TF.lookupType("Example");
  const feature = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, { bytesList: { value: [v] } }]));
  return frame(E.encode(E.create({ features: { feature } })).finish());
}

function writeRecords(name: string, records: Uint8Array[]): string {
  const path = `${dir}/${name}`;
  Deno.writeFileSync(path, new Uint8Array(records.flatMap((r) => Array.from(r))));
  return path;
}

const nsDir = `${dir}/ns_train`;
Deno.mkdirSync(nsDir);
writeRecords("ns_train/b.tfrecords", [nsRecord(2)]);
writeRecords("ns_train/a.tfrecords", [nsRecord(0), nsRecord(1)]);
Deno.writeTextFileSync(`${nsDir}/README.txt`, "not a record file");
const ns = new NavierStokes2D();

Deno.test("PI-HC-MoE Navier–Stokes records: values round-trip from a folder, files in name order", async () => {
  const grid = ns.grid({ nx: 8, nt: 5, T: 0.4 });
  const d = await readNavierStokes(nsDir, { grid, nu: 1e-4, dtype: "float64" });
  assert.deepEqual(d.u.shape, [3, 5, 8, 8]);
  assert.deepEqual(d.u0.shape, [3, 8, 8]);
  assert.equal(d.parameters.nu, 1e-4);
  const u = d.u.toTypedArray();
  const u0 = d.u0.toTypedArray();
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < 5; i++) {
      for (let a = 0; a < 8; a++) {
        for (let b = 0; b < 8; b++) assert.equal(u[((s * 5 + i) * 8 + a) * 8 + b], w(s, i, a, b));
      }
    }
    for (let a = 0; a < 64; a++) assert.equal(u0[s * 64 + a], w(s, 0, Math.floor(a / 8), a % 8));
  }
});

Deno.test("PI-HC-MoE Navier–Stokes records: a sample range onto a coarser periodic grid keeps every r-th point", async () => {
  const d = await readNavierStokes(nsDir, { grid: ns.grid({ nx: 4, nt: 3, T: 0.4 }), start: 1, count: 2 });
  assert.equal(d.u.dtype, "float32");
  assert.deepEqual(d.u.shape, [2, 3, 4, 4]);
  const u = d.u.toTypedArray();
  // By hand: sample 2, time 1 (t = 0.2, file row 2), point (1, 3) (file point (2, 6)): 2 + 2/8 + 2/64 + 6/512.
  assert.equal(u[((1 * 3 + 1) * 4 + 1) * 4 + 3], 2.29296875);
  for (let s = 0; s < 2; s++) {
    for (let k = 0; k < 3; k++) {
      for (let a = 0; a < 4; a++) {
        for (let b = 0; b < 4; b++) assert.equal(u[((s * 3 + k) * 4 + a) * 4 + b], w(s + 1, 2 * k, 2 * a, 2 * b));
      }
    }
  }
});

Deno.test("PI-HC-MoE Navier–Stokes records: viscosity, missing features, rank, grids, HDF5, truncated and damaged files", async () => {
  const grid = ns.grid({ nx: 8, nt: 5, T: 0.4 });
  await assert.rejects(
    () => readNavierStokes(nsDir, { grid, nu: 1e-3 }),
    (e) => assertError(e, `${nsDir}/a.tfrecords`, 'record 0, feature "reynolds_no"', "Re = 10000", "ν is 0.001"),
  );
  const noU = writeRecords("no_u.tfrecords", [nsRecord(0, { drop: "u" })]);
  await assert.rejects(
    () => readNavierStokes(noU, { grid }),
    (e) => assertError(e, noU, 'record 0, feature "u"', "missing", '"t", "x", "y", "reynolds_no"'),
  );
  const flat = writeRecords("flat.tfrecords", [nsRecord(0, { rank2: true })]);
  await assert.rejects(
    () => readNavierStokes(flat, { grid }),
    (e) => assertError(e, flat, 'record 0, feature "u"', "[5, 64] has rank 2; expected 3"),
  );
  const closed = writeRecords("closed.tfrecords", [nsRecord(0, { x: Array.from({ length: 8 }, (_, a) => a / 7) })]);
  await assert.rejects(
    () => readNavierStokes(closed, { grid }),
    (e) => assertError(e, closed, 'record 0, feature "x"', "from 0 to 1", "periodic on [0, 1)", "another domain"),
  );
  await assert.rejects(
    () => readNavierStokes(`${nsDir}/a.tfrecords`, { grid: ns.grid({ nx: 8, nt: 4, T: 0.4 }) }),
    (e) => assertError(e, `${nsDir}/a.tfrecords`, 'record 0, feature "t"', "--nt 2 | 3 | 5"),
  );
  await assert.rejects(
    () => readNavierStokes(file4, { grid }),
    (e) => assertError(e, file4, "", "is an HDF5 file", "different problem"),
  );
  const whole = nsRecord(0);
  const cut = writeRecords("cut.tfrecords", [nsRecord(1), whole.subarray(0, whole.length - 100)]);
  await assert.rejects(
    () => readNavierStokes(cut, { grid }),
    (e) => assertError(e, cut, "record 1", "runs past the end of the file"),
  );
  const flipped = nsRecord(0);
  flipped[40] ^= 0x10; // a bit of the data, not of the length header
  const damaged = writeRecords("damaged.tfrecords", [flipped]);
  await assert.rejects(
    () => readNavierStokes(damaged, { grid }),
    (e) => assertError(e, damaged, "record 0", "checksum of its data does not match"),
  );
  const lengthFlipped = nsRecord(0);
  lengthFlipped[0] ^= 0x01;
  const badHeader = writeRecords("bad_header.tfrecords", [nsRecord(1), lengthFlipped]);
  await assert.rejects(
    () => readNavierStokes(badHeader, { grid }),
    (e) => assertError(e, badHeader, "record 1", "checksum of its length header"),
  );
  await assert.rejects(
    () => readNavierStokes(`${dir}/nothing`, { grid }),
    (e) => assertError(e, `${dir}/nothing`, "", "no such file or folder"),
  );
});

/** Runs an example script with `args`, returning its output and metrics.json. */
async function runScript(script: string, args: string[]): Promise<{ out: string; metrics: Record<string, unknown> }> {
  const out = `${dir}/out_${script}`;
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `examples/${script}.ts`, ...args, "--out", out, "--log-every", "0", "--checkpoint-every", "0"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, text);
  return { out: text, metrics: JSON.parse(Deno.readTextFileSync(`${out}/${script}/metrics.json`)) };
}

const tiny = ["--steps", "2", "--basis", "4", "--width", "4", "--modes", "2", "--layers", "1", "--fc", "8"];

Deno.test("examples train and test on a file's samples with --data", async () => {
  const ds = await runScript("diffusion_sorption", [
    ...["--data", file4, "--train", "2", "--test", "1", "--nx", "4", "--nt", "6", "--method", "data,moe"],
    ...["--points", "4", "--batch", "2", ...tiny],
  ]);
  assert.ok(
    ds.out.includes(`training on samples 0–1 of 4 in ${file4}; testing on samples 3–3 of 4 in ${file4}`),
    ds.out,
  );
  assert.ok(ds.out.includes("grid t 6 × x 4, 2 training and 1 test solutions"), ds.out);
  const methods = ds.metrics.methods as Record<string, { metrics: { relL2: { perSample: number[] } } }>;
  assert.deepEqual(Object.keys(methods), ["data", "moe"]);
  assert.equal(methods.moe.metrics.relL2.perSample.length, 1);
  const nsRun = await runScript("navier_stokes_2d", [
    ...["--data", nsDir, "--test-data", `${nsDir}/b.tfrecords`, "--train", "2", "--test", "1"],
    ...["--nx", "8", "--nt", "5", "--T", "0.4", "--method", "hard", "--points", "16", "--batch", "1", ...tiny],
  ]);
  assert.ok(
    nsRun.out.includes(`training on samples 0–1 of 3 in ${nsDir}; testing on samples 0–0 of 1 in ${nsDir}/b.tfrecords`),
    nsRun.out,
  );
  assert.ok(nsRun.out.includes("grid t 5 × x 8 × y 8, 2 training and 1 test solutions"), nsRun.out);
});

/**
 * PDEBench's HDF5 files as training data: the reference solutions of a file mapped onto a problem's
 * grid, a range of samples at a time, checked against the grid with a {@link DataFileError} that
 * names the file, the dataset, what was expected and found, and which flags would match.
 *
 * **Layouts.** PDEBench's 1D diffusion–sorption file (`1D_diff-sorp_NA_NA.h5`, written by its
 * `gen_diff_sorp.py`) holds one group per sample, named by the zero-padded seed (`"0000"` …
 * `"9999"`), each with `data` `[nt, nx, 1]` (float32, LZF-compressed), `grid/x` `[nx]` (cell
 * centres on (0, 1)) and `grid/t` `[nt]` (0 to 500 s); the published file has 10 000 samples of
 * 101 × 1024. Its 2D incompressible Navier–Stokes files (`ns_incom_inhom_2d_512-*.h5`) hold
 * `velocity` `[n, nt, 512, 512, 2]`, `particles`, `force` and `t` at the root: velocity with
 * no-slip walls, ν = 0.01 and a random forcing per sample, a different problem from the periodic
 * vorticity benchmark of PI-HC-MoE (`NavierStokes2D`), which generated its own Navier–Stokes data.
 * {@link readDiffusionSorption} reads the first layout and names the second when it is given one.
 *
 * **Grids.** The file's coordinates must be the problem grid's axis at the file's resolution (same
 * interval, periodicity and centering, to a thousandth of a spacing). A grid coarser by an integer
 * factor is read by restriction: node axes (time, periodic space) keep every r-th point, read as a
 * strided hyperslab; cell-centred axes average each run of r cells (the finite-volume restriction,
 * whose value sits at the coarse cell's centre; PDEBench's own `reduced_resolution` keeps every
 * r-th cell instead, which would shift the field by (r − 1)/2 fine cells against the grid).
 *
 * **Memory.** Files are opened through h5wasm's host file system access (Emscripten NODERAWFS):
 * HDF5 reads the chunks a hyperslab touches from disk, never the whole file, and samples are read
 * one at a time, so the peak is the samples kept (at the grid's size) plus one sample of the file.
 *
 * @example
 * ```ts ignore
 * import { DiffusionSorption, readDiffusionSorption } from "./mod.ts";
 * const grid = new DiffusionSorption().grid({ nx: 64, nt: 26 });
 * const train = await readDiffusionSorption("1D_diff-sorp_NA_NA.h5", { grid, count: 8000, dtype: "float64" });
 * const test = await readDiffusionSorption("1D_diff-sorp_NA_NA.h5", { grid, start: 9000, dtype: "float64" });
 * ```
 *
 * @module
 */

import type { Dataset as H5Dataset, File as H5File, Group as H5Group } from "h5wasm";
import { PatchworkError } from "../tensor/mod.ts";
import type { Axis, Grid } from "./grid.ts";
import type { Grid1D } from "./grid.ts";
import type { Dataset, TensorPlacement } from "./problem.ts";
import { DIFFUSION_SORPTION_PARAMETERS } from "./problems/diffusion_sorption.ts";
import { constant } from "./spectral.ts";

/**
 * A data file that cannot serve as training data as asked: missing, of another layout, or not on
 * the grid. The message names the file and dataset, what was expected and found, and what to do.
 *
 * @example
 * ```ts
 * import { DataFileError } from "./pdebench.ts";
 * const e = new DataFileError("readDiffusionSorption", "a.h5", "0000/data", "rank 4; expected [nt, nx, 1]");
 * e.file; // "a.h5"
 * ```
 */
export class DataFileError extends PatchworkError {
  /** The file. */
  readonly file: string;
  /** The dataset or group in the file (empty for the file as a whole). */
  readonly dataset: string;
  /** `op: file, dataset "name": detail`. */
  constructor(op: string, file: string, dataset: string, detail: string) {
    super(op, `${file}${dataset ? `, dataset "${dataset}"` : ""}: ${detail}`);
    this.file = file;
    this.dataset = dataset;
  }
}

/** The h5wasm module (its Node build: host file access, HDF5 reading only the chunks it needs). */
export type Hdf5 = typeof import("h5wasm/node");

let library: Promise<Hdf5> | null = null;

/**
 * h5wasm, loaded on first use with the compression plugins of h5wasm-plugins registered (LZF, which
 * PDEBench's files use, as well as Blosc, Zstd, LZ4, BZip2; gzip is built in).
 *
 * @example
 * ```ts
 * import { loadHdf5 } from "./pdebench.ts";
 * const h5 = await loadHdf5();
 * typeof h5.File; // "function"
 * ```
 */
export function loadHdf5(): Promise<Hdf5> {
  library ??= (async () => {
    const h5 = await import("h5wasm/node");
    const plugins = await import("h5wasm-plugins");
    plugins.install_local_plugins(await h5.ready);
    return h5;
  })();
  return library;
}

/** Which samples of a file to read, and where to put them. */
export interface SampleRange extends TensorPlacement {
  /** Index of the first sample, in the file's order (sorted group names), default 0. */
  start?: number;
  /** Number of samples (default: all from `start`). */
  count?: number;
}

/** Options of {@link readDiffusionSorption}. */
export interface DiffusionSorptionFileOptions extends SampleRange {
  /** The grid to read onto: the file's, or one coarser by integer factors. */
  grid: Grid1D;
}

/** How one file axis maps onto a grid axis. */
interface AxisPlan {
  /** Points of the file along the axis. */
  readonly size: number;
  /** Restriction factor r (1: as in the file). */
  readonly factor: number;
  /** Average runs of r (cell-centred axes) rather than keep every r-th point. */
  readonly average: boolean;
}

/** Grid flags of the examples, by axis (for the errors' advice). */
const FLAG: Record<string, string> = { t: "--nt", x: "--nx", y: "--nx" };

/**
 * Reads samples of PDEBench's 1D diffusion–sorption file onto `grid` (see the module notes):
 * `u` `[count, nt, nx]` and `u0` its first time slice, in `dtype` (default float32).
 *
 * @example
 * ```ts ignore
 * import { DiffusionSorption, readDiffusionSorption } from "./mod.ts";
 * const grid = new DiffusionSorption().grid(); // PDEBench's 101 × 1024
 * const d = await readDiffusionSorption("1D_diff-sorp_NA_NA.h5", { grid, start: 9000, count: 1000 });
 * d.u.shape; // [1000, 101, 1024]
 * ```
 */
export async function readDiffusionSorption(
  path: string,
  options: DiffusionSorptionFileOptions,
): Promise<Dataset<Grid1D>> {
  const op = "readDiffusionSorption";
  const { grid } = options;
  return await withFile(op, path, (file) => {
    const names = file.keys().sort();
    refuseOtherLayouts(op, path, names);
    const groups = names.filter((k) => kind(file.get(k)) === "Group");
    if (!groups.length) {
      throw new DataFileError(
        op,
        path,
        "/",
        `no sample groups (the file holds ${list(names)}); expected PDEBench's ` +
          `diffusion–sorption layout: one group per sample with "data", "grid/x" and "grid/t"`,
      );
    }
    const { start, count } = sampleRange(op, path, groups.length, options);
    const first = `${groups[start]}`;
    const data = dataset(op, path, file, `${first}/data`);
    const shape = data.shape ?? [];
    if (!(shape.length === 2 || (shape.length === 3 && shape[2] === 1))) {
      throw new DataFileError(
        op,
        path,
        `${first}/data`,
        `shape ${fmt(shape)} has rank ${shape.length}; expected ` +
          `[nt, nx, 1] (or [nt, nx]) of one scalar field`,
      );
    }
    const t = coordinates(op, path, file, `${first}/grid/t`, shape[0], "t", `${first}/data`);
    const x = coordinates(op, path, file, `${first}/grid/x`, shape[1], "x", `${first}/data`);
    const plans = [planAxis(op, path, `${first}/grid/t`, t, grid.t), planAxis(op, path, `${first}/grid/x`, x, grid.x)];
    const [nt, nx] = grid.shape;
    const out = new Float64Array(count * nt * nx);
    for (let s = 0; s < count; s++) {
      const name = `${groups[start + s]}/data`;
      const d = s === 0 ? data : dataset(op, path, file, name);
      if (!sameShape(d.shape ?? [], shape)) {
        throw new DataFileError(
          op,
          path,
          name,
          `shape ${fmt(d.shape ?? [])} differs from the first sample's ` +
            `${fmt(shape)} ("${first}/data")`,
        );
      }
      out.set(readRestricted(op, path, name, d, plans), s * nt * nx);
    }
    return sliced(grid, out, [count, nt, nx], options, DIFFUSION_SORPTION_PARAMETERS);
  });
}

/** Opens `path` read-only, runs `body`, closes the file. */
async function withFile<T>(op: string, path: string, body: (file: H5File) => T): Promise<T> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new DataFileError(op, path, "", "is not a file");
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new DataFileError(op, path, "", "no such file");
    throw e;
  }
  const h5 = await loadHdf5();
  let file: H5File;
  try {
    file = new h5.File(path, "r");
  } catch (e) {
    throw new DataFileError(op, path, "", `cannot be opened as HDF5 (${(e as Error).message})`);
  }
  try {
    return body(file);
  } finally {
    file.close();
  }
}

/** Names the PDEBench layouts this reader does not map onto the problem it was asked for. */
function refuseOtherLayouts(op: string, path: string, names: readonly string[]): void {
  if (["velocity", "particles", "force", "t"].every((k) => names.includes(k))) {
    throw new DataFileError(
      op,
      path,
      "velocity",
      "this is PDEBench's 2D incompressible Navier–Stokes layout " +
        "(velocity with no-slip walls, ν = 0.01, a random forcing per sample), not the layout this reader was asked for",
    );
  }
  if (names.includes("tensor")) {
    throw new DataFileError(
      op,
      path,
      "tensor",
      'this is PDEBench\'s single-array layout ("tensor", ' +
        '"x-coordinate", "t-coordinate": advection, Burgers, reaction–diffusion), not the layout this reader was asked for',
    );
  }
}

/** The dataset at `name`, or a DataFileError naming what its group holds. */
function dataset(op: string, path: string, file: H5File, name: string): H5Dataset {
  const found = file.get(name);
  if (kind(found) === "Dataset") return found as H5Dataset;
  const parts = name.split("/");
  let group: H5Group = file;
  for (let i = 0; i < parts.length; i++) {
    const here = parts.slice(0, i).join("/") || "/";
    const keys = group.keys();
    if (!keys.includes(parts[i])) {
      throw new DataFileError(op, path, name, `missing: "${here}" holds ${list(keys)}`);
    }
    const child = group.get(parts[i]);
    const last = i === parts.length - 1;
    const type = kind(child);
    if (last && type === "Dataset") return child as H5Dataset;
    if (!last && type === "Group") {
      group = child as H5Group;
      continue;
    }
    throw new DataFileError(
      op,
      path,
      name,
      `"${parts.slice(0, i + 1).join("/")}" is not a ${last ? "dataset" : "group"}`,
    );
  }
  throw new DataFileError(op, path, name, "empty dataset name");
}

/** A 1-D coordinate dataset of `n` points (the `axis` of `of`). */
function coordinates(
  op: string,
  path: string,
  file: H5File,
  name: string,
  n: number,
  axis: string,
  of: string,
): Float64Array {
  const d = dataset(op, path, file, name);
  const shape = d.shape ?? [];
  if (shape.length !== 1 || shape[0] !== n) {
    throw new DataFileError(op, path, name, `shape ${fmt(shape)}; expected [${n}], the ${axis} size of "${of}"`);
  }
  return new Float64Array(d.value as ArrayLike<number>);
}

/**
 * Matches a file axis (its coordinates) with a grid axis: the file must hold the grid's axis at its
 * own resolution, and its point count must be the grid's times an integer.
 */
function planAxis(op: string, path: string, name: string, coords: Float64Array, target: Axis): AxisPlan {
  const n = coords.length;
  const flag = FLAG[target.name];
  const what = target.periodic
    ? `periodic on [${target.start}, ${target.end})`
    : `${target.centering === "cell" ? "cell centres" : "nodes"} on [${target.start}, ${target.end}]`;
  const fine = n >= 2 || target.periodic || target.centering === "cell" ? target.withPoints(n) : null;
  const want = fine?.points();
  const tol = 1e-3 * (fine?.spacing ?? 1);
  if (!want || want.some((p, i) => !(Math.abs(p - coords[i]) <= tol))) {
    throw new DataFileError(
      op,
      path,
      name,
      `the file's ${target.name} runs over ${n} points from ${num(coords[0])} to ${num(coords[n - 1])}` +
        `${n > 1 ? ` (spacing ${num(coords[1] - coords[0])})` : ""}; the grid's ${target.name} is ${what}` +
        (want ? `, which at ${n} points runs from ${num(want[0])} to ${num(want[n - 1])}` : "") +
        ": the file was made for another domain",
    );
  }
  const nodes = !target.periodic && target.centering === "node";
  const [have, need] = nodes ? [n - 1, target.n - 1] : [n, target.n];
  const factor = have / need;
  if (!Number.isInteger(factor) || factor < 1) {
    const fits = divisors(have).map((d) => (nodes ? d + 1 : d));
    throw new DataFileError(
      op,
      path,
      name,
      `the grid has ${target.n} ${target.name} points and the file ${n}: the grid must be the file's or coarser by ` +
        `an integer factor${nodes ? " of its intervals" : ""}; use ${flag} ${fits.join(" | ")}`,
    );
  }
  return { size: n, factor, average: factor > 1 && !nodes && !target.periodic };
}

/**
 * Reads one sample `[...axes, (1)]` whole and restricts it along each axis in turn (a whole sample
 * is one chunk in PDEBench's files; HDF5's strided hyperslabs read it several times slower).
 */
function readRestricted(
  op: string,
  path: string,
  name: string,
  d: H5Dataset,
  plans: readonly AxisPlan[],
): Float64Array {
  const raw = d.value;
  if (!(raw instanceof Float32Array || raw instanceof Float64Array)) {
    throw new DataFileError(op, path, name, `holds ${JSON.stringify(d.dtype)}; expected float32 or float64`);
  }
  let shape = plans.map((p) => p.size);
  let data = raw instanceof Float64Array ? raw : new Float64Array(raw);
  plans.forEach((p, axis) => {
    if (p.factor === 1) return;
    data = restrictAxis(data, shape, axis, p);
    shape = shape.map((n, i) => (i !== axis ? n : p.average ? n / p.factor : Math.ceil(n / p.factor)));
  });
  return data;
}

/**
 * Restricts `axis` of a row-major array of `shape` by the plan's factor r: the mean of each run of
 * r entries (cell-centred axes), or every r-th entry from the first (node axes).
 */
function restrictAxis(data: Float64Array, shape: readonly number[], axis: number, plan: AxisPlan): Float64Array {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = shape[axis];
  const r = plan.factor;
  const m = plan.average ? n / r : Math.ceil(n / r);
  const runs = plan.average ? r : 1;
  const out = new Float64Array(outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      for (let k = 0; k < inner; k++) {
        let s = 0;
        for (let q = 0; q < runs; q++) s += data[(o * n + j * r + q) * inner + k];
        out[(o * m + j) * inner + k] = s / runs;
      }
    }
  }
  return out;
}

/** The solutions as a dataset on `grid`: `u` of `shape` and `u0` its first time slice. */
function sliced<G extends Grid>(
  grid: G,
  host: Float64Array,
  shape: readonly number[],
  placement: TensorPlacement,
  parameters: Readonly<Record<string, number>>,
): Dataset<G> {
  const dtype = placement.dtype ?? "float32";
  const u = constant(host, shape, dtype, placement.backend);
  const [n, nt] = shape;
  const slab = host.length / (n * nt);
  const first = new Float64Array(n * slab);
  for (let s = 0; s < n; s++) first.set(host.subarray(s * nt * slab, s * nt * slab + slab), s * slab);
  const u0 = constant(first, [n, ...shape.slice(2)], dtype, placement.backend);
  return { grid, u0, u, parameters };
}

/** Checks the sample range against the file's `total` samples. */
function sampleRange(op: string, path: string, total: number, o: SampleRange): { start: number; count: number } {
  const start = o.start ?? 0;
  if (!Number.isInteger(start) || start < 0 || start >= total) {
    throw new DataFileError(op, path, "", `start ${start} is outside the file's ${total} samples (0 to ${total - 1})`);
  }
  const count = o.count ?? total - start;
  if (!Number.isInteger(count) || count < 1 || start + count > total) {
    throw new DataFileError(
      op,
      path,
      "",
      `${count} samples from ${start} do not fit in the file's ${total}; at most ${total - start} from there`,
    );
  }
  return { start, count };
}

/** What an h5wasm entity is: "Group", "Dataset", … */
function kind(entity: unknown): string | undefined {
  return (entity as { type?: string } | null)?.type;
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function num(v: number): string {
  return Number(v.toPrecision(6)).toString();
}

function list(names: readonly string[]): string {
  if (!names.length) return "nothing";
  const shown = names.slice(0, 6).map((k) => `"${k}"`).join(", ");
  return names.length > 6 ? `${shown} … (${names.length} entries)` : shown;
}

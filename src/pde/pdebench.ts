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
 * HDF5 reads from disk only the datasets asked for, never the whole file into memory, and samples
 * are read one at a time (each whole: it is one chunk in PDEBench's files, and HDF5's strided
 * hyperslabs read it several times slower than whole), so the peak is the samples kept, at the
 * grid's size, plus one sample of the file. Reading one sample of a 1 GB file in this layout raised
 * the process's peak resident memory by 10 MiB over loading h5wasm alone (152 → 162 MiB).
 *
 * @example
 * ```ts ignore
 * import { DiffusionSorption, readDiffusionSorption } from "./mod.ts";
 * const grid = new DiffusionSorption().grid({ nx: 64, nt: 26 });
 * const train = await readDiffusionSorption("1D_diff-sorp_NA_NA.h5", { grid, count: 8000, dtype: "float64" });
 * const test = await readDiffusionSorption("1D_diff-sorp_NA_NA.h5", { grid, start: -1000, dtype: "float64" });
 * ```
 *
 * @module
 */

// deno-lint-ignore no-import-prefix
import type { Dataset as H5Dataset, File as H5File, Group as H5Group } from "npm:h5wasm@0.10.3";
import {
  type AxisPlan,
  DataFileError,
  type FileDataset,
  fmt,
  list,
  planAxis,
  restrict,
  sameShape,
  type SampleRange,
  sampleRange,
  sliced,
} from "./data_files.ts";
import type { Grid1D } from "./grid.ts";
import { DIFFUSION_SORPTION_PARAMETERS } from "./problems/diffusion_sorption.ts";

/** The h5wasm module (its Node build: host file access, HDF5 reading only the chunks it needs). */
export type Hdf5 = typeof import("npm:h5wasm@0.10.3/node");

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
    // deno-lint-ignore no-import-prefix
    const h5 = await import("npm:h5wasm@0.10.3/node");
    // deno-lint-ignore no-import-prefix
    const plugins = await import("npm:h5wasm-plugins@0.2.1");
    plugins.install_local_plugins(await h5.ready);
    return h5;
  })();
  return library;
}

/** Options of {@link readDiffusionSorption}. */
export interface DiffusionSorptionFileOptions extends SampleRange {
  /** The grid to read onto: the file's, or one coarser by integer factors. */
  grid: Grid1D;
}

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
): Promise<FileDataset<Grid1D>> {
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
    return sliced(grid, out, [count, nt, nx], options, DIFFUSION_SORPTION_PARAMETERS, {
      file: path,
      start,
      total: groups.length,
    });
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

/** Reads one sample `[...axes, (1)]` whole and restricts it onto the grid (see {@link restrict}). */
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
  return restrict(raw instanceof Float64Array ? raw : new Float64Array(raw), plans);
}

/** What an h5wasm entity is: "Group", "Dataset", … */
function kind(entity: unknown): string | undefined {
  return (entity as { type?: string } | null)?.type;
}

/**
 * What the data-file readers share: the {@link DataFileError} they raise, the sample range they
 * read, and the mapping of a file's axes onto a problem grid (checked coordinates, restriction to a
 * coarser grid by an integer factor).
 *
 * @module
 */

import { PatchworkError } from "../tensor/mod.ts";
import type { Axis, Grid } from "./grid.ts";
import type { Dataset, TensorPlacement } from "./problem.ts";
import { constant } from "./spectral.ts";

/**
 * A data file that cannot serve as training data as asked: missing, of another layout, or not on
 * the grid. The message names the file and dataset, what was expected and found, and what to do.
 *
 * @example
 * ```ts
 * import { DataFileError } from "./data_files.ts";
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

/** Which samples of a file to read, and where to put them. */
export interface SampleRange extends TensorPlacement {
  /** Index of the first sample in the file's order, default 0; negative counts from the end (−100: the last 100). */
  start?: number;
  /** Number of samples (default: all from `start`). */
  count?: number;
}

/**
 * Samples read from a file: a {@link Dataset} that says which samples of which file it holds.
 *
 * @example
 * ```ts
 * import type { FileDataset, Grid1D } from "./mod.ts";
 * const overlaps = (a: FileDataset<Grid1D>, b: FileDataset<Grid1D>) =>
 *   a.file === b.file && a.start < b.start + b.u.shape[0] && b.start < a.start + a.u.shape[0];
 * ```
 */
export interface FileDataset<G extends Grid = Grid> extends Dataset<G> {
  /** The file (or folder) read. */
  readonly file: string;
  /** Index of the first sample read. */
  readonly start: number;
  /** Number of samples the file holds. */
  readonly total: number;
}

/** How one file axis maps onto a grid axis. */
export interface AxisPlan {
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
 * Matches a file axis (its coordinates) with a grid axis: the file must hold the grid's axis at its
 * own resolution, and its point count must be the grid's times an integer.
 */
export function planAxis(op: string, path: string, name: string, coords: Float64Array, target: Axis): AxisPlan {
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

/** Restricts each leading axis of a row-major array `[...plans' sizes, ...rest]` by its plan. */
export function restrict(data: Float64Array, plans: readonly AxisPlan[]): Float64Array {
  const rest = data.length / plans.reduce((a, p) => a * p.size, 1);
  let shape = [...plans.map((p) => p.size), rest];
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
export function restrictAxis(data: Float64Array, shape: readonly number[], axis: number, plan: AxisPlan): Float64Array {
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
export function sliced<G extends Grid>(
  grid: G,
  host: Float64Array,
  shape: readonly number[],
  placement: TensorPlacement,
  parameters: Readonly<Record<string, number>>,
  source: { file: string; start: number; total: number },
): FileDataset<G> {
  const dtype = placement.dtype ?? "float32";
  const u = constant(host, shape, dtype, placement.backend);
  const [n, nt] = shape;
  const slab = host.length / (n * nt);
  const first = new Float64Array(n * slab);
  for (let s = 0; s < n; s++) first.set(host.subarray(s * nt * slab, s * nt * slab + slab), s * slab);
  const u0 = constant(first, [n, ...shape.slice(2)], dtype, placement.backend);
  return { grid, u0, u, parameters, ...source };
}

/** Checks the sample range against the file's `total` samples. */
export function sampleRange(op: string, path: string, total: number, o: SampleRange): { start: number; count: number } {
  const from = o.start ?? 0;
  const start = from < 0 ? total + from : from;
  if (!Number.isInteger(from) || start < 0 || start >= total) {
    throw new DataFileError(
      op,
      path,
      "",
      `start ${from} is outside the file's ${total} samples (0 to ${total - 1}, or −1 to −${total} from the end)`,
    );
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

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

export function num(v: number): string {
  return Number(v.toPrecision(6)).toString();
}

export function list(names: readonly string[]): string {
  if (!names.length) return "nothing";
  const shown = names.slice(0, 6).map((k) => `"${k}"`).join(", ");
  return names.length > 6 ? `${shown} … (${names.length} entries)` : shown;
}

/**
 * Plotly figures as plain data: heatmaps of 2-D fields, line charts, and the two helpers the PDE
 * examples use, {@link fieldComparison} (truth / prediction / |error| with expert boundaries) and
 * {@link curves} (loss and error over training steps). A {@link Figure} is `{ data, layout }`
 * exactly as `Plotly.newPlot` takes them; a {@link Report} lays them out in HTML.
 *
 * @module
 */

import { ArgumentError, fmtShape, noGrad, ShapeError, Tensor } from "../tensor/mod.ts";

/**
 * One plotly figure: traces and layout, as `Plotly.newPlot(div, data, layout)` takes them. Text in
 * titles and names is escaped when built by this module's helpers.
 *
 * @example
 * ```ts
 * import type { Figure } from "./figures.ts";
 * const fig: Figure = { data: [{ type: "bar", x: ["a", "b"], y: [1, 2] }], layout: { title: { text: "bars" } } };
 * ```
 */
export interface Figure {
  /** Plotly traces. */
  data: Record<string, unknown>[];
  /** Plotly layout. */
  layout: Record<string, unknown>;
}

/**
 * A line segment in data coordinates, drawn over a heatmap (an expert-domain boundary, say).
 *
 * @example
 * ```ts
 * import type { LineShape } from "./figures.ts";
 * const cut: LineShape = { x0: 0.5, y0: 0, x1: 0.5, y1: 1, color: "white", dash: "dash" };
 * ```
 */
export interface LineShape {
  /** Start x. */
  x0: number;
  /** Start y. */
  y0: number;
  /** End x. */
  x1: number;
  /** End y. */
  y1: number;
  /** Line colour (any CSS colour). Default: white over a black outline, visible on any colour scale. */
  color?: string;
  /** Line width in pixels. Default 1.5. */
  width?: number;
  /** Plotly dash style ("solid", "dot", "dash", "longdash", …). Default "dash". */
  dash?: string;
}

/**
 * Boundaries to draw on a heatmap: explicit segments, or the positions of full-height vertical
 * lines (`x`) and full-width horizontal lines (`y`) in data coordinates (see {@link splitBoundaries}).
 *
 * @example
 * ```ts
 * import type { Boundaries } from "./figures.ts";
 * const quarters: Boundaries = { x: [0.25, 0.5, 0.75] }; // 4 experts along x
 * ```
 */
export type Boundaries = readonly LineShape[] | { x?: readonly number[]; y?: readonly number[] };

/**
 * A plotly colour scale: a name ("Viridis", "RdBu", "Reds", "Jet", …) or `[fraction, colour]` stops.
 *
 * @example
 * ```ts
 * import type { Colorscale } from "./figures.ts";
 * const grey: Colorscale = [[0, "black"], [1, "white"]];
 * ```
 */
export type Colorscale = string | readonly (readonly [number, string])[];

/**
 * A 2-D field: a 2-D tensor or nested array, rows along y and columns along x (`z[row][col]`).
 *
 * @example
 * ```ts
 * import type { Field2D } from "./figures.ts";
 * const f: Field2D = [[0, 1], [2, 3]]; // 2 rows (y) × 2 columns (x)
 * ```
 */
export type Field2D = Tensor | readonly (readonly number[])[] | readonly ArrayLike<number>[];

/**
 * Options of {@link heatmap}.
 *
 * @example
 * ```ts
 * import { heatmap, type HeatmapOptions } from "./figures.ts";
 * const options: HeatmapOptions = { title: "u(t, x)", xTitle: "x", yTitle: "t", colorscale: "RdBu" };
 * heatmap([[1, 2], [3, 4]], options);
 * ```
 */
export interface HeatmapOptions {
  /** Figure title. */
  title?: string;
  /** Coordinates of the columns (default 0, 1, …). */
  x?: ArrayLike<number>;
  /** Coordinates of the rows (default 0, 1, …). */
  y?: ArrayLike<number>;
  /** Colour scale. Default "Viridis". */
  colorscale?: Colorscale;
  /** Reverse the colour scale. */
  reverseScale?: boolean;
  /** Lower end of the colour range (default: the data's minimum). */
  zmin?: number;
  /** Upper end of the colour range (default: the data's maximum). */
  zmax?: number;
  /** Lines to draw over the field (expert boundaries). */
  shapes?: Boundaries;
  /** x-axis title. */
  xTitle?: string;
  /** y-axis title. */
  yTitle?: string;
  /** Colour bar title. */
  colorbarTitle?: string;
  /** Same scale on both axes (square cells for a square grid). Default false. */
  equalAspect?: boolean;
  /** Plot height in pixels. Default 420. */
  height?: number;
  /** Significant digits kept in the embedded data. Default 6. */
  precision?: number;
}

/**
 * A line series: a name and its points.
 *
 * @example
 * ```ts
 * import type { Series } from "./figures.ts";
 * const s: Series = { name: "train loss", x: [0, 1, 2], y: [1, 0.5, 0.2] };
 * ```
 */
export interface Series {
  /** Legend name. */
  name: string;
  /** x values (default 0, 1, …). */
  x?: ArrayLike<number>;
  /** y values. */
  y: ArrayLike<number>;
}

/**
 * Options of {@link lineChart}.
 *
 * @example
 * ```ts
 * import { lineChart, type LineChartOptions } from "./figures.ts";
 * const options: LineChartOptions = { title: "loss", logY: true, xTitle: "step" };
 * lineChart([{ name: "loss", y: [1, 0.1, 0.01] }], options);
 * ```
 */
export interface LineChartOptions {
  /** Figure title. */
  title?: string;
  /** Logarithmic y axis. Default false. */
  logY?: boolean;
  /** Logarithmic x axis. Default false. */
  logX?: boolean;
  /** x-axis title. */
  xTitle?: string;
  /** y-axis title. */
  yTitle?: string;
  /** Draw markers at the points as well as lines. Default: only when a series has ≤ 50 points. */
  markers?: boolean;
  /** Plot height in pixels. Default 380. */
  height?: number;
  /** Significant digits kept in the embedded data. Default 6. */
  precision?: number;
}

/**
 * Escapes `& < >` in text for plotly's pseudo-HTML (titles, names): plotly shows the entities as
 * the characters, so a title reads as written and never becomes markup.
 *
 * @example
 * ```ts
 * import { plotlyText } from "./figures.ts";
 * plotlyText("error < 1e-3 <b>"); // "error &lt; 1e-3 &lt;b&gt;"
 * ```
 */
export function plotlyText(text: string): string {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function rounder(precision = 6): (v: number) => number | null {
  if (!Number.isInteger(precision) || precision < 1 || precision > 17) {
    throw new ArgumentError("viz", `precision must be an integer from 1 to 17, got ${precision}`);
  }
  return (v) => (Number.isFinite(v) ? Number(v.toPrecision(precision)) : null);
}

function numbers(op: string, what: string, values: ArrayLike<number> | Tensor): number[] {
  if (values instanceof Tensor) {
    if (values.ndim !== 1) throw new ShapeError(op, `${what} must be 1-D, got shape ${fmtShape(values.shape)}`);
    return Array.from(noGrad(() => values.toTypedArray()));
  }
  if (values === null || typeof values !== "object" || typeof values.length !== "number") {
    throw new ArgumentError(op, `${what} must be an array of numbers`);
  }
  return Array.from(values, Number);
}

/** The rows of a 2-D field as plain numbers, with its shape. */
function fieldRows(op: string, field: Field2D): { rows: number[][]; ny: number; nx: number } {
  if (field instanceof Tensor) {
    if (field.ndim !== 2) {
      throw new ShapeError(op, `a field must be 2-D [rows (y), columns (x)], got shape ${fmtShape(field.shape)}`);
    }
    const [ny, nx] = field.shape;
    const flat = noGrad(() => field.toTypedArray());
    const rows = Array.from({ length: ny }, (_, i) => Array.from(flat.subarray(i * nx, (i + 1) * nx)));
    return { rows, ny, nx };
  }
  if (!Array.isArray(field) || field.length === 0) {
    throw new ArgumentError(op, "a field must be a 2-D tensor or a non-empty array of rows");
  }
  const rows = field.map((r, i) => {
    if (r === null || typeof r !== "object" || typeof r.length !== "number") {
      throw new ArgumentError(op, `row ${i} of the field is not an array`);
    }
    return Array.from(r as ArrayLike<number>, Number);
  });
  const nx = rows[0].length;
  rows.forEach((r, i) => {
    if (r.length !== nx) throw new ShapeError(op, `row ${i} has ${r.length} values, row 0 has ${nx}`);
  });
  return { rows, ny: rows.length, nx };
}

function axisCoords(op: string, what: string, given: ArrayLike<number> | undefined, n: number): number[] {
  if (given === undefined) return Array.from({ length: n }, (_, i) => i);
  const c = numbers(op, what, given);
  if (c.length !== n) {
    throw new ShapeError(op, `${what} has ${c.length} coordinates for ${n} ${what === "x" ? "columns" : "rows"}`);
  }
  return c;
}

function extent(c: number[]): [number, number] {
  if (c.length === 1) return [c[0] - 0.5, c[0] + 0.5];
  const half0 = (c[1] - c[0]) / 2;
  const half1 = (c[c.length - 1] - c[c.length - 2]) / 2;
  return [c[0] - half0, c[c.length - 1] + half1];
}

function lineShapes(b: Boundaries | undefined, xs: [number, number], ys: [number, number]): Record<string, unknown>[] {
  if (!b) return [];
  const segs: LineShape[] = Array.isArray(b) ? [...(b as readonly LineShape[])] : [
    ...((b as { x?: readonly number[] }).x ?? []).map((x) => ({ x0: x, x1: x, y0: ys[0], y1: ys[1] })),
    ...((b as { y?: readonly number[] }).y ?? []).map((y) => ({ y0: y, y1: y, x0: xs[0], x1: xs[1] })),
  ];
  const out: Record<string, unknown>[] = [];
  for (const s of segs) {
    for (const k of ["x0", "y0", "x1", "y1"] as const) {
      if (!Number.isFinite(s[k])) {
        throw new ArgumentError("heatmap", `boundary ${k} must be a finite number, got ${s[k]}`);
      }
    }
    const base = { type: "line", xref: "x", yref: "y", x0: s.x0, y0: s.y0, x1: s.x1, y1: s.y1, layer: "above" };
    const width = s.width ?? 1.5;
    if (s.color === undefined) out.push({ ...base, line: { color: "black", width: width + 2, dash: "solid" } });
    out.push({ ...base, line: { color: s.color ?? "white", width, dash: s.dash ?? "dash" } });
  }
  return out;
}

function titleOf(text: string | undefined): Record<string, unknown> | undefined {
  return text === undefined ? undefined : { text: plotlyText(text) };
}

/** A figure title, left-aligned (clear of plotly's mode bar at the top right). */
function figureTitle(text: string | undefined): Record<string, unknown> | undefined {
  return text === undefined ? undefined : { text: plotlyText(text), x: 0.02, xanchor: "left" };
}

/**
 * A heatmap figure of a 2-D field (`z[row][col]`: rows along y, columns along x), optionally with
 * boundary lines drawn over it.
 *
 * @example
 * ```ts
 * import { heatmap } from "./figures.ts";
 * import { linspace } from "../tensor/mod.ts";
 * const x = linspace(0, 1, 64);
 * const field = x.reshape([-1, 1]).mul(x.reshape([1, -1]).mul(6).sin()); // [64, 64]
 * const fig = heatmap(field, { title: "u", x: x.toTypedArray(), y: x.toTypedArray(), shapes: { x: [0.5] } });
 * ```
 */
export function heatmap(field: Field2D, options: HeatmapOptions = {}): Figure {
  const op = "heatmap";
  const { rows, ny, nx } = fieldRows(op, field);
  const round = rounder(options.precision);
  const x = axisCoords(op, "x", options.x, nx);
  const y = axisCoords(op, "y", options.y, ny);
  const trace: Record<string, unknown> = {
    type: "heatmap",
    z: rows.map((r) => r.map(round)),
    x: x.map(round),
    y: y.map(round),
    colorscale: options.colorscale ?? "Viridis",
    colorbar: {
      thickness: 14,
      ...(options.colorbarTitle ? { title: { text: plotlyText(options.colorbarTitle) } } : {}),
    },
  };
  if (options.reverseScale) trace.reversescale = true;
  if (options.zmin !== undefined || options.zmax !== undefined) {
    // plotly uses a fixed range only when both ends are given: fill in the other from the data.
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of rows) {
      for (const v of r) {
        if (Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    trace.zmin = options.zmin ?? Math.min(lo, options.zmax!);
    trace.zmax = options.zmax ?? Math.max(hi, options.zmin!);
  }
  const layout: Record<string, unknown> = {
    title: figureTitle(options.title),
    height: options.height ?? 420,
    margin: { l: 60, r: 20, t: options.title ? 50 : 20, b: 50 },
    xaxis: { title: titleOf(options.xTitle), constrain: "domain" },
    yaxis: {
      title: titleOf(options.yTitle),
      ...(options.equalAspect ? { scaleanchor: "x", constrain: "domain" } : {}),
    },
    shapes: lineShapes(options.shapes, extent(x), extent(y)),
  };
  return { data: [trace], layout };
}

/**
 * A line chart of one or more series.
 *
 * @example
 * ```ts
 * import { lineChart } from "./figures.ts";
 * const fig = lineChart(
 *   [{ name: "train", y: [1, 0.3, 0.1] }, { name: "test", x: [0, 2], y: [1.2, 0.2] }],
 *   { title: "loss", logY: true, xTitle: "step" },
 * );
 * ```
 */
export function lineChart(series: readonly Series[], options: LineChartOptions = {}): Figure {
  const op = "lineChart";
  if (!Array.isArray(series)) throw new ArgumentError(op, "series must be an array of { name, x?, y }");
  const round = rounder(options.precision);
  const data = series.map((s, i) => {
    if (!s || typeof s !== "object") throw new ArgumentError(op, `series ${i} must be { name, x?, y }`);
    const y = numbers(op, `series ${i} ("${s.name}") y`, s.y);
    const x = s.x === undefined ? y.map((_, j) => j) : numbers(op, `series ${i} ("${s.name}") x`, s.x);
    if (x.length !== y.length) {
      throw new ShapeError(op, `series ${i} ("${s.name}") has ${x.length} x values and ${y.length} y values`);
    }
    const markers = options.markers ?? y.length <= 50;
    return {
      type: "scatter",
      mode: markers ? "lines+markers" : "lines",
      name: plotlyText(String(s.name ?? `series ${i}`)),
      x: x.map(round),
      y: y.map(round),
    };
  });
  const layout: Record<string, unknown> = {
    title: figureTitle(options.title),
    height: options.height ?? 380,
    margin: { l: 70, r: 20, t: options.title ? 50 : 20, b: 50 },
    xaxis: { title: titleOf(options.xTitle), type: options.logX ? "log" : "linear" },
    yaxis: { title: titleOf(options.yTitle), type: options.logY ? "log" : "linear", exponentformat: "e" },
    showlegend: data.length > 0,
    legend: { orientation: "h", y: -0.2 },
  };
  return { data, layout };
}

/**
 * Positions of the cuts between `parts` equal pieces of a grid axis with coordinates `coords`
 * (midway between the last point of one piece and the first of the next), for drawing expert
 * domains of a uniform partition.
 *
 * @example
 * ```ts
 * import { splitBoundaries } from "./figures.ts";
 * splitBoundaries([0, 1, 2, 3, 4, 5, 6, 7], 4); // [1.5, 3.5, 5.5]
 * ```
 */
export function splitBoundaries(coords: ArrayLike<number> | Tensor, parts: number): number[] {
  const c = numbers("splitBoundaries", "coords", coords);
  if (!Number.isInteger(parts) || parts < 1 || parts > c.length) {
    throw new ArgumentError("splitBoundaries", `parts must be an integer from 1 to ${c.length}, got ${parts}`);
  }
  const out: number[] = [];
  for (let k = 1; k < parts; k++) {
    const i = Math.round((k * c.length) / parts);
    out.push((c[i - 1] + c[i]) / 2);
  }
  return out;
}

/**
 * Options of {@link fieldComparison}.
 *
 * @example
 * ```ts
 * import type { FieldComparisonOptions } from "./figures.ts";
 * const options: FieldComparisonOptions = { boundaries: { x: [0.5] }, xTitle: "x", yTitle: "t" };
 * ```
 */
export interface FieldComparisonOptions
  extends Pick<HeatmapOptions, "x" | "y" | "xTitle" | "yTitle" | "equalAspect" | "height" | "precision"> {
  /** Expert boundaries drawn on all three panels. */
  boundaries?: Boundaries;
  /** Titles of the three panels. Default "truth", "prediction", "|error|" (with the relative L2 error). */
  titles?: readonly [string, string, string];
  /** Colour scale of truth and prediction (shared range). Default "Viridis". */
  colorscale?: Colorscale;
  /** Colour scale of the error. Default "Reds". */
  errorColorscale?: Colorscale;
}

/**
 * Truth, prediction and |prediction − truth| as three heatmaps (shown side by side in a report),
 * truth and prediction on one colour range, with expert boundaries drawn on each. The error panel's
 * title carries the relative L2 error ‖prediction − truth‖ / ‖truth‖.
 *
 * @example
 * ```ts
 * import { fieldComparison, splitBoundaries } from "./figures.ts";
 * import { linspace } from "../tensor/mod.ts";
 * const x = linspace(0, 1, 32);
 * const truth = x.reshape([-1, 1]).mul(x.reshape([1, -1]).mul(6).sin());
 * const prediction = truth.add(0.01);
 * const xs = x.toTypedArray();
 * const figs = fieldComparison(truth, prediction, { x: xs, y: xs, boundaries: { x: splitBoundaries(xs, 2) } });
 * figs.length; // 3
 * ```
 */
export function fieldComparison(truth: Field2D, prediction: Field2D, options: FieldComparisonOptions = {}): Figure[] {
  const op = "fieldComparison";
  const t = fieldRows(op, truth);
  const p = fieldRows(op, prediction);
  if (t.ny !== p.ny || t.nx !== p.nx) {
    throw new ShapeError(op, `truth is [${t.ny}, ${t.nx}] but prediction is [${p.ny}, ${p.nx}]`);
  }
  let lo = Infinity;
  let hi = -Infinity;
  let num = 0;
  let den = 0;
  let maxErr = 0;
  const err = t.rows.map((row, i) =>
    row.map((tv, j) => {
      const pv = p.rows[i][j];
      for (const v of [tv, pv]) {
        if (Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      num += (pv - tv) ** 2;
      den += tv ** 2;
      const e = Math.abs(pv - tv);
      if (Number.isFinite(e)) maxErr = Math.max(maxErr, e);
      return e;
    })
  );
  const rel = Math.sqrt(num / den);
  const relText = Number.isFinite(rel) ? `relative L2 ${rel.toExponential(2)}` : "";
  const [t0, t1, t2] = options.titles ?? ["truth", "prediction", relText ? `|error| (${relText})` : "|error|"];
  const common = {
    x: options.x,
    y: options.y,
    xTitle: options.xTitle,
    yTitle: options.yTitle,
    equalAspect: options.equalAspect,
    height: options.height ?? 380,
    precision: options.precision,
    shapes: options.boundaries,
  };
  const range = Number.isFinite(lo) ? { zmin: lo, zmax: hi } : {};
  const colorscale = options.colorscale ?? "Viridis";
  return [
    heatmap(t.rows, { ...common, ...range, title: t0, colorscale }),
    heatmap(p.rows, { ...common, ...range, title: t1, colorscale }),
    heatmap(err, { ...common, title: t2, colorscale: options.errorColorscale ?? "Reds", zmin: 0, zmax: maxErr || 1 }),
  ];
}

/**
 * A training history: named columns of numbers, or one record per logged step. A `step` column
 * (see {@link CurvesOptions.x}) gives the x values; otherwise they are 0, 1, ….
 *
 * @example
 * ```ts
 * import type { History } from "./figures.ts";
 * const columns: History = { step: [0, 100, 200], loss: [1, 0.1, 0.03], relL2: [0.9, 0.2, 0.08] };
 * const records: History = [{ step: 0, loss: 1 }, { step: 100, loss: 0.1 }];
 * ```
 */
export type History =
  | Readonly<Record<string, ArrayLike<number>>>
  | readonly Readonly<Record<string, number | undefined>>[];

/**
 * Options of {@link curves}.
 *
 * @example
 * ```ts
 * import type { CurvesOptions } from "./figures.ts";
 * const options: CurvesOptions = { x: "epoch", logY: false };
 * ```
 */
export interface CurvesOptions {
  /** The column holding the x values. Default "step". */
  x?: string;
  /** Logarithmic y axes. Default true. */
  logY?: boolean;
  /** Title prefix. */
  title?: string;
  /** Plot height in pixels. */
  height?: number;
}

/**
 * Loss and error curves over training steps: the columns whose name contains "loss" in one chart,
 * every other column (errors, metrics) in a second, both on log axes by default. Records with a
 * missing or non-finite value leave a gap.
 *
 * @example
 * ```ts
 * import { curves } from "./figures.ts";
 * const figs = curves({ step: [0, 1, 2], loss: [1, 0.5, 0.2], "test rel. L2": [0.8, 0.4, 0.3] });
 * figs.length; // 2: losses, then errors
 * ```
 */
export function curves(history: History, options: CurvesOptions = {}): Figure[] {
  const op = "curves";
  const xKey = options.x ?? "step";
  const columns = new Map<string, (number | undefined)[]>();
  let length = 0;
  if (Array.isArray(history)) {
    const records = history as readonly Readonly<Record<string, number | undefined>>[];
    length = records.length;
    records.forEach((r, i) => {
      for (const [k, v] of Object.entries(r)) {
        if (!columns.has(k)) columns.set(k, Array(length).fill(undefined));
        columns.get(k)![i] = v === undefined ? undefined : Number(v);
      }
    });
  } else if (history && typeof history === "object") {
    for (const [k, v] of Object.entries(history as Record<string, ArrayLike<number>>)) {
      const col = numbers(op, `column "${k}"`, v);
      length = Math.max(length, col.length);
      columns.set(k, col);
    }
  } else {
    throw new ArgumentError(op, "history must be a record of columns or an array of records");
  }
  const xs = columns.get(xKey);
  const names = [...columns.keys()].filter((k) => k !== xKey);
  if (names.length === 0) throw new ArgumentError(op, "history has no columns to plot");
  const seriesOf = (k: string): Series => {
    const col = columns.get(k)!;
    const x: number[] = [];
    const y: number[] = [];
    col.forEach((v, i) => {
      if (v === undefined || !Number.isFinite(v)) return;
      x.push(xs ? xs[i] ?? i : i);
      y.push(v);
    });
    return { name: k, x, y };
  };
  const losses = names.filter((k) => /loss/i.test(k));
  const others = names.filter((k) => !/loss/i.test(k));
  const prefix = options.title ? `${options.title}: ` : "";
  const common = { logY: options.logY ?? true, xTitle: xs ? xKey : "step", height: options.height };
  const figs: Figure[] = [];
  if (losses.length) figs.push(lineChart(losses.map(seriesOf), { ...common, title: `${prefix}loss`, yTitle: "loss" }));
  if (others.length) {
    figs.push(lineChart(others.map(seriesOf), { ...common, title: `${prefix}error`, yTitle: "error" }));
  }
  return figs;
}

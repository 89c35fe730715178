/**
 * {@link Report}: a self-contained HTML page of plotly figures, tables and text. The plotly.js
 * bundle is inlined once per report (no CDN), so the file opens offline.
 *
 * @module
 */

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { ArgumentError } from "../tensor/mod.ts";
import {
  curves,
  type CurvesOptions,
  type Field2D,
  fieldComparison,
  type FieldComparisonOptions,
  type Figure,
  heatmap,
  type HeatmapOptions,
  type History,
  lineChart,
  type LineChartOptions,
  type Series,
} from "./figures.ts";
import { escapeHtml, inlineScript, markdown, scriptJson } from "./html.ts";
import { loadPlotly, PLOTLY_VERSION } from "./plotly.ts";

/**
 * Options of {@link Report}.
 *
 * @example
 * ```ts
 * import { Report, type ReportOptions } from "./report.ts";
 * const options: ReportOptions = { subtitle: "Navier–Stokes, 4 experts" };
 * new Report("PI-HC-MoE", options);
 * ```
 */
export interface ReportOptions {
  /** A line under the title. */
  subtitle?: string;
  /** plotly.js script text to inline instead of the pinned package (see `loadPlotly`). */
  plotlyScript?: string;
}

/**
 * A table cell: numbers are formatted to `digits` significant digits, everything else is shown as
 * text (escaped).
 *
 * @example
 * ```ts
 * import type { Cell } from "./report.ts";
 * const row: Cell[] = ["PI-HC-MoE", 0.083, 4, null];
 * ```
 */
export type Cell = string | number | boolean | null | undefined;

/**
 * Options of {@link Report.table}.
 *
 * @example
 * ```ts
 * import { Report, type TableOptions } from "./report.ts";
 * const options: TableOptions = { title: "errors", header: ["method", "rel. L2"], digits: 3 };
 * new Report("r").table([["PI-HC", 0.1175], ["PI-HC-MoE", 0.08298]], options);
 * ```
 */
export interface TableOptions {
  /** Caption. */
  title?: string;
  /** Column names (for rows given as arrays; records use their keys). */
  header?: readonly string[];
  /** Significant digits of numbers. Default 4. */
  digits?: number;
}

type Block =
  | { kind: "figures"; figures: Figure[] }
  | { kind: "html"; html: string };

interface Section {
  title?: string;
  blocks: Block[];
}

/**
 * Formats a table cell: integers as they are, other numbers to `digits` significant digits
 * (exponent form when very small or large).
 */
function formatCell(v: Cell, digits: number): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(digits - 1) : String(Number(v.toPrecision(digits)));
  }
  return String(v);
}

const STYLE = `
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1f23; margin: 0; background: #f6f7f9; }
header { background: #1f2937; color: #f9fafb; padding: 18px 28px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #cbd5e1; }
main { padding: 8px 28px 40px; max-width: 1600px; margin: 0 auto; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 12px 18px; margin: 18px 0; }
section > h2 { font-size: 18px; margin: 4px 0 10px; }
.row { display: grid; gap: 8px; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); margin: 8px 0; }
@media (max-width: 900px) { .row { grid-template-columns: minmax(0, 1fr); } }
.fig { min-width: 0; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 4px 12px; text-align: right; }
th { background: #f3f4f6; }
th:first-child, td:first-child { text-align: left; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; font-size: 90%; }
pre { background: #f3f4f6; padding: 8px 12px; border-radius: 6px; overflow-x: auto; }
footer { color: #6b7280; font-size: 12px; text-align: center; padding: 12px; }
`;

const RENDER = `
(function () {
  var figures = JSON.parse(document.getElementById("patchwork-figures").textContent);
  var config = { responsive: true, displaylogo: false, toImageButtonOptions: { format: "png", scale: 2 } };
  figures.forEach(function (f) {
    Plotly.newPlot(f.id, f.data, f.layout, config);
  });
})();
`;

/**
 * A report: a title, then sections of figures, tables and text, written as one self-contained
 * HTML file (plotly.js inlined; figure data as JSON). Builder methods return the report, so calls
 * chain; `section(title)` starts a new section and everything added after it goes there.
 *
 * @example
 * ```ts
 * import { Report } from "./report.ts";
 * import { linspace } from "../tensor/mod.ts";
 * const x = linspace(0, 1, 64);
 * const u = x.reshape([-1, 1]).mul(x.reshape([1, -1]).mul(6).sin());
 * const report = new Report("Heat equation", { subtitle: "FNO + hard constraint" })
 *   .text("Trained for **2000** steps.")
 *   .section("Solution")
 *   .heatmap(u, { title: "u(t, x)", x: x.toTypedArray(), y: x.toTypedArray(), xTitle: "x", yTitle: "t" })
 *   .section("Training")
 *   .lineChart([{ name: "loss", y: [1, 0.1, 0.01] }], { logY: true })
 *   .table([{ method: "PI-HC", relL2: 0.1175 }, { method: "PI-HC-MoE", relL2: 0.083 }]);
 * await report.save("out/heat.html");
 * ```
 */
export class Report {
  /** The page title. */
  readonly title: string;
  readonly #subtitle: string | undefined;
  readonly #plotlyScript: string | undefined;
  readonly #sections: Section[] = [{ blocks: [] }];

  /** An empty report called `title`. */
  constructor(title: string, options: ReportOptions = {}) {
    if (typeof title !== "string") throw new ArgumentError("Report", "title must be a string");
    this.title = title;
    this.#subtitle = options.subtitle;
    this.#plotlyScript = options.plotlyScript;
  }

  #add(block: Block): this {
    this.#sections[this.#sections.length - 1].blocks.push(block);
    return this;
  }

  /**
   * Starts a new section titled `title`.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * new Report("r").section("Results").text("…");
   * ```
   */
  section(title: string): this {
    this.#sections.push({ title: String(title), blocks: [] });
    return this;
  }

  /**
   * Adds figures built elsewhere (see `heatmap`, `lineChart`, `fieldComparison`, `curves` in
   * figures.ts, or any `{ data, layout }` for plotly); several figures sit side by side in a row.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * import { heatmap } from "./figures.ts";
   * new Report("r").figure([heatmap([[1, 2]]), heatmap([[3, 4]])]);
   * ```
   */
  figure(figures: Figure | readonly Figure[]): this {
    const list = Array.isArray(figures) ? [...figures] : [figures as Figure];
    for (const [i, f] of list.entries()) {
      if (!f || !Array.isArray(f.data) || typeof f.layout !== "object" || f.layout === null) {
        throw new ArgumentError("Report.figure", `figure ${i} must be { data: [...], layout: {...} }`);
      }
    }
    if (list.length === 0) return this;
    return this.#add({ kind: "figures", figures: list });
  }

  /**
   * Adds a heatmap of a 2-D field (rows along y, columns along x); see `HeatmapOptions`
   * (title, x, y, colorscale, shapes for expert boundaries, …).
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * new Report("r").heatmap([[0, 1, 2], [1, 2, 3]], { title: "u", shapes: { x: [0.5] } });
   * ```
   */
  heatmap(field: Field2D, options: HeatmapOptions = {}): this {
    return this.figure(heatmap(field, options));
  }

  /**
   * Adds a line chart of `series` ({ name, x?, y }); `logY` for a log axis.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * new Report("r").lineChart([{ name: "loss", x: [0, 10, 20], y: [1, 0.2, 0.05] }], { title: "loss", logY: true });
   * ```
   */
  lineChart(series: readonly Series[], options: LineChartOptions = {}): this {
    return this.figure(lineChart(series, options));
  }

  /**
   * Adds truth / prediction / |error| heatmaps side by side, with expert boundaries on each.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * const truth = [[0, 1], [1, 2]];
   * new Report("r").fieldComparison(truth, [[0, 1.1], [0.9, 2]], { boundaries: { x: [0.5] } });
   * ```
   */
  fieldComparison(truth: Field2D, prediction: Field2D, options: FieldComparisonOptions = {}): this {
    return this.figure(fieldComparison(truth, prediction, options));
  }

  /**
   * Adds loss and error curves over training steps, side by side.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * new Report("r").curves({ step: [0, 100, 200], loss: [1, 0.1, 0.02], relL2: [1, 0.3, 0.1] });
   * ```
   */
  curves(history: History, options: CurvesOptions = {}): this {
    return this.figure(curves(history, options));
  }

  /**
   * Adds a table: records (keys become the header, in first-seen order) or arrays of cells (with an
   * optional `header`). Numbers are shown to `digits` significant digits.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * new Report("r")
   *   .table([{ method: "PI-SC", relL2: 0.1808 }, { method: "PI-HC-MoE", relL2: 0.08298 }], { title: "test error" })
   *   .table([["K", 4], ["points", 20000]], { header: ["setting", "value"] });
   * ```
   */
  table(
    rows: readonly Readonly<Record<string, Cell>>[] | readonly (readonly Cell[])[],
    options: TableOptions = {},
  ): this {
    if (!Array.isArray(rows)) throw new ArgumentError("Report.table", "rows must be an array");
    const digits = options.digits ?? 4;
    if (!Number.isInteger(digits) || digits < 1 || digits > 17) {
      throw new ArgumentError("Report.table", `digits must be an integer from 1 to 17, got ${digits}`);
    }
    let header: string[] | undefined = options.header ? [...options.header] : undefined;
    let body: Cell[][];
    if (rows.length > 0 && !Array.isArray(rows[0])) {
      const records = rows as readonly Readonly<Record<string, Cell>>[];
      const keys: string[] = [];
      for (const r of records) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
      header ??= keys;
      body = records.map((r) => keys.map((k) => r[k]));
    } else {
      body = (rows as readonly (readonly Cell[])[]).map((r) => [...r]);
    }
    const cell = (tag: string, v: Cell) => `<${tag}>${escapeHtml(formatCell(v, digits))}</${tag}>`;
    const html = [
      "<table>",
      options.title ? `<caption>${escapeHtml(options.title)}</caption>` : "",
      header ? `<thead><tr>${header.map((h) => cell("th", h)).join("")}</tr></thead>` : "",
      `<tbody>${body.map((r) => `<tr>${r.map((v) => cell("td", v)).join("")}</tr>`).join("\n")}</tbody>`,
      "</table>",
    ].join("");
    return this.#add({ kind: "html", html });
  }

  /**
   * Adds markdown-ish text: paragraphs, `#` headings, `-` and `1.` lists, fenced code, and inline
   * `code`, **bold**, *italic* and [links](https://…). It is escaped, never taken as HTML.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * new Report("r").text("Relative L2 error **8.3%** with `K = 4` experts.\n\n- 20k points per expert\n- LM, 50 iterations");
   * ```
   */
  text(text: string): this {
    return this.#add({ kind: "html", html: `<div class="text">${markdown(String(text))}</div>` });
  }

  /**
   * The report as one HTML document with plotly.js inlined (loaded on first use; see `loadPlotly`).
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * const html = await new Report("r").lineChart([{ name: "y", y: [1, 2, 3] }]).toHtml();
   * html.startsWith("<!DOCTYPE html>"); // true
   * ```
   */
  async toHtml(): Promise<string> {
    const plotly = this.#plotlyScript ?? await loadPlotly();
    const figures: (Figure & { id: string })[] = [];
    const sections = this.#sections.filter((s) => s.title !== undefined || s.blocks.length > 0).map((s) => {
      const parts: string[] = [];
      if (s.title !== undefined) parts.push(`<h2>${escapeHtml(s.title)}</h2>`);
      for (const b of s.blocks) {
        if (b.kind === "html") {
          parts.push(b.html);
          continue;
        }
        const divs = b.figures.map((f) => {
          const id = `fig-${figures.length}`;
          figures.push({ id, data: f.data, layout: f.layout });
          // The div's height is the figure's (plotly's responsive mode sizes the plot to its div).
          const h = Number(f.layout.height);
          return `<div class="fig" id="${id}" style="height: ${Number.isFinite(h) && h > 0 ? h : 420}px"></div>`;
        });
        parts.push(`<div class="row" style="--cols: ${divs.length}">${divs.join("")}</div>`);
      }
      return `<section>\n${parts.join("\n")}\n</section>`;
    });
    return [
      "<!DOCTYPE html>",
      '<html lang="en">',
      "<head>",
      '<meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      `<meta name="generator" content="patchwork viz, plotly.js ${escapeHtml(PLOTLY_VERSION)}">`,
      `<title>${escapeHtml(this.title)}</title>`,
      `<style>${STYLE}</style>`,
      `<script>${inlineScript(plotly)}</script>`,
      "</head>",
      "<body>",
      `<header><h1>${escapeHtml(this.title)}</h1>${
        this.#subtitle !== undefined ? `<p>${escapeHtml(this.#subtitle)}</p>` : ""
      }</header>`,
      "<main>",
      ...sections,
      "</main>",
      `<footer>patchwork report · plotly.js ${escapeHtml(PLOTLY_VERSION)} embedded</footer>`,
      `<script type="application/json" id="patchwork-figures">${scriptJson(figures)}</script>`,
      `<script>${RENDER}</script>`,
      "</body>",
      "</html>",
      "",
    ].join("\n");
  }

  /**
   * Writes the HTML to `path` (creating its directory; written to `path.tmp` then renamed, so a
   * reader never sees half a file). Returns the path.
   *
   * @example
   * ```ts
   * import { Report } from "./report.ts";
   * await new Report("r").text("hello").save("out/hello.html");
   * ```
   */
  async save(path: string | URL): Promise<string> {
    const file = path instanceof URL ? fileURLToPath(path) : String(path);
    const html = await this.toHtml();
    await Deno.mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    await Deno.writeTextFile(tmp, html);
    await Deno.rename(tmp, file);
    return file;
  }
}

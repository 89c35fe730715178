/**
 * Reports as self-contained HTML with plotly: heatmaps of fields (with expert boundaries), line
 * charts, tables and text, and the PDE helpers {@link fieldComparison} (truth / prediction /
 * |error|) and {@link curves} (loss and error over steps). plotly.js (npm `plotly.js-dist-min`,
 * pinned) is inlined in every report, so the file opens offline.
 *
 * @example
 * ```ts
 * import { viz } from "../../mod.ts";
 * const history = { step: [0, 100, 200], loss: [1, 0.1, 0.02], "rel. L2": [1, 0.3, 0.1] };
 * await new viz.Report("Heat equation")
 *   .section("Training")
 *   .curves(history)
 *   .section("Solution")
 *   .fieldComparison([[0, 1], [1, 2]], [[0, 1.1], [0.9, 2]], { boundaries: { x: [0.5] } })
 *   .save("out/heat.html");
 * ```
 *
 * @module
 */

export * from "./figures.ts";
export * from "./report.ts";
export { escapeHtml, inlineScript, markdown, scriptJson } from "./html.ts";
export { loadPlotly, PLOTLY_VERSION, PlotlyUnavailableError, setPlotlyScript } from "./plotly.ts";

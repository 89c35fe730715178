import assert from "node:assert/strict";
import { ArgumentError, linspace, ShapeError, tensor, viz } from "../mod.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

type FigureJson = { id: string; data: Record<string, unknown>[]; layout: Record<string, unknown> };

/** The figure JSON embedded in a report (throws if it is not valid JSON). */
function figuresOf(html: string): FigureJson[] {
  const m = /<script type="application\/json" id="patchwork-figures">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, "the report has a figure-data script");
  return JSON.parse(m[1]);
}

/** Every `<script …>` opening tag. */
function scriptTags(html: string): string[] {
  return html.match(/<script\b[^>]*>/gi) ?? [];
}

const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));

// ---------------------------------------------------------------------------------------------
// plotly

Deno.test("viz: plotly.js is the pinned npm package, loaded as text", async () => {
  assert.equal(denoJson.imports["plotly.js-dist-min"], `npm:plotly.js-dist-min@${viz.PLOTLY_VERSION}`);
  assert.equal(denoJson.exports["./viz"], "./src/viz/mod.ts");
  const js = await viz.loadPlotly();
  assert.ok(js.length > 1_000_000, `plotly.min.js has ${js.length} characters`);
  assert.ok(js.includes(`plotly.js v${viz.PLOTLY_VERSION}`), "the bundle is the pinned version");
  assert.equal(await viz.loadPlotly(), js, "loaded once, then cached");
});

Deno.test("viz: setPlotlyScript overrides the bundle and rejects non-plotly text", async () => {
  assert.throws(() => viz.setPlotlyScript("console.log(1)"), viz.PlotlyUnavailableError);
  try {
    viz.setPlotlyScript("/* fake */ window.Plotly = { newPlot() {} };");
    assert.match(await viz.loadPlotly(), /fake/);
  } finally {
    viz.setPlotlyScript(undefined);
  }
  assert.ok((await viz.loadPlotly()).length > 1_000_000);
});

Deno.test("viz: PATCHWORK_PLOTLY_JS names a plotly.min.js to use instead of the package", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/plotly.min.js`;
    await Deno.writeTextFile(file, "/* custom build */ window.Plotly = {};");
    const vizUrl = new URL("../src/viz/mod.ts", import.meta.url).href;
    const code = `const v = await import(${JSON.stringify(vizUrl)}); console.log(await v.loadPlotly());`;
    const run = (path: string) =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, code],
        env: { PATCHWORK_PLOTLY_JS: path },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(file);
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assert.match(new TextDecoder().decode(ok.stdout), /custom build/);
    const missing = await run(`${dir}/missing.js`);
    assert.notEqual(missing.code, 0);
    assert.match(new TextDecoder().decode(missing.stderr), /PlotlyUnavailableError.*PATCHWORK_PLOTLY_JS/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Report HTML

Deno.test("viz: a report embeds plotly once, loads no remote script, and carries valid figure JSON", async () => {
  const x = linspace(0, 1, 24);
  const u = x.reshape([-1, 1]).mul(x.reshape([1, -1]).mul(6).sin()); // [24 (y), 24 (x)]
  const report = new viz.Report("Heat & friends", { subtitle: "a test" })
    .text("Some **bold** text")
    .section("Fields")
    .heatmap(u, { title: "u", x: x.toTypedArray(), y: x.toTypedArray(), shapes: { x: [0.5], y: [0.25, 0.75] } })
    .section("Curves")
    .lineChart([{ name: "loss", y: [1, 0.5, 0.25] }], { logY: true })
    .table([{ method: "PI-HC", relL2: 0.117543 }, { method: "PI-HC-MoE", relL2: 0.082981 }]);
  const html = await report.toHtml();
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  // plotly inlined exactly once; no <script src=…> at all (so no CDN).
  const marker = `plotly.js v${viz.PLOTLY_VERSION}`;
  assert.equal(html.split(marker).length - 1, 1, "plotly.js appears once");
  const tags = scriptTags(html);
  assert.ok(tags.every((t) => !/\bsrc\s*=/i.test(t)), `no script src: ${tags.join(" ")}`);
  assert.ok(!/<script[^>]*src=["']?https?:/i.test(html));
  assert.ok(!/<link[^>]*href=["']?https?:/i.test(html), "no remote stylesheets");
  // Figure data is valid JSON with the right dimensions.
  const figs = figuresOf(html);
  assert.equal(figs.length, 2);
  assert.deepEqual(figs.map((f) => f.id), ["fig-0", "fig-1"]);
  for (const f of figs) {
    assert.ok(html.includes(`<div class="fig" id="${f.id}" style="height: ${f.layout.height}px"></div>`), f.id);
  }
  const trace = figs[0].data[0] as { type: string; z: number[][]; x: number[]; y: number[] };
  assert.equal(trace.type, "heatmap");
  assert.equal(trace.z.length, 24);
  assert.ok(trace.z.every((r) => r.length === 24));
  assert.equal(trace.x.length, 24);
  assert.equal(trace.y.length, 24);
  assert.ok(Math.abs(trace.z[12][7] - u.toTypedArray()[12 * 24 + 7]) < 1e-5, "z[row][col] = field[row, col]");
  // Boundary lines: 1 vertical + 2 horizontal, each drawn as an outline and a dashed line.
  const shapes = figs[0].layout.shapes as { type: string; x0: number; x1: number; y0: number; y1: number }[];
  assert.equal(shapes.length, 6);
  assert.ok(shapes.every((s) => s.type === "line"));
  assert.ok(shapes.some((s) => s.x0 === 0.5 && s.x1 === 0.5 && s.y0 < 0 && s.y1 > 1), "full-height line at x = 0.5");
  assert.equal((figs[1].layout.yaxis as { type: string }).type, "log");
  // Text, tables and titles made it in, escaped.
  assert.ok(html.includes("<title>Heat &amp; friends</title>"));
  assert.ok(html.includes("<strong>bold</strong>"));
  assert.ok(html.includes("<td>0.1175</td>"), "numbers to 4 significant digits");
  assert.ok(html.includes("<h2>Fields</h2>") && html.includes("<h2>Curves</h2>"));
});

Deno.test("viz: titles and text cannot inject script", async () => {
  const evil = `</script><script>alert("x")</script><img src=x onerror=alert(1)>`;
  const html = await new viz.Report(evil, { subtitle: evil })
    .section(evil)
    .heatmap([[1, 2], [3, 4]], { title: evil, xTitle: evil, colorbarTitle: evil })
    .lineChart([{ name: evil, y: [1, 2] }], { title: evil })
    .table([{ [evil]: evil }], { title: evil })
    .text(evil + "\n\n# " + evil + "\n\n- " + evil + "\n\n```\n" + evil + "\n```\n[x](javascript:alert(1))")
    .toHtml();
  assert.ok(!html.includes('<script>alert("x")'), "no injected script element");
  assert.ok(!html.includes("<img"), "no injected element");
  assert.ok(!html.includes('href="javascript:'), "no javascript: links");
  // Exactly three script elements: plotly, the figure JSON, and the renderer.
  assert.equal(scriptTags(html).length, 3);
  assert.equal((html.match(/<\/script>/gi) ?? []).length, 3);
  // The figure JSON still parses and holds the title as plotly-escaped text.
  const figs = figuresOf(html);
  assert.equal((figs[0].layout.title as { text: string }).text, viz.plotlyText(evil));
  assert.ok(!(figs[0].layout.title as { text: string }).text.includes("<"));
  assert.equal((figs[1].data[0] as { name: string }).name, viz.plotlyText(evil));
});

Deno.test("viz: escaping helpers", () => {
  assert.equal(viz.escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const json = viz.scriptJson({ s: "</script><!-- & \u2028" });
  assert.ok(!json.includes("<") && !json.includes(">") && !json.includes("&"));
  assert.deepEqual(JSON.parse(json), { s: "</script><!-- & \u2028" });
  assert.equal(viz.inlineScript('a = "</SCRIPT>"; b = "</script"'), 'a = "<\\/SCRIPT>"; b = "<\\/script"');
  const md = viz.markdown("## Head\ntext with `a<b` and *it* and [link](https://example.org)\n\n1. one\n2. two");
  assert.ok(md.includes("<h4>Head</h4>"));
  assert.ok(md.includes("<code>a&lt;b</code>"));
  assert.ok(md.includes("<em>it</em>"));
  assert.ok(md.includes('<a href="https://example.org">link</a>'));
  assert.ok(md.includes("<ol><li>one</li><li>two</li></ol>"));
});

// ---------------------------------------------------------------------------------------------
// Figures

Deno.test("viz: heatmap dimensions follow the field (rows along y), and bad input is refused", () => {
  const field = tensor([[1, 2, 3], [4, 5, 6]]); // 2 rows (y) × 3 columns (x)
  const fig = viz.heatmap(field, { x: [0, 0.5, 1], y: [10, 20] });
  const t = fig.data[0] as { z: number[][]; x: number[]; y: number[] };
  assert.deepEqual(t.z, [[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(t.x, [0, 0.5, 1]);
  assert.deepEqual(t.y, [10, 20]);
  assert.deepEqual((viz.heatmap([[NaN, 1]]).data[0] as { z: unknown }).z, [[null, 1]], "NaN becomes a gap");
  const ranged = viz.heatmap(field, { zmin: 0 }).data[0] as { zmin: number; zmax: number };
  assert.deepEqual([ranged.zmin, ranged.zmax], [0, 6], "one end given: the other comes from the data");
  assert.throws(() => viz.heatmap(tensor([1, 2, 3])), ShapeError);
  assert.throws(() => viz.heatmap([[1, 2], [3]]), ShapeError);
  assert.throws(() => viz.heatmap(field, { x: [0, 1] }), ShapeError);
  assert.throws(() => viz.heatmap([]), ArgumentError);
  assert.throws(() => viz.lineChart([{ name: "a", x: [1, 2], y: [1] }]), ShapeError);
});

Deno.test("viz: fieldComparison gives truth, prediction and |error| with shared range and boundaries", () => {
  const truth = [[0, 1, 2, 3], [1, 2, 3, 4]];
  const pred = [[0, 1, 2, 3.5], [1, 2, 3, 4]];
  const figs = viz.fieldComparison(truth, pred, { boundaries: { x: viz.splitBoundaries([0, 1, 2, 3], 2) } });
  assert.equal(figs.length, 3);
  const [t, p, e] = figs.map((f) => f.data[0] as { z: number[][]; zmin: number; zmax: number });
  assert.deepEqual(t.z, truth);
  assert.deepEqual(p.z, pred);
  assert.deepEqual(e.z, [[0, 0, 0, 0.5], [0, 0, 0, 0]]);
  assert.equal(t.zmin, 0);
  assert.equal(t.zmax, 4);
  assert.equal(p.zmin, 0);
  assert.equal(p.zmax, 4);
  assert.equal(e.zmin, 0);
  assert.equal(e.zmax, 0.5, "plotly needs both ends of a fixed range");
  const rel = 0.5 / Math.sqrt(0 + 1 + 4 + 9 + 1 + 4 + 9 + 16);
  assert.match((figs[2].layout.title as { text: string }).text, new RegExp(rel.toExponential(2).replace(".", "\\.")));
  for (const f of figs) {
    const shapes = f.layout.shapes as { x0: number; x1: number }[];
    assert.ok(shapes.length > 0 && shapes.every((s) => s.x0 === 1.5 && s.x1 === 1.5), "boundary at x = 1.5");
  }
  assert.throws(() => viz.fieldComparison(truth, [[1, 2]]), ShapeError);
  assert.deepEqual(viz.splitBoundaries([0, 1, 2, 3, 4, 5, 6, 7], 4), [1.5, 3.5, 5.5]);
  assert.deepEqual(viz.splitBoundaries(linspace(0, 1, 5), 1), []);
});

Deno.test("viz: curves splits losses from errors, reads columns or records, and skips gaps", () => {
  const figs = viz.curves({ step: [0, 10, 20], loss: [1, 0.5, 0.1], "pde loss": [2, 1, 0.5], relL2: [0.9, 0.5, 0.3] });
  assert.equal(figs.length, 2);
  assert.deepEqual(figs[0].data.map((s) => s.name), ["loss", "pde loss"]);
  assert.deepEqual(figs[1].data.map((s) => s.name), ["relL2"]);
  assert.deepEqual(figs[0].data[0].x, [0, 10, 20]);
  assert.equal((figs[0].layout.yaxis as { type: string }).type, "log");
  const fromRecords = viz.curves([{ step: 0, loss: 1 }, { step: 5, loss: 0.5, error: 0.2 }, { step: 9, loss: NaN }]);
  assert.deepEqual(fromRecords[0].data[0].x, [0, 5]);
  assert.deepEqual(fromRecords[0].data[0].y, [1, 0.5]);
  assert.deepEqual(fromRecords[1].data[0].x, [5]);
  assert.throws(() => viz.curves({ step: [0, 1] }), ArgumentError);
});

Deno.test("viz: save writes the report (creating the directory) and fieldComparison/curves sit in rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/nested/report.html`;
    const written = await new viz.Report("saved")
      .fieldComparison([[0, 1], [2, 3]], [[0, 1], [2, 3.1]])
      .curves({ loss: [1, 0.1] })
      .save(path);
    assert.equal(written, path);
    const html = await Deno.readTextFile(path);
    assert.equal(figuresOf(html).length, 4);
    assert.ok(html.includes('<div class="row" style="--cols: 3">'));
    assert.ok(html.includes('<div class="row" style="--cols: 1">'));
    assert.deepEqual([...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name), ["report.html"], "no temp file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

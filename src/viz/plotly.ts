/**
 * Finding the plotly.js bundle that every report inlines, so the HTML opens offline.
 *
 * The script is the npm package `plotly.js-dist-min` (pinned in deno.json), read as text through a
 * Deno text import. In order, {@link loadPlotly} tries:
 *
 * 1. the file named by the `PATCHWORK_PLOTLY_JS` environment variable, if set;
 * 2. the bare specifier `plotly.js-dist-min/plotly.min.js` (resolved by deno.json: this repository,
 *    or patchwork installed from JSR);
 * 3. the full specifier `npm:plotly.js-dist-min@<version>/plotly.min.js` (patchwork imported by URL,
 *    where its deno.json does not apply);
 * 4. `node_modules/plotly.js-dist-min/plotly.min.js` under the working directory.
 *
 * Deno downloads the package into its cache the first time (network needed once); after that
 * reports are written offline. If every way fails the error says what to do.
 *
 * @module
 */

import { PatchworkError } from "../tensor/mod.ts";

/**
 * The plotly.js version reports embed (the pin of `plotly.js-dist-min` in deno.json).
 *
 * @example
 * ```ts
 * import { PLOTLY_VERSION } from "./plotly.ts";
 * PLOTLY_VERSION; // "4.1.2"
 * ```
 */
export const PLOTLY_VERSION = "4.1.2";

/**
 * The plotly.js script could not be found or read.
 *
 * @example
 * ```ts
 * import { loadPlotly, PlotlyUnavailableError } from "./plotly.ts";
 * try {
 *   await loadPlotly();
 * } catch (e) {
 *   if (e instanceof PlotlyUnavailableError) console.error(e.message);
 * }
 * ```
 */
export class PlotlyUnavailableError extends PatchworkError {}

let cached: Promise<string> | undefined;
let override: string | undefined;

function describe(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

function checkScript(text: unknown, where: string): string {
  if (typeof text !== "string" || !text.includes("Plotly")) {
    throw new PlotlyUnavailableError("loadPlotly", `${where} does not look like a plotly.js bundle`);
  }
  return text;
}

function envPath(): string | undefined {
  try {
    return Deno.env.get("PATCHWORK_PLOTLY_JS") || undefined;
  } catch {
    return undefined; // no --allow-env: skip this source
  }
}

async function find(): Promise<string> {
  if (override !== undefined) return override;
  const path = envPath();
  if (path) {
    try {
      return checkScript(await Deno.readTextFile(path), `PATCHWORK_PLOTLY_JS=${path}`);
    } catch (e) {
      if (e instanceof PlotlyUnavailableError) throw e;
      throw new PlotlyUnavailableError("loadPlotly", `cannot read PATCHWORK_PLOTLY_JS=${path}: ${describe(e)}`);
    }
  }
  const tried: string[] = [];
  try {
    // A full specifier: by URL the importer's deno.json does not map bare names; the literal keeps
    // the package in the module graph so `deno cache` fetches it too. Keep the version = PLOTLY_VERSION.
    // deno-lint-ignore no-import-prefix
    const mod = await import("npm:plotly.js-dist-min@4.1.2/plotly.min.js", { with: { type: "text" } });
    return checkScript(mod.default, `npm:plotly.js-dist-min@${PLOTLY_VERSION}`);
  } catch (e) {
    tried.push(`npm:plotly.js-dist-min@${PLOTLY_VERSION}/plotly.min.js: ${describe(e)}`);
  }
  try {
    const local = `${Deno.cwd()}/node_modules/plotly.js-dist-min/plotly.min.js`;
    try {
      return checkScript(await Deno.readTextFile(local), local);
    } catch (e) {
      tried.push(`${local}: ${describe(e)}`);
    }
  } catch (e) {
    tried.push(`node_modules in the working directory: ${describe(e)}`);
  }
  throw new PlotlyUnavailableError(
    "loadPlotly",
    `cannot load plotly.js ${PLOTLY_VERSION}, which reports embed so they open offline. Tried:\n  - ` +
      tried.join("\n  - ") +
      `\nFix: run once with network access so Deno caches it (\`deno cache\` your script, or ` +
      `\`deno add npm:plotly.js-dist-min@${PLOTLY_VERSION}\`), or download plotly.min.js ` +
      `(https://cdn.plot.ly/plotly-${PLOTLY_VERSION}.min.js) and set PATCHWORK_PLOTLY_JS to its path, ` +
      `or call setPlotlyScript(text).`,
  );
}

/**
 * The minified plotly.js script text, loaded once per process (see the module notes for where it
 * is looked for). Throws {@link PlotlyUnavailableError} with the fixes when it cannot be found.
 *
 * @example
 * ```ts
 * import { loadPlotly } from "./plotly.ts";
 * const js = await loadPlotly();
 * js.length > 1_000_000; // true: ~4.8 MB
 * ```
 */
export function loadPlotly(): Promise<string> {
  if (!cached) {
    cached = find();
    cached.catch(() => (cached = undefined)); // let a later call try again
  }
  return cached;
}

/**
 * Uses `script` as the plotly.js bundle from now on (for a custom or newer build, or where the
 * package cannot be imported); `undefined` goes back to loading the pinned package.
 *
 * @example
 * ```ts
 * import { setPlotlyScript } from "./plotly.ts";
 * setPlotlyScript(await Deno.readTextFile("vendor/plotly.min.js"));
 * ```
 */
export function setPlotlyScript(script: string | undefined): void {
  if (script !== undefined) checkScript(script, "setPlotlyScript");
  override = script;
  cached = undefined;
}

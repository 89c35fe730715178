/**
 * Typed command-line flags for training scripts. A script declares its flags once — type,
 * default, bounds, help text — and gets back an object typed from that declaration; `--help`
 * prints the list, and a bad value raises an `ArgumentError` that names the flag, the value and
 * what would be accepted.
 *
 * A key `maxSeconds` is the flag `--max-seconds` (a capital after a lower-case letter or digit
 * becomes `-` and its lower case; a key like `T` stays `--T`). Forms: `--name value`,
 * `--name=value`; booleans are `--name` (true), `--no-name` or `--name=false`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags({
 *   steps: { type: "integer", default: 100, min: 0, help: "optimiser steps" },
 *   lr: { type: "number", default: 1e-3, min: 0, help: "peak learning rate" },
 *   method: { type: "choice", choices: ["full", "seco", "spaco"], default: "seco", help: "gradient" },
 *   maxSeconds: { type: "number", min: 0, help: "wall-clock budget (default none)" },
 *   resume: { type: "boolean", help: "continue from the newest checkpoint" },
 * }, ["--steps", "20", "--method=spaco", "--resume"]);
 * flags.steps; // 20 (a number)
 * flags.method; // "spaco" (typed "full" | "seco" | "spaco")
 * flags.maxSeconds; // undefined (number | undefined)
 * ```
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";

/**
 * The declaration of one flag.
 *
 * @example
 * ```ts
 * import type { FlagSpec } from "./flags.ts";
 * const dtype: FlagSpec = { type: "choice", choices: ["float32", "float64"], default: "float32", help: "compute dtype" };
 * ```
 */
export type FlagSpec =
  | { type: "integer" | "number"; default?: number; min?: number; max?: number; help: string }
  | { type: "string"; default?: string; help: string }
  | { type: "boolean"; default?: boolean; help: string }
  | { type: "choice"; choices: readonly string[]; default?: string; help: string }
  | { type: "integers"; default?: readonly number[]; min?: number; help: string };

/**
 * A script's flags by key (see the module notes for how keys become flag names).
 *
 * @example
 * ```ts
 * import type { FlagSpecs } from "./flags.ts";
 * const spec: FlagSpecs = { seed: { type: "integer", default: 0, min: 0, help: "random seed" } };
 * ```
 */
export type FlagSpecs = Record<string, FlagSpec>;

/**
 * The value type of one flag declaration.
 *
 * @example
 * ```ts
 * import type { FlagValue } from "./flags.ts";
 * const dtype: FlagValue<{ type: "choice"; choices: readonly ["float32", "float64"]; help: "" }> = "float64";
 * ```
 */
export type FlagValue<F> = F extends { type: "integer" | "number" } ? number
  : F extends { type: "string" } ? string
  : F extends { type: "boolean" } ? boolean
  : F extends { type: "choice"; choices: readonly (infer C)[] } ? C
  : F extends { type: "integers" } ? number[]
  : never;

/**
 * The parsed values of a {@link FlagSpecs}: a flag with a default (and every boolean) always has
 * a value; one without is `undefined` unless given.
 *
 * @example
 * ```ts
 * import type { FlagValues } from "./flags.ts";
 * type V = FlagValues<{ steps: { type: "integer"; default: 10; help: "" }; out: { type: "string"; help: "" } }>;
 * const v: V = { steps: 10, out: undefined }; // out: string | undefined
 * ```
 */
export type FlagValues<S extends FlagSpecs> = {
  -readonly [K in keyof S]: S[K] extends { type: "boolean" } ? boolean
    : S[K] extends { default: unknown } ? FlagValue<S[K]>
    : FlagValue<S[K]> | undefined;
};

/**
 * Options of {@link parseFlags}.
 *
 * @example
 * ```ts
 * import type { ParseFlagsOptions } from "./flags.ts";
 * const options: ParseFlagsOptions = { usage: "deno run -A examples/train.ts [flags]" };
 * ```
 */
export interface ParseFlagsOptions {
  /** The usage line of `--help` (default "[flags]"). */
  usage?: string;
  /** A paragraph printed under the usage line. */
  description?: string;
  /** What `--help` does with the help text (default: print it and exit with status 0; else the defaults are returned). */
  onHelp?: (text: string) => void;
}

/**
 * The flag name of a key: `maxSeconds` → `max-seconds`.
 *
 * @example
 * ```ts
 * import { flagName } from "./flags.ts";
 * flagName("checkpointEvery"); // "checkpoint-every"
 * flagName("T"); // "T"
 * ```
 */
export function flagName(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, (_, a: string, b: string) => `${a}-${b.toLowerCase()}`);
}

function kindOf(spec: FlagSpec): string {
  switch (spec.type) {
    case "integer":
    case "number":
    case "integers": {
      const what = spec.type === "integers"
        ? "integers, comma-separated,"
        : spec.type === "integer"
        ? "an integer"
        : "a number";
      const bounds = [
        spec.min !== undefined ? `≥ ${spec.min}` : "",
        spec.type !== "integers" && spec.max !== undefined ? `≤ ${spec.max}` : "",
      ].filter(Boolean);
      return `${what}${bounds.length ? " " + bounds.join(" and ") : ""}`;
    }
    case "choice":
      return `one of ${spec.choices.join(", ")}`;
    case "string":
      return "a string";
    case "boolean":
      return "true or false";
  }
}

function example(name: string, spec: FlagSpec): string {
  const d = spec.default;
  const v = d === undefined
    ? spec.type === "choice" ? spec.choices[0] : spec.type === "integers" ? "1,2" : spec.type === "string" ? "…" : 1
    : Array.isArray(d)
    ? d.join(",")
    : String(d);
  return `--${name} ${v}`;
}

function parseValue(name: string, spec: FlagSpec, raw: string): unknown {
  const bad = () =>
    new ArgumentError(
      "flags",
      `--${name} must be ${kindOf(spec)}, got ${JSON.stringify(raw)} (e.g. ${example(name, spec)})`,
    );
  switch (spec.type) {
    case "integer":
    case "number": {
      const x = raw.trim() === "" ? NaN : Number(raw);
      if (!Number.isFinite(x) || (spec.type === "integer" && !Number.isInteger(x))) throw bad();
      if ((spec.min !== undefined && x < spec.min) || (spec.max !== undefined && x > spec.max)) throw bad();
      return x;
    }
    case "integers": {
      const xs = raw.split(",").map((s) => (s.trim() === "" ? NaN : Number(s)));
      if (xs.some((x) => !Number.isInteger(x) || (spec.min !== undefined && x < spec.min))) throw bad();
      return xs;
    }
    case "choice":
      if (!spec.choices.includes(raw)) throw bad();
      return raw;
    case "boolean":
      if (raw !== "true" && raw !== "false") throw bad();
      return raw === "true";
    case "string":
      return raw;
  }
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j];
      row[j] = next;
    }
  }
  return row[b.length];
}

/**
 * The text `--help` prints: the usage line, the description, then one line per flag with its
 * kind, help and default.
 *
 * @example
 * ```ts
 * import { flagHelp } from "./flags.ts";
 * flagHelp({ steps: { type: "integer", default: 100, help: "optimiser steps" } }, { usage: "train.ts [flags]" });
 * // "usage: train.ts [flags]\n\n  --steps <integer>  optimiser steps (default 100)\n  --help  …"
 * ```
 */
export function flagHelp(spec: FlagSpecs, options: Pick<ParseFlagsOptions, "usage" | "description"> = {}): string {
  const rows = Object.entries(spec).map(([key, s]) => {
    const name = flagName(key);
    const arg = s.type === "boolean"
      ? `--${name}`
      : `--${name} ${s.type === "choice" ? s.choices.join("|") : `<${s.type === "integers" ? "list" : s.type}>`}`;
    const d = s.default;
    const dflt = d === undefined || (s.type === "boolean" && !d)
      ? ""
      : ` (default ${Array.isArray(d) ? d.join(",") : String(d)})`;
    return [arg, s.help + dflt];
  });
  rows.push(["--help", "print this help and exit"]);
  const width = Math.max(...rows.map(([a]) => a.length));
  const lines = [`usage: ${options.usage ?? "[flags]"}`, ""];
  if (options.description) lines.push(options.description, "");
  for (const [a, h] of rows) lines.push(`  ${a.padEnd(width)}  ${h}`);
  return lines.join("\n");
}

/**
 * Parses `args` against `spec` (see the module notes). Unknown flags, missing or malformed values
 * and out-of-range numbers raise an `ArgumentError` saying what is accepted; `--help` (or `-h`)
 * hands the help text to `options.onHelp` (default: prints it and exits) and returns the defaults.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const f = parseFlags({
 *   experts: { type: "string", default: "1x2", help: "expert split" },
 *   recompute: { type: "boolean", help: "activation checkpointing" },
 * }, ["--experts=2x2", "--no-recompute"]);
 * f.experts; // "2x2"
 * f.recompute; // false
 * ```
 */
export function parseFlags<const S extends FlagSpecs>(
  spec: S,
  args: readonly string[],
  options: ParseFlagsOptions = {},
): FlagValues<S> {
  const byName = new Map(Object.keys(spec).map((k) => [flagName(k), k]));
  if (byName.has("help")) throw new ArgumentError("flags", "--help is built in; do not declare it");
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    if (s.default !== undefined) out[key] = Array.isArray(s.default) ? [...s.default] : s.default;
    else if (s.type === "boolean") out[key] = false;
  }
  if (args.includes("--help") || args.includes("-h")) {
    const text = flagHelp(spec, options);
    if (!options.onHelp) {
      console.log(text);
      Deno.exit(0);
    }
    options.onHelp(text);
    return out as FlagValues<S>;
  }
  const unknown = (name: string) => {
    const near = [...byName.keys()].filter((k) => distance(k, name) <= 2 || k.startsWith(name));
    const hint = near.length ? `did you mean ${near.map((k) => `--${k}`).join(" or ")}? ` : "";
    return new ArgumentError("flags", `unknown flag --${name} (${hint}run with --help to list the flags)`);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) {
      throw new ArgumentError(
        "flags",
        `unexpected argument "${a}": flags look like --name value (run with --help to list them)`,
      );
    }
    let name = a.slice(2);
    let raw: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      raw = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const key = byName.get(name);
    if (key === undefined && raw === undefined && name.startsWith("no-")) {
      const positive = byName.get(name.slice(3));
      if (positive !== undefined && spec[positive].type === "boolean") {
        out[positive] = false;
        continue;
      }
    }
    if (key === undefined) throw unknown(name);
    const s = spec[key];
    if (raw === undefined) {
      if (s.type === "boolean") {
        out[key] = true;
        continue;
      }
      if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
        throw new ArgumentError("flags", `--${name} needs a value (e.g. ${example(name, s)})`);
      }
      raw = args[++i];
    }
    out[key] = parseValue(name, s, raw);
  }
  return out as FlagValues<S>;
}

/**
 * Atomic file writes for run outputs: the content goes to a temporary file beside the target,
 * which is then renamed over it, so a reader (or a crash) never sees half a file.
 *
 * @example
 * ```ts
 * import { writeJson } from "./files.ts";
 * await writeJson("out/run/metrics.json", { loss: 0.1 });
 * ```
 *
 * @module
 */

import { dirname } from "node:path";

/**
 * Writes `text` to `path` atomically (creating the directory).
 *
 * @example
 * ```ts
 * import { writeTextAtomic } from "./files.ts";
 * await writeTextAtomic("out/run/notes.txt", "done\n");
 * ```
 */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/**
 * Writes JSON to `path` atomically (creating the directory), indented by two spaces.
 *
 * @example
 * ```ts
 * import { writeJson } from "./files.ts";
 * await writeJson("out/heat_1d/metrics.json", { relL2: 0.01 });
 * ```
 */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

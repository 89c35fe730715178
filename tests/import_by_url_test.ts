/**
 * patchwork is imported by URL: the importer's deno.json does not map bare package names, so
 * every module under src/ names its npm packages in full (`npm:name@version`, the version pinned
 * in deno.json), and every entry point loads in a Deno started without any configuration.
 */

import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
const pins: Record<string, string> = config.imports;

async function sources(dir: URL, out: URL[] = []): Promise<URL[]> {
  for await (const e of Deno.readDir(dir)) {
    const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) await sources(url, out);
    else if (e.name.endsWith(".ts")) out.push(url);
  }
  return out;
}

/** Every module specifier of a source file: static imports/exports, `import()` and `import("…")` types. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  const patterns = [/\bfrom\s+"([^"]+)"/g, /\bimport\s+"([^"]+)"/g, /\bimport\(\s*"([^"]+)"/g];
  for (const p of patterns) for (const m of text.matchAll(p)) found.push(m[1]);
  return found;
}

Deno.test("src/ imports npm packages only by full npm: specifiers pinned as in deno.json", async () => {
  const bad: string[] = [];
  for (const file of await sources(new URL("src/", root))) {
    const text = await Deno.readTextFile(file);
    for (const spec of specifiers(text)) {
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      const where = `${file.pathname.slice(root.pathname.length)}: "${spec}"`;
      const npm = /^npm:((?:@[^/@]+\/)?[^/@]+)@([^/]+)(\/.*)?$/.exec(spec);
      if (!npm) {
        bad.push(`${where} is a bare or unversioned specifier`);
        continue;
      }
      const [, name, version] = npm;
      if (pins[name] !== `npm:${name}@${version}`) bad.push(`${where} differs from deno.json's ${pins[name]}`);
    }
  }
  assert.deepEqual(bad, []);
});

Deno.test("every entry point loads in a Deno started without configuration (as when imported by URL)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const entries = Object.values(config.exports) as string[];
    const script = entries.map((e, i) => `import * as m${i} from "${new URL(e, root).href}";`).join("\n") +
      `\nconsole.log(JSON.stringify([${entries.map((_, i) => `Object.keys(m${i}).length`).join(", ")}]));\n`;
    await Deno.writeTextFile(`${dir}/main.ts`, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "--quiet", `${dir}/main.ts`],
      cwd: dir,
      env: { PATCHWORK_BACKEND: "cpu", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const counts: number[] = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    assert.equal(counts.length, entries.length);
    counts.forEach((n, i) => assert.ok(n > 0, `${entries[i]} exports nothing`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

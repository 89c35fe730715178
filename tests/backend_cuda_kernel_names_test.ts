// The kernels the CUDA backend asks for by name exist: the op lists of kernels/elementwise.cu
// against the op definitions (always), and, where nvcc is installed, the entry points of the PTX
// that each compilation unit (family and part, as NVRTC builds them) compiles to, against every
// name the backend can ask for (cudaKernelNames, built by the op families' own name functions).
// Needs no GPU.

import assert from "node:assert/strict";
import { BINARY_OPS, UNARY_OPS } from "../src/tensor/op_defs.ts";
import { KERNEL_PARTS, type KernelFamily } from "../src/backend/cuda/compiler.ts";
import { cudaKernelNames } from "../src/backend/cuda/backend.ts";

const KERNELS = new URL("../kernels/", import.meta.url);

/** The names of an X-macro op list `#define LIST(X) X(name, ...) ...` in a kernel source. */
function macroList(source: string, list: string): string[] {
  const start = source.indexOf(`#define ${list}(X)`);
  assert.ok(start >= 0, `${list} is not defined`);
  const lines: string[] = [];
  for (const line of source.slice(start).split("\n")) {
    lines.push(line);
    if (!line.trimEnd().endsWith("\\")) break;
  }
  return [...lines.join("\n").matchAll(/\bX\((\w+),/g)].map((m) => m[1]);
}

Deno.test("kernels: every elementwise op has one line in kernels/elementwise.cu, and every line an op", () => {
  const source = Deno.readTextFileSync(new URL("elementwise.cu", KERNELS));
  assert.deepEqual(macroList(source, "PW_UNARY_OPS").sort(), Object.keys(UNARY_OPS).sort());
  assert.deepEqual(macroList(source, "PW_BINARY_OPS").sort(), Object.keys(BINARY_OPS).sort());
});

function nvccFound(): boolean {
  try {
    return new Deno.Command("nvcc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** The entry points of the PTX of every compilation unit of `families` (compiled a few at a time). */
async function ptxEntries(families: readonly KernelFamily[]): Promise<Map<KernelFamily, Set<string>>> {
  const dir = await Deno.makeTempDir({ prefix: "patchwork-ptx-" });
  const units = families.flatMap((family) =>
    Array.from({ length: KERNEL_PARTS[family] }, (_, part) => ({ family, part }))
  );
  const out = new Map<KernelFamily, Set<string>>(families.map((f) => [f, new Set<string>()]));
  const compile = async ({ family, part }: { family: KernelFamily; part: number }) => {
    const ptx = `${dir}/${family}.${part}.ptx`;
    const define = KERNEL_PARTS[family] > 1 ? [`-DPW_PART=${part}`] : [];
    const src = new URL(`${family}.cu`, KERNELS).pathname;
    const r = await new Deno.Command("nvcc", { args: ["-ptx", "-arch=sm_90", ...define, src, "-o", ptx] }).output();
    assert.ok(r.success, `nvcc ${family}.cu part ${part}: ${new TextDecoder().decode(r.stderr)}`);
    for (const m of (await Deno.readTextFile(ptx)).matchAll(/\.entry\s+(\w+)\s*\(/g)) out.get(family)!.add(m[1]);
  };
  try {
    let next = 0;
    const worker = async () => {
      while (next < units.length) await compile(units[next++]);
    };
    await Promise.all(Array.from({ length: Math.max(2, navigator.hardwareConcurrency) }, worker));
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "kernels: every kernel the backend asks for is compiled in its family's units",
  ignore: !nvccFound(),
  fn: async () => {
    const asked = cudaKernelNames();
    const compiled = await ptxEntries([...asked.keys()]);
    for (const [family, names] of asked) {
      const entries = compiled.get(family)!;
      assert.deepEqual(names.filter((name) => !entries.has(name)), [], `kernels/${family}.cu lacks these kernels`);
    }
    // Nor is any kernel compiled that the backend never asks for (the elementwise kernels are
    // instantiated from the op table alone, the copies and casts for the conversions made).
    for (const [family, names] of asked) {
      const extra = [...compiled.get(family)!].filter((name) => !names.includes(name));
      assert.deepEqual(extra, [], `kernels/${family}.cu defines kernels the backend never asks for`);
    }
  },
});

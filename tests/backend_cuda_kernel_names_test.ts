// The kernels the CUDA backend asks for by name exist: the op lists of kernels/elementwise.cu
// against the op definitions (always), and, where nvcc is installed, the entry points of the PTX
// that each compilation unit (family and part, as NVRTC builds them) compiles to, against every
// name the backend can ask for. Needs no GPU.

import assert from "node:assert/strict";
import { BINARY_OPS, UNARY_OPS } from "../src/tensor/op_defs.ts";
import { KERNEL_PARTS, type KernelFamily } from "../src/backend/cuda/compiler.ts";
import { elementwiseKernelNames } from "../src/backend/cuda/elementwise.ts";

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

/** The entry points of the PTX of every compilation unit of `family` (compiled in parallel). */
async function ptxEntries(family: KernelFamily): Promise<Set<string>> {
  const dir = await Deno.makeTempDir({ prefix: "patchwork-ptx-" });
  try {
    const parts = Array.from({ length: KERNEL_PARTS[family] }, (_, k) => k);
    const texts = await Promise.all(parts.map(async (part) => {
      const out = `${dir}/${family}.${part}.ptx`;
      const define = KERNEL_PARTS[family] > 1 ? [`-DPW_PART=${part}`] : [];
      const src = new URL(`${family}.cu`, KERNELS).pathname;
      const r = await new Deno.Command("nvcc", { args: ["-ptx", "-arch=sm_90", ...define, src, "-o", out] }).output();
      assert.ok(r.success, `nvcc ${family}.cu part ${part}: ${new TextDecoder().decode(r.stderr)}`);
      return await Deno.readTextFile(out);
    }));
    return new Set(texts.flatMap((t) => [...t.matchAll(/\.entry\s+(\w+)\s*\(/g)].map((m) => m[1])));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "kernels: the compiled elementwise units define exactly the kernels the backend asks for",
  ignore: !nvccFound(),
  fn: async () => {
    const entries = await ptxEntries("elementwise");
    const wanted = elementwiseKernelNames();
    assert.deepEqual(wanted.filter((name) => !entries.has(name)), [], "asked for but not compiled");
    assert.deepEqual([...entries].filter((name) => !wanted.includes(name)), [], "compiled but never asked for");
  },
});

// The kernel compiler's disk cache, on the CPU: a stand-in for NVRTC (it turns a source into
// bytes and counts its calls) takes the place of the library, so the cache's options are tested
// without a GPU. `cacheDir: null` turns the cache off whatever the environment says; undefined
// takes the default ($PATCHWORK_CACHE_DIR, then $XDG_CACHE_HOME, then ~/.cache); a path is used.
// On a GPU, a whole backend made with `cacheDir: null` is checked too (ignored without one).

import assert from "node:assert/strict";
import { kernelCacheDir, KernelCompiler, type KernelSources } from "../src/backend/cuda/compiler.ts";
import type { CompiledKernel, Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { ArgumentError } from "../src/tensor/errors.ts";
import { createCudaBackend } from "../src/backend/cuda/mod.ts";
import { announce, gpuTester } from "./cuda_helpers.ts";

/** NVRTC's part in the compiler: its version, its architectures, and a compile that counts calls. */
function fakeNvrtc(): { nvrtc: Nvrtc; compiles: () => number } {
  let compiles = 0;
  const nvrtc = {
    version: "12.4",
    sym: { nvrtcGetCUBIN: () => 0 },
    supportedArchs: () => [80, 90],
    compile: (source: string): CompiledKernel => {
      compiles++;
      return { image: new TextEncoder().encode(`image of ${source.length} chars`), kind: "cubin", log: "" };
    },
  };
  return { nvrtc: nvrtc as unknown as Nvrtc, compiles: () => compiles };
}

const SOURCES = {
  files: { elementwise: 'extern "C" __global__ void k() {}' },
  headers: {},
} as unknown as KernelSources;
const UNIT = { family: "elementwise", part: 0 } as const;

/** Runs `fn` with the cache variables of the environment set as given (unset where undefined). */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) x === undefined ? Deno.env.delete(k) : Deno.env.set(k, x);
  };
  apply(vars);
  try {
    return fn();
  } finally {
    apply(saved);
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) out.push(...filesUnder(`${dir}/${e.name}`).map((f) => `${e.name}/${f}`));
    else out.push(e.name);
  }
  return out;
}

Deno.test("kernelCacheDir: null turns the cache off, a path is used, undefined takes the environment's default", () => {
  withEnv({ PATCHWORK_CACHE_DIR: "/tmp/pw-explicit", XDG_CACHE_HOME: "/tmp/xdg", HOME: "/home/u" }, () => {
    assert.equal(kernelCacheDir(null), undefined);
    assert.equal(kernelCacheDir("/tmp/mine"), "/tmp/mine");
    assert.equal(kernelCacheDir(undefined), "/tmp/pw-explicit");
  });
  withEnv({ PATCHWORK_CACHE_DIR: undefined, XDG_CACHE_HOME: "/tmp/xdg", HOME: "/home/u" }, () => {
    assert.equal(kernelCacheDir(undefined), "/tmp/xdg/patchwork/kernels");
  });
  withEnv({ PATCHWORK_CACHE_DIR: undefined, XDG_CACHE_HOME: undefined, HOME: "/home/u" }, () => {
    assert.equal(kernelCacheDir(undefined), "/home/u/.cache/patchwork/kernels");
  });
  for (const bad of ["", 3, {}]) {
    assert.throws(() => kernelCacheDir(bad as string), (e) => {
      assert.ok(e instanceof ArgumentError, String(e));
      assert.match(e.message, /cacheDir/);
      assert.match(e.message, /null/, "the message says how to turn the cache off");
      return true;
    });
  }
});

Deno.test("KernelCompiler with cacheDir null writes and reads no cache file, even where the default would", () => {
  const home = Deno.makeTempDirSync({ prefix: "patchwork-cache-home-" });
  try {
    withEnv({ PATCHWORK_CACHE_DIR: `${home}/kernels`, XDG_CACHE_HOME: undefined, HOME: home }, () => {
      const { nvrtc, compiles } = fakeNvrtc();
      const compiler = new KernelCompiler(nvrtc, 90, SOURCES, null);
      assert.equal(compiler.cachePath(UNIT), undefined);
      compiler.build(UNIT);
      compiler.build(UNIT);
      assert.equal(compiles(), 2, "every build compiles");
      assert.deepEqual([compiler.stats.hits, compiler.stats.misses], [0, 2]);
      assert.deepEqual(filesUnder(home), [], "nothing was written under the default location");
    });
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("KernelCompiler caches by path, and by the environment's default when no option is given", () => {
  const root = Deno.makeTempDirSync({ prefix: "patchwork-cache-" });
  try {
    withEnv({ PATCHWORK_CACHE_DIR: `${root}/default`, XDG_CACHE_HOME: undefined }, () => {
      for (const [option, dir] of [[`${root}/mine`, `${root}/mine`], [undefined, `${root}/default`]] as const) {
        const first = fakeNvrtc();
        const a = new KernelCompiler(first.nvrtc, 90, SOURCES, option);
        assert.ok(a.cachePath(UNIT)!.startsWith(`${dir}/elementwise.0-`), a.cachePath(UNIT));
        const image = a.build(UNIT).image;
        assert.equal(first.compiles(), 1);
        assert.deepEqual(filesUnder(dir), [a.cachePath(UNIT)!.slice(dir.length + 1)]);
        const second = fakeNvrtc();
        const b = new KernelCompiler(second.nvrtc, 90, SOURCES, option);
        assert.deepEqual(b.build(UNIT).image, image, "read back from the cache");
        assert.equal(second.compiles(), 0, "a second compiler finds the image on disk");
        assert.deepEqual([b.stats.hits, b.stats.misses], [1, 0]);
      }
    });
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

announce("backend_cuda_compiler_cache_test");
const gpuTest = gpuTester("cuda");

gpuTest("kernel cache: a backend made with cacheDir null compiles every kernel and writes no file", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "patchwork-cache-off-" });
  const saved = Deno.env.get("PATCHWORK_CACHE_DIR");
  Deno.env.set("PATCHWORK_CACHE_DIR", dir);
  try {
    const off = await createCudaBackend({ cacheDir: null });
    try {
      const s = off.kernelCache;
      assert.equal(s.hits, 0, JSON.stringify(s));
      assert.ok(s.misses >= 7, JSON.stringify(s));
      assert.deepEqual(filesUnder(dir), []);
    } finally {
      off.dispose();
    }
  } finally {
    if (saved === undefined) Deno.env.delete("PATCHWORK_CACHE_DIR");
    else Deno.env.set("PATCHWORK_CACHE_DIR", saved);
    Deno.removeSync(dir, { recursive: true });
  }
});

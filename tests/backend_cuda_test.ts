// The CUDA backend against the CPU backend: every primitive on contiguous, strided (transposed),
// broadcast (stride 0), negative-stride and offset views, in float32, float64 and bfloat16, plus
// GPU-only checks (allocator, stream order, kernel cache, errors). Without a usable GPU (no
// libcuda, no device, or no --allow-ffi) every GPU test is registered as ignored.

import assert from "node:assert/strict";
import { announce, cpu, cuda, gpuTester, whole } from "./cuda_helpers.ts";
import { assertClose, numel, randomData, rowMajor } from "./helpers.ts";
import type { Backend, DeviceBuffer, View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import { DeviceError } from "../src/tensor/errors.ts";
import { BINARY_OPS, type BinaryOp, UNARY_OPS, type UnaryOp } from "../src/tensor/op_defs.ts";
import {
  candidatePaths,
  createCudaBackend,
  CudaError,
  ffiAllowed,
  openLibrary,
  OutOfMemoryError,
} from "../src/backend/cuda/mod.ts";
import { CUBLAS_SYMBOLS } from "../src/backend/cuda/cublas.ts";

announce("backend_cuda_test", cuda ? `; kernels ${JSON.stringify(cuda.kernelCache)}` : "");
const gpuTest = gpuTester("cuda");

// ------------------------------------------------------------------ helpers

/** A view layout over a base buffer of `base` elements. */
interface Layout {
  kind: string;
  base: number;
  shape: number[];
  strides: number[];
  offset: number;
}

/** Layouts of a 2-D shape [r, c]: contiguous, transposed, broadcast, reversed, offset slice. */
function layouts2(r: number, c: number): Layout[] {
  return [
    { kind: "contiguous", base: r * c, shape: [r, c], strides: [c, 1], offset: 0 },
    { kind: "transposed", base: r * c, shape: [r, c], strides: [1, r], offset: 0 },
    { kind: "broadcast", base: c, shape: [r, c], strides: [0, 1], offset: 0 },
    { kind: "negative", base: r * c, shape: [r, c], strides: [-c, -1], offset: r * c - 1 },
    { kind: "offset", base: (r + 1) * (c + 1), shape: [r, c], strides: [c + 1, 1], offset: c + 2 },
  ];
}

/** Layouts of a 3-D shape. */
function layouts3(a: number, b: number, c: number): Layout[] {
  return [
    { kind: "contiguous", base: a * b * c, shape: [a, b, c], strides: [b * c, c, 1], offset: 0 },
    { kind: "permuted", base: a * b * c, shape: [a, b, c], strides: [1, a * c, a], offset: 0 },
    { kind: "broadcast", base: a * c, shape: [a, b, c], strides: [c, 0, 1], offset: 0 },
    { kind: "negative", base: a * b * c, shape: [a, b, c], strides: [b * c, -c, 1], offset: (b - 1) * c },
  ];
}

interface Pair {
  cpu: View;
  gpu: View;
}

function makePair(g: Backend, data: readonly number[], dtype: DType, l: Layout): Pair {
  const cb = cpu.fromHost(data, dtype);
  const gb = g.fromHost(data, dtype);
  return {
    cpu: { buffer: cb, shape: l.shape, strides: l.strides, offset: l.offset },
    gpu: { buffer: gb, shape: l.shape, strides: l.strides, offset: l.offset },
  };
}

function pairOf(g: Backend, layout: Layout, dtype: DType, seed: number, lo = -3, hi = 3): Pair {
  return makePair(g, randomData(layout.base, seed, lo, hi), dtype, layout);
}

const TOL: Record<DType, { rtol: number; atol: number }> = {
  float32: { rtol: 2e-5, atol: 2e-6 },
  float64: { rtol: 1e-11, atol: 1e-12 },
  bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 },
  int32: { rtol: 0, atol: 0 },
};

function compareBuffers(
  g: Backend,
  gb: DeviceBuffer,
  cb: DeviceBuffer,
  shape: readonly number[],
  tol: { rtol: number; atol: number },
  what: string,
): void {
  const got = g.toHost(whole(gb, shape));
  const want = cpu.toHost(whole(cb, shape));
  assertClose(got, want, { ...tol, equalNaN: true }, what);
  g.free(gb);
  cpu.free(cb);
}

const FLOATS: DType[] = ["float32", "float64", "bfloat16"];

// ------------------------------------------------------------------ tests that need no GPU

Deno.test({
  name: "cuda: a bad library path in the environment gives an error listing it",
  ignore: !ffiAllowed(),
  fn: () => {
    const old = Deno.env.get("PATCHWORK_CUBLAS");
    Deno.env.set("PATCHWORK_CUBLAS", "/nonexistent/patchwork/libcublas.so.99");
    try {
      assert.deepEqual(candidatePaths("cublas"), ["/nonexistent/patchwork/libcublas.so.99"]);
      assert.throws(
        () => openLibrary("cublas", CUBLAS_SYMBOLS),
        (e: unknown) =>
          e instanceof DeviceError && e.message.includes("/nonexistent/patchwork/libcublas.so.99") &&
          e.message.includes("PATCHWORK_CUBLAS"),
      );
    } finally {
      if (old === undefined) Deno.env.delete("PATCHWORK_CUBLAS");
      else Deno.env.set("PATCHWORK_CUBLAS", old);
    }
  },
});

Deno.test({
  name: "cuda: the default search lists several sonames and standard directories",
  ignore: !ffiAllowed(),
  fn: () => {
    const old = Deno.env.get("PATCHWORK_NVRTC");
    Deno.env.delete("PATCHWORK_NVRTC");
    try {
      const paths = candidatePaths("nvrtc");
      for (const p of ["libnvrtc.so.13", "libnvrtc.so.12", "/usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so.13"]) {
        assert.ok(paths.includes(p), `missing ${p}`);
      }
    } finally {
      if (old !== undefined) Deno.env.set("PATCHWORK_NVRTC", old);
    }
  },
});

// ------------------------------------------------------------------ creation and movement

gpuTest("fromHost/toHost round trip in every dtype", (g) => {
  const data = randomData(37, 1);
  for (const dtype of [...FLOATS, "int32"] as DType[]) {
    const gb = g.fromHost(data, dtype), cb = cpu.fromHost(data, dtype);
    compareBuffers(g, gb, cb, [37], { rtol: 0, atol: 0 }, `roundtrip ${dtype}`);
  }
  const bits = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x0001]);
  const b = g.fromHost(bits, "bfloat16");
  assert.deepEqual([...g.toHost(whole(b, [4]))], [1, -2, Infinity, 9.183549615799121e-41]);
  g.free(b);
});

gpuTest("full and arange match the CPU exactly", (g) => {
  for (const dtype of [...FLOATS, "int32"] as DType[]) {
    for (const v of [0, 1.5, -3.25, 1e10, 0.1]) {
      compareBuffers(g, g.full(33, v, dtype), cpu.full(33, v, dtype), [33], { rtol: 0, atol: 0 }, `full ${dtype} ${v}`);
    }
    compareBuffers(
      g,
      g.arange(1000, -3.5, 0.37, dtype),
      cpu.arange(1000, -3.5, 0.37, dtype),
      [1000],
      { rtol: 0, atol: 0 },
      `arange ${dtype}`,
    );
  }
});

gpuTest("random streams are bit-identical to the CPU's", (g) => {
  for (const dtype of FLOATS) {
    for (const [seed, offset] of [[0, 0], [42, 7], [2 ** 40 + 3, 2 ** 32 - 5]]) {
      compareBuffers(
        g,
        g.random("uniform", 5000, seed, offset, dtype),
        cpu.random("uniform", 5000, seed, offset, dtype),
        [5000],
        { rtol: 0, atol: 0 },
        `uniform ${dtype} ${seed} ${offset}`,
      );
      // normal uses log and cos: the device's double-precision functions may differ from V8's in
      // the last bit, which survives only in float64.
      const tol = dtype === "float64" ? { rtol: 1e-14, atol: 1e-15 } : { rtol: 0, atol: 0 };
      const gn = g.toHost(whole(g.random("normal", 5000, seed, offset, dtype), [5000]));
      const cn = cpu.toHost(whole(cpu.random("normal", 5000, seed, offset, dtype), [5000]));
      if (dtype === "float64") assertClose(gn, cn, { ...tol, equalNaN: true }, `normal ${dtype}`);
      else {
        let mismatches = 0;
        for (let i = 0; i < gn.length; i++) if (gn[i] !== cn[i]) mismatches++;
        assert.ok(mismatches <= 2, `normal ${dtype}: ${mismatches} of 5000 differ`);
      }
    }
  }
});

gpuTest("copy converts dtypes between strided windows", (g) => {
  const dtypes: DType[] = [...FLOATS, "int32"];
  for (const sd of dtypes) {
    for (const dd of dtypes) {
      for (const l of layouts2(5, 7)) {
        const src = pairOf(g, l, sd, 3, -50, 50);
        // destination: a transposed window of a [9, 8] buffer starting at element 10
        const dst0 = randomData(72, 4);
        const gd = g.fromHost(dst0, dd), cd = cpu.fromHost(dst0, dd);
        const win = { shape: [5, 7], strides: [1, 9], offset: 10 };
        g.copy(src.gpu, { buffer: gd, ...win });
        cpu.copy(src.cpu, { buffer: cd, ...win });
        compareBuffers(g, gd, cd, [72], { rtol: 0, atol: 0 }, `copy ${sd}->${dd} ${l.kind}`);
      }
    }
  }
  // overlapping windows of one buffer: shift right by one
  const data = randomData(10, 5);
  const gb = g.fromHost(data, "float32"), cb = cpu.fromHost(data, "float32");
  for (const [b, be] of [[gb, g], [cb, cpu]] as const) {
    be.copy({ buffer: b, shape: [9], strides: [1], offset: 0 }, { buffer: b, shape: [9], strides: [1], offset: 1 });
  }
  compareBuffers(g, gb, cb, [10], { rtol: 0, atol: 0 }, "overlapping copy");
});

// ------------------------------------------------------------------ elementwise

const UNARY = Object.keys(UNARY_OPS) as UnaryOp[];
const POSITIVE = new Set(["log", "sqrt", "rsqrt", "reciprocal"]);

for (const dtype of FLOATS) {
  gpuTest(`unary ops (${dtype}) on every layout`, (g) => {
    for (const op of UNARY) {
      for (const l of [...layouts2(6, 9), ...layouts3(3, 4, 5)]) {
        const p = POSITIVE.has(op) ? pairOf(g, l, dtype, 7, 0.2, 4) : pairOf(g, l, dtype, 7);
        const tol = dtype === "float32" && (op === "exp" || op === "sin" || op === "cos")
          ? { rtol: 1e-5, atol: 1e-5 }
          : TOL[dtype];
        compareBuffers(g, g.unary(op, p.gpu, dtype), cpu.unary(op, p.cpu, dtype), l.shape, tol, `${op} ${l.kind}`);
        g.free(p.gpu.buffer);
      }
    }
  });
}

gpuTest("unary on a large contiguous buffer (vector path and tail)", (g) => {
  const n = 1_000_003;
  const data = randomData(n, 9);
  for (const dtype of FLOATS) {
    const l: Layout = { kind: "c", base: n, shape: [n], strides: [1], offset: 0 };
    const p = makePair(g, data, dtype, l);
    compareBuffers(g, g.unary("gelu", p.gpu, dtype), cpu.unary("gelu", p.cpu, dtype), [n], TOL[dtype], "gelu");
    // misaligned start: strided fallback
    const q: View = { ...p.gpu, shape: [n - 1], offset: 1 };
    const qc: View = { ...p.cpu, shape: [n - 1], offset: 1 };
    compareBuffers(g, g.unary("tanh", q, dtype), cpu.unary("tanh", qc, dtype), [n - 1], TOL[dtype], "tanh offset");
  }
});

const BINARY = Object.keys(BINARY_OPS) as BinaryOp[];

for (const dtype of [...FLOATS, "int32"] as DType[]) {
  gpuTest(`binary ops (${dtype}) on mixed layouts and constants`, (g) => {
    const ls = layouts2(5, 6);
    for (const op of BINARY) {
      for (let i = 0; i < ls.length; i++) {
        const la = ls[i], lb = ls[(i + 2) % ls.length];
        const lo = op === "pow" && dtype !== "int32" ? 0.3 : -4, hi = op === "pow" && dtype !== "int32" ? 2 : 4;
        const a = pairOf(g, la, dtype, 11 + i, lo, hi);
        const b = pairOf(g, lb, dtype, 13 + i, lo, hi);
        const tol = op === "pow" && dtype === "float32" ? { rtol: 1e-5, atol: 1e-6 } : TOL[dtype];
        const shape = [5, 6];
        compareBuffers(
          g,
          g.binary(op, a.gpu, b.gpu, shape, dtype),
          cpu.binary(op, a.cpu, b.cpu, shape, dtype),
          shape,
          tol,
          `${op} ${la.kind}/${lb.kind}`,
        );
        compareBuffers(
          g,
          g.binary(op, a.gpu, 1.5, shape, dtype),
          cpu.binary(op, a.cpu, 1.5, shape, dtype),
          shape,
          tol,
          `${op} ${la.kind}/1.5`,
        );
        compareBuffers(
          g,
          g.binary(op, 2, b.gpu, shape, dtype),
          cpu.binary(op, 2, b.cpu, shape, dtype),
          shape,
          tol,
          `${op} 2/${lb.kind}`,
        );
        g.free(a.gpu.buffer);
        g.free(b.gpu.buffer);
      }
    }
  });
}

gpuTest("binary ops with a dtype conversion and a large broadcast", (g) => {
  const a = pairOf(g, { kind: "c", base: 40, shape: [5, 8], strides: [8, 1], offset: 0 }, "int32", 1, -9, 9);
  const b = pairOf(g, { kind: "b", base: 8, shape: [5, 8], strides: [0, 1], offset: 0 }, "float32", 2);
  compareBuffers(
    g,
    g.binary("mul", a.gpu, b.gpu, [5, 8], "float32"),
    cpu.binary("mul", a.cpu, b.cpu, [5, 8], "float32"),
    [5, 8],
    TOL.float32,
    "int32*float32",
  );
  const big = pairOf(
    g,
    { kind: "c", base: 4096 * 300, shape: [4096, 300], strides: [300, 1], offset: 0 },
    "float32",
    3,
  );
  const bias = pairOf(g, { kind: "b", base: 300, shape: [4096, 300], strides: [0, 1], offset: 0 }, "float32", 4);
  compareBuffers(
    g,
    g.binary("add", big.gpu, bias.gpu, [4096, 300], "float32"),
    cpu.binary("add", big.cpu, bias.cpu, [4096, 300], "float32"),
    [4096, 300],
    TOL.float32,
    "bias add",
  );
});

gpuTest("where with every condition dtype, views and constants", (g) => {
  for (const cd of [...FLOATS, "int32"] as DType[]) {
    for (const dtype of FLOATS) {
      for (const l of layouts2(4, 7)) {
        const condData = randomData(l.base, 21).map((v) => (v > 0 ? 1 : 0));
        const c = makePair(g, condData, cd, l);
        const a = pairOf(g, layouts2(4, 7)[0], dtype, 22);
        const b = pairOf(g, layouts2(4, 7)[2], dtype, 23);
        const shape = [4, 7];
        compareBuffers(
          g,
          g.where(c.gpu, a.gpu, b.gpu, shape, dtype),
          cpu.where(c.cpu, a.cpu, b.cpu, shape, dtype),
          shape,
          { rtol: 0, atol: 0 },
          `where ${cd} ${dtype} ${l.kind}`,
        );
        compareBuffers(
          g,
          g.where(c.gpu, a.gpu, -1, shape, dtype),
          cpu.where(c.cpu, a.cpu, -1, shape, dtype),
          shape,
          { rtol: 0, atol: 0 },
          `where const ${cd} ${dtype} ${l.kind}`,
        );
      }
    }
  }
});

// ------------------------------------------------------------------ reductions

for (const dtype of [...FLOATS, "int32"] as DType[]) {
  gpuTest(`reduce (${dtype}) over axis sets and layouts`, (g) => {
    const axesSets = [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2], []];
    const tol = dtype === "float32"
      ? { rtol: 1e-4, atol: 1e-4 }
      : dtype === "bfloat16"
      ? { rtol: 2e-2, atol: 5e-2 }
      : TOL[dtype];
    for (const op of ["sum", "max", "min", "prod"] as const) {
      for (const l of layouts3(3, 5, 7)) {
        const p = op === "prod" ? pairOf(g, l, dtype, 31, 0.8, 1.2) : pairOf(g, l, dtype, 31, -9, 9);
        for (const axes of axesSets) {
          if (dtype === "int32" && op === "prod") continue;
          const shape = l.shape.map((n, d) => (axes.includes(d) ? 1 : n));
          compareBuffers(
            g,
            g.reduce(op, p.gpu, axes, dtype),
            cpu.reduce(op, p.cpu, axes, dtype),
            shape,
            tol,
            `${op} ${l.kind} axes ${axes}`,
          );
        }
        g.free(p.gpu.buffer);
      }
    }
  });
}

gpuTest("reduce: long rows, long columns and a full reduction (split paths)", (g) => {
  const cases: { shape: number[]; axes: number[] }[] = [
    { shape: [2, 300_000], axes: [1] },
    { shape: [300_000, 3], axes: [0] },
    { shape: [1_000_000], axes: [0] },
    { shape: [64, 5000], axes: [1] },
    { shape: [5000, 64], axes: [0] },
    { shape: [40, 50, 60], axes: [0, 2] },
  ];
  for (const { shape, axes } of cases) {
    for (const dtype of ["float32", "float64", "bfloat16", "int32"] as DType[]) {
      const n = numel(shape);
      const p = pairOf(g, { kind: "c", base: n, shape, strides: rowMajor(shape), offset: 0 }, dtype, 41);
      for (const op of ["sum", "max"] as const) {
        const out = shape.map((s, d) => (axes.includes(d) ? 1 : s));
        compareBuffers(
          g,
          g.reduce(op, p.gpu, axes, dtype),
          cpu.reduce(op, p.cpu, axes, dtype),
          out,
          dtype === "float32"
            ? { rtol: 1e-4, atol: 2e-3 }
            : dtype === "bfloat16"
            ? { rtol: 2e-2, atol: 1 }
            : { rtol: 1e-10, atol: 1e-9 },
          `${op} ${shape} over ${axes} ${dtype}`,
        );
      }
      g.free(p.gpu.buffer);
    }
  }
});

gpuTest("argmax / argmin along each axis", (g) => {
  for (const dtype of [...FLOATS, "int32"] as DType[]) {
    for (const l of [...layouts3(3, 5, 7), ...layouts3(2, 100, 3)]) {
      const p = pairOf(g, l, dtype, 51, -100, 100);
      for (const op of ["argmax", "argmin"] as const) {
        for (let axis = 0; axis < 3; axis++) {
          const shape = l.shape.map((n, d) => (d === axis ? 1 : n));
          compareBuffers(
            g,
            g.argReduce(op, p.gpu, axis),
            cpu.argReduce(op, p.cpu, axis),
            shape,
            { rtol: 0, atol: 0 },
            `${op} ${dtype} ${l.kind} axis ${axis}`,
          );
        }
      }
    }
  }
});

for (const dtype of FLOATS) {
  gpuTest(`softmax and log-softmax (${dtype}) on every kernel path`, (g) => {
    const shapes = [[7, 20], [5, 50], [3, 100], [6, 200], [4, 1000], [2, 8192], [2, 10000], [30, 6, 5]];
    for (const shape of shapes) {
      for (let axis = 0; axis < shape.length; axis++) {
        const n = numel(shape);
        const layouts: Layout[] = [{ kind: "contiguous", base: n, shape, strides: rowMajor(shape), offset: 0 }];
        if (shape.length === 2) layouts.push(layouts2(shape[0], shape[1])[1]);
        for (const l of layouts) {
          const p = pairOf(g, l, dtype, 61, -5, 5);
          for (const log of [false, true]) {
            compareBuffers(
              g,
              g.softmax(p.gpu, axis, log, dtype),
              cpu.softmax(p.cpu, axis, log, dtype),
              shape,
              dtype === "float32" ? { rtol: 1e-5, atol: 1e-6 } : TOL[dtype],
              `softmax${log ? " log" : ""} ${shape} axis ${axis} ${l.kind}`,
            );
          }
          g.free(p.gpu.buffer);
        }
      }
    }
  });
}

gpuTest("cumsum along each axis, long rows included", (g) => {
  for (const dtype of [...FLOATS, "int32"] as DType[]) {
    for (const shape of [[4, 5, 6], [3, 5000], [1, 3000]]) {
      const n = numel(shape);
      const p = pairOf(g, { kind: "c", base: n, shape, strides: rowMajor(shape), offset: 0 }, dtype, 71, -3, 3);
      for (let axis = 0; axis < shape.length; axis++) {
        const tol = dtype === "float32"
          ? { rtol: 1e-5, atol: 1e-4 }
          : dtype === "bfloat16"
          ? { rtol: 2e-2, atol: 0.5 }
          : TOL[dtype];
        compareBuffers(
          g,
          g.cumsum(p.gpu, axis, dtype),
          cpu.cumsum(p.cpu, axis, dtype),
          shape,
          tol,
          `cumsum ${dtype} ${shape} axis ${axis}`,
        );
      }
    }
    const l = layouts3(3, 4, 5)[1];
    const p = pairOf(g, l, dtype, 72, -3, 3);
    compareBuffers(
      g,
      g.cumsum(p.gpu, 1, dtype),
      cpu.cumsum(p.cpu, 1, dtype),
      l.shape,
      TOL[dtype === "bfloat16" ? "bfloat16" : "float32"],
      "cumsum permuted",
    );
  }
});

// ------------------------------------------------------------------ matmul

gpuTest("matmul: dtypes, transposed operands, broadcast batches", (g) => {
  const m = 17, k = 33, n = 9;
  const cases: { a: Layout; b: Layout; name: string }[] = [
    {
      name: "plain",
      a: { kind: "", base: m * k, shape: [m, k], strides: [k, 1], offset: 0 },
      b: { kind: "", base: k * n, shape: [k, n], strides: [n, 1], offset: 0 },
    },
    {
      name: "transposed a and b",
      a: { kind: "", base: m * k, shape: [m, k], strides: [1, m], offset: 0 },
      b: { kind: "", base: k * n, shape: [k, n], strides: [1, k], offset: 0 },
    },
    {
      name: "batched, b broadcast",
      a: { kind: "", base: 6 * m * k, shape: [2, 3, m, k], strides: [3 * m * k, m * k, k, 1], offset: 0 },
      b: { kind: "", base: k * n, shape: [2, 3, k, n], strides: [0, 0, n, 1], offset: 0 },
    },
    {
      name: "batched, odd strides",
      a: { kind: "", base: 2 * m * (k + 2) + 5, shape: [2, m, k], strides: [m * (k + 2), k + 2, 1], offset: 5 },
      b: { kind: "", base: 3 * k * n, shape: [2, k, n], strides: [k * n, 1, k], offset: 0 },
    },
    {
      name: "negative stride",
      a: { kind: "", base: m * k, shape: [m, k], strides: [-k, 1], offset: (m - 1) * k },
      b: { kind: "", base: k * n, shape: [k, n], strides: [n, 1], offset: 0 },
    },
    {
      name: "vector times matrix",
      a: { kind: "", base: k, shape: [1, k], strides: [k, 1], offset: 0 },
      b: { kind: "", base: k * n, shape: [k, n], strides: [n, 1], offset: 0 },
    },
  ];
  for (const dtype of [...FLOATS, "int32"] as DType[]) {
    for (const c of cases) {
      const a = pairOf(g, c.a, dtype, 81, -2, 2);
      const b = pairOf(g, c.b, dtype, 82, -2, 2);
      const shape = [...c.a.shape.slice(0, -1), c.b.shape[c.b.shape.length - 1]];
      const tol = dtype === "float32"
        ? { rtol: 1e-4, atol: 1e-4 }
        : dtype === "bfloat16"
        ? { rtol: 3e-2, atol: 0.1 }
        : TOL[dtype];
      compareBuffers(
        g,
        g.matmul(a.gpu, b.gpu, dtype),
        cpu.matmul(a.cpu, b.cpu, dtype),
        shape,
        tol,
        `${c.name} ${dtype}`,
      );
    }
  }
  // TF32 opt-in: still close at TF32 precision
  const a = pairOf(g, cases[0].a, "float32", 83), b = pairOf(g, cases[0].b, "float32", 84);
  g.allowTF32 = true;
  try {
    compareBuffers(g, g.matmul(a.gpu, b.gpu, "float32"), cpu.matmul(a.cpu, b.cpu, "float32"), [m, n], {
      rtol: 1e-2,
      atol: 5e-2,
    }, "tf32");
  } finally {
    g.allowTF32 = false;
  }
});

// ------------------------------------------------------------------ indexing

gpuTest("gather and scatterAdd along each axis with strided operands", (g) => {
  const shape = [4, 5, 6];
  for (const dtype of [...FLOATS, "int32"] as DType[]) {
    for (const l of layouts3(4, 5, 6)) {
      const x = pairOf(g, l, dtype, 91, -9, 9);
      for (let axis = 0; axis < 3; axis++) {
        const ishape = [3, 4, 5];
        const idxData = randomData(numel(ishape), 92 + axis, 0, shape[axis] - 1e-9).map(Math.floor);
        const il: Layout = { kind: "", base: numel(ishape), shape: ishape, strides: rowMajor(ishape), offset: 0 };
        const idx = makePair(g, idxData, "int32", il);
        compareBuffers(
          g,
          g.gather(x.gpu, axis, idx.gpu, dtype),
          cpu.gather(x.cpu, axis, idx.cpu, dtype),
          ishape,
          { rtol: 0, atol: 0 },
          `gather ${dtype} ${l.kind} axis ${axis}`,
        );
        const src = pairOf(g, il, dtype, 93, -3, 3);
        compareBuffers(
          g,
          g.scatterAdd(shape, axis, idx.gpu, src.gpu, dtype),
          cpu.scatterAdd(shape, axis, idx.cpu, src.cpu, dtype),
          shape,
          dtype === "bfloat16"
            ? { rtol: 2e-2, atol: 5e-2 }
            : dtype === "float32"
            ? { rtol: 1e-5, atol: 1e-5 }
            : TOL[dtype],
          `scatterAdd ${dtype} axis ${axis}`,
        );
      }
    }
  }
});

// ------------------------------------------------------------------ FFT

gpuTest("fft, rfft and irfft along each axis", (g) => {
  for (const dtype of ["float32", "float64", "bfloat16"] as DType[]) {
    const tol = dtype === "float64"
      ? { rtol: 1e-10, atol: 1e-10 }
      : dtype === "float32"
      ? { rtol: 1e-4, atol: 1e-4 }
      : { rtol: 3e-2, atol: 0.2 };
    // complex [6, 8, 2]
    const cshape = [6, 8, 2];
    const cl: Layout = { kind: "", base: 96, shape: cshape, strides: rowMajor(cshape), offset: 0 };
    const tl: Layout = { kind: "", base: 96, shape: cshape, strides: [2, 12, 1], offset: 0 };
    for (const l of [cl, tl]) {
      const x = pairOf(g, l, dtype, 101);
      for (const axis of [0, 1]) {
        for (const inverse of [false, true]) {
          compareBuffers(
            g,
            g.fft(x.gpu, axis, inverse, dtype),
            cpu.fft(x.cpu, axis, inverse, dtype),
            cshape,
            tol,
            `fft ${dtype} axis ${axis} inv ${inverse}`,
          );
        }
      }
    }
    // real [6, 10]
    for (const axis of [0, 1]) {
      const rshape = [6, 10];
      const x = pairOf(g, { kind: "", base: 60, shape: rshape, strides: [10, 1], offset: 0 }, dtype, 102);
      const h = Math.floor(rshape[axis] / 2) + 1;
      const oshape = [...rshape.map((v, d) => (d === axis ? h : v)), 2];
      const gr = g.rfft(x.gpu, axis, dtype), cr = cpu.rfft(x.cpu, axis, dtype);
      assertClose(
        g.toHost(whole(gr, oshape)),
        cpu.toHost(whole(cr, oshape)),
        { ...tol, equalNaN: true },
        `rfft ${dtype} axis ${axis}`,
      );
      for (const n of [rshape[axis], rshape[axis] - 1]) {
        const ishape = rshape.map((v, d) => (d === axis ? n : v));
        compareBuffers(
          g,
          g.irfft(whole(gr, oshape), axis, n, dtype),
          cpu.irfft(whole(cr, oshape), axis, n, dtype),
          ishape,
          tol,
          `irfft ${dtype} axis ${axis} n ${n}`,
        );
      }
    }
  }
});

// ------------------------------------------------------------------ GPU-only behaviour

gpuTest("allocator: reuse, peak, cache release, double free", (g) => {
  g.synchronize();
  const before = g.allocatorStats();
  const a = g.full(1000, 1, "float32");
  const m1 = g.memory();
  assert.equal(m1.current - before.current, 4000);
  g.free(a);
  g.free(a); // double free is a no-op
  assert.equal(g.memory().current, before.current);
  const b = g.full(1000, 2, "float32");
  const s = g.allocatorStats();
  assert.ok(s.hits > before.hits, "second allocation of the size class came from the cache");
  g.free(b);
  g.resetPeak();
  const big = g.full(1 << 20, 0, "float64");
  assert.ok(g.memory().peak >= g.memory().current);
  assert.equal(g.memory().peak - g.memory().current, 0);
  g.free(big);
  assert.ok(g.memory().cached >= 8 << 20);
  const released = g.releaseCached();
  assert.ok(released >= 8 << 20);
  assert.equal(g.memory().cached, 0);
});

gpuTest("out of memory raises OutOfMemoryError with the sizes", (g) => {
  assert.throws(
    () => g.full(2 ** 48, 0, "float32"),
    (e: unknown) => e instanceof OutOfMemoryError && /asked for/.test(e.message) && e.requested === 2 ** 50,
  );
});

gpuTest("stream order: freed blocks reused at once by later launches", (g) => {
  const n = 1 << 20;
  let x = g.full(n, 0, "float32");
  for (let i = 0; i < 200; i++) {
    const y = g.binary("add", whole(x, [n]), 1, [n], "float32");
    g.free(x);
    x = y;
  }
  const h = g.toHost(whole(x, [n]));
  assert.equal(h[0], 200);
  assert.equal(h[n - 1], 200);
  g.free(x);
});

gpuTest("fused Adam(W) update agrees with the CPU backend's (float32, bfloat16 gradient + copy, float64)", (g) => {
  const n = 3 * 4096 + 5; // several grid-stride rounds and a ragged tail
  const cases = [
    { p: "float32", g: "float32", low: false, wd: 0.01, decoupled: true },
    { p: "float32", g: "bfloat16", low: true, wd: 0.01, decoupled: true },
    { p: "float64", g: "float64", low: false, wd: 0.1, decoupled: false },
  ] as const;
  for (const c of cases) {
    const l = { kind: "contiguous", base: n, shape: [n], strides: [1], offset: 0 };
    const param = pairOf(g, l, c.p, 1), grad = pairOf(g, l, c.g, 2);
    const m = pairOf(g, l, c.p, 3, -0.1, 0.1), v = pairOf(g, l, c.p, 4, 0, 0.2);
    const low = c.low ? pairOf(g, l, "bfloat16", 5) : null;
    for (let step = 1; step <= 3; step++) {
      const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: c.wd, decoupled: c.decoupled, step };
      cpu.optim.adam(param.cpu, grad.cpu, m.cpu, v.cpu, low?.cpu ?? null, hyper);
      g.optim.adam(param.gpu, grad.gpu, m.gpu, v.gpu, low?.gpu ?? null, hyper);
    }
    const tol = TOL[c.p];
    assertClose(g.toHost(param.gpu), cpu.toHost(param.cpu), { ...tol, equalNaN: true }, `${c.p}/${c.g} param`);
    assertClose(g.toHost(m.gpu), cpu.toHost(m.cpu), { ...tol, equalNaN: true }, `${c.p}/${c.g} exp_avg`);
    assertClose(g.toHost(v.gpu), cpu.toHost(v.cpu), { ...tol, equalNaN: true }, `${c.p}/${c.g} exp_avg_sq`);
    if (low) {
      assertClose(
        g.toHost(low.gpu),
        cpu.toHost(low.cpu),
        { ...TOL.bfloat16, equalNaN: true },
        `${c.p}/${c.g} bfloat16 copy`,
      );
    }
    for (const x of [param, grad, m, v, ...(low ? [low] : [])]) {
      g.free(x.gpu.buffer);
      cpu.free(x.cpu.buffer);
    }
  }
});

gpuTest("kernel cache: a second backend loads every kernel from disk", async () => {
  const second = await createCudaBackend();
  try {
    const s = second.kernelCache;
    assert.equal(s.misses, 0, JSON.stringify(s));
    assert.ok(s.hits >= 7, JSON.stringify(s));
    const x = second.fromHost([1, 2, 3], "float32");
    const y = second.binary("mul", whole(x, [3]), 2, [3], "float32");
    assert.deepEqual([...second.toHost(whole(y, [3]))], [2, 4, 6]);
  } finally {
    second.dispose();
  }
});

gpuTest("errors: CUDA status names, foreign buffers, freed buffers", (g) => {
  const e = g.raw.driver.error("cuMemAlloc_v2", 1);
  assert.ok(e instanceof CudaError);
  assert.match(e.message, /cuMemAlloc_v2: CUDA_ERROR_INVALID_VALUE \(1\)/);
  const c = cpu.fromHost([1, 2], "float32");
  assert.throws(() => g.unary("exp", whole(c, [2]), "float32"), DeviceError);
  const x = g.fromHost([1, 2], "float32");
  g.free(x);
  assert.throws(() => g.unary("exp", whole(x, [2]), "float32"), DeviceError);
});

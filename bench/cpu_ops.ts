/**
 * The CPU backend against jax-js (its WebAssembly backend, in this process) and NumPy (a
 * python3 worker, where NumPy is installed), measured in one run on one machine, printed as a
 * markdown table of throughputs and ratios (patchwork's speed over the other's: above 1 is
 * faster).
 *
 * Cases: square matrix products 256–2048 (float32, float64), add, exp and a sum of 2^24 float32
 * (in GB/s of traffic, beside a memory copy measured in the same run), softmax over the last
 * axis of 4096 × 4096 float32, an rFFT along the first grid axis of an FNO layer's channels-last
 * activations [4, 64, 64, 64] float32, and a periodic 3-point Laplacian along the last axis of
 * 2048 × 2048 float64. Each figure is the best of its timed repetitions (the cores
 * are shared: the best is the least disturbed); the three libraries are timed case by case,
 * one after the other.
 *
 * `deno task bench` runs it; `--quick` takes fewer repetitions, `--no-jax` and `--no-numpy`
 * leave those out, `--only=exp,softmax` runs only the cases whose op starts with one of the names.
 *
 * @module
 */

import { defaultDevice, init, nn, numpy as jnp } from "@jax-js/jax";
import { CpuBackend, type CpuBuffer } from "../src/backend/cpu/mod.ts";
import { threadCount } from "../src/backend/cpu/threads.ts";
import type { BandedOperator, DeviceBuffer, View } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import { contiguousStrides } from "../src/tensor/shape.ts";

const args = new Set(Deno.args);
const QUICK = args.has("--quick");
const ONLY = Deno.args.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");

/** Best wall time (ms) of `fn` over at least `reps` runs and 0.4 s (0.15 s quick), after one warm-up. */
async function best(fn: () => unknown | Promise<unknown>, reps: number): Promise<number> {
  await fn();
  let min = Infinity, total = 0;
  for (let i = 0; (i < reps || total < (QUICK ? 150 : 400)) && i < 40; i++) {
    const t0 = performance.now();
    await fn();
    const t = performance.now() - t0;
    min = Math.min(min, t);
    total += t;
  }
  return min;
}

/** One case: its work (flops or bytes) and how each library runs it. */
interface Case {
  op: string;
  dtype: "float32" | "float64";
  shape: string;
  /** "GFLOP/s" (work in flops) or "GB/s" (work in bytes moved) or "ms" (work unused). */
  unit: "GFLOP/s" | "GB/s" | "ms";
  work: number;
  reps: number;
  patchwork: () => () => unknown;
  jax?: () => () => Promise<unknown>;
  /** The NumPy worker's case name (see NUMPY_WORKER). */
  numpy?: string;
  /** Leave jax-js out, with the reason. */
  skipJax?: string;
}

const cpu = new CpuBackend();

function view(buffer: DeviceBuffer, shape: number[]): View {
  return { buffer, shape, strides: contiguousStrides(shape), offset: 0 };
}

function random(shape: number[], dtype: DType, seed: number): View {
  return view(cpu.random("normal", shape.reduce((a, b) => a * b, 1), seed, 0, dtype), shape);
}

/** A patchwork op on fresh inputs: the returned runner computes and frees the result. */
function pw(make: () => DeviceBuffer): () => unknown {
  return () => cpu.free(make());
}

const none = { rows: 0, cols: 0, values: [] };
const laplacian = (n: number): BandedOperator => ({
  n,
  lo: -1,
  stencil: [1, -2, 1],
  periodic: true,
  head: none,
  tail: none,
});

/** jax-js arrays filled with standard normals (its own generator). */
function jaxRandom(shape: number[], dtype: "float32" | "float64"): jnp.Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = dtype === "float32" ? new Float32Array(size) : new Float64Array(size);
  for (let i = 0; i < size; i++) data[i] = Math.random() - 0.5;
  return jnp.array(data).reshape(shape);
}

/**
 * A case on `inputs` arrays of standard normals of `shape`: `run` on patchwork's (seeds 1, 2, …),
 * `jaxRun` on jax-js's (each passed as a new reference), one result each.
 */
function onInputs(
  c: Omit<Case, "patchwork" | "jax">,
  shape: number[],
  inputs: number,
  run: (x: View[]) => DeviceBuffer,
  jaxRun: (a: jnp.Array[]) => jnp.Array,
): Case {
  const seeds = Array.from({ length: inputs }, (_, i) => i + 1);
  return {
    ...c,
    patchwork: () => {
      const xs = seeds.map((seed) => random(shape, c.dtype, seed));
      return pw(() => run(xs));
    },
    jax: () => {
      const as = seeds.map(() => jaxRandom(shape, c.dtype));
      return async () => (await jaxRun(as.map((a) => a.ref)).blockUntilReady()).dispose();
    },
  };
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const dtype of ["float32", "float64"] as const) {
    for (const n of [256, 512, 1024, 2048]) {
      list.push(onInputs(
        {
          op: "matmul",
          dtype,
          shape: `${n}×${n}×${n}`,
          unit: "GFLOP/s",
          work: 2 * n ** 3,
          reps: n >= 2048 ? 2 : 5,
          skipJax: dtype === "float64" && n > 512
            ? "jax-js multiplies float64 without SIMD (0.3 GFLOP/s): minutes"
            : undefined,
          numpy: `matmul ${dtype} ${n}`,
        },
        [n, n],
        2,
        ([a, b]) => cpu.matmul(a, b, dtype),
        ([a, b]) => jnp.matmul(a, b),
      ));
    }
  }
  const m = 1 << 24;
  const stream = { dtype: "float32", shape: "2^24", unit: "GB/s", reps: 5 } as const;
  list.push({
    ...stream,
    op: "copy (memory bandwidth)",
    work: 2 * 4 * m,
    patchwork: () => {
      // The same bytes copied by the engine's memcpy (TypedArray.prototype.set), one thread.
      const x = random([m], "float32", 1), y = random([m], "float32", 2);
      const [from, to] = [x, y].map((v) => (v.buffer as CpuBuffer).data as Float32Array);
      return () => to.set(from);
    },
    numpy: `copy float32 ${m}`,
  });
  list.push(onInputs(
    { ...stream, op: "add", work: 3 * 4 * m, numpy: `add float32 ${m}` },
    [m],
    2,
    ([x, y]) => cpu.binary("add", x, y, [m], "float32"),
    ([a, b]) => jnp.add(a, b),
  ));
  list.push(onInputs(
    { ...stream, op: "exp", work: 2 * 4 * m, numpy: `exp float32 ${m}` },
    [m],
    1,
    ([x]) => cpu.unary("exp", x, "float32"),
    ([a]) => jnp.exp(a),
  ));
  list.push(onInputs(
    { ...stream, op: "sum (all elements)", work: 4 * m, numpy: `sum float32 ${m}` },
    [m],
    1,
    ([x]) => cpu.reduce("sum", x, [0], "float32"),
    ([a]) => jnp.sum(a),
  ));
  list.push(onInputs(
    {
      op: "softmax (last axis)",
      dtype: "float32",
      shape: "4096×4096",
      unit: "ms",
      work: 0,
      reps: 5,
      numpy: "softmax float32 4096",
    },
    [4096, 4096],
    1,
    ([x]) => cpu.softmax(x, 1, false, "float32"),
    ([a]) => nn.softmax(a, -1),
  ));
  list.push({
    op: "rfft (FNO layer, axis 1)",
    dtype: "float32",
    shape: "4×64×64×64",
    unit: "ms",
    work: 0,
    reps: 5,
    patchwork: () => {
      const x = random([4, 64, 64, 64], "float32", 1);
      return pw(() => cpu.rfft(x, 1, "float32"));
    },
    jax: () => {
      const a = jaxRandom([4, 64, 64, 64], "float32");
      return async () => {
        const { real, imag } = jnp.fft.rfft(a.ref, 1);
        await real.blockUntilReady();
        await imag.blockUntilReady();
        real.dispose();
        imag.dispose();
      };
    },
    numpy: "rfft float32 64",
  });
  list.push({
    op: "stencil (periodic d², last axis)",
    dtype: "float64",
    shape: "2048×2048",
    unit: "ms",
    work: 0,
    reps: 5,
    patchwork: () => {
      const x = random([2048, 2048], "float64", 1);
      return pw(() => cpu.stencil(x, 1, laplacian(2048), null, "float64"));
    },
    jax: () => {
      const a = jaxRandom([2048, 2048], "float64");
      return async () => {
        const y = jnp.add(jnp.roll(a.ref, 1, 1), jnp.roll(a.ref, -1, 1)).sub(jnp.multiply(a.ref, 2));
        (await y.blockUntilReady()).dispose();
      };
    },
    numpy: "stencil float64 2048",
  });
  return list;
}

/** The NumPy worker: reads "case" lines, answers each with the best time in ms (or "none"). */
const NUMPY_WORKER = `
import sys, time, numpy as np
def best(fn, reps):
    fn()
    times = []
    total = 0.0
    while (len(times) < reps or total < ${QUICK ? 0.15 : 0.4}) and len(times) < 40:
        t = time.perf_counter(); fn(); d = time.perf_counter() - t
        times.append(d); total += d
    return min(times) * 1e3
rng = np.random.default_rng(0)
print("ready", np.__version__, flush=True)
for line in sys.stdin:
    op, dtype, n = line.split()
    n = int(n)
    if op == "matmul":
        a = rng.standard_normal((n, n)).astype(dtype); b = rng.standard_normal((n, n)).astype(dtype)
        ms = best(lambda: a @ b, 5)
    elif op == "copy":
        a = rng.standard_normal(n).astype(dtype); b = np.empty_like(a)
        ms = best(lambda: np.copyto(b, a), 5)
    elif op == "add":
        a = rng.standard_normal(n).astype(dtype); b = rng.standard_normal(n).astype(dtype)
        ms = best(lambda: a + b, 5)
    elif op == "sum":
        a = rng.standard_normal(n).astype(dtype)
        ms = best(lambda: a.sum(), 5)
    elif op == "exp":
        a = rng.standard_normal(n).astype(dtype)
        ms = best(lambda: np.exp(a), 5)
    elif op == "softmax":
        a = rng.standard_normal((n, n)).astype(dtype)
        def softmax():
            e = np.exp(a - a.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        ms = best(softmax, 5)
    elif op == "rfft":
        a = rng.standard_normal((4, n, n, n)).astype(dtype)
        ms = best(lambda: np.fft.rfft(a, axis=1), 5)
    elif op == "stencil":
        a = rng.standard_normal((n, n)).astype(dtype)
        ms = best(lambda: np.roll(a, 1, 1) + np.roll(a, -1, 1) - 2 * a, 5)
    else:
        ms = None
    print("none" if ms is None else ms, flush=True)
`;

/** A running NumPy worker, or null where python3 or NumPy is missing. */
async function startNumpy(): Promise<{ version: string; run(name: string): Promise<number>; close(): void } | null> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("python3", { args: ["-c", NUMPY_WORKER], stdin: "piped", stdout: "piped", stderr: "null" })
      .spawn();
  } catch {
    return null;
  }
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const writer = child.stdin.getWriter();
  let buffered = "";
  const nextLine = async (): Promise<string | null> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) return null;
      buffered += value;
    }
    const i = buffered.indexOf("\n");
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return line;
  };
  const first = await nextLine();
  if (!first?.startsWith("ready")) {
    await child.status;
    return null;
  }
  return {
    version: first.split(" ")[1],
    async run(name) {
      await writer.write(new TextEncoder().encode(name + "\n"));
      const answer = await nextLine();
      return answer && answer !== "none" ? Number(answer) : NaN;
    },
    close() {
      writer.close();
      lines.cancel();
    },
  };
}

function cpuModel(): string {
  try {
    const line = Deno.readTextFileSync("/proc/cpuinfo").split("\n").find((l) => l.startsWith("model name"));
    return line ? line.slice(line.indexOf(":") + 1).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

function commit(): string {
  try {
    const out = new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped", stderr: "null" })
      .outputSync();
    return new TextDecoder().decode(out.stdout).trim() || "unknown";
  } catch {
    return "unknown";
  }
}

/** Throughput (or time) of `ms` for a case, formatted. */
function figure(c: Case, ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  if (c.unit === "ms") return `${ms.toFixed(2)} ms`;
  const v = c.work / ms / 1e6;
  return `${v.toFixed(1)}`;
}

function ratio(pwMs: number, otherMs: number): string {
  return Number.isFinite(pwMs) && Number.isFinite(otherMs) ? `${(otherMs / pwMs).toFixed(2)}×` : "—";
}

if (import.meta.main) {
  const useJax = !args.has("--no-jax");
  if (useJax) {
    await init("wasm");
    defaultDevice("wasm");
  }
  const numpy = args.has("--no-numpy") ? null : await startNumpy();
  const load = () => Deno.loadavg().map((v) => v.toFixed(1)).join(", ");
  const header = [
    "## CPU backend against jax-js and NumPy",
    "",
    `- date: ${new Date().toISOString()}, commit ${commit()}`,
    `- CPU: ${cpuModel()}, ${navigator.hardwareConcurrency} hardware threads; patchwork threads: ${threadCount()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); jax-js 0.1.25 ${useJax ? "(wasm)" : "(left out)"}; NumPy ${
      numpy ? numpy.version : "(not found)"
    }`,
    `- load average at start: ${load()}`,
  ];
  const rows: string[] = [];
  for (const c of cases().filter((c) => !ONLY || ONLY.some((name) => c.op.startsWith(name)))) {
    const pwMs = await best(c.patchwork(), c.reps);
    const jaxMs = useJax && c.jax && !c.skipJax ? await best(c.jax(), c.reps) : NaN;
    const npMs = numpy && c.numpy ? await numpy.run(c.numpy) : NaN;
    const unit = c.unit === "ms" ? "" : ` ${c.unit}`;
    const row = `| ${c.op} | ${c.dtype} | ${c.shape} | ${figure(c, pwMs)}${unit} | ${figure(c, jaxMs)} | ${
      figure(c, npMs)
    } | ${ratio(pwMs, jaxMs)} | ${ratio(pwMs, npMs)} |`;
    rows.push(row);
    console.error(row);
  }
  numpy?.close();
  console.log([
    ...header,
    `- load average at end: ${load()}`,
    "",
    "| op | dtype | size | patchwork | jax-js | NumPy | patchwork ÷ jax-js | patchwork ÷ NumPy |",
    "|---|---|---|---:|---:|---:|---:|---:|",
    ...rows,
  ].join("\n"));
  Deno.exit(0);
}

/**
 * The system's OpenBLAS through Deno FFI, for the CPU backend's larger matrix products when it is
 * installed (Debian: `apt-get install libopenblas0`); without it, or without `--allow-ffi`, the
 * products run on the WebAssembly kernel and nothing else changes.
 *
 * Found like the CUDA libraries: `PATCHWORK_BLAS` (a file, or a directory holding one of the
 * sonames; `off` to never use a system BLAS) is the only place tried when set; otherwise the
 * dynamic loader's search path, then `/usr/lib/x86_64-linux-gnu/openblas-pthread`,
 * `/usr/lib/x86_64-linux-gnu`, `/usr/lib64`, `/usr/local/lib` and `/opt/OpenBLAS/lib`. Only
 * OpenBLAS is taken (it is asked for `openblas_set_num_threads`).
 *
 * OpenBLAS's own threads split a product differently with their number (results then differ in
 * the last bits), so it runs on one thread per call, and the thread pool (`threads.ts`) gives
 * each of its threads blocks of the result of a fixed size ({@linkcode GEMM_JOB}): every block is
 * one single-threaded call, the same whichever thread makes it, so results do not depend on the
 * thread count. They differ from the WebAssembly kernel's in rounding (another order of the same
 * sums), as a GPU's would.
 *
 * @module
 */

import { ffiAllowed } from "../cuda/libraries.ts";

const SONAMES = ["libopenblas.so.0", "libopenblas.so"];
const DIRS = [
  "/usr/lib/x86_64-linux-gnu/openblas-pthread",
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib64",
  "/usr/local/lib",
  "/opt/OpenBLAS/lib",
];

/** `cblas_?gemm(order, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)`. */
function gemmParameters<T extends "f32" | "f64">(scalar: T) {
  return [
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    scalar,
    "pointer",
    "i32",
    "pointer",
    "i32",
    scalar,
    "pointer",
    "i32",
  ] as const;
}

/**
 * The symbols taken from OpenBLAS.
 *
 * @example
 * ```ts
 * import { BLAS_SYMBOLS } from "./blas.ts";
 * Object.keys(BLAS_SYMBOLS); // ["cblas_sgemm", "cblas_dgemm", "openblas_set_num_threads"]
 * ```
 */
export const BLAS_SYMBOLS = {
  cblas_sgemm: { parameters: gemmParameters("f32"), result: "void" },
  cblas_dgemm: { parameters: gemmParameters("f64"), result: "void" },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Rows of a block of the result one call computes. */
export const BLAS_ROWS = 128;
/** Columns of a block of the result one call computes. */
export const BLAS_COLS = 256;

/**
 * One job of a batch of products as a function's source, run by every thread of the pool (the
 * main thread and the workers each compile it): `(symbols, base, heap, args, job)` where
 * `symbols` are the opened {@linkcode BLAS_SYMBOLS}, `base` the process address of heap address
 * 0, `heap` a Float64Array over the heap and `args` the float64 index of the arguments: bytes (4
 * or 8), A and B stored transposed (0/1), m, n, k, lda, ldb, the address of the batch table (A, B
 * and C addresses per product), blocks along m, blocks along n. Job = (product, row block, column
 * block), `BLAS_ROWS × BLAS_COLS`; C is contiguous m × n.
 *
 * @example
 * ```ts
 * import { GEMM_JOB } from "./blas.ts";
 * typeof new Function(`return ${GEMM_JOB}`)(); // "function"
 * ```
 */
export const GEMM_JOB = `function gemmJob(symbols, base, heap, args, job) {
  const a = heap.subarray(args, args + 11);
  const bytes = a[0], transA = a[1] !== 0, transB = a[2] !== 0, m = a[3], n = a[4], k = a[5];
  const lda = a[6], ldb = a[7], table = a[8], blocksM = a[9], blocksN = a[10];
  const perProduct = blocksM * blocksN, t = Math.floor(job / perProduct), r = job % perProduct;
  const i0 = Math.floor(r / blocksN) * ${BLAS_ROWS}, j0 = (r % blocksN) * ${BLAS_COLS};
  const mb = Math.min(${BLAS_ROWS}, m - i0), nb = Math.min(${BLAS_COLS}, n - j0);
  const at = table / 8 + 3 * t;
  const pa = heap[at] + i0 * (transA ? bytes : lda * bytes);
  const pb = heap[at + 1] + j0 * (transB ? ldb * bytes : bytes);
  const pc = heap[at + 2] + (i0 * n + j0) * bytes;
  const p = (address) => Deno.UnsafePointer.create(base + BigInt(address));
  const gemm = bytes === 4 ? symbols.cblas_sgemm : symbols.cblas_dgemm;
  gemm(101, transA ? 112 : 111, transB ? 112 : 111, mb, nb, k, 1, p(pa), lda, p(pb), ldb, 0, p(pc), n);
}`;

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The paths tried for OpenBLAS, in order (empty when `PATCHWORK_BLAS=off`).
 *
 * @example
 * ```ts
 * import { blasCandidates } from "./blas.ts";
 * blasCandidates()[0]; // "libopenblas.so.0" unless PATCHWORK_BLAS is set
 * ```
 */
export function blasCandidates(): string[] {
  const explicit = env("PATCHWORK_BLAS");
  if (explicit === "off") return [];
  const join = (dir: string, file: string) => (dir.endsWith("/") ? dir + file : `${dir}/${file}`);
  if (explicit !== undefined) {
    try {
      if (Deno.statSync(explicit).isDirectory) return SONAMES.map((s) => join(explicit, s));
    } catch {
      // not a directory: a file path (or a soname), tried as given
    }
    return [explicit];
  }
  return [...SONAMES, ...DIRS.flatMap((d) => SONAMES.map((s) => join(d, s)))];
}

let found: { path: string; lib: Deno.DynamicLibrary<typeof BLAS_SYMBOLS> } | null | undefined;

/**
 * OpenBLAS opened on this thread (single-threaded), and where from; null without one or without
 * FFI permission. Looked for once.
 *
 * @example
 * ```ts
 * import { openBlas } from "./blas.ts";
 * openBlas()?.path; // e.g. "libopenblas.so.0"
 * ```
 */
export function openBlas(): { path: string; lib: Deno.DynamicLibrary<typeof BLAS_SYMBOLS> } | null {
  if (found !== undefined) return found;
  found = null;
  if (typeof Deno === "undefined" || !ffiAllowed()) return found;
  for (const path of blasCandidates()) {
    try {
      const lib = Deno.dlopen(path, BLAS_SYMBOLS);
      lib.symbols.openblas_set_num_threads(1);
      found = { path, lib };
      break;
    } catch {
      // not here: try the next place
    }
  }
  return found;
}

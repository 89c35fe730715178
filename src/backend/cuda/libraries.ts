/**
 * Finding and opening the CUDA shared libraries (driver, NVRTC, cuBLAS, cuFFT, cuSOLVER, and NCCL for
 * `src/dist`).
 *
 * Search order for each library:
 * 1. its own environment variable (`PATCHWORK_LIBCUDA`, `PATCHWORK_NVRTC`, `PATCHWORK_CUBLAS`,
 *    `PATCHWORK_CUFFT`, `PATCHWORK_CUSOLVER`, `PATCHWORK_NCCL`): a file path (or a directory holding one of the sonames). When set, it is
 *    the only place tried, so a wrong value fails loudly instead of silently picking another copy;
 * 2. `PATCHWORK_CUDA_LIB_DIR`, a directory tried before the rest;
 * 3. the dynamic loader's own search path (the plain soname);
 * 4. `$CUDA_PATH` and `$CUDA_HOME` (`lib64`, `targets/x86_64-linux/lib`), `/usr/local/cuda/lib64`,
 *    `/usr/local/cuda/targets/x86_64-linux/lib`, `/usr/lib/x86_64-linux-gnu`.
 *
 * Several sonames are tried in each place (newest first). Nothing is opened at import time.
 *
 * @module
 */

import { DeviceError } from "../../tensor/errors.ts";

/**
 * The libraries the CUDA backend uses.
 *
 * @example
 * ```ts
 * import type { CudaLibraryName } from "./libraries.ts";
 * const lib: CudaLibraryName = "cufft";
 * ```
 */
export type CudaLibraryName = "cuda" | "nvrtc" | "cublas" | "cufft" | "cusolver" | "nccl";

/**
 * How each library is found: its environment variable and sonames (newest first).
 *
 * @example
 * ```ts
 * import { LIBRARY_SPECS } from "./libraries.ts";
 * LIBRARY_SPECS.cufft.env; // "PATCHWORK_CUFFT"
 * ```
 */
export const LIBRARY_SPECS: Readonly<Record<CudaLibraryName, { env: string; sonames: readonly string[] }>> = {
  cuda: { env: "PATCHWORK_LIBCUDA", sonames: ["libcuda.so.1", "libcuda.so"] },
  nvrtc: { env: "PATCHWORK_NVRTC", sonames: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"] },
  cublas: { env: "PATCHWORK_CUBLAS", sonames: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"] },
  cufft: { env: "PATCHWORK_CUFFT", sonames: ["libcufft.so.12", "libcufft.so.11", "libcufft.so"] },
  cusolver: { env: "PATCHWORK_CUSOLVER", sonames: ["libcusolver.so.12", "libcusolver.so.11", "libcusolver.so"] },
  nccl: { env: "PATCHWORK_NCCL", sonames: ["libnccl.so.2", "libnccl.so"] },
};

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === undefined || v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

function join(dir: string, file: string): string {
  return dir.endsWith("/") ? dir + file : `${dir}/${file}`;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * The ordered list of paths (or bare sonames) tried for `name`.
 *
 * @example
 * ```ts
 * import { candidatePaths } from "./libraries.ts";
 * candidatePaths("cublas")[0]; // e.g. "libcublas.so.13"
 * ```
 */
export function candidatePaths(name: CudaLibraryName): string[] {
  const spec = LIBRARY_SPECS[name];
  const explicit = env(spec.env);
  if (explicit !== undefined) {
    return isDirectory(explicit) ? spec.sonames.map((s) => join(explicit, s)) : [explicit];
  }
  const dirs: string[] = [];
  const libDir = env("PATCHWORK_CUDA_LIB_DIR");
  const out: string[] = [];
  if (libDir !== undefined) { for (const s of spec.sonames) out.push(join(libDir, s)); }
  for (const s of spec.sonames) out.push(s);
  for (const root of [env("CUDA_PATH"), env("CUDA_HOME")]) {
    if (root !== undefined) dirs.push(join(root, "lib64"), join(root, "targets/x86_64-linux/lib"));
  }
  dirs.push("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu");
  for (const d of dirs) for (const s of spec.sonames) out.push(join(d, s));
  return [...new Set(out)];
}

/**
 * An opened library and where it came from.
 *
 * @example
 * ```ts
 * import type { OpenedLibrary } from "./libraries.ts";
 * // const { lib, path }: OpenedLibrary<typeof SYMBOLS> = openLibrary("cuda", SYMBOLS);
 * ```
 */
export interface OpenedLibrary<S extends Deno.ForeignLibraryInterface> {
  /** The dlopen handle. */
  readonly lib: Deno.DynamicLibrary<S>;
  /** The path (or soname) that opened. */
  readonly path: string;
}

/**
 * Whether this process may use FFI (`--allow-ffi`).
 *
 * @example
 * ```ts
 * import { ffiAllowed } from "./libraries.ts";
 * if (!ffiAllowed()) console.log("run with --allow-ffi");
 * ```
 */
export function ffiAllowed(): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Opens `name` with the given symbol table, trying every candidate path in order. Throws a
 * DeviceError listing every path tried (and why each failed) when none opens.
 *
 * @example
 * ```ts
 * import { openLibrary } from "./libraries.ts";
 * // const { lib, path } = openLibrary("cuda", { cuInit: { parameters: ["u32"], result: "i32" } } as const);
 * ```
 */
export function openLibrary<const S extends Deno.ForeignLibraryInterface>(
  name: CudaLibraryName,
  symbols: S,
): OpenedLibrary<S> {
  if (!ffiAllowed()) {
    throw new DeviceError("cuda", `loading ${name} needs FFI permission: run deno with --allow-ffi (or -A)`);
  }
  const tried: string[] = [];
  for (const path of candidatePaths(name)) {
    try {
      const lib = Deno.dlopen(path, symbols);
      return { lib, path };
    } catch (e) {
      const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
      tried.push(`  ${path}: ${msg}`);
    }
  }
  const spec = LIBRARY_SPECS[name];
  throw new DeviceError(
    "cuda",
    `could not load ${name} (${spec.sonames.join(", ")}); set ${spec.env} to its path or ` +
      `PATCHWORK_CUDA_LIB_DIR to its directory. Tried:\n${tried.join("\n")}`,
  );
}

/**
 * Reads a NUL-terminated C string at `ptr` (empty for a null pointer).
 *
 * @example
 * ```ts
 * import { cString } from "./libraries.ts";
 * cString(null); // ""
 * ```
 */
export function cString(ptr: Deno.PointerValue): string {
  return ptr === null ? "" : new Deno.UnsafePointerView(ptr).getCString();
}

const encoder = new TextEncoder();

/**
 * Encodes a string as a NUL-terminated byte buffer for C.
 *
 * @example
 * ```ts
 * import { cstr } from "./libraries.ts";
 * cstr("ab").length; // 3
 * ```
 */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = encoder.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/**
 * The address held in an 8-byte out-parameter buffer, as a pointer object (null for 0).
 *
 * @example
 * ```ts
 * import { pointerFrom } from "./libraries.ts";
 * pointerFrom(new BigUint64Array(1)); // null
 * ```
 */
export function pointerFrom(out: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(out[0]);
}

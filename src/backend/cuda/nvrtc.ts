/**
 * Bindings to NVRTC, CUDA's runtime compiler (`libnvrtc.so.13`/`.12`). {@link Nvrtc.compile}
 * turns CUDA C source into a CUBIN for a real architecture (`sm_XY`) or into PTX for a virtual
 * one (`compute_XY`); a failed compile throws a CudaError carrying the compiler log.
 *
 * @module
 */

import { CudaError } from "./errors.ts";
import { cstr, cString, openLibrary } from "./libraries.ts";

/**
 * Symbol table of the NVRTC functions used.
 *
 * @example
 * ```ts
 * import { NVRTC_SYMBOLS } from "./nvrtc.ts";
 * NVRTC_SYMBOLS.nvrtcGetCUBIN.optional; // true
 * ```
 */
export const NVRTC_SYMBOLS = {
  nvrtcVersion: { parameters: ["buffer", "buffer"], result: "i32" },
  nvrtcGetErrorString: { parameters: ["i32"], result: "pointer" },
  nvrtcCreateProgram: {
    parameters: ["buffer", "buffer", "buffer", "i32", "buffer", "buffer"],
    result: "i32",
  },
  nvrtcDestroyProgram: { parameters: ["buffer"], result: "i32" },
  nvrtcCompileProgram: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  nvrtcGetProgramLogSize: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetProgramLog: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetPTXSize: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetPTX: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetCUBINSize: { parameters: ["pointer", "buffer"], result: "i32", optional: true },
  nvrtcGetCUBIN: { parameters: ["pointer", "buffer"], result: "i32", optional: true },
  nvrtcGetNumSupportedArchs: { parameters: ["buffer"], result: "i32", optional: true },
  nvrtcGetSupportedArchs: { parameters: ["buffer"], result: "i32", optional: true },
} as const;

/**
 * NVRTC's typed symbols.
 *
 * @example
 * ```ts
 * import type { NvrtcSymbols } from "./nvrtc.ts";
 * // const sym: NvrtcSymbols = loadNvrtc().sym;
 * ```
 */
export type NvrtcSymbols = Deno.DynamicLibrary<typeof NVRTC_SYMBOLS>["symbols"];

const NVRTC_STATUS = [
  "NVRTC_SUCCESS",
  "NVRTC_ERROR_OUT_OF_MEMORY",
  "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
  "NVRTC_ERROR_INVALID_INPUT",
  "NVRTC_ERROR_INVALID_PROGRAM",
  "NVRTC_ERROR_INVALID_OPTION",
  "NVRTC_ERROR_COMPILATION",
  "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
  "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION",
  "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
  "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID",
  "NVRTC_ERROR_INTERNAL_ERROR",
];

/**
 * The output of a compile.
 *
 * @example
 * ```ts
 * import type { CompiledKernel } from "./nvrtc.ts";
 * const k: CompiledKernel = { image: new Uint8Array(0), kind: "ptx", log: "" };
 * ```
 */
export interface CompiledKernel {
  /** CUBIN bytes (kind "cubin") or NUL-terminated PTX text (kind "ptx"). */
  readonly image: Uint8Array<ArrayBuffer>;
  /** What `image` holds. */
  readonly kind: "cubin" | "ptx";
  /** The compiler log (warnings), possibly empty. */
  readonly log: string;
}

/**
 * The loaded NVRTC library.
 *
 * @example
 * ```ts
 * import { loadNvrtc } from "./nvrtc.ts";
 * // const nvrtc = loadNvrtc(); nvrtc.version; // "13.0"
 * ```
 */
export class Nvrtc {
  /** Raw symbols. */
  readonly sym: NvrtcSymbols;
  /** Where the library was loaded from. */
  readonly path: string;
  /** "major.minor". */
  readonly version: string;

  /** Wraps an opened library. */
  constructor(sym: NvrtcSymbols, path: string) {
    this.sym = sym;
    this.path = path;
    const a = new Int32Array(1), b = new Int32Array(1);
    this.check("nvrtcVersion", sym.nvrtcVersion(a, b));
    this.version = `${a[0]}.${b[0]}`;
  }

  /** Throws a CudaError for a non-zero status of `call`. */
  check(call: string, status: number, log = ""): void {
    if (status === 0) return;
    const name = NVRTC_STATUS[status] ?? `NVRTC_ERROR_${status}`;
    const desc = cString(this.sym.nvrtcGetErrorString(status));
    throw new CudaError(call, status, name, log ? `${desc}\n${log}` : desc);
  }

  /** The architectures this NVRTC can build CUBINs for (e.g. [75, 80, 86, 89, 90, ...]). */
  supportedArchs(): number[] {
    const num = this.sym.nvrtcGetNumSupportedArchs, get = this.sym.nvrtcGetSupportedArchs;
    if (!num || !get) return [];
    const n = new Int32Array(1);
    this.check("nvrtcGetNumSupportedArchs", num(n));
    const out = new Int32Array(n[0]);
    this.check("nvrtcGetSupportedArchs", get(out));
    return [...out];
  }

  /**
   * Compiles `source` (named `name`, with `headers` as name → text) with `options`. With an
   * `--gpu-architecture=sm_XY` option and an NVRTC that has nvrtcGetCUBIN, returns a CUBIN;
   * otherwise PTX.
   */
  compile(source: string, name: string, headers: Record<string, string>, options: readonly string[]): CompiledKernel {
    const keep: Uint8Array[] = [];
    const ptrArray = (items: string[]): BigUint64Array | null => {
      if (items.length === 0) return null;
      const arr = new BigUint64Array(items.length);
      items.forEach((s, i) => {
        const b = cstr(s);
        keep.push(b);
        arr[i] = Deno.UnsafePointer.value(Deno.UnsafePointer.of(b));
      });
      return arr;
    };
    const headerNames = Object.keys(headers);
    const hSrc = ptrArray(headerNames.map((h) => headers[h]));
    const hNames = ptrArray(headerNames);
    const progOut = new BigUint64Array(1);
    this.check(
      "nvrtcCreateProgram",
      this.sym.nvrtcCreateProgram(progOut, cstr(source), cstr(name), headerNames.length, hSrc, hNames),
    );
    const prog = Deno.UnsafePointer.create(progOut[0]);
    try {
      const opts = ptrArray([...options]);
      const status = this.sym.nvrtcCompileProgram(prog, options.length, opts);
      const log = this.#log(prog);
      this.check(`nvrtcCompileProgram(${name})`, status, log);
      const wantCubin = options.some((o) => /--gpu-architecture=sm_|-arch=sm_/.test(o));
      const sizeOut = new BigUint64Array(1);
      if (wantCubin && this.sym.nvrtcGetCUBINSize && this.sym.nvrtcGetCUBIN) {
        this.check("nvrtcGetCUBINSize", this.sym.nvrtcGetCUBINSize(prog, sizeOut));
        const image = new Uint8Array(Number(sizeOut[0]));
        this.check("nvrtcGetCUBIN", this.sym.nvrtcGetCUBIN(prog, image));
        return { image, kind: "cubin", log };
      }
      this.check("nvrtcGetPTXSize", this.sym.nvrtcGetPTXSize(prog, sizeOut));
      const image = new Uint8Array(Number(sizeOut[0]));
      this.check("nvrtcGetPTX", this.sym.nvrtcGetPTX(prog, image));
      return { image, kind: "ptx", log };
    } finally {
      progOut[0] = Deno.UnsafePointer.value(prog);
      this.sym.nvrtcDestroyProgram(progOut);
      keep.length = 0;
    }
  }

  #log(prog: Deno.PointerValue): string {
    const sizeOut = new BigUint64Array(1);
    if (this.sym.nvrtcGetProgramLogSize(prog, sizeOut) !== 0) return "";
    const n = Number(sizeOut[0]);
    if (n <= 1) return "";
    const buf = new Uint8Array(n);
    if (this.sym.nvrtcGetProgramLog(prog, buf) !== 0) return "";
    return new TextDecoder().decode(buf.subarray(0, n - 1)).trim();
  }
}

let nvrtc: Nvrtc | undefined;

/**
 * Loads NVRTC once per process (throws a DeviceError listing the paths tried when missing).
 *
 * @example
 * ```ts
 * import { loadNvrtc } from "./nvrtc.ts";
 * // loadNvrtc().version;
 * ```
 */
export function loadNvrtc(): Nvrtc {
  if (!nvrtc) {
    const { lib, path } = openLibrary("nvrtc", NVRTC_SYMBOLS);
    nvrtc = new Nvrtc(lib.symbols, path);
  }
  return nvrtc;
}

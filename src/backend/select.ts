/**
 * Picks the backend once: `PATCHWORK_BACKEND` = `cpu`, `cuda` or `auto` (the default: CUDA when
 * its libraries and a device are found, else the CPU with one notice on stderr). Importing the
 * root `mod.ts` does this; programs that import sub-modules call {@link initBackend} themselves.
 *
 * @module
 */

import { type Backend, DeviceError, setDefaultBackend, setDefaultBackendFactory } from "../tensor/mod.ts";
import { CpuBackend } from "./cpu/mod.ts";

/** The backends a user can ask for. */
export type BackendChoice = "auto" | "cpu" | "cuda";

let cpu: CpuBackend | undefined;
let cuda: Backend | undefined;

/**
 * The CPU backend (one shared instance).
 *
 * @example
 * ```ts
 * import { cpuBackend } from "./select.ts";
 * cpuBackend().name; // "cpu"
 * ```
 */
export function cpuBackend(): Backend {
  cpu ??= new CpuBackend();
  return cpu;
}

/**
 * The CUDA backend once {@link initBackend} has created it, else undefined.
 *
 * @example
 * ```ts
 * import { cudaBackend } from "./select.ts";
 * cudaBackend()?.name; // "cuda" on a GPU machine
 * ```
 */
export function cudaBackend(): Backend | undefined {
  return cuda;
}

/**
 * The backend named by `PATCHWORK_BACKEND` (default `auto`).
 *
 * @example
 * ```ts
 * import { backendChoice } from "./select.ts";
 * backendChoice(); // "auto"
 * ```
 */
export function backendChoice(): BackendChoice {
  let value: string | undefined;
  try {
    value = Deno.env.get("PATCHWORK_BACKEND");
  } catch {
    value = undefined; // no env permission: use the default
  }
  const choice = (value || "auto").toLowerCase();
  if (choice !== "auto" && choice !== "cpu" && choice !== "cuda") {
    throw new DeviceError("backend", `PATCHWORK_BACKEND must be auto, cpu or cuda, got ${JSON.stringify(value)}`);
  }
  return choice;
}

/**
 * Creates the backend for `choice` (default: `PATCHWORK_BACKEND`) and makes it the default. With
 * `auto`, a missing CUDA library, device or FFI permission falls back to the CPU with one notice;
 * with `cuda` it is an error that says what was missing.
 *
 * @example
 * ```ts
 * import { initBackend } from "./select.ts";
 * const backend = await initBackend("cpu");
 * backend.name; // "cpu"
 * ```
 */
export async function initBackend(choice: BackendChoice = backendChoice()): Promise<Backend> {
  if (choice === "cpu") return useBackend(cpuBackend());
  if (cuda) return useBackend(cuda);
  try {
    const { createCudaBackend } = await import("./cuda/mod.ts");
    cuda = await createCudaBackend();
    return useBackend(cuda);
  } catch (e) {
    if (choice === "cuda") throw e;
    const reason = (e as Error).message.split("\n")[0].replace(/\s*Tried:$/, "");
    console.error(`patchwork: CUDA is unavailable, using the CPU backend (${reason})`);
    return useBackend(cpuBackend());
  }
}

/**
 * Makes `backend` (or the one named) the default for new tensors.
 *
 * @example
 * ```ts
 * import { useBackend } from "./select.ts";
 * useBackend("cpu").name; // "cpu"
 * ```
 */
export function useBackend(backend: Backend | "cpu" | "cuda"): Backend {
  let b: Backend;
  if (backend === "cpu") b = cpuBackend();
  else if (backend === "cuda") {
    if (!cuda) {
      throw new DeviceError("backend", 'the CUDA backend is not initialised; `await initBackend("cuda")` first');
    }
    b = cuda;
  } else b = backend;
  setDefaultBackend(b);
  return b;
}

setDefaultBackendFactory(() => cpuBackend());

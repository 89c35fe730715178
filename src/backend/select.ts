/**
 * Picks the backend once: `PATCHWORK_BACKEND` = `cpu`, `cuda` or `auto` (the default: CUDA when
 * its libraries and a device are found, else the CPU with one notice on stderr).
 *
 * @module
 */

import { type Backend, DeviceError, setDefaultBackend, setDefaultBackendFactory } from "../tensor/mod.ts";
import { CpuBackend } from "./cpu/mod.ts";

/** The backends a user can ask for. */
export type BackendChoice = "auto" | "cpu" | "cuda";

let cpu: CpuBackend | undefined;

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

function readChoice(): BackendChoice {
  let value: string | undefined;
  try {
    value = Deno.env.get("PATCHWORK_BACKEND");
  } catch {
    value = undefined; // no env permission: use the default
  }
  const choice = (value ?? "auto").toLowerCase();
  if (choice !== "auto" && choice !== "cpu" && choice !== "cuda") {
    throw new DeviceError("backend", `PATCHWORK_BACKEND must be auto, cpu or cuda, got ${JSON.stringify(value)}`);
  }
  return choice;
}

type CudaFactory = () => Backend;
let cudaFactory: CudaFactory | undefined;

/**
 * Lets the CUDA module offer itself (it registers on import, so CPU-only programs never load it).
 *
 * @example
 * ```ts
 * import { registerCudaFactory } from "./select.ts";
 * // registerCudaFactory(() => cudaBackend);
 * ```
 */
export function registerCudaFactory(factory: CudaFactory): void {
  cudaFactory = factory;
}

/**
 * Chooses and installs the default backend now (`choice` defaults to `PATCHWORK_BACKEND`).
 *
 * @example
 * ```ts
 * import { useBackend } from "./select.ts";
 * useBackend("cpu").name; // "cpu"
 * ```
 */
export function useBackend(choice: BackendChoice = readChoice()): Backend {
  const backend = resolve(choice);
  setDefaultBackend(backend);
  return backend;
}

function resolve(choice: BackendChoice): Backend {
  if (choice === "cpu") return cpuBackend();
  if (!cudaFactory) {
    if (choice === "cuda") {
      throw new DeviceError(
        "backend",
        "PATCHWORK_BACKEND=cuda but the CUDA backend was not initialised; call `await initCuda()` from " +
          "src/backend/cuda/mod.ts first",
      );
    }
    return cpuBackend();
  }
  try {
    return cudaFactory();
  } catch (e) {
    if (choice === "cuda") throw e;
    console.error(`patchwork: CUDA unavailable, using the CPU backend (${(e as Error).message})`);
    return cpuBackend();
  }
}

setDefaultBackendFactory(() => resolve(readChoice()));

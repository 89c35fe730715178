/**
 * Where a process stands in a group: its rank, the world size, its rank on this machine, and the
 * master's address — from options or from the environment a launcher sets (the names torchrun
 * uses: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), and
 * the timeout of rendezvous and collectives (`PATCHWORK_DIST_TIMEOUT`, seconds). A process started
 * without them is a group of one.
 *
 * @module
 */

import { RendezvousError } from "./errors.ts";

/**
 * Options that override the environment.
 *
 * @example
 * ```ts
 * import type { DistOptions } from "./env.ts";
 * const options: DistOptions = { rank: 1, worldSize: 2, masterPort: 29511, timeout: 60 };
 * ```
 */
export interface DistOptions {
  /** This process's rank, 0 … worldSize − 1 (default `$RANK`, else 0). */
  rank?: number;
  /** Number of processes (default `$WORLD_SIZE`, else 1). */
  worldSize?: number;
  /** Rank on this machine: the GPU it uses (default `$LOCAL_RANK`, else the rank). */
  localRank?: number;
  /** Processes on this machine (default `$LOCAL_WORLD_SIZE`, else the world size). */
  localWorldSize?: number;
  /** Host of rank 0's rendezvous server (default `$MASTER_ADDR`, else 127.0.0.1). */
  masterAddr?: string;
  /** Its port (default `$MASTER_PORT`, else 29500). */
  masterPort?: number;
  /** Seconds a rendezvous or a collective may wait for the others (default `$PATCHWORK_DIST_TIMEOUT`, else 600). */
  timeout?: number;
}

/**
 * The resolved settings of one process.
 *
 * @example
 * ```ts
 * import { distSettings } from "./env.ts";
 * const s = distSettings({ rank: 0, worldSize: 1 });
 * s.masterAddr; // "127.0.0.1" unless MASTER_ADDR says otherwise
 * ```
 */
export interface DistSettings {
  /** This process's rank. */
  readonly rank: number;
  /** Number of processes. */
  readonly worldSize: number;
  /** Rank on this machine. */
  readonly localRank: number;
  /** Processes on this machine. */
  readonly localWorldSize: number;
  /** Host of the rendezvous server. */
  readonly masterAddr: string;
  /** Its port. */
  readonly masterPort: number;
  /** Seconds a rendezvous or collective may wait. */
  readonly timeout: number;
}

/** The default port of the rendezvous server (torchrun's). */
export const DEFAULT_MASTER_PORT = 29500;
/** The default timeout, seconds (PyTorch's for NCCL). */
export const DEFAULT_TIMEOUT = 600;

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  } catch {
    return undefined;
  }
}

function integer(name: string, given: number | undefined, envName: string, min: number, max = Infinity) {
  const raw = given ?? env(envName);
  if (raw === undefined) return undefined;
  const v = typeof raw === "number" ? raw : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    const from = given === undefined ? `$${envName} = ${JSON.stringify(raw)}` : `${name} = ${raw}`;
    throw new RendezvousError(
      "initProcessGroup",
      `${from} must be an integer from ${min}${max < Infinity ? ` to ${max}` : " up"}`,
    );
  }
  return v;
}

/**
 * Resolves the settings from `options`, then the environment, then the defaults, and checks them
 * (a rank outside the world, a port out of range or a non-positive timeout is a
 * `RendezvousError` naming the variable).
 *
 * @example
 * ```ts
 * import { distSettings } from "./env.ts";
 * distSettings({ rank: 1, worldSize: 2 }).localRank; // 1
 * ```
 */
export function distSettings(options: DistOptions = {}): DistSettings {
  const op = "initProcessGroup";
  const worldSize = integer("worldSize", options.worldSize, "WORLD_SIZE", 1) ?? 1;
  const rank = integer("rank", options.rank, "RANK", 0) ?? 0;
  if (rank >= worldSize) {
    throw new RendezvousError(
      op,
      `rank ${rank} is outside a world of ${worldSize} (ranks 0 … ${worldSize - 1}); check RANK and WORLD_SIZE`,
    );
  }
  const localWorldSize = integer("localWorldSize", options.localWorldSize, "LOCAL_WORLD_SIZE", 1) ?? worldSize;
  const localRank = integer("localRank", options.localRank, "LOCAL_RANK", 0) ?? rank % localWorldSize;
  if (localRank >= localWorldSize) {
    throw new RendezvousError(op, `local rank ${localRank} is outside ${localWorldSize} local processes`);
  }
  const masterPort = integer("masterPort", options.masterPort, "MASTER_PORT", 1, 65535) ?? DEFAULT_MASTER_PORT;
  const masterAddr = options.masterAddr ?? env("MASTER_ADDR") ?? "127.0.0.1";
  const rawTimeout = options.timeout ?? env("PATCHWORK_DIST_TIMEOUT");
  const timeout = rawTimeout === undefined ? DEFAULT_TIMEOUT : Number(rawTimeout);
  if (!(timeout > 0) || !Number.isFinite(timeout)) {
    throw new RendezvousError(
      op,
      `the timeout must be a positive number of seconds (option timeout or $PATCHWORK_DIST_TIMEOUT), got ${rawTimeout}`,
    );
  }
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, timeout };
}

/**
 * Whether this process was started by a launcher (`RANK` and `WORLD_SIZE` are set).
 *
 * @example
 * ```ts
 * import { launchedByLauncher } from "./env.ts";
 * if (!launchedByLauncher()) console.log("a single process");
 * ```
 */
export function launchedByLauncher(): boolean {
  return env("RANK") !== undefined && env("WORLD_SIZE") !== undefined;
}

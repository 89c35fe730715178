/**
 * Joining a process group: {@link initProcessGroup} reads where this process stands (options,
 * else the launcher's environment), meets the other ranks at the master's rendezvous, and returns
 * the group on the transport that fits the tensors: NCCL when the default backend is CUDA, the
 * TCP ring otherwise (or as asked).
 *
 * @module
 */

import { getDefaultBackend } from "../tensor/mod.ts";
import { CommThread } from "./comm_thread.ts";
import { type DistOptions, distSettings } from "./env.ts";
import type { ProcessGroup } from "./group.ts";
import { TcpGroup } from "./tcp_group.ts";

/**
 * Options of {@link initProcessGroup}.
 *
 * @example
 * ```ts
 * import type { InitOptions } from "./init.ts";
 * const options: InitOptions = { backend: "tcp", timeout: 60 };
 * ```
 */
export interface InitOptions extends DistOptions {
  /** `"nccl"`, `"tcp"` or `"auto"` (default: NCCL when the default backend is CUDA, else TCP). */
  backend?: "auto" | "nccl" | "tcp";
}

function defaultIsCuda(): boolean {
  try {
    return getDefaultBackend().name === "cuda";
  } catch {
    return false; // no backend chosen yet: tensors will be made on the CPU
  }
}

/**
 * Joins the group this process belongs to (see the module notes). Resolves once every rank has
 * joined; a master that cannot be reached, ranks that disagree on the world size, a repeated rank
 * or ranks missing at the timeout reject with a `RendezvousError` on every rank.
 *
 * @example
 * ```ts
 * import { initProcessGroup } from "./init.ts";
 * const group = await initProcessGroup(); // a group of one without a launcher
 * group.size; // 1 (or WORLD_SIZE under `deno task launch`)
 * await group.destroy();
 * ```
 */
export async function initProcessGroup(options: InitOptions = {}): Promise<ProcessGroup> {
  const settings = distSettings(options);
  const choice = options.backend ?? "auto";
  const nccl = choice === "nccl" || (choice === "auto" && defaultIsCuda());
  if (nccl) {
    const { NcclGroup } = await import("./nccl_group.ts");
    return await NcclGroup.create(settings, await CommThread.start(settings, false));
  }
  return new TcpGroup(settings, await CommThread.start(settings, true));
}

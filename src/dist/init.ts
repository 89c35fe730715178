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
import { type DistOptions, distSettings, launchedByLauncher } from "./env.ts";
import { launch, scriptCommand } from "./launch.ts";
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

/**
 * What a script with an `--nproc` flag does first: started by hand with `nproc` > 1, it runs itself
 * again under the launcher as `nproc` processes (with the same arguments) and exits with their
 * code; started by a launcher, it joins the group; otherwise it runs alone (null).
 *
 * @example
 * ```ts
 * import { launchOrJoin } from "./init.ts";
 * const group = await launchOrJoin(1); // null: one process, no group
 * const main = (group?.rank ?? 0) === 0; // who logs and writes
 * ```
 */
export async function launchOrJoin(
  nproc: number,
  args: readonly string[] = Deno.args,
  options: InitOptions = {},
): Promise<ProcessGroup | null> {
  if (launchedByLauncher()) return await initProcessGroup(options);
  if (nproc > 1) Deno.exit(await launch({ nproc, command: scriptCommand(Deno.mainModule, [...args]) }));
  return null;
}

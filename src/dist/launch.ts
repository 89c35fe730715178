/**
 * The launcher: starts one process per GPU (or per CPU rank) with torchrun's environment —
 * `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` — and
 * `PATCHWORK_CUDA_DEVICE` set to the local rank, so each process drives its own GPU. It prefixes
 * each process's output lines with its rank, forwards SIGINT and SIGTERM to every process, and
 * when one exits with an error (or dies by a signal) stops the others — SIGTERM, then SIGKILL
 * after a grace period — and exits with that process's code.
 *
 * ```sh
 * deno task launch --nproc 2 examples/navier_stokes_2d.ts --method moe
 * deno task launch --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --nproc 8 train.ts   # on each machine
 * deno task launch --nproc 2 -- deno test -A tests/x_test.ts                             # any command
 * ```
 *
 * @module
 */

import { ArgumentError } from "../tensor/errors.ts";
import { DEFAULT_MASTER_PORT } from "./env.ts";

/**
 * Options of {@link launch}.
 *
 * @example
 * ```ts
 * import { type LaunchOptions, scriptCommand } from "./launch.ts";
 * const options: LaunchOptions = { nproc: 2, command: scriptCommand("train.ts", ["--steps", "10"]) };
 * ```
 */
export interface LaunchOptions {
  /** Processes on this machine. */
  nproc: number;
  /** The command each process runs (program and arguments). */
  command: readonly string[];
  /** Machines (default 1). */
  nnodes?: number;
  /** This machine's index, 0 … nnodes − 1 (default 0). */
  nodeRank?: number;
  /** The master's host (default `$MASTER_ADDR`, else 127.0.0.1). */
  masterAddr?: string;
  /** The master's port (default `$MASTER_PORT`; on one machine a free port, else 29500). */
  masterPort?: number;
  /** Prefix output lines with `[rankN]: ` (default true when nproc > 1). */
  prefix?: boolean;
  /** Seconds between SIGTERM and SIGKILL when stopping processes (default 5). */
  grace?: number;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** Where the launcher's own messages go (default stderr). */
  log?: (line: string) => void;
}

/**
 * The command that runs a Deno script with every permission: `deno run -A script ...args`.
 *
 * @example
 * ```ts
 * import { scriptCommand } from "./launch.ts";
 * scriptCommand("train.ts", ["--steps", "5"]).slice(1); // ["run", "-A", "train.ts", "--steps", "5"]
 * ```
 */
export function scriptCommand(script: string, args: readonly string[] = []): string[] {
  return [Deno.execPath(), "run", "-A", script, ...args];
}

/**
 * A TCP port that is free on this machine now.
 *
 * @example
 * ```ts
 * import { freePort } from "./launch.ts";
 * freePort() > 0; // true
 * ```
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function positiveInteger(name: string, v: number, min = 1): number {
  if (!Number.isInteger(v) || v < min) {
    throw new ArgumentError("launch", `${name} must be an integer ≥ ${min}, got ${v}`);
  }
  return v;
}

async function pump(stream: ReadableStream<Uint8Array>, out: typeof Deno.stdout, prefix: string): Promise<void> {
  const encoder = new TextEncoder();
  let carry = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (carry + text).split("\n");
    carry = lines.pop()!;
    if (lines.length) await out.write(encoder.encode(lines.map((l) => prefix + l + "\n").join("")));
  }
  if (carry) await out.write(encoder.encode(prefix + carry + "\n"));
}

const SIGNALS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/**
 * Runs `nproc` processes of `command` (see the module notes) and resolves with the exit code: 0
 * when all succeed, else the first failure's code (128 + the signal number for a signal).
 *
 * @example
 * ```ts
 * import { launch, scriptCommand } from "./launch.ts";
 * // const code = await launch({ nproc: 2, command: scriptCommand("train.ts") });
 * ```
 */
export async function launch(options: LaunchOptions): Promise<number> {
  const nproc = positiveInteger("nproc", options.nproc);
  const nnodes = positiveInteger("nnodes", options.nnodes ?? 1);
  const nodeRank = positiveInteger("nodeRank", options.nodeRank ?? 0, 0);
  if (nodeRank >= nnodes) throw new ArgumentError("launch", `nodeRank ${nodeRank} is outside ${nnodes} machines`);
  if (!options.command.length) throw new ArgumentError("launch", "no command to run");
  const log = options.log ?? ((line: string) => console.error(line));
  const grace = options.grace ?? 5;
  const envPort = Deno.env.get("MASTER_PORT");
  const masterPort = options.masterPort ??
    (envPort ? Number(envPort) : nnodes === 1 ? freePort() : DEFAULT_MASTER_PORT);
  const masterAddr = options.masterAddr ?? Deno.env.get("MASTER_ADDR") ?? "127.0.0.1";
  const prefix = options.prefix ?? nproc > 1;
  const world = nnodes * nproc;
  const [program, ...args] = options.command;
  const children = Array.from({ length: nproc }, (_, local) => {
    const rank = nodeRank * nproc + local;
    const child = new Deno.Command(program, {
      args,
      env: {
        ...options.env,
        RANK: String(rank),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(nproc),
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
        PATCHWORK_CUDA_DEVICE: String(local),
      },
      stdin: "null",
      stdout: prefix ? "piped" : "inherit",
      stderr: prefix ? "piped" : "inherit",
    }).spawn();
    const pumps = prefix
      ? [pump(child.stdout, Deno.stdout, `[rank${rank}]: `), pump(child.stderr, Deno.stderr, `[rank${rank}]: `)]
      : [];
    return { rank, child, pumps, exited: false };
  });
  const kill = (signal: Deno.Signal) => {
    for (const c of children) {
      if (c.exited) continue;
      try {
        c.child.kill(signal);
      } catch {
        // it exited meanwhile
      }
    }
  };
  let stopping: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    kill("SIGTERM");
    stopping ??= setTimeout(() => kill("SIGKILL"), grace * 1000);
  };
  const forward = (signal: Deno.Signal) => () => {
    log(`launch: ${signal} received; passing it to every rank`);
    kill(signal);
    stopping ??= setTimeout(() => kill("SIGKILL"), grace * 1000);
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  let code = 0;
  try {
    await Promise.all(children.map(async (c) => {
      const status = await c.child.status;
      c.exited = true;
      const failed = status.signal ? 128 + (SIGNALS[status.signal] ?? 0) : status.code;
      if (failed !== 0 && code === 0) {
        code = failed;
        const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
        const others = children.filter((o) => !o.exited).map((o) => o.rank);
        log(
          `launch: rank ${c.rank} ${how}${
            others.length ? `; stopping rank${others.length > 1 ? "s" : ""} ${others.join(", ")}` : ""
          }`,
        );
        stop();
      }
    }));
    await Promise.all(children.flatMap((c) => c.pumps));
  } finally {
    clearTimeout(stopping);
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  }
  return code;
}

/** Parses the launcher's command line: its options, then the script (or `--` and a command) and its arguments. */
function parseArgs(argv: readonly string[]): LaunchOptions {
  const usage = "usage: deno task launch [--nproc N] [--nnodes N --node-rank I] [--master-addr HOST] " +
    "[--master-port PORT] [--no-prefix] [--grace SECONDS] script.ts [args…] | -- command [args…]";
  const opts: Partial<LaunchOptions> & { nproc: number } = { nproc: 1 };
  let i = 0;
  const value = (flag: string) => {
    const v = argv[++i];
    if (v === undefined) throw new ArgumentError("launch", `${flag} needs a value\n${usage}`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") return { ...opts, command: argv.slice(i + 1) };
    if (!a.startsWith("--")) return { ...opts, command: scriptCommand(a, argv.slice(i + 1)) };
    if (a === "--help" || a === "-h") {
      console.log(usage);
      Deno.exit(0);
    }
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const get = () => inline ?? value(flag);
    if (flag === "--nproc" || flag === "--nproc-per-node") opts.nproc = Number(get());
    else if (flag === "--nnodes") opts.nnodes = Number(get());
    else if (flag === "--node-rank") opts.nodeRank = Number(get());
    else if (flag === "--master-addr") opts.masterAddr = get();
    else if (flag === "--master-port") opts.masterPort = Number(get());
    else if (flag === "--grace") opts.grace = Number(get());
    else if (flag === "--no-prefix") opts.prefix = false;
    else throw new ArgumentError("launch", `unknown option ${a}\n${usage}`);
  }
  throw new ArgumentError("launch", `no script to run\n${usage}`);
}

if (import.meta.main) {
  try {
    Deno.exit(await launch(parseArgs(Deno.args)));
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
}

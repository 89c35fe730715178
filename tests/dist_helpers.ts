// Shared by the distributed tests: runs a rank script under the launcher (or ranks by hand, with
// the environment a launcher would set) in a fresh output folder, and reads what each rank wrote.

import assert from "node:assert/strict";
import { freePort } from "../src/dist/launch.ts";

const decoder = new TextDecoder();

/** What a run left: exit code, output, and each rank's JSON (by rank). */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ranks: Record<string, unknown>[];
  seconds: number;
}

/** The path of a script in tests/dist/. */
export function rankScript(name: string): string {
  return new URL(`./dist/${name}`, import.meta.url).pathname;
}

async function collect(dir: string, n: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (let r = 0; r < n; r++) {
    try {
      out.push(JSON.parse(await Deno.readTextFile(`${dir}/rank${r}.json`)));
    } catch {
      out.push({});
    }
  }
  return out;
}

/**
 * Runs `deno task launch --nproc <nproc> tests/dist/<script> ...args` on the CPU backend (or as
 * `env.PATCHWORK_BACKEND` says).
 */
export async function launchRanks(
  nproc: number,
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const dir = await Deno.makeTempDir({ prefix: "patchwork_dist_" });
  const t0 = performance.now();
  const launcher = new URL("../src/dist/launch.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", launcher, "--nproc", String(nproc), "--grace", "2", rankScript(script), ...args],
    env: { PATCHWORK_BACKEND: "cpu", DIST_OUT: dir, ...env },
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const ranks = await collect(dir, nproc);
  await Deno.remove(dir, { recursive: true });
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr), ranks, seconds };
}

/**
 * Starts ranks by hand (no launcher): `envs[r]` is rank r's own environment on top of RANK,
 * WORLD_SIZE (default the count) and a shared free MASTER_PORT. A rank still running `linger`
 * seconds after the first one exited (or 60 s after the start) is killed. Resolves with each
 * rank's result.
 */
export async function spawnRanks(
  script: string,
  envs: Record<string, string>[],
  linger = 10,
): Promise<{ code: number; output: string; seconds: number }[]> {
  const port = String(freePort());
  const children: Deno.ChildProcess[] = [];
  let lingering: ReturnType<typeof setTimeout> | undefined;
  const exited = new Set<Deno.ChildProcess>();
  const killAll = () => children.forEach((c) => exited.has(c) || c.kill("SIGKILL"));
  const limit = setTimeout(killAll, 60_000);
  const firstExit = () => lingering ??= setTimeout(killAll, linger * 1000);
  const results = await Promise.all(envs.map(async (env, rank) => {
    const t0 = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", rankScript(script)],
      env: {
        PATCHWORK_BACKEND: "cpu",
        RANK: String(rank),
        WORLD_SIZE: String(envs.length),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: port,
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.push(child);
    const { code, stdout, stderr } = await child.output();
    exited.add(child);
    firstExit();
    const seconds = (performance.now() - t0) / 1000;
    return { code, output: decoder.decode(stdout) + decoder.decode(stderr), seconds };
  }));
  clearTimeout(limit);
  clearTimeout(lingering);
  return results;
}

/** Asserts a run succeeded, showing its output when not. */
export function assertSucceeded(run: RunResult): void {
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
}

// The NCCL process group on 2 GPUs, one process each (started by the launcher under
// PATCHWORK_BACKEND=cuda; ignored without the CUDA backend and 2 devices): the collectives against
// closed forms, data-parallel gradients and Adam steps against one GPU on the whole batch, sharded
// experts against unsharded ones, and a killed or hung rank stopping the other with a PeerError
// (the communicator aborted) within the timeout. NCCL is found as PATCHWORK_NCCL says (a path or
// its directory) or on the loader's path.

import assert from "node:assert/strict";
import { loadNccl } from "../src/dist/nccl.ts";
import { assertClose } from "./helpers.ts";
import { cuda } from "./cuda_helpers.ts";
import { assertSucceeded, launchRanks, spawnRanks } from "./dist_helpers.ts";
import { checkCollectives } from "./dist/collectives_check.ts";

function deviceCount(): number {
  if (!cuda) return 0;
  const out = new Int32Array(1);
  return cuda.raw.driver.sym.cuDeviceGetCount(out) === 0 ? out[0] : 0;
}

const gpus = deviceCount();
const ignore = gpus < 2;
console.log(
  `dist_nccl_test.ts: ${ignore ? `${gpus} CUDA device(s); NCCL tests need 2 and are ignored` : `${gpus} GPUs`}`,
);
const CUDA = { PATCHWORK_BACKEND: "cuda", NCCL_NVLS_ENABLE: "0" };
const test = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name: `NCCL: ${name}`, ignore, sanitizeResources: false, sanitizeOps: false, fn });

test("the library loads and is 2.14 or later", () => {
  const nccl = loadNccl();
  assert.match(nccl.version, /^2\.\d+\.\d+$/);
  console.log(`NCCL ${nccl.version} from ${nccl.path}`);
});

test("collectives of 2 GPUs equal their closed forms", async () => {
  const run = await launchRanks(2, "collectives_rank.ts", [], CUDA);
  assertSucceeded(run);
  checkCollectives(run.ranks, 2, "nccl");
});

test("data parallel on 2 GPUs: gradients and 3 Adam steps equal one GPU on the whole batch", async () => {
  const [one, two] = [
    await launchRanks(1, "data_parallel_rank.ts", [], CUDA),
    await launchRanks(2, "data_parallel_rank.ts", [], CUDA),
  ];
  assertSucceeded(one);
  assertSucceeded(two);
  const whole = one.ranks[0];
  const tol = { rtol: 1e-12, atol: 1e-12 };
  for (const out of two.ranks) {
    assertClose((out.grads as number[][]).flat(), (whole.grads as number[][]).flat(), tol, "gradients");
    assertClose(out.losses as number[], whole.losses as number[], tol, "losses");
    assertClose((out.params as number[][]).flat(), (whole.params as number[][]).flat(), tol, "parameters");
  }
  assert.deepEqual(two.ranks[0].params, two.ranks[1].params);
});

test("experts sharded over 2 GPUs: the loss and gradients equal one GPU's unsharded step", async () => {
  const [one, two] = [
    await launchRanks(1, "experts_rank.ts", [], CUDA),
    await launchRanks(2, "experts_rank.ts", [], CUDA),
  ];
  assertSucceeded(one);
  assertSucceeded(two);
  const whole = one.ranks[0];
  for (const out of two.ranks) {
    assertClose(out.loss as number, whole.loss as number, { rtol: 1e-12 }, "loss");
    const tol = { rtol: 1e-12, scale: "max" as const };
    assertClose((out.grads as number[][]).flat(), (whole.grads as number[][]).flat(), tol, "gradients");
  }
});

const TIMEOUT = 20; // seconds: NCCL's own set-up must fit in it too

test("a rank killed or hung in a collective stops the other with a PeerError, the communicator aborted", async () => {
  for (const fault of ["kill", "hang"]) {
    const env = { ...CUDA, FAULT: fault, PATCHWORK_DIST_TIMEOUT: String(TIMEOUT), LOCAL_WORLD_SIZE: "2" };
    const [r0] = await spawnRanks("fault_rank.ts", [{ ...env, PATCHWORK_CUDA_DEVICE: "0" }, {
      ...env,
      PATCHWORK_CUDA_DEVICE: "1",
    }], 2);
    assert.equal(r0.code, 1, r0.output);
    const line = r0.output.split("\n").find((l) => l.startsWith("RESULT "))!;
    const o = JSON.parse(line.slice(7));
    assert.equal(o.name, "PeerError", r0.output);
    if (fault === "kill") assert(o.ms < TIMEOUT * 1000, `${fault}: ${o.ms} ms`);
    else assert(o.ms >= TIMEOUT * 900 && o.ms < TIMEOUT * 1000 + 5000, `${fault}: ${o.ms} ms`);
  }
});

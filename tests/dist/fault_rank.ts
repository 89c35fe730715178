// One rank of tests/dist_faults_test.ts. $FAULT says what rank 1 does after a first all-reduce:
// "kill" (SIGKILL itself), "hang" (block forever), "exit" (exit with code 3, while rank 0 blocks
// outside any collective), "size" (reduce a longer tensor), "order" (broadcast instead); otherwise
// it behaves. Any error is printed as a line `RESULT {"name", "reason", "peer", "message", "ms"}`
// and the rank exits with code 1.

import { initBackend } from "../../src/backend/select.ts";
import { initProcessGroup, PeerError } from "../../src/dist/mod.ts";
import { tensor } from "../../src/tensor/mod.ts";

await initBackend(); // PATCHWORK_BACKEND: cpu by default in the tests, cuda for NCCL
const fault = Deno.env.get("FAULT") ?? "";
let t0 = performance.now();
try {
  const group = await initProcessGroup();
  const x = tensor([1, 2, 3], { dtype: "float64" });
  group.allReduce(x);
  const faulty = group.rank === 1;
  if (faulty && fault === "kill") Deno.kill(Deno.pid, "SIGKILL");
  if (faulty && fault === "hang") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  if (faulty && fault === "exit") Deno.exit(3);
  // The launcher test: rank 0 waits outside any collective, so only the launcher can end it.
  if (fault === "exit") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  t0 = performance.now();
  if (faulty && fault === "size") group.allReduce(tensor([1, 2, 3, 4], { dtype: "float64" }));
  else if (faulty && fault === "order") group.broadcast(x);
  else group.allReduce(x);
  await group.destroy();
  console.log("RESULT", JSON.stringify({ name: "ok", value: Array.from(x.toTypedArray()) }));
} catch (e) {
  const err = e as Error;
  const peer = e instanceof PeerError ? { peer: e.peer, reason: e.reason } : {};
  console.log("RESULT", JSON.stringify({ name: err.name, message: err.message, ms: performance.now() - t0, ...peer }));
  Deno.exit(1);
}

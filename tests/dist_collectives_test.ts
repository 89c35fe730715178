// The TCP process group's collectives across 3 processes on loopback (started by the launcher),
// against closed forms of the ranks' inputs: every reduction and dtype (bfloat16 reduces in
// float32 and rounds once), uneven chunk sizes, a strided view, collectives in flight together,
// broadcast from the last rank, all-gather, reduce-scatter and host numbers.

import { initBackend } from "../src/backend/select.ts";
import { assertSucceeded, launchRanks } from "./dist_helpers.ts";
import { checkCollectives } from "./dist/collectives_check.ts";

await initBackend("cpu");

Deno.test("TCP group: collectives of 3 ranks equal their closed forms", async () => {
  const run = await launchRanks(3, "collectives_rank.ts");
  assertSucceeded(run);
  checkCollectives(run.ranks, 3, "tcp");
});

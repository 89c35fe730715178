/**
 * All-reduce bandwidth of the process group, as nccl-tests' `all_reduce_perf` reports it: for each
 * size, `iters` in-place sums queued back to back and waited for together, the mean time per
 * all-reduce, the algorithm bandwidth (bytes / time) and the bus bandwidth (algorithm bandwidth ×
 * 2(W − 1)/W, what each link carries: comparable across world sizes and with nccl-tests). On CUDA
 * tensors the group is NCCL's; on the CPU the TCP ring's. Rank 0 prints a table and, with `--json
 * FILE`, appends one JSON record per size (bench/dist_allreduce_torch.py writes the same records
 * for PyTorch's all-reduce).
 *
 *   deno task launch --nproc 2 bench/dist_allreduce.ts                                   # CPU, TCP
 *   PATCHWORK_BACKEND=cuda deno task launch --nproc 2 bench/dist_allreduce.ts --max 1073741824
 *
 * @module
 */

import { dist, type DType, full, train } from "../mod.ts";

const flags = train.parseFlags(
  {
    min: { type: "integer", default: 8, min: 4, help: "smallest size, bytes" },
    max: { type: "integer", default: 64 * 2 ** 20, min: 4, help: "largest size, bytes (sizes double)" },
    dtype: { type: "choice", choices: ["float32", "float64", "bfloat16"], default: "float32", help: "element type" },
    iters: { type: "integer", default: 20, min: 1, help: "timed all-reduces per size" },
    warmup: { type: "integer", default: 5, min: 0, help: "untimed all-reduces per size first" },
    json: { type: "string", help: "append rank 0's records to this JSON-lines file" },
  },
  Deno.args,
  { usage: "deno task launch --nproc N bench/dist_allreduce.ts [flags]" },
);

const group = await dist.initProcessGroup();
const dtype = flags.dtype as DType;
const item = dtype === "float64" ? 8 : dtype === "float32" ? 4 : 2;
const w = group.size;
const say = group.rank === 0 ? console.log : () => {};
say(`all-reduce (sum, ${dtype}) on ${w} ranks, ${group.backend}: ${flags.iters} per size after ${flags.warmup}`);
say("| bytes | elements | time (µs) | algbw (GB/s) | busbw (GB/s) |");
say("| ---: | ---: | ---: | ---: | ---: |");
const records: string[] = [];
for (let bytes = flags.min; bytes <= flags.max; bytes *= 2) {
  const n = Math.max(1, Math.floor(bytes / item));
  const x = full([n], 1, { dtype });
  const round = (k: number) => {
    const works = Array.from({ length: k }, () => group.allReduceAsync(x));
    works.forEach((work) => work.wait());
  };
  round(flags.warmup);
  group.barrier();
  const t0 = performance.now();
  round(flags.iters);
  const seconds = (performance.now() - t0) / 1000 / flags.iters;
  // The slowest rank sets the time, as nccl-tests reports it.
  const time = group.allReduceNumbers([seconds], "max")[0];
  const algbw = (n * item) / time / 1e9;
  const busbw = algbw * (2 * (w - 1)) / w;
  say(`| ${n * item} | ${n} | ${(time * 1e6).toFixed(1)} | ${algbw.toFixed(3)} | ${busbw.toFixed(3)} |`);
  records.push(JSON.stringify({
    impl: `patchwork-${group.backend}`,
    ranks: w,
    dtype,
    bytes: n * item,
    seconds: time,
    algbw,
    busbw,
  }));
  x.dispose();
}
if (group.rank === 0 && flags.json) {
  await Deno.writeTextFile(flags.json, records.join("\n") + "\n", { append: true });
}
await group.destroy();

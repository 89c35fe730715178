/**
 * Summarises bench/gpu_dist.sh's records: all-reduce bus bandwidth of patchwork against PyTorch
 * (and nccl-tests, when its records are there) size by size, and the multi-process scaling of each
 * task (throughput on N processes over one). Prints markdown.
 *
 *   deno run -A bench/dist_summary.ts out/gpu_dist/allreduce.jsonl out/gpu_dist/scaling.jsonl
 *
 * @module
 */

interface Bandwidth {
  impl: string;
  ranks: number;
  bytes: number;
  seconds: number;
  busbw: number;
}

interface Scaling {
  task: string;
  nproc: number;
  parallel: string;
  secondsPerStep: number;
  itemsPerSecond: number;
  items: string;
}

async function records<T>(path: string | undefined): Promise<T[]> {
  if (!path) return [];
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

const [bandwidthFile, scalingFile] = Deno.args;
const bw = await records<Bandwidth>(bandwidthFile);
if (bw.length) {
  const impls = [...new Set(bw.map((r) => r.impl))];
  const sizes = [...new Set(bw.map((r) => r.bytes))].sort((a, b) => a - b);
  const mine = impls.find((i) => i.startsWith("patchwork"));
  const other = impls.find((i) => !i.startsWith("patchwork"));
  console.log(`All-reduce bus bandwidth (GB/s) on ${bw[0].ranks} ranks\n`);
  console.log(`| bytes | ${impls.join(" | ")} |${mine && other ? ` ${mine} / ${other} |` : ""}`);
  console.log(`| ---: |${impls.map(() => " ---: |").join("")}${mine && other ? " ---: |" : ""}`);
  for (const bytes of sizes) {
    const at = (impl?: string) => bw.find((r) => r.impl === impl && r.bytes === bytes)?.busbw;
    const cells = impls.map((i) => at(i)?.toFixed(2) ?? "");
    const a = at(mine), b = at(other);
    const ratio = mine && other ? ` ${a !== undefined && b ? (a / b).toFixed(2) : ""} |` : "";
    console.log(`| ${bytes} | ${cells.join(" | ")} |${ratio}`);
  }
}
const sc = await records<Scaling>(scalingFile);
if (sc.length) {
  console.log("\nScaling (throughput on N processes over one)\n");
  console.log("| task | split | N | s/step | throughput | × one process |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const r of sc) {
    const one = sc.find((o) => o.task === r.task && o.nproc === 1);
    const ratio = one ? (r.itemsPerSecond / one.itemsPerSecond).toFixed(2) : "";
    console.log(
      `| ${r.task} | ${r.parallel} | ${r.nproc} | ${r.secondsPerStep.toFixed(3)} | ` +
        `${r.itemsPerSecond.toFixed(1)} ${r.items}/s | ${ratio} |`,
    );
  }
}

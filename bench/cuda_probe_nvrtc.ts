// Probes NVRTC on this machine: version, and the time to compile one elementwise part with and
// without `--split-compile=0` (parallel optimisation inside NVRTC, when supported).
//
//   deno run -A bench/cuda_probe_nvrtc.ts

import { loadKernelSources } from "../src/backend/cuda/compiler.ts";
import { loadNvrtc } from "../src/backend/cuda/nvrtc.ts";

const nv = loadNvrtc();
console.log(`nvrtc ${nv.version} at ${nv.path}; archs ${nv.supportedArchs().join(",")}`);
const src = await loadKernelSources();
const base = ["--gpu-architecture=sm_90", "--std=c++17", "-default-device", "-DPW_PART=0"];
for (const extra of [[], ["--split-compile=0"]]) {
  const t0 = performance.now();
  try {
    const out = nv.compile(src.files.elementwise, "elementwise.cu", src.headers, [...base, ...extra]);
    console.log(
      `| ${extra.join(" ") || "(default)"} | ${(performance.now() - t0).toFixed(0)} ms | ${out.image.length} B |`,
    );
  } catch (e) {
    console.log(`| ${extra.join(" ")} | failed: ${(e as Error).message.split("\n")[0]} |`);
  }
}

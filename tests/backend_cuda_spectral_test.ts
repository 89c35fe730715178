// The CUDA kernels of the spectral mixing (kernels/spectral.cu) against the CPU backend's loops:
// the same bits in float64 and float32 (both compute in float64 with separately rounded
// operations in one order), one launch each, on every geometry of the Fourier layer. (That
// kernels/spectral.cu compiles to exactly the kernels asked for is held by the kernel-name test.)

import assert from "node:assert/strict";
import { spectralSlots } from "../src/tensor/spectral_defs.ts";
import type { Backend } from "../src/tensor/backend.ts";
import type { DType } from "../src/tensor/dtype.ts";
import { announce, cpu, gpuTester, whole } from "./cuda_helpers.ts";
import { randomData } from "./helpers.ts";

announce("backend_cuda_spectral_test");
const gpu = gpuTester("cuda spectral");

const CASES = [
  { modes: [5], batch: 3, cin: 4, cout: 6 },
  { modes: [4, 3], batch: 5, cin: 3, cout: 2 },
  { modes: [3, 2, 4], batch: 6, cin: 5, cout: 4 },
  { modes: [8, 8, 8], batch: 2, cin: 16, cout: 16 },
];

for (const dtype of ["float64", "float32"] as DType[]) {
  gpu(`spectralMix and spectralWeightGrad equal the CPU backend bit for bit (${dtype})`, (g) => {
    for (const [k, c] of CASES.entries()) {
      const s = spectralSlots(c.modes);
      const wShape = [2 ** (c.modes.length - 1), c.cin, c.cout, ...c.modes, 2];
      const xShape = [c.batch, 2, s, c.cin], yShape = [c.batch, 2, s, c.cout];
      const n = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
      const xs = randomData(n(xShape), 100 + k),
        ws = randomData(n(wShape), 200 + k),
        ys = randomData(n(yShape), 300 + k);
      const on = (b: Backend) => {
        const x = whole(b.fromHost(xs, dtype), xShape), w = whole(b.fromHost(ws, dtype), wShape);
        const y = whole(b.fromHost(ys, dtype), yShape);
        const before = b.deviceCounts?.();
        const outs = [
          b.spectral!.spectralMix(x, w, c.modes, false, dtype),
          b.spectral!.spectralMix(y, w, c.modes, true, dtype),
          b.spectral!.spectralWeightGrad(x, y, c.modes, dtype),
        ];
        const after = b.deviceCounts?.();
        if (before && after) assert.equal(after.launches - before.launches, 3, "one launch per op");
        return outs.map((o) => b.toHost(whole(o, [o.size])));
      };
      const want = on(cpu), got = on(g);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(Array.from(got[i]), Array.from(want[i]), `modes ${c.modes}, op ${i}`);
      }
    }
  });
}

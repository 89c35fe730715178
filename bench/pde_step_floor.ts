/**
 * The floor of one Navier–Stokes PI-HC-MoE training step: the floating-point work and the fewest
 * bytes through device memory of each part (FNO forward, its recomputation and backward, the
 * basis features and their backward, the batched Levenberg–Marquardt solve, the stitched field and
 * loss, the experts' implicit backward, the Adam update), against an H200's float64 rates and
 * memory bandwidth. The larger of the two times is each part's floor; their sum is the step's.
 *
 * Every size is read from the objects the step is built from — the FNO's layers and weights
 * (pde.PdeNetwork), the truncated DFTs of its spectral layers, the hard constraint's features
 * (the residual's symbols), the rows of each expert's solve (its layout) — not typed in.
 *
 *   deno run -A bench/pde_step_floor.ts                        # the paper's sizes, batch 2 and 4
 *   deno run -A bench/pde_step_floor.ts --batch 4 --iterations 30 --precision mixed
 *
 * What "fewest bytes" assumes (a minimally fused step, which the table is the target of):
 * - each Fourier layer reads its input twice (truncated DFT, pointwise product) and writes its
 *   output and pre-activation once (bias, sum and GELU in the product's epilogue); the DFT passes
 *   after the first touch only the kept modes; the spectral weight is read once per mixing;
 * - a backward product reads its output gradient and input and writes the input gradient
 *   (GELU′ applied on the way in), and the weight gradient;
 * - each basis feature (a stencil derivative or a spectral field of the basis) is written once,
 *   gathered at the sampled points once; the solve reads the gathered features once per
 *   Levenberg–Marquardt iteration (J, JᵀJ and Jᵀr formed on the fly) — `--iterations` of them;
 * - the experts' backward writes each feature gradient once (scattered from the points) and the
 *   features' backward reads them once into the basis gradient.
 * Launch costs are not in the floor: `bench/pde_scaling.ts` prints primitives and host reads per
 * step (each primitive ≥ 1 launch of ≈ 4–5 µs host time, RESULTS.md's dispatch row).
 *
 * Rates (datasheet, H200 SXM): FP64 tensor core 67 TFLOP/s, FP64 vector 34, FP32 67, TF32 tensor
 * 494 (dense), HBM3e 4.8 TB/s (a device-to-device copy measured 4.3 TB/s here: `--bandwidth`).
 *
 * @module
 */

import { nn, pde, train } from "../mod.ts";

const flags = train.parseFlags(
  {
    nx: { type: "integer", default: 64, min: 4, help: "space points per axis" },
    nt: { type: "integer", default: 64, min: 4, help: "time points" },
    width: { type: "integer", default: 64, min: 1, help: "FNO width" },
    layers: { type: "integer", default: 8, min: 1, help: "FNO layers" },
    modes: { type: "integer", default: 8, min: 1, help: "FNO modes per axis" },
    fc: { type: "integer", default: 256, min: 1, help: "FNO projection width" },
    basis: { type: "integer", default: 64, min: 1, help: "basis functions N" },
    experts: { type: "string", default: "1x2x2", help: "expert split t×x×y" },
    points: { type: "integer", default: 20000, min: 1, help: "sampled points per expert" },
    batch: { type: "integers", default: [2, 4], min: 1, help: "batch sizes" },
    iterations: { type: "number", default: 50, min: 1, help: "Levenberg–Marquardt iterations per step" },
    recompute: { type: "choice", choices: ["yes", "no"], default: "yes", help: "activation checkpointing" },
    precision: {
      type: "choice",
      choices: ["full", "mixed"],
      default: "full",
      help: "mixed: the network in float32/TF32",
    },
    bandwidth: { type: "number", default: 4.8e12, min: 1, help: "memory bandwidth, bytes/s" },
    fp64Tensor: { type: "number", default: 67e12, min: 1, help: "FP64 tensor-core rate, FLOP/s" },
    fp64: { type: "number", default: 34e12, min: 1, help: "FP64 vector rate, FLOP/s" },
    fp32: { type: "number", default: 67e12, min: 1, help: "FP32 vector rate, FLOP/s" },
    tf32: { type: "number", default: 494e12, min: 1, help: "TF32 tensor-core rate (dense), FLOP/s" },
  },
  Deno.args,
  { usage: "deno run -A bench/pde_step_floor.ts [flags]" },
);

const mixed = flags.precision === "mixed";
const ns = new pde.NavierStokes2D({ preset: "pihcmoe" });
const grid = ns.grid({ nx: flags.nx, nt: flags.nt });
const parts = pde.parseExperts(flags.experts, 3);
// The network as the step builds it (float32 weights here: only their shapes are read).
const net = new pde.PdeNetwork(grid, flags.basis, {
  width: flags.width,
  layers: flags.layers,
  modes: flags.modes,
  fc: flags.fc,
  dtype: "float32",
});
const layer = new pde.HardConstraint({
  problem: ns,
  grid,
  basis: flags.basis,
  initialCondition: "mollifier",
  mollifierScale: 0.005,
  meanFree: true,
});
const moe = new pde.MixtureOfExperts({ constraint: layer, experts: parts, points: flags.points });
const layout = layer.layout(moe.samplePoints(0), moe.router.regions);

const fno = net.fno;
const G = grid.shape.reduce((a, b) => a * b, 1); // grid points
const W = fno.width, F = fno.fc, N = fno.outChannels, L = fno.layers;
const cIn = fno.inChannels + (fno.coordinates ? fno.dims : 0);
const K = moe.count, R = layout.rows;
const sn = mixed ? 4 : 8; // bytes per network element
const sd = 8; // the solve, the features and the loss: float64
const params = fno.parameters().reduce((s, p) => s + p.size, 0);
const spectralWeights = fno.spectral.at(0).weight.size; // one layer's, real numbers
const symbols = layer.symbols;
const derivatives = symbols.filter((s) => s.kind === "derivative").length;
const derived = new Set(symbols.filter((s) => s.field && s.field !== ns.fields[0]).map((s) => s.field!)).size;

/** One part of the step: matrix-class flops (tensor cores), other flops, bytes. */
interface Cost {
  gemm: number;
  other: number;
  bytes: number;
}
const cost = (gemm: number, other: number, bytes: number): Cost => ({ gemm, other, bytes });
const sum = (...cs: Cost[]): Cost => cs.reduce((a, c) => cost(a.gemm + c.gemm, a.other + c.other, a.bytes + c.bytes));
const times = (c: Cost, k: number): Cost => cost(c.gemm * k, c.other * k, c.bytes * k);

/** The truncated DFT passes of one spectral layer one way (the `"dft"` path of nn/spectral.ts). */
function dftPasses(B: number): Cost {
  const d = grid.shape.length;
  const modes = fno.modes;
  let rows = B * G * W; // real elements entering the first pass
  let c = cost(0, 0, 0);
  // last axis: n reals → 2m per line
  const nLast = grid.shape[d - 1];
  let out = (rows / nLast) * 2 * modes[d - 1];
  c = sum(c, cost(2 * out * nLast, 0, sn * (rows + out)));
  for (let a = d - 2; a >= 0; a--) {
    rows = out;
    out = (rows / (2 * grid.shape[a])) * 2 * 2 * modes[a];
    c = sum(c, cost(2 * out * 2 * grid.shape[a], 0, sn * (rows + out)));
  }
  return c;
}

function floorOf(B: number): [string, Cost][] {
  const P = B * G;
  const slots = 2 ** (fno.dims - 1) * fno.modes.reduce((a, b) => a * b, 1);
  const mix = cost(0, 8 * B * slots * W * W, sn * (spectralWeights + 2 * B * 2 * slots * W));
  const gemmFwd = (cin: number, cout: number, act: boolean) =>
    cost(2 * P * cin * cout, act ? 8 * P * cout : P * cout, sn * (P * cin + (act ? 2 : 1) * P * cout));
  const fourier = (act: boolean) =>
    sum(
      times(dftPasses(B), 2), // forward and inverse DFTs
      mix,
      // pointwise product; epilogue reads the spectral part, adds the bias, applies GELU; stores y and z
      sum(gemmFwd(W, W, act), cost(0, P * W, sn * P * W)),
    );
  const layers = sum(...Array.from({ length: L }, (_, i) => fourier(i < L - 1)));
  const head = sum(gemmFwd(W, F, true), gemmFwd(F, N, false));
  const forward = sum(gemmFwd(cIn, W, false), layers, head);
  const recompute = flags.recompute === "yes" ? sum(layers, head) : cost(0, 0, 0);
  // Backward: per product dX and dW (twice the flops), bytes: read dY, z (GELU′), X; write dX, dW.
  const gemmBwd = (cin: number, cout: number) =>
    cost(4 * P * cin * cout, 8 * P * cout, sn * (2 * P * cout + 2 * P * cin) + sn * cin * cout);
  const fourierBwd = sum(
    times(dftPasses(B), 2),
    times(mix, 2), // the adjoint mixing reads the weight, the weight gradient writes it
    gemmBwd(W, W),
    cost(0, P * W, sn * 2 * P * W), // the two input gradients summed
  );
  const backward = sum(gemmBwd(cIn, W), times(fourierBwd, L), gemmBwd(W, F), gemmBwd(F, N));
  const PN = P * N;
  const fft2 = (count: number) => cost(0, count * 2.5 * PN * Math.log2(flags.nx * flags.nx), 0);
  const features = sum(
    cost(0, 4 * PN, (mixed ? sn + sd : 0) * PN + sd * 3 * PN), // cast; mollifier and mean-free: read twice, write once
    sum(fft2(1 + derived), cost(0, 2 * derived * PN, sd * (2 + 2 * derived) * PN)), // spectral fields
    cost(0, 10 * derivatives * PN, sd * 2 * derivatives * PN), // stencil derivatives
    cost(0, 0, sd * 2 * symbols.length * K * B * R * N), // gathered at the points
  );
  const KB = K * B;
  const perIteration = cost(
    2 * KB * R * N * N + (KB * N ** 3) / 3,
    2 * (symbols.length + 2) * KB * R * N,
    sd * symbols.length * KB * R * N,
  );
  const solve = times(perIteration, flags.iterations);
  const stitch = sum(
    cost(2 * K * PN, 0, sd * (PN + K * P)), // every expert's field on the grid: read the basis once
    cost(0, 40 * K * P, sd * 20 * K * P), // u, its residual, the loss and ū (scalar fields)
    cost(2 * K * PN, 0, sd * (K * P + PN)), // ∂L/∂basis += Σ ū_k ⊗ w_k
  );
  const experts = sum(
    times(perIteration, 1), // J at w*, JᵀJ, the adjoint solve
    cost(0, 4 * symbols.length * KB * R * N, sd * symbols.length * (KB * R * N + PN)), // feature gradients, scattered
  );
  const featuresBwd = sum(
    cost(0, 10 * derivatives * PN, sd * 3 * derivatives * PN),
    sum(fft2(1 + derived), cost(0, 2 * derived * PN, sd * (2 + 2 * derived) * PN)),
    cost(0, 4 * PN, sd * 3 * PN + (mixed ? sn + sd : 0) * PN),
  );
  const adam = cost(0, 12 * params, sn * 7 * params);
  return [
    ["FNO forward", forward],
    ["FNO recompute", recompute],
    ["FNO backward", backward],
    ["basis features (FFT velocity, stencils, gather)", features],
    [`batched solve (${flags.iterations} LM iterations)`, solve],
    ["stitched field, loss, ∂L/∂basis", stitch],
    ["experts' implicit backward", experts],
    ["features' backward", featuresBwd],
    ["Adam", adam],
  ];
}

const netGemmRate = mixed ? flags.tf32 : flags.fp64Tensor;
const netOtherRate = mixed ? flags.fp32 : flags.fp64;
const ms = (x: number) => (1000 * x).toFixed(2);
console.log(
  `# Floor of a Navier–Stokes PI-HC-MoE step: grid ${grid.shape.join("×")}, FNO${fno.dims}d width ${W}, ` +
    `${L} layers, modes ${fno.modes.join("×")}, fc ${F}, N = ${N} (${(params / 1e6).toFixed(1)} M parameters), ` +
    `${parts.join("×")} experts × ${flags.points} points (${R} rows each), ${symbols.length} basis features ` +
    `(${derivatives} stencil derivatives, ${derived} spectral fields), ${
      mixed ? "network float32/TF32, solve float64" : "float64"
    }, recompute ${flags.recompute}`,
);
console.log(
  `# rates: ${(netGemmRate / 1e12).toFixed(0)} TFLOP/s (network matrix products), ${
    (flags.fp64Tensor / 1e12).toFixed(0)
  } (solve), ${(netOtherRate / 1e12).toFixed(0)} / ${(flags.fp64 / 1e12).toFixed(0)} (other), ${
    (flags.bandwidth / 1e12).toFixed(1)
  } TB/s\n`,
);
for (const B of flags.batch) {
  console.log(`## batch ${B}\n`);
  console.log("| part | GFLOP (matrix) | GFLOP (other) | GB | compute ms | memory ms | floor ms |");
  console.log("|---|---|---|---|---|---|---|");
  let total = cost(0, 0, 0);
  let floorSum = 0, computeSum = 0, memorySum = 0;
  for (const [name, c] of floorOf(B)) {
    const network = name.startsWith("FNO") || name === "Adam";
    const compute = c.gemm / (network ? netGemmRate : flags.fp64Tensor) +
      c.other / (network ? netOtherRate : flags.fp64);
    const memory = c.bytes / flags.bandwidth;
    const floor = Math.max(compute, memory);
    total = sum(total, c);
    floorSum += floor;
    computeSum += compute;
    memorySum += memory;
    console.log(
      `| ${name} | ${(c.gemm / 1e9).toFixed(1)} | ${(c.other / 1e9).toFixed(1)} | ${(c.bytes / 1e9).toFixed(2)} | ${
        ms(compute)
      } | ${ms(memory)} | ${ms(floor)} |`,
    );
  }
  console.log(
    `| **step** | ${(total.gemm / 1e9).toFixed(1)} | ${(total.other / 1e9).toFixed(1)} | ${
      (total.bytes / 1e9).toFixed(2)
    } | ${ms(computeSum)} | ${ms(memorySum)} | **${ms(floorSum)}** |\n`,
  );
}
console.log(
  `Spectral weights: ${(spectralWeights * L / 1e6).toFixed(1)} M of the ${(params / 1e6).toFixed(1)} M parameters ` +
    `(${nn.spectralWeightShape(W, W, fno.modes).join("×")} per layer).`,
);

/**
 * Batched Levenberg–Marquardt on the hard-constraint problem shape: B independent problems, N
 * unknowns, M residuals each, r(w) = Φw + 0.1(Φw)² − y with Φ `[B, M, N]` (float32 by default),
 * solved through the structured Jacobian path (`BasisResidual`, J = diag(1 + 0.2Φw)·Φ) and
 * differentiated with the implicit adjoint (gradients to Φ and y).
 *
 * The data are the same as in `bench/solve_lm_optimistix.py` (the JAX + Optimistix reference):
 * Φ and w_true come from a murmur3-finaliser hash of the element index, so both scripts build the
 * identical problem without sharing a random generator; y = Φ·w_true + 0.1(Φ·w_true)² (a zero
 * residual: the hard-constraint case), w0 = 0.
 *
 * Prints a markdown table: ms per solve, ms per solve + implicit VJP, LM iterations, and the
 * Φ-read floor — the time to stream Φ once per iteration (plus once for the VJP) at the bandwidth
 * this device reaches on a plain copy of Φ, the least any implementation that forms JᵀJ from Φ
 * each iteration can take.
 *
 *     deno run -A bench/solve_lm.ts                          # B = 4,16,64, N = 64, M = 20000
 *     deno run -A bench/solve_lm.ts --m 2000 --b 4,16        # smaller M for the CPU
 *     PATCHWORK_BACKEND=cuda deno run -A bench/solve_lm.ts   # on the GPU
 *
 * Flags: --b LIST, --n N, --m M, --dtype float32|float64, --reps R, --warmup W, --atol A,
 * --rtol R, --max-steps S, --autodiff-derivative (F′ by a reverse pass instead of the closed form),
 * --host-linalg (on a backend without native `linalg`, factorise the B small N × N systems on the
 * host: one synchronisation per factorisation / triangular solve; the table says so).
 *
 * @module
 */

import { getDefaultBackend, noGrad, type Tensor, tensor, tidy } from "../mod.ts";
import { BasisResidual, ImplicitAdjoint, leastSquares, LevenbergMarquardt } from "../src/solve/mod.ts";
import { installHostLinalg } from "../src/backend/host_linalg.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

const bs = flag("b", "4,16,64").split(",").map(Number);
const n = Number(flag("n", "64"));
const m = Number(flag("m", "20000"));
const dtype = flag("dtype", "float32") as "float32" | "float64";
const reps = Number(flag("reps", "3"));
const warmup = Number(flag("warmup", "1"));
const atol = Number(flag("atol", "1e-5"));
const rtol = Number(flag("rtol", "1e-5"));
const maxSteps = Number(flag("max-steps", "100"));
const autodiffDerivative = Deno.args.includes("--autodiff-derivative");

/** murmur3's 32-bit finaliser: a well-mixed uint32 from a uint32. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** `count` uniforms in [0, 1): element k is mix((k + seed·0x9E3779B9) mod 2³²) / 2³². */
function hashUniform(count: number, seed: number): Float64Array {
  const out = new Float64Array(count);
  const base = Math.imul(seed, 0x9e3779b9) >>> 0;
  for (let k = 0; k < count; k++) out[k] = mix((k + base) >>> 0) / 4294967296;
  return out;
}

function problem(b: number): { phi: Tensor; y: Tensor; wTrue: Tensor; cot: Tensor } {
  const scale = Math.sqrt(12 / n);
  const phiHost = hashUniform(b * m * n, 1).map((u) => (u - 0.5) * scale);
  const wHost = hashUniform(b * n, 2).map((u) => 2 * u - 1);
  const cHost = hashUniform(b * n, 3).map((u) => 2 * u - 1);
  const phi = tensor(dtype === "float32" ? Float32Array.from(phiHost) : phiHost, { shape: [b, m, n], dtype });
  const wTrue = tensor(dtype === "float32" ? Float32Array.from(wHost) : wHost, { shape: [b, n], dtype });
  const cot = tensor(dtype === "float32" ? Float32Array.from(cHost) : cHost, { shape: [b, n], dtype });
  const y = noGrad(() => {
    const u = phi.matmul(wTrue.unsqueeze(-1)).squeeze(-1);
    return u.add(u.square().mul(0.1));
  });
  return { phi, y, wTrue, cot };
}

type P = { phi: Tensor; y: Tensor };
const residual = new BasisResidual<P>({
  features: (p) => p.phi,
  pointwise: ([u], p) => u.add(u.square().mul(0.1)).sub(p.y),
  derivative: autodiffDerivative ? undefined : ([u]) => [u.mul(0.2).add(1)],
});
const solver = new LevenbergMarquardt({ atol, rtol, maxSteps });
const adjoint = new ImplicitAdjoint();
const backend = getDefaultBackend();
const hostLinalgUsed = Deno.args.includes("--host-linalg") && installHostLinalg(backend);
// With the host stand-in, time spent inside it (after draining the queue) is counted separately:
// it is the part a native batched factorisation replaces.
let linalgMs = 0;
if (hostLinalgUsed) {
  const l = backend.linalg as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of ["cholesky", "triangularSolve", "lu", "luSolve", "qr"]) {
    const f = l[name];
    l[name] = (...a: unknown[]) => {
      backend.synchronize();
      const t0 = performance.now();
      const out = f(...a);
      linalgMs += performance.now() - t0;
      return out;
    };
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeIt(fn: () => void): number {
  backend.synchronize();
  const t0 = performance.now();
  fn();
  backend.synchronize();
  return performance.now() - t0;
}

/** Median wall time of `reps` runs, and the median time inside the host linear algebra. */
function measure(fn: () => void): [number, number] {
  const wall: number[] = [];
  const inLinalg: number[] = [];
  for (let i = 0; i < reps; i++) {
    linalgMs = 0;
    wall.push(timeIt(fn));
    inLinalg.push(linalgMs);
  }
  return [median(wall), median(inLinalg)];
}

console.log(`# Batched Levenberg–Marquardt, r = Φw + 0.1(Φw)² − y (${dtype}), ${backend.description}`);
console.log(
  `N = ${n}, M = ${m}, atol = ${atol}, rtol = ${rtol}, F′ ${autodiffDerivative ? "by autodiff" : "closed form"}` +
    `, median of ${reps} after ${warmup} warm-up` +
    (hostLinalgUsed ? ", N × N factorisations on the host (no native linalg on this backend)" : "") + "\n",
);
console.log(
  "| B | iterations | ms / solve | ms / solve + VJP |" + (hostLinalgUsed ? " of which host linalg ms |" : "") +
    " Φ MB | copy GB/s | Φ-read floor ms (solve / +VJP) | × floor (solve / +VJP) | max abs(w − w_true) | status |",
);
console.log("|---|---|---|---|" + (hostLinalgUsed ? "---|" : "") + "---|---|---|---|---|---|");

for (const b of bs) {
  const { phi, y, wTrue, cot } = problem(b);
  const w0 = tensor(new Float32Array(b * n), { shape: [b, n], dtype });
  let iterations = 0;
  let status = "";
  let err = 0;
  const solveOnce = () =>
    tidy(() => {
      const sol = leastSquares(residual, w0, { phi, y }, { solver, adjoint });
      iterations = sol.iterations;
      const counts = new Map<string, number>();
      for (const s of sol.status) counts.set(s, (counts.get(s) ?? 0) + 1);
      status = [...counts].map(([k, v]) => `${v} ${k}`).join(", ");
      err = noGrad(() => sol.value.sub(wTrue).abs().max().item());
    });
  const solveVjp = () =>
    tidy(() => {
      const phiL = phi.detach().requireGrad();
      const yL = y.detach().requireGrad();
      const sol = leastSquares(residual, w0, { phi: phiL, y: yL }, { solver, adjoint });
      sol.value.mul(cot).sum().backward();
      phiL.grad!.narrow(0, 0, 1).narrow(1, 0, 1).narrow(2, 0, 1).item(); // waits for the backward
      yL.grad!.narrow(0, 0, 1).narrow(1, 0, 1).item();
    });
  for (let i = 0; i < warmup; i++) {
    solveOnce();
    solveVjp();
  }
  const [tSolve, lSolve] = measure(solveOnce);
  const [tVjp, lVjp] = measure(solveVjp);
  // Achievable bandwidth: a device copy of Φ reads and writes its bytes once each.
  const bytes = b * m * n * (dtype === "float32" ? 4 : 8);
  const tCopy = median(Array.from({ length: 3 }, () => timeIt(() => tidy(() => void phi.clone()))));
  const bw = (2 * bytes) / (tCopy / 1e3);
  const floorSolve = (iterations * bytes) / bw * 1e3;
  const floorVjp = ((iterations + 1) * bytes) / bw * 1e3;
  console.log(
    `| ${b} | ${iterations} | ${tSolve.toFixed(1)} | ${tVjp.toFixed(1)} |${
      hostLinalgUsed ? ` ${lSolve.toFixed(1)} / ${lVjp.toFixed(1)} |` : ""
    } ${(bytes / 1e6).toFixed(1)} | ${(bw / 1e9).toFixed(1)} | ${floorSolve.toFixed(2)} / ${floorVjp.toFixed(2)} | ${
      (tSolve / floorSolve).toFixed(1)
    } / ${(tVjp / floorVjp).toFixed(1)} | ${err.toExponential(1)} | ${status} |`,
  );
  phi.dispose();
  y.dispose();
  wTrue.dispose();
  cot.dispose();
  w0.dispose();
}

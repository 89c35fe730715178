/**
 * Where the time of one batched Levenberg–Marquardt solve goes: every backend primitive call
 * (and every `linalg` call) is bracketed by `synchronize()` and its wall time added to a table
 * keyed by the primitive, its op and its shapes. The synchronisations add per-call latency, so the
 * profiled total exceeds the plain one (printed first); the ranking is what matters. Same problem
 * as bench/solve_lm.ts (r = Φw + 0.1(Φw)² − y, float32, structured Jacobian, implicit VJP).
 *
 *     PATCHWORK_BACKEND=cuda deno run -A bench/solve_lm_profile.ts --b 64 --m 20000
 *
 * Flags: --b B, --n N, --m M, --top K (rows printed, default 20). On a backend without native
 * `linalg` the host stand-in is installed (and shows up as `linalg.*` rows).
 *
 * @module
 */

import { type Backend, getDefaultBackend, noGrad, type Tensor, tensor, tidy } from "../mod.ts";
import { BasisResidual, leastSquares, LevenbergMarquardt } from "../src/solve/mod.ts";
import { installHostLinalg } from "../src/backend/host_linalg.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

const b = Number(flag("b", "64"));
const n = Number(flag("n", "64"));
const m = Number(flag("m", "20000"));
const top = Number(flag("top", "20"));
const backend = getDefaultBackend();
const hostLinalg = installHostLinalg(backend);

const stats = new Map<string, { ms: number; count: number }>();
let profiling = false;

function describe(name: string, args: unknown[]): string {
  const shape = (v: unknown) => JSON.stringify((v as { shape?: number[] })?.shape ?? v);
  switch (name) {
    case "binary":
      return `binary ${args[0]} ${shape(args[3])}`;
    case "unary":
      return `unary ${args[0]} ${shape(args[1])}`;
    case "matmul":
      return `matmul ${shape(args[0])} × ${shape(args[1])}`;
    case "where":
      return `where ${shape(args[3])}`;
    case "reduce":
      return `reduce ${args[0]} ${shape(args[1])}`;
    case "copy":
      return `copy ${shape(args[0])}`;
    default:
      return name;
  }
}

function instrument(target: Record<string, unknown>, names: string[], prefix: string): void {
  for (const name of names) {
    const f = target[name];
    if (typeof f !== "function") continue;
    target[name] = (...args: unknown[]) => {
      if (!profiling) return f.apply(target, args);
      backend.synchronize();
      const t0 = performance.now();
      const out = f.apply(target, args);
      backend.synchronize();
      const key = prefix + describe(name, args);
      const s = stats.get(key) ?? { ms: 0, count: 0 };
      s.ms += performance.now() - t0;
      s.count++;
      stats.set(key, s);
      return out;
    };
  }
}

instrument(backend as unknown as Record<string, unknown>, [
  "binary",
  "unary",
  "where",
  "reduce",
  "matmul",
  "copy",
  "toHost",
  "fromHost",
  "full",
  "arange",
  "gather",
  "scatterAdd",
], "");
instrument(
  (backend as Backend).linalg as unknown as Record<string, unknown>,
  ["cholesky", "triangularSolve", "lu", "luSolve", "qr"],
  "linalg.",
);

function uniform(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  for (let k = 0; k < count; k++) {
    let x = (k + Math.imul(seed, 0x9e3779b9)) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b);
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35);
    x ^= x >>> 16;
    out[k] = (x >>> 0) / 4294967296;
  }
  return out;
}

const scale = Math.sqrt(12 / n);
const phi = tensor(uniform(b * m * n, 1).map((u) => (u - 0.5) * scale), { shape: [b, m, n] });
const wTrue = tensor(uniform(b * n, 2).map((u) => 2 * u - 1), { shape: [b, n] });
const y = noGrad(() => {
  const u = phi.matmul(wTrue.unsqueeze(-1)).squeeze(-1);
  return u.add(u.square().mul(0.1));
});
type P = { phi: Tensor; y: Tensor };
const residual = new BasisResidual<P>({
  features: (p) => p.phi,
  pointwise: ([u], p) => u.add(u.square().mul(0.1)).sub(p.y),
  derivative: ([u]) => [u.mul(0.2).add(1)],
});
const solver = new LevenbergMarquardt({ atol: 1e-5, rtol: 1e-5 });
const w0 = tensor(new Float32Array(b * n), { shape: [b, n] });

function run(vjp: boolean): number {
  return tidy(() => {
    const pl = vjp ? phi.detach().requireGrad() : phi;
    const yl = vjp ? y.detach().requireGrad() : y;
    const sol = leastSquares(residual, w0, { phi: pl, y: yl }, { solver });
    if (vjp) {
      sol.value.sum().backward();
      pl.grad!.narrow(0, 0, 1).narrow(1, 0, 1).narrow(2, 0, 1).item();
    }
    return sol.iterations;
  });
}

console.log(`# Profile of one batched LM solve, B = ${b}, N = ${n}, M = ${m}, ${backend.description}`);
if (hostLinalg) console.log("(no native linalg on this backend: the host stand-in is installed)");
run(true);
run(false);
for (const vjp of [false, true]) {
  backend.synchronize();
  let t0 = performance.now();
  const iterations = run(vjp);
  backend.synchronize();
  const plain = performance.now() - t0;
  stats.clear();
  profiling = true;
  t0 = performance.now();
  run(vjp);
  backend.synchronize();
  profiling = false;
  const profiled = performance.now() - t0;
  const rows = [...stats].sort((p, q) => q[1].ms - p[1].ms);
  const calls = rows.reduce((s, r) => s + r[1].count, 0);
  console.log(
    `\n## ${vjp ? "solve + VJP" : "solve"}: ${plain.toFixed(1)} ms plain, ${iterations} iterations; ` +
      `${profiled.toFixed(1)} ms profiled over ${calls} primitive calls\n`,
  );
  console.log("| ms | calls | primitive |\n|---|---|---|");
  for (const [k, v] of rows.slice(0, top)) console.log(`| ${v.ms.toFixed(2)} | ${v.count} | ${k} |`);
}

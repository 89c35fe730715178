/**
 * The fixed cost of one tensor op on the default backend (bench/RESULTS.md): microseconds per call
 * of tiny elementwise ops, a small matrix product, reductions and a tiny model's training step,
 * recorded (inputs that require grad, so each op builds a graph node) and not; and a step of the
 * tiny Llama at L = 1024 by full backprop and by SeCO (chunk 128), whose ratio the per-op cost
 * decides (SeCO runs about twice as many ops, each on a smaller tensor).
 *
 * Each op case runs `--calls` calls inside one `tidy` (its end frees them, which is part of what
 * an op costs), `--rounds` times; the median round is kept. `--save FILE` writes the figures as
 * JSON, `--compare FILE` prints them beside those of an earlier run (a "before" column).
 *
 *   deno run -A bench/op_overhead.ts --save out/op_overhead_before.json
 *   deno run -A bench/op_overhead.ts --compare out/op_overhead_before.json
 *   deno run -A bench/op_overhead.ts --part lm --lm-rounds 6
 */

import { countCalls, lm, nn, optim, randn, type Tensor, tidy, train } from "../mod.ts";
import { deviceLine, median } from "./lm_bench_util.ts";

const flags = train.parseFlags(
  {
    part: { type: "choice", choices: ["ops", "lm", "all"], default: "all", help: "what to measure" },
    calls: { type: "integer", default: 2000, min: 1, help: "ops: calls per round" },
    rounds: { type: "integer", default: 9, min: 1, help: "ops: rounds per case (the median kept)" },
    lmLength: { type: "integer", default: 1024, min: 2, help: "lm: tokens per sequence" },
    lmRounds: { type: "integer", default: 5, min: 1, help: "lm: rounds of full and SeCO in turn (fastest kept)" },
    save: { type: "string", default: "", help: "write the figures to this JSON file" },
    compare: { type: "string", default: "", help: "print the figures of this JSON file beside (before)" },
  },
  Deno.args,
  { usage: "deno run -A bench/op_overhead.ts [flags]" },
);

/** One measured row: a name, a shape, whether it records, microseconds per call. */
interface Row {
  op: string;
  shape: string;
  recorded: boolean;
  us: number;
}

const key = (r: Omit<Row, "us">) => `${r.op} ${r.shape} ${r.recorded}`;

/** Microseconds per call of one round: `calls` calls of `call` inside one tidy (its end frees them). */
function round(call: () => unknown, calls: number): number {
  const t0 = performance.now();
  tidy(() => {
    for (let i = 0; i < calls; i++) call();
  });
  return (performance.now() - t0) * 1000 / calls;
}

/**
 * The median microseconds per call of each of `calls`, measured round-robin (a round of each in
 * turn, from another case each round, so that the load of shared cores and the garbage collections
 * one case leaves to the next weigh on all alike) after two warm-up rounds. A round is long
 * enough that the garbage collections its calls cause fall in it.
 */
function perCall(cases: { call: () => unknown; calls: number }[]): number[] {
  const times = cases.map(() => [] as number[]);
  for (let r = 0; r < flags.rounds + 2; r++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (k + r) % cases.length; // each round starts at another case
      const us = round(cases[i].call, cases[i].calls);
      if (r >= 2) times[i].push(us);
    }
  }
  return times.map(median);
}

/** The op cases: each gets operands of its shapes, recorded or not, and makes one call. */
const CASES: { op: string; shapes: number[][]; call: (xs: Tensor[]) => unknown }[] = [
  { op: "mul", shapes: [[4, 16], [4, 16]], call: ([a, b]) => a.mul(b) },
  { op: "add", shapes: [[4, 16], [4, 16]], call: ([a, b]) => a.add(b) },
  { op: "add (broadcast)", shapes: [[4, 16], [16]], call: ([a, b]) => a.add(b) },
  { op: "mul by number", shapes: [[4, 16]], call: ([a]) => a.mul(0.5) },
  { op: "exp", shapes: [[4, 16]], call: ([a]) => a.exp() },
  { op: "mul", shapes: [[128, 64], [128, 64]], call: ([a, b]) => a.mul(b) },
  { op: "matmul", shapes: [[128, 64], [64, 64]], call: ([a, b]) => a.matmul(b) },
  { op: "sum (all)", shapes: [[4, 16]], call: ([a]) => a.sum() },
  { op: "sum (last axis)", shapes: [[128, 64]], call: ([a]) => a.sum(-1, true) },
  { op: "mean (all)", shapes: [[128, 64]], call: ([a]) => a.mean() },
  { op: "softmax (last axis)", shapes: [[4, 16]], call: ([a]) => a.softmax(-1) },
  { op: "reshape", shapes: [[4, 16]], call: ([a]) => a.reshape([64]) },
];

function opRows(): Row[] {
  const rows: Omit<Row, "us">[] = [];
  const calls: { call: () => unknown; calls: number }[] = [];
  const kept: Tensor[] = [];
  for (const c of CASES) {
    for (const recorded of [false, true]) {
      const xs = c.shapes.map((s, i) => randn(s, { seed: i + 1 }).keep().requireGrad(recorded));
      kept.push(...xs);
      rows.push({ op: c.op, shape: c.shapes.map((s) => `[${s}]`).join("·"), recorded });
      calls.push({ call: () => c.call(xs), calls: flags.calls });
    }
  }
  // A tiny model's training step: forward, backward and AdamW.
  const net = new nn.MLP([16, 32, 32, 1], { activation: "tanh", seed: 0 });
  const opt = new optim.AdamW(net.parameters(), { lr: 1e-3 });
  const x = randn([8, 16], { seed: 3 }).keep(), y = randn([8, 1], { seed: 4 }).keep();
  const step = () => {
    opt.zeroGrad();
    net.forward(x).sub(y).square().mean().backward();
    opt.step();
  };
  const { counts } = countCalls(() => tidy(step));
  rows.push({ op: `MLP 16-32-32-1 step (${counts.primitives} primitives)`, shape: "[8,16]", recorded: true });
  calls.push({ call: step, calls: Math.max(1, Math.round(flags.calls / 40)) });
  const us = perCall(calls);
  for (const t of kept) t.dispose();
  return rows.map((r, i) => ({ ...r, us: us[i] }));
}

/** Full backprop and SeCO on the tiny Llama at one length, in turn; the fastest step of each. */
function lmRows(): Row[] {
  const model = new lm.LlamaForCausalLM(lm.PRESETS.tiny, { seed: 0 });
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-5 });
  const vocab = lm.PRESETS.tiny.vocabSize;
  const seq = [Array.from({ length: flags.lmLength + 1 }, (_, i) => (i * 7919 + 13) % vocab)];
  const methods = ["full", "seco"] as const;
  const step = (method: lm.ChunkMethod) => {
    lm.chunkedGradients(model, [seq], { method, chunkSize: 128 });
    opt.step();
    opt.zeroGrad();
  };
  const best = new Map<string, number>();
  for (const m of methods) step(m); // warm-up (and the optimiser's state)
  for (let r = 0; r < flags.lmRounds; r++) {
    for (const m of methods) {
      const t0 = performance.now();
      step(m);
      best.set(m, Math.min(best.get(m) ?? Infinity, (performance.now() - t0) * 1000));
    }
  }
  const calls = new Map(methods.map((m) => [m, countCalls(() => step(m)).counts.primitives]));
  const rows: Row[] = methods.map((m) => ({
    op: `tiny Llama step, ${m} (${calls.get(m)} primitives)`,
    shape: `L=${flags.lmLength}`,
    recorded: true,
    us: best.get(m)!,
  }));
  rows.push({ op: "SeCO / full (ratio, not µs)", shape: `L=${flags.lmLength}`, recorded: true, us: 0 });
  rows[rows.length - 1].us = best.get("seco")! / best.get("full")!;
  return rows;
}

const rows = [...(flags.part !== "lm" ? opRows() : []), ...(flags.part !== "ops" ? lmRows() : [])];
const before = new Map<string, number>();
if (flags.compare) {
  for (const r of JSON.parse(Deno.readTextFileSync(flags.compare)) as Row[]) before.set(key(r), r.us);
}
const fmt = (us: number) => us >= 10000 ? (us / 1000).toFixed(1) + " ms" : us < 10 ? us.toFixed(2) : us.toFixed(1);
console.log(`op overhead: ${deviceLine()}; ${flags.calls} calls × ${flags.rounds} rounds per op case\n`);
console.log(`| op | shape | recorded | µs per call${flags.compare ? " before | after | after/before" : ""} |`);
console.log(`|---|---|---|---:|${flags.compare ? "---:|---:|" : ""}`);
for (const r of rows) {
  const b = before.get(key(r));
  const cols = flags.compare
    ? `${b === undefined ? "—" : fmt(b)} | ${fmt(r.us)} | ${b ? (r.us / b).toFixed(2) : "—"}`
    : fmt(r.us);
  console.log(`| ${r.op} | ${r.shape} | ${r.recorded ? "yes" : "no"} | ${cols} |`);
}
if (flags.save) Deno.writeTextFileSync(flags.save, JSON.stringify(rows, null, 1));

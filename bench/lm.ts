// Language-model benchmark on the CPU: forward and training-step throughput (tokens/s) of a
// Llama-family decoder, and the host memory it takes to load a bfloat16 checkpoint folder.
//
// Speed: for each config, `--steps` timed steps after one warm-up, batch 1 of `--seq` random tokens
// (`--seq-big` for the 0.5B shape). A forward step is `model.forward` under noGrad; a training step
// is the sliced cross-entropy loss, its backward and one AdamW update of every parameter, in tidy().
// tokens/s = tokens per step / median step time.
//
// Loading: a child process (so nothing else is in its heap) loads a Qwen2.5-0.5B-shaped bfloat16
// folder written beforehand with `lm.savePretrained` (random weights, one 988 MB model.safetensors),
// as bfloat16, and reports its resident set before the load and its high-water mark after it
// (VmRSS and VmHWM of /proc/self/status). The goal: the increase at most 1.3× the file size.
//
//   deno run -A bench/lm.ts [--configs tiny,qwen2.5-0.5b] [--steps 3] [--seq 256] [--seq-big 32]
//     [--no-load] [--dir /tmp/patchwork_bench_qwen]

import { lm, noGrad, optim, tidy, train, useBackend } from "../mod.ts";

useBackend("cpu");

function status(key: string): number {
  const line = Deno.readTextFileSync("/proc/self/status").split("\n").find((l) => l.startsWith(key + ":"));
  return Number(line?.split(/\s+/)[1] ?? NaN) * 1024;
}

const flags = train.parseFlags(
  {
    configs: { type: "string", default: "tiny,qwen2.5-0.5b", help: "presets to time, comma-separated ('' for none)" },
    steps: { type: "integer", default: 3, min: 1, help: "timed steps per measurement (median)" },
    seq: { type: "integer", default: 256, min: 2, help: "tokens per step for the tiny config" },
    seqBig: { type: "integer", default: 32, min: 2, help: "tokens per step for the larger presets" },
    load: { type: "boolean", default: true, help: "measure loading a 0.5B-shaped bfloat16 folder" },
    dir: { type: "string", default: "/tmp/patchwork_bench_qwen", help: "where that folder is (written if missing)" },
    child: { type: "boolean", help: "internal: the loading process" },
  },
  Deno.args,
  { usage: "deno run -A bench/lm.ts [flags]" },
);
const dir = flags.dir;

if (flags.child) {
  const before = status("VmRSS");
  const t0 = performance.now();
  const model = await lm.loadPretrained(dir, { dtype: "bfloat16" });
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    JSON.stringify({ before, peak: status("VmHWM"), after: status("VmRSS"), seconds, params: model.numParameters() }),
  );
  Deno.exit(0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const steps = flags.steps;
const configs = flags.configs.split(",").filter((c) => c.length > 0);
const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

console.log("| config | params | tokens/step | forward tokens/s | training-step tokens/s | step s (fwd / train) |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const name of configs) {
  const config = lm.preset(name);
  const seq = name === "tiny" ? flags.seq : flags.seqBig;
  const model = new lm.LlamaForCausalLM(config, { seed: 0 });
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-4 });
  const tokens = Array.from({ length: seq + 1 }, (_, i) => (i * 7919) % config.vocabSize);
  const input = [tokens.slice(0, seq)];
  const target = [tokens.slice(1)];
  const time = (fn: () => void) => {
    const t0 = performance.now();
    fn();
    return (performance.now() - t0) / 1000;
  };
  const forward = () => tidy(() => void noGrad(() => model.forward(input).logits.toTypedArray()));
  const train = () =>
    tidy(() => {
      const { loss } = model.loss(input, target);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      loss.item();
    });
  forward();
  const f = median(Array.from({ length: steps }, () => time(forward)));
  train();
  const t = median(Array.from({ length: steps }, () => time(train)));
  console.log(
    `| ${name} | ${(model.numParameters() / 1e6).toFixed(1)}M | ${seq} | ${(seq / f).toFixed(1)} | ${
      (seq / t).toFixed(1)
    } | ` +
      `${f.toFixed(2)} / ${t.toFixed(2)} |`,
  );
}

if (flags.load) {
  const path = `${dir}/model.safetensors`;
  let size = 0;
  try {
    size = Deno.statSync(path).size;
  } catch {
    const model = new lm.LlamaForCausalLM(lm.PRESETS["qwen2.5-0.5b"], { seed: 0, dtype: "bfloat16" });
    await lm.savePretrained(model, dir, { dtype: "bfloat16" });
    size = Deno.statSync(path).size;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--child", "--dir", dir],
    stderr: "inherit",
  });
  const r = JSON.parse(new TextDecoder().decode((await child.output()).stdout));
  const grown = r.peak - r.before;
  console.log(
    `\nloading ${path} (${mb(size)}, ${(r.params / 1e6).toFixed(1)}M parameters) as bfloat16: ` +
      `${r.seconds.toFixed(1)} s; resident ${mb(r.before)} before, high-water ${mb(r.peak)}: ` +
      `+${mb(grown)} = ${(grown / size).toFixed(2)}× the file (goal ≤ 1.3×)`,
  );
}

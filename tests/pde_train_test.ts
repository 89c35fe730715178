import assert from "node:assert/strict";
import { join } from "node:path";
import { ArgumentError, nn, NonFiniteError, optim, pde, train as trainLayer, useBackend } from "../mod.ts";

useBackend("cpu");
const quiet = () => {};

function heatSetup(seedData = 0) {
  const heat = new pde.Heat1D({ kappa: 0.02, modes: 4 });
  const train = heat.generateDataset({ n: 16, nx: 24, nt: 17, seed: seedData, dtype: "float64" });
  const test = heat.generateDataset({ n: 4, nx: 24, nt: 17, seed: seedData + 1, dtype: "float64" });
  return { heat, train, test };
}

function makeMethod(
  kind: pde.MethodKind,
  heat: pde.Heat1D,
  grid: pde.Grid1D,
  experts = [2, 1],
  extra: Pick<pde.MethodOptions, "loss" | "residual"> = {},
) {
  return pde.createMethod(kind, {
    problem: heat,
    grid,
    basis: 8,
    experts,
    points: 64,
    seed: 5,
    network: { width: 8, modes: 6, layers: 2, fc: 16, seed: 1 },
    constraint: { initialCondition: "mollifier" },
    ...extra,
  });
}

const optimizerOf = (m: pde.TrainingMethod) =>
  new optim.Adam(m.model, { lr: optim.exponentialDecay({ lr: 3e-3, gamma: 0.5, every: 4 }) });

function params(m: pde.TrainingMethod): Float64Array[] {
  return m.model.parameters().map((p) => p.toTypedArray().slice() as Float64Array);
}

Deno.test("checkpoint and resume continue bit-identically (6 steps = 3 + resume + 3)", async () => {
  const { heat, train, test } = heatSetup();
  const dir = await Deno.makeTempDir();
  try {
    const full = makeMethod("moe", heat, train.grid);
    await pde.train({ method: full, optimizer: optimizerOf(full), train, test, steps: 6, batchSize: 3, log: quiet });
    const first = makeMethod("moe", heat, train.grid);
    const r1 = await pde.train({
      method: first,
      optimizer: optimizerOf(first),
      train,
      steps: 3,
      batchSize: 3,
      checkpointDir: dir,
      log: quiet,
    });
    assert.equal(r1.step, 3);
    assert.match(r1.checkpoint!, /ckpt-000003$/);
    // A fresh process would build the same objects, then resume.
    const second = makeMethod("moe", heat, train.grid);
    const lines: string[] = [];
    const r2 = await pde.train({
      method: second,
      optimizer: optimizerOf(second),
      train,
      steps: 6,
      batchSize: 3,
      checkpointDir: dir,
      resume: true,
      log: (l) => lines.push(l),
    });
    assert.equal(r2.resumedFrom, 3);
    assert.equal(r2.step, 6);
    assert.match(lines[0], /resumed from .*ckpt-000003 at step 3/);
    const a = params(full);
    const b = params(second);
    a.forEach((x, i) => assert.deepEqual(b[i], x, `parameter ${i} differs after resume`));
    // Only the newest checkpoint is kept.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["ckpt-000006", "latest.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a wall-clock budget ends the run after the step that reaches it, as a last step", async () => {
  const { heat, train, test } = heatSetup();
  const dir = await Deno.makeTempDir();
  try {
    const m = makeMethod("hard", heat, train.grid);
    const lines: string[] = [];
    // A budget far below one step's time: exactly one step runs, then logs, evaluates and saves.
    const r = await pde.train({
      method: m,
      optimizer: optimizerOf(m),
      train,
      test,
      steps: 50,
      batchSize: 2,
      logEvery: 0,
      maxSeconds: 1e-6,
      checkpointDir: dir,
      log: (l) => lines.push(l),
    });
    assert.equal(r.stoppedBy, "time");
    assert.equal(r.step, 1);
    assert.match(r.checkpoint!, /ckpt-000001$/);
    assert.equal(r.history.length, 1);
    assert.ok(Number.isFinite(r.history[0].testError!), "the last step evaluates the test error");
    assert.match(lines.at(-1)!, /time budget of 0\.000001 s reached after 1 steps \(step 1 of 50\)/);
    const full = makeMethod("hard", heat, train.grid);
    const done = await pde.train({
      method: full,
      optimizer: optimizerOf(full),
      train,
      steps: 2,
      batchSize: 2,
      log: quiet,
    });
    assert.equal(done.stoppedBy, "steps");
    await assert.rejects(
      pde.train({ method: full, optimizer: optimizerOf(full), train, steps: 1, maxSeconds: 0, log: quiet }),
      /maxSeconds must be a positive number/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a NaN loss (or a diverging loss) stops the run and keeps the last good checkpoint", async () => {
  const { heat, train } = heatSetup();
  for (const bad of [NaN, 1e300]) {
    const dir = await Deno.makeTempDir();
    try {
      const method = makeMethod("hard", heat, train.grid);
      const inner = method.lossAndGrad.bind(method);
      // Inject the fault at the 5th step (0-based index 4).
      const faulty: pde.TrainingMethod = Object.assign(Object.create(method), {
        lossAndGrad: (b: pde.PdeBatch, s: number) => {
          const st = inner(b, s);
          return s === 4 ? { ...st, loss: bad } : st;
        },
      });
      const opt = optimizerOf(method);
      let paramsAtStop: Float64Array[] = [];
      await assert.rejects(
        () =>
          pde.train({
            method: faulty,
            optimizer: opt,
            train,
            steps: 8,
            checkpointDir: dir,
            checkpointEvery: 2,
            divergenceFactor: 1e6,
            log: quiet,
            onStep: (step) => {
              if (step === 4) paramsAtStop = params(method);
            },
          }),
        (e: unknown) => {
          assert.ok(e instanceof trainLayer.TrainingDivergedError && e instanceof NonFiniteError);
          assert.equal(e.step, 5);
          assert.match(e.checkpoint!, /ckpt-000004$/);
          assert.match(e.message, Number.isNaN(bad) ? /step 5: the loss is NaN/ : /step 5: .*diverged/);
          assert.match(e.message, /last good checkpoint is .*ckpt-000004/);
          return true;
        },
      );
      // No update was applied at the bad step, and the checkpoint on disk is step 4's state.
      params(method).forEach((x, i) => assert.deepEqual(x, paramsAtStop[i]));
      const latest = JSON.parse(await Deno.readTextFile(join(dir, "latest.json")));
      assert.equal(latest.step, 4);
      const saved = await nn.loadSafetensors(join(dir, latest.path, "model.safetensors"));
      method.model.namedParameters().forEach(([name, p]) =>
        assert.deepEqual(saved.tensors.get(name)!.toTypedArray(), p.toTypedArray())
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("short heat runs: the hard-constraint methods clearly lower the test error", async () => {
  const { heat, train, test } = heatSetup();
  for (const [kind, experts] of [["hard", [1, 1]], ["moe", [2, 1]]] as const) {
    const method = makeMethod(kind, heat, train.grid, [...experts]);
    const before = pde.evaluate(method, test).relL2.mean;
    const result = await pde.train({
      method,
      optimizer: new optim.Adam(method.model, { lr: 3e-3 }),
      train,
      test,
      steps: 40,
      logEvery: 20,
      log: quiet,
    });
    const after = pde.evaluate(method, test);
    assert.ok(after.relL2.mean < 0.6 * before, `${kind}: test error ${before} → ${after.relL2.mean}`);
    assert.ok(result.history.at(-1)!.testError! < before);
    assert.equal(after.solve!.converged, after.solve!.problems);
    assert.ok(result.history.every((h) => h.solverIterations! > 0 && h.pointsPerSecond > 0));
  }
});

Deno.test("expert-owned residual with an interface term: progress reports how the experts meet", async () => {
  const { heat, train, test } = heatSetup();
  const loss = { interface: 10 };
  const method = makeMethod("moe", heat, train.grid, [1, 2], { loss, residual: "expert" });
  const lines: string[] = [];
  const optimizer = new optim.Adam(method.model, { lr: 3e-3 });
  const result = await pde.train({
    method,
    optimizer,
    train,
    test,
    steps: 20,
    logEvery: 10,
    log: (l) => lines.push(l),
  });
  const meets = result.history.map((h) => h.interface!);
  assert.ok(meets.every((v) => Number.isFinite(v) && v > 0), `interface mismatch ${meets}`);
  assert.ok(meets.at(-1)! < meets[0], `the interface term lowers the mismatch: ${meets}`);
  assert.match(lines.find((l) => l.startsWith("step"))!, /interface \d/);
  // Without the term there is nothing to report.
  const plain = makeMethod("moe", heat, train.grid, [1, 2], { residual: "expert" });
  const batch = { u0: train.u0.narrow(0, 0, 2), u: train.u.narrow(0, 0, 2) };
  assert.equal(plain.lossAndGrad(batch, 0).interface, undefined);
  // A stitched residual already sees the jumps: an interface weight with it is a mistake.
  assert.throws(
    () => makeMethod("moe", heat, train.grid, [1, 2], { loss, residual: "stitched" }),
    (e: unknown) => e instanceof ArgumentError && /loss.interface \(10\).*needs residual: "expert"/.test(e.message),
  );
});

Deno.test("data-only and soft-constraint baselines train with the same network and data", async () => {
  const { heat, train, test } = heatSetup();
  for (const kind of ["data", "soft"] as const) {
    const method = makeMethod(kind, heat, train.grid);
    assert.equal(method.model.channels, 1);
    const before = pde.evaluate(method, test).relL2.mean;
    const losses: number[] = [];
    await pde.train({
      method,
      optimizer: new optim.Adam(method.model, { lr: 1e-2 }),
      train,
      steps: 40,
      log: quiet,
      onStep: (_, st) => losses.push(st.loss),
    });
    const after = pde.evaluate(method, test, { keep: 2 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(losses.every(Number.isFinite));
    // The data-only baseline sees the solutions and learns quickly; the soft constraint (PI-SC) is slow.
    if (kind === "data") {
      assert.ok(mean(losses.slice(-8)) < 0.8 * mean(losses.slice(0, 8)), `${kind} losses ${losses}`);
      assert.ok(after.relL2.mean < before, `${kind}: ${before} → ${after.relL2.mean}`);
    }
    assert.deepEqual(after.predictions!.shape, [2, 17, 24]);
    assert.ok(after.inference.secondsPerBatch > 0);
  }
});

Deno.test("flags, batch order and data checks", () => {
  const text = (help: string) => ({ type: "string", help }) as const;
  const flag = (help: string) => ({ type: "boolean", help }) as const;
  const spec = { method: text("m"), experts: text("e"), resume: flag("r"), report: flag("p") };
  assert.deepEqual(trainLayer.parseFlags(spec, ["--method", "moe", "--experts=1x2", "--resume", "--no-report"]), {
    method: "moe",
    experts: "1x2",
    resume: true,
    report: false,
  });
  assert.throws(() => trainLayer.parseFlags({ method: text("m") }, ["--metod", "moe"]), /unknown flag --metod/);
  const steps = (type: "integer" | "number", args: string[]) =>
    trainLayer.parseFlags({ steps: { type, default: 5, help: "s" } }, args).steps;
  assert.equal(steps("integer", ["--steps", "30"]), 30);
  assert.throws(() => steps("number", ["--steps", "x"]), /--steps must be a number/);
  // Each epoch visits every sample once; the order is a pure function of (seed, step).
  const epoch = [0, 1, 2, 3].flatMap((s) => trainLayer.batchIndices(8, 2, 3, s));
  assert.deepEqual([...epoch].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(trainLayer.batchIndices(8, 2, 3, 2), epoch.slice(4, 6));
  const { heat, train } = heatSetup();
  const method = makeMethod("hard", heat, train.grid);
  const u = train.u.clone();
  const poisoned = { u0: train.u0, u: u.mul(u.sub(u).add(1)).div(u.sub(u)) }; // NaN everywhere (0/0)
  return assert.rejects(
    () => pde.train({ method, optimizer: optimizerOf(method), train: poisoned, steps: 1, log: quiet }),
    (e: unknown) => e instanceof NonFiniteError && /train\.u has NaN or Inf in samples 0, 1/.test(e.message),
  );
});

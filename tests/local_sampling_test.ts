// SpaCO sampling, checked by exact enumeration: the expectation of the sampled gradient over every
// outcome of the draw (each weighted by its probability, computed here from first principles) is
// compared with the exact gradient of one backward pass through the whole graph.

import assert from "node:assert/strict";
import { ArgumentError, Generator, local, manualSeed, randn, type Tensor } from "../mod.ts";
import type { PieceSampling } from "../src/local/mod.ts";
import { assertClose } from "./helpers.ts";
import { attentionToy, fullGradient, meanToy, takeGrads, type Toy } from "./local_toys.ts";

const EXACT = { atol: 1e-13, rtol: 1e-12 };

/** Every subset of 0..k−1 (as ascending index lists). */
function subsets(k: number): number[][] {
  return Array.from({ length: 1 << k }, (_, m) => [...Array(k).keys()].filter((i) => m & (1 << i)));
}

function binomial(n: number, r: number): number {
  let c = 1;
  for (let i = 0; i < r; i++) c = (c * (n - i)) / (i + 1);
  return c;
}

/** Probability of drawing exactly `subset` when piece i is kept independently with probability p[i]. */
function bernoulliProbability(subset: number[], p: number[]): number {
  return p.reduce((acc, pi, i) => acc * (subset.includes(i) ? pi : 1 - pi), 1);
}

/** Probability of drawing exactly `subset` (of size t, containing `always`) uniformly among such sets. */
function fixedProbability(subset: number[], k: number, t: number, always: number[]): number {
  const ok = subset.length === t && always.every((i) => subset.includes(i));
  return ok ? 1 / binomial(k - always.length, t - always.length) : 0;
}

/** Σ over outcomes of P(outcome) × the gradient that sequentialBackward gives for it. */
function expectation<S extends local.TensorTree>(
  toy: Toy<S>,
  probability: (subset: number[]) => number,
  sampling: (subset: number[]) => PieceSampling,
): number[] {
  let mean: number[] | null = null;
  let total = 0;
  for (const subset of subsets(toy.count)) {
    const p = probability(subset);
    if (p === 0) continue;
    total += p;
    local.sequentialBackward(toy.count, toy.piece, { sampling: sampling(subset) });
    const g = takeGrads(toy.params);
    mean = mean ? mean.map((m, i) => m + p * g[i]) : g.map((v) => p * v);
  }
  assertClose(total, 1, EXACT, "the outcome probabilities sum to one");
  return mean!;
}

function relativeError(got: number[], want: number[]): number {
  const norm = Math.hypot(...want);
  return Math.hypot(...got.map((g, i) => g - want[i])) / norm;
}

/** The relative error left after the best global rescaling c·got (what a scale-free optimiser sees). */
function rescaledError(got: number[], want: number[]): number {
  const c = got.reduce((a, g, i) => a + g * want[i], 0) / got.reduce((a, g) => a + g * g, 0);
  return relativeError(got.map((g) => c * g), want);
}

Deno.test("SpaCO Bernoulli with the last piece always kept (keepLast) is exactly unbiased (expectation over all subsets)", () => {
  for (const k of [3, 4, 5]) {
    const toy = attentionToy(10 * k, k);
    const exact = fullGradient(toy);
    for (const q of [0.5, 0.3]) {
      const p = Array.from({ length: k }, (_, i) => (i === k - 1 ? 1 : q));
      const got = expectation(
        toy,
        (s) => bernoulliProbability(s, p),
        (subset) => ({ mode: "bernoulli", probability: q, always: [k - 1], subset }),
      );
      assertClose(got, exact, EXACT, `k = ${k}, q = ${q}`);
    }
  }
});

Deno.test("SpaCO Bernoulli is exactly unbiased with one probability or one per piece (expectation over all subsets)", () => {
  const check = <S extends local.TensorTree>(toy: Toy<S>) => {
    const k = toy.count;
    const exact = fullGradient(toy);
    const perPiece = Array.from({ length: k }, (_, i) => 0.2 + 0.7 * ((i * 0.37) % 1));
    for (const probability of [0.5, perPiece]) {
      const p = typeof probability === "number" ? perPiece.map(() => probability) : probability;
      const got = expectation(toy, (s) => bernoulliProbability(s, p), (subset) => ({
        mode: "bernoulli",
        probability,
        subset,
      }));
      assertClose(got, exact, EXACT, `k = ${k}, probability ${probability}`);
    }
  };
  // Paths through every chunk: each state is computed from the mean of all earlier ones.
  for (const k of [3, 4, 5]) check(meanToy(20 * k, k));
  for (const k of [3, 4, 5]) check(attentionToy(20 * k, k));
});

// In the attention toy a path from a loss to the parameters passes through at most layers + 1
// chunks (each hop to an earlier chunk's keys and values goes one layer down), so a fixed-size
// draw of layers + 1 free chunks (beyond those always kept) can keep every path.
Deno.test("SpaCO fixed-size with the unbiased compensation is exactly unbiased for k = 3..5 and every t ≥ the longest path", () => {
  for (const layers of [1, 2]) {
    for (const k of [3, 4, 5]) {
      const toy = attentionToy(30 * k + layers, k, layers);
      const exact = fullGradient(toy);
      for (const always of [[], [k - 1]]) {
        // The free pieces on a path must all be among the t − |always| free ones drawn.
        for (let t = layers + 1 + always.length; t <= k; t++) {
          const got = expectation(toy, (s) => fixedProbability(s, k, t, always), (subset) => ({
            mode: "fixed",
            count: t,
            always,
            subset,
          }));
          assertClose(got, exact, EXACT, `${layers} layers, k = ${k}, t = ${t}, always [${always}]`);
        }
      }
    }
  }
});

Deno.test("SpaCO fixed-size below the longest path: the expectation is the gradient of the paths it can keep", () => {
  // One layer, one chunk per draw: only the direct terms survive, each exactly — the gradient with
  // every earlier state detached.
  const k = 4;
  const toy = attentionToy(77, k, 1);
  const detached = (past: readonly [Tensor, Tensor][][]) =>
    past.map((s) => s.map(([a, b]) => [a.detach(), b.detach()] as [Tensor, Tensor]));
  const direct = fullGradient({
    ...toy,
    piece: (past: readonly [Tensor, Tensor][][], i: number) => toy.piece(detached(past), i),
  });
  const got = expectation(toy, (s) => fixedProbability(s, k, 1, []), (subset) => ({ mode: "fixed", count: 1, subset }));
  assertClose(got, direct, EXACT, "t = 1");
  assert.ok(relativeError(got, fullGradient(toy)) > 0.01, "the longer paths are missing");
});

Deno.test("SpaCO fixed-size with the paper's compensation: exact at t = k, biased below (bias measured)", () => {
  const rows: string[] = [];
  const errors: number[] = [], rescaled: number[] = [];
  for (const layers of [1, 2]) {
    for (const k of [3, 4, 5]) {
      const toy = attentionToy(30 * k + layers, k, layers);
      const exact = fullGradient(toy);
      for (let t = layers + 1; t <= k; t++) {
        for (const cap of [undefined, Infinity]) {
          const got = expectation(toy, (s) => fixedProbability(s, k, t, []), (subset) => ({
            mode: "fixed",
            count: t,
            compensation: "paper",
            cap,
            subset,
          }));
          if (t === k) {
            assertClose(got, exact, EXACT, `k = t = ${k}`);
            continue;
          }
          const e = relativeError(got, exact), r = rescaledError(got, exact);
          rows.push(
            `${layers} layers k=${k} t=${t} cap=${cap ?? 2}: ${(100 * e).toFixed(1)}% (${
              (100 * r).toFixed(2)
            }% after rescaling)`,
          );
          errors.push(e);
          rescaled.push(r);
        }
      }
    }
  }
  console.log(rows.join("\n"));
  // The figures the documentation quotes (where an unbiased estimator exists: t ≥ layers + 1).
  const range = (xs: number[]) => [Math.min(...xs), Math.max(...xs)];
  const [e0, e1] = range(errors), [r0, r1] = range(rescaled);
  assert.ok(e0 > 0.15 && e1 < 0.65, `relative error of the expectation ${e0}..${e1}`);
  assert.ok(r0 > 0.005 && r1 < 0.08, `after the best global rescaling ${r0}..${r1}`);
});

Deno.test("independentBackward with sampling is exactly unbiased, gradient and loss estimate (expectation over all subsets)", () => {
  const k = 4;
  const w = randn([3, 2 * k], { dtype: "float64", seed: 1 }).requireGrad();
  const v = randn([2 * k], { dtype: "float64", seed: 2 }).requireGrad();
  const x = randn([5, 3], { dtype: "float64", seed: 3 });
  const pieces = Array.from(
    { length: k },
    (_, j) => ([phi]: Tensor[]) => phi.narrow(1, 2 * j, 2).tanh().mul(v.narrow(0, 2 * j, 2)).sum().square(),
  );
  const run = (sampling?: PieceSampling) => {
    const res = local.independentBackward([x.matmul(w)], pieces, { sampling });
    return { g: takeGrads([w, v]), estimate: res.estimate, res };
  };
  const full = run();
  const p = [0.5, 0.25, 0.8, 1];
  const cases: [string, (s: number[]) => number, (subset: number[]) => PieceSampling][] = [
    ["bernoulli", (s) => bernoulliProbability(s, p), (subset) => ({ mode: "bernoulli", probability: p, subset })],
    ["fixed t = 2", (s) => fixedProbability(s, k, 2, []), (subset) => ({ mode: "fixed", count: 2, subset })],
    ["fixed t = 3, always [1]", (s) => fixedProbability(s, k, 3, [1]), (subset) => ({
      mode: "fixed",
      count: 3,
      always: [1],
      subset,
    })],
  ];
  for (const [name, probability, sampling] of cases) {
    let g = full.g.map(() => 0), estimate = 0;
    for (const subset of subsets(k)) {
      const q = probability(subset);
      if (q === 0) continue;
      const out = run(sampling(subset));
      assert.deepEqual(out.res.backpropagated, subset);
      out.res.losses.forEach((l, i) => assert.equal(Number.isNaN(l), !subset.includes(i)));
      g = g.map((a, i) => a + q * out.g[i]);
      estimate += q * out.estimate;
    }
    assertClose(g, full.g, EXACT, `${name}: gradient`);
    assertClose(estimate, full.estimate, EXACT, `${name}: loss estimate`);
  }
});

Deno.test("seeded draws: fixed-size draws are uniform over the subsets, Bernoulli draws keep each piece with its probability", () => {
  const k = 4, draws = 3000;
  const pieces = Array.from({ length: k }, () => ([phi]: Tensor[]) => phi.sum());
  const drawn = (sampling: PieceSampling) =>
    local.independentBackward([randn([1], { dtype: "float64" })], pieces, { sampling }).backpropagated;
  const counts = new Map<string, number>();
  const hits = new Array(k).fill(0);
  const p = [0.1, 0.5, 0.9, 0.3];
  for (let seed = 0; seed < draws; seed++) {
    const s = drawn({ mode: "fixed", count: 2, seed });
    assert.equal(s.length, 2);
    counts.set(s.join(), (counts.get(s.join()) ?? 0) + 1);
    drawn({ mode: "bernoulli", probability: p, seed }).forEach((i) => hits[i]++);
  }
  // Six subsets, each expected 500 times: a binomial standard deviation is about 20.
  assert.equal(counts.size, 6);
  for (const [s, n] of counts) assert.ok(Math.abs(n - draws / 6) < 100, `subset ${s} drawn ${n} times`);
  hits.forEach((n, i) => assert.ok(Math.abs(n / draws - p[i]) < 0.04, `piece ${i} drawn ${n} times, p = ${p[i]}`));
  assert.deepEqual(drawn({ mode: "fixed", count: 3, always: [0], seed: 5 }).includes(0), true);
});

Deno.test("only the states of pieces still to be back-propagated are differentiated", () => {
  const toy = attentionToy(3, 5);
  const seen: string[] = [];
  const piece = (past: readonly [Tensor, Tensor][][], i: number) => {
    if (i === 4) {
      seen.push(past.map((s) => (s[0][0].requiresGrad ? "g" : "-")).join(""));
    }
    return toy.piece(past, i);
  };
  const res = local.sequentialBackward(5, piece, { sampling: { mode: "fixed", count: 2, subset: [2, 4] } });
  assert.deepEqual(res.backpropagated, [4, 2]);
  // The forward pass (nothing requires grad), then piece 4's backward: only piece 2's state.
  assert.deepEqual(seen, ["----", "--g-"]);
  takeGrads(toy.params);
});

Deno.test("draws come from the global stream (manualSeed), a given generator, or a seed", () => {
  const pieces = Array.from({ length: 8 }, () => ([phi]: Tensor[]) => phi.sum());
  const drawn = (sampling: PieceSampling) =>
    local.independentBackward([randn([1], { dtype: "float64" })], pieces, { sampling }).backpropagated.join();
  const fixed = { mode: "fixed", count: 3 } as const;
  manualSeed(11);
  const a = [drawn(fixed), drawn(fixed), drawn(fixed)];
  assert.ok(new Set(a).size > 1, `successive draws differ: ${a}`);
  manualSeed(11);
  assert.deepEqual([drawn(fixed), drawn(fixed), drawn(fixed)], a, "manualSeed replays them");
  const g1 = new Generator(5), g2 = new Generator(5);
  const b = [drawn({ ...fixed, generator: g1 }), drawn({ ...fixed, generator: g1 })];
  assert.notEqual(b[0], b[1]);
  assert.deepEqual([drawn({ ...fixed, generator: g2 }), drawn({ ...fixed, generator: g2 })], b);
  assert.equal(drawn({ ...fixed, seed: 4 }), drawn({ ...fixed, seed: 4 }));
});

Deno.test("sampling options are checked at the door", () => {
  const toy = attentionToy(1, 4);
  const bad: [PieceSampling, RegExp][] = [
    [{ mode: "bernoulli", probability: 0 }, /probability of piece 0 must be in \(0, 1\], got 0/],
    [{ mode: "bernoulli", probability: [0.5, 0.5] }, /2 entries for 4 pieces/],
    [{ mode: "fixed", count: 5 }, /count must be an integer in 1..4/],
    [{ mode: "fixed", count: 1, always: [3, 2] }, /count must be an integer in 2..4/],
    [{ mode: "fixed", count: 2, always: [4] }, /always lists 4, which is not a piece index in 0..3/],
    [{ mode: "fixed", count: 2, subset: [0, 1, 2] }, /subset has 3 pieces but count is 2/],
    [{ mode: "bernoulli", probability: 0.5, always: [3], subset: [0] }, /must contain the always-kept pieces 3/],
    [{ mode: "fixed", count: 2, cap: 3 }, /cap applies to compensation "paper" only/],
    [{ mode: "fixed", count: 2, compensation: "paper", cap: 0.5 }, /cap must be at least 1/],
    [{ mode: "sometimes" } as unknown as PieceSampling, /mode must be "bernoulli" or "fixed"/],
  ];
  for (const [sampling, message] of bad) {
    assert.throws(
      () => local.sequentialBackward(4, toy.piece, { sampling }),
      (e: Error) => e instanceof ArgumentError && message.test(e.message),
      JSON.stringify(sampling),
    );
  }
  assert.throws(
    () =>
      local.independentBackward([randn([1])], [([p]) => p.sum()], {
        sampling: { mode: "fixed", count: 1, compensation: "paper" },
      }),
    (e: Error) => e instanceof ArgumentError && /relayed state gradients/.test(e.message),
  );
});

Deno.test('with losses: "rebuilt", only the drawn pieces give a loss, and the estimate of the total is exactly unbiased (expectation over all subsets)', () => {
  const k = 5;
  const toy = attentionToy(61, k, 2);
  // The total by hand: every piece's loss, the states handed on without any sampling.
  const states: [Tensor, Tensor][][] = [];
  const total = Array.from({ length: k }, (_, i) => {
    const { loss, state } = toy.piece(states, i);
    states.push(state);
    return loss.item();
  }).reduce((a, b) => a + b, 0);
  // A piece that is not drawn gives its state only.
  const piece = (past: readonly [Tensor, Tensor][][], i: number, call: local.PieceCall) => {
    const { loss, state } = toy.piece(past, i);
    return { loss: call.rebuilt ? loss : null, state };
  };
  const p = [0.5, 0.3, 0.6, 0.4, 1];
  const cases: [string, (s: number[]) => number, (s: number[]) => PieceSampling][] = [
    ["bernoulli", (s) => bernoulliProbability(s, p), (s) => ({ mode: "bernoulli", probability: p, subset: s })],
    [
      "fixed, unbiased",
      (s) => fixedProbability(s, k, 3, [4]),
      (s) => ({ mode: "fixed", count: 3, always: [4], subset: s }),
    ],
    [
      "fixed, paper",
      (s) => fixedProbability(s, k, 2, []),
      (s) => ({ mode: "fixed", count: 2, compensation: "paper", subset: s }),
    ],
  ];
  for (const [name, probability, sampling] of cases) {
    let mean = 0, weight = 0;
    for (const subset of subsets(k)) {
      const q = probability(subset);
      if (q === 0) continue;
      const res = local.sequentialBackward(k, piece, { sampling: sampling(subset), losses: "rebuilt" });
      takeGrads(toy.params);
      assert.deepEqual(
        res.losses.map((l) => !Number.isNaN(l)),
        [...Array(k).keys()].map((i) => subset.includes(i)),
        name,
      );
      mean += q * res.estimate;
      weight += q;
    }
    assertClose(weight, 1, EXACT, `${name}: the outcome probabilities sum to one`);
    assertClose(mean, total, EXACT, `${name}: E[estimate] = Σ J`);
  }
  assert.throws(
    () => local.sequentialBackward(k, piece, { losses: "some" as "all" }),
    (e: Error) => e instanceof ArgumentError && /losses must be "all" or "rebuilt", got "some"/.test(e.message),
  );
});

import assert from "node:assert/strict";
import { local } from "../mod.ts";
import { memory, NonFiniteError, randn, resetPeakMemory, type Tensor, tidy } from "../mod.ts";
import { assertClose } from "./helpers.ts";

const f64 = { dtype: "float64" as const };

Deno.test("independentBackward equals one backward pass through everything", () => {
  const w = randn([4, 6], { ...f64, seed: 1 }).requireGrad();
  const v = randn([6], { ...f64, seed: 2 }).requireGrad(); // a parameter used inside the pieces
  const x = randn([5, 4], { ...f64, seed: 3 });
  const pieces = [0, 1, 2].map((k) => ([phi]: Tensor[]) =>
    phi.narrow(1, 2 * k, 2).tanh().mul(v.narrow(0, 2 * k, 2)).sum().square()
  );
  // Reference: the same losses summed, one backward.
  const phi = x.matmul(w);
  pieces.map((p) => p([phi])).reduce((a, b) => a.add(b)).backward();
  const [gw, gv] = [w.grad!.clone(), v.grad!.clone()];
  w.zeroGrad();
  v.zeroGrad();
  const losses = local.independentBackward([x.matmul(w)], pieces);
  assert.equal(losses.length, 3);
  assertClose(w.grad!, gw, { atol: 1e-10, rtol: 1e-10 });
  assertClose(v.grad!, gv, { atol: 1e-10, rtol: 1e-10 });
});

Deno.test("independentBackward stops on a non-finite loss before touching gradients", () => {
  const w = randn([3], { ...f64, seed: 4 }).requireGrad();
  assert.throws(
    () => local.independentBackward([w.mul(2)], [([p]) => p.sum(), ([p]) => p.log().sum()]),
    NonFiniteError,
  );
});

// A toy chunked model: chunk i reads all earlier states (like a key/value cache) and one
// parameter matrix; its state is tanh(x_i W) and its loss mixes its input with the mean of the
// earlier states.
function toy(seed: number, k: number) {
  const w = randn([3, 3], { ...f64, seed }).mul(0.5).requireGrad();
  const u = randn([3], { ...f64, seed: seed + 1 }).requireGrad();
  const xs = Array.from({ length: k }, (_, i) => randn([2, 3], { ...f64, seed: seed + 10 + i }));
  const piece = (prev: readonly Tensor[], i: number) => {
    let h = xs[i].matmul(w);
    if (prev.length) h = h.add(prev.reduce((a, b) => a.add(b)).mul(1 / prev.length));
    const state = h.tanh();
    const loss = state.mul(u).sum().square().add(h.square().mean());
    return { loss, state };
  };
  const full = () => {
    const states: Tensor[] = [];
    let total: Tensor | null = null;
    for (let i = 0; i < k; i++) {
      const { loss, state } = piece(states, i);
      states.push(state);
      total = total ? total.add(loss) : loss;
    }
    return total!;
  };
  return { w, u, piece, full };
}

Deno.test("sequentialBackward (SeCO) equals full backprop through the chunks", () => {
  const { w, u, piece, full } = toy(20, 5);
  full().backward();
  const [gw, gu] = [w.grad!.clone(), u.grad!.clone()];
  w.zeroGrad();
  u.zeroGrad();
  const res = local.sequentialBackward(5, piece);
  assert.deepEqual(res.backpropagated, [4, 3, 2, 1, 0]);
  assertClose(w.grad!, gw, { atol: 1e-10, rtol: 1e-10 });
  assertClose(u.grad!, gu, { atol: 1e-10, rtol: 1e-10 });
});

Deno.test("SpaCO with Bernoulli sampling is exactly unbiased (expectation over all subsets)", () => {
  const k = 4, q = 0.5;
  const { w, u, piece, full } = toy(30, k);
  full().backward();
  const [gw, gu] = [w.grad!.clone(), u.grad!.clone()];
  let ew: Tensor | null = null, eu: Tensor | null = null;
  for (let mask = 0; mask < 1 << k; mask++) {
    const subset = [...Array(k).keys()].filter((i) => mask & (1 << i));
    const p = q ** subset.length * (1 - q) ** (k - subset.length);
    w.zeroGrad();
    u.zeroGrad();
    local.sequentialBackward(k, piece, { sampling: { fraction: q, subset } });
    const a = w.grad ? w.grad.mul(p) : gw.mul(0), b = u.grad ? u.grad.mul(p) : gu.mul(0);
    ew = ew ? ew.add(a) : a;
    eu = eu ? eu.add(b) : b;
  }
  assertClose(ew!, gw, { atol: 1e-10, rtol: 1e-10 });
  assertClose(eu!, gu, { atol: 1e-10, rtol: 1e-10 });
});

Deno.test("SpaCO fixed-size sampling back-propagates the requested number of pieces", () => {
  const { piece } = toy(40, 8);
  const res = local.sequentialBackward(8, piece, { sampling: { mode: "fixed", fraction: 0.25, seed: 3 } });
  assert.equal(res.backpropagated.length, 2);
  assert.ok(res.backpropagated[0] > res.backpropagated[1]);
});

Deno.test("sequentialBackward keeps one chunk's activations alive", () => {
  const k = 6;
  const w = randn([64, 64], { ...f64, seed: 5 }).mul(0.1).requireGrad();
  const xs = Array.from({ length: k }, (_, i) => randn([64, 64], { ...f64, seed: 50 + i }));
  const piece = (prev: readonly Tensor[], i: number) => {
    let h = xs[i];
    for (let l = 0; l < 8; l++) h = h.matmul(w).tanh(); // deep chunk: many activations
    if (prev.length) h = h.add(prev[prev.length - 1]);
    return { loss: h.square().mean(), state: h.mean(0, true) };
  };
  const peakOf = (fn: () => void) => {
    const base = memory().current;
    resetPeakMemory();
    fn();
    return memory().peak - base;
  };
  const fullPeak = peakOf(() =>
    tidy(() => {
      const states: Tensor[] = [];
      let total: Tensor | null = null;
      for (let i = 0; i < k; i++) {
        const { loss, state } = piece(states, i);
        states.push(state);
        total = total ? total.add(loss) : loss;
      }
      total!.backward();
    })
  );
  w.zeroGrad();
  const chunkPeak = peakOf(() => local.sequentialBackward(k, piece));
  assert.ok(chunkPeak * 3 < fullPeak, `chunked peak ${chunkPeak} vs full ${fullPeak}`);
});

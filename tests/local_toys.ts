// Small float64 models cut into pieces, for the tests of src/local: each gives its parameters, a
// piece for sequentialBackward and the same computation as one graph (the reference).

import { concat, randn, type Tensor } from "../mod.ts";
import type { TensorTree } from "../src/local/mod.ts";

const f64 = { dtype: "float64" as const };

/** A model cut into pieces, with its parameters and its whole-graph loss. */
export interface Toy<S extends TensorTree> {
  params: Tensor[];
  piece: (previous: readonly S[], i: number) => { loss: Tensor; state: S };
  count: number;
}

/** Σᵢ Jᵢ as one graph, the pieces run in order with every state kept in the graph. */
export function fullLoss<S extends TensorTree>(toy: Toy<S>): Tensor {
  const states: S[] = [];
  let total: Tensor | null = null;
  for (let i = 0; i < toy.count; i++) {
    const { loss, state } = toy.piece(states, i);
    states.push(state);
    total = total ? total.add(loss) : loss;
  }
  return total!;
}

/** The parameters' gradients flattened into one array, read and cleared. */
export function takeGrads(params: readonly Tensor[]): number[] {
  const out = params.flatMap((p) => (p.grad ? Array.from(p.grad.toTypedArray()) : new Array(p.size).fill(0)));
  params.forEach((p) => p.zeroGrad());
  return out;
}

/** The parameters' gradient of Σᵢ Jᵢ by one backward pass through the whole graph. */
export function fullGradient<S extends TensorTree>(toy: Toy<S>): number[] {
  toy.params.forEach((p) => p.zeroGrad());
  fullLoss(toy).backward();
  return takeGrads(toy.params);
}

/**
 * Attention-like chunks: `layers` layers, each making a [K, V] pair from the chunk's hidden state and
 * attending over the pairs of every earlier chunk and its own; a chunk hands on its [K, V] per layer.
 * Every gradient path from a loss reaches the parameters through any number of earlier chunks.
 */
export function attentionToy(seed: number, count: number, layers = 2, rows = 2, width = 3): Toy<[Tensor, Tensor][]> {
  const w = (s: number) => randn([width, width], { ...f64, seed: s }).mul(0.6).requireGrad();
  const wk = Array.from({ length: layers }, (_, l) => w(seed + 2 * l));
  const wv = Array.from({ length: layers }, (_, l) => w(seed + 2 * l + 1));
  const u = randn([width], { ...f64, seed: seed + 99 }).requireGrad();
  const xs = Array.from({ length: count }, (_, i) => randn([rows, width], { ...f64, seed: seed + 200 + i }));
  const piece = (past: readonly [Tensor, Tensor][][], i: number) => {
    let h = xs[i];
    const state: [Tensor, Tensor][] = [];
    for (let l = 0; l < layers; l++) {
      const k = h.matmul(wk[l]).tanh(), v = h.matmul(wv[l]);
      state.push([k, v]);
      const keys = concat([...past.map((s) => s[l][0]), k], 0);
      const values = concat([...past.map((s) => s[l][1]), v], 0);
      h = h.add(h.matmul(keys.transpose()).softmax(-1).matmul(values)).tanh();
    }
    return { loss: h.mul(u).sum().square().add(h.square().mean()), state };
  };
  return { params: [...wk, ...wv, u], piece, count };
}

/** Recurrent chunks: each reads only the previous chunk's state, an object { h, c }. */
export function recurrentToy(seed: number, count: number, width = 3): Toy<{ h: Tensor; c: Tensor }> {
  const a = randn([width, width], { ...f64, seed }).mul(0.5).requireGrad();
  const b = randn([width, width], { ...f64, seed: seed + 1 }).mul(0.5).requireGrad();
  const u = randn([width], { ...f64, seed: seed + 2 }).requireGrad();
  const xs = Array.from({ length: count }, (_, i) => randn([2, width], { ...f64, seed: seed + 10 + i }));
  const piece = (past: readonly { h: Tensor; c: Tensor }[], i: number) => {
    const prev = past[i - 1];
    let c = xs[i].matmul(a);
    if (prev) c = c.add(prev.c);
    c = c.tanh();
    let h = c.matmul(b);
    if (prev) h = h.add(prev.h.mul(0.5));
    h = h.tanh();
    return { loss: h.mul(u).sum().square().add(c.square().mean()), state: { h, c } };
  };
  return { params: [a, b, u], piece, count };
}

/** Chunks whose state is one tensor (the trivial tree), each reading the mean of all earlier states. */
export function meanToy(seed: number, count: number): Toy<Tensor> {
  const w = randn([3, 3], { ...f64, seed }).mul(0.5).requireGrad();
  const u = randn([3], { ...f64, seed: seed + 1 }).requireGrad();
  const xs = Array.from({ length: count }, (_, i) => randn([2, 3], { ...f64, seed: seed + 10 + i }));
  const piece = (prev: readonly Tensor[], i: number) => {
    let h = xs[i].matmul(w);
    if (prev.length) h = h.add(prev.reduce((x, y) => x.add(y)).mul(1 / prev.length));
    const state = h.tanh();
    return { loss: state.mul(u).sum().square().add(h.square().mean()), state };
  };
  return { params: [w, u], piece, count };
}

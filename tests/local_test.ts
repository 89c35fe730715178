import assert from "node:assert/strict";
import { local } from "../mod.ts";
import {
  ArgumentError,
  gradients,
  memory,
  noGrad,
  NonFiniteError,
  onesLike,
  randn,
  resetPeakMemory,
  ShapeError,
  type Tensor,
  tensor,
  tidy,
} from "../mod.ts";
import { assertClose } from "./helpers.ts";
import { attentionToy, fullGradient, fullLoss, meanToy, recurrentToy, takeGrads } from "./local_toys.ts";

const f64 = { dtype: "float64" as const };
const EXACT = { atol: 1e-12, rtol: 1e-12 };

Deno.test("independentBackward equals one backward pass through everything", () => {
  const w = randn([4, 6], { ...f64, seed: 1 }).requireGrad();
  const v = randn([6], { ...f64, seed: 2 }).requireGrad(); // a parameter used inside the pieces
  const x = randn([5, 4], { ...f64, seed: 3 });
  const pieces = [0, 1, 2].map((k) => ([phi]: Tensor[]) =>
    phi.narrow(1, 2 * k, 2).tanh().mul(v.narrow(0, 2 * k, 2)).sum().square()
  );
  // Reference: the same losses summed, one backward.
  const phi = x.matmul(w);
  const ref = pieces.map((p) => p([phi]));
  ref.reduce((a, b) => a.add(b)).backward();
  const [gw, gv] = [w.grad!.clone(), v.grad!.clone()];
  w.zeroGrad();
  v.zeroGrad();
  const res = local.independentBackward([x.matmul(w)], pieces);
  assert.deepEqual(res.backpropagated, [0, 1, 2]);
  assertClose(res.losses, ref.map((l) => l.item()), EXACT, "losses");
  assertClose(res.estimate, ref.reduce((a, b) => a + b.item(), 0), EXACT, "estimate");
  assertClose(w.grad!, gw, { atol: 1e-10, rtol: 1e-10 });
  assertClose(v.grad!, gv, { atol: 1e-10, rtol: 1e-10 });
});

Deno.test("independentBackward calls onPiecesDone once, after the last drawn piece and before the shared backward", () => {
  for (const sampling of [undefined, { mode: "fixed" as const, count: 2, seed: 3 }]) {
    const w = randn([3], { ...f64, seed: 1 }).requireGrad();
    const events: string[] = [];
    local.independentBackward([w.mul(2)], [0, 1, 2].map(() => ([p]: Tensor[]) => p.square().sum()), {
      sampling,
      onPiece: ({ index }) => events.push(`piece ${index}`),
      onPiecesDone: () => events.push(`done, w.grad ${w.grad === null ? "unset" : "set"}`),
    });
    assert.equal(events.length, (sampling?.count ?? 3) + 1);
    assert.equal(events.at(-1), "done, w.grad unset");
    assert.ok(w.grad !== null, "the shared backward ran after it");
  }
});

Deno.test("independentBackward stops on a non-finite loss before touching gradients", () => {
  const w = randn([3], { ...f64, seed: 4 }).requireGrad();
  assert.throws(
    () => local.independentBackward([w.mul(2)], [([p]) => p.sum(), ([p]) => p.log().sum()]),
    NonFiniteError,
  );
});

Deno.test("sequentialBackward (SeCO) equals full backprop through the chunks", () => {
  const toy = meanToy(20, 5);
  const want = fullGradient(toy);
  const res = local.sequentialBackward(5, toy.piece);
  assert.deepEqual(res.backpropagated, [4, 3, 2, 1, 0]);
  assertClose(takeGrads(toy.params), want, { atol: 1e-10, rtol: 1e-10 });
});

Deno.test("a state that is a tree: [K, V] per layer read by every later chunk, SeCO equals full backprop", () => {
  for (const [count, layers] of [[1, 1], [4, 2], [6, 3]]) {
    const toy = attentionToy(7 * count, count, layers);
    const want = fullGradient(toy);
    const losses = noGrad(() => {
      const states: [Tensor, Tensor][][] = [];
      return Array.from({ length: count }, (_, i) => {
        const { loss, state } = toy.piece(states, i);
        states.push(state);
        return loss.item();
      });
    });
    const res = local.sequentialBackward(count, toy.piece);
    assertClose(res.losses, losses, EXACT, "forward losses");
    assertClose(res.estimate, losses.reduce((a, b) => a + b, 0), EXACT, "estimate: the sum when every loss is known");
    assertClose(takeGrads(toy.params), want, EXACT, `${count} chunks, ${layers} layers`);
  }
});

Deno.test("a state that is a tree: an object { h, c } handed to the next chunk, SeCO equals full backprop", () => {
  const toy = recurrentToy(50, 6);
  const want = fullGradient(toy);
  local.sequentialBackward(6, toy.piece);
  assertClose(takeGrads(toy.params), want, EXACT);
});

Deno.test("SeCO on a tree state agrees with central finite differences of the total loss", () => {
  const toy = attentionToy(90, 3, 2);
  local.sequentialBackward(3, toy.piece);
  const got = takeGrads(toy.params);
  const h = 1e-6;
  let offset = 0;
  for (const p of toy.params) {
    const data = p.toTypedArray() as Float64Array;
    for (const j of [0, p.size - 1]) {
      const at = (v: number) => {
        const bumped = Float64Array.from(data);
        bumped[j] = v;
        p.assign(tensor(bumped, { shape: [...p.shape], dtype: "float64" }));
        return noGrad(() => fullLoss(toy).item());
      };
      const x0 = data[j];
      const fd = (at(x0 + h) - at(x0 - h)) / (2 * h);
      at(x0);
      assertClose(got[offset + j], fd, { atol: 1e-7, rtol: 1e-6 }, `parameter ${offset}+${j}`);
    }
    offset += p.size;
  }
});

Deno.test("malformed states raise typed errors naming the piece and the path", () => {
  const w = randn([2, 2], { ...f64, seed: 1 }).requireGrad();
  const x = randn([2, 2], { ...f64, seed: 2 });
  const run = (state: (k: Tensor) => unknown, loss = (k: Tensor) => k.sum()) =>
    local.sequentialBackward(2, (_past, _i) => {
      const k = x.matmul(w);
      return { loss: loss(k), state: state(k) as Tensor };
    });
  assert.throws(
    () => run((k) => [k, 3]),
    (e: Error) => e instanceof ArgumentError && /piece 0 at \[1\] is a number/.test(e.message),
  );
  assert.throws(
    () => run((k) => ({ k, v: null })),
    (e: Error) => e instanceof ArgumentError && /at \.v is null, not a Tensor/.test(e.message),
  );
  assert.throws(
    () => run((k) => [k, new Map()]),
    (e: Error) => e instanceof ArgumentError && /is a Map/.test(e.message),
  );
  assert.throws(
    () => run((k) => k, (k) => k),
    (e: Error) => e instanceof ArgumentError && /loss of shape \[2,2\]/.test(e.message),
  );
  // The structure changes between the forward pass (no recording) and the rebuilt graph.
  let calls = 0;
  const changing = (k: Tensor) => (calls++ < 2 ? [k, k.mul(2)] : [k]);
  assert.throws(
    () => run(changing),
    (e: Error) =>
      e instanceof ArgumentError &&
      /piece 1, rebuilt for its backward pass, has the structure \[\*\] but \[\*,\*\]/.test(e.message),
  );
  calls = 0;
  const reshaped = (k: Tensor) => (calls++ < 2 ? { k } : { k: k.reshape([4]) });
  assert.throws(
    () => run(reshaped),
    (e: Error) => e instanceof ShapeError && /at \.k is float64 \[4\] but float64 \[2,2\]/.test(e.message),
  );
  assert.equal(w.grad, null, "no gradient was applied");
});

Deno.test("sequentialBackward's backward holds one piece's graph, the states and their gradient buffers", () => {
  const k = 6, layers = 2;
  const w = randn([64, 64], { ...f64, seed: 5 }).mul(0.1).requireGrad();
  const xs = Array.from({ length: k }, (_, i) => randn([64, 64], { ...f64, seed: 50 + i }));
  const piece = (past: readonly [Tensor, Tensor][][], i: number) => {
    let h = xs[i];
    for (let l = 0; l < 8; l++) h = h.matmul(w).tanh(); // deep chunk: many activations
    const state: [Tensor, Tensor][] = [];
    for (let l = 0; l < layers; l++) {
      const kv: [Tensor, Tensor] = [h.narrow(0, 0, 8).mul(l + 1), h.narrow(0, 8, 8).tanh()];
      state.push(kv);
      for (const [pk, pv] of past.map((s) => s[l])) h = h.add(pk.mul(pv).mean(0, true));
    }
    return { loss: h.square().mean(), state };
  };
  const stateBytes = k * layers * 2 * 8 * 64 * 8;
  const base = memory().current;
  const past = tidy(() =>
    noGrad(() => {
      const s: [Tensor, Tensor][][] = [];
      for (let i = 0; i < k; i++) s.push(piece(s, i).state);
      return s;
    })
  );
  // One piece alone: its graph on detached earlier states, back-propagated from its loss and a
  // gradient of its state, into a parameter gradient that already exists.
  tidy(() => void (w.grad = w.mul(0)));
  let onePiece = 0;
  for (let i = 0; i < k; i++) {
    const before = memory().current;
    resetPeakMemory();
    tidy(() => {
      const leaves = past.slice(0, i).map((s) => local.treeMap(s, (t) => t.detach().requireGrad()));
      const { loss, state } = piece(leaves, i);
      const out = local.treeLeaves(state);
      gradients([loss, ...out], [onesLike(loss), ...out.map((t) => onesLike(t))], "leaves");
    });
    onePiece = Math.max(onePiece, memory().peak - before);
  }
  past.forEach((s) => local.treeLeaves(s).forEach((t) => t.dispose()));
  w.zeroGrad();
  const start = memory().current;
  resetPeakMemory();
  let peak = 0;
  local.sequentialBackward(k, piece, {
    onPiece: (r) => {
      if (r.phase === "backward") peak = Math.max(peak, memory().peak - start);
    },
  });
  // States, their gradient buffers (no larger than the states), one piece.
  const bound = 2 * stateBytes + onePiece;
  assert.ok(peak <= bound * 1.02, `backward peak ${peak} vs bound ${bound} (one piece ${onePiece})`);
  w.zeroGrad();
  assert.equal(memory().current, start, "nothing is left behind");
  // Full backprop holds every piece's graph at once.
  resetPeakMemory();
  tidy(() => fullLoss({ params: [w], piece, count: k }).backward());
  const fullPeak = memory().peak - memory().current;
  assert.ok(peak * 2.5 < fullPeak, `chunked peak ${peak} vs full ${fullPeak}`);
  w.zeroGrad();
  assert.equal(memory().current, base, "memory back to its baseline");
});

Deno.test("a piece may leave its loss to its rebuild: the same gradient and losses as computing it in the forward pass", () => {
  const toy = attentionToy(41, 4, 2);
  const want = fullGradient(toy);
  const wantLosses = (() => {
    const states: [Tensor, Tensor][][] = [];
    return Array.from({ length: toy.count }, (_, i) => {
      const { loss, state } = noGrad(() => toy.piece(states, i));
      states.push(state);
      return loss.item();
    });
  })();
  const seen: number[] = [];
  const res = local.sequentialBackward(
    toy.count,
    (past: readonly [Tensor, Tensor][][], i, call) => {
      const { loss, state } = toy.piece(past, i);
      return { loss: call.phase === "forward" && i % 2 === 0 ? null : loss, state };
    },
    {
      parameters: toy.params,
      onPiece: ({ loss, phase }) => phase === "forward" && seen.push(loss),
    },
  );
  assertClose(takeGrads(toy.params), want, EXACT, "gradient");
  assertClose(res.losses, wantLosses, EXACT, "losses: the deferred ones from the rebuild");
  assert.deepEqual(seen.map(Number.isNaN), [true, false, true, false], "forward reports a deferred loss as NaN");
});

Deno.test("a non-finite loss found in a rebuild restores the parameters' gradients as they were before the call", () => {
  const toy = attentionToy(43, 4, 2);
  // Gradients already there (an earlier micro-batch) must come back unchanged, bit for bit.
  fullLoss(toy).backward();
  const before = toy.params.map((p) => Float64Array.from(p.grad!.toTypedArray() as Float64Array));
  const order: number[] = [];
  assert.throws(
    () =>
      local.sequentialBackward(
        toy.count,
        (past: readonly [Tensor, Tensor][][], i, call) => {
          const { loss, state } = toy.piece(past, i);
          if (call.phase === "forward") return { loss: null, state };
          return { loss: i === 1 ? loss.mul(NaN) : loss, state };
        },
        { parameters: toy.params, onPiece: ({ index, phase }) => phase === "backward" && order.push(index) },
      ),
    (e: Error) => e instanceof NonFiniteError && /piece 1 has a non-finite loss/.test(e.message),
  );
  assert.deepEqual(order, [3, 2], "pieces 3 and 2 added their gradients before piece 1's loss was seen");
  toy.params.forEach((p, j) => assert.deepEqual(p.grad!.toTypedArray(), before[j], `parameter ${j}`));
  // With no gradient before the call, none after it.
  toy.params.forEach((p) => p.zeroGrad());
  assert.throws(
    () =>
      local.sequentialBackward(toy.count, (past: readonly [Tensor, Tensor][][], i, call) => {
        const { loss, state } = toy.piece(past, i);
        return { loss: call.phase === "forward" ? null : i === 0 ? loss.div(0) : loss, state };
      }, { parameters: toy.params }),
    NonFiniteError,
  );
  assert(toy.params.every((p) => p.grad === null), "no gradient");
});

Deno.test("a loss left to a rebuild needs the parameters named, and a piece that is not rebuilt must give its loss", () => {
  const toy = meanToy(47, 3);
  const deferAll = (past: readonly Tensor[], i: number, call: local.PieceCall) => {
    const { loss, state } = toy.piece(past, i);
    return { loss: call.phase === "forward" ? null : loss, state };
  };
  assert.throws(
    () => local.sequentialBackward(3, deferAll),
    (e: Error) =>
      e instanceof ArgumentError && /piece 0 left its loss to its rebuild; name .*options\.parameters/.test(e.message),
  );
  assert.throws(
    () =>
      local.sequentialBackward(3, deferAll, {
        parameters: toy.params,
        sampling: { mode: "fixed", count: 1, subset: [2] },
      }),
    (e: Error) => e instanceof ArgumentError && /piece 0 is not rebuilt .* must give its loss/.test(e.message),
  );
  assert(toy.params.every((p) => p.grad === null), "no gradient");
});

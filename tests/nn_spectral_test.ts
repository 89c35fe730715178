import assert from "node:assert/strict";
import {
  ArgumentError,
  gradcheck,
  memory,
  nn,
  noGrad,
  optim,
  randn,
  resetPeakMemory,
  ShapeError,
  type Tensor,
  tensor,
  tidy,
} from "../mod.ts";
import { assertClose } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

function prod(xs: readonly number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Row-major multi-index of `flatIndex` in `shape`. */
function unravel(flatIndex: number, shape: readonly number[]): number[] {
  const idx = Array(shape.length).fill(0);
  for (let j = shape.length - 1; j >= 0; j--) {
    idx[j] = flatIndex % shape[j];
    flatIndex = Math.floor(flatIndex / shape[j]);
  }
  return idx;
}

/**
 * The truncated spectral multiply written out with naive DFTs (float64, channels last):
 * X = DFT of x over the grid (half spectrum on the last axis); keep on every full axis the
 * frequencies 0…lo−1 (corner bit 0, slot k) and −hi…−1 (bit 1, slot m + k − n), with
 * lo = min(m, ⌈n/2⌉), hi = min(m, ⌊n/2⌋); keep 0…m−1 on the last axis; Y = Σ_c X·W; and the real
 * inverse as NumPy's irfftn computes it (imaginary parts of the DC and Nyquist bins of the last axis
 * dropped, other bins of the half spectrum counted twice).
 */
function naiveSpectralConv(
  x: ArrayLike<number>,
  shape: readonly number[],
  w: ArrayLike<number>,
  cin: number,
  cout: number,
  modes: readonly number[],
): Float64Array {
  const d = modes.length;
  const batch = shape[0];
  const grid = shape.slice(1, 1 + d);
  const nLast = grid[d - 1];
  const spGrid = [...grid.slice(0, -1), Math.floor(nLast / 2) + 1];
  const P = prod(grid);
  const S = prod(spGrid);
  const M = prod(modes);
  const points = Array.from({ length: P }, (_, i) => unravel(i, grid));
  const freqs = Array.from({ length: S }, (_, i) => unravel(i, spGrid));
  const phase = (k: number[], n: number[]) => {
    let p = 0;
    for (let j = 0; j < d; j++) p += (k[j] * n[j]) / grid[j];
    return 2 * Math.PI * p;
  };
  // Which corner and mode slot a frequency uses (null: dropped).
  const slotOf = (k: number[]): [number, number] | null => {
    let corner = 0;
    const slot: number[] = [];
    for (let j = 0; j < d; j++) {
      const m = modes[j];
      const n = grid[j];
      if (j === d - 1) {
        if (k[j] >= m) return null;
        slot.push(k[j]);
        continue;
      }
      const lo = Math.min(m, Math.ceil(n / 2));
      const hi = Math.min(m, Math.floor(n / 2));
      if (k[j] < lo) slot.push(k[j]);
      else if (k[j] >= n - hi) {
        slot.push(m + k[j] - n);
        corner |= 1 << j;
      } else return null;
    }
    let s = 0;
    for (let j = 0; j < d; j++) s = s * modes[j] + slot[j];
    return [corner, s];
  };
  const out = new Float64Array(batch * P * cout);
  for (let b = 0; b < batch; b++) {
    // Forward DFT, multiply.
    const Yr = new Float64Array(S * cout);
    const Yi = new Float64Array(S * cout);
    for (let s = 0; s < S; s++) {
      const cs = slotOf(freqs[s]);
      if (!cs) continue;
      const [corner, slot] = cs;
      for (let c = 0; c < cin; c++) {
        let xr = 0;
        let xi = 0;
        for (let p = 0; p < P; p++) {
          const v = x[(b * P + p) * cin + c];
          const th = phase(freqs[s], points[p]);
          xr += v * Math.cos(th);
          xi -= v * Math.sin(th);
        }
        for (let o = 0; o < cout; o++) {
          const wi = (((corner * cin + c) * cout + o) * M + slot) * 2;
          const ar = w[wi];
          const ai = w[wi + 1];
          Yr[s * cout + o] += xr * ar - xi * ai;
          Yi[s * cout + o] += xr * ai + xi * ar;
        }
      }
    }
    // Real inverse.
    for (let p = 0; p < P; p++) {
      for (let o = 0; o < cout; o++) {
        let acc = 0;
        for (let s = 0; s < S; s++) {
          const kl = freqs[s][d - 1];
          const weight = kl === 0 || (nLast % 2 === 0 && kl === nLast / 2) ? 1 : 2;
          const th = phase(freqs[s], points[p]);
          acc += weight * (Yr[s * cout + o] * Math.cos(th) - Yi[s * cout + o] * Math.sin(th));
        }
        out[(b * P + p) * cout + o] = acc / P;
      }
    }
  }
  return out;
}

function checkAgainstNaive(shape: number[], cin: number, cout: number, modes: number[], seed: number): void {
  const conv = new nn.SpectralConv(cin, cout, modes, { seed, dtype: "float64", scale: 1 });
  const x = randn(shape, { seed: seed + 1, dtype: "float64" });
  const y = noGrad(() => conv.forward(x));
  assert.deepEqual(y.shape, [...shape.slice(0, -1), cout]);
  const expected = naiveSpectralConv(x.toTypedArray(), shape, conv.weight.toTypedArray(), cin, cout, modes);
  assertClose(
    flat(y),
    expected,
    { atol: 1e-10, rtol: 1e-10, scale: "max" },
    `SpectralConv ${JSON.stringify(shape)} modes ${JSON.stringify(modes)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// SpectralConv

Deno.test("SpectralConv: weight shape, seeded U(0, 1/(in·out)) init, describe", () => {
  const conv = new nn.SpectralConv(3, 4, [5, 6, 2], { seed: 7 });
  assert.deepEqual(conv.weight.shape, [4, 3, 4, 5, 6, 2, 2]);
  assert.deepEqual(nn.spectralWeightShape(3, 4, [5, 6, 2]), [4, 3, 4, 5, 6, 2, 2]);
  assert.equal(conv.dims, 3);
  assert.equal(conv.weight.dtype, "float32");
  const values = flat(conv.weight);
  assert.ok(values.every((v) => v >= 0 && v < 1 / 12), "weights in [0, 1/(in·out))");
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  assert.ok(Math.abs(mean - 1 / 24) < 0.005, `mean ${mean} ≈ 1/24`);
  assert.deepEqual(flat(new nn.SpectralConv(3, 4, [5, 6, 2], { seed: 7 }).weight), values, "same seed, same weights");
  assert.notDeepEqual(flat(new nn.SpectralConv(3, 4, [5, 6, 2], { seed: 8 }).weight), values);
  assert.equal(conv.describe(), "SpectralConv(3 → 4, modes [5, 6, 2])");
  assert.deepEqual([...conv.stateDict().keys()], ["weight"]);
});

Deno.test("SpectralConv: bad arguments and shapes raise typed errors", () => {
  assert.throws(() => new nn.SpectralConv(0, 2, [2]), ArgumentError);
  assert.throws(() => new nn.SpectralConv(2, 2, []), ArgumentError);
  assert.throws(() => new nn.SpectralConv(2, 2, [2, 2, 2, 2]), ArgumentError);
  assert.throws(() => new nn.SpectralConv(2, 2, [2, 0]), ArgumentError);
  const conv = new nn.SpectralConv(2, 3, [2, 2]);
  assert.throws(() => conv.forward(randn([1, 8, 8, 3])), ShapeError); // wrong channel count
  assert.throws(() => conv.forward(randn([8, 8, 2])), ShapeError); // no batch axis
  assert.throws(() => nn.spectralConv(randn([1, 8, 2]), randn([2, 2, 3, 4, 2])), ShapeError); // bad weight
});

Deno.test("SpectralConv matches a naive-DFT truncated spectral multiply (1-D, 2-D, 3-D, float64)", () => {
  checkAgainstNaive([2, 10, 2], 2, 3, [4], 1);
  checkAgainstNaive([2, 9, 1], 1, 2, [5], 2); // odd length, every bin kept
  checkAgainstNaive([2, 8, 6, 2], 2, 3, [3, 3], 3);
  checkAgainstNaive([1, 7, 5, 3], 3, 2, [3, 2], 4); // odd lengths
  checkAgainstNaive([2, 6, 4, 5, 2], 2, 2, [2, 2, 2], 5); // 4 corners; axis of 4 keeps its Nyquist bin
});

Deno.test("SpectralConv on grids shorter than its modes: missing frequencies count as zero", () => {
  checkAgainstNaive([2, 5, 4, 2], 2, 2, [4, 4], 6); // 2·4 > 5 on axis 1, 4 > 3 bins on axis 2
  checkAgainstNaive([1, 3, 2, 2, 1], 1, 2, [3, 2, 3], 7);
  checkAgainstNaive([1, 1, 6, 1], 1, 1, [2, 2], 8); // an axis of length 1 keeps its DC mode
});

Deno.test("SpectralConv is translation equivariant on periodic grids", () => {
  const conv = new nn.SpectralConv(2, 3, [3, 2], { seed: 2, dtype: "float64", scale: 1 });
  const x = randn([2, 8, 6, 2], { seed: 3, dtype: "float64" });
  noGrad(() => {
    const rolledOut = conv.forward(x).roll(3, 1).roll(-2, 2);
    const outOfRolled = conv.forward(x.roll(3, 1).roll(-2, 2));
    assertClose(
      flat(outOfRolled),
      flat(rolledOut),
      { atol: 1e-12, rtol: 1e-12, scale: "max" },
      "roll then conv vs conv then roll",
    );
  });
  const conv1 = new nn.SpectralConv(1, 1, [4], { seed: 4, dtype: "float64" });
  const x1 = randn([1, 16, 1], { seed: 5, dtype: "float64" });
  noGrad(() =>
    assertClose(flat(conv1.forward(x1.roll(5, 1))), flat(conv1.forward(x1).roll(5, 1)), {
      atol: 1e-12,
      rtol: 1e-12,
      scale: "max",
    }, "1-D")
  );
});

Deno.test("SpectralConv is resolution invariant on band-limited inputs", () => {
  const conv = new nn.SpectralConv(1, 2, [4, 3], { seed: 9, dtype: "float64", scale: 1 });
  const field = (n: number, m: number) => {
    const v: number[] = [];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        const s = i / n;
        const t = j / m;
        v.push(Math.sin(2 * Math.PI * (s + 2 * t)) + 0.5 * Math.cos(2 * Math.PI * 3 * s) - 0.2);
      }
    }
    return tensor(v, { shape: [1, n, m, 1], dtype: "float64" });
  };
  noGrad(() => {
    const coarse = conv.forward(field(16, 12));
    const fine = conv.forward(field(32, 24));
    const sub = fine.slice([null, [0, 32, 2], [0, 24, 2], null]);
    assertClose(
      flat(sub),
      flat(coarse),
      { atol: 1e-12, rtol: 1e-12, scale: "max" },
      "fine grid subsampled vs coarse grid",
    );
  });
});

Deno.test("gradcheck (float64): SpectralConv w.r.t. input and weights, 1-D, 2-D and 3-D", () => {
  const cases: [number[], number, number, number[]][] = [
    [[2, 8, 2], 2, 2, [3]],
    [[1, 6, 5, 2], 2, 2, [2, 2]],
    [[1, 4, 4, 3, 1], 1, 2, [2, 2, 2]],
  ];
  for (const [i, [shape, cin, cout, modes]] of cases.entries()) {
    const x = randn(shape, { seed: 10 + i, dtype: "float64" });
    const w = randn(nn.spectralWeightShape(cin, cout, modes), { seed: 20 + i, dtype: "float64" });
    assert.equal(gradcheck((a, b) => nn.spectralConv(a, b), [x, w]), true);
  }
});

Deno.test("gradcheck (float64): second order of SpectralConv on a tiny size", () => {
  const x = randn([1, 6, 1], { seed: 30, dtype: "float64" });
  const w = randn(nn.spectralWeightShape(1, 2, [2]), { seed: 31, dtype: "float64" });
  // The conv is bilinear in (x, w): make the function nonlinear so second derivatives are not trivial.
  const fn = (a: Tensor, b: Tensor) => nn.spectralConv(a, b).tanh();
  assert.equal(gradcheck(fn, [x, w], { secondOrder: true }), true);
  const x2 = randn([1, 4, 3, 1], { seed: 32, dtype: "float64" });
  const w2 = randn(nn.spectralWeightShape(1, 1, [1, 2]), { seed: 33, dtype: "float64" });
  assert.equal(gradcheck(fn, [x2, w2], { secondOrder: true }), true);
});

Deno.test("SpectralConv: gradients reach the weights of a module", () => {
  const conv = new nn.SpectralConv(2, 2, [3, 3], { seed: 0 });
  tidy(() => conv.forward(randn([2, 8, 8, 2], { seed: 1 })).square().sum().backward());
  assert.ok(conv.weight.grad, "weight has a gradient");
  assert.deepEqual(conv.weight.grad.shape, conv.weight.shape);
  assert.ok(flat(conv.weight.grad).some((v) => v !== 0));
  conv.zeroGrad();
});

// ---------------------------------------------------------------------------------------------
// FNO

function fnoParameterCount(
  d: number,
  cin: number,
  cout: number,
  width: number,
  modes: number[],
  layers: number,
  fc: number,
): number {
  const lift = cin * width + width;
  const layer = 2 ** (d - 1) * width * width * prod(modes) * 2 + width * width + width;
  const projection = width * fc + fc + fc * cout + cout;
  return lift + layers * layer + projection;
}

Deno.test("FNO: forward shapes for 1-D, 2-D and 3-D grids, with coordinates and padding", () => {
  const n1 = new nn.FNO({ inChannels: 2, outChannels: 5, modes: [4], width: 6, layers: 2, fc: 8, seed: 0 });
  assert.equal(n1.dims, 1);
  assert.deepEqual(n1.forward(randn([3, 16, 2])).shape, [3, 16, 5]);
  const n2 = new nn.FNO({
    dims: 2,
    inChannels: 1,
    outChannels: 4,
    modes: 3,
    width: 5,
    layers: 2,
    fc: 7,
    coordinates: true,
  });
  assert.deepEqual(n2.forward(randn([2, 12, 10, 1])).shape, [2, 12, 10, 4]);
  assert.deepEqual(n2.outputShape([2, 12, 10, 1]), [2, 12, 10, 4]);
  assert.equal(n2.lift.inFeatures, 3, "coordinates add one channel per axis");
  const n3 = new nn.FNO({
    dims: 3,
    inChannels: 4,
    outChannels: 6,
    modes: [2, 3, 3],
    width: 4,
    layers: 2,
    fc: 8,
    padding: [3, 0, 0],
    activateLast: true,
  });
  const y3 = n3.forward(randn([1, 6, 8, 7, 4]));
  assert.deepEqual(y3.shape, [1, 6, 8, 7, 6]);
  assert.ok(flat(y3).every((v) => v >= -0.2), "GELU on the output (activateLast)");
  assert.deepEqual(n3.outputShape([1, 6, 8, 7, 4]), [1, 6, 8, 7, 6]);
  assert.throws(() => n3.forward(randn([1, 6, 8, 4])), ShapeError);
  assert.throws(() => n3.forward(randn([1, 6, 8, 7, 3])), ShapeError);
  assert.throws(() => new nn.FNO({ inChannels: 1, outChannels: 1, modes: 4 }), ArgumentError); // dims unknown
  assert.throws(() => new nn.FNO({ dims: 2, inChannels: 1, outChannels: 1, modes: [4] }), ArgumentError);
  assert.throws(() => new nn.FNO({ dims: 2, inChannels: 1, outChannels: 1, modes: 4, padding: -1 }), ArgumentError);
});

Deno.test("FNO: parameter count matches the formula; names and seeding", () => {
  const cases: [1 | 2 | 3, number, number, number, number[], number, number, boolean][] = [
    [1, 2, 16, 8, [6], 3, 32, false],
    [2, 3, 8, 12, [4, 5], 4, 64, true],
    [3, 4, 64, 8, [3, 3, 2], 2, 16, false],
  ];
  for (const [d, cin, cout, width, modes, layers, fc, coordinates] of cases) {
    const net = new nn.FNO({ dims: d, inChannels: cin, outChannels: cout, width, modes, layers, fc, coordinates });
    assert.equal(
      net.numParameters(),
      fnoParameterCount(d, cin + (coordinates ? d : 0), cout, width, modes, layers, fc),
    );
    assert.equal(net.layers, layers);
  }
  // The PI-HC-MoE Navier–Stokes network (FNO3d, width 64, 8 layers, 8 modes, fc 256, 64 basis
  // functions) has 134,284,416 parameters by this formula; a narrower one is quick to build.
  assert.equal(fnoParameterCount(3, 4, 64, 64, [8, 8, 8], 8, 256), 134_284_416);
  const ns = new nn.FNO({ dims: 3, inChannels: 4, outChannels: 64, modes: 8, width: 8, layers: 2, fc: 256 });
  assert.equal(ns.numParameters(), fnoParameterCount(3, 4, 64, 8, [8, 8, 8], 2, 256));
  const net = new nn.FNO({ dims: 2, inChannels: 1, outChannels: 2, modes: 2, width: 3, layers: 2, fc: 4, seed: 5 });
  assert.deepEqual([...net.stateDict().keys()], [
    "lift.weight",
    "lift.bias",
    "spectral.0.weight",
    "spectral.1.weight",
    "pointwise.0.weight",
    "pointwise.0.bias",
    "pointwise.1.weight",
    "pointwise.1.bias",
    "project.weight",
    "project.bias",
    "output.weight",
    "output.bias",
  ]);
  const again = new nn.FNO({ dims: 2, inChannels: 1, outChannels: 2, modes: 2, width: 3, layers: 2, fc: 4, seed: 5 });
  assert.deepEqual(flat(again.spectral.at(1).weight), flat(net.spectral.at(1).weight));
  assert.match(net.describe(), /FNO\(2-D, 1 → 3 ×2 → 4 → 2, modes \[2, 2\]\)/);
});

Deno.test("FNO: padding only changes the result through the non-periodic axis", () => {
  // With zero padding the network no longer commutes with a roll along the padded axis, but it
  // still does along an unpadded (periodic) one.
  const net = new nn.FNO({
    dims: 2,
    inChannels: 1,
    outChannels: 2,
    modes: 3,
    width: 4,
    layers: 2,
    fc: 6,
    padding: [4, 0],
    dtype: "float64",
  });
  const x = randn([1, 8, 8, 1], { seed: 2, dtype: "float64" });
  noGrad(() => {
    assertClose(flat(net.forward(x.roll(3, 2))), flat(net.forward(x).roll(3, 2)), {
      atol: 1e-10,
      rtol: 1e-10,
      scale: "max",
    }, "roll along the periodic axis");
    const a = flat(net.forward(x.roll(3, 1)));
    const b = flat(net.forward(x).roll(3, 1));
    assert.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-6), "the padded axis is not periodic");
  });
});

Deno.test("FNO: a short training run learns the 1-D heat semigroup exp(tΔ)", () => {
  // Periodic u0 on [0, 1) with 6 random Fourier modes; target u(t) = exp(tΔ)u0, t = 0.002
  // (mode k decays by exp(−t(2πk)²): 0.92 for k = 1, 0.06 for k = 6).
  const n = 32;
  const t = 0.002;
  const K = 6;
  const sample = (batch: number, seed: number): [Tensor, Tensor] => {
    const c = randn([batch, K, 2], { seed, dtype: "float64" }).toTypedArray();
    const u0 = new Float64Array(batch * n);
    const ut = new Float64Array(batch * n);
    for (let b = 0; b < batch; b++) {
      for (let k = 1; k <= K; k++) {
        const a = c[(b * K + k - 1) * 2] / k;
        const s = c[(b * K + k - 1) * 2 + 1] / k;
        const decay = Math.exp(-t * (2 * Math.PI * k) ** 2);
        for (let i = 0; i < n; i++) {
          const th = (2 * Math.PI * k * i) / n;
          const v = a * Math.cos(th) + s * Math.sin(th);
          u0[b * n + i] += v;
          ut[b * n + i] += decay * v;
        }
      }
    }
    return [tensor(u0, { shape: [batch, n, 1] }), tensor(ut, { shape: [batch, n, 1] })];
  };
  const net = new nn.FNO({ dims: 1, inChannels: 1, outChannels: 1, modes: 8, width: 8, layers: 2, fc: 16, seed: 0 });
  const opt = new optim.Adam(net, { lr: 1e-2 });
  const [xTest, yTest] = sample(32, 999);
  const testLoss = () => noGrad(() => tidy(() => net.forward(xTest).sub(yTest).square().mean().item()));
  const before = testLoss();
  for (let step = 0; step < 150; step++) {
    tidy(() => {
      const [x, y] = sample(16, step);
      net.forward(x).sub(y).square().mean().backward();
      opt.step();
      opt.zeroGrad();
    });
  }
  const after = testLoss();
  assert.ok(after < before / 20, `test loss fell from ${before.toExponential(3)} to ${after.toExponential(3)}`);
});

Deno.test("FNO with activation checkpointing: same loss and gradients, lower peak memory", () => {
  const opts = { dims: 2, inChannels: 1, outChannels: 3, modes: 4, width: 16, layers: 4, fc: 16, seed: 3 } as const;
  const x = randn([2, 24, 24, 1], { dtype: "float64", seed: 1 });
  const run = (checkpoint: boolean) => {
    const net = new nn.FNO({ ...opts, dtype: "float64", checkpoint });
    resetPeakMemory();
    const before = memory().current;
    const loss = tidy(() => {
      const l = net.forward(x).square().mean();
      l.backward();
      return l.item();
    });
    const peak = memory().peak - before;
    const grads = net.parameters().map((p) => flat(p.grad!));
    return { loss, grads, peak };
  };
  const plain = run(false);
  const ck = run(true);
  assert.equal(ck.loss, plain.loss);
  ck.grads.forEach((g, i) =>
    g.forEach((v, j) => assert.ok(Math.abs(v - plain.grads[i][j]) <= 1e-12 * (1 + Math.abs(v))))
  );
  assert.ok(ck.peak < 0.75 * plain.peak, `peak ${ck.peak} B with checkpointing vs ${plain.peak} B without`);
});

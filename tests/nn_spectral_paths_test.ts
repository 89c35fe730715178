// The two ways a Fourier layer computes — truncated DFTs by matrix products with the fused mixing
// ("dft", the default) and full FFTs with gathers and a block product ("fft") — give the same
// layer: values and gradients in float64 on every geometry (short axes included), the same
// training gradients through an FNO; and the primitive counts of the layer and the FNO are pinned
// (a count that rises fails: each primitive is at least one GPU launch).

import assert from "node:assert/strict";
import { ArgumentError, countCalls, grad, nn, noGrad, randn, type Tensor, tidy } from "../mod.ts";
import { assertClose, assertRaises } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;
const GEOMETRIES: [number[], number[]][] = [
  [[16], [5]],
  [[9, 12], [3, 4]],
  [[6, 8, 10], [2, 3, 3]],
  [[4, 3, 5], [3, 3, 4]], // every axis shorter than its modes ask for
  [[7, 2, 6], [2, 2, 2]],
];

Deno.test("spectralConv: the dft path equals the fft path, values and gradients (float64)", () => {
  for (const [k, [grid, modes]] of GEOMETRIES.entries()) {
    const w = randn(nn.spectralWeightShape(3, 2, modes), { ...f64, seed: k });
    const x = randn([2, ...grid, 3], { ...f64, seed: 10 + k });
    const conv = (method: nn.SpectralMethod) => (a: Tensor, b: Tensor) => nn.spectralConv(a, b, { method });
    assertClose(conv("dft")(x, w), conv("fft")(x, w), { atol: 1e-12, rtol: 1e-12 }, `grid ${grid}`);
    const loss = (method: nn.SpectralMethod) => (a: Tensor, b: Tensor) => conv(method)(a, b).square().sum();
    const gd = grad(loss("dft"), { argnums: [0, 1] })(x, w);
    const gf = grad(loss("fft"), { argnums: [0, 1] })(x, w);
    for (let i = 0; i < 2; i++) assertClose(gd[i], gf[i], { atol: 1e-10, rtol: 1e-11 }, `grid ${grid}, gradient ${i}`);
  }
});

Deno.test("spectralConv (dft): float32 stays within float32 rounding of float64", () => {
  const [grid, modes] = GEOMETRIES[2];
  const w = randn(nn.spectralWeightShape(3, 2, modes), { ...f64, seed: 20 });
  const x = randn([2, ...grid, 3], { ...f64, seed: 21 });
  const y32 = nn.spectralConv(x.cast("float32"), w.cast("float32"));
  assert.equal(y32.dtype, "float32");
  assertClose(y32, nn.spectralConv(x, w), { atol: 1e-5, rtol: 1e-5 });
});

Deno.test("FNO: the same training gradients with either spectral path", () => {
  const make = (spectral: nn.SpectralMethod) =>
    new nn.FNO({
      dims: 2,
      inChannels: 1,
      outChannels: 2,
      modes: 3,
      width: 4,
      layers: 2,
      fc: 6,
      coordinates: true,
      dtype: "float64",
      seed: 3,
      spectral,
    });
  const x = randn([2, 8, 6, 1], { ...f64, seed: 30 });
  const grads = (net: nn.FNO) =>
    tidy(() => {
      net.forward(x).square().mean().backward();
      return net.parameters().map((p) => p.grad!.clone());
    });
  const a = grads(make("dft")), b = grads(make("fft"));
  a.forEach((g, i) => assertClose(g, b[i], { atol: 1e-12, rtol: 1e-10 }, `parameter ${i}`));
});

Deno.test("spectral paths: primitive counts are pinned (a count that rises fails)", () => {
  for (const [d, grid] of [[1, [12]], [2, [12, 10]], [3, [12, 10, 8]]] as [number, number[]][]) {
    const w = randn(nn.spectralWeightShape(4, 4, new Array(d).fill(3)), { ...f64, seed: 40 });
    const x = randn([2, ...grid, 4], { ...f64, seed: 41 });
    nn.spectralConv(x, w); // the DFT matrices are made once
    const { counts } = countCalls(() => noGrad(() => tidy(() => void nn.spectralConv(x, w))));
    // d truncated DFTs each way (one matmul each) and one fused mixing.
    assert.equal(counts.primitives, 2 * d + 1, `${d}-D layer: ${JSON.stringify(counts.calls)}`);
    assert.deepEqual(counts.calls, { matmul: 2 * d, "spectral.spectralMix": 1 });
    assert.equal(counts.hostReads + counts.uploads, 0, "no transfers");
  }
  // An FNO3d of 2 layers: input with coordinates (3), lift (2), per layer the spectral layer (7),
  // the pointwise matmul, its bias, the sum and the activation (none after the last), projection (5).
  const net = new nn.FNO({
    dims: 3,
    inChannels: 1,
    outChannels: 3,
    modes: 3,
    width: 4,
    layers: 2,
    fc: 5,
    coordinates: true,
    dtype: "float64",
  });
  const x = randn([2, 12, 10, 8, 1], { ...f64, seed: 42 });
  const step = () => tidy(() => net.forward(x).square().mean().backward());
  step();
  const fwd = countCalls(() => noGrad(() => tidy(() => void net.forward(x)))).counts;
  assert.equal(fwd.primitives, 31, JSON.stringify(fwd.calls));
  const both = countCalls(step).counts;
  assert.ok(both.primitives <= 95, `forward and backward: ${both.primitives} primitives (pinned at 95)`);
  assert.equal(both.hostReads, 0, "no host reads in an FNO step");
});

Deno.test("spectral method: a bad choice is an ArgumentError", () => {
  const w = randn(nn.spectralWeightShape(2, 2, [3]), { seed: 50 });
  assertRaises(
    () => nn.spectralConv(randn([1, 8, 2]), w, { method: "fast" as never }),
    ArgumentError,
    "spectralConv",
    '"fast"',
  );
  assertRaises(() => new nn.SpectralConv(2, 2, [3], { method: 1 as never }), ArgumentError, "SpectralConv", "1");
});

// The Fourier layer's fused spectral mixing (spectralMix, spectralWeightGrad) against the same
// function composed of primitives (a gather, block matrices, a batched product) and against a
// direct complex sum on the host, in float64: values, first derivatives (gradcheck and the
// fused rule against autodiff through the composition) and second derivatives.

import assert from "node:assert/strict";
import {
  ArgumentError,
  DTypeError,
  getDefaultBackend,
  grad,
  gradcheck,
  randn,
  ShapeError,
  spectralMix,
  spectralMixComposed,
  spectralWeightGrad,
  type Tensor,
  tensor,
} from "../mod.ts";
import {
  slotWeightIndex,
  spectralMixSizes,
  spectralSlots,
  spectralWeightGradSizes,
} from "../src/tensor/spectral_defs.ts";
import { assertClose, assertRaises, randomData } from "./helpers.ts";

const f64 = { dtype: "float64" } as const;
const CASES: { modes: number[]; batch: number; cin: number; cout: number }[] = [
  { modes: [3], batch: 2, cin: 3, cout: 2 },
  { modes: [2, 3], batch: 3, cin: 2, cout: 4 },
  { modes: [2, 2, 2], batch: 2, cin: 3, cout: 3 },
];

function operands(c: (typeof CASES)[number], seed: number): { x: Tensor; w: Tensor } {
  const s = spectralSlots(c.modes);
  const wShape = [2 ** (c.modes.length - 1), c.cin, c.cout, ...c.modes, 2];
  const n = wShape.reduce((a, b) => a * b, 1);
  return {
    x: tensor(randomData(c.batch * 2 * s * c.cin, seed), { ...f64, shape: [c.batch, 2, s, c.cin] }),
    w: tensor(randomData(n, seed + 1), { ...f64, shape: wShape }),
  };
}

/** out[b, s, o] = Σ_i x[b, s, i]·w[corner(s), i, o, mode(s)] as complex numbers, on the host. */
function hostMix(x: Tensor, w: Tensor, modes: number[]): number[][][][] {
  const xa = x.toArray() as number[][][][];
  const wd = w.toTypedArray();
  const [batch, , slots, cin] = x.shape;
  const cout = w.shape[2];
  const nModes = modes.reduce((a, b) => a * b, 1);
  const out = Array.from(
    { length: batch },
    () => [0, 1].map(() => Array.from({ length: slots }, () => new Array(cout).fill(0))),
  );
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < slots; s++) {
      const { corner, mode } = slotWeightIndex(modes, s);
      for (let o = 0; o < cout; o++) {
        for (let i = 0; i < cin; i++) {
          const at = 2 * (((corner * cin + i) * cout + o) * nModes + mode);
          const [xr, xi, wr, wi] = [xa[b][0][s][i], xa[b][1][s][i], wd[at], wd[at + 1]];
          out[b][0][s][o] += xr * wr - xi * wi;
          out[b][1][s][o] += xr * wi + xi * wr;
        }
      }
    }
  }
  return out;
}

Deno.test("spectral slots: 2^(d−1)·∏modes, each (corner, mode) read by exactly one slot, corners as the FNO's", () => {
  assert.equal(spectralSlots([8, 8, 8]), 2048);
  for (const modes of [[3], [2, 3], [2, 3, 2]]) {
    const seen = new Set<string>();
    for (let s = 0; s < spectralSlots(modes); s++) seen.add(JSON.stringify(slotWeightIndex(modes, s)));
    assert.equal(seen.size, spectralSlots(modes));
  }
  // [2, 3, 2]: slot (s0, s1, s2) over extents [4, 6, 2]; s0 = 3 is axis 0's second high slot (bit 0),
  // s1 = 1 a low slot of axis 1, s2 = 1.
  assert.deepEqual(slotWeightIndex([2, 3, 2], (3 * 6 + 1) * 2 + 1), { corner: 1, mode: (1 * 3 + 1) * 2 + 1 });
  assert.deepEqual(slotWeightIndex([2, 3, 2], (0 * 6 + 4) * 2 + 0), { corner: 2, mode: (0 * 3 + 1) * 2 + 0 });
});

Deno.test("spectralMix: equals the complex sum on the host and the composition of primitives (float64)", () => {
  for (const [k, c] of CASES.entries()) {
    const { x, w } = operands(c, 10 * k);
    const fused = spectralMix(x, w);
    assertClose(fused, hostMix(x, w, c.modes), { atol: 1e-13, rtol: 1e-13 }, `modes ${c.modes}`);
    assertClose(fused, spectralMixComposed(x, w), { atol: 1e-13, rtol: 1e-13 }, `modes ${c.modes}`);
    const y = tensor(randomData(c.batch * 2 * spectralSlots(c.modes) * c.cout, 10 * k + 5), {
      ...f64,
      shape: [c.batch, 2, spectralSlots(c.modes), c.cout],
    });
    assertClose(
      spectralMix(y, w, { adjoint: true }),
      spectralMixComposed(y, w, { adjoint: true }),
      { atol: 1e-13, rtol: 1e-13 },
      `adjoint, modes ${c.modes}`,
    );
  }
});

Deno.test("spectralMix: the adjoint is the adjoint (⟨mix(x), y⟩ = ⟨x, mix(y, adjoint)⟩ over real and imaginary parts)", () => {
  const c = CASES[2];
  const { x, w } = operands(c, 40);
  const y = randn([c.batch, 2, spectralSlots(c.modes), c.cout], { ...f64, seed: 41 });
  const lhs = spectralMix(x, w).mul(y).sum().item();
  const rhs = x.mul(spectralMix(y, w, { adjoint: true })).sum().item();
  assert.ok(Math.abs(lhs - rhs) <= 1e-12 * Math.max(1, Math.abs(lhs)), `${lhs} vs ${rhs}`);
});

Deno.test("spectralMix and spectralWeightGrad: gradcheck, first and second order, both operands", () => {
  for (const [k, c] of CASES.entries()) {
    const { x, w } = operands(c, 50 + k);
    gradcheck((a, b) => spectralMix(a, b), [x, w], { secondOrder: true });
    const y = randn([c.batch, 2, spectralSlots(c.modes), c.cout], { ...f64, seed: 60 + k });
    gradcheck((a, b) => spectralMix(a, b, { adjoint: true }), [y, w], { secondOrder: true });
    gradcheck((a, d) => spectralWeightGrad(a, d, c.modes), [x, y], { secondOrder: true });
  }
});

Deno.test("spectralMix: its backward rule equals autodiff through the composition, to second order", () => {
  const c = CASES[1];
  const { x, w } = operands(c, 70);
  const loss = (mix: typeof spectralMix) => (a: Tensor, b: Tensor) => mix(a, b).square().sum();
  const g1 = grad(loss(spectralMix), { argnums: [0, 1] })(x, w);
  const g2 = grad(loss(spectralMixComposed), { argnums: [0, 1] })(x, w);
  for (let i = 0; i < 2; i++) assertClose(g1[i], g2[i], { atol: 1e-12, rtol: 1e-12 }, `gradient ${i}`);
  // d/dx of Σ (∂L/∂w)² : a second derivative through the weight-gradient op.
  const second = (mix: typeof spectralMix) => (a: Tensor) => grad(loss(mix), { argnums: 1 })(a, w).square().sum();
  assertClose(grad(second(spectralMix))(x), grad(second(spectralMixComposed))(x), { atol: 1e-10, rtol: 1e-12 });
});

Deno.test("spectralMix: float32 follows float64 rounded once", () => {
  const c = CASES[2];
  const { x, w } = operands(c, 80);
  const y32 = spectralMix(x.cast("float32"), w.cast("float32"));
  assert.equal(y32.dtype, "float32");
  // The float32 operands are the rounded float64 ones; the sum is exact to float64 then rounded.
  const ref = spectralMix(x.cast("float32").cast("float64"), w.cast("float32").cast("float64"));
  assert.deepEqual(Array.from(y32.toTypedArray()), Array.from(new Float32Array(ref.toTypedArray())));
});

Deno.test("spectralMix: bad operands are typed errors naming the op and the shapes", () => {
  const { x, w } = operands(CASES[1], 90);
  assertRaises(() => spectralMix(x, w.reshape([-1])), ShapeError, "spectralMix", "weight must be");
  assertRaises(() => spectralMix(x.narrow(3, 0, 1), w), ShapeError, "spectralMix", "[batch, 2, 12 slots, 2]");
  assertRaises(() => spectralMix(x, w.cast("float32")), DTypeError, "spectralMix", "float64 and float32");
  assertRaises(() => spectralWeightGrad(x, x, [2, 0]), ShapeError, "spectralWeightGrad", "positive integers");
  const backend = getDefaultBackend();
  if (backend.spectral) {
    const v = { buffer: x.storage.buffer, shape: [3, 2, 12, 2], strides: [1, 1, 1, 1], offset: 0 };
    assertRaises(() => backend.spectral!.spectralMix(v, v, [2, 3], false, "float64"), ArgumentError, "spectralMix");
  }
});

Deno.test("a backend's spectral operands: sizes from the shapes, and typed errors for ones that do not fit", () => {
  // Modes [3, 2] keep 2 corners × 3 × 2 = 12 slots; the weight is [2, I, O, 3, 2, 2].
  const w = [2, 4, 5, 3, 2, 2];
  assert.deepEqual(spectralMixSizes([7, 2, 12, 4], w, [3, 2], false, "float32"), {
    batch: 7,
    slots: 12,
    cin: 4,
    cout: 5,
  });
  assert.deepEqual(spectralMixSizes([7, 2, 12, 5], w, [3, 2], true, "float64"), {
    batch: 7,
    slots: 12,
    cin: 5,
    cout: 4,
  });
  assert.deepEqual(spectralWeightGradSizes([7, 2, 12, 4], [7, 2, 12, 5], [3, 2], "float64").shape, w);
  assert.throws(() => spectralMixSizes([7, 2, 12, 5], w, [3, 2], false, "float64"), /spectralMix.*does not fit/);
  assert.throws(() => spectralMixSizes([7, 2, 11, 4], w, [3, 2], false, "float64"), /spectralMix.*does not fit/);
  assert.throws(
    () => spectralMixSizes([7, 2, 12, 4], w, [3, 2], false, "int32"),
    /spectralMix.*use float32 or float64/,
  );
  assert.throws(
    () => spectralWeightGradSizes([7, 2, 12, 4], [6, 2, 12, 5], [3, 2], "float64"),
    /spectralWeightGrad.*do not fit/,
  );
});

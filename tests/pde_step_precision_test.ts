// Mixed precision for the PDE methods: the network in float32 (TF32 matrix products on a GPU that
// allows them) with its output cast to float64, so the basis features, the expert solves, the
// residual and the loss stay in float64. Checked against the all-float64 network of the same seed.

import assert from "node:assert/strict";
import { pde, tidy } from "../mod.ts";

Deno.test("mixed precision: float32 network, float64 basis, solve and loss; close to all-float64", () => {
  const heat = new pde.Heat1D();
  const data = heat.generateDataset({ n: 2, nx: 32, nt: 17, dtype: "float64", seed: 0 });
  const make = (dtype: "float32" | "float64") =>
    pde.createMethod("moe", {
      problem: heat,
      grid: data.grid,
      basis: 8,
      experts: [1, 2],
      points: 64,
      network: { width: 8, modes: 4, layers: 2, fc: 16, dtype, outputDtype: "float64", seed: 1 },
    });
  const mixed = make("float32"), full = make("float64");
  const net = mixed.model as pde.PdeNetwork;
  assert.equal(net.fno.lift.weight.dtype, "float32");
  assert.equal(net.outputDtype, "float64");
  assert.equal(tidy(() => net.forward(data.u0).dtype), "float64");
  const step = (m: pde.TrainingMethod) =>
    tidy(() => {
      m.model.zeroGrad();
      return m.lossAndGrad({ u0: data.u0, u: data.u }, 0);
    });
  const a = step(mixed), b = step(full);
  // The basis carries float32 rounding (~1e-7 relative); the least-squares solve amplifies it by the
  // conditioning of its normal matrix, so the losses agree to about 1e-4, not to float64 precision.
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-3 * Math.abs(b.loss), `loss ${a.loss} (mixed) vs ${b.loss} (float64)`);
  assert.notEqual(a.loss, b.loss, "the network really ran in float32");
  for (const p of mixed.model.parameters()) {
    assert.equal(p.grad?.dtype, "float32", "the gradients reach the float32 parameters");
    assert.ok(Number.isFinite(p.grad!.abs().max().item()));
  }
  const ga = mixed.model.parameters()[0].grad!.cast("float64"), gb = full.model.parameters()[0].grad!;
  // Through the implicit adjoint the gradient is more sensitive than the loss (about 1% relative
  // here), but it points the same way.
  const cosine = ga.mul(gb).sum().item() / (ga.norm().item() * gb.norm().item());
  assert.ok(cosine > 0.999, `the lift gradients' cosine is ${cosine}`);
});

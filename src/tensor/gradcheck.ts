/**
 * Checks a function's gradients against central finite differences in float64: its
 * vector–Jacobian products (reverse mode), its Jacobian–vector products (forward mode) and,
 * optionally, the gradients of its gradients.
 *
 * @module
 */

import { noGrad } from "./autograd.ts";
import { DTypeError, PatchworkError } from "./errors.ts";
import { fmtShape } from "./shape.ts";
import type { Tensor } from "./tensor.ts";
import { Generator, randn, tensor } from "./creation.ts";
import { concat } from "./ops_shape.ts";
import { jvp, vjp } from "./transforms.ts";
import { checkFunction, checkInteger, checkNumber, checkOneOf, checkOptions, checkTensors } from "./validate.ts";

/** A gradient that disagrees with finite differences. */
export class GradcheckError extends PatchworkError {}

/** Options of {@link gradcheck}. */
export interface GradcheckOptions {
  /** Finite-difference step. Default 1e-6. */
  eps?: number;
  /** Absolute tolerance. Default 1e-5. */
  atol?: number;
  /** Relative tolerance. Default 1e-4. */
  rtol?: number;
  /** Seed of the random cotangent and tangents. Default 0. */
  seed?: number;
  /** Also check forward mode (JVPs). Default true. */
  checkJvp?: boolean;
  /** Also check the gradients of the VJP (second order). Default false. */
  secondOrder?: boolean;
}

function perturbed(x: Tensor, host: Float64Array, j: number, delta: number): Tensor {
  const copy = host.slice();
  copy[j] += delta;
  return tensor(copy, { shape: x.shape, dtype: "float64", backend: x.backend });
}

function shifted(x: Tensor, t: Tensor, scale: number): Tensor {
  return noGrad(() => x.add(t.mul(scale)));
}

function dot(a: Tensor, b: Tensor): number {
  return noGrad(() => a.mul(b).sum().item());
}

function compare(what: string, analytic: Float64Array, numeric: Float64Array, o: Required<GradcheckOptions>): void {
  for (let j = 0; j < numeric.length; j++) {
    const diff = Math.abs(analytic[j] - numeric[j]);
    if (!(diff <= o.atol + o.rtol * Math.abs(numeric[j]))) {
      throw new GradcheckError(
        "gradcheck",
        `${what}, element ${j}: analytic ${analytic[j]} vs numeric ${numeric[j]} ` +
          `(|diff| ${diff.toExponential(2)} > atol ${o.atol} + rtol ${o.rtol}·|numeric|)`,
      );
    }
  }
}

function asF64(t: Tensor): Float64Array {
  return Float64Array.from(t.toTypedArray());
}

/**
 * Compares the gradients of `fn` at `inputs` (float64 tensors) with central finite differences.
 * Returns true, or throws a {@link GradcheckError} naming the input, element and both values.
 *
 * @example
 * ```ts
 * import { gradcheck } from "./gradcheck.ts";
 * import { randn } from "./creation.ts";
 * const x = randn([3, 4], { dtype: "float64", seed: 1 });
 * gradcheck((a) => a.tanh().sum(1), [x], { secondOrder: true }); // true
 * ```
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options: GradcheckOptions = {},
): true {
  checkFunction("gradcheck", "fn", fn);
  checkTensors("gradcheck", "inputs", inputs, 1);
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-4, seed = 0, checkJvp = true, secondOrder = false } = checkOptions(
    "gradcheck",
    options,
    ["eps", "atol", "rtol", "seed", "checkJvp", "secondOrder"],
  );
  const o: Required<GradcheckOptions> = {
    eps: checkNumber("gradcheck", "eps", eps, { min: 0, minOpen: true }),
    atol: checkNumber("gradcheck", "atol", atol, { min: 0 }),
    rtol: checkNumber("gradcheck", "rtol", rtol, { min: 0 }),
    seed: checkInteger("gradcheck", "seed", seed, { min: 0 }),
    checkJvp: checkOneOf("gradcheck", "checkJvp", checkJvp, [true, false]),
    secondOrder: checkOneOf("gradcheck", "secondOrder", secondOrder, [true, false]),
  };
  for (const [i, x] of inputs.entries()) {
    if (x.dtype !== "float64") {
      throw new DTypeError("gradcheck", `input ${i} is ${x.dtype}; finite differences need float64 inputs`);
    }
  }
  const gen = new Generator(o.seed);
  const y0 = noGrad(() => fn(...inputs));
  if (y0.dtype !== "float64") {
    throw new DTypeError("gradcheck", `the output is ${y0.dtype}; finite differences need a float64 output`);
  }
  const v = randn(y0.shape, { dtype: "float64", generator: gen, backend: y0.backend });
  const [, back] = vjp(fn, ...inputs);
  const analytic = back(v);
  inputs.forEach((x, i) => {
    const host = asF64(x);
    const numeric = new Float64Array(host.length);
    for (let j = 0; j < host.length; j++) {
      const up = noGrad(() => fn(...inputs.map((z, k) => (k === i ? perturbed(x, host, j, o.eps) : z))));
      const down = noGrad(() => fn(...inputs.map((z, k) => (k === i ? perturbed(x, host, j, -o.eps) : z))));
      numeric[j] = (dot(up, v) - dot(down, v)) / (2 * o.eps);
    }
    compare(`VJP of input ${i} (shape ${fmtShape(x.shape)})`, asF64(analytic[i]), numeric, o);
  });
  if (o.checkJvp) {
    const tangents = inputs.map((x) => randn(x.shape, { dtype: "float64", generator: gen, backend: x.backend }));
    const [, dy] = jvp(fn, inputs, tangents);
    const up = noGrad(() => fn(...inputs.map((x, i) => shifted(x, tangents[i], o.eps))));
    const down = noGrad(() => fn(...inputs.map((x, i) => shifted(x, tangents[i], -o.eps))));
    const numeric = asF64(noGrad(() => up.sub(down).div(2 * o.eps)));
    compare(`JVP (output shape ${fmtShape(y0.shape)})`, asF64(dy), numeric, o);
  }
  if (o.secondOrder) {
    const backward = (...xs: Tensor[]) => {
      const [, b] = vjp(fn, ...xs);
      return concat(b(v).map((g) => g.reshape([-1])), 0);
    };
    gradcheck(backward, inputs, { ...o, secondOrder: false, checkJvp: false });
  }
  return true;
}

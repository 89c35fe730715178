/**
 * The diagonal linear recurrence of a selective state-space model as one differentiable op:
 *
 * ```text
 * h[t] = a[t] ⊙ h[t − 1] + b[t]        (h[−1] = h0)           forward
 * h[t] = a[t] ⊙ h[t + 1] + b[t]        (h[T] = h0)            reverse
 * ```
 *
 * over `[batch, T, N]` tensors, the time axis being axis 1. The forward is the backend's fused
 * primitive `linearScan`: on the CPU `linearScanHost` (src/backend/cpu/ssm_scan.ts), a sequential
 * scan per state column; on the GPU `kernels/ssm_scan.cu` (one block per column, chunks of steps
 * composed in shared memory); both carry the state in float64 with one multiply then one add per
 * step, each step rounded once to the output dtype. The backward is itself a reverse scan written
 * in tensor ops, so gradients of gradients work:
 *
 * ```text
 * μ[t] = g[t] + a[t + 1] ⊙ μ[t + 1]     da[t] = μ[t] ⊙ h[t − 1]     db[t] = μ[t]     dh0 = a[0] ⊙ μ[0]
 * ```
 *
 * @module
 */

import {
  ArgumentError,
  type Backend,
  concat,
  customFunction,
  DTypeError,
  fmtShape,
  isGradEnabled,
  ShapeError,
  Tensor,
  tensor,
  zeros,
} from "../tensor/mod.ts";
import { linearScanHost } from "../backend/cpu/ssm_scan.ts";

/**
 * Options of {@link linearScan}.
 *
 * @example
 * ```ts
 * import type { LinearScanOptions } from "./ssm_scan.ts";
 * const o: LinearScanOptions = { reverse: true };
 * ```
 */
export interface LinearScanOptions {
  /** The state before the first step, `[batch, N]` (zeros by default). */
  initial?: Tensor | null;
  /** Run from the last step to the first (`h[t] = a[t]·h[t + 1] + b[t]`). Default false. */
  reverse?: boolean;
}

function checkOperands(a: Tensor, b: Tensor, h0: Tensor | null): void {
  const op = "linearScan";
  if (a.ndim !== 3 || b.ndim !== 3 || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(op, `a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)} must both be [batch, T, N]`);
  }
  if (a.dtype !== b.dtype || a.dtype === "int32") {
    throw new DTypeError(op, `a (${a.dtype}) and b (${b.dtype}) must share one float dtype`);
  }
  if (a.backend !== b.backend) throw new ArgumentError(op, "a and b live on different backends");
  if (h0 === null) return;
  const [batch, , n] = a.shape;
  if (h0.ndim !== 2 || h0.shape[0] !== batch || h0.shape[1] !== n) {
    throw new ShapeError(op, `initial ${fmtShape(h0.shape)} must be [batch, N] = [${batch}, ${n}]`);
  }
  if (h0.dtype !== a.dtype) throw new DTypeError(op, `initial is ${h0.dtype} but a is ${a.dtype}`);
}

/** The scan's values, without recording: the backend's fused primitive (the kernel on the GPU), else on the host. */
function scanValues(a: Tensor, b: Tensor, h0: Tensor, reverse: boolean): Tensor {
  const [batch, steps, width] = a.shape;
  const fused = (a.backend as Backend).fused;
  if (fused) {
    const h = fused.linearScan(a.contiguous(), b.contiguous(), h0.contiguous(), steps, reverse, a.dtype);
    return Tensor.fromBuffer(h, a.shape, a.dtype);
  }
  const h = linearScanHost(a.toTypedArray(), b.toTypedArray(), h0.toTypedArray(), batch, steps, width, reverse);
  return tensor(h, { shape: a.shape, dtype: a.dtype, backend: a.backend });
}

/**
 * `x` moved one step along time, `fill` `[batch, N]` entering at the start (forward) or the end
 * (reverse): the state before each step.
 */
function shifted(x: Tensor, fill: Tensor, towardEnd: boolean): Tensor {
  const steps = x.shape[1];
  const edge = fill.unsqueeze(1);
  if (steps === 1) return edge;
  return towardEnd ? concat([edge, x.narrow(1, 0, steps - 1)], 1) : concat([x.narrow(1, 1, steps - 1), edge], 1);
}

const scanFn = (reverse: boolean) =>
  customFunction(
    (a: Tensor, b: Tensor, h0: Tensor) => {
      const h = scanValues(a, b, h0, reverse);
      return { output: h, residuals: [a, b, h0, h] };
    },
    ([a, b, h0, saved], g, needs) => {
      // Recorded (a gradient of this gradient is wanted): the states again, as a function of the inputs.
      const h = isGradEnabled() ? linearScan(a, b, { initial: h0, reverse }) : saved;
      // The adjoint runs the other way, each step weighted by the next step's coefficient.
      const none = zeros([a.shape[0], a.shape[2]], { dtype: a.dtype, backend: a.backend });
      const mu = linearScan(shifted(a, none, reverse), g, { reverse: !reverse });
      const first = reverse ? a.shape[1] - 1 : 0;
      return [
        needs[0] ? mu.mul(shifted(h, h0, !reverse)) : null,
        needs[1] ? mu : null,
        needs[2] ? a.narrow(1, first, 1).squeeze(1).mul(mu.narrow(1, first, 1).squeeze(1)) : null,
      ];
    },
  );

const forwardScan = scanFn(false);
const reverseScan = scanFn(true);

/**
 * The states `h` `[batch, T, N]` of the diagonal recurrence `h[t] = a[t]·h[t − 1] + b[t]` (see the
 * module comment), differentiable in `a`, `b` and `initial` (to any order).
 *
 * @example
 * ```ts
 * import { linearScan } from "./ssm_scan.ts";
 * import { tensor } from "../tensor/mod.ts";
 * const a = tensor([[[0.5], [0.5], [0.5]]]), b = tensor([[[1], [1], [1]]]);
 * linearScan(a, b).toArray(); // [[[1], [1.5], [1.75]]]
 * ```
 */
export function linearScan(a: Tensor, b: Tensor, options: LinearScanOptions = {}): Tensor {
  const h0 = options.initial ?? null;
  checkOperands(a, b, h0);
  const start = h0 ?? zeros([a.shape[0], a.shape[2]], { dtype: a.dtype, backend: a.backend });
  return (options.reverse ? reverseScan : forwardScan)(a, b, start).output;
}

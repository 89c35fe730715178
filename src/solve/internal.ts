/**
 * Helpers shared by the solver modules: the backend's linear algebra (or a `DeviceError`),
 * cached identity and triangle masks built on the device, diagonal views, finiteness flags, the
 * one host read that turns per-problem flags into typed errors, and operand preparation (casts,
 * broadcasting, vector right-hand sides) for the dense solves.
 *
 * @module
 */

import type { Backend, LinalgPrimitives } from "../tensor/backend.ts";
import type { DType } from "../tensor/dtype.ts";
import { ArgumentError, DeviceError, DTypeError, NonFiniteError, ShapeError } from "../tensor/errors.ts";
import { broadcastShapes, fmtShape } from "../tensor/shape.ts";
import { cacheConstant } from "../tensor/memory.ts";
import { Tensor } from "../tensor/tensor.ts";
import { arange } from "../tensor/creation.ts";
import { noGrad } from "../tensor/autograd.ts";
import { expand, stack } from "../tensor/ops_shape.ts";
import { checkTensor } from "../tensor/validate.ts";
import { SingularMatrixError } from "./errors.ts";

/**
 * The backend's dense linear algebra, or a `DeviceError` naming the op and the backend.
 *
 * @example
 * ```ts
 * import { linalgOf } from "./internal.ts";
 * import { zeros } from "../tensor/mod.ts";
 * // linalgOf("solve", zeros([2, 2])).lu(...)
 * ```
 */
export function linalgOf(op: string, t: Tensor): LinalgPrimitives {
  const l = t.backend.linalg;
  if (!l) {
    throw new DeviceError(
      op,
      `the ${t.backend.name} backend has no dense linear algebra (Backend.linalg is not implemented there yet)`,
    );
  }
  return l;
}

/**
 * The float dtype two or more solver operands compute in (float32 unless one is float64);
 * int32 and bfloat16 operands are refused with a `DTypeError`.
 *
 * @example
 * ```ts
 * import { solveDType } from "./internal.ts";
 * import { zeros } from "../tensor/mod.ts";
 * solveDType("solve", zeros([2, 2], { dtype: "float64" })); // "float64"
 * ```
 */
export function solveDType(op: string, ...ts: Tensor[]): DType {
  let dtype: DType = "float32";
  for (const t of ts) {
    if (!(t instanceof Tensor)) throw new DTypeError(op, "operands must be Tensors");
    if (t.dtype !== "float32" && t.dtype !== "float64") {
      throw new DTypeError(op, `needs float32 or float64 operands, got ${t.dtype}; cast first`);
    }
    if (t.dtype === "float64") dtype = "float64";
    ts[0].sameBackend(op, t);
  }
  return dtype;
}

const cache = new WeakMap<Backend, Map<string, Tensor>>();

function cached(backend: Backend, key: string, make: () => Tensor): Tensor {
  let m = cache.get(backend);
  if (!m) cache.set(backend, m = new Map());
  let t = m.get(key);
  if (!t || t.disposed) {
    t = cacheConstant(noGrad(make));
    m.set(key, t);
  }
  return t;
}

/**
 * A cached constant `[n, n]` matrix on `backend`, built on the device from index comparisons (no
 * host upload): "eye" (identity), "tril" (ones on and below the diagonal), "strictTril" (below),
 * "triu", "strictTriu", and "phi" (strictly lower ones and ½ on the diagonal).
 *
 * @example
 * ```ts
 * import { constantMatrix } from "./internal.ts";
 * import { getDefaultBackend } from "../tensor/mod.ts";
 * constantMatrix("eye", 2, "float32", getDefaultBackend()).toArray(); // [[1, 0], [0, 1]]
 * ```
 */
export function constantMatrix(
  kind: "eye" | "tril" | "strictTril" | "triu" | "strictTriu" | "phi",
  n: number,
  dtype: DType,
  backend: Backend,
): Tensor {
  return cached(backend, `${kind}:${n}:${dtype}`, () => {
    const i = arange(0, n, 1, { dtype, backend }).reshape([n, 1]);
    const j = arange(0, n, 1, { dtype, backend }).reshape([1, n]);
    switch (kind) {
      case "eye":
        return i.eq(j);
      case "tril":
        return i.ge(j);
      case "strictTril":
        return i.gt(j);
      case "triu":
        return i.le(j);
      case "strictTriu":
        return i.lt(j);
      case "phi":
        return i.gt(j).add(i.eq(j).mul(0.5));
    }
  });
}

/**
 * The diagonal of each matrix of `t` `[...batch, n, n]` as a view `[...batch, n]` (no copy, not
 * recorded for autodiff).
 *
 * @example
 * ```ts
 * import { diagonalView } from "./internal.ts";
 * import { tensor } from "../tensor/mod.ts";
 * diagonalView(tensor([[1, 2], [3, 4]])).toArray(); // [1, 4]
 * ```
 */
export function diagonalView(t: Tensor): Tensor {
  const r = t.ndim;
  const n = Math.min(t.shape[r - 2], t.shape[r - 1]);
  return new Tensor(
    t.storage,
    [...t.shape.slice(0, r - 2), n],
    [...t.strides.slice(0, r - 2), t.strides[r - 2] + t.strides[r - 1]],
    t.offset,
    t.dtype,
  );
}

/**
 * 1 where any element of the trailing `axes` axes of `x` is NaN or ±Inf, else 0 (float, shape
 * of the leading axes). Not recorded for autodiff.
 *
 * @example
 * ```ts
 * import { nonFiniteMask } from "./internal.ts";
 * import { tensor } from "../tensor/mod.ts";
 * nonFiniteMask(tensor([[1, NaN], [2, 3]]), 1).toArray(); // [1, 0]
 * ```
 */
export function nonFiniteMask(x: Tensor, axes: number): Tensor {
  return noGrad(() => {
    const bad = x.sub(x).ne(0);
    const list = Array.from({ length: axes }, (_, i) => x.ndim - 1 - i);
    return list.length ? bad.max(list) : bad;
  });
}

/** One per-problem check: a 0/1 (or status) tensor shaped like the batch, and how to report it. */
export interface BatchCheck {
  /** Nonzero where the entry failed; shape `batch`. */
  readonly flags: Tensor;
  /** What failed, for the message ("singular", "not positive definite", "non-finite input a"). */
  readonly what: string;
  /** The error class to raise. */
  readonly kind: "singular" | "nonfinite";
}

/**
 * Reads every check in one host transfer and throws the first failing one as a typed error
 * (`NonFiniteError` checks take precedence over `SingularMatrixError` ones).
 *
 * @example
 * ```ts
 * import { raiseFailures } from "./internal.ts";
 * import { tensor } from "../tensor/mod.ts";
 * raiseFailures("solve", [2], [{ flags: tensor([0, 0]), what: "singular", kind: "singular" }]); // no error
 * ```
 */
export function raiseFailures(op: string, batch: readonly number[], checks: readonly BatchCheck[]): void {
  if (checks.length === 0) return;
  const host = noGrad(() => {
    const flat = checks.map((c) => c.flags.cast("float32").reshape([-1]));
    const all = flat.length === 1 ? flat[0] : stack(flat, 0);
    return all.toTypedArray();
  });
  const count = host.length / checks.length;
  const ordered = [...checks.keys()].sort((a, b) =>
    (checks[a].kind === "nonfinite" ? 0 : 1) - (checks[b].kind === "nonfinite" ? 0 : 1)
  );
  for (const c of ordered) {
    const bad: number[] = [];
    for (let i = 0; i < count; i++) if (host[c * count + i] !== 0) bad.push(i);
    if (bad.length === 0) continue;
    const where = batch.length === 0
      ? "the matrix"
      : `batch entries [${bad.slice(0, 16).join(", ")}${bad.length > 16 ? ", …" : ""}] of batch shape ${
        fmtShape(batch)
      }`;
    if (checks[c].kind === "nonfinite") throw new NonFiniteError(op, `${checks[c].what} in ${where}`);
    throw new SingularMatrixError(op, bad, `${checks[c].what}: ${where}`);
  }
}

/**
 * Machine epsilon of a float dtype.
 *
 * @example
 * ```ts
 * import { epsilonOf } from "./internal.ts";
 * epsilonOf("float32"); // 1.1920928955078125e-7
 * ```
 */
export function epsilonOf(dtype: DType): number {
  return dtype === "float64" ? Number.EPSILON : 2 ** -23;
}

// ------------------------------------------------------------------------------- operand handling

/**
 * The order n of square matrices `a` `[..., n, n]`, or a `ShapeError` naming `op`.
 *
 * @example
 * ```ts
 * import { squareCheck } from "./internal.ts";
 * import { zeros } from "../tensor/mod.ts";
 * squareCheck("solve", zeros([4, 3, 3])); // 3
 * ```
 */
export function squareCheck(op: string, a: Tensor): number {
  checkTensor(op, "A", a);
  if (a.ndim < 2) throw new ShapeError(op, `needs a matrix [..., n, n], got shape ${fmtShape(a.shape)}`);
  const n = a.shape[a.ndim - 1];
  if (a.shape[a.ndim - 2] !== n) {
    throw new ShapeError(op, `needs square matrices [..., n, n], got shape ${fmtShape(a.shape)}`);
  }
  return n;
}

/** Operands of a solve after {@link prepare}. */
export interface Prepared {
  /** A, cast and broadcast to `[...batch, rows, n]`. */
  a: Tensor;
  /** b, cast and broadcast to `[...batch, rows, k]`. */
  b: Tensor;
  /** The broadcast batch shape. */
  batch: number[];
  /** Whether b was a vector `[rows]` (the result is then `[...batch, n]`). */
  vector: boolean;
}

/**
 * Casts to a common float dtype, turns a 1-D b into a column, and broadcasts the batch axes.
 *
 * @example
 * ```ts
 * import { prepare } from "./internal.ts";
 * import { zeros } from "../tensor/mod.ts";
 * prepare("solve", zeros([2, 3, 3]), zeros([3]), 3).b.shape; // [2, 3, 1]
 * ```
 */
export function prepare(op: string, a: Tensor, b: Tensor, rows: number): Prepared {
  checkTensor(op, "b", b);
  const dtype = solveDType(op, a, b);
  const vector = b.ndim === 1;
  let bb = vector ? b.reshape([b.shape[0], 1]) : b;
  if (bb.ndim < 2) throw new ShapeError(op, `b must be [..., n, k] or [n], got shape ${fmtShape(b.shape)}`);
  if (bb.shape[bb.ndim - 2] !== rows) {
    throw new ShapeError(
      op,
      `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not agree: A has ${rows} rows, b has ${
        bb.shape[bb.ndim - 2]
      }`,
    );
  }
  let aa = a.dtype === dtype ? a : a.cast(dtype);
  bb = bb.dtype === dtype ? bb : bb.cast(dtype);
  const batch = broadcastShapes(op, aa.shape.slice(0, -2), bb.shape.slice(0, -2));
  aa = expand(aa, [...batch, ...aa.shape.slice(-2)]);
  bb = expand(bb, [...batch, ...bb.shape.slice(-2)]);
  return { a: aa, b: bb, batch, vector };
}

/**
 * Drops the column axis again where b was a vector.
 *
 * @example
 * ```ts
 * import { finish } from "./internal.ts";
 * import { zeros } from "../tensor/mod.ts";
 * finish(zeros([3, 1]), true).shape; // [3]
 * ```
 */
export function finish(x: Tensor, vector: boolean): Tensor {
  return vector ? x.reshape(x.shape.slice(0, -1)) : x;
}

/**
 * `a + μI` (not recorded in μ), checking μ ≥ 0.
 *
 * @example
 * ```ts
 * import { withRegularization } from "./internal.ts";
 * import { zeros } from "../tensor/mod.ts";
 * withRegularization(zeros([2, 2]), 0.5).toArray(); // [[0.5, 0], [0, 0.5]]
 * ```
 */
export function withRegularization(a: Tensor, mu: number): Tensor {
  if (!(mu >= 0) || !Number.isFinite(mu)) {
    throw new ArgumentError("solve", `regularization must be a finite number ≥ 0, got ${mu}`);
  }
  if (mu === 0) return a;
  const n = a.shape[a.ndim - 1];
  return noGrad(() => a.add(constantMatrix("eye", n, a.dtype, a.backend).mul(mu)));
}

/**
 * 1 where the pivot ratio min|dᵢ| / max|dᵢ| of the diagonal `d` [..., n] is at most `tol`.
 *
 * @example
 * ```ts
 * import { tinyPivots } from "./internal.ts";
 * import { tensor } from "../tensor/mod.ts";
 * tinyPivots(tensor([[1, 1e-20], [1, 2]]), 1e-15).toArray(); // [1, 0]
 * ```
 */
export function tinyPivots(d: Tensor, tol: number): Tensor {
  return noGrad(() => {
    const abs = d.abs();
    return abs.min(-1).le(abs.max(-1).mul(tol));
  });
}

/**
 * Banded linear operators along one axis: a uniform stencil in the interior, wrap-around on
 * periodic axes, and a few dense rows at each end ({@link BandedOperator}). {@link stencil} applies
 * one in a single backend pass (`Backend.stencil`: one fused kernel on the GPU) — finite
 * differences are built on it (`src/pde/finite_difference.ts`).
 *
 * Gradient: the operator is linear, so the VJP of `y = A·x` along an axis is `x̄ = Aᵀ·ȳ` along the
 * same axis, again a banded operator ({@link transposeBanded}) applied with the same op; gradients
 * of gradients come out of the same rule. With one-sided boundary rows the transpose has more and
 * wider dense rows near the ends: it is worked out on the host by materialising the columns of A
 * that the boundary rows touch.
 *
 * @module
 */

import { type BandedOperator, type DenseBlock, MAX_BANDED_COEFFICIENTS } from "./backend.ts";
import { record } from "./autograd.ts";
import { ArgumentError, ShapeError } from "./errors.ts";
import { broadcastShapes, fmtShape, shapesEqual } from "./shape.ts";
import { checkOptions, checkTensor, describe, normalizeAxis, sameBackend } from "./validate.ts";
import { Tensor } from "./tensor.ts";
import { isFloat } from "./dtype.ts";
import { broadcastView, cast } from "./ops_elementwise.ts";
import { sumTo } from "./ops_reduce.ts";

/**
 * A banded operator as a user writes it: dense boundary rows as nested arrays (equal lengths).
 *
 * @example
 * ```ts
 * import type { BandedOperatorSpec } from "./ops_stencil.ts";
 * const d2: BandedOperatorSpec = { n: 16, lo: -1, stencil: [1, -2, 1], periodic: true };
 * ```
 */
export interface BandedOperatorSpec {
  /** Length of the axis. */
  readonly n: number;
  /** Offset of `stencil[0]` from the row (−r for a centred stencil of radius r). */
  readonly lo: number;
  /** Interior coefficients, for offsets `lo`, `lo + 1`, …. */
  readonly stencil: readonly number[];
  /** Interior columns wrap around (default false: columns outside the axis read as zero). */
  readonly periodic?: boolean;
  /** Explicit first rows; row i reads columns 0, 1, … (default none). */
  readonly head?: readonly (readonly number[])[];
  /** Explicit last rows; each reads the last columns, ending at n − 1 (default none). */
  readonly tail?: readonly (readonly number[])[];
}

const EMPTY_BLOCK: DenseBlock = Object.freeze({ rows: 0, cols: 0, values: Object.freeze([]) as readonly number[] });

/** Checks that an operator (or its spec) is an object before its fields are read. */
function checkOperator(op: string, value: unknown): void {
  if (value === null || typeof value !== "object" || value instanceof Tensor || Array.isArray(value)) {
    throw new ArgumentError(op, `the operator must be an object { n, lo, stencil, ... }, got ${describe(value)}`);
  }
}

function blockOf(op: string, what: string, rows: readonly (readonly number[])[] | undefined): DenseBlock {
  if (rows === undefined || (Array.isArray(rows) && rows.length === 0)) return EMPTY_BLOCK;
  if (!Array.isArray(rows) || !rows.every((r) => Array.isArray(r))) {
    throw new ArgumentError(op, `the ${what} must be a list of rows (lists of numbers), got ${describe(rows)}`);
  }
  const cols = rows[0].length;
  if (rows.some((r) => r.length !== cols)) throw new ArgumentError(op, `the ${what} rows must have equal lengths`);
  return Object.freeze({ rows: rows.length, cols, values: Object.freeze(rows.flat()) });
}

/** Operators known to be valid, and the transpose of each (both directions). */
const valid = new WeakSet<BandedOperator>();
const transposes = new WeakMap<BandedOperator, BandedOperator>();

function coefficientCount(op: BandedOperator): number {
  return op.stencil.length + op.head.rows * op.head.cols + op.tail.rows * op.tail.cols;
}

function checkBlock(op: string, what: string, b: DenseBlock, n: number): void {
  if (b === null || typeof b !== "object") {
    throw new ArgumentError(
      op,
      `the ${what} must be a block { rows, cols, values }, got ${describe(b)} (bandedOperator(spec) builds one)`,
    );
  }
  if (!Number.isInteger(b.rows) || !Number.isInteger(b.cols) || b.rows < 0 || b.cols < 0) {
    throw new ArgumentError(op, `the ${what} block needs non-negative integer rows and cols`);
  }
  if (b.rows > 0 && b.cols > n) throw new ArgumentError(op, `the ${what} block reads ${b.cols} columns of ${n}`);
  if (!Array.isArray(b.values) || b.values.length !== b.rows * b.cols) {
    throw new ArgumentError(op, `the ${what} block needs ${b.rows * b.cols} values`);
  }
  if (!b.values.every(Number.isFinite)) throw new ArgumentError(op, `the ${what} block has a non-finite value`);
}

function validate(op: BandedOperator): void {
  const name = "bandedOperator";
  const { n, lo, stencil: s, periodic, head, tail } = op;
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 31) {
    throw new ArgumentError(name, `n must be an integer in [0, 2^31), got ${n}`);
  }
  if (!Number.isInteger(lo) || Math.abs(lo) > 2 ** 30) {
    throw new ArgumentError(name, `lo must be an integer of magnitude at most 2^30, got ${lo}`);
  }
  if (!Array.isArray(s) || !s.every(Number.isFinite)) {
    throw new ArgumentError(name, "the stencil must be an array of finite numbers");
  }
  if (typeof periodic !== "boolean") throw new ArgumentError(name, "periodic must be a boolean");
  checkBlock(name, "head", head, n);
  checkBlock(name, "tail", tail, n);
  if (periodic && (head.rows > 0 || tail.rows > 0)) {
    throw new ArgumentError(name, "a periodic operator has no head or tail rows");
  }
  if (head.rows + tail.rows > n) {
    throw new ArgumentError(name, `${head.rows} head and ${tail.rows} tail rows do not fit in n = ${n}`);
  }
  if (coefficientCount(op) > MAX_BANDED_COEFFICIENTS) {
    throw new ArgumentError(
      name,
      `the operator has ${coefficientCount(op)} coefficients, more than ${MAX_BANDED_COEFFICIENTS}`,
    );
  }
}

/** Calls `fn(column, coefficient)` for every stored entry of row i (repeats add up). */
function forEachEntry(op: BandedOperator, i: number, fn: (col: number, c: number) => void): void {
  const { n, lo, stencil: s, periodic, head, tail } = op;
  if (i < head.rows) {
    for (let c = 0; c < head.cols; c++) fn(c, head.values[i * head.cols + c]);
    return;
  }
  const t0 = n - tail.rows;
  if (i >= t0) {
    for (let c = 0; c < tail.cols; c++) fn(n - tail.cols + c, tail.values[(i - t0) * tail.cols + c]);
    return;
  }
  for (let k = 0; k < s.length; k++) {
    const col = i + lo + k;
    if (periodic) fn(((col % n) + n) % n, s[k]);
    else if (col >= 0 && col < n) fn(col, s[k]);
  }
}

/**
 * Rows given as maps column → value as a dense block: a head block reads columns from 0, a tail
 * block (`end` = n) columns ending at n − 1.
 */
function denseBlock(rows: readonly Map<number, number>[], end?: number): DenseBlock {
  if (rows.length === 0) return EMPTY_BLOCK;
  let first = Infinity, last = -Infinity;
  for (const r of rows) {
    for (const c of r.keys()) {
      first = Math.min(first, c);
      last = Math.max(last, c);
    }
  }
  const start = end === undefined ? 0 : Math.min(first, end);
  const cols = last < start ? 0 : end === undefined ? last + 1 : end - start;
  const values = new Array<number>(rows.length * cols).fill(0);
  rows.forEach((r, j) => {
    for (const [c, v] of r) values[j * cols + c - start] = v;
  });
  return Object.freeze({ rows: rows.length, cols, values: Object.freeze(values) });
}

function computeTranspose(op: BandedOperator): BandedOperator {
  const { n, lo, stencil: s, periodic, head, tail } = op;
  const w = s.length;
  const stencilT = Object.freeze([...s].reverse());
  const loT = -(lo + w - 1);
  if (periodic || (head.rows === 0 && tail.rows === 0)) {
    // A pure band (wrapped or zero-padded) transposes to the reversed band.
    return Object.freeze({ n, lo: loT, stencil: stencilT, periodic, head: EMPTY_BLOCK, tail: EMPTY_BLOCK });
  }
  const hi = lo + w - 1;
  // Rows j of Aᵀ (= columns j of A) that are not the reversed band: those the blocks read, and
  // those whose band taps would land on a head or tail row of A.
  const clampN = (v: number) => Math.max(0, Math.min(n, v));
  let jh = clampN(Math.max(head.rows > 0 ? head.cols : 0, head.rows > 0 && w > 0 ? head.rows + hi : 0));
  let jt = clampN(Math.max(tail.rows > 0 ? tail.cols : 0, tail.rows > 0 && w > 0 ? tail.rows - lo : 0));
  if (jh + jt > n) {
    jh = n;
    jt = 0;
  }
  // The rows of A with entries in those columns.
  const rowsOfA = new Set<number>();
  const addRange = (a: number, b: number) => {
    for (let i = Math.max(0, a); i < Math.min(n, b); i++) rowsOfA.add(i);
  };
  addRange(0, head.rows);
  addRange(n - tail.rows, n);
  if (w > 0) {
    addRange(0, jh - lo);
    addRange(n - jt - hi, n);
  }
  const headT = Array.from({ length: jh }, () => new Map<number, number>());
  const tailT = Array.from({ length: jt }, () => new Map<number, number>());
  for (const i of rowsOfA) {
    forEachEntry(op, i, (col, c) => {
      const target = col < jh ? headT[col] : col >= n - jt ? tailT[col - (n - jt)] : undefined;
      if (target) target.set(i, (target.get(i) ?? 0) + c);
    });
  }
  return Object.freeze({
    n,
    lo: loT,
    stencil: stencilT,
    periodic: false,
    head: denseBlock(headT),
    tail: denseBlock(tailT, n),
  });
}

/**
 * The exact transpose `Aᵀ` of a banded operator (itself banded, with more and wider boundary rows
 * when `A` has one-sided ones). Memoised both ways: `transposeBanded(transposeBanded(a)) === a`.
 * Validates `op` (see {@link bandedOperator}); throws an ArgumentError when the transpose has more
 * than `MAX_BANDED_COEFFICIENTS` coefficients.
 *
 * @example
 * ```ts
 * import { bandedOperator, transposeBanded } from "./ops_stencil.ts";
 * // Forward difference (x[i+1] − x[i]) with a zero last row ...
 * const d = bandedOperator({ n: 4, lo: 0, stencil: [-1, 1], tail: [[0]] });
 * // ... has the backward difference as its transpose: −y[i] + y[i−1] inside.
 * transposeBanded(d).stencil; // [1, -1], lo −1
 * ```
 */
export function transposeBanded(op: BandedOperator): BandedOperator {
  checkOperator("transposeBanded", op);
  const known = transposes.get(op);
  if (known) return known;
  validate(op);
  const t = computeTranspose(op);
  if (coefficientCount(t) > MAX_BANDED_COEFFICIENTS) {
    throw new ArgumentError(
      "bandedOperator",
      `the transpose of the operator has ${coefficientCount(t)} coefficients, more than ${MAX_BANDED_COEFFICIENTS}`,
    );
  }
  valid.add(op);
  valid.add(t);
  transposes.set(op, t);
  transposes.set(t, op);
  return t;
}

/**
 * Builds and validates a {@link BandedOperator} (frozen): integer `n` and `lo`, finite
 * coefficients, blocks that fit (`head.rows + tail.rows ≤ n`, at most `n` columns), no blocks on a
 * periodic operator, and at most `MAX_BANDED_COEFFICIENTS` coefficients, the transpose's
 * included. Throws an ArgumentError otherwise.
 *
 * @example
 * ```ts
 * import { bandedOperator } from "./ops_stencil.ts";
 * // d/dx, h = 0.1: central inside, second-order one-sided at the walls.
 * const c = 1 / (2 * 0.1);
 * const d = bandedOperator({
 *   n: 11, lo: -1, stencil: [-c, 0, c],
 *   head: [[-3 * c, 4 * c, -c]], tail: [[c, -4 * c, 3 * c]],
 * });
 * d.head.cols; // 3
 * ```
 */
export function bandedOperator(spec: BandedOperatorSpec): BandedOperator {
  checkOperator("bandedOperator", spec);
  if (!Array.isArray(spec.stencil)) {
    throw new ArgumentError("bandedOperator", `the stencil must be a list of numbers, got ${describe(spec.stencil)}`);
  }
  const op: BandedOperator = Object.freeze({
    n: spec.n,
    lo: spec.lo,
    stencil: Object.freeze([...spec.stencil]),
    periodic: spec.periodic ?? false,
    head: blockOf("bandedOperator", "head", spec.head),
    tail: blockOf("bandedOperator", "tail", spec.tail),
  });
  transposeBanded(op);
  return op;
}

/**
 * Options of {@link stencil}.
 *
 * @example
 * ```ts
 * import type { StencilOptions } from "./ops_stencil.ts";
 * import { zeros } from "./creation.ts";
 * const opts: StencilOptions = { add: zeros([8]) }; // y = A·x + 0
 * ```
 */
export interface StencilOptions {
  /** Added to the result in the same pass (broadcast to `x`'s shape, cast to its dtype). */
  add?: Tensor;
}

function applyBanded(x: Tensor, op: BandedOperator, axis: number, add: Tensor | null): Tensor {
  const addView = add === null ? null : broadcastView(add, x.shape);
  const out = Tensor.fromBuffer(x.backend.stencil(x, axis, op, addView, x.dtype), x.shape, x.dtype);
  return record("stencil", out, add === null ? [x] : [x, add], [], (g, needs) => [
    needs[0] ? applyBanded(g, transposeBanded(op), axis, null) : null,
    add !== null && needs[1] ? sumTo(g, add.shape) : null,
  ]);
}

/**
 * Applies the banded operator `op` along `axis` of `x` in one pass: `y[..., i, ...] =
 * Σ_j A[i, j] · x[..., j, ...]`, plus `options.add` if given. `op.n` must equal the axis length.
 * Sums are in float64, rounded once to `x`'s dtype (an int32 `x` computes in float32).
 * Differentiable to any order (the gradient applies the transpose).
 *
 * @example
 * ```ts
 * import { bandedOperator, stencil } from "./ops_stencil.ts";
 * import { tensor } from "./creation.ts";
 * const lap = bandedOperator({ n: 4, lo: -1, stencil: [1, -2, 1], periodic: true });
 * stencil(tensor([[0, 1, 4, 9]]), lap, 1).toArray(); // [[10, 2, 2, -14]]
 * stencil(tensor([[0, 1, 4, 9]]), lap, 1, { add: tensor([1]) }).toArray(); // [[11, 3, 3, -13]]
 * ```
 */
export function stencil(input: Tensor, op: BandedOperator, axis = -1, options: StencilOptions = {}): Tensor {
  checkTensor("stencil", "x", input);
  checkOperator("stencil", op);
  checkOptions("stencil", options, ["add"]);
  if (options.add !== undefined) checkTensor("stencil", "options.add", options.add);
  const x = isFloat(input.dtype) ? input : cast(input, "float32");
  const a = normalizeAxis("stencil", axis, x.ndim);
  if (!valid.has(op)) transposeBanded(op);
  if (op.n !== x.shape[a]) {
    throw new ShapeError(
      "stencil",
      `the operator has n = ${op.n}, axis ${axis} of ${fmtShape(x.shape)} has ${x.shape[a]}`,
    );
  }
  let add: Tensor | null = null;
  if (options.add !== undefined) {
    sameBackend("stencil", x, options.add);
    if (!shapesEqual(broadcastShapes("stencil", options.add.shape, x.shape), x.shape)) {
      throw new ShapeError(
        "stencil",
        `add of shape ${fmtShape(options.add.shape)} does not broadcast to ${fmtShape(x.shape)}`,
      );
    }
    add = options.add.dtype === x.dtype ? options.add : cast(options.add, x.dtype);
  }
  return applyBanded(x, op, a, add);
}

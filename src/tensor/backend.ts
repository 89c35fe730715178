/**
 * The contract between tensors and the machines that hold their data.
 *
 * A backend owns buffers of elements and runs a small set of primitive operations on strided
 * views of them. Every primitive returns a fresh, contiguous (row-major) buffer unless it says
 * otherwise. Views carry element strides (possibly zero for broadcast axes, possibly negative for
 * reversed slices) and an element offset, so transposes, slices and broadcasts never copy.
 * Everything above this interface — shapes, broadcasting, autodiff — is backend-independent;
 * `src/backend/cpu` and `src/backend/cuda` implement it.
 *
 * @module
 */

import type { DType, HostArray } from "./dtype.ts";
import type { BinaryOp, UnaryOp } from "./op_defs.ts";
import { DeviceError } from "./errors.ts";
import type { FusedPrimitives } from "./fused_primitives.ts";
import { checkFunction, describe } from "./validate.ts";

export type { BinaryOp, UnaryOp } from "./op_defs.ts";

/** Opaque storage owned by one backend. */
export interface DeviceBuffer {
  /** The backend that owns this buffer. */
  readonly backend: Backend;
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
  /**
   * Called once a tensor's storage owns the buffer: from then on the tensor layer frees it, and
   * watches the tensors viewing it for garbage collection, so a backend that watches the buffers
   * it hands out (the CPU's heap) may stop.
   */
  adopted?(): void;
}

/** A strided window onto a buffer. `shape.length === strides.length`; strides count elements. */
export interface View {
  /** Storage the view reads. */
  readonly buffer: DeviceBuffer;
  /** Extent of each axis. */
  readonly shape: readonly number[];
  /** Element step of each axis (0 for broadcast axes, negative for reversed axes). */
  readonly strides: readonly number[];
  /** Element index of the view's first element. */
  readonly offset: number;
}

/** Reductions over a set of axes. */
export type ReduceOp = "sum" | "max" | "min" | "prod";

/** Memory statistics of a backend, in bytes. */
export interface MemoryStats {
  /** Bytes held by live buffers. */
  current: number;
  /** Highest `current` since the last `resetPeak()`. */
  peak: number;
  /** Bytes held in the allocator's cache for reuse (0 where there is no cache). */
  cached: number;
}

/** Options of {@link LinalgPrimitives.triangularSolve}. */
export interface TriangularSolveOptions {
  /** The matrix is lower triangular (else upper); only that triangle is read. */
  readonly lower: boolean;
  /** Solve with the transpose of the matrix. */
  readonly transpose: boolean;
  /** Take the diagonal as ones (it is not read). */
  readonly unitDiagonal: boolean;
}

/**
 * Dense linear algebra on batches of small matrices: every matrix argument is a view of shape
 * `[...batch, rows, cols]` whose leading axes are independent problems (batch shapes of the
 * operands of one call are equal, already broadcast, possibly with stride 0). Results are fresh
 * contiguous buffers of the float dtype passed (float32 or float64). Status arrays are int32 of
 * shape `[...batch]`, LAPACK style: 0 for success, k > 0 naming the 1-based column where the
 * factorisation broke down. No primitive throws on a singular or indefinite matrix; callers read
 * the status (one small transfer) and decide.
 *
 * Optional on {@link Backend} so a backend can land before its linear algebra does; the
 * tensor-level functions in `src/solve` raise a `DeviceError` naming the op and backend when it
 * is missing.
 */
export interface LinalgPrimitives {
  /**
   * Cholesky factors `a = L·Lᵀ` of symmetric positive-definite `a` `[...batch, n, n]` (only the
   * lower triangle is read). `factor` is L with zeros above the diagonal; `info[b] = k > 0` when
   * the leading minor of order k is not positive definite (or not finite), and then the factor
   * of that entry is unspecified.
   */
  cholesky(a: View, dtype: DType): { factor: DeviceBuffer; info: DeviceBuffer };
  /**
   * Solves `op(a)·x = b` for triangular `a` `[...batch, n, n]` and `b` `[...batch, n, k]`, where
   * `op(a)` is `a` or `aᵀ`. A zero on the diagonal gives infinities, not an error.
   */
  triangularSolve(a: View, b: View, options: TriangularSolveOptions, dtype: DType): DeviceBuffer;
  /**
   * LU factorisation with partial pivoting `P·a = L·U` of `a` `[...batch, n, n]`: `lu` holds U on
   * and above the diagonal and the unit-lower L below it; `pivots` int32 `[...batch, n]` are
   * 1-based LAPACK interchanges (row i was swapped with row `pivots[i] − 1`, in order);
   * `info[b] = k > 0` when `U[k−1, k−1]` is exactly zero.
   */
  lu(a: View, dtype: DType): { lu: DeviceBuffer; pivots: DeviceBuffer; info: DeviceBuffer };
  /** Solves `a·x = b` (or `aᵀ·x = b`) from the output of `lu`; `b` is `[...batch, n, k]`. */
  luSolve(lu: View, pivots: View, b: View, transpose: boolean, dtype: DType): DeviceBuffer;
  /**
   * Thin QR factorisation `a = Q·R` of `a` `[...batch, m, n]` with `m ≥ n` (Householder): `q`
   * `[...batch, m, n]` with orthonormal columns and `r` `[...batch, n, n]` upper triangular.
   */
  qr(a: View, dtype: DType): { q: DeviceBuffer; r: DeviceBuffer };
}

/**
 * Hyperparameters of one fused Adam update ({@link OptimPrimitives.adam}).
 *
 * @example
 * ```ts
 * import type { AdamHyperparameters } from "./backend.ts";
 * const h: AdamHyperparameters = {
 *   lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, step: 1,
 * };
 * ```
 */
export interface AdamHyperparameters {
  /** Learning rate of this step. */
  readonly lr: number;
  /** Decay rate of the first moment. */
  readonly beta1: number;
  /** Decay rate of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly eps: number;
  /** Weight decay λ (0: none). */
  readonly weightDecay: number;
  /** Decoupled decay (AdamW: θ ← θ(1 − lr·λ)) instead of adding λθ to the gradient. */
  readonly decoupled: boolean;
  /** This parameter's step count t ≥ 1 (bias correction). */
  readonly step: number;
}

/**
 * Fused optimiser updates: one pass over a parameter instead of a chain of elementwise ops.
 * Optional on {@link Backend}; `src/optim` falls back to tensor ops where it is missing.
 */
export interface OptimPrimitives {
  /**
   * One Adam(W) update in place, elementwise, with the arithmetic (operation order, and on a
   * backend that rounds after each op, the rounding) of the composite update in `src/optim/adam.ts`:
   *
   * ```text
   * g ← g + λθ (coupled)  |  θ' ← θ(1 − lr·λ) (decoupled; else θ' = θ)
   * m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²
   * θ ← θ' − (m / (√v / √(1 − β₂ᵗ) + ε)) · (lr / (1 − β₁ᵗ))
   * ```
   *
   * `param`, `expAvg` and `expAvgSq` are contiguous views of one float dtype (float32 or
   * float64), overwritten; `grad` is contiguous, of the parameter's dtype or, for a float32
   * parameter, bfloat16. `copyTo` (or null) is a contiguous bfloat16 view that receives the new
   * parameter rounded (the bfloat16 parameter whose float32 master `param` is). All views have
   * the same number of elements and do not overlap.
   */
  adam(
    param: View,
    grad: View,
    expAvg: View,
    expAvgSq: View,
    copyTo: View | null,
    hyper: AdamHyperparameters,
  ): void;
}

/**
 * The Fourier layer's per-mode complex channel mixing in one pass instead of a gather, a batched
 * product and a scatter (geometry, layout and arithmetic in `spectral_defs.ts`). Optional on
 * {@link Backend}; the tensor-level ops (`ops_spectral.ts`) compose them from other primitives
 * where it is missing.
 */
export interface SpectralPrimitives {
  /**
   * `x` `[B, 2, S, C]` mixed by `weight` `[2^(d−1), I, O, ...modes, 2]` into a new contiguous
   * `[B, 2, S, C']` of `dtype`: per slot, `x·W` (C = I, C' = O) or, with `adjoint`, `x·Wᴴ`
   * (C = O, C' = I). Views are contiguous, of `dtype` (float32 or float64).
   */
  spectralMix(x: View, weight: View, modes: readonly number[], adjoint: boolean, dtype: DType): DeviceBuffer;
  /**
   * `Σ_batch conj(a) ⊗ d` per slot, laid out as a weight `[2^(d−1), A, D, ...modes, 2]`, from
   * `a` `[B, 2, S, A]` and `d` `[B, 2, S, D]` (contiguous, of `dtype`).
   */
  spectralWeightGrad(a: View, d: View, modes: readonly number[], dtype: DType): DeviceBuffer;
}

/**
 * Counters a backend that queues work on a device keeps from its start (see
 * {@link Backend.deviceCounts}): what the primitives cost there.
 *
 * @example
 * ```ts
 * import type { DeviceCounts } from "./backend.ts";
 * const perStep = (c: DeviceCounts, steps: number) => (c.launches + c.libraryCalls) / steps;
 * ```
 */
export interface DeviceCounts {
  /** Kernels of our own launched. */
  readonly launches: number;
  /** Calls into vendor libraries (cuBLAS, cuFFT), each one or more kernels. */
  readonly libraryCalls: number;
  /** Device-side copies and fills done by the driver (memcpy, memset). */
  readonly copies: number;
  /** Host-to-device uploads. */
  readonly uploads: number;
  /** Waits for the device (stream synchronisations: every host read is one). */
  readonly syncs: number;
}

/**
 * Explicit boundary rows of a {@link BandedOperator} as a dense block: `rows` × `cols`
 * coefficients, row-major in `values`.
 *
 * @example
 * ```ts
 * import type { DenseBlock } from "./backend.ts";
 * const wall: DenseBlock = { rows: 1, cols: 3, values: [-1.5, 2, -0.5] }; // one-sided d/dx, h = 1
 * ```
 */
export interface DenseBlock {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** `rows * cols` coefficients, row-major. */
  readonly values: readonly number[];
}

/**
 * The most coefficients a {@link BandedOperator} may have in all (`stencil.length +
 * head.rows·head.cols + tail.rows·tail.cols`), its transpose included: small enough for a GPU
 * backend to pass the whole operator to a kernel as a parameter.
 *
 * @example
 * ```ts
 * import { MAX_BANDED_COEFFICIENTS } from "./backend.ts";
 * MAX_BANDED_COEFFICIENTS; // 256
 * ```
 */
export const MAX_BANDED_COEFFICIENTS = 256;

/**
 * A linear operator `A` on vectors of length `n` (n inputs to n outputs) that is a uniform
 * stencil away from the ends:
 *
 * ```text
 * interior row i:  (A·x)[i] = Σ_k stencil[k] · x[i + lo + k]      (k < stencil.length)
 * head row i:      (A·x)[i] = Σ_c head.values[i·head.cols + c] · x[c]                (i < head.rows)
 * tail row i:      (A·x)[n − tail.rows + i] = Σ_c tail.values[i·tail.cols + c] · x[n − tail.cols + c]
 * ```
 *
 * Columns of an interior row outside `[0, n)` wrap modulo `n` when `periodic`, and read as zero
 * otherwise (so the transpose of an operator is again one of these). A periodic operator has no
 * head or tail rows. Coefficients are float64 numbers, applied in the backend's arithmetic
 * (float64 accumulation on both backends here). Build and validate one with `bandedOperator`
 * (`src/tensor/ops_stencil.ts`); `transposeBanded` gives its exact transpose.
 *
 * @example
 * ```ts
 * import type { BandedOperator } from "./backend.ts";
 * // Second-order d/dx on 8 points with spacing 1: central inside, one-sided at both walls.
 * const d: BandedOperator = {
 *   n: 8, lo: -1, stencil: [-0.5, 0, 0.5], periodic: false,
 *   head: { rows: 1, cols: 3, values: [-1.5, 2, -0.5] },
 *   tail: { rows: 1, cols: 3, values: [0.5, -2, 1.5] },
 * };
 * ```
 */
export interface BandedOperator {
  /** Length of the axis the operator acts on. */
  readonly n: number;
  /** Offset of `stencil[0]` from the row: −r for a centred stencil of radius r. */
  readonly lo: number;
  /** Coefficients of the interior rows, for offsets `lo`, `lo + 1`, …. */
  readonly stencil: readonly number[];
  /** Interior columns wrap around modulo `n` (else those outside `[0, n)` read as zero). */
  readonly periodic: boolean;
  /** Explicit first rows, reading columns `0 … head.cols − 1`. */
  readonly head: DenseBlock;
  /** Explicit last rows, reading columns `n − tail.cols … n − 1`. */
  readonly tail: DenseBlock;
}

/**
 * The primitive operations a backend provides. Shapes passed in are already checked; a backend
 * may assume the views are in range and that broadcast operands have been expanded (stride 0)
 * to the output shape.
 */
export interface Backend {
  /** "cpu" or "cuda". */
  readonly name: string;
  /** Human description (device name, memory). */
  readonly description: string;

  /** Uploads host data into a new buffer of `dtype` (bfloat16 given as raw bits or as floats). */
  fromHost(data: HostArray | readonly number[], dtype: DType): DeviceBuffer;
  /** Reads a view to a new contiguous host array (bfloat16 read as Float32Array). Synchronises. */
  toHost(view: View): Float32Array | Float64Array | Int32Array;
  /** A new buffer of `size` elements, every one equal to `value`. */
  full(size: number, value: number, dtype: DType): DeviceBuffer;
  /** `start + i * step` for i in [0, size). */
  arange(size: number, start: number, step: number, dtype: DType): DeviceBuffer;
  /**
   * Counter-based random numbers (Philox4x32-10): element i of the stream for `seed` is a pure
   * function of (seed, offset + i), identical on every backend.
   */
  random(kind: "uniform" | "normal", size: number, seed: number, offset: number, dtype: DType): DeviceBuffer;

  /** Copies `src` into the window `dst` of an existing buffer, converting dtype. Shapes equal. */
  copy(src: View, dst: View): void;
  /** The elementwise op `op` (see `op_defs.ts`) into a new contiguous buffer of `dtype`. */
  unary(op: UnaryOp, x: View, dtype: DType): DeviceBuffer;
  /**
   * The elementwise op `op` of two operands (see `op_defs.ts`); views have equal shapes; a number
   * stands for a constant operand. Comparisons give 1 or 0 in `dtype`.
   */
  binary(op: BinaryOp, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer;
  /** cond ? a : b elementwise; views have equal shapes; numbers stand for constants. */
  where(cond: View, a: View | number, b: View | number, shape: readonly number[], dtype: DType): DeviceBuffer;
  /** Reduces over `axes`; the result has the input's shape with those axes set to 1. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], dtype: DType): DeviceBuffer;
  /** Index (int32) of the max or min along `axis`; result has that axis set to 1. */
  argReduce(op: "argmax" | "argmin", x: View, axis: number): DeviceBuffer;
  /** Softmax (or log-softmax) along `axis`, numerically stable. */
  softmax(x: View, axis: number, log: boolean, dtype: DType): DeviceBuffer;
  /** Inclusive prefix sum along `axis`. */
  cumsum(x: View, axis: number, dtype: DType): DeviceBuffer;
  /**
   * Batched matrix product: a is [...batch, m, k], b is [...batch, k, n] with equal (already
   * broadcast) batch shapes; result [...batch, m, n] contiguous.
   */
  matmul(a: View, b: View, dtype: DType): DeviceBuffer;
  /**
   * out[..i.., j, ..k..] = x[..i.., index[..i.., j, ..k..], ..k..] along `axis` (index int32, same
   * rank as x; result has index's shape).
   */
  gather(x: View, axis: number, index: View, dtype: DType): DeviceBuffer;
  /** zeros(shape) then out[.., index[..j..], ..] += src[..j..] along `axis` (index shaped like src). */
  scatterAdd(shape: readonly number[], axis: number, index: View, src: View, dtype: DType): DeviceBuffer;
  /**
   * Complex-to-complex DFT along `axis`; complex numbers are pairs in a trailing axis of size 2.
   * Forward is unnormalised, inverse divides by n.
   */
  fft(x: View, axis: number, inverse: boolean, dtype: DType): DeviceBuffer;
  /** Real-to-complex DFT along `axis`: n reals give n/2+1 complex pairs (trailing axis 2). */
  rfft(x: View, axis: number, dtype: DType): DeviceBuffer;
  /** Complex-to-real inverse DFT along `axis` producing `n` reals (divides by n). */
  irfft(x: View, axis: number, n: number, dtype: DType): DeviceBuffer;
  /**
   * Applies the banded operator `op` along `axis` of `x` in one pass: `out[..., i, ...] =
   * Σ_j A[i, j] · x[..., j, ...]` (+ `add[..., i, ...]` when `add` is given: a view of `x`'s shape,
   * already broadcast), into a new contiguous buffer of `x`'s shape and float `dtype`. The
   * operator is valid (see `bandedOperator`), `op.n === x.shape[axis]`, and it has at most
   * `MAX_BANDED_COEFFICIENTS` coefficients in all (stencil and blocks), so a GPU backend can pass
   * it to a kernel by value.
   */
  stencil(x: View, axis: number, op: BandedOperator, add: View | null, dtype: DType): DeviceBuffer;

  /** Batched dense linear algebra (optional: see {@link LinalgPrimitives}). */
  readonly linalg?: LinalgPrimitives;
  /** Fused optimiser updates (optional: see {@link OptimPrimitives}). */
  readonly optim?: OptimPrimitives;
  /** Fused language-model primitives (optional: see `FusedPrimitives` in fused_primitives.ts). */
  readonly fused?: FusedPrimitives;
  /** Fused Fourier-layer primitives (optional: see {@link SpectralPrimitives}). */
  readonly spectral?: SpectralPrimitives;

  /** The device's counters since the backend started (optional: a backend that queues work has them). */
  deviceCounts?(): DeviceCounts;

  /** Memory statistics. */
  memory(): MemoryStats;
  /** Resets `peak` to `current`. */
  resetPeak(): void;
  /** Frees a buffer now (it must not be used again). */
  free(buffer: DeviceBuffer): void;
  /** Waits for queued work to finish. */
  synchronize(): void;
}

/** Makes the default backend on first use. */
export type BackendFactory = () => Backend;

let defaultBackend: Backend | undefined;
let defaultFactory: BackendFactory | undefined;

/**
 * Registers how the default backend is made on first use (the backend layer calls this).
 *
 * @example
 * ```ts
 * import { setDefaultBackendFactory } from "./backend.ts";
 * // setDefaultBackendFactory(() => new CpuBackend());
 * ```
 */
export function setDefaultBackendFactory(factory: BackendFactory): void {
  defaultFactory = checkFunction("setDefaultBackendFactory", "factory", factory);
}

/**
 * Makes `backend` the one new tensors are created on.
 *
 * @example
 * ```ts
 * import { setDefaultBackend } from "./backend.ts";
 * // setDefaultBackend(cpu);
 * ```
 */
export function setDefaultBackend(backend: Backend): void {
  if (backend === null || typeof backend !== "object" || typeof backend.fromHost !== "function") {
    throw new DeviceError("setDefaultBackend", `expects a Backend, got ${describe(backend)}`);
  }
  defaultBackend = backend;
}

/**
 * The backend new tensors are created on.
 *
 * @example
 * ```ts
 * import { getDefaultBackend } from "./backend.ts";
 * // getDefaultBackend().name; // "cpu"
 * ```
 */
export function getDefaultBackend(): Backend {
  if (defaultBackend) return defaultBackend;
  if (!defaultFactory) {
    throw new DeviceError(
      "backend",
      "no backend is registered; import patchwork from mod.ts (or src/backend/select.ts) first",
    );
  }
  defaultBackend = defaultFactory();
  return defaultBackend;
}

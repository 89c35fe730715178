/**
 * The {@link Tensor}: an n-dimensional strided view of backend storage that records the operations
 * applied to it for reverse-mode differentiation.
 *
 * Methods are thin wrappers over the functional ops (`add(a, b)` and `a.add(b)` are the same);
 * see the op modules for semantics and gradients.
 *
 * @module
 */

import type { Backend, View } from "./backend.ts";
import { type DType, isFloat } from "./dtype.ts";
import { ArgumentError, AutodiffError, ShapeError } from "./errors.ts";
import { broadcastShapes, contiguousStrides, fmtShape, type Shape, shapesEqual, sizeOf } from "./shape.ts";
import { type Disposable, keep, Storage, track, unwatch, watchForCollection } from "./storage.ts";
import { type BackwardOptions, gradients, type Node } from "./autograd.ts";
import * as ew from "./ops_elementwise.ts";
import * as rd from "./ops_reduce.ts";
import * as sh from "./ops_shape.ts";
import * as ix from "./ops_index.ts";
import { matmul } from "./ops_matmul.ts";
import { checkLike, checkOneOf, checkOptions, checkTensor, sameBackend } from "./validate.ts";

/** Nested arrays of numbers, as accepted by `tensor()` and returned by `toArray()`. */
export type NestedArray = number | NestedArray[];

/** A tensor or a plain number where an operand is expected. */
export type Operand = Tensor | number;

/** A multi-dimensional array on a backend, with autodiff. */
export class Tensor implements View, Disposable {
  /** Reference-counted owner of the backend buffer (shared by views). */
  readonly storage: Storage;
  /** Extent of each axis. */
  readonly shape: readonly number[];
  /** Element stride of each axis. */
  readonly strides: readonly number[];
  /** Element offset into the buffer. */
  readonly offset: number;
  /** Element type. */
  readonly dtype: DType;
  /** Whether gradients flow to this tensor. */
  requiresGrad = false;
  /** The operation that produced this tensor (null for leaves). */
  node: Node | null = null;
  /** Whether `.grad` is kept for this non-leaf tensor. */
  retainsGrad = false;
  #grad: Tensor | null = null;
  #disposed = false;
  /** Whether the garbage collector watches this tensor (see `unscoped`). */
  #watched = false;

  /** Low level: a view of `storage`. Use the creation functions (`tensor`, `zeros`, …) instead. */
  constructor(storage: Storage, shape: Shape, strides: Shape, offset: number, dtype: DType) {
    this.storage = storage;
    this.shape = shape;
    this.strides = strides;
    this.offset = offset;
    this.dtype = dtype;
    storage.retain();
    if (!track(this)) this.unscoped();
  }

  /**
   * Wraps a fresh contiguous backend buffer as a tensor.
   *
   * @example
   * ```ts
   * import { Tensor } from "./tensor.ts";
   * // Tensor.fromBuffer(backend.full(6, 0, "float32"), [2, 3], "float32");
   * ```
   */
  static fromBuffer(buffer: View["buffer"], shape: Shape, dtype: DType = buffer.dtype): Tensor {
    return new Tensor(new Storage(buffer), [...shape], contiguousStrides(shape), 0, dtype);
  }

  /** The backend buffer (throws if the tensor was disposed). */
  get buffer(): View["buffer"] {
    if (this.#disposed || this.storage.freed) {
      throw new ArgumentError("tensor", `a tensor of shape ${fmtShape(this.shape)} was used after dispose()`);
    }
    return this.storage.buffer;
  }

  /** The backend holding the data. */
  get backend(): Backend {
    return this.storage.buffer.backend;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of axes. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Whether the elements are laid out row-major without gaps from `offset`. */
  get isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i];
    }
    return true;
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Releases this tensor's reference to its storage now (the buffer is freed once no view uses it),
   * and its gradient with it. `tidy` passes the tensors its result still uses as `inUse`: a
   * gradient among them is not freed but handed to the enclosing scope.
   *
   * @example
   * ```ts
   * import { zeros } from "./creation.ts";
   * const t = zeros([1024]);
   * t.dispose();
   * ```
   */
  dispose(inUse?: ReadonlySet<Disposable>): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#watched) unwatch(this);
    this.storage.release();
    const g = this.#grad;
    this.#grad = null;
    if (g && inUse instanceof Set && inUse.has(g)) track(g);
    else g?.dispose(inUse);
  }

  /**
   * Frees the tensor when a `using` declaration goes out of scope (same as {@link Tensor.dispose}).
   *
   * @example
   * ```ts
   * import { zeros } from "./creation.ts";
   * {
   *   using t = zeros([1024]);
   * } // t is freed here
   * ```
   */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Watches this tensor for garbage collection once no `tidy` scope holds it, so that dropping it
   * undisposed still releases its storage (called by the scopes; idempotent).
   *
   * @example
   * ```ts
   * import { zeros } from "./creation.ts";
   * zeros([3]).unscoped(); // made outside every scope: watched already, so nothing changes
   * ```
   */
  unscoped(): void {
    if (this.#watched || this.#disposed) return;
    this.#watched = true;
    watchForCollection(this, this.storage);
  }

  /** Tensors this one's autodiff graph needs alive, and its gradient (used by `tidy`). */
  dependencies(): Iterable<Tensor> {
    const node = this.node;
    const deps = node ? [...node.inputs, ...node.saved] : [];
    if (this.#grad) deps.push(this.#grad);
    return deps;
  }

  /**
   * Excludes this tensor from every open `tidy` scope (it lives until disposed or collected).
   *
   * @example
   * ```ts
   * import { zeros } from "./creation.ts";
   * const state = zeros([3]).keep();
   * ```
   */
  keep(): this {
    return keep(this);
  }

  /**
   * Overwrites this tensor's elements with `value` (broadcast to this shape, cast to this dtype),
   * in place and unrecorded — for optimiser updates and loading weights. Tensors saved by a graph
   * that is still to be differentiated must not be assigned to.
   *
   * @example
   * ```ts
   * import { zeros, tensor } from "./creation.ts";
   * const w = zeros([2]);
   * w.assign(tensor([1, 2])); // w is now [1, 2]
   * ```
   */
  assign(value: Tensor | number): this {
    if (typeof value === "number") {
      const src = Tensor.fromBuffer(this.backend.full(1, value, this.dtype), [], this.dtype);
      this.backend.copy(sh.expand(src, this.shape), this);
      src.dispose();
      return this;
    }
    checkTensor("assign", "value", value);
    sameBackend("assign", this, value);
    if (!shapesEqual(broadcastShapes("assign", value.shape, this.shape), this.shape)) {
      throw new ShapeError("assign", `a value of shape ${fmtShape(value.shape)} does not fit ${fmtShape(this.shape)}`);
    }
    const src = value.detach();
    this.backend.copy(shapesEqual(src.shape, this.shape) ? src : sh.expand(src, this.shape), this);
    src.dispose();
    return this;
  }

  // ---------------------------------------------------------------- host access

  /**
   * Copies the elements to a new host typed array (row-major). Synchronises with the device.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * tensor([[1, 2], [3, 4]]).transpose().toTypedArray(); // Float32Array [1, 3, 2, 4]
   * ```
   */
  toTypedArray(): Float32Array | Float64Array | Int32Array {
    return this.backend.toHost(this);
  }

  /**
   * Copies the elements to nested JavaScript arrays (a number for a scalar).
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * tensor([[1, 2], [3, 4]]).toArray(); // [[1, 2], [3, 4]]
   * ```
   */
  toArray(): NestedArray {
    const flat = this.toTypedArray();
    const build = (axis: number, start: number): NestedArray => {
      if (axis === this.shape.length) return flat[start];
      const stride = sizeOf(this.shape.slice(axis + 1));
      return Array.from({ length: this.shape[axis] }, (_, i) => build(axis + 1, start + i * stride));
    };
    return build(0, 0);
  }

  /**
   * The value of a one-element tensor.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * tensor([3]).item(); // 3
   * ```
   */
  item(): number {
    if (this.size !== 1) {
      throw new ShapeError("item", `needs a one-element tensor, got shape ${fmtShape(this.shape)}`);
    }
    return this.toTypedArray()[0];
  }

  /**
   * A short description: shape, dtype, backend, whether it requires grad, and the values (of this
   * view, in its layout) when there are at most 64.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * tensor([[1, 2], [3, 4]]).transpose().toString(); // "Tensor([2,2], float32, cpu, [[1,3],[2,4]])"
   * ```
   */
  toString(): string {
    const grad = this.requiresGrad ? ", requiresGrad" : "";
    const head = `Tensor(${fmtShape(this.shape)}, ${this.dtype}, ${this.backend.name}${grad}`;
    if (this.#disposed) return head + ", disposed)";
    if (this.size > 64) return head + ")";
    return `${head}, ${JSON.stringify(this.toArray())})`;
  }

  /** What `console.log` and `Deno.inspect` print: {@link Tensor.toString}, not the storage internals. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  // ---------------------------------------------------------------- autodiff

  /**
   * Marks this tensor as a leaf whose gradient is wanted (in place); returns it.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * const w = tensor([1, 2]).requireGrad();
   * ```
   */
  requireGrad(flag = true): this {
    checkOneOf("requireGrad", "flag", flag, [true, false]);
    if (flag && !isFloat(this.dtype)) {
      throw new AutodiffError("requireGrad", `${this.dtype} tensors cannot require gradients`);
    }
    if (this.node && !flag) {
      throw new AutodiffError("requireGrad", "only leaf tensors can stop requiring grad; use detach()");
    }
    this.requiresGrad = flag;
    return this;
  }

  /**
   * Keeps `.grad` for this non-leaf tensor during `backward()`.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * const x = tensor([1, 2]).requireGrad();
   * const h = x.mul(2).retainGrad();
   * h.sum().backward(); // h.grad is [1, 1]
   * ```
   */
  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }

  /**
   * A tensor sharing this one's storage, cut from the graph (never requires grad).
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * const c = tensor([1]).requireGrad().detach(); // c.requiresGrad === false
   * ```
   */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.strides, this.offset, this.dtype);
  }

  /**
   * Back-propagates from this tensor, accumulating into `.grad` of the leaves that require grad.
   * A non-scalar needs an explicit `gradient` of its shape.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * const x = tensor([1, 2, 3]).requireGrad();
   * x.mul(x).sum().backward();
   * x.grad!.toArray(); // [2, 4, 6]
   * ```
   */
  backward(gradient?: Tensor, options: BackwardOptions = {}): void {
    if (gradient !== undefined) sameBackend("backward", this, checkTensor("backward", "gradient", gradient));
    checkOptions("backward", options, ["createGraph", "retainGraph"]);
    if (!this.requiresGrad) {
      throw new AutodiffError(
        "backward",
        "this tensor does not require grad: no input of the computation called requireGrad() " +
          "(or it was computed inside noGrad)",
      );
    }
    if (!gradient && this.size !== 1) {
      throw new AutodiffError(
        "backward",
        `needs a gradient argument for a non-scalar output of shape ${fmtShape(this.shape)}`,
      );
    } else if (gradient && !shapesEqual(gradient.shape, this.shape)) {
      throw new ShapeError(
        "backward",
        `gradient shape ${fmtShape(gradient.shape)} differs from the output shape ${fmtShape(this.shape)}`,
      );
    }
    const ones = gradient ? null : Tensor.fromBuffer(this.backend.full(1, 1, this.dtype), this.shape, this.dtype);
    gradients([this], [gradient ?? ones!], "leaves", options);
    // Under createGraph the gradients' graphs read the seed; otherwise it is done with.
    if (ones && !options.createGraph) ones.dispose();
  }

  /**
   * The accumulated gradient (of a leaf, or of a tensor that called `retainGrad()`), or null.
   *
   * The tensor owns its gradient: the gradient lives as long as the tensor, whatever scope the
   * backward pass ran in, and `dispose()` (or the end of the `tidy` scope that made the tensor)
   * frees both. A gradient returned from a `tidy` scope outlives its tensor and belongs to the
   * enclosing scope. Assigning a tensor stores a view of it (sharing its storage, cut from any
   * graph) after checking its shape, dtype and backend, and frees the previous gradient;
   * assigning null hands the previous gradient to the caller instead (it joins the current
   * `tidy` scope, if any), so it stays usable.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * const x = tensor([1, 2]).requireGrad();
   * x.mul(x).sum().backward();
   * x.grad!.toArray(); // [2, 4]
   * x.grad = tensor([0, 1]); // replaces it
   * ```
   */
  get grad(): Tensor | null {
    return this.#grad;
  }

  set grad(value: Tensor | null) {
    const prev = this.#grad;
    if (value === prev) return;
    if (value === null) {
      this.#grad = null;
      track(prev!);
      return;
    }
    checkLike("grad", "the assigned gradient", value, this);
    this.#grad = keep(value.detach());
    prev?.dispose();
  }

  /** Low level: adds `g` into `.grad` (used by backward). */
  accumulateGrad(g: Tensor): void {
    checkLike("accumulateGrad", "the gradient", g, this, { dtype: false });
    const prev = this.#grad;
    // A fresh buffer: `g` may be shared with other leaves (add passes one gradient to both
    // operands), be a broadcast view, or be the caller's own `gradient` tensor.
    const next = prev ? prev.add(g) : (g.dtype === this.dtype ? sh.clone(g) : g.cast(this.dtype));
    this.#grad = keep(next);
    if (prev && prev !== next) prev.dispose();
  }

  /**
   * Frees `.grad` and sets it to null.
   *
   * @example
   * ```ts
   * import { tensor } from "./creation.ts";
   * const x = tensor([1]).requireGrad();
   * x.zeroGrad();
   * ```
   */
  zeroGrad(): void {
    const g = this.#grad;
    this.#grad = null;
    g?.dispose();
  }

  /** Checks that `other` lives on the same backend; names `op` otherwise. */
  sameBackend(op: string, other: Tensor): void {
    sameBackend(op, this, checkTensor(op, "the other operand", other));
  }

  // ---------------------------------------------------------------- elementwise
  /** Elementwise sum with broadcasting. */
  add(other: Operand): Tensor {
    return ew.add(this, other);
  }
  /** Elementwise difference with broadcasting. */
  sub(other: Operand): Tensor {
    return ew.sub(this, other);
  }
  /** Elementwise product with broadcasting. */
  mul(other: Operand): Tensor {
    return ew.mul(this, other);
  }
  /** Elementwise quotient with broadcasting. */
  div(other: Operand): Tensor {
    return ew.div(this, other);
  }
  /** Elementwise power with broadcasting. */
  pow(other: Operand): Tensor {
    return ew.pow(this, other);
  }
  /** Elementwise maximum with broadcasting. */
  maximum(other: Operand): Tensor {
    return ew.maximum(this, other);
  }
  /** Elementwise minimum with broadcasting. */
  minimum(other: Operand): Tensor {
    return ew.minimum(this, other);
  }
  /** -x */
  neg(): Tensor {
    return ew.neg(this);
  }
  /** x² */
  square(): Tensor {
    return ew.mul(this, this);
  }
  /** eˣ */
  exp(): Tensor {
    return ew.exp(this);
  }
  /** Natural logarithm. */
  log(): Tensor {
    return ew.log(this);
  }
  /** Square root. */
  sqrt(): Tensor {
    return ew.sqrt(this);
  }
  /** 1/√x */
  rsqrt(): Tensor {
    return ew.rsqrt(this);
  }
  /** |x| */
  abs(): Tensor {
    return ew.abs(this);
  }
  /** Sine. */
  sin(): Tensor {
    return ew.sin(this);
  }
  /** Cosine. */
  cos(): Tensor {
    return ew.cos(this);
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return ew.tanh(this);
  }
  /** Logistic sigmoid. */
  sigmoid(): Tensor {
    return ew.sigmoid(this);
  }
  /** max(x, 0) */
  relu(): Tensor {
    return ew.relu(this);
  }
  /** GELU (exact erf form, or the tanh approximation). */
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return ew.gelu(this, approximate);
  }
  /** x·sigmoid(x) */
  silu(): Tensor {
    return ew.silu(this);
  }
  /** log(1 + eˣ) */
  softplus(): Tensor {
    return ew.softplus(this);
  }
  /** Clamps into [min, max] (either bound may be omitted). */
  clamp(min?: number, max?: number): Tensor {
    return ew.clamp(this, min, max);
  }
  /** Elementwise x == y (1 or 0, no gradient). */
  eq(other: Operand): Tensor {
    return ew.eq(this, other);
  }
  /** Elementwise x != y. */
  ne(other: Operand): Tensor {
    return ew.ne(this, other);
  }
  /** Elementwise x < y. */
  lt(other: Operand): Tensor {
    return ew.lt(this, other);
  }
  /** Elementwise x <= y. */
  le(other: Operand): Tensor {
    return ew.le(this, other);
  }
  /** Elementwise x > y. */
  gt(other: Operand): Tensor {
    return ew.gt(this, other);
  }
  /** Elementwise x >= y. */
  ge(other: Operand): Tensor {
    return ew.ge(this, other);
  }
  /** Converts to another dtype (differentiable between float types). */
  cast(dtype: DType): Tensor {
    return ew.cast(this, dtype);
  }

  // ---------------------------------------------------------------- reductions
  /** Sum over `axes` (all by default). */
  sum(axes?: number | number[], keepdims = false): Tensor {
    return rd.sum(this, axes, keepdims);
  }
  /** Mean over `axes` (all by default). */
  mean(axes?: number | number[], keepdims = false): Tensor {
    return rd.mean(this, axes, keepdims);
  }
  /** Maximum over `axes` (all by default). */
  max(axes?: number | number[], keepdims = false): Tensor {
    return rd.max(this, axes, keepdims);
  }
  /** Minimum over `axes` (all by default). */
  min(axes?: number | number[], keepdims = false): Tensor {
    return rd.min(this, axes, keepdims);
  }
  /** Variance over `axes` (correction 1 by default, as PyTorch). */
  var(axes?: number | number[], options: rd.VarOptions = {}): Tensor {
    return rd.variance(this, axes, options);
  }
  /** log Σ exp over `axes`, stable. */
  logsumexp(axes?: number | number[], keepdims = false): Tensor {
    return rd.logsumexp(this, axes, keepdims);
  }
  /** Softmax along `axis` (default last). */
  softmax(axis = -1): Tensor {
    return rd.softmax(this, axis);
  }
  /** Standard deviation over `axes`. */
  std(axes?: number | number[], options: rd.VarOptions = {}): Tensor {
    return rd.std(this, axes, options);
  }
  /** p-norm over `axes` (default: 2-norm of everything). */
  norm(p = 2, axes?: number | number[], keepdims = false): Tensor {
    return rd.norm(this, p, axes, keepdims);
  }
  /** Log-softmax along `axis` (default last). */
  logSoftmax(axis = -1): Tensor {
    return rd.logSoftmax(this, axis);
  }
  /** Inclusive cumulative sum along `axis`. */
  cumsum(axis: number): Tensor {
    return rd.cumsum(this, axis);
  }
  /** Index of the maximum along `axis` (int32). */
  argmax(axis = -1, keepdims = false): Tensor {
    return rd.argmax(this, axis, keepdims);
  }
  /** Index of the minimum along `axis` (int32). */
  argmin(axis = -1, keepdims = false): Tensor {
    return rd.argmin(this, axis, keepdims);
  }

  // ---------------------------------------------------------------- linear algebra
  /** Matrix product (batched, broadcasting, NumPy rules for 1-D operands). */
  matmul(other: Tensor): Tensor {
    return matmul(this, other);
  }

  // ---------------------------------------------------------------- shape
  /** Same elements, new shape (one entry may be -1). A view when the layout allows. */
  reshape(shape: readonly number[]): Tensor {
    return sh.reshape(this, shape);
  }
  /** Reorders the axes. A view. */
  permute(axes: readonly number[]): Tensor {
    return sh.permute(this, axes);
  }
  /** Swaps two axes (default: the last two). A view. */
  transpose(a = -2, b = -1): Tensor {
    return sh.transpose(this, a, b);
  }
  /** Broadcasts to `shape` without copying. */
  expand(shape: readonly number[]): Tensor {
    return sh.expand(this, shape);
  }
  /** Python-style slicing per axis: a number picks an index, null keeps the axis, [start, stop, step] slices. */
  slice(spec: readonly sh.SliceSpec[]): Tensor {
    return sh.slice(this, spec);
  }
  /** `length` elements from `start` along `axis`. A view. */
  narrow(axis: number, start: number, length: number): Tensor {
    return sh.narrow(this, axis, start, length);
  }
  /** Removes size-1 axes (all, or those listed). */
  squeeze(axes?: number | number[]): Tensor {
    return sh.squeeze(this, axes);
  }
  /** Inserts a size-1 axis at `axis`. */
  unsqueeze(axis: number): Tensor {
    return sh.unsqueeze(this, axis);
  }
  /** Reshapes axes start..end into one. */
  flatten(start = 0, end = -1): Tensor {
    return sh.flatten(this, start, end);
  }
  /** Reverses the order along `axes`. A view. */
  flip(axes: number | number[]): Tensor {
    return sh.flip(this, axes);
  }
  /** Row-major copy (or this tensor when already contiguous). */
  contiguous(): Tensor {
    return sh.contiguous(this);
  }
  /** A contiguous copy that owns its storage. */
  clone(): Tensor {
    return sh.clone(this);
  }
  /** Pads the trailing axes: pads[i] = [before, after] for axis i (from the first). */
  pad(pads: readonly (readonly [number, number])[], mode: sh.PadMode = "constant", value = 0): Tensor {
    return sh.pad(this, pads, mode, value);
  }
  /** Circular shift along `axis`. */
  roll(shift: number, axis: number): Tensor {
    return sh.roll(this, shift, axis);
  }
  /** Splits along `axis` into pieces of the given sizes (or into `sections` equal pieces). */
  split(sizes: number | readonly number[], axis = 0): Tensor[] {
    return sh.split(this, sizes, axis);
  }

  // ---------------------------------------------------------------- indexing
  /** torch.gather along `axis`. */
  gather(axis: number, index: Tensor): Tensor {
    return ix.gather(this, axis, index);
  }
  /** Rows (or slices along `axis`) picked by a 1-D int32 index. */
  indexSelect(axis: number, index: Tensor): Tensor {
    return ix.indexSelect(this, axis, index);
  }
  /** This tensor plus `src` scattered (summed) at `index` along `axis`. */
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor {
    return ix.scatterAdd(this, axis, index, src);
  }
}

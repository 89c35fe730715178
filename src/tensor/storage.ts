/**
 * Ownership of backend buffers.
 *
 * A {@link Storage} wraps one backend buffer and counts the tensors that view it; when the count
 * drops to zero the buffer goes back to its backend at once (on the GPU, to the caching
 * allocator). Tensors release their reference when disposed, when the {@link tidy} scope that
 * created them ends, or — as a safety net only — when the JavaScript garbage collector finalises
 * them. Explicit scopes are what make "only one chunk's activations are alive" a number you can
 * read from `memory().current`.
 *
 * The safety net costs the garbage collector a weak cell per object, so it is spread only where it
 * can catch something: an object an open scope holds cannot be collected (the scope holds it) and
 * will be disposed or handed on when the scope ends, so it is watched only once no scope holds it
 * — made outside every scope, kept ({@link keep}), or outliving the outermost {@link tidy}.
 *
 * @module
 */

import type { DeviceBuffer } from "./backend.ts";
import { ArgumentError } from "./errors.ts";
import { checkFunction, describe } from "./validate.ts";

/** Reference-counted owner of a backend buffer. */
export class Storage {
  /** The backend buffer. */
  readonly buffer: DeviceBuffer;
  #refs = 0;
  #freed = false;

  /** Wraps a freshly allocated buffer (no references yet) and takes charge of freeing it. */
  constructor(buffer: DeviceBuffer) {
    this.buffer = buffer;
    buffer.adopted?.();
  }

  /** Whether the buffer has been returned to the backend. */
  get freed(): boolean {
    return this.#freed;
  }

  /** Adds a reference. */
  retain(): void {
    this.#refs++;
  }

  /** Drops a reference; frees the buffer when none remain. */
  release(): void {
    if (this.#freed) return;
    if (--this.#refs <= 0) {
      this.#freed = true;
      this.buffer.backend.free(this.buffer);
    }
  }
}

/** Anything a scope tracks: it can be disposed and can say what it keeps alive. */
export interface Disposable {
  /**
   * Releases the object's storage reference, and whatever it owns (a tensor's gradient) except
   * the objects in `inUse`, which are handed to the enclosing scope instead.
   */
  dispose(inUse?: ReadonlySet<Disposable>): void;
  /** Whether dispose() was called. */
  readonly disposed: boolean;
  /** Objects this one needs alive (its autodiff inputs and saved values). */
  dependencies(): Iterable<Disposable>;
  /**
   * Called when no open scope holds the object any more (it was kept, or it outlived the
   * outermost `tidy`), so that one the program drops undisposed can be released when the garbage
   * collector finalises it; called again, it does nothing.
   */
  unscoped?(): void;
}

const finalizer = new FinalizationRegistry<Storage>((storage) => storage.release());

/**
 * Registers `owner` so its storage reference is released if it is garbage collected undisposed.
 *
 * @example
 * ```ts
 * import { watchForCollection } from "./storage.ts";
 * // watchForCollection(tensor, tensor.storage);
 * ```
 */
export function watchForCollection(owner: object, storage: Storage): void {
  finalizer.register(owner, storage, owner);
}

/**
 * Stops watching `owner` (after it released its storage itself).
 *
 * @example
 * ```ts
 * import { unwatch } from "./storage.ts";
 * // unwatch(tensor);
 * ```
 */
export function unwatch(owner: object): void {
  finalizer.unregister(owner);
}

const scopes: Set<Disposable>[] = [];

/**
 * Records an object in the innermost open scope, if any; returns whether a scope took it (if
 * none did, the object is on its own and should be watched for collection).
 *
 * @example
 * ```ts
 * import { track } from "./storage.ts";
 * // if (!track(tensor)) watchForCollection(tensor, tensor.storage);
 * ```
 */
export function track(obj: Disposable): boolean {
  const top = scopes[scopes.length - 1];
  if (!top) return false;
  top.add(obj);
  return true;
}

/**
 * Removes `obj` from every open scope so no scope disposes it (parameters, optimiser state and
 * anything else meant to outlive the current step; a tensor's gradient needs no `keep`: it lives
 * as long as its tensor).
 *
 * @example
 * ```ts
 * import { keep } from "./storage.ts";
 * // keep(tensor);
 * ```
 */
export function keep<T extends Disposable>(obj: T): T {
  if (obj === null || typeof obj !== "object" || !isDisposable(obj)) {
    throw new ArgumentError("keep", `expects a Tensor (or another disposable), got ${describe(obj)}`);
  }
  for (const s of scopes) s.delete(obj);
  obj.unscoped?.();
  return obj;
}

function collect(value: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (isDisposable(value)) {
    const stack: Disposable[] = [value];
    while (stack.length) {
      const d = stack.pop()!;
      if (out.has(d)) continue;
      out.add(d);
      for (const dep of d.dependencies()) stack.push(dep);
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, seen);
  }
}

function isDisposable(value: object): value is Disposable {
  return typeof (value as Disposable).dispose === "function" &&
    typeof (value as Disposable).dependencies === "function";
}

/**
 * Runs `fn` in a scope and disposes every tensor created inside it that is not part of the result
 * (arrays, plain objects and Maps of tensors are searched) and not needed by the result's autodiff
 * graph. Survivors move to the enclosing scope. A disposed tensor's gradient goes with it unless
 * the result holds the gradient. Use it around a training step or a chunk so its intermediates go
 * back to the allocator immediately: `memory().current` is back at its value before the call,
 * plus what the result holds and the gradients accumulated into tensors made outside.
 *
 * @example
 * ```ts
 * import { tidy } from "./storage.ts";
 * // const loss = tidy(() => model.forward(x).sub(y).square().mean());
 * ```
 */
export function tidy<T>(fn: () => T): T {
  checkFunction("tidy", "fn", fn);
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const d of scope) d.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new ArgumentError(
      "tidy",
      "the function returned a Promise; tidy scopes are synchronous (await outside, tidy each synchronous step)",
    );
  }
  const live = new Set<Disposable>();
  collect(result, live, new Set());
  const parent = scopes[scopes.length - 1];
  for (const d of scope) {
    if (live.has(d)) {
      if (parent) parent.add(d);
      else d.unscoped?.();
    } else {
      d.dispose(live);
    }
  }
  return result;
}

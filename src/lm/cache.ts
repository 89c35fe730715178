/**
 * The key/value cache of a decoder: per layer, the rotated keys and the values of every position
 * seen so far, `[batch, kvHeads, length, headDim]`. It is a plain value — passed into a forward
 * and returned, extended, by it — so a chunk-wise trainer can cut it from the graph, make its
 * tensors leaves that require grad, and read their gradients.
 *
 * @module
 */

import { ArgumentError, concat, fmtShape, ShapeError, type Tensor } from "../tensor/mod.ts";

/**
 * One layer's cached keys and values, `[batch, kvHeads, length, headDim]` each.
 *
 * @example
 * ```ts
 * import type { LayerCache } from "./cache.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const c: LayerCache = { keys: zeros([1, 2, 0, 8]), values: zeros([1, 2, 0, 8]) };
 * ```
 */
export interface LayerCache {
  /** Rotated keys. */
  readonly keys: Tensor;
  /** Values. */
  readonly values: Tensor;
}

/**
 * A cache: one {@link LayerCache} per decoder layer.
 *
 * @example
 * ```ts
 * import type { KVCache } from "./cache.ts";
 * const empty: KVCache = [];
 * ```
 */
export type KVCache = readonly LayerCache[];

/**
 * Number of positions a cache holds (0 for an empty or absent one).
 *
 * @example
 * ```ts
 * import { cacheLength } from "./cache.ts";
 * cacheLength([]); // 0
 * ```
 */
export function cacheLength(cache: KVCache | null | undefined): number {
  return cache && cache.length ? cache[0].keys.shape[2] : 0;
}

/**
 * A layer's cache extended by new keys and values along the length axis (the first call, with
 * no earlier cache, returns the new ones as they are). Differentiable: gradients reach both the
 * earlier cache and the new tensors.
 *
 * @example
 * ```ts
 * import { appendLayerCache } from "./cache.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const c = appendLayerCache(undefined, zeros([1, 2, 3, 8]), zeros([1, 2, 3, 8]));
 * appendLayerCache(c, zeros([1, 2, 1, 8]), zeros([1, 2, 1, 8])).keys.shape; // [1, 2, 4, 8]
 * ```
 */
export function appendLayerCache(previous: LayerCache | undefined, keys: Tensor, values: Tensor): LayerCache {
  if (!previous) return { keys, values };
  const k = previous.keys;
  if (k.ndim !== 4 || k.shape[0] !== keys.shape[0] || k.shape[1] !== keys.shape[1] || k.shape[3] !== keys.shape[3]) {
    throw new ShapeError(
      "cache",
      `cached keys ${fmtShape(k.shape)} do not fit new keys ${fmtShape(keys.shape)} (batch, heads and width equal)`,
    );
  }
  return { keys: concat([k, keys], 2), values: concat([previous.values, values], 2) };
}

/**
 * Checks that `cache` has one entry per layer with matching shapes; returns its length.
 *
 * @example
 * ```ts
 * import { checkCache } from "./cache.ts";
 * checkCache([], 2); // 0
 * ```
 */
export function checkCache(cache: KVCache | null | undefined, layers: number): number {
  if (!cache || cache.length === 0) return 0;
  if (cache.length !== layers) {
    throw new ArgumentError("cache", `holds ${cache.length} layers but the model has ${layers}`);
  }
  const n = cache[0].keys.shape[2];
  for (const [i, c] of cache.entries()) {
    if (c.keys.ndim !== 4 || c.keys.shape[2] !== n || c.values.shape[2] !== n) {
      throw new ShapeError(
        "cache",
        `layer ${i} holds keys ${fmtShape(c.keys.shape)} and values ${fmtShape(c.values.shape)}; ` +
          `every layer must hold ${n} positions`,
      );
    }
  }
  return n;
}

/**
 * A copy of the cache cut from the graph; with `requireGrad` its tensors are fresh leaves whose
 * `.grad` a later backward fills (what chunk-wise training relays between chunks).
 *
 * @example
 * ```ts
 * import { detachCache } from "./cache.ts";
 * import { zeros } from "../tensor/mod.ts";
 * const c = detachCache([{ keys: zeros([1, 1, 2, 4]), values: zeros([1, 1, 2, 4]) }], { requireGrad: true });
 * c[0].keys.requiresGrad; // true
 * ```
 */
export function detachCache(cache: KVCache, options: { requireGrad?: boolean } = {}): KVCache {
  const cut = (t: Tensor) => (options.requireGrad ? t.detach().requireGrad() : t.detach());
  return cache.map((c) => ({ keys: cut(c.keys), values: cut(c.values) }));
}

/**
 * Frees every tensor of a cache now.
 *
 * @example
 * ```ts
 * import { disposeCache } from "./cache.ts";
 * import { zeros } from "../tensor/mod.ts";
 * disposeCache([{ keys: zeros([1, 1, 2, 4]), values: zeros([1, 1, 2, 4]) }]);
 * ```
 */
export function disposeCache(cache: KVCache): void {
  for (const c of cache) {
    c.keys.dispose();
    c.values.dispose();
  }
}

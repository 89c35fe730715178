/**
 * Trees of tensors: a tensor, or arrays and plain objects whose values are trees (a JAX pytree
 * whose leaves are all tensors). A piece of a sequence hands on its state as a tree — one tensor
 * for a recurrent model, a `[K, V]` pair per layer for a transformer's key/value cache. Leaves are
 * visited depth first, arrays in order and objects by sorted key, so two trees of one structure
 * list their leaves in the same order.
 *
 * @module
 */

import { ArgumentError, ShapeError, Tensor } from "../tensor/mod.ts";

/** A tensor, or arrays and plain objects of trees. */
export type TensorTree = Tensor | readonly TensorTree[] | { readonly [key: string]: TensorTree };

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== "object" || x === null) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function kindOf(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return `a ${typeof x}`;
  return `a ${(x as object).constructor?.name ?? "object"}`;
}

/** Visits the leaves of `tree` in order, with their paths (`[1].k`); throws on a non-tensor leaf. */
function visit(tree: unknown, path: string, op: string, what: string, out: (leaf: Tensor, path: string) => void): void {
  if (tree instanceof Tensor) out(tree, path);
  else if (Array.isArray(tree)) tree.forEach((t, i) => visit(t, `${path}[${i}]`, op, what, out));
  else if (isPlainObject(tree)) {
    for (const key of Object.keys(tree).sort()) visit(tree[key], `${path}.${key}`, op, what, out);
  } else {
    throw new ArgumentError(
      op,
      `${what}${path ? ` at ${path}` : ""} is ${
        kindOf(tree)
      }, not a Tensor: a tree holds tensors in arrays and plain objects`,
    );
  }
}

/**
 * The leaves of a tree, in order (arrays by index, objects by sorted key). Throws an
 * `ArgumentError` naming `op` and the path of any leaf that is not a tensor.
 *
 * @example
 * ```ts
 * import { treeLeaves } from "./tree.ts";
 * import { zeros } from "../tensor/mod.ts";
 * treeLeaves([{ v: zeros([1]), k: zeros([2]) }]).map((t) => t.shape); // [[2], [1]]
 * ```
 */
export function treeLeaves(tree: TensorTree, op = "treeLeaves", what = "the tree"): Tensor[] {
  const leaves: Tensor[] = [];
  visit(tree, "", op, what, (leaf) => leaves.push(leaf));
  return leaves;
}

/**
 * A tree of the same structure whose leaves are `fn` of the leaves of `tree` (given in order, with
 * their index among the leaves).
 *
 * @example
 * ```ts
 * import { treeMap } from "./tree.ts";
 * import { ones } from "../tensor/mod.ts";
 * const doubled = treeMap({ k: ones([2]), v: ones([2]) }, (t) => t.mul(2)); // { k: [2, 2], v: [2, 2] }
 * ```
 */
export function treeMap<T extends TensorTree>(tree: T, fn: (leaf: Tensor, index: number) => Tensor): T {
  let index = 0;
  const rebuild = (t: unknown, path: string): unknown => {
    if (t instanceof Tensor) return fn(t, index++);
    if (Array.isArray(t)) return t.map((c, i) => rebuild(c, `${path}[${i}]`));
    if (isPlainObject(t)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(t).sort()) out[key] = rebuild(t[key], `${path}.${key}`);
      return out;
    }
    throw new ArgumentError("treeMap", `the tree at ${path || "its root"} is ${kindOf(t)}, not a Tensor`);
  };
  return rebuild(tree, "") as T;
}

/** The nesting and keys of a tree, without its leaves: equal for trees of one structure. */
function skeleton(tree: unknown): string {
  if (tree instanceof Tensor) return "*";
  if (Array.isArray(tree)) return `[${tree.map(skeleton).join(",")}]`;
  const obj = tree as Record<string, unknown>;
  return `{${Object.keys(obj).sort().map((k) => `${JSON.stringify(k)}:${skeleton(obj[k])}`).join(",")}}`;
}

/**
 * Checks that `got` has the structure of `want` (nesting, keys) and leaves of the same shapes and
 * dtypes: an `ArgumentError` for another structure, a `ShapeError` for another leaf shape or dtype,
 * each naming `op` and `what`.
 */
export function assertSameTree(got: TensorTree, want: TensorTree, op: string, what: string): void {
  const a = skeleton(got), b = skeleton(want);
  if (a !== b) {
    throw new ArgumentError(op, `${what} has the structure ${a} but ${b} was expected (* is a tensor)`);
  }
  const gotPaths: [Tensor, string][] = [];
  visit(got, "", op, what, (leaf, path) => gotPaths.push([leaf, path]));
  const wantLeaves = treeLeaves(want, op, what);
  gotPaths.forEach(([leaf, path], i) => {
    const w = wantLeaves[i];
    if (leaf.dtype !== w.dtype || leaf.shape.length !== w.shape.length || leaf.shape.some((d, j) => d !== w.shape[j])) {
      throw new ShapeError(
        op,
        `${what} at ${path || "its root"} is ${leaf.dtype} [${leaf.shape}] but ${w.dtype} [${w.shape}] was expected`,
      );
    }
  });
}

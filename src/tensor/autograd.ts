/**
 * Reverse-mode automatic differentiation on a tape of tensor nodes.
 *
 * Every differentiable operation records a {@link Node}: the tensors its gradient flows to, any
 * other tensors its backward rule reads, and the rule itself. Backward rules are written in tensor
 * operations, so when a backward pass runs with `createGraph` its own operations are recorded too,
 * and gradients of gradients (Hessian-vector products, second derivatives of a network's output
 * with respect to its input) come out of the same machinery.
 *
 * @module
 */

import { ArgumentError, AutodiffError } from "./errors.ts";
import { tidy } from "./storage.ts";
import type { Tensor } from "./tensor.ts";
import { checkFunction, checkOptions, checkTensors, sameBackend } from "./validate.ts";

/** A backward rule: given the output's gradient, the gradient of each input (null: none). */
export type BackwardFn = (grad: Tensor, needs: readonly boolean[]) => readonly (Tensor | null | undefined)[];

/** One recorded operation. */
export interface Node {
  /** Operation name, for messages. */
  readonly op: string;
  /** The tensors gradients flow to, in the order the rule returns them. */
  inputs: Tensor[];
  /** Other tensors the rule reads (kept alive for it). */
  saved: Tensor[];
  /** The rule; null once the graph has been freed by a backward pass. */
  backward: BackwardFn | null;
  /** Recording order: nodes recorded later have larger numbers (see {@link recordCount}). */
  readonly seq?: number;
}

let recorded = 0;

/**
 * How many operations have been recorded so far: a clock that tells graph nodes made before a
 * point from those made after it.
 *
 * @example
 * ```ts
 * import { recordCount } from "./autograd.ts";
 * const before = recordCount();
 * // ... ops ...; a tensor t was made after `before` when (t.node?.seq ?? 0) > before
 * ```
 */
export function recordCount(): number {
  return recorded;
}

let gradEnabled = true;

/**
 * Whether operations are being recorded.
 *
 * @example
 * ```ts
 * import { isGradEnabled, noGrad } from "./autograd.ts";
 * noGrad(() => isGradEnabled()); // false
 * ```
 */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` with recording switched off (no graph is built; results do not require grad).
 *
 * @example
 * ```ts
 * import { noGrad } from "./autograd.ts";
 * // const y = noGrad(() => model.forward(x));
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/**
 * Runs `fn` with recording switched on, even inside {@link noGrad}.
 *
 * @example
 * ```ts
 * import { enableGrad } from "./autograd.ts";
 * // enableGrad(() => f(x));
 * ```
 */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

function withGradMode<T>(mode: boolean, fn: () => T): T {
  checkFunction(mode ? "enableGrad" : "noGrad", "fn", fn);
  const prev = gradEnabled;
  gradEnabled = mode;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Records `output = op(inputs)` on the tape when recording is on and an input requires grad.
 * `saved` lists any other tensor the backward rule reads. Returns `output`.
 *
 * @example
 * ```ts
 * import { record } from "./autograd.ts";
 * // record("exp", y, [x], [y], (g) => [g.mul(y)]);
 * ```
 */
export function record(
  op: string,
  output: Tensor,
  inputs: Tensor[],
  saved: Tensor[],
  backward: BackwardFn,
): Tensor {
  if (!gradEnabled) return output;
  let any = false;
  for (const t of inputs) {
    if (t.requiresGrad) {
      any = true;
      break;
    }
  }
  if (!any) return output;
  output.requiresGrad = true;
  output.node = { op, inputs, saved, backward, seq: ++recorded };
  return output;
}

/** Options of a backward pass. */
export interface BackwardOptions {
  /** Record the backward pass itself so its results can be differentiated again. Default false. */
  createGraph?: boolean;
  /** Keep the graph usable for another backward pass. Default: same as createGraph. */
  retainGraph?: boolean;
}

function topoOrder(roots: Tensor[], stopAt?: Set<Tensor>): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [];
  for (const r of roots) {
    if (!r.requiresGrad || visited.has(r)) continue;
    visited.add(r);
    stack.push([r, 0]);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [t, i] = top;
      const node = t.node;
      const children = node && !(stopAt?.has(t)) ? node.inputs : [];
      if (i < children.length) {
        top[1]++;
        const c = children[i];
        if (c.requiresGrad && !visited.has(c)) {
          visited.add(c);
          stack.push([c, 0]);
        }
      } else {
        stack.pop();
        order.push(t);
      }
    }
  }
  return order; // children before parents
}

/**
 * The core of every gradient computation: propagates `gradOutputs` from `outputs` back through the
 * tape and returns the accumulated gradient of each tensor in `targets` (zeros-free: a target the
 * outputs do not depend on gets null). With `targets` = "leaves", gradients are accumulated into
 * the `.grad` of every leaf that requires grad (and of tensors that called `retainGrad()`), as
 * `Tensor.backward()` does.
 *
 * @example
 * ```ts
 * import { gradients } from "./autograd.ts";
 * // const [gx] = gradients([y], [ones], [x]);
 * ```
 */
export function gradients(
  outputs: Tensor[],
  gradOutputs: Tensor[],
  targets: Tensor[] | "leaves",
  options: BackwardOptions = {},
): (Tensor | null)[] {
  checkTensors("gradients", "outputs", outputs);
  checkTensors("gradients", "gradOutputs", gradOutputs);
  if (gradOutputs.length !== outputs.length) {
    throw new ArgumentError("gradients", `${outputs.length} outputs but ${gradOutputs.length} gradOutputs`);
  }
  outputs.forEach((o, i) => sameBackend("gradients", o, gradOutputs[i]));
  if (targets !== "leaves") checkTensors("gradients", "targets", targets);
  checkOptions("gradients", options, ["createGraph", "retainGraph"]);
  const createGraph = options.createGraph ?? false;
  const retainGraph = options.retainGraph ?? createGraph;
  // The pass runs in its own scope: intermediate gradients go back to the allocator when it ends,
  // and only the results survive (with what their graphs need under createGraph).
  const result = tidy(() => {
    const targetSet = targets === "leaves" ? undefined : new Set(targets);
    const order = topoOrder(outputs, targetSet);
    // Which tensors lead to a target (only those need gradients).
    const useful = new Set<Tensor>();
    for (const t of order) {
      if (targetSet ? targetSet.has(t) : (!t.node || t.retainsGrad)) {
        useful.add(t);
        continue;
      }
      if (t.node && !t.node.backward) {
        // Freed by an earlier backward pass: its inputs are forgotten, so assume it leads somewhere
        // and let the pass below raise rather than silently drop the gradient.
        useful.add(t);
        continue;
      }
      if (t.node && (targetSet ? !targetSet.has(t) : true) && t.node.inputs.some((c) => useful.has(c))) {
        useful.add(t);
      }
    }
    const grads = new Map<Tensor, Tensor>();
    const accumulate = (t: Tensor, g: Tensor) => {
      const prev = grads.get(t);
      grads.set(t, prev ? prev.add(g) : g);
    };
    outputs.forEach((o, i) => {
      if (o.requiresGrad && useful.has(o)) accumulate(o, gradOutputs[i]);
    });
    const run = () => {
      for (let k = order.length - 1; k >= 0; k--) {
        const t = order[k];
        const node = t.node;
        const g = grads.get(t);
        if (!node || !g || (targetSet && targetSet.has(t))) continue;
        if (!node.backward) {
          throw new AutodiffError(
            "backward",
            `the graph through "${node.op}" was already freed by an earlier backward pass; ` +
              "pass { retainGraph: true } to the first one to differentiate twice",
          );
        }
        const needs = node.inputs.map((c) => c.requiresGrad && useful.has(c));
        const gin = node.backward(g, needs);
        node.inputs.forEach((c, i) => {
          const gi = gin[i];
          if (!needs[i] || !gi) return;
          const shaped = gi.shape.length === c.shape.length ? gi : gi.reshape(c.shape);
          // Gradients have their input's dtype (an op that computed in a wider type hands back a wider one).
          accumulate(c, shaped.dtype === c.dtype ? shaped : shaped.cast(c.dtype));
        });
        if (!retainGraph) {
          node.backward = null;
          node.saved = [];
          node.inputs = [];
        }
        if (targets === "leaves" && !t.retainsGrad) grads.delete(t);
      }
    };
    if (createGraph) enableGrad(run);
    else noGrad(run);
    if (targets === "leaves") {
      const updated: Tensor[] = [];
      for (const [t, g] of grads) {
        if (t.node && !t.retainsGrad) continue;
        t.accumulateGrad(g);
        updated.push(t.grad!);
      }
      return updated;
    }
    return targets.map((t) => grads.get(t) ?? null);
  });
  return targets === "leaves" ? [] : result;
}

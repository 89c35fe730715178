/**
 * Gradients of an {@link SSMForCausalLM} by back-propagation through the scan or by adjoint
 * sharding (Xu et al. 2025): the gradient of layer k's networks as a sum of vector–Jacobian
 * products that are independent of one another, each needing only the stored states.
 *
 * Within a layer (input x = ŷ_{k−1}, states h, decays a, upstream cotangent δ[t] on its output
 * C[t]h[t]) the adjoint states λ^{t,i} = C[t] A[t] ⋯ A[i+1] give
 *
 * ```text
 * ∂/∂θ_𝒞 :  Σ_t        VJP_𝒞(x[t];  δ[t] ⊗ h[t])                       T VJPs
 * ∂/∂θ_𝒜 :  Σ_t Σ_{i≤t} VJP_𝒜(x[i];  (δ[t]·λ^{t,i}) ⊙ h[i−1])          T(T+1)/2 VJPs
 * ∂/∂θ_ℬ :  Σ_t Σ_{i≤t} VJP_ℬ(x[i];  (δ[t]·λ^{t,i}) ⊗ x[i])            T(T+1)/2 VJPs
 * ```
 *
 * δ[t]·λ^{t,i} = (C[t]ᵀδ[t]) ⊙ a[t] ⊙ ⋯ ⊙ a[i+1] comes from a running product along each
 * diagonal d = t − i. The pieces run on the local-backprop engine ({@link independentBackward}):
 * the diagonals in order, cut into batched launches of `piecesPerLaunch` VJPs, never one per VJP; a
 * counter adds up the VJPs each launch computed.
 *
 * The four gradients (`method`):
 *
 * - `backprop`: one graph over the sequence, one backward pass through the scan. Exact.
 * - `adjoint`: adjoint sharding as the paper states it — every layer's cotangent is δ = ∂l/∂y_K
 *   (the last layer's), each layer's input ŷ_{k−1} held constant. Exact for the networks 𝒜, ℬ, 𝒞
 *   and the head when K = 1; for K > 1 it drops every path through later layers. Parameters
 *   before a layer's input (the embedding, the layers' norms) get what holding the inputs
 *   constant leaves them: the embedding the residual path ∂l/∂y_K, the norms nothing.
 * - `adjoint-exact`: the same independent VJPs per layer, plus each VJP's cotangent of its input
 *   x[i]; layer by layer from K to 1, these are carried through the layer's norm into
 *   ∂l/∂y_{k−1} = ∂l/∂y_k + (through the layer), the δ of the layer below. Exact for any K.
 * - `truncated`: `adjoint-exact` keeping only i ≥ t − T̄ + 1 (`window` T̄): the truncated adjoint
 *   sharding, Σ_{d<T̄} (T − d) VJPs per layer for 𝒜 and ℬ. Equal to `adjoint-exact` when T̄ ≥ T.
 *
 * `window` also applies to `adjoint` (the paper's truncated form, with its constant inputs).
 *
 * @module
 */

import {
  ArgumentError,
  checkInteger,
  checkOneOf,
  checkOptions,
  concat,
  fullLike,
  gradients,
  noGrad,
  NonFiniteError,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../tensor/mod.ts";
import { independentBackward } from "../local/mod.ts";
import type { TokenInput } from "./llama.ts";
import type { SSMForCausalLM, SSMLayer } from "./ssm.ts";

/**
 * How {@link ssmBackward} computes the gradient (see the module comment).
 *
 * @example
 * ```ts
 * import type { SSMGradientMethod } from "./adjoint_sharding.ts";
 * const m: SSMGradientMethod = "adjoint-exact";
 * ```
 */
export type SSMGradientMethod = "backprop" | "adjoint" | "adjoint-exact" | "truncated";

/**
 * The methods, in the order of the flags' help.
 *
 * @example
 * ```ts
 * import { SSM_GRADIENT_METHODS } from "./adjoint_sharding.ts";
 * SSM_GRADIENT_METHODS.includes("truncated"); // true
 * ```
 */
export const SSM_GRADIENT_METHODS: readonly SSMGradientMethod[] = ["backprop", "adjoint", "adjoint-exact", "truncated"];

/**
 * Options of {@link ssmBackward}.
 *
 * @example
 * ```ts
 * import type { SSMBackwardOptions } from "./adjoint_sharding.ts";
 * const o: SSMBackwardOptions = { method: "truncated", window: 256, piecesPerLaunch: 8192 };
 * ```
 */
export interface SSMBackwardOptions {
  /** Default `backprop`. */
  method?: SSMGradientMethod;
  /** T̄: the VJPs kept per output step (`truncated`: required; `adjoint`: optional). */
  window?: number;
  /** VJPs through 𝒜 and ℬ per batched launch (rows of one piece). Default 4096. */
  piecesPerLaunch?: number;
  /** Time steps per block of the stored forward pass, the loss and the 𝒞 launches. Default 256. */
  blockSize?: number;
  /** Multiplies the summed cross-entropy. Default 1 / (batch × L): the mean. */
  scale?: number;
  /** Vocabulary rows per slice of the loss. Default 8192. */
  sliceSize?: number;
}

/**
 * VJPs computed for one layer, counted launch by launch.
 *
 * @example
 * ```ts
 * import type { VJPCount } from "./adjoint_sharding.ts";
 * const c: VJPCount = { a: 136, b: 136, c: 16, launches: 3 }; // T = 16, one sequence
 * ```
 */
export interface VJPCount {
  /** VJPs through 𝒜 (one per pair i ≤ t kept, per sequence of the batch). */
  a: number;
  /** VJPs through ℬ. */
  b: number;
  /** VJPs through 𝒞 (one per step). */
  c: number;
  /** Batched launches (pieces on the engine) that computed them. */
  launches: number;
}

/**
 * What {@link ssmBackward} did.
 *
 * @example
 * ```ts
 * import type { SSMBackwardResult } from "./adjoint_sharding.ts";
 * const r: SSMBackwardResult = { lossSum: 710.2, tokens: 256, vjps: [] };
 * ```
 */
export interface SSMBackwardResult {
  /** Σ of the token cross-entropies (nats), from the forward pass. */
  lossSum: number;
  /** Tokens predicted (batch × L). */
  tokens: number;
  /** Per layer (index k − 1), the VJPs computed; empty for `backprop`. */
  vjps: VJPCount[];
}

/**
 * The stored forward pass of {@link ssmTrace}: each layer's input stream y_{k−1} and states h_k, and y_K.
 *
 * @example
 * ```ts
 * import type { SSMTrace } from "./adjoint_sharding.ts";
 * const depth = (t: SSMTrace) => t.inputs.length; // K
 * ```
 */
export interface SSMTrace {
  /** y_{k−1} `[B, T, P]`, the stream entering layer k (index k − 1). */
  inputs: Tensor[];
  /** h_k `[B, T, N]`, layer k's states (index k − 1). */
  states: Tensor[];
  /** y_K `[B, T, P]`. */
  residual: Tensor;
}

/**
 * The forward pass of `model` on int32 `tokens` `[B, T]` without recording, `block` steps at a
 * time along each layer (the state carried), keeping what {@link ssmLayerBackward} needs.
 *
 * @example
 * ```ts
 * import { ssmTrace } from "./adjoint_sharding.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny);
 * ssmTrace(model, model.tokens([[1, 2, 3]]), 256).states.length; // 2
 * ```
 */
export function ssmTrace(model: SSMForCausalLM, tokens: Tensor, block: number): SSMTrace {
  return noGrad(() => {
    const inputs: Tensor[] = [], states: Tensor[] = [];
    let y = model.embed_tokens.forward(tokens);
    const length = tokens.shape[1];
    for (const layer of model.layers) {
      // Each block's intermediates (B and C of its steps) are freed as soon as it is done.
      const { outs, hs } = tidy(() => {
        const outs: Tensor[] = [], hs: Tensor[] = [];
        let carry: Tensor | null = null;
        for (let t0 = 0; t0 < length; t0 += block) {
          const out = tidy(() => layer.forward(y.narrow(1, t0, Math.min(block, length - t0)), carry));
          outs.push(out.output);
          hs.push(out.states);
          carry = out.states.narrow(1, out.states.shape[1] - 1, 1).squeeze(1);
        }
        return { outs: concat(outs, 1), hs: concat(hs, 1) };
      });
      inputs.push(y);
      states.push(hs);
      y = outs;
    }
    return { inputs, states, residual: y };
  });
}

/** VJPs along one diagonal d: the pairs (t = i + d, i) for i in [start, start + count), per sequence. */
interface Segment {
  d: number;
  start: number;
  count: number;
}

/**
 * The launches: the diagonals d < window in order, cut into segments so that a launch holds at
 * most `rows` VJPs (batch × steps; one step of the batch at least).
 */
function launchPlan(length: number, window: number, batch: number, rows: number): Segment[][] {
  const per = Math.max(1, Math.floor(rows / batch));
  const launches: Segment[][] = [];
  let current: Segment[] = [];
  let room = per;
  for (let d = 0; d < window; d++) {
    for (let start = 0; start < length - d;) {
      const count = Math.min(room, length - d - start);
      current.push({ d, start, count });
      start += count;
      room -= count;
      if (room === 0) {
        launches.push(current);
        current = [];
        room = per;
      }
    }
  }
  if (current.length) launches.push(current);
  return launches;
}

/** The rows (b·T + i) of a launch's steps, in the order of its cotangents: by segment, then sequence, then step. */
function stepIndex(segments: readonly Segment[], batch: number, length: number): Int32Array {
  const out = new Int32Array(batch * segments.reduce((n, s) => n + s.count, 0));
  let k = 0;
  for (const { start, count } of segments) {
    for (let b = 0; b < batch; b++) for (let i = start; i < start + count; i++) out[k++] = b * length + i;
  }
  return out;
}

/** Rows `[B·n, ...]` of a `[B, n, ...]` tensor. */
function rows(x: Tensor): Tensor {
  return x.reshape([x.shape[0] * x.shape[1], ...x.shape.slice(2)]);
}

interface LayerPass {
  layer: SSMLayer;
  /** The layer's input x = ŷ_{k−1} `[B, T, P]`; requires grad when its cotangent is wanted. */
  x: Tensor;
  /** The layer's states `[B, T, N]`. */
  h: Tensor;
  /** The cotangent of the layer's output C·h `[B, T, P]`. */
  delta: Tensor;
  window: number;
  rows: number;
  block: number;
  exact: boolean;
}

/**
 * The layer's VJPs: 𝒞's step by step (which also give the states' cotangents C[t]ᵀδ[t]), then 𝒜's
 * and ℬ's along the diagonals. Adds into the networks' `.grad` and, when `exact`, into `x.grad`.
 */
function layerVJPs(p: LayerPass): VJPCount {
  const mixer = p.layer.mixer;
  const [batch, length] = p.h.shape;
  const count: VJPCount = { a: 0, b: 0, c: 0, launches: 0 };
  const input = (x: Tensor) => (p.exact ? x : x.detach());
  // 𝒞: Σ_t ⟨δ[t], C(x[t]) h[t]⟩ over blocks of steps; its h-gradient is C[t]ᵀδ[t].
  const h = p.h.detach().requireGrad();
  const cPieces = Array.from({ length: Math.ceil(length / p.block) }, (_, j) => ([x, hs]: Tensor[]) => {
    const t0 = j * p.block, n = Math.min(p.block, length - t0);
    const xb = input(x.narrow(1, t0, n));
    count.c += batch * n;
    count.launches++;
    return mixer.readout(xb, hs.narrow(1, t0, n)).mul(p.delta.narrow(1, t0, n)).sum();
  });
  independentBackward([p.x, h], cPieces);
  const v = h.grad!;
  h.grad = null;
  // 𝒜, ℬ: piece (t, i = t − d) has cotangent m_d[i] = v[i + d] ⊙ a[i + 1] ⋯ a[i + d] (a running
  // product down the diagonal) on the state h[i] = a(x[i]) ⊙ h[i − 1] + B(x[i]) x[i].
  const { a, before } = noGrad(() => {
    const first = zeros([batch, 1, p.h.shape[2]], { dtype: p.h.dtype, backend: p.h.backend });
    return {
      a: mixer.decay(p.x),
      before: length === 1 ? first : concat([first, p.h.narrow(1, 0, length - 1)], 1),
    };
  });
  let m = v; // m_d for the last diagonal a launch reached
  let next = 0; // the diagonal m holds
  const plan = launchPlan(length, Math.min(p.window, length), batch, p.rows);
  const abPieces = plan.map((segments) => ([x]: Tensor[]) => {
    const cot = noGrad(() =>
      segments.map(({ d, start, count }) => {
        while (next < d) {
          next++;
          const stepped: Tensor = m.narrow(1, 1, length - next).mul(a.narrow(1, 1, length - next));
          if (m !== v) m.dispose();
          m = stepped.keep();
        }
        return rows(m.narrow(1, start, count));
      })
    );
    // The launch's inputs picked by one index (one scatter in the backward, whatever the segments).
    const picked = tensor(stepIndex(segments, batch, length), { dtype: "int32", backend: x.backend });
    const span = (t: Tensor) => t.reshape([batch * length, t.shape[2]]).indexSelect(0, picked);
    const xr = input(span(x));
    const mu = concat(cot);
    count.a += xr.shape[0];
    count.b += xr.shape[0];
    count.launches++;
    const state = mixer.decay(xr).mul(span(before)).add(mixer.drive(xr));
    return state.mul(mu).sum();
  });
  independentBackward([p.x], abPieces);
  if (m !== v) m.dispose();
  v.dispose();
  return count;
}

/**
 * The loss of y_K block by block along time: its sum, ∂(scale·loss)/∂y_K, and the final norm's and
 * Ω's gradients — added to their `.grad` only once every block's loss is known to be finite
 * (`check` sees each block's sum and the total, and throws to stop).
 *
 * @example
 * ```ts
 * import { ssmHead, ssmTrace } from "./adjoint_sharding.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny);
 * const all = model.tokens([[1, 2, 3, 4]]);
 * const stored = ssmTrace(model, all.narrow(1, 0, 3), 256);
 * const { delta } = ssmHead(model, stored.residual, all.narrow(1, 1, 3), 256, 1 / 3, { reduction: "sum" }, (v) => v);
 * delta.shape; // [1, 3, 32]: ∂l/∂y_K
 * ```
 */
export function ssmHead(
  model: SSMForCausalLM,
  residual: Tensor,
  targets: Tensor,
  block: number,
  scale: number,
  lossOptions: { reduction: "sum"; sliceSize?: number },
  check: (value: number) => number,
): { lossSum: number; delta: Tensor } {
  const params = [...model.norm.parameters(), ...model.lm_head.parameters()].filter((p) => p.requiresGrad);
  const length = residual.shape[1];
  const deltas: Tensor[] = [];
  let sums: Tensor[] | null = null;
  let lossSum = 0;
  for (let t0 = 0; t0 < length; t0 += block) {
    const n = Math.min(block, length - t0);
    const [dy, ...dp] = tidy(() => {
      const y = residual.narrow(1, t0, n).contiguous().requireGrad();
      const loss = model.head(y, targets.narrow(1, t0, n), lossOptions);
      lossSum += check(loss.item());
      const grads = gradients([loss], [fullLike(loss, scale)], [y, ...params]) as Tensor[];
      return sums ? [grads[0], ...sums.map((s, i) => s.add(grads[i + 1]))] : grads;
    });
    sums?.forEach((s) => s.dispose());
    deltas.push(dy);
    sums = dp;
  }
  check(lossSum);
  params.forEach((p, i) => p.accumulateGrad(sums![i]));
  return { lossSum, delta: concat(deltas, 1) };
}

/**
 * Options of {@link ssmLayerBackward}.
 *
 * @example
 * ```ts
 * import type { SSMLayerPass } from "./adjoint_sharding.ts";
 * const o: SSMLayerPass = { window: 16, piecesPerLaunch: 4096, blockSize: 256, exact: true };
 * ```
 */
export interface SSMLayerPass {
  /** T̄: the VJPs kept per output step (the length for all of them). */
  window: number;
  /** VJPs through 𝒜 and ℬ per batched launch. */
  piecesPerLaunch: number;
  /** Time steps per launch of 𝒞's VJPs. */
  blockSize: number;
  /** Also carry the cotangent into the layer's input stream (`adjoint-exact`, `truncated`). */
  exact: boolean;
}

/**
 * One layer's share of {@link ssmBackward}: adds the VJPs of its networks, for the cotangent
 * `delta` = ∂l/∂y_k on its output, into their `.grad`; with `exact`, also its norm's gradient and
 * the cotangent of its input stream ∂l/∂y_{k−1} = δ + (through the layer), returned as `delta`
 * (else `delta` comes back unchanged). `input` and `states` are the layer's from {@link ssmTrace}.
 *
 * @example
 * ```ts
 * import { ssmHead, ssmLayerBackward, ssmTrace } from "./adjoint_sharding.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny);
 * const all = model.tokens([[1, 2, 3, 4]]);
 * const s = ssmTrace(model, all.narrow(1, 0, 3), 256);
 * const { delta } = ssmHead(model, s.residual, all.narrow(1, 1, 3), 256, 1 / 3, { reduction: "sum" }, (v) => v);
 * const pass = { window: 3, piecesPerLaunch: 4096, blockSize: 256, exact: true };
 * const below = ssmLayerBackward(model.layers.at(1), s.inputs[1], s.states[1], delta, pass);
 * below.vjps.a; // 6 = 3·4/2
 * ```
 */
export function ssmLayerBackward(
  layer: SSMLayer,
  input: Tensor,
  states: Tensor,
  delta: Tensor,
  pass: SSMLayerPass,
): { delta: Tensor; vjps: VJPCount } {
  const { window, piecesPerLaunch: rows, blockSize: block, exact } = pass;
  let vjps: VJPCount | undefined;
  const next = tidy(() => {
    const x = noGrad(() => layer.norm.forward(input));
    if (exact) x.requireGrad();
    vjps = layerVJPs({ layer, x, h: states, delta, window, rows, block, exact });
    if (!exact) return delta;
    // Through the layer's norm into y_{k−1}, beside the residual path.
    const yl = input.detach().requireGrad();
    gradients([layer.norm.forward(yl)], [x.grad!], "leaves");
    return delta.add(yl.grad!);
  });
  return { delta: next, vjps: vjps! };
}

/**
 * Accumulates into the model's parameters' `.grad` the gradient of `scale` × Σ token cross-entropy
 * of `sequences` (`[batch, L + 1]` tokens: each position predicts the next) by `method` (see the
 * module comment), and returns the summed loss and, for the sharded methods, the VJPs each layer
 * computed. A non-finite loss raises a {@link NonFiniteError} before any gradient is added.
 *
 * @example
 * ```ts
 * import { ssmBackward } from "./adjoint_sharding.ts";
 * import { SSM_PRESETS, SSMForCausalLM } from "./ssm.ts";
 * const model = new SSMForCausalLM(SSM_PRESETS.tiny, { seed: 0 });
 * const seq = [Array.from({ length: 33 }, (_, i) => (i * 7) % 256)];
 * const r = ssmBackward(model, seq, { method: "adjoint-exact" });
 * r.vjps[0].a; // 528 = 32·33/2
 * ```
 */
export function ssmBackward(
  model: SSMForCausalLM,
  sequences: TokenInput,
  options: SSMBackwardOptions = {},
): SSMBackwardResult {
  const op = "ssmBackward";
  const method = options.method ?? "backprop";
  checkOptions(op, options, ["method", "window", "piecesPerLaunch", "blockSize", "scale", "sliceSize"]);
  checkOneOf(op, "method", method, SSM_GRADIENT_METHODS);
  if (method === "truncated" && options.window === undefined) {
    throw new ArgumentError(op, `method "truncated" needs a window (the VJPs kept per step, T̄)`);
  }
  if (options.window !== undefined && method !== "truncated" && method !== "adjoint") {
    throw new ArgumentError(op, `window applies to methods "truncated" and "adjoint", not "${method}"`);
  }
  const rowsPerLaunch = checkInteger(op, "piecesPerLaunch", options.piecesPerLaunch ?? 4096, { min: 1 });
  const block = checkInteger(op, "blockSize", options.blockSize ?? 256, { min: 1 });
  const all = model.tokens(sequences);
  const [batch, width] = all.shape;
  if (width < 2) throw new ArgumentError(op, `sequences need at least 2 tokens (inputs and their next), got ${width}`);
  const length = width - 1;
  const window = options.window === undefined ? length : checkInteger(op, "window", options.window, { min: 1 });
  const scale = options.scale ?? 1 / (batch * length);
  if (!(Number.isFinite(scale) && scale > 0)) throw new ArgumentError(op, `scale must be positive, got ${scale}`);
  const lossOptions = { reduction: "sum" as const, sliceSize: options.sliceSize };
  const check = (value: number) => {
    if (!Number.isFinite(value)) throw new NonFiniteError(op, `the loss is ${value}; no gradient was added`);
    return value;
  };
  try {
    const tokens = all.narrow(1, 0, length), targets = all.narrow(1, 1, length);
    if (method === "backprop") {
      const lossSum = tidy(() => {
        const { loss } = model.loss(tokens, targets, lossOptions);
        const value = check(loss.item());
        loss.mul(scale).backward();
        return value;
      });
      return { lossSum, tokens: batch * length, vjps: [] };
    }
    return tidy(() => {
      const stored = ssmTrace(model, tokens, block);
      const { lossSum, delta: top } = ssmHead(model, stored.residual, targets, block, scale, lossOptions, check);
      const exact = method !== "adjoint";
      let delta = top;
      const vjps: VJPCount[] = [];
      const layers = [...model.layers];
      for (let k = layers.length - 1; k >= 0; k--) {
        const pass = { window, piecesPerLaunch: rowsPerLaunch, blockSize: block, exact };
        const next = ssmLayerBackward(layers[k], stored.inputs[k], stored.states[k], delta, pass);
        vjps[k] = next.vjps;
        // Layer k's stored input and states are no longer needed.
        stored.inputs[k].dispose();
        stored.states[k].dispose();
        if (next.delta !== delta) delta.dispose();
        delta = next.delta;
      }
      model.embed_tokens.forward(tokens).backward(delta);
      return { lossSum, tokens: batch * length, vjps };
    });
  } finally {
    all.dispose();
  }
}

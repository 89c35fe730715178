/**
 * The Fourier neural operator ({@link FNO}) for 1-, 2- and 3-D grids (space, or space and time):
 * a pointwise lifting layer, Fourier layers (spectral convolution plus a pointwise linear map) and
 * a two-layer pointwise projection.
 *
 * Its output is what the PDE hard-constraint method calls the basis: with `outChannels = N`, the
 * output `b` is `[batch, ...grid, N]` and `b[..., i]` is basis function i sampled on the grid; a
 * solution is the combination `u = b·ω` over the last axis (`b.matmul(ω)` with ω of shape `[N]`
 * or `[N, k]`). See {@link FNO.outputShape}.
 *
 * @module
 */

import {
  ArgumentError,
  cacheConstant,
  checkpoint,
  concat,
  fmtShape,
  Generator,
  linspace,
  noGrad,
  ShapeError,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";
import { activation, type ActivationLike } from "./activation.ts";
import { ModuleList } from "./containers.ts";
import { type LayerOptions, Linear } from "./linear.ts";
import { Module } from "./module.ts";
import { SpectralConv, type SpectralMethod } from "./spectral.ts";

/**
 * Options of {@link FNO}.
 *
 * @example
 * ```ts
 * import { FNO, type FNOOptions } from "./fno.ts";
 * // The PI-HC-MoE Navier–Stokes network: FNO3d, width 64, 8 layers, 8 modes per axis, fc 256,
 * // 64 basis functions, input = initial vorticity + (t, x, y) coordinates.
 * const options: FNOOptions = {
 *   dims: 3,
 *   inChannels: 4,
 *   outChannels: 64,
 *   modes: 8,
 *   width: 64,
 *   layers: 8,
 *   fc: 256,
 * };
 * new FNO(options).numParameters();
 * ```
 */
export interface FNOOptions extends LayerOptions {
  /** Number of grid axes: 1, 2 or 3. Default: the length of `modes` when it is an array. */
  dims?: 1 | 2 | 3;
  /**
   * Input channels per grid point, including any coordinate channels the caller concatenated
   * (with `coordinates: true` the network appends d more itself).
   */
  inChannels: number;
  /** Output channels: the number N of basis functions. */
  outChannels: number;
  /** Fourier modes kept per grid axis (one number for every axis, or one per axis). */
  modes: number | readonly number[];
  /** Channels of the Fourier layers. Default 32. */
  width?: number;
  /** Number of Fourier layers. Default 4. */
  layers?: number;
  /** Hidden width of the projection. Default 128. */
  fc?: number;
  /** Activation between layers. Default "gelu" (exact, as the reference). */
  activation?: ActivationLike;
  /** Apply the activation to the output as well (PI-HC-MoE's `activate_last_layer`). Default false. */
  activateLast?: boolean;
  /**
   * Zero padding appended to each grid axis after lifting and cropped before projection, for axes
   * that are not periodic (time, say). One number for every axis or one per axis. Default 0.
   */
  padding?: number | readonly number[];
  /** Append the normalised grid coordinates (linspace(0, 1) per axis) to the input. Default false. */
  coordinates?: boolean;
  /**
   * Activation checkpointing: keep only the input of each Fourier layer and of the projection and
   * recompute them in the backward pass (about one more forward pass of compute for a fraction of
   * the activation memory).
   * Default false.
   */
  checkpoint?: boolean;
  /**
   * How the Fourier layers compute: truncated DFTs by matrix products and the fused mixing
   * (`"dft"`, default), or full FFTs and a block matrix product (`"fft"`); see `spectral.ts`.
   */
  spectral?: SpectralMethod;
}

function positiveInt(op: string, what: string, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new ArgumentError(op, `${what} must be a positive integer, got ${n}`);
  return n;
}

/**
 * Normalised grid coordinates `[1, ...grid, d]`: channel i runs over linspace(0, 1, grid[i]) along
 * axis i (the FNO reference's `get_grid`). Broadcast or expand it to the batch before concatenating.
 *
 * @example
 * ```ts
 * import { gridCoordinates } from "./fno.ts";
 * const c = gridCoordinates([5, 3]); // [1, 5, 3, 2]
 * c.shape;
 * ```
 */
export function gridCoordinates(
  grid: readonly number[],
  options: Pick<LayerOptions, "dtype" | "backend"> = {},
): Tensor {
  const d = grid.length;
  const chans = grid.map((n, i) => {
    const line = n === 1 ? zeros([1], options) : linspace(0, 1, n, options);
    const shape = grid.map((_, j) => (j === i ? n : 1));
    return line.reshape([1, ...shape, 1]).expand([1, ...grid, 1]);
  });
  return d === 1 ? chans[0].contiguous() : concat(chans, d + 1);
}

/**
 * A Fourier neural operator on a 1-, 2- or 3-D grid (channels last).
 *
 * `forward(x)` maps `[batch, ...grid, inChannels]` to `[batch, ...grid, outChannels]`:
 *
 * ```
 * lift: Linear(in (+ d coordinates) → width)
 * pad the grid axes with zeros (padding)
 * layers × [ SpectralConv(width → width, modes) + Linear(width → width) ], activation between
 * crop the padding
 * project: Linear(width → fc), activation, Linear(fc → out)  (activation again if activateLast)
 * ```
 *
 * As in the reference FNO (and PI-HC-MoE's FNO3D) there is no activation after the last Fourier
 * layer. Parameters: `lift.*`, `spectral.i.weight`, `pointwise.i.*`, `project.*`, `output.*`, all
 * drawn in that order from one generator seeded by `seed` (default 0). Their number is
 * `(in+1)·W + L·(2^(d−1)·2·W²·∏modes + W² + W) + (W+1)·fc + (fc+1)·out` (with `in` counting the
 * appended coordinates).
 *
 * The output is a set of N = outChannels basis functions on the grid; see {@link FNO.outputShape}.
 *
 * @example
 * ```ts
 * import { FNO } from "./fno.ts";
 * import { randn } from "../tensor/mod.ts";
 * const net = new FNO({ dims: 2, inChannels: 1, outChannels: 16, modes: 6, width: 16, coordinates: true, seed: 0 });
 * const b = net.forward(randn([2, 32, 32, 1])); // [2, 32, 32, 16]: 16 basis functions
 * net.outputShape([2, 32, 32, 1]); // [2, 32, 32, 16]
 * ```
 */
export class FNO extends Module {
  /** Number of grid axes. */
  readonly dims: number;
  /** Input channels (without the appended coordinates). */
  readonly inChannels: number;
  /** Output channels: the number of basis functions. */
  readonly outChannels: number;
  /** Fourier modes per grid axis. */
  readonly modes: readonly number[];
  /** Width of the Fourier layers. */
  readonly width: number;
  /** Hidden width of the projection. */
  readonly fc: number;
  /** Zero padding per grid axis. */
  readonly padding: readonly number[];
  /** Whether grid coordinates are appended to the input. */
  readonly coordinates: boolean;
  /** The lifting layer. */
  readonly lift: Linear;
  /** The spectral convolutions, one per layer. */
  readonly spectral: ModuleList<SpectralConv>;
  /** The pointwise linear maps beside them. */
  readonly pointwise: ModuleList<Linear>;
  /** First projection layer (width → fc). */
  readonly project: Linear;
  /** Last projection layer (fc → outChannels). */
  readonly output: Linear;
  readonly #act: (x: Tensor) => Tensor;
  readonly #activateLast: boolean;
  /** Whether the Fourier layers are recomputed in the backward pass ({@link FNOOptions.checkpoint}). */
  readonly checkpoint: boolean;

  /** An FNO with the given options. */
  constructor(options: FNOOptions) {
    super();
    const op = "FNO";
    const dims = options.dims ?? (Array.isArray(options.modes) ? options.modes.length : undefined);
    if (dims !== 1 && dims !== 2 && dims !== 3) {
      throw new ArgumentError(op, `dims must be 1, 2 or 3 (or given by an array of modes), got ${dims}`);
    }
    this.dims = dims;
    this.inChannels = positiveInt(op, "inChannels", options.inChannels);
    this.outChannels = positiveInt(op, "outChannels", options.outChannels);
    const perAxis = (v: number | readonly number[], what: string, allowZero: boolean): number[] => {
      const list = typeof v === "number" ? Array(dims).fill(v) : [...v];
      if (list.length !== dims) throw new ArgumentError(op, `${what} lists ${list.length} values for ${dims} axes`);
      for (const [i, n] of list.entries()) {
        if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
          throw new ArgumentError(
            op,
            `${what}[${i}] must be a ${allowZero ? "non-negative" : "positive"} integer, got ${n}`,
          );
        }
      }
      return list;
    };
    this.modes = perAxis(options.modes, "modes", false);
    this.padding = perAxis(options.padding ?? 0, "padding", true);
    this.width = positiveInt(op, "width", options.width ?? 32);
    this.fc = positiveInt(op, "fc", options.fc ?? 128);
    const layers = positiveInt(op, "layers", options.layers ?? 4);
    this.coordinates = options.coordinates ?? false;
    this.#act = activation(options.activation ?? "gelu");
    this.#activateLast = options.activateLast ?? false;
    this.checkpoint = options.checkpoint ?? false;

    const generator = options.generator ?? new Generator(options.seed ?? 0);
    const layer = { generator, dtype: options.dtype, backend: options.backend };
    const conv = { ...layer, method: options.spectral };
    const w = this.width;
    this.lift = this.module("lift", new Linear(this.inChannels + (this.coordinates ? dims : 0), w, layer));
    const spectral: SpectralConv[] = [];
    const pointwise: Linear[] = [];
    for (let i = 0; i < layers; i++) {
      spectral.push(new SpectralConv(w, w, this.modes, conv));
      pointwise.push(new Linear(w, w, layer));
    }
    this.spectral = this.module("spectral", new ModuleList(spectral));
    this.pointwise = this.module("pointwise", new ModuleList(pointwise));
    this.project = this.module("project", new Linear(w, this.fc, layer));
    this.output = this.module("output", new Linear(this.fc, this.outChannels, layer));
  }

  /** Number of Fourier layers. */
  get layers(): number {
    return this.spectral.length;
  }

  /**
   * The output shape for an input shape: `[batch, ...grid, outChannels]`. Basis function i on the
   * grid is `out[..., i]`; combine them with `out.matmul(ω)`.
   *
   * @example
   * ```ts
   * import { FNO } from "./fno.ts";
   * new FNO({ dims: 3, inChannels: 4, outChannels: 64, modes: 4 }).outputShape([2, 16, 32, 32, 4]); // [2, 16, 32, 32, 64]
   * ```
   */
  outputShape(inputShape: readonly number[]): number[] {
    this.#checkInput(inputShape);
    return [...inputShape.slice(0, -1), this.outChannels];
  }

  #checkInput(shape: readonly number[]): void {
    if (shape.length !== this.dims + 2 || shape[shape.length - 1] !== this.inChannels) {
      throw new ShapeError(
        "FNO",
        `expected input [batch, ...grid(${this.dims} axes), ${this.inChannels}] (channels last), got ${
          fmtShape(shape)
        }`,
      );
    }
  }

  readonly #coordinateCache = new Map<object, Map<string, Tensor>>();

  /** The grid coordinates for `grid` in `like`'s dtype and backend, made once (a cached constant). */
  #coordinates(grid: readonly number[], like: Tensor): Tensor {
    let byKey = this.#coordinateCache.get(like.backend);
    if (!byKey) this.#coordinateCache.set(like.backend, byKey = new Map());
    const key = `${grid.join("x")}:${like.dtype}`;
    let c = byKey.get(key);
    if (!c || c.disposed) {
      c = cacheConstant(noGrad(() => gridCoordinates(grid, { dtype: like.dtype, backend: like.backend })));
      byKey.set(key, c);
    }
    return c;
  }

  /** Maps `[batch, ...grid, inChannels]` to the basis `[batch, ...grid, outChannels]`. */
  forward(x: Tensor): Tensor {
    this.#checkInput(x.shape);
    const d = this.dims;
    const grid = x.shape.slice(1, 1 + d);
    let h = x;
    if (this.coordinates) {
      const c = this.#coordinates(grid, x);
      h = concat([h, c.expand([x.shape[0], ...grid, d])], d + 1);
    }
    h = this.lift.forward(h);
    const padded = this.padding.some((p) => p > 0);
    if (padded) h = h.pad([...this.padding.map((p): [number, number] => [0, p]), [0, 0]]);
    const n = this.layers;
    for (let i = 0; i < n; i++) {
      const layer = (x: Tensor): Tensor => {
        const y = this.spectral.at(i).forward(x).add(this.pointwise.at(i).forward(x));
        return i < n - 1 ? this.#act(y) : y;
      };
      h = this.checkpoint ? checkpoint(layer)(h) : layer(h);
    }
    if (padded) h = h.slice([null, ...grid.map((g): [number, number] => [0, g]), null]);
    const projection = (x: Tensor): Tensor => {
      const y = this.output.forward(this.#act(this.project.forward(x)));
      return this.#activateLast ? this.#act(y) : y;
    };
    return this.checkpoint ? checkpoint(projection)(h) : projection(h);
  }

  /** `FNO(d-D, in → width ×L → fc → out, modes [..])`. */
  override describe(): string {
    return `FNO(${this.dims}-D, ${this.inChannels}${
      this.coordinates ? `+${this.dims}` : ""
    } → ${this.width} ×${this.layers}` +
      ` → ${this.fc} → ${this.outChannels}, modes [${this.modes.join(", ")}]` +
      `${this.padding.some((p) => p > 0) ? `, padding [${this.padding.join(", ")}]` : ""})`;
  }
}

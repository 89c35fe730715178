/**
 * What every kernel shares: the calling convention of a parallel kernel and the two element
 * types the SIMD kernels are written for, as one description so each kernel is written once for
 * float32 and float64.
 *
 * A kernel is an exported function `(args: i64, job: i32, thread: i32)`: `args` is the address
 * of its arguments (numbers stored as float64; addresses and strides in bytes), `job` the part of
 * the work to do (see `threads.ts`) and `thread` the caller's index, for scratch space.
 *
 * @module
 */

import type { Emit, Expr, Fn, Local, Module } from "./asm.ts";

/** Reads a kernel's arguments. */
export interface Args {
  /** Argument `i` as an i64 (an address or a byte stride). */
  i64(i: number): Emit;
  /** Argument `i` as an i32 (a count). */
  i32(i: number): Emit;
  /** Argument `i` as an f64. */
  f64(i: number): Emit;
}

/**
 * Declares the parallel kernel `name` and assembles its body with `build(f, args, job, thread)`.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * import { kernel } from "./kernel.ts";
 * const m = new Module();
 * m.importMemory(1, 16, true);
 * kernel(m, "nothing", () => {});
 * ```
 */
export function kernel(
  m: Module,
  name: string,
  build: (f: Fn, args: Args, job: Local, thread: Local) => void,
): number {
  return m.func(name, ["i64", "i32", "i32"], [], (f, [a, job, thread]) => {
    const slot = (i: number) => f.f64.load(a, 8 * i);
    build(
      f,
      {
        i64: (i) => f.i64.trunc_f64_s(slot(i)),
        i32: (i) => f.i32.trunc_f64_s(slot(i)),
        f64: slot,
      },
      job,
      thread,
    );
  });
}

/** One element type of the SIMD kernels and the instructions that depend on it. */
export interface Lane {
  /** "f32" or "f64" (kernel name suffix). */
  readonly name: "f32" | "f64";
  /** Bytes per element. */
  readonly bytes: number;
  /** Elements per 128-bit vector. */
  readonly lanes: number;
  /** Scalar load of one element. */
  load(f: Fn, addr: Expr, offset?: number): Emit;
  /** Scalar store of one element. */
  store(f: Fn, addr: Expr, value: Expr, offset?: number): void;
  /** Scalar add. */
  add(f: Fn, a: Expr, b: Expr): Emit;
  /** Loads one element into every lane. */
  loadSplat(f: Fn, addr: Expr, offset?: number): Emit;
  /** Lanewise `a + b`. */
  vadd(f: Fn, a: Expr, b: Expr): Emit;
  /** Lanewise `a * b + c` (fused where the engine fuses the relaxed form). */
  vmadd(f: Fn, a: Expr, b: Expr, c: Expr): Emit;
  /** The scalar type. */
  readonly type: "f32" | "f64";
}

/**
 * float32 lanes.
 *
 * @example
 * ```ts
 * import { F32 } from "./kernel.ts";
 * F32.lanes; // 4
 * ```
 */
export const F32: Lane = {
  name: "f32",
  type: "f32",
  bytes: 4,
  lanes: 4,
  load: (f, addr, offset = 0) => f.f32.load(addr, offset),
  store: (f, addr, value, offset = 0) => f.f32.store(addr, value, offset),
  add: (f, a, b) => f.f32.add(a, b),
  loadSplat: (f, addr, offset = 0) => f.v128.load32_splat(addr, offset),
  vadd: (f, a, b) => f.f32x4.add(a, b),
  vmadd: (f, a, b, c) => f.f32x4.relaxed_madd(a, b, c),
};

/**
 * float64 lanes.
 *
 * @example
 * ```ts
 * import { F64 } from "./kernel.ts";
 * F64.lanes; // 2
 * ```
 */
export const F64: Lane = {
  name: "f64",
  type: "f64",
  bytes: 8,
  lanes: 2,
  load: (f, addr, offset = 0) => f.f64.load(addr, offset),
  store: (f, addr, value, offset = 0) => f.f64.store(addr, value, offset),
  add: (f, a, b) => f.f64.add(a, b),
  loadSplat: (f, addr, offset = 0) => f.v128.load64_splat(addr, offset),
  vadd: (f, a, b) => f.f64x2.add(a, b),
  vmadd: (f, a, b, c) => f.f64x2.relaxed_madd(a, b, c),
};

/**
 * One element of `t` at `addr`, as float64.
 *
 * @example
 * ```ts
 * import { F32, loadAsF64 } from "./kernel.ts";
 * // f.set(x, loadAsF64(f, F32, address));
 * ```
 */
export function loadAsF64(f: Fn, t: Lane, addr: Expr): Expr {
  return t.name === "f64" ? f.f64.load(addr) : f.f64.promote_f32(f.f32.load(addr));
}

/**
 * Stores the float64 `value` as one element of `t` at `addr` (rounded for float32).
 *
 * @example
 * ```ts
 * import { F32, storeFromF64 } from "./kernel.ts";
 * // storeFromF64(f, F32, address, value);
 * ```
 */
export function storeFromF64(f: Fn, t: Lane, addr: Expr, value: Expr): void {
  if (t.name === "f64") f.f64.store(addr, value);
  else f.f32.store(addr, f.f32.demote_f64(value));
}

/**
 * The float64 lanes of 16 bytes of `t` at `addr`: two vectors for float32 (low, high), one for
 * float64.
 *
 * @example
 * ```ts
 * import { F32, loadWide } from "./kernel.ts";
 * // const [low, high] = loadWide(f, F32, address, 0);
 * ```
 */
export function loadWide(f: Fn, t: Lane, addr: Expr, offset: number): Expr[] {
  if (t.name === "f64") return [f.v128.load(addr, offset)];
  const v = f.local("v128");
  f.set(v, f.v128.load(addr, offset));
  return widenF32x4(f, v);
}

/**
 * The float64 lanes of four float32 lanes: lanes 0–1 and lanes 2–3.
 *
 * @example
 * ```ts
 * import { widenF32x4 } from "./kernel.ts";
 * // const [low, high] = widenF32x4(f, v);
 * ```
 */
export function widenF32x4(f: Fn, v: Local): [Expr, Expr] {
  const high = f.v128.shuffle(v, v, [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  return [f.f64x2.promote_low_f32x4(v), f.f64x2.promote_low_f32x4(high)];
}

/**
 * Four float32 lanes from two vectors of float64 lanes (low, high), each rounded once (the
 * inverse of {@linkcode widenF32x4}).
 *
 * @example
 * ```ts
 * import { narrowToF32x4 } from "./kernel.ts";
 * // f.set(out, narrowToF32x4(f, [low, high]));
 * ```
 */
export function narrowToF32x4(f: Fn, lanes: Expr[]): Expr {
  const low = f.f32x4.demote_f64x2_zero(lanes[0]), high = f.f32x4.demote_f64x2_zero(lanes[1]);
  return f.v128.shuffle(low, high, [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
}

/**
 * Stores float64 lanes as 16 bytes of `t` at `addr` (the inverse of {@linkcode loadWide}).
 *
 * @example
 * ```ts
 * import { F32, storeWide } from "./kernel.ts";
 * // storeWide(f, F32, address, [low, high]);
 * ```
 */
export function storeWide(f: Fn, t: Lane, addr: Expr, lanes: Expr[]): void {
  if (t.name === "f64") return f.v128.store(addr, lanes[0]);
  f.v128.store(addr, narrowToF32x4(f, lanes));
}

/**
 * A small WebAssembly assembler: the CPU backend's kernels are written in TypeScript as calls on
 * a {@linkcode Fn} (one method per instruction, operands as nested expressions) and encoded to a
 * binary module at start-up, so there is no compiled binary and no toolchain: the kernels are
 * their own source. Only what the kernels use is here: i32/f32/f64 scalars, 128-bit SIMD
 * (including the relaxed fused multiply-add), structured control flow, one imported memory.
 *
 * An expression is a thunk that emits code leaving its value on the stack; a {@linkcode Local}
 * stands for `local.get` of itself and a plain number for a constant of the instruction's type,
 * so `f.i32.add(i, 4)` is `local.get i; i32.const 4; i32.add`.
 *
 * @module
 */

/** Value types of the kernels. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

const TYPE_CODE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/**
 * A local variable (parameters first) of the function being assembled.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * const m = new Module();
 * m.func("id", ["i32"], ["i32"], (f, [x]) => f.push(x));
 * ```
 */
export class Local {
  /** Index among the function's locals. */
  readonly index: number;
  /** Its value type. */
  readonly type: ValType;
  /** A local of `type` at `index`. */
  constructor(index: number, type: ValType) {
    this.index = index;
    this.type = type;
  }
}

/** Code that pushes one value (or, for statements, nothing). */
export type Emit = () => void;
/** An operand: code, a local (read), or a number (a constant of the instruction's type). */
export type Expr = Emit | Local | number;

function uleb(out: number[], v: number): void {
  do {
    let b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

function sleb(out: number[], v: number): void {
  for (;;) {
    const b = v & 0x7f;
    v = Math.floor(v / 128);
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

const scratch = new DataView(new ArrayBuffer(8));

/** Memory access immediates: log2 alignment and constant byte offset. */
function memarg(out: number[], align: number, offset: number): void {
  uleb(out, align);
  uleb(out, offset);
}

/**
 * The body of one function under assembly. Statements (`set`, `store`, control flow) append to
 * the body at once; value-producing methods return expressions to nest.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * const m = new Module();
 * m.func("sum", ["i32", "i32"], ["i32"], (f, [a, b]) => f.push(f.i32.add(a, b)));
 * const sum = m.instantiate().exports.sum as (a: number, b: number) => number;
 * sum(2, 3); // 5
 * ```
 */
export class Fn {
  /** Encoded body (instructions only). */
  code: number[] = [];
  /** Code run once at entry before the body (see {@linkcode Fn.hoist}). */
  readonly #prologue: number[] = [];
  readonly #hoisted = new Map<string, Local>();
  /** Types of all locals, parameters first. */
  readonly types: ValType[];
  readonly #params: number;

  /** A body for a function with `params`. */
  constructor(params: readonly ValType[]) {
    this.types = [...params];
    this.#params = params.length;
  }

  /** Declares a new local of `type`. */
  local(type: ValType): Local {
    this.types.push(type);
    return new Local(this.types.length - 1, type);
  }

  /** Declares several locals of `type`. */
  locals(type: ValType, n: number): Local[] {
    return Array.from({ length: n }, () => this.local(type));
  }

  /**
   * A local set once at the function's entry to `value` (which must not read other locals),
   * shared by every call with the same `key`: constants used inside loops are materialised once.
   */
  hoist(key: string, type: ValType, value: Expr): Local {
    let local = this.#hoisted.get(key);
    if (local) return local;
    local = this.local(type);
    this.#hoisted.set(key, local);
    const body = this.code;
    this.code = this.#prologue;
    this.set(local, value);
    this.code = body;
    return local;
  }

  /** A constant vector with every lane `value`, materialised once at entry (see {@linkcode Fn.hoist}). */
  vconst(lanes: "f32x4" | "f64x2" | "i32x4" | "i64x2", value: number | bigint): Local {
    const key = Object.is(value, -0) ? "-0" : String(value);
    return this.hoist(`${lanes}:${key}`, "v128", this.v128.const(lanes, value));
  }

  /** The prologue and the body. */
  instructions(): number[] {
    return [...this.#prologue, ...this.code];
  }

  /** The local declarations section of the body. */
  encodeLocals(out: number[]): void {
    const extra = this.types.slice(this.#params);
    const runs: [number, ValType][] = [];
    for (const t of extra) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    uleb(out, runs.length);
    for (const [n, t] of runs) {
      uleb(out, n);
      out.push(TYPE_CODE[t]);
    }
  }

  /** Emits raw bytes. */
  op(...bytes: number[]): void {
    for (const b of bytes) this.code.push(b);
  }

  /** Emits a SIMD (0xfd-prefixed) instruction. */
  simd(opcode: number): void {
    this.code.push(0xfd);
    uleb(this.code, opcode);
  }

  /** Emits `e`, with numbers as constants of `type`. */
  emit(e: Expr, type: ValType): void {
    if (typeof e === "number") this.constant(type, e);
    else if (e instanceof Local) {
      this.code.push(0x20);
      uleb(this.code, e.index);
    } else e();
  }

  /** Emits a constant of a scalar type. */
  constant(type: ValType, v: number): void {
    const c = this.code;
    switch (type) {
      case "i32":
        c.push(0x41);
        sleb(c, v | 0);
        return;
      case "i64":
        c.push(0x42);
        sleb(c, v);
        return;
      case "f32":
        c.push(0x43);
        scratch.setFloat32(0, v, true);
        for (let i = 0; i < 4; i++) c.push(scratch.getUint8(i));
        return;
      case "f64":
        c.push(0x44);
        scratch.setFloat64(0, v, true);
        for (let i = 0; i < 8; i++) c.push(scratch.getUint8(i));
        return;
      case "v128":
        throw new TypeError("asm: a number cannot stand for a v128 constant; use f.v128.splat");
    }
  }

  /** Leaves `e`'s value on the stack (as a function result, or for a raw instruction). */
  push(e: Expr, type: ValType = e instanceof Local ? e.type : "i32"): void {
    this.emit(e, type);
  }

  /** `local = value`. */
  set(local: Local, value: Expr): void {
    this.emit(value, local.type);
    this.code.push(0x21);
    uleb(this.code, local.index);
  }

  /** An expression that sets `local` and yields the value (`local.tee`). */
  tee(local: Local, value: Expr): Emit {
    return () => {
      this.emit(value, local.type);
      this.code.push(0x22);
      uleb(this.code, local.index);
    };
  }

  /** `local += step` for an i32 local. */
  inc(local: Local, step: Expr = 1): void {
    this.set(local, this.i32.add(local, step));
  }

  /** A block; `br(0)` inside jumps past its end. */
  block(body: () => void): void {
    this.op(0x02, 0x40);
    body();
    this.op(0x0b);
  }

  /** A loop; `br(0)` inside jumps back to its start. */
  loop(body: () => void): void {
    this.op(0x03, 0x40);
    body();
    this.op(0x0b);
  }

  /** Branch to the enclosing label `depth` (0 = innermost). */
  br(depth: number): void {
    this.code.push(0x0c);
    uleb(this.code, depth);
  }

  /** Branch to label `depth` when `cond` (i32) is nonzero. */
  brIf(depth: number, cond: Expr): void {
    this.emit(cond, "i32");
    this.code.push(0x0d);
    uleb(this.code, depth);
  }

  /** `if (cond) then else otherwise` as statements. */
  if(cond: Expr, then: () => void, otherwise?: () => void): void {
    this.emit(cond, "i32");
    this.op(0x04, 0x40);
    then();
    if (otherwise) {
      this.op(0x05);
      otherwise();
    }
    this.op(0x0b);
  }

  /** Returns from the function (results, if any, already pushed). */
  ret(): void {
    this.op(0x0f);
  }

  /**
   * `for (i = from; i < to; i += step) body()` over i32 (signed compare); the test is at the top,
   * so an empty range runs nothing.
   */
  for(i: Local, from: Expr, to: Expr, step: Expr, body: () => void): void {
    this.set(i, from);
    this.block(() =>
      this.loop(() => {
        this.brIf(1, this.i32.ge_s(i, to));
        body();
        this.inc(i, step);
        this.br(0);
      })
    );
  }

  /** Calls function `index` of the module with `args`; its results stay on the stack. */
  call(index: number, ...args: Expr[]): Emit {
    return () => {
      for (const a of args) this.emit(a, a instanceof Local ? a.type : "i32");
      this.code.push(0x10);
      uleb(this.code, index);
    };
  }

  /** Runs `e` for its effect, dropping its value. */
  drop(e: Expr): void {
    this.emit(e, "i32");
    this.op(0x1a);
  }

  #bin(type: ValType, opcode: number, a: Expr, b: Expr): Emit {
    return () => {
      this.emit(a, type);
      this.emit(b, type);
      this.code.push(opcode);
    };
  }

  #un(type: ValType, opcode: number, a: Expr): Emit {
    return () => {
      this.emit(a, type);
      this.code.push(opcode);
    };
  }

  #load(opcode: number, align: number, addr: Expr, offset: number): Emit {
    return () => {
      this.emit(addr, "i64");
      this.code.push(opcode);
      memarg(this.code, align, offset);
    };
  }

  #store(type: ValType, opcode: number, align: number, addr: Expr, value: Expr, offset: number): void {
    this.emit(addr, "i64");
    this.emit(value, type);
    this.code.push(opcode);
    memarg(this.code, align, offset);
  }

  #sbin(opcode: number, type: ValType, a: Expr, b: Expr): Emit {
    return () => {
      this.emit(a, type);
      this.emit(b, type);
      this.simd(opcode);
    };
  }

  #sun(opcode: number, type: ValType, a: Expr): Emit {
    return () => {
      this.emit(a, type);
      this.simd(opcode);
    };
  }

  /** i32 instructions. */
  readonly i32 = {
    const: (v: number): Emit => () => this.constant("i32", v),
    add: (a: Expr, b: Expr) => this.#bin("i32", 0x6a, a, b),
    sub: (a: Expr, b: Expr) => this.#bin("i32", 0x6b, a, b),
    mul: (a: Expr, b: Expr) => this.#bin("i32", 0x6c, a, b),
    div_s: (a: Expr, b: Expr) => this.#bin("i32", 0x6d, a, b),
    rem_s: (a: Expr, b: Expr) => this.#bin("i32", 0x6f, a, b),
    and: (a: Expr, b: Expr) => this.#bin("i32", 0x71, a, b),
    or: (a: Expr, b: Expr) => this.#bin("i32", 0x72, a, b),
    xor: (a: Expr, b: Expr) => this.#bin("i32", 0x73, a, b),
    shl: (a: Expr, b: Expr) => this.#bin("i32", 0x74, a, b),
    shr_s: (a: Expr, b: Expr) => this.#bin("i32", 0x75, a, b),
    shr_u: (a: Expr, b: Expr) => this.#bin("i32", 0x76, a, b),
    eqz: (a: Expr) => this.#un("i32", 0x45, a),
    eq: (a: Expr, b: Expr) => this.#bin("i32", 0x46, a, b),
    ne: (a: Expr, b: Expr) => this.#bin("i32", 0x47, a, b),
    lt_s: (a: Expr, b: Expr) => this.#bin("i32", 0x48, a, b),
    gt_s: (a: Expr, b: Expr) => this.#bin("i32", 0x4a, a, b),
    le_s: (a: Expr, b: Expr) => this.#bin("i32", 0x4c, a, b),
    ge_s: (a: Expr, b: Expr) => this.#bin("i32", 0x4e, a, b),
    lt_u: (a: Expr, b: Expr) => this.#bin("i32", 0x49, a, b),
    ge_u: (a: Expr, b: Expr) => this.#bin("i32", 0x4f, a, b),
    /** The smaller of two signed values. */
    min_s: (a: Expr, b: Expr): Emit => () => {
      this.emit(a, "i32");
      this.emit(b, "i32");
      this.emit(this.i32.lt_s(a, b), "i32");
      this.op(0x1b);
    },
    load: (addr: Expr, offset = 0) => this.#load(0x28, 2, addr, offset),
    store: (addr: Expr, value: Expr, offset = 0) => this.#store("i32", 0x36, 2, addr, value, offset),
    load16_u: (addr: Expr, offset = 0) => this.#load(0x2f, 1, addr, offset),
    store16: (addr: Expr, value: Expr, offset = 0) => this.#store("i32", 0x3b, 1, addr, value, offset),
    trunc_f64_s: (a: Expr) => this.#un("f64", 0xaa, a),
    reinterpret_f32: (a: Expr) => this.#un("f32", 0xbc, a),
  };

  /** i64 instructions (addresses are i64: the memory is a memory64). */
  readonly i64 = {
    const: (v: number): Emit => () => this.constant("i64", v),
    add: (a: Expr, b: Expr) => this.#bin("i64", 0x7c, a, b),
    sub: (a: Expr, b: Expr) => this.#bin("i64", 0x7d, a, b),
    mul: (a: Expr, b: Expr) => this.#bin("i64", 0x7e, a, b),
    shl: (a: Expr, b: Expr) => this.#bin("i64", 0x86, a, b),
    eq: (a: Expr, b: Expr) => this.#bin("i64", 0x51, a, b),
    lt_s: (a: Expr, b: Expr) => this.#bin("i64", 0x53, a, b),
    /** Sign-extends an i32. */
    extend_i32_s: (a: Expr) => this.#un("i32", 0xac, a),
    /** Truncates an f64 (exact for integers up to 2^53). */
    trunc_f64_s: (a: Expr) => this.#un("f64", 0xb0, a),
    load: (addr: Expr, offset = 0) => this.#load(0x29, 3, addr, offset),
    store: (addr: Expr, value: Expr, offset = 0) => this.#store("i64", 0x37, 3, addr, value, offset),
  };

  /** f32 instructions. */
  readonly f32 = {
    const: (v: number): Emit => () => this.constant("f32", v),
    add: (a: Expr, b: Expr) => this.#bin("f32", 0x92, a, b),
    sub: (a: Expr, b: Expr) => this.#bin("f32", 0x93, a, b),
    mul: (a: Expr, b: Expr) => this.#bin("f32", 0x94, a, b),
    div: (a: Expr, b: Expr) => this.#bin("f32", 0x95, a, b),
    load: (addr: Expr, offset = 0) => this.#load(0x2a, 2, addr, offset),
    store: (addr: Expr, value: Expr, offset = 0) => this.#store("f32", 0x38, 2, addr, value, offset),
    demote_f64: (a: Expr) => this.#un("f64", 0xb6, a),
    convert_i32_s: (a: Expr) => this.#un("i32", 0xb2, a),
    reinterpret_i32: (a: Expr) => this.#un("i32", 0xbe, a),
  };

  /** f64 instructions. */
  readonly f64 = {
    const: (v: number): Emit => () => this.constant("f64", v),
    add: (a: Expr, b: Expr) => this.#bin("f64", 0xa0, a, b),
    sub: (a: Expr, b: Expr) => this.#bin("f64", 0xa1, a, b),
    mul: (a: Expr, b: Expr) => this.#bin("f64", 0xa2, a, b),
    div: (a: Expr, b: Expr) => this.#bin("f64", 0xa3, a, b),
    min: (a: Expr, b: Expr) => this.#bin("f64", 0xa4, a, b),
    max: (a: Expr, b: Expr) => this.#bin("f64", 0xa5, a, b),
    load: (addr: Expr, offset = 0) => this.#load(0x2b, 3, addr, offset),
    store: (addr: Expr, value: Expr, offset = 0) => this.#store("f64", 0x39, 3, addr, value, offset),
    promote_f32: (a: Expr) => this.#un("f32", 0xbb, a),
    convert_i32_s: (a: Expr) => this.#un("i32", 0xb7, a),
    ne: (a: Expr, b: Expr) => this.#bin("f64", 0x62, a, b),
    lt: (a: Expr, b: Expr) => this.#bin("f64", 0x63, a, b),
    gt: (a: Expr, b: Expr) => this.#bin("f64", 0x64, a, b),
  };

  /** 128-bit SIMD instructions that do not depend on the lane type. */
  readonly v128 = {
    /**
     * A constant vector: two float64 lanes (`f64x2`), four float32 lanes (`f32x4`), four 32-bit
     * integers (`i32x4`) or two 64-bit integers (`i64x2`, as bigints); one value fills every lane.
     */
    const: (lanes: "f32x4" | "f64x2" | "i32x4" | "i64x2", ...values: (number | bigint)[]): Emit => () => {
      const bytes = new DataView(new ArrayBuffer(16));
      for (let i = 0; i < (lanes === "f32x4" || lanes === "i32x4" ? 4 : 2); i++) {
        const v = values[i] ?? values[0];
        if (lanes === "i64x2") bytes.setBigInt64(8 * i, BigInt(v), true);
        else if (lanes === "f64x2") bytes.setFloat64(8 * i, Number(v), true);
        else if (lanes === "i32x4") bytes.setInt32(4 * i, Number(v), true);
        else bytes.setFloat32(4 * i, Number(v), true);
      }
      this.simd(0x0c);
      for (let i = 0; i < 16; i++) this.code.push(bytes.getUint8(i));
    },
    load: (addr: Expr, offset = 0): Emit => () => {
      this.emit(addr, "i64");
      this.simd(0x00);
      memarg(this.code, 4, offset);
    },
    store: (addr: Expr, value: Expr, offset = 0): void => {
      this.emit(addr, "i64");
      this.emit(value, "v128");
      this.simd(0x0b);
      memarg(this.code, 4, offset);
    },
    /** Loads one 32-bit value into every lane. */
    load32_splat: (addr: Expr, offset = 0): Emit => () => {
      this.emit(addr, "i64");
      this.simd(0x09);
      memarg(this.code, 2, offset);
    },
    /** Loads one 64-bit value into both lanes. */
    load64_splat: (addr: Expr, offset = 0): Emit => () => {
      this.emit(addr, "i64");
      this.simd(0x0a);
      memarg(this.code, 3, offset);
    },
    /** Loads one 16-bit value into every lane. */
    load16_splat: (addr: Expr, offset = 0): Emit => () => {
      this.emit(addr, "i64");
      this.simd(0x08);
      memarg(this.code, 1, offset);
    },
    /** Loads 64 bits into the low half, zeroing the high half. */
    load64_zero: (addr: Expr, offset = 0): Emit => () => {
      this.emit(addr, "i64");
      this.simd(0x5d);
      memarg(this.code, 3, offset);
    },
    /** Stores lane `lane` (64 bits). */
    store64_lane: (addr: Expr, value: Expr, lane: number, offset = 0): void => {
      this.emit(addr, "i64");
      this.emit(value, "v128");
      this.simd(0x5b);
      memarg(this.code, 3, offset);
      this.code.push(lane);
    },
    /** Stores lane `lane` (16 bits). */
    store16_lane: (addr: Expr, value: Expr, lane: number, offset = 0): void => {
      this.emit(addr, "i64");
      this.emit(value, "v128");
      this.simd(0x59);
      memarg(this.code, 1, offset);
      this.code.push(lane);
    },
    /** Stores lane `lane` (32 bits). */
    store32_lane: (addr: Expr, value: Expr, lane: number, offset = 0): void => {
      this.emit(addr, "i64");
      this.emit(value, "v128");
      this.simd(0x5a);
      memarg(this.code, 2, offset);
      this.code.push(lane);
    },
    and: (a: Expr, b: Expr) => this.#sbin(0x4e, "v128", a, b),
    andnot: (a: Expr, b: Expr) => this.#sbin(0x4f, "v128", a, b),
    not: (a: Expr) => this.#sun(0x4d, "v128", a),
    or: (a: Expr, b: Expr) => this.#sbin(0x50, "v128", a, b),
    xor: (a: Expr, b: Expr) => this.#sbin(0x51, "v128", a, b),
    /** `(a & mask) | (b & ~mask)`. */
    bitselect: (a: Expr, b: Expr, mask: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "v128");
      this.emit(mask, "v128");
      this.simd(0x52);
    },
    /** Byte shuffle of two vectors (`lanes`: 16 byte indices into a ++ b). */
    shuffle: (a: Expr, b: Expr, lanes: readonly number[]): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "v128");
      this.simd(0x0d);
      for (const l of lanes) this.code.push(l);
    },
  };

  /** f32x4 instructions (`relaxed` picks the fused multiply-add where the engine has it). */
  readonly f32x4 = {
    splat: (a: Expr) => this.#sun(0x13, "f32", a),
    extract_lane: (a: Expr, lane: number): Emit => () => {
      this.emit(a, "v128");
      this.simd(0x1f);
      this.code.push(lane);
    },
    add: (a: Expr, b: Expr) => this.#sbin(0xe4, "v128", a, b),
    sub: (a: Expr, b: Expr) => this.#sbin(0xe5, "v128", a, b),
    mul: (a: Expr, b: Expr) => this.#sbin(0xe6, "v128", a, b),
    div: (a: Expr, b: Expr) => this.#sbin(0xe7, "v128", a, b),
    min: (a: Expr, b: Expr) => this.#sbin(0xe8, "v128", a, b),
    max: (a: Expr, b: Expr) => this.#sbin(0xe9, "v128", a, b),
    /** `b < a ? b : a` lanewise (one instruction; a NaN in `a` stays). */
    pmin: (a: Expr, b: Expr) => this.#sbin(0xea, "v128", a, b),
    /** `a < b ? b : a` lanewise (one instruction; a NaN in `a` stays). */
    pmax: (a: Expr, b: Expr) => this.#sbin(0xeb, "v128", a, b),
    /** `a * b + c`, fused (relaxed SIMD). */
    relaxed_madd: (a: Expr, b: Expr, c: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "v128");
      this.emit(c, "v128");
      this.simd(0x105);
    },
    /** The two float64 lanes narrowed into the low half, upper half zero. */
    demote_f64x2_zero: (a: Expr) => this.#sun(0x5e, "v128", a),
    replace_lane: (a: Expr, lane: number, x: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(x, "f32");
      this.simd(0x20);
      this.code.push(lane);
    },
    abs: (a: Expr) => this.#sun(0xe0, "v128", a),
    neg: (a: Expr) => this.#sun(0xe1, "v128", a),
    sqrt: (a: Expr) => this.#sun(0xe3, "v128", a),
    nearest: (a: Expr) => this.#sun(0x6a, "v128", a),
    floor: (a: Expr) => this.#sun(0x68, "v128", a),
    eq: (a: Expr, b: Expr) => this.#sbin(0x41, "v128", a, b),
    lt: (a: Expr, b: Expr) => this.#sbin(0x43, "v128", a, b),
    gt: (a: Expr, b: Expr) => this.#sbin(0x44, "v128", a, b),
    le: (a: Expr, b: Expr) => this.#sbin(0x45, "v128", a, b),
    ge: (a: Expr, b: Expr) => this.#sbin(0x46, "v128", a, b),
    convert_i32x4_s: (a: Expr) => this.#sun(0xfa, "v128", a),
  };

  /** f64x2 instructions. */
  readonly f64x2 = {
    splat: (a: Expr) => this.#sun(0x14, "f64", a),
    extract_lane: (a: Expr, lane: number): Emit => () => {
      this.emit(a, "v128");
      this.simd(0x21);
      this.code.push(lane);
    },
    add: (a: Expr, b: Expr) => this.#sbin(0xf0, "v128", a, b),
    sub: (a: Expr, b: Expr) => this.#sbin(0xf1, "v128", a, b),
    mul: (a: Expr, b: Expr) => this.#sbin(0xf2, "v128", a, b),
    div: (a: Expr, b: Expr) => this.#sbin(0xf3, "v128", a, b),
    min: (a: Expr, b: Expr) => this.#sbin(0xf4, "v128", a, b),
    max: (a: Expr, b: Expr) => this.#sbin(0xf5, "v128", a, b),
    /** `b < a ? b : a` lanewise (one instruction; a NaN in `a` stays). */
    pmin: (a: Expr, b: Expr) => this.#sbin(0xf6, "v128", a, b),
    /** `a < b ? b : a` lanewise (one instruction; a NaN in `a` stays). */
    pmax: (a: Expr, b: Expr) => this.#sbin(0xf7, "v128", a, b),
    /** `a * b + c`, fused (relaxed SIMD). */
    relaxed_madd: (a: Expr, b: Expr, c: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "v128");
      this.emit(c, "v128");
      this.simd(0x107);
    },
    replace_lane: (a: Expr, lane: number, x: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(x, "f64");
      this.simd(0x22);
      this.code.push(lane);
    },
    abs: (a: Expr) => this.#sun(0xec, "v128", a),
    neg: (a: Expr) => this.#sun(0xed, "v128", a),
    sqrt: (a: Expr) => this.#sun(0xef, "v128", a),
    /** Round to nearest, ties to even. */
    nearest: (a: Expr) => this.#sun(0x94, "v128", a),
    floor: (a: Expr) => this.#sun(0x75, "v128", a),
    eq: (a: Expr, b: Expr) => this.#sbin(0x47, "v128", a, b),
    lt: (a: Expr, b: Expr) => this.#sbin(0x49, "v128", a, b),
    gt: (a: Expr, b: Expr) => this.#sbin(0x4a, "v128", a, b),
    le: (a: Expr, b: Expr) => this.#sbin(0x4b, "v128", a, b),
    ge: (a: Expr, b: Expr) => this.#sbin(0x4c, "v128", a, b),
    /** The two low float32 lanes widened. */
    promote_low_f32x4: (a: Expr) => this.#sun(0x5f, "v128", a),
    /** Two lanes of an i32x4's low half converted. */
    convert_low_i32x4_s: (a: Expr) => this.#sun(0xfe, "v128", a),
  };

  /** i32x4 instructions. */
  readonly i32x4 = {
    splat: (a: Expr) => this.#sun(0x11, "i32", a),
    add: (a: Expr, b: Expr) => this.#sbin(0xae, "v128", a, b),
    sub: (a: Expr, b: Expr) => this.#sbin(0xb1, "v128", a, b),
    shl: (a: Expr, b: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "i32");
      this.simd(0xab);
    },
    shr_s: (a: Expr, b: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "i32");
      this.simd(0xac);
    },
    shr_u: (a: Expr, b: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "i32");
      this.simd(0xad);
    },
    /** The four low uint16 lanes zero-extended. */
    extend_low_i16x8_u: (a: Expr) => this.#sun(0xa9, "v128", a),
    /** float64 lanes to int32 (saturating), upper two lanes zero. */
    trunc_sat_f64x2_s_zero: (a: Expr) => this.#sun(0xfc, "v128", a),
    trunc_sat_f32x4_s: (a: Expr) => this.#sun(0xf8, "v128", a),
  };

  /** i16x8 instructions. */
  readonly i16x8 = {
    /** The int32 lanes of a then b, each saturated to uint16. */
    narrow_i32x4_u: (a: Expr, b: Expr) => this.#sbin(0x86, "v128", a, b),
  };

  /** i64x2 instructions. */
  readonly i64x2 = {
    add: (a: Expr, b: Expr) => this.#sbin(0xce, "v128", a, b),
    sub: (a: Expr, b: Expr) => this.#sbin(0xd1, "v128", a, b),
    shr_s: (a: Expr, b: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "i32");
      this.simd(0xcc);
    },
    eq: (a: Expr, b: Expr) => this.#sbin(0xd6, "v128", a, b),
    /** The two low int32 lanes sign-extended. */
    extend_low_i32x4_s: (a: Expr) => this.#sun(0xc7, "v128", a),
    /** The two high int32 lanes sign-extended. */
    extend_high_i32x4_s: (a: Expr) => this.#sun(0xc8, "v128", a),
    shl: (a: Expr, b: Expr): Emit => () => {
      this.emit(a, "v128");
      this.emit(b, "i32");
      this.simd(0xcb);
    },
  };
}

/** One function of a module under assembly. */
interface FuncDef {
  name: string | null;
  params: ValType[];
  results: ValType[];
  body: Fn;
}

/**
 * A module under assembly: one imported memory (`env.memory`), functions declared in order
 * (their index is the order of declaration), named functions exported.
 *
 * @example
 * ```ts
 * import { Module } from "./asm.ts";
 * const m = new Module();
 * m.func("twice", ["f64"], ["f64"], (f, [x]) => f.push(f.f64.add(x, x)));
 * (m.instantiate().exports.twice as (x: number) => number)(2); // 4
 * ```
 */
export class Module {
  readonly #funcs: FuncDef[] = [];
  #memory: { shared: boolean; initial: number; maximum: number } | null = null;

  /** Imports the module's memory as `env.memory`: a memory64 of 64 KiB pages. */
  importMemory(initial: number, maximum: number, shared: boolean): void {
    this.#memory = { shared, initial, maximum };
  }

  /**
   * Declares function number `this.count` and assembles its body with `build(f, params)`;
   * `name` (or null) is the export name. Returns the function's index for `f.call`.
   */
  func(
    name: string | null,
    params: readonly ValType[],
    results: readonly ValType[],
    build: (f: Fn, params: Local[]) => void,
  ): number {
    const body = new Fn(params);
    const index = this.#funcs.length;
    this.#funcs.push({ name, params: [...params], results: [...results], body });
    build(body, params.map((t, i) => new Local(i, t)));
    return index;
  }

  /** Encodes the module. */
  encode(): Uint8Array {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, content: number[]) => {
      out.push(id);
      uleb(out, content.length);
      for (const b of content) out.push(b);
    };
    const sigs: string[] = [];
    const sigOf = (f: FuncDef) => {
      const key = `${f.params.join(",")}>${f.results.join(",")}`;
      let i = sigs.indexOf(key);
      if (i < 0) i = sigs.push(key) - 1;
      return i;
    };
    const funcSigs = this.#funcs.map(sigOf);
    const types: number[] = [];
    uleb(types, sigs.length);
    for (const key of sigs) {
      const [p, r] = key.split(">").map((s) => (s ? s.split(",") as ValType[] : []));
      types.push(0x60);
      uleb(types, p.length);
      for (const t of p) types.push(TYPE_CODE[t]);
      uleb(types, r.length);
      for (const t of r) types.push(TYPE_CODE[t]);
    }
    section(1, types);
    if (this.#memory) {
      const imp: number[] = [1];
      for (const s of ["env", "memory"]) {
        uleb(imp, s.length);
        for (const ch of s) imp.push(ch.charCodeAt(0));
      }
      imp.push(0x02, this.#memory.shared ? 0x07 : 0x05); // limits: maximum, 64-bit addresses (+ shared)
      uleb(imp, this.#memory.initial);
      uleb(imp, this.#memory.maximum);
      section(2, imp);
    }
    const fsec: number[] = [];
    uleb(fsec, funcSigs.length);
    for (const s of funcSigs) uleb(fsec, s);
    section(3, fsec);
    const exp: number[] = [];
    const named = this.#funcs.map((f, i) => [f.name, i] as const).filter(([n]) => n !== null);
    uleb(exp, named.length);
    for (const [name, i] of named) {
      const bytes = new TextEncoder().encode(name!);
      uleb(exp, bytes.length);
      for (const b of bytes) exp.push(b);
      exp.push(0x00);
      uleb(exp, i);
    }
    section(7, exp);
    const code: number[] = [];
    uleb(code, this.#funcs.length);
    for (const f of this.#funcs) {
      const body: number[] = [];
      f.body.encodeLocals(body);
      for (const b of f.body.instructions()) body.push(b);
      body.push(0x0b);
      uleb(code, body.length);
      for (const b of body) code.push(b);
    }
    section(10, code);
    return new Uint8Array(out);
  }

  /** Compiles and instantiates the module with `memory` (tests and one-off use). */
  instantiate(memory?: WebAssembly.Memory): WebAssembly.Instance {
    const mod = new WebAssembly.Module(this.encode() as Uint8Array<ArrayBuffer>);
    return new WebAssembly.Instance(mod, memory ? { env: { memory } } : {});
  }
}

/**
 * Arguments are checked at the door: every public function of the tensor layer (and the tensor
 * entry points of the solvers) refuses a bad argument with a typed error that names the op and the
 * value it got — never an internal TypeError, never a silent wrong answer. The sweeps below walk
 * the module's exports and the Tensor methods, so a function added later is covered too.
 */

import assert from "node:assert/strict";
import * as T from "../src/tensor/mod.ts";
import {
  arange,
  ArgumentError,
  checkInteger,
  checkNumber,
  checkShape,
  concat,
  describe,
  DTypeError,
  eye,
  linspace,
  PatchworkError,
  randint,
  rfftn,
  ShapeError,
  solve,
  type Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import { assertRaises as pin } from "./helpers.ts";

Deno.test("the calls that used to slip through or crash inside get a typed error naming op and value", () => {
  const x = zeros([2, 3]);
  pin(() => x.slice(1 as never), ArgumentError, "slice", "got 1", "slice([1])");
  pin(() => x.sum("0" as never), ArgumentError, "sum", 'got "0"');
  pin(() => x.reshape("6" as never), ArgumentError, "reshape", 'got "6"');
  pin(() => x.permute("10" as never), ArgumentError, "permute", 'got "10"');
  pin(() => x.expand("3" as never), ArgumentError, "expand", 'got "3"');
  pin(() => concat([x, 3 as never]), ArgumentError, "concat", "tensors[1]", "got 3");
  pin(() => x.softmax("1" as never), ArgumentError, "softmax", 'axis must be an integer, got "1"');
  pin(() => solve.solve([[1, 0], [0, 1]] as never, tensor([1, 2])), ArgumentError, "solve", "A must be a Tensor");
});

// ------------------------------------------------------------------------------------- sweeps

const BAD: unknown[] = ["1", Symbol("bad")];

/** Number of declared parameters (defaults included, unlike `Function.length`). */
function paramCount(fn: (...args: never[]) => unknown): number {
  const src = Function.prototype.toString.call(fn);
  const open = src.indexOf("(");
  let depth = 0, count = 0, any = false;
  for (let i = open + 1; i < src.length; i++) {
    const c = src[i];
    if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) {
      if (depth === 0) break;
      depth--;
    } else if (c === "," && depth === 0) count++;
    else if (!/\s/.test(c)) any = true;
  }
  return any ? count + 1 : 0;
}

/** The error `fn` throws must be typed, carry an op, and name the bad value (or its type). */
function refuses(what: string, fn: () => unknown, bad: unknown): void {
  let error: unknown = null;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== null, `${what} accepted ${describe(bad)}`);
  assert.ok(
    error instanceof PatchworkError,
    `${what}: expected a PatchworkError, got ${error instanceof Error ? `${error.name}: ${error.message}` : error}`,
  );
  assert.ok(error.op.length > 0, `${what}: the error names no op`);
  assert.ok(
    error.message.includes(describe(bad)) || error.message.includes(typeof bad),
    `${what}: "${error.message}" does not name the bad value ${describe(bad)}`,
  );
}

/** Exports that are not entry points for arguments from users: helpers that take an op name or check values themselves, and arithmetic on already-checked shapes. */
const HELPERS = new Set([
  "allocHost",
  "broadcastShapes",
  "broadcastView",
  "checkDType",
  "checkFunction",
  "checkInteger",
  "checkLike",
  "checkNumber",
  "checkOneOf",
  "checkOptions",
  "checkShape",
  "checkTensor",
  "checkTensors",
  "coalesce",
  "contiguousStrides",
  "describe",
  "fmtShape",
  "fromBFloat16Bits",
  "isContiguous",
  "isFloat",
  "itemSize",
  "normalizeAxes",
  "normalizeAxis",
  "promoteTypes",
  "requireFloat",
  "sameBackend",
  "shapesEqual",
  "sizeOf",
  "toBFloat16Bits",
]);

const isClass = (f: unknown) => /^class[\s{]/.test(Function.prototype.toString.call(f));

const entryPoints = Object.entries(T).filter(
  (e): e is [string, (...args: unknown[]) => unknown] =>
    typeof e[1] === "function" && !isClass(e[1]) && !HELPERS.has(e[0]),
);

/** A valid first argument for the functions whose first parameter is not a tensor. */
function firstArgument(name: string): unknown {
  const fn = (t: Tensor) => t.sum();
  const table: Record<string, unknown> = {
    tensor: [1, 2],
    full: [2],
    zeros: [2],
    ones: [2],
    rand: [2],
    randn: [2],
    arange: 0,
    linspace: 0,
    eye: 2,
    randint: 0,
    concat: [zeros([4, 2])],
    stack: [zeros([4, 2])],
    gradients: [zeros([1])],
    applyUnary: "exp",
    applyBinary: "add",
  };
  if (name in table) return table[name];
  const takesFunction = [
    "grad",
    "valueAndGrad",
    "vjp",
    "jvp",
    "jacobian",
    "hvp",
    "customFunction",
    "checkpoint",
    "gradcheck",
    "tidy",
    "noGrad",
    "enableGrad",
  ];
  return takesFunction.includes(name) ? fn : zeros([4, 2]); // [4, 2]: also a complex vector for the FFTs
}

Deno.test("every exported function refuses a bad first and second argument with a typed error", () => {
  assert.ok(entryPoints.length > 80, `only ${entryPoints.length} entry points found`);
  for (const [name, fn] of entryPoints) {
    const n = paramCount(fn);
    if (n === 0) continue;
    for (const bad of BAD) {
      refuses(`${name}(bad)`, () => fn(bad), bad);
      if (n >= 2) refuses(`${name}(ok, bad)`, () => fn(firstArgument(name), bad), bad);
    }
  }
});

Deno.test("every Tensor method refuses a bad first argument with a typed error", () => {
  const x = zeros([4, 2]);
  const names = Object.getOwnPropertyNames(T.Tensor.prototype).filter((k) => {
    const d = Object.getOwnPropertyDescriptor(T.Tensor.prototype, k)!;
    // dispose(inUse) takes the set `tidy` passes; sameBackend(op, other) is the op-named helper.
    return typeof d.value === "function" && k !== "constructor" && k !== "dispose" && k !== "sameBackend";
  });
  assert.ok(names.length > 60, `only ${names.length} methods found`);
  for (const name of names) {
    const method = (x as unknown as Record<string, (...args: unknown[]) => unknown>)[name];
    if (paramCount(method) === 0) continue;
    for (const bad of BAD) refuses(`Tensor.${name}(bad)`, () => method.call(x, bad), bad);
  }
});

// ------------------------------------------------------------------------ values of the right type

Deno.test("numbers of the right type but the wrong value are named with the allowed range", () => {
  const x = zeros([2, 3]);
  pin(() => x.sum(1.5), ArgumentError, "sum", "axis must be an integer, got 1.5");
  pin(() => x.softmax(NaN), ArgumentError, "softmax", "got NaN");
  pin(() => x.sum([0, "1"] as never), ArgumentError, "sum", 'axes entry must be an integer, got "1"');
  pin(() => x.sum(0, "yes" as never), ArgumentError, "sum", 'keepdims must be true or false, got "yes"');
  pin(() => x.argmax(0, 1 as never), ArgumentError, "argmax", "keepdims");
  pin(() => x.narrow(0, 0, 1.5), ArgumentError, "narrow", "length must be an integer in [0, ∞), got 1.5");
  pin(() => x.narrow(0, "0" as never, 1), ArgumentError, "narrow", 'start must be an integer, got "0"');
  pin(() => x.slice([[0.5, 2]]), ArgumentError, "slice", "start of axis 0", "0.5");
  pin(() => x.slice([["0", 2]] as never), ArgumentError, "slice", 'got "0"');
  pin(() => x.slice(["a"] as never), ArgumentError, "slice", "entry 0", '"a"');
  pin(() => x.reshape([2, 3.5]), ArgumentError, "reshape", "[2,3.5]");
  pin(() => x.expand([-1, 2, 3]), ArgumentError, "expand", "existing axes");
  pin(() => x.pad([[1, 1]], "constant", "0" as never), ArgumentError, "pad", "value");
  pin(() => x.roll(1, "0" as never), ArgumentError, "roll", 'axis must be an integer, got "0"');
  pin(() => x.split(0), ArgumentError, "split", "sections must be an integer in [1, ∞), got 0");
  pin(() => x.split("2" as never), ArgumentError, "split", '"2"');
  pin(() => x.var(0, { correction: -1 }), ArgumentError, "var", "correction", "-1");
  pin(() => x.norm("2" as never), ArgumentError, "norm", 'p must be a number in [1, ∞), got "2"');
  pin(() => x.norm(0.5), ArgumentError, "norm", "0.5");
  pin(() => x.flatten(0, 5), ArgumentError, "flatten", "end 5 is out of range");
  pin(() => x.requireGrad(1 as never), ArgumentError, "requireGrad", "flag");
  pin(() => x.assign("1" as never), ArgumentError, "assign", 'value must be a Tensor, got "1"');
  pin(() => x.assign(zeros([3, 3])), ShapeError, "assign", "[3,3]", "[2,3]");
  pin(() => rfftn(zeros([4, 4]), ["0"] as never), ArgumentError, "rfftn", '"0"');
});

Deno.test("creation functions check every argument", () => {
  pin(() => arange("3" as never), ArgumentError, "arange", 'stop must be a finite number, got "3"');
  pin(() => arange(0, 3, Infinity), ArgumentError, "arange", "step", "Infinity");
  pin(() => linspace(0, NaN, 3), ArgumentError, "linspace", "stop", "NaN");
  pin(() => linspace(0, 1, 2.5), ArgumentError, "linspace", "num", "2.5");
  pin(() => eye(2, "3" as never), ArgumentError, "eye", 'm must be an integer in [0, ∞), got "3"');
  pin(() => randint(0, 1.5, [2]), ArgumentError, "randint", "high", "1.5");
  pin(() => randint(3, 1, [2]), ArgumentError, "randint", "low < high");
  pin(() => zeros([2], { requiresGrad: "yes" } as never), ArgumentError, "zeros", "requiresGrad");
  pin(() => zeros([2], { backend: {} } as never), ArgumentError, "zeros", "backend must be a Backend");
  pin(() => T.randn([2], { generator: 3 } as never), ArgumentError, "randn", "generator must be a Generator, got 3");
  pin(() => T.randn([2], { seed: -1 }), ArgumentError, "Generator", "seed", "-1");
  pin(() => T.full([2], "1" as never), ArgumentError, "full", 'value must be a number, got "1"');
  pin(() => tensor(new DataView(new ArrayBuffer(4)) as never), ArgumentError, "tensor", "DataView");
  // Other numeric typed arrays are read as numbers.
  assert.deepEqual(tensor(new Uint8Array([1, 2, 250])).toArray(), [1, 2, 250]);
});

Deno.test("transforms check functions, argnums and the trees they differentiate", () => {
  const f = (t: Tensor) => t.sum();
  pin(() => T.grad(f, { argnums: [] as number[] })(zeros([2])), ArgumentError, "grad", "argnums", "[]");
  pin(() => T.grad(f, { argnums: 0.5 })(zeros([2])), ArgumentError, "grad", "argnums must be an integer, got 0.5");
  pin(() => T.grad(f, { argnums: [0, 0] })(zeros([2])), ArgumentError, "grad", "repeats");
  pin(() => T.grad((t: Tensor) => t.sum())(["a"] as never), ArgumentError, "grad", "argument 0[0]", '"a"');
  pin(() => T.vjp(f, zeros([2]))[1]("1" as never), ArgumentError, "vjp", "cotangent");
  pin(() => T.hvp(f, zeros([2]), zeros([3])), ShapeError, "hvp", "[3]", "[2]");
  pin(() => T.gradcheck(f, [zeros([1], { dtype: "float64" })], { eps: 0 }), ArgumentError, "gradcheck", "eps", "0");
  pin(() => T.customFunction(f as never, f as never)("1" as never), ArgumentError, "customFunction", "inputs[0]");
  pin(() => T.checkpoint(f)("1" as never), ArgumentError, "checkpoint", "inputs[0]");
});

Deno.test("tidy refuses an async function with a typed error", () => {
  pin(() => T.tidy((async () => {}) as never), ArgumentError, "tidy", "Promise", "synchronous");
});

Deno.test("assigning .grad checks shape, dtype and backend", () => {
  const x = zeros([2], { requiresGrad: true });
  pin(() => (x.grad = zeros([3])), ShapeError, "grad", "[3]", "[2]");
  pin(() => (x.grad = zeros([2], { dtype: "float64" })), DTypeError, "grad", "float64", "float32");
  pin(() => (x.grad = [1, 2] as never), ArgumentError, "grad", "must be a Tensor", "[1,2]");
});

Deno.test("solver entry points check their tensors at the door", () => {
  const a = tensor([[2, 0], [0, 2]]);
  const b = tensor([1, 1]);
  pin(() => solve.solve(a, [1, 1] as never), ArgumentError, "solve", "b must be a Tensor", "[1,1]");
  pin(() => solve.cholesky("A" as never), ArgumentError, "cholesky", 'A must be a Tensor, got "A"');
  pin(() => solve.triangularSolve(null as never, b), ArgumentError, "triangularSolve", "got null");
  pin(() => solve.qr([[1]] as never), ArgumentError, "qr", "A must be a Tensor");
  pin(() => solve.lstsq(a, "b" as never), ArgumentError, "lstsq", 'b must be a Tensor, got "b"');
  pin(() => solve.lu({} as never), ArgumentError, "lu", "A must be a Tensor");
  pin(() => solve.luSolve({} as never, b), ArgumentError, "luSolve", "A must be a Tensor, got undefined");
});

Deno.test("a misspelt or foreign option is refused by name, not ignored", () => {
  const x = zeros([2, 3]);
  pin(() => zeros([2], { dtpye: "float64" } as never), ArgumentError, "zeros", 'unknown option "dtpye"', "dtype");
  pin(() => tensor([1], { requires_grad: true } as never), ArgumentError, "tensor", '"requires_grad"', "shape");
  pin(() => T.randn([2], { rng: 1 } as never), ArgumentError, "randn", '"rng"', "seed");
  pin(() => x.var(0, { ddof: 0 } as never), ArgumentError, "var", '"ddof"', "correction");
  pin(() => T.grad((t: Tensor) => t.sum(), { argnum: 0 } as never), ArgumentError, "grad", '"argnum"', "argnums");
  pin(() => x.sum().backward(undefined, { create_graph: true } as never), ArgumentError, "backward", "createGraph");
  pin(() => T.zerosLike(x, { shape: [3] } as never), ArgumentError, "zerosLike", '"shape"');
});

Deno.test("the helpers state the allowed range", () => {
  pin(() => checkNumber("Adam", "lr", -1, { min: 0 }), ArgumentError, "Adam", "lr must be a finite number in [0, ∞)");
  pin(() => checkNumber("Adam", "beta1", 1, { min: 0, max: 1, maxOpen: true }), ArgumentError, "Adam", "[0, 1)");
  pin(() => checkNumber("Adam", "eps", 0, { min: 0, minOpen: true }), ArgumentError, "Adam", "(0, ∞)");
  pin(() => checkInteger("op", "k", 2 ** 60), ArgumentError, "op", "k must be an integer");
  pin(() => checkShape("op", [1, -1, -1], { wildcards: 1 }), ArgumentError, "op", "one may be −1");
  assert.equal(describe(T.zeros([2, 3])), "a Tensor of shape [2,3] (float32)");
  assert.equal(describe(Array.from({ length: 10 }, (_, i) => i)), "[0,1,2,3,4,5,6,7,…]");
});

/**
 * Typed errors: each names the op and the offending shapes or values, and is raised before any
 * work is done (no buffer is allocated by a call that fails its checks).
 */

import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import {
  arange,
  ArgumentError,
  AutodiffError,
  concat,
  DeviceError,
  type DType,
  DTypeError,
  embedding,
  eye,
  full,
  gather,
  getDefaultBackend,
  grad,
  gradcheck,
  irfft,
  jvp,
  linspace,
  matmul,
  ones,
  type PadMode,
  PatchworkError,
  rand,
  randn,
  scatterAdd,
  ShapeError,
  stack,
  type Tensor,
  tensor,
  vjp,
  where,
  zeros,
} from "../mod.ts";
import { assertRaises as pin } from "./helpers.ts";

const i32 = (data: number[] | number[][]) => tensor(data, { dtype: "int32" });

Deno.test("shape errors name the op and the shapes", async (t) => {
  await t.step("add of non-broadcastable shapes", () => {
    pin(() => zeros([2, 3]).add(zeros([2])), ShapeError, "add", "[2,3]", "[2]", "do not broadcast");
    pin(() => zeros([3, 1, 4]).mul(zeros([5, 3])), ShapeError, "mul", "[3,1,4]", "[5,3]", "4 vs 3");
    pin(() => zeros([2]).sub(zeros([3], { dtype: "float64" })), ShapeError, "sub", "[2]", "[3]");
    pin(() => where(ones([2]), zeros([3]), 0), ShapeError, "where", "[2]", "[3]");
  });
  await t.step("matmul inner and batch mismatches", () => {
    pin(() => zeros([2, 3]).matmul(zeros([4, 5])), ShapeError, "matmul", "[2,3]", "[4,5]", "inner dimensions 3 and 4");
    pin(() => matmul(zeros([3]), zeros([4])), ShapeError, "matmul", "[3]", "[4]");
    pin(() => zeros([2, 2, 3]).matmul(zeros([3, 3, 4])), ShapeError, "matmul", "[2,2,3]", "[3,3,4]", "batch");
    pin(() => zeros([]).matmul(zeros([3])), ShapeError, "matmul", "[]", "[3]");
  });
  await t.step("reshape size mismatch", () => {
    pin(() => zeros([2, 3]).reshape([4]), ShapeError, "reshape", "[2,3]", "6 elements", "[4]");
    pin(() => zeros([2, 3]).reshape([-1, 4]), ShapeError, "reshape", "[-1,4]", "6 elements");
    pin(() => zeros([2, 3]).transpose().reshape([5]), ShapeError, "reshape", "[3,2]", "[5]");
    pin(() => zeros([2, 3]).reshape([-1, -1]), ArgumentError, "reshape", "[-1,-1]");
  });
  await t.step("other shape mismatches", () => {
    pin(() => zeros([2, 3]).expand([4, 3]), ShapeError, "expand", "[2,3]", "[4,3]");
    pin(() => concat([zeros([2, 3]), zeros([1, 2])], 1), ShapeError, "concat", "[2,3]", "[1,2]", "axis 1");
    pin(() => stack([zeros([2]), zeros([3])]), ShapeError, "stack", "[2]", "[3]");
    pin(() => zeros([2, 3]).squeeze(0), ShapeError, "squeeze", "[2,3]", "size 2");
    pin(() => tensor([[1, 2], [3]]), ShapeError, "tensor", "ragged");
    pin(() => tensor([1, 2, 3], { shape: [2, 2] }), ShapeError, "tensor", "[2,2]", "3 elements");
    pin(() => zeros([2, 3]).item(), ShapeError, "item", "[2,3]");
    pin(() => embedding(zeros([4]), i32([0])), ShapeError, "embedding", "[4]");
    pin(() => irfft(zeros([3])), ShapeError, "irfft", "[3]", "trailing axis of size 2");
  });
});

Deno.test("axis, index and argument errors", async (t) => {
  await t.step("bad axis", () => {
    pin(() => zeros([2, 3]).sum(2), ArgumentError, "sum", "axis 2", "rank 2");
    pin(() => zeros([2, 3]).mean(-3), ArgumentError, "mean", "axis -3", "rank 2");
    pin(() => zeros([2, 3]).softmax(5), ArgumentError, "softmax", "axis 5");
    pin(() => zeros([2, 3]).cumsum(2), ArgumentError, "cumsum", "axis 2");
    pin(() => zeros([2, 3]).transpose(0, 3), ArgumentError, "transpose", "axis 3");
    pin(() => zeros([2, 3]).sum([0, -2]), ArgumentError, "sum", "repeated axis");
    pin(() => zeros([2, 3]).permute([0, 0]), ArgumentError, "permute", "[0,0]");
    pin(() => concat([zeros([2])], 1), ArgumentError, "concat", "axis 1");
  });
  await t.step("slice index out of range and step 0", () => {
    pin(() => zeros([2, 3]).slice([2]), ArgumentError, "slice", "index 2", "axis 0 of size 2");
    pin(() => zeros([2, 3]).slice([null, -4]), ArgumentError, "slice", "index -4", "axis 1 of size 3");
    pin(() => zeros([5]).slice([[null, null, 0]]), ArgumentError, "slice", "step", "0");
    pin(() => zeros([5]).slice([null, null]), ArgumentError, "slice", "2 entries", "rank 1");
    pin(() => zeros([2, 3]).narrow(1, 2, 2), ArgumentError, "narrow", "[2, 4)", "size 3");
  });
  await t.step("creation arguments", () => {
    pin(() => arange(0, 1, 0), ArgumentError, "arange", "step", "0");
    pin(() => arange(0, NaN), ArgumentError, "arange", "NaN");
    pin(() => zeros([2, -1]), ArgumentError, "zeros", "[2,-1]");
    pin(() => ones([-3]), ArgumentError, "ones", "[-3]");
    pin(() => full([1.5], 0), ArgumentError, "full", "[1.5]");
    pin(() => randn([-1]), ArgumentError, "randn", "[-1]");
    pin(() => rand([2, -2]), ArgumentError, "rand", "[2,-2]");
    pin(() => eye(-1), ArgumentError, "eye", "-1");
    pin(() => linspace(0, 1, -1), ArgumentError, "linspace", "-1");
    pin(() => tensor(["a"] as unknown as number[]), ArgumentError, "tensor", '"a"');
  });
  await t.step("op arguments", () => {
    pin(() => zeros([5]).split(2), ArgumentError, "split", "size 5", "2");
    pin(() => zeros([5]).split([2, 2]), ArgumentError, "split", "[2,2]", "size 5");
    pin(() => zeros([2]).pad([[3, 0]], "periodic"), ArgumentError, "pad", "[3,0]", "size 2");
    pin(() => zeros([2]).pad([[1, 0]], "reflect" as PadMode), ArgumentError, "pad", '"reflect"');
    pin(() => zeros([2]).pad([[-1, 0]]), ArgumentError, "pad", "[-1,0]");
    pin(() => zeros([2]).roll(0.5, 0), ArgumentError, "roll", "0.5");
    pin(() => zeros([1]).var(), ArgumentError, "var", "N = 1");
    pin(() => zeros([1]).clamp(2, 1), ArgumentError, "clamp", "2", "1");
    pin(() => zeros([1]).gelu("fast" as "tanh"), ArgumentError, "gelu", '"fast"');
    pin(() => irfft(zeros([2, 2]), 0), ArgumentError, "irfft", "0");
    pin(() => zeros([2, 3]).add("x" as unknown as number), ArgumentError, "add", "string");
  });
  await t.step("index values out of range", () => {
    // Index values are checked by the backend (the data lives there); the CPU names the value.
    if (getDefaultBackend().name === "cpu") {
      pin(() => gather(zeros([2, 3]), 1, i32([[5]])), ArgumentError, "gather", "index 5", "size 3");
      pin(() => zeros([3]).indexSelect(0, i32([0, -1])), ArgumentError, "gather", "index -1");
    } else {
      // Device kernels cannot raise mid-launch: an out-of-range index must either raise a
      // PatchworkError or read 0, never memory outside the tensor.
      try {
        assert.deepEqual(gather(ones([2, 3]), 1, i32([[5], [-7]])).toArray(), [[0], [0]]);
      } catch (e) {
        if (!(e instanceof PatchworkError)) throw e;
      }
    }
  });
  await t.step("use after dispose", () => {
    const x = tensor([1, 2]);
    x.dispose();
    assert.equal(x.disposed, true);
    pin(() => x.add(1), ArgumentError, "tensor", "[2]", "dispose");
    pin(() => x.toArray(), ArgumentError, "tensor", "[2]", "dispose");
    // A view keeps its storage alive: disposing the base does not break it.
    const y = tensor([1, 2]);
    const v = y.reshape([2, 1]);
    y.dispose();
    assert.deepEqual(v.toArray(), [[1], [2]]);
  });
});

Deno.test("dtype errors", async (t) => {
  await t.step("gather/indexSelect index dtype and shape", () => {
    pin(() => gather(zeros([2, 3]), 1, tensor([[0]])), DTypeError, "gather", "int32", "float32");
    pin(() => zeros([2, 3]).gather(1, i32([0])), ShapeError, "gather", "[1]", "[2,3]");
    pin(() => zeros([2, 3]).gather(0, i32([[0, 0, 0, 0]])), ShapeError, "gather", "[1,4]", "[2,3]");
    pin(() => zeros([3]).indexSelect(0, tensor([0])), DTypeError, "indexSelect", "int32");
    pin(() => zeros([3]).indexSelect(0, i32([[0]])), ShapeError, "indexSelect", "[1,1]");
    pin(() => embedding(zeros([3, 2]), tensor([0])), DTypeError, "embedding", "int32");
    pin(
      () => scatterAdd(zeros([3]), 0, i32([[0]]), tensor([1])),
      ShapeError,
      "scatterAdd",
      "[1,1]",
      "[1]",
      "[3]",
    );
    pin(() => scatterAdd(zeros([3]), 0, tensor([0]), tensor([1])), DTypeError, "scatterAdd", "int32");
  });
  await t.step("concat dtype mismatch", () => {
    pin(() => concat([zeros([2]), zeros([2], { dtype: "float64" })]), DTypeError, "concat", "float32", "float64");
  });
  await t.step("unknown dtype", () => {
    pin(() => zeros([2], { dtype: "float16" as DType }), DTypeError, "zeros", '"float16"', "float32");
    pin(() => tensor([1], { dtype: "complex64" as DType }), DTypeError, "tensor", '"complex64"');
    pin(() => arange(3, undefined, 1, { dtype: "uint8" as DType }), DTypeError, "arange", '"uint8"');
    pin(() => zeros([1]).cast("float16" as DType), DTypeError, "cast", '"float16"');
  });
  await t.step("float-only ops on int32", () => {
    pin(() => zeros([2], { dtype: "int32" }).mean(), DTypeError, "mean", "int32");
    pin(() => zeros([2], { dtype: "int32" }).softmax(), DTypeError, "softmax", "int32");
    pin(() => zeros([2], { dtype: "int32" }).var(), DTypeError, "var", "int32");
    pin(() => zeros([2], { dtype: "int32" }).logsumexp(), DTypeError, "logsumexp", "int32");
  });
  await t.step("gradcheck on float32 inputs", () => {
    pin(() => gradcheck((x) => x.sin(), [tensor([1])]), DTypeError, "gradcheck", "input 0", "float32", "float64");
    pin(
      () => gradcheck((x) => x.cast("float32"), [tensor([1], { dtype: "float64" })]),
      DTypeError,
      "gradcheck",
      "output",
      "float32",
    );
  });
});

Deno.test("device errors: operands on different backends", () => {
  const other = new CpuBackend();
  const here = zeros([2]);
  const there = zeros([2], { backend: other });
  assert.notEqual(here.backend, there.backend);
  pin(() => here.add(there), DeviceError, "add", "different backends");
  pin(() => here.matmul(there), DeviceError, "matmul", "different backends");
  pin(() => concat([here, there]), DeviceError, "concat", "different backends");
  pin(() => where(here, here, there), DeviceError, "where", "different backends");
  pin(() => here.assign(there), DeviceError, "assign", "different backends");
  pin(() => gather(here, 0, tensor([0], { dtype: "int32", backend: other })), DeviceError, "gather");
});

Deno.test("autodiff errors", async (t) => {
  await t.step("backward on a non-scalar without a gradient", () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
    pin(() => x.mul(2).backward(), AutodiffError, "backward", "non-scalar", "[2,3]");
  });
  await t.step("backward with a gradient of the wrong shape", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    pin(() => x.mul(2).backward(tensor([1, 2, 3])), ShapeError, "backward", "[3]", "[2]");
  });
  await t.step("backward on a tensor that does not require grad", () => {
    pin(() => tensor([1, 2]).sum().backward(), AutodiffError, "backward", "does not require grad");
  });
  await t.step("requireGrad on int32", () => {
    pin(() => zeros([2], { dtype: "int32" }).requireGrad(), AutodiffError, "requireGrad", "int32");
  });
  await t.step("transform misuse", () => {
    pin(() => grad((x: Tensor) => x.mul(2))(tensor([1, 2])), ArgumentError, "grad", "one-element", "[2]");
    pin(() => grad((x: Tensor) => x.sum(), { argnums: 2 })(tensor([1])), ArgumentError, "grad", "argnums 2");
    pin(() => grad((x: Tensor) => x.sum())(zeros([2], { dtype: "int32" })), AutodiffError, "grad", "int32");
    const [, back] = vjp((x: Tensor) => x.mul(2), tensor([1, 2]));
    pin(() => back(tensor([1])), ArgumentError, "vjp", "[1]", "[2]");
    pin(() => jvp((x: Tensor) => x.sum(), [tensor([1, 2])], [tensor([1])]), ArgumentError, "jvp", "tangents");
  });
});

Deno.test("errors are raised before any work is done", () => {
  const backend = getDefaultBackend();
  const a = zeros([2, 3]);
  const b = zeros([2], { dtype: "float64" });
  const c = zeros([4, 5], { dtype: "float64" });
  const t = a.transpose();
  const idx = tensor([[0]], { dtype: "int32" });
  const idx1 = tensor([0], { dtype: "int32" });
  const p = zeros([2, 2, 3]);
  const q = zeros([3, 3, 4]);
  const one = zeros([1]);
  const failing: [string, () => unknown][] = [
    ["add with a dtype cast", () => a.add(b)],
    ["where with a dtype cast", () => where(a, a, b)],
    ["matmul with a dtype cast", () => a.matmul(c)],
    ["batched matmul", () => p.matmul(q)],
    ["reshape of a non-contiguous view", () => t.reshape([5])],
    ["concat", () => concat([a, b])],
    ["gather", () => a.gather(1, idx1)],
    ["scatterAdd", () => scatterAdd(a, 0, idx, b)],
    ["slice", () => a.slice([5])],
    ["sum", () => a.sum(3)],
    ["var", () => one.var()],
  ];
  for (const [name, fn] of failing) {
    const before = backend.memory().current;
    assert.throws(fn, PatchworkError, name);
    assert.equal(backend.memory().current - before, 0, `${name}: bytes were allocated before the error`);
  }
});

// The CPU backend's scatter-add (the gradient of gather and of an embedding lookup) against sums
// written out here: float64 sums in order, rounded once to the result's dtype.

import assert from "node:assert/strict";
import { CpuBackend } from "../src/backend/cpu/mod.ts";
import type { View } from "../src/tensor/backend.ts";
import { type DType, fromBFloat16Bits, toBFloat16Bits } from "../src/tensor/dtype.ts";
import { contiguousStrides } from "../src/tensor/shape.ts";
import { randomData, rng } from "./helpers.ts";

const cpu = new CpuBackend();

function view(data: number[], shape: number[], dtype: DType): View {
  return { buffer: cpu.fromHost(data, dtype), shape, strides: contiguousStrides(shape), offset: 0 };
}

/** scatterAdd of `src` [rows, width] into [table, width] along axis 0, by the row ids `ids`. */
function reference(ids: number[], src: number[], table: number, width: number, dtype: DType): number[] {
  const sums = new Array(table * width).fill(0);
  ids.forEach((id, r) => {
    for (let j = 0; j < width; j++) {
      const t = id * width + j;
      sums[t] = dtype === "int32" ? (sums[t] + src[r * width + j]) | 0 : sums[t] + src[r * width + j];
    }
  });
  if (dtype === "float32") return sums.map(Math.fround);
  if (dtype === "bfloat16") return sums.map((x) => fromBFloat16Bits(toBFloat16Bits(Math.fround(x))));
  return sums;
}

Deno.test("scatterAdd: few rows of a large table (an embedding's gradient) and many, every dtype, repeated ids", () => {
  const r = rng(5);
  for (const dtype of ["float32", "bfloat16", "float64", "int32"] as DType[]) {
    for (const [table, rows] of [[5000, 40], [30, 400]]) {
      const width = 9;
      const ids = Array.from({ length: rows }, (_, k) => (k % 7 === 3 ? 2 : Math.floor(r() * table)));
      const src = randomData(rows * width, rows + table).map((x) =>
        dtype === "int32"
          ? Math.round(x * 1e9)
          : dtype === "float64"
          ? x
          : dtype === "float32"
          ? Math.fround(x)
          : fromBFloat16Bits(toBFloat16Bits(x))
      );
      // The index broadcast along the width, as an embedding's backward passes it.
      const index = { buffer: cpu.fromHost(ids, "int32"), shape: [rows, width], strides: [1, 0], offset: 0 };
      const s = view(src, [rows, width], dtype);
      const out = cpu.scatterAdd([table, width], 0, index, s, dtype);
      const outView = { buffer: out, shape: [table, width], strides: [width, 1], offset: 0 };
      const got = cpu.toHost(outView);
      const want = reference(ids, src, table, width, dtype);
      for (let t = 0; t < want.length; t++) {
        if (!Object.is(got[t], want[t])) {
          assert.fail(`${dtype} ${table}×${width} from ${rows} rows: [${t}] = ${got[t]}, want ${want[t]}`);
        }
      }
      for (const b of [index.buffer, s.buffer, out]) cpu.free(b);
    }
  }
});

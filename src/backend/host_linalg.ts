/**
 * A backend option for a backend without native dense linear algebra: {@link hostLinalg} runs
 * the CPU backend's implementation on host copies of the operands (one synchronisation and two
 * transfers per call), and {@link installHostLinalg} gives it to such a backend. Nothing installs
 * it by default — the solvers raise a `DeviceError` on a backend without `linalg` — but a benchmark
 * or a test harness can, to exercise everything else on a device before its factorisations land.
 * The matrices involved are small (B × N × N), so the cost is the synchronisation, not the bytes.
 *
 * @module
 */

import type { Backend, DeviceBuffer, LinalgPrimitives, View } from "../tensor/backend.ts";
import { contiguousStrides } from "../tensor/shape.ts";
import { CpuBackend } from "./cpu/mod.ts";

/**
 * Linear-algebra primitives for `backend` computed on the host by the CPU backend.
 *
 * @example
 * ```ts
 * import { hostLinalg } from "./host_linalg.ts";
 * import { getDefaultBackend } from "../tensor/mod.ts";
 * const b = getDefaultBackend();
 * const linalg = b.linalg ?? hostLinalg(b);
 * ```
 */
export function hostLinalg(backend: Backend): LinalgPrimitives {
  const cpu = new CpuBackend();
  const cpuLinalg = cpu.linalg;
  const toCpu = (v: View): View => ({
    buffer: cpu.fromHost(backend.toHost(v), v.buffer.dtype === "bfloat16" ? "float32" : v.buffer.dtype),
    shape: v.shape,
    strides: contiguousStrides(v.shape),
    offset: 0,
  });
  const back = (buf: DeviceBuffer): DeviceBuffer => {
    const host = cpu.toHost({ buffer: buf, shape: [buf.size], strides: [1], offset: 0 });
    cpu.free(buf);
    return backend.fromHost(host, buf.dtype);
  };
  const release = (...views: View[]) => views.forEach((v) => cpu.free(v.buffer));
  return {
    cholesky(a, dtype) {
      const ha = toCpu(a);
      const r = cpuLinalg.cholesky(ha, dtype);
      release(ha);
      return { factor: back(r.factor), info: back(r.info) };
    },
    triangularSolve(a, b, options, dtype) {
      const ha = toCpu(a);
      const hb = toCpu(b);
      const x = cpuLinalg.triangularSolve(ha, hb, options, dtype);
      release(ha, hb);
      return back(x);
    },
    lu(a, dtype) {
      const ha = toCpu(a);
      const r = cpuLinalg.lu(ha, dtype);
      release(ha);
      return { lu: back(r.lu), pivots: back(r.pivots), info: back(r.info) };
    },
    luSolve(lu, pivots, b, transpose, dtype) {
      const hl = toCpu(lu);
      const hp = toCpu(pivots);
      const hb = toCpu(b);
      const x = cpuLinalg.luSolve(hl, hp, hb, transpose, dtype);
      release(hl, hp, hb);
      return back(x);
    },
    qr(a, dtype) {
      const ha = toCpu(a);
      const r = cpuLinalg.qr(ha, dtype);
      release(ha);
      return { q: back(r.q), r: back(r.r) };
    },
  };
}

/**
 * Gives `backend` the host stand-in when it has no `linalg` of its own; returns whether it did.
 *
 * @example
 * ```ts
 * import { installHostLinalg } from "./host_linalg.ts";
 * import { getDefaultBackend } from "../tensor/mod.ts";
 * installHostLinalg(getDefaultBackend()); // false on the CPU backend
 * ```
 */
export function installHostLinalg(backend: Backend): boolean {
  if (backend.linalg) return false;
  (backend as { linalg?: LinalgPrimitives }).linalg = hostLinalg(backend);
  return true;
}

"""JAX + Optimistix reference for bench/solve_lm.ts.

Batched Levenberg-Marquardt on r(w) = Phi w + 0.1 (Phi w)^2 - y, Phi [B, M, N] (float32 by
default), with `optx.least_squares` + `optx.LevenbergMarquardt` vmapped over the B problems and
jitted, timed after warm-up (compilation excluded), per solve and per solve + VJP (gradients to
Phi and y through Optimistix's default ImplicitAdjoint).

The problem is the one bench/solve_lm.ts builds: Phi and w_true come from the murmur3 finaliser
of the element index (identical in both scripts, no shared random generator), y = Phi w_true +
0.1 (Phi w_true)^2 (zero residual), w0 = 0, the VJP cotangent c from the same hash.

    python bench/solve_lm_optimistix.py                      # B = 4,16,64, N = 64, M = 20000
    python bench/solve_lm_optimistix.py --b 4,16 --m 2000

Needs jax (with CUDA for GPU timings), optimistix and lineax: pip install -U "jax[cuda12]"
optimistix. Prints the same markdown table as the TypeScript benchmark.
"""

import argparse
import time

import numpy as np

import jax
import jax.numpy as jnp
import optimistix as optx


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--b", default="4,16,64")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--m", type=int, default=20000)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--max-steps", type=int, default=100)
    return p.parse_args()


def mix(x: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser on a uint32 array (wrapping arithmetic, as Math.imul)."""
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def hash_uniform(count: int, seed: int) -> np.ndarray:
    """Element k: mix((k + seed * 0x9E3779B9) mod 2^32) / 2^32, as hashUniform in solve_lm.ts."""
    base = np.uint32((seed * 0x9E3779B9) & 0xFFFFFFFF)
    out = np.empty(count, dtype=np.float64)
    chunk = 1 << 24
    for start in range(0, count, chunk):
        k = np.arange(start, min(count, start + chunk), dtype=np.uint32) + base  # wraps mod 2^32
        out[start : start + len(k)] = mix(k) / 4294967296.0
    return out


def problem(b: int, m: int, n: int, dtype):
    scale = np.sqrt(12.0 / n)
    phi = ((hash_uniform(b * m * n, 1) - 0.5) * scale).reshape(b, m, n)
    w_true = (2.0 * hash_uniform(b * n, 2) - 1.0).reshape(b, n)
    cot = (2.0 * hash_uniform(b * n, 3) - 1.0).reshape(b, n)
    phi = jnp.asarray(phi, dtype=dtype)
    w_true = jnp.asarray(w_true, dtype=dtype)
    u = jnp.einsum("bmn,bn->bm", phi, w_true)
    y = u + 0.1 * u**2
    return phi, y, w_true, jnp.asarray(cot, dtype=dtype)


def residual(w, args):
    phi, y = args
    u = phi @ w
    return u + 0.1 * u**2 - y


def main() -> None:
    a = parse_args()
    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float32 if a.dtype == "float32" else jnp.float64
    solver = optx.LevenbergMarquardt(rtol=a.rtol, atol=a.atol)

    def solve_one(phi, y, w0):
        sol = optx.least_squares(residual, solver, w0, args=(phi, y), max_steps=a.max_steps, throw=False)
        return sol.value, sol.stats["num_steps"], sol.result == optx.RESULTS.successful

    solve = jax.jit(jax.vmap(solve_one))

    def loss(phi, y, w0, cot):
        w, _, _ = jax.vmap(solve_one)(phi, y, w0)
        return jnp.sum(w * cot)

    solve_vjp = jax.jit(jax.grad(loss, argnums=(0, 1)))
    copy = jax.jit(lambda x: -x)

    def timed(fn, *args) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return (time.perf_counter() - t0) * 1e3

    print(f"# Optimistix LevenbergMarquardt (vmapped, jitted), r = Φw + 0.1(Φw)² − y ({a.dtype}), "
          f"{jax.devices()[0].device_kind}")
    print(f"N = {a.n}, M = {a.m}, atol = {a.atol}, rtol = {a.rtol}, median of {a.reps} after {a.warmup} warm-up "
          "(compilation excluded)\n")
    print("| B | iterations | ms / solve | ms / solve + VJP | Φ MB | copy GB/s | Φ-read floor ms (solve / +VJP) "
          "| × floor (solve / +VJP) | max abs(w − w_true) | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for b in [int(x) for x in a.b.split(",")]:
        phi, y, w_true, cot = problem(b, a.m, a.n, dtype)
        w0 = jnp.zeros((b, a.n), dtype=dtype)
        for _ in range(max(1, a.warmup)):
            jax.block_until_ready(solve(phi, y, w0))
            jax.block_until_ready(solve_vjp(phi, y, w0, cot))
            jax.block_until_ready(copy(phi))
        t_solve = float(np.median([timed(solve, phi, y, w0) for _ in range(a.reps)]))
        t_vjp = float(np.median([timed(solve_vjp, phi, y, w0, cot) for _ in range(a.reps)]))
        t_copy = float(np.median([timed(copy, phi) for _ in range(3)]))
        w, steps, ok = solve(phi, y, w0)
        iterations = int(jnp.max(steps))
        err = float(jnp.max(jnp.abs(w - w_true)))
        nbytes = b * a.m * a.n * jnp.dtype(dtype).itemsize
        bw = 2 * nbytes / (t_copy / 1e3)
        floor_solve = iterations * nbytes / bw * 1e3
        floor_vjp = (iterations + 1) * nbytes / bw * 1e3
        n_ok = int(jnp.sum(ok))
        status = f"{n_ok} converged" + (f", {b - n_ok} not" if n_ok < b else "")
        print(f"| {b} | {iterations} | {t_solve:.1f} | {t_vjp:.1f} | {nbytes / 1e6:.1f} | {bw / 1e9:.1f} | "
              f"{floor_solve:.2f} / {floor_vjp:.2f} | {t_solve / floor_solve:.1f} / {t_vjp / floor_vjp:.1f} | "
              f"{err:.1e} | {status} |")


if __name__ == "__main__":
    main()

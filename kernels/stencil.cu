// Banded linear operators along one axis (Backend.stencil): finite-difference stencils and their
// transposes, fused into one pass. The input is a strided view seen as [outer, n, inner] (one
// stride per group, see src/backend/cuda/stencil.ts); the output is contiguous. Row i of the
// operator is a dense head row (i < hr), a dense tail row (i >= n - tr) or the uniform stencil
// at offsets lo .. lo + w - 1, wrapping around (periodic) or reading zero outside [0, n).
//
// A block of blockDim = TO * TI * TJ threads (powers of two) works on tiles of TO lines x
// TI * rows rows x TJ inner positions; consecutive threads take consecutive inner positions, or
// consecutive rows when inner == 1, so loads and stores coalesce either way; the few neighbours a
// stencil reads again come from L1. Sums are in double with separately rounded multiplies and
// adds in a fixed order (no FMA), as the CPU backend computes them, then rounded once to the
// storage type.
#include "common.cuh"

#define PW_STENCIL_MAX_COEFS 256

struct StencilDims {
  u32 outer, n, inner;  // extents of the [outer, n, inner] view
  u32 lj, li;           // log2 TJ and log2 TI
  u32 rows;             // rows per thread in a tile (a tile spans TI * rows rows)
  u32 tiles_i, tiles_j, tiles;
};

struct BandMeta {
  int lo;             // offset of the first stencil tap
  u32 w;              // stencil width
  u32 periodic;       // interior columns wrap modulo n
  u32 hr, hc, tr, tc; // head and tail blocks (rows x cols)
};

// Coefficients: the stencil (w), then the head block (hr x hc), then the tail block (tr x tc).
struct BandCoefs {
  double c[PW_STENCIL_MAX_COEFS];
};

template <typename T> __device__ __forceinline__ double tap(double acc, double c, const T* p) {
  return __dadd_rn(acc, __dmul_rn(c, load_as<double>(*p)));
}

// Row i of the operator applied to the line starting at xl (element step sa).
template <typename T>
__device__ __forceinline__ double band_row(const T* __restrict__ xl, i64 sa, int i, int n, const BandMeta& m,
                                           const BandCoefs& k) {
  double acc = 0.0;
  if (i < (int)m.hr) {
    const u32 c0 = m.w + (u32)i * m.hc;
    const T* p = xl;
    for (u32 q = 0; q < m.hc; ++q, p += sa) acc = tap(acc, k.c[c0 + q], p);
    return acc;
  }
  const int t0 = n - (int)m.tr;
  if (i >= t0) {
    const u32 c0 = m.w + m.hr * m.hc + (u32)(i - t0) * m.tc;
    const T* p = xl + (i64)(n - (int)m.tc) * sa;
    for (u32 q = 0; q < m.tc; ++q, p += sa) acc = tap(acc, k.c[c0 + q], p);
    return acc;
  }
  i64 col = (i64)i + m.lo;
  if (col >= 0 && col + (i64)m.w <= (i64)n) {
    const T* p = xl + col * sa;
    for (u32 q = 0; q < m.w; ++q, p += sa) acc = tap(acc, k.c[q], p);
  } else if (m.periodic) {
    col %= n;
    if (col < 0) col += n;
    for (u32 q = 0; q < m.w; ++q) {
      acc = tap(acc, k.c[q], xl + col * sa);
      if (++col == n) col = 0;
    }
  } else {
    for (u32 q = 0; q < m.w; ++q, ++col) {
      if (col >= 0 && col < n) acc = tap(acc, k.c[q], xl + col * sa);
    }
  }
  return acc;
}

// y[o, i, j] = (A x[o, :, j])[i] (+ add[o, i, j]); x[o, i, j] is x[o * s0 + i * s1 + j * s2].
template <typename T>
__device__ __forceinline__ void stencil_apply(const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ add,
                                              const StencilDims& d, const Strides8& st, const BandMeta& m,
                                              const BandCoefs& k) {
  const u32 tj_n = 1u << d.lj, ti_n = 1u << d.li;
  const u32 tx = threadIdx.x & (tj_n - 1u);
  const u32 ty = (threadIdx.x >> d.lj) & (ti_n - 1u);
  const u32 tz = threadIdx.x >> (d.lj + d.li);
  const u32 to_n = blockDim.x >> (d.lj + d.li);
  const u32 span = d.rows << d.li;
  const int n = (int)d.n;
  for (u32 t = blockIdx.x; t < d.tiles; t += gridDim.x) {
    // (Single-tile extents skip the divisions: lines along the innermost axis have both.)
    const u32 r = d.tiles_j == 1u ? t : t / d.tiles_j;
    const u32 j = (t - r * d.tiles_j) * tj_n + tx;
    const u32 q = d.tiles_i == 1u ? r : r / d.tiles_i;
    const u32 i0 = (r - q * d.tiles_i) * span + ty;
    const u32 o = q * to_n + tz;
    if (o >= d.outer || j >= d.inner) continue;
    const T* xl = x + (i64)o * st.s[0] + (i64)j * st.s[2];
    const u64 base = (u64)o * d.n * d.inner + j;
    u32 i = i0;
    for (u32 rr = 0; rr < d.rows && i < d.n; ++rr, i += ti_n) {
      double acc = band_row<T>(xl, st.s[1], (int)i, n, m, k);
      const u64 e = base + (u64)i * d.inner;
      if (add != nullptr) acc = __dadd_rn(acc, load_as<double>(add[e]));
      y[e] = store_as<T>(acc);
    }
  }
}

#define PW_INST_STENCIL(sfx, T)                                                                              \
  extern "C" __global__ void stencil_##sfx(const T* __restrict__ x, T* __restrict__ y,                       \
                                           const T* __restrict__ add, StencilDims d, Strides8 st, BandMeta m, \
                                           BandCoefs k) {                                                    \
    stencil_apply<T>(x, y, add, d, st, m, k);                                                                \
  }
PW_INST_STENCIL(f32, float)
PW_INST_STENCIL(f64, double)
PW_INST_STENCIL(bf16, bf16)

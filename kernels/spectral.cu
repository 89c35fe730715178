// The Fourier layer's per-mode complex channel mixing in one pass (src/tensor/spectral_defs.ts
// defines the geometry and the arithmetic; src/backend/cuda/fused.ts launches these kernels).
//
// A spectrum is [B, 2, S, C] (real parts, then imaginary parts; S mode slots; channels last), a
// weight [2^(d-1), I, O, m_0 .. m_(d-1), 2]. Slot s reads the weight's corner c and mode q: on
// each full axis a < d - 1 the slot index s_a < 2 m_a is low (bit_a = 0, q_a = s_a) or high
// (bit_a = 1, q_a = s_a - m_a); the last axis has m_(d-1) slots, q = s there; c = sum bit_a 2^a.
//
// Every complex product is (xr*wr - xi*wi, xr*wi + xi*wr) and the contracted sum runs in
// ascending order, in double with separately rounded multiplies and adds (no FMA), rounded once
// to the storage type: the CPU backend's loops give the same bits.
//
// spectral_mix:         out[b, s, o] = sum_i x[b, s, i] * w[c, i, o, q]          (adjoint = 0)
//                       out[b, s, i] = sum_o x[b, s, o] * conj(w[c, i, o, q])    (adjoint = 1)
//   One thread per (output channel, slot), slots fastest: consecutive threads read consecutive
//   modes of one weight row (coalesced); x is small and read through the cache. The batch is
//   taken four at a time, so each weight element comes from memory once for a batch of up to four.
// spectral_weight_grad: out[c, i, o, q] = sum_b conj(a[b, s, i]) * d[b, s, o]
//   One thread per weight element, modes fastest (coalesced stores).
#include "common.cuh"

struct SpectralModes {
  u32 d;     // grid axes (1 to 3)
  u32 m[3];  // modes per axis (m[a] for a < d)
};

// The corner and flat mode index slot s reads. (Loops over the three possible axes are unrolled
// so the mode array is indexed by constants and stays in registers.)
__device__ __forceinline__ void slot_weight(u32 s, const SpectralModes& g, u32& corner, u32& mode) {
  corner = 0;
  mode = 0;
  u32 inner = 1;
#pragma unroll
  for (int a = 2; a >= 0; --a) {
    if (a < (int)g.d) {
      const u32 m = g.m[a];
      const bool full = a < (int)g.d - 1;
      const u32 ext = full ? 2 * m : m;
      u32 sa = s % ext;
      s /= ext;
      if (full && sa >= m) {
        corner |= 1u << a;
        sa -= m;
      }
      mode += sa * inner;
      inner *= m;
    }
  }
}

// The slot that reads corner c and flat mode q.
__device__ __forceinline__ u32 weight_slot(u32 corner, u32 q, const SpectralModes& g) {
  u32 s = 0;
  u32 inner = 1;
#pragma unroll
  for (int a = 2; a >= 0; --a) {
    if (a < (int)g.d) {
      const u32 m = g.m[a];
      const bool full = a < (int)g.d - 1;
      const u32 qa = q % m;
      q /= m;
      s += (qa + (full && ((corner >> a) & 1u) ? m : 0u)) * inner;
      inner *= full ? 2 * m : m;
    }
  }
  return s;
}

__device__ __forceinline__ double cmul_re(double ar, double ai, double br, double bi) {
  return __dsub_rn(__dmul_rn(ar, br), __dmul_rn(ai, bi));
}
__device__ __forceinline__ double cmul_im(double ar, double ai, double br, double bi) {
  return __dadd_rn(__dmul_rn(ar, bi), __dmul_rn(ai, br));
}

#define PW_MIX_BATCH 4

template <typename T>
__device__ __forceinline__ void spectral_mix(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out,
                                             u32 batch, u32 slots, u32 cin, u32 cout, u32 nmodes, u32 adjoint,
                                             SpectralModes g) {
  const u64 total = (u64)cout * slots;
  const u64 plane_x = (u64)slots * cin, plane_o = (u64)slots * cout;
  for (u64 t = global_thread(); t < total; t += grid_threads()) {
    const u32 s = (u32)(t % slots), o = (u32)(t / slots);
    u32 corner, mode;
    slot_weight(s, g, corner, mode);
    for (u32 b0 = 0; b0 < batch; b0 += PW_MIX_BATCH) {
      double re[PW_MIX_BATCH], im[PW_MIX_BATCH];
#pragma unroll
      for (int k = 0; k < PW_MIX_BATCH; ++k) re[k] = im[k] = 0.0;
      for (u32 i = 0; i < cin; ++i) {
        const u64 row = adjoint ? ((u64)corner * cout + o) * cin + i : ((u64)corner * cin + i) * cout + o;
        const u64 at = 2 * (row * nmodes + mode);
        const double wr = load_as<double>(w[at]);
        const double wi = adjoint ? -load_as<double>(w[at + 1]) : load_as<double>(w[at + 1]);
#pragma unroll
        for (int k = 0; k < PW_MIX_BATCH; ++k) {
          if (b0 + k < batch) {
            const u64 xr = 2 * (u64)(b0 + k) * plane_x + (u64)s * cin + i;
            const double ar = load_as<double>(x[xr]), ai = load_as<double>(x[xr + plane_x]);
            re[k] = __dadd_rn(re[k], cmul_re(ar, ai, wr, wi));
            im[k] = __dadd_rn(im[k], cmul_im(ar, ai, wr, wi));
          }
        }
      }
#pragma unroll
      for (int k = 0; k < PW_MIX_BATCH; ++k) {
        if (b0 + k < batch) {
          const u64 yr = 2 * (u64)(b0 + k) * plane_o + (u64)s * cout + o;
          out[yr] = store_as<T>(re[k]);
          out[yr + plane_o] = store_as<T>(im[k]);
        }
      }
    }
  }
}

template <typename T>
__device__ __forceinline__ void spectral_weight_grad(const T* __restrict__ a, const T* __restrict__ d,
                                                     T* __restrict__ out, u32 batch, u32 slots, u32 ca, u32 cd,
                                                     u32 nmodes, SpectralModes g) {
  const u64 total = ((u64)1 << (g.d - 1)) * ca * cd * nmodes;
  const u64 plane_a = (u64)slots * ca, plane_d = (u64)slots * cd;
  for (u64 t = global_thread(); t < total; t += grid_threads()) {
    const u32 q = (u32)(t % nmodes);
    u64 rest = t / nmodes;
    const u32 o = (u32)(rest % cd);
    rest /= cd;
    const u32 i = (u32)(rest % ca);
    const u32 corner = (u32)(rest / ca);
    const u32 s = weight_slot(corner, q, g);
    double re = 0.0, im = 0.0;
    for (u32 b = 0; b < batch; ++b) {
      const u64 pa = 2 * (u64)b * plane_a + (u64)s * ca + i;
      const u64 pd = 2 * (u64)b * plane_d + (u64)s * cd + o;
      const double ar = load_as<double>(a[pa]), ai = load_as<double>(a[pa + plane_a]);
      const double dr = load_as<double>(d[pd]), di = load_as<double>(d[pd + plane_d]);
      // conj(a) * d = (ar*dr + ai*di, ar*di - ai*dr)
      re = __dadd_rn(re, __dadd_rn(__dmul_rn(ar, dr), __dmul_rn(ai, di)));
      im = __dadd_rn(im, __dsub_rn(__dmul_rn(ar, di), __dmul_rn(ai, dr)));
    }
    out[2 * t] = store_as<T>(re);
    out[2 * t + 1] = store_as<T>(im);
  }
}

#define PW_INST_SPECTRAL(sfx, T)                                                                               \
  extern "C" __global__ void spectral_mix_##sfx(const T* __restrict__ x, const T* __restrict__ w,             \
                                                T* __restrict__ out, u32 batch, u32 slots, u32 cin, u32 cout, \
                                                u32 nmodes, u32 adjoint, SpectralModes g) {                   \
    spectral_mix<T>(x, w, out, batch, slots, cin, cout, nmodes, adjoint, g);                                   \
  }                                                                                                            \
  extern "C" __global__ void spectral_weight_grad_##sfx(const T* __restrict__ a, const T* __restrict__ d,      \
                                                        T* __restrict__ out, u32 batch, u32 slots, u32 ca,     \
                                                        u32 cd, u32 nmodes, SpectralModes g) {                 \
    spectral_weight_grad<T>(a, d, out, batch, slots, ca, cd, nmodes, g);                                       \
  }
PW_INST_SPECTRAL(f32, float)
PW_INST_SPECTRAL(f64, double)

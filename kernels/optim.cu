// Fused optimiser updates: one pass over a parameter, its gradient and its state instead of a chain
// of elementwise kernels. Each element goes through the composite update's operations in the same
// order with explicitly rounded multiplies and adds (no FMA contraction), so the result is what the
// chain of elementwise kernels computes (src/optim/adam.ts, backend.ts OptimPrimitives.adam).
#include "common.cuh"

__device__ __forceinline__ float o_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double o_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float o_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double o_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float o_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double o_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float o_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double o_sqrt(double x) { return sqrt(x); }

// Adam(W), in place. T: parameter and moment storage (float or double); G: gradient storage (T, or
// bf16 for a float parameter). low (may be null): bf16 copy of the new parameter.
//   g <- g + l2*theta (l2 != 0: coupled decay)     base = theta*decay (decay != 1: decoupled)
//   m <- m*b1 + g*(1-b1);  v <- v*b2 + (g*g)*(1-b2)
//   theta <- base - (m / (sqrt(v)/bc2s + eps)) * step
// Four elements a stride apart per thread and iteration keep several loads in flight.
template <typename T, typename G>
__device__ __forceinline__ void adam_update(T* __restrict__ p, const G* __restrict__ g, T* __restrict__ m,
                                            T* __restrict__ v, bf16* __restrict__ low, u64 n, double decay,
                                            double l2, double b1, double omb1, double b2, double omb2, double bc2s,
                                            double eps, double step) {
  typedef typename Acc<T>::type C;
  const C cdecay = (C)decay, cl2 = (C)l2, cb1 = (C)b1, c1b1 = (C)omb1, cb2 = (C)b2, c1b2 = (C)omb2;
  const C cbc2 = (C)bc2s, ceps = (C)eps, cstep = (C)step;
  const u64 stride = grid_threads();
  const int U = 4;
  for (u64 base0 = global_thread(); base0 < n; base0 += U * stride) {
    C th[U], gr[U], mm[U], vv[U];
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const u64 i = base0 + k * stride;
      if (i < n) {
        th[k] = load_as<C>(p[i]);
        gr[k] = load_as<C>(g[i]);
        mm[k] = load_as<C>(m[i]);
        vv[k] = load_as<C>(v[i]);
      }
    }
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const u64 i = base0 + k * stride;
      if (i < n) {
        C gk = gr[k];
        if (cl2 != (C)0) gk = o_add(gk, o_mul(th[k], cl2));
        const C b = cdecay != (C)1 ? o_mul(th[k], cdecay) : th[k];
        const C mk = o_add(o_mul(mm[k], cb1), o_mul(gk, c1b1));
        const C vk = o_add(o_mul(vv[k], cb2), o_mul(o_mul(gk, gk), c1b2));
        const C den = o_add(o_sqrt(vk) / cbc2, ceps);
        const C nt = o_sub(b, o_mul(mk / den, cstep));
        m[i] = store_as<T>(mk);
        v[i] = store_as<T>(vk);
        p[i] = store_as<T>(nt);
        if (low) low[i] = float_to_bf16((float)nt);
      }
    }
  }
}

#define PW_INST_ADAM(psfx, T, gsfx, G)                                                                        \
  extern "C" __global__ void adam_##psfx##_##gsfx(T* __restrict__ p, const G* __restrict__ g,               \
                                                  T* __restrict__ m, T* __restrict__ v, bf16* __restrict__ low, \
                                                  u64 n, double decay, double l2, double b1, double omb1,   \
                                                  double b2, double omb2, double bc2s, double eps,          \
                                                  double step) {                                            \
    adam_update<T, G>(p, g, m, v, low, n, decay, l2, b1, omb1, b2, omb2, bc2s, eps, step);                  \
  }
PW_INST_ADAM(f32, float, f32, float)
PW_INST_ADAM(f32, float, bf16, bf16)
PW_INST_ADAM(f64, double, f64, double)

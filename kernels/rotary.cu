// Rotary position embeddings (FusedPrimitives.rotary): rows of width d whose positions cycle
// through the t rows of the tables cos, sin [t, d]; the halves of a row are the two coordinates
// of d/2 planes:
//   y[c]       = x[c]·cos[p, c]             − sign · x[c + d/2]·sin[p, c]
//   y[c + d/2] = x[c + d/2]·cos[p, c + d/2] + sign · x[c]·sin[p, c + d/2]
// sign −1 is the inverse rotation (the backward). A thread per plane.
#include "common.cuh"

template <typename T>
__device__ void rotary(const T* __restrict__ x, const T* __restrict__ cs, const T* __restrict__ sn, T* __restrict__ y,
                       u64 rows, u32 t, u32 d, int sign) {
  typedef typename Acc<T>::type C;
  const u32 half = d / 2;
  const u64 n = rows * half;
  for (u64 e = global_thread(); e < n; e += grid_threads()) {
    const u64 r = e / half;
    const u32 c = (u32)(e % half);
    const u64 p = (r % t) * d, o = r * d;
    const C a = load_as<C>(x[o + c]), b = load_as<C>(x[o + half + c]);
    const C s = (C)sign;
    y[o + c] = store_as<T>(a * load_as<C>(cs[p + c]) - s * b * load_as<C>(sn[p + c]));
    y[o + half + c] = store_as<T>(b * load_as<C>(cs[p + half + c]) + s * a * load_as<C>(sn[p + half + c]));
  }
}

#define PW_INST_ROTARY(sfx, T)                                                                          \
  extern "C" __global__ void rotary_##sfx(const T* x, const T* cs, const T* sn, T* y, u64 rows, u32 t, \
                                          u32 d, int sign) {                                            \
    rotary<T>(x, cs, sn, y, rows, t, d, sign);                                                          \
  }
PW_INST_ROTARY(f32, float)
PW_INST_ROTARY(bf16, bf16)
PW_INST_ROTARY(f64, double)

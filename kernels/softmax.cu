// Softmax and log-softmax along one axis of a contiguous [outer, L, inner] tensor.
//   inner == 1: softmax_warp (a warp per row, L <= 32 * VPT, values kept in registers),
//               softmax_block (a block per row, L <= blockDim * 8, values in registers: one read,
//               one write), softmax_online (any L: online max/sum pass, then a write pass).
//   inner > 1:  softmax_col (a thread per column; loads coalesced across the inner axis).
// Compute in float (float32, bfloat16) or double (float64).
#include "common.cuh"

template <typename C> __device__ __forceinline__ C s_exp(C x);
template <> __device__ __forceinline__ float s_exp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double s_exp<double>(double x) { return exp(x); }
template <typename C> __device__ __forceinline__ C s_log(C x);
template <> __device__ __forceinline__ float s_log<float>(float x) { return logf(x); }
template <> __device__ __forceinline__ double s_log<double>(double x) { return log(x); }
__device__ __forceinline__ float s_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double s_max(double a, double b) { return fmax(a, b); }
template <typename C> __device__ __forceinline__ C s_ninf();
template <> __device__ __forceinline__ float s_ninf<float>() { return -inf_f(); }
template <> __device__ __forceinline__ double s_ninf<double>() { return -inf_d(); }

template <typename C> __device__ __forceinline__ C block_max(C v, C* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  v = lane < nw ? sm[lane] : s_ninf<C>();
  return warp_max(v);
}
template <typename C> __device__ __forceinline__ C block_sum(C v, C* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  v = lane < nw ? sm[lane] : (C)0;
  return warp_sum(v);
}

template <typename T, bool LOG, int VPT>
__device__ __forceinline__ void softmax_warp(const T* __restrict__ x, T* __restrict__ y, u32 rows, u32 L) {
  typedef typename Acc<T>::type C;
  const int lane = threadIdx.x & 31;
  const u64 warps = (u64)gridDim.x * (blockDim.x >> 5);
  for (u64 row = global_thread() >> 5; row < rows; row += warps) {
    const T* xr = x + row * L;
    T* yr = y + row * L;
    C v[VPT];
    C m = s_ninf<C>();
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const u32 j = lane + 32 * k;
      v[k] = j < L ? load_as<C>(xr[j]) : s_ninf<C>();
      m = s_max(m, v[k]);
    }
    m = warp_max(m);
    C s = 0;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const u32 j = lane + 32 * k;
      if (j < L) {
        const C e = s_exp<C>(v[k] - m);
        s += e;
        if (!LOG) v[k] = e;
      }
    }
    s = warp_sum(s);
    const C r = LOG ? s_log<C>(s) : (C)1 / s;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const u32 j = lane + 32 * k;
      if (j < L) yr[j] = store_as<T>(LOG ? v[k] - m - r : v[k] * r);
    }
  }
}

template <typename T, bool LOG, int VPT>
__device__ __forceinline__ void softmax_block(const T* __restrict__ x, T* __restrict__ y, u32 rows, u32 L) {
  typedef typename Acc<T>::type C;
  __shared__ C sm[32];
  for (u64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * L;
    T* yr = y + row * L;
    C v[VPT];
    C m = s_ninf<C>();
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const u32 j = threadIdx.x + blockDim.x * k;
      v[k] = j < L ? load_as<C>(xr[j]) : s_ninf<C>();
    }
#pragma unroll
    for (int k = 0; k < VPT; ++k) m = s_max(m, v[k]);
    m = block_max<C>(m, sm);
    C s = 0;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const u32 j = threadIdx.x + blockDim.x * k;
      if (j < L) {
        const C e = s_exp<C>(v[k] - m);
        s += e;
        if (!LOG) v[k] = e;
      }
    }
    s = block_sum<C>(s, sm);
    const C r = LOG ? s_log<C>(s) : (C)1 / s;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const u32 j = threadIdx.x + blockDim.x * k;
      if (j < L) yr[j] = store_as<T>(LOG ? v[k] - m - r : v[k] * r);
    }
  }
}

// Online (max, sum) pair update and merge.
template <typename C> __device__ __forceinline__ void online_add(C& m, C& s, C v) {
  if (v > m) {
    s = (s == (C)0 ? (C)0 : s * s_exp<C>(m - v)) + (C)1;
    m = v;
  } else {
    s += s_exp<C>(v - m);
  }
}
template <typename C> __device__ __forceinline__ void online_merge(C& m, C& s, C m2, C s2) {
  const C mm = s_max(m, m2);
  const C a = s == (C)0 ? (C)0 : s * s_exp<C>(m - mm);
  const C b = s2 == (C)0 ? (C)0 : s2 * s_exp<C>(m2 - mm);
  m = mm;
  s = a + b;
}

template <typename T, bool LOG>
__device__ __forceinline__ void softmax_online(const T* __restrict__ x, T* __restrict__ y, u32 rows, u32 L) {
  typedef typename Acc<T>::type C;
  __shared__ C smm[32];
  __shared__ C sms[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (u64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * L;
    T* yr = y + row * L;
    C m = s_ninf<C>(), s = 0;
    for (u32 j = threadIdx.x; j < L; j += blockDim.x) online_add<C>(m, s, load_as<C>(xr[j]));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const C m2 = __shfl_xor_sync(0xffffffffu, m, o);
      const C s2 = __shfl_xor_sync(0xffffffffu, s, o);
      online_merge<C>(m, s, m2, s2);
    }
    __syncthreads();
    if (lane == 0) {
      smm[warp] = m;
      sms[warp] = s;
    }
    __syncthreads();
    m = lane < nw ? smm[lane] : s_ninf<C>();
    s = lane < nw ? sms[lane] : (C)0;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const C m2 = __shfl_xor_sync(0xffffffffu, m, o);
      const C s2 = __shfl_xor_sync(0xffffffffu, s, o);
      online_merge<C>(m, s, m2, s2);
    }
    const C r = LOG ? s_log<C>(s) : (C)1 / s;
    for (u32 j = threadIdx.x; j < L; j += blockDim.x) {
      const C v = load_as<C>(xr[j]);
      yr[j] = store_as<T>(LOG ? v - m - r : s_exp<C>(v - m) * r);
    }
  }
}

template <typename T, bool LOG>
__device__ __forceinline__ void softmax_col(const T* __restrict__ x, T* __restrict__ y, u32 outer, u32 L, u32 inner) {
  typedef typename Acc<T>::type C;
  const u64 cols = (u64)outer * inner;
  for (u64 t = global_thread(); t < cols; t += grid_threads()) {
    const u64 o = t / inner, i = t % inner;
    const u64 base = o * L * inner + i;
    C m = s_ninf<C>(), s = 0;
    for (u32 l = 0; l < L; ++l) online_add<C>(m, s, load_as<C>(x[base + (u64)l * inner]));
    const C r = LOG ? s_log<C>(s) : (C)1 / s;
    for (u32 l = 0; l < L; ++l) {
      const C v = load_as<C>(x[base + (u64)l * inner]);
      y[base + (u64)l * inner] = store_as<T>(LOG ? v - m - r : s_exp<C>(v - m) * r);
    }
  }
}

#define PW_INST_SOFTMAX_L(sfx, T, lsfx, LOG)                                                                   \
  extern "C" __global__ void softmax##lsfx##_warp1_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 rows, \
                                                         u32 L) {                                              \
    softmax_warp<T, LOG, 1>(x, y, rows, L);                                                                    \
  }                                                                                                            \
  extern "C" __global__ void softmax##lsfx##_warp2_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 rows, \
                                                         u32 L) {                                              \
    softmax_warp<T, LOG, 2>(x, y, rows, L);                                                                    \
  }                                                                                                            \
  extern "C" __global__ void softmax##lsfx##_warp4_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 rows, \
                                                         u32 L) {                                              \
    softmax_warp<T, LOG, 4>(x, y, rows, L);                                                                    \
  }                                                                                                            \
  extern "C" __global__ void softmax##lsfx##_warp8_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 rows, \
                                                         u32 L) {                                              \
    softmax_warp<T, LOG, 8>(x, y, rows, L);                                                                    \
  }                                                                                                            \
  extern "C" __global__ void softmax##lsfx##_block_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 rows, \
                                                         u32 L) {                                              \
    softmax_block<T, LOG, 8>(x, y, rows, L);                                                                   \
  }                                                                                                            \
  extern "C" __global__ void softmax##lsfx##_online_##sfx(const T* __restrict__ x, T* __restrict__ y,          \
                                                          u32 rows, u32 L) {                                   \
    softmax_online<T, LOG>(x, y, rows, L);                                                                     \
  }                                                                                                            \
  extern "C" __global__ void softmax##lsfx##_col_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 outer,  \
                                                       u32 L, u32 inner) {                                     \
    softmax_col<T, LOG>(x, y, outer, L, inner);                                                                \
  }
#define PW_INST_SOFTMAX(sfx, T) PW_INST_SOFTMAX_L(sfx, T, , false) PW_INST_SOFTMAX_L(sfx, T, _log, true)
PW_INST_SOFTMAX(f32, float)
PW_INST_SOFTMAX(f64, double)
PW_INST_SOFTMAX(bf16, bf16)

// RMSNorm over rows of width d (FusedPrimitives.rmsNorm / rmsNormBackward), a block per row:
//   y = x · rstd · w,  rstd = 1/√(mean(x²) + eps)
//   dx = rstd · (g·w − x · rstd² · mean(g·w·x))
//   dw = Σ_rows g · x · rstd  (rmsnorm_dw: a thread per column, rows in order)
// Compute in float (float32, bfloat16) or double (float64); rstd is stored in the compute type.
#include "common.cuh"

template <typename C> __device__ __forceinline__ C n_rsqrt(C x);
template <> __device__ __forceinline__ float n_rsqrt<float>(float x) { return rsqrtf(x); }
template <> __device__ __forceinline__ double n_rsqrt<double>(double x) { return rsqrt(x); }

template <typename C> __device__ __forceinline__ C n_block_sum(C v) {
  __shared__ C sm[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  v = lane < nw ? sm[lane] : (C)0;
  return warp_sum(v);
}

template <typename T, typename W>
__device__ void rmsnorm_fwd(const T* __restrict__ x, const W* __restrict__ w, T* __restrict__ y,
                            typename Acc<T>::type* __restrict__ rstd, u64 rows, u32 d, double eps) {
  typedef typename Acc<T>::type C;
  for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
    C ss = 0;
    for (u32 c = threadIdx.x; c < d; c += blockDim.x) {
      const C v = load_as<C>(x[r * d + c]);
      ss += v * v;
    }
    const C rs = n_rsqrt<C>(n_block_sum<C>(ss) / (C)d + (C)eps);
    for (u32 c = threadIdx.x; c < d; c += blockDim.x) {
      y[r * d + c] = store_as<T>(load_as<C>(x[r * d + c]) * rs * load_as<C>(w[c]));
    }
    if (threadIdx.x == 0) rstd[r] = rs;
  }
}

template <typename T, typename W>
__device__ void rmsnorm_dx(const T* __restrict__ x, const W* __restrict__ w, const typename Acc<T>::type* __restrict__ rstd,
                           const T* __restrict__ g, T* __restrict__ dx, u64 rows, u32 d) {
  typedef typename Acc<T>::type C;
  for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const C rs = rstd[r];
    C dot = 0;
    for (u32 c = threadIdx.x; c < d; c += blockDim.x) {
      dot += load_as<C>(g[r * d + c]) * load_as<C>(w[c]) * load_as<C>(x[r * d + c]);
    }
    const C k = rs * rs * n_block_sum<C>(dot) / (C)d;
    for (u32 c = threadIdx.x; c < d; c += blockDim.x) {
      const C v = load_as<C>(g[r * d + c]) * load_as<C>(w[c]) - load_as<C>(x[r * d + c]) * k;
      dx[r * d + c] = store_as<T>(rs * v);
    }
  }
}

template <typename T>
__device__ void rmsnorm_dw(const T* __restrict__ x, const typename Acc<T>::type* __restrict__ rstd,
                           const T* __restrict__ g, T* __restrict__ dw, u64 rows, u32 d) {
  typedef typename Acc<T>::type C;
  for (u64 c = global_thread(); c < d; c += grid_threads()) {
    C acc = 0;
    for (u64 r = 0; r < rows; ++r) acc += load_as<C>(g[r * d + c]) * load_as<C>(x[r * d + c]) * rstd[r];
    dw[c] = store_as<T>(acc);
  }
}

#define PW_INST_RMS(sfx, T, C)                                                                              \
  extern "C" __global__ void rmsnorm_fwd_##sfx(const T* x, const T* w, T* y, C* rstd, u64 rows, u32 d,     \
                                               double eps) {                                                \
    rmsnorm_fwd<T, T>(x, w, y, rstd, rows, d, eps);                                                        \
  }                                                                                                         \
  extern "C" __global__ void rmsnorm_dx_##sfx(const T* x, const T* w, const C* rstd, const T* g, T* dx,     \
                                              u64 rows, u32 d) {                                            \
    rmsnorm_dx<T, T>(x, w, rstd, g, dx, rows, d);                                                          \
  }                                                                                                         \
  extern "C" __global__ void rmsnorm_dw_##sfx(const T* x, const C* rstd, const T* g, T* dw, u64 rows, u32 d) { \
    rmsnorm_dw<T>(x, rstd, g, dw, rows, d);                                                                 \
  }
PW_INST_RMS(f32, float, float)
PW_INST_RMS(bf16, bf16, float)
PW_INST_RMS(f64, double, double)

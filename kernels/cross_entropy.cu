// The per-slice steps of a cross-entropy over a vocabulary walked in slices
// (FusedPrimitives.crossEntropySlice / crossEntropySliceBackward). z [n, size] holds one slice's
// logits in the compute type C (float, or double for float64); cols [n] the target's column in the
// slice (−1 when it lies elsewhere).
//   ce_slice_fwd (a block per row): m' = max(m, max_c z), l' = l·e^(m − m') + Σ_c e^(z − m'),
//                                    picked' = picked + z[col]
//   ce_slice_bwd (a thread per logit): dz = (e^(z − lse) − [c = col])·w
#include "common.cuh"

template <typename C> __device__ __forceinline__ C x_exp(C x);
template <> __device__ __forceinline__ float x_exp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double x_exp<double>(double x) { return exp(x); }
template <typename C> __device__ __forceinline__ C x_ninf();
template <> __device__ __forceinline__ float x_ninf<float>() { return -inf_f(); }
template <> __device__ __forceinline__ double x_ninf<double>() { return -inf_d(); }
__device__ __forceinline__ float x_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double x_max(double a, double b) { return fmax(a, b); }

template <typename C, bool MAX> __device__ __forceinline__ C x_block(C v) {
  __shared__ C sm[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = MAX ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  v = lane < nw ? sm[lane] : (MAX ? x_ninf<C>() : (C)0);
  return MAX ? warp_max(v) : warp_sum(v);
}

template <typename C>
__device__ void ce_slice_fwd(const C* __restrict__ z, const int* __restrict__ cols, const C* __restrict__ m,
                             const C* __restrict__ l, const C* __restrict__ picked, C* __restrict__ mo,
                             C* __restrict__ lo, C* __restrict__ po, u64 n, u32 size) {
  for (u64 r = blockIdx.x; r < n; r += gridDim.x) {
    const C* zr = z + r * size;
    C top = x_ninf<C>();
    for (u32 c = threadIdx.x; c < size; c += blockDim.x) top = x_max(top, zr[c]);
    const C mn = x_max(m[r], x_block<C, true>(top));
    C sum = 0;
    for (u32 c = threadIdx.x; c < size; c += blockDim.x) sum += x_exp<C>(zr[c] - mn);
    sum = x_block<C, false>(sum);
    if (threadIdx.x == 0) {
      mo[r] = mn;
      lo[r] = (m[r] == x_ninf<C>() ? (C)0 : l[r] * x_exp<C>(m[r] - mn)) + sum;
      po[r] = picked[r] + (cols[r] >= 0 ? zr[cols[r]] : (C)0);
    }
  }
}

template <typename C>
__device__ void ce_slice_bwd(const C* __restrict__ z, const int* __restrict__ cols, const C* __restrict__ lse,
                             const C* __restrict__ w, C* __restrict__ dz, u64 n, u32 size) {
  const u64 total = n * size;
  for (u64 e = global_thread(); e < total; e += grid_threads()) {
    const u64 r = e / size;
    const u32 c = (u32)(e % size);
    dz[e] = (x_exp<C>(z[e] - lse[r]) - (cols[r] == (int)c ? (C)1 : (C)0)) * w[r];
  }
}

#define PW_INST_CE(sfx, C)                                                                                 \
  extern "C" __global__ void ce_slice_fwd_##sfx(const C* z, const int* cols, const C* m, const C* l,       \
                                                const C* picked, C* mo, C* lo, C* po, u64 n, u32 size) {   \
    ce_slice_fwd<C>(z, cols, m, l, picked, mo, lo, po, n, size);                                           \
  }                                                                                                        \
  extern "C" __global__ void ce_slice_bwd_##sfx(const C* z, const int* cols, const C* lse, const C* w,     \
                                                C* dz, u64 n, u32 size) {                                  \
    ce_slice_bwd<C>(z, cols, lse, w, dz, n, size);                                                         \
  }
PW_INST_CE(f32, float)
PW_INST_CE(f64, double)

// Inclusive prefix sums (cumsum) along one axis of a contiguous [outer, L, inner] tensor,
// accumulated in double.
//   inner == 1: scan_row, a block per row walking it in tiles of blockDim * 4 elements (each
//               thread scans 4 consecutive ones, warps scan with shuffles, a carry runs across tiles).
//   inner > 1:  scan_col, a thread per column (coalesced across the inner axis).
#include "common.cuh"

#define PW_SCAN_VPT 4

template <typename T>
__device__ __forceinline__ void scan_row(const T* __restrict__ x, T* __restrict__ y, u32 rows, u32 L) {
  typedef typename Acc<T>::type C;
  __shared__ double warp_tot[32];
  __shared__ double tile_tot;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const u32 tile = blockDim.x * PW_SCAN_VPT;
  for (u64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * L;
    T* yr = y + row * L;
    double carry = 0;
    for (u32 base = 0; base < L; base += tile) {
      const u32 j0 = base + threadIdx.x * PW_SCAN_VPT;
      double v[PW_SCAN_VPT];
      double run = 0;
#pragma unroll
      for (int k = 0; k < PW_SCAN_VPT; ++k) {
        const u32 j = j0 + k;
        run += j < L ? (double)load_as<C>(xr[j]) : 0.0;
        v[k] = run;
      }
      // inclusive scan of thread totals within the warp
      double incl = run;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const double t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
      }
      __syncthreads();
      if (lane == 31) warp_tot[warp] = incl;
      __syncthreads();
      if (warp == 0) {
        double w = lane < nw ? warp_tot[lane] : 0.0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const double t = __shfl_up_sync(0xffffffffu, w, o);
          if (lane >= o) w += t;
        }
        if (lane < nw) warp_tot[lane] = w;  // inclusive over warps
        if (lane == 31) tile_tot = w;
      }
      __syncthreads();
      const double before = carry + (warp > 0 ? warp_tot[warp - 1] : 0.0) + (incl - run);
#pragma unroll
      for (int k = 0; k < PW_SCAN_VPT; ++k) {
        const u32 j = j0 + k;
        if (j < L) yr[j] = store_as<T>((C)(before + v[k]));
      }
      carry += tile_tot;
    }
  }
}

template <typename T>
__device__ __forceinline__ void scan_col(const T* __restrict__ x, T* __restrict__ y, u32 outer, u32 L, u32 inner) {
  typedef typename Acc<T>::type C;
  const u64 cols = (u64)outer * inner;
  for (u64 t = global_thread(); t < cols; t += grid_threads()) {
    const u64 o = t / inner, i = t % inner;
    const u64 base = o * L * inner + i;
    double run = 0;
    for (u32 l = 0; l < L; ++l) {
      run += (double)load_as<C>(x[base + (u64)l * inner]);
      y[base + (u64)l * inner] = store_as<T>((C)run);
    }
  }
}

#define PW_INST_SCAN(sfx, T)                                                                                 \
  extern "C" __global__ void scan_row_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 rows, u32 L) {  \
    scan_row<T>(x, y, rows, L);                                                                            \
  }                                                                                                        \
  extern "C" __global__ void scan_col_##sfx(const T* __restrict__ x, T* __restrict__ y, u32 outer, u32 L,   \
                                            u32 inner) {                                                   \
    scan_col<T>(x, y, outer, L, inner);                                                                    \
  }
PW_INST_SCAN(f32, float)
PW_INST_SCAN(f64, double)
PW_INST_SCAN(bf16, bf16)
PW_INST_SCAN(i32, int)

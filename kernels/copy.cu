// Copies and casts: strided -> strided with dtype conversion, contiguous casts, fills, arange, and a
// scaled copy used by the FFT path (inverse transforms divide by n).
#include "common.cuh"

template <typename S, typename D>
__device__ __forceinline__ D convert(S v) {
  typedef typename Acc<S>::type C;
  return store_as<D>(load_as<C>(v));
}
// int -> float32 and float64 -> int keep full precision through double.
template <> __device__ __forceinline__ float convert<int, float>(int v) { return (float)(double)v; }
template <> __device__ __forceinline__ bf16 convert<int, bf16>(int v) { return float_to_bf16((float)(double)v); }
template <> __device__ __forceinline__ int convert<float, int>(float v) { return to_i32((double)v); }
template <> __device__ __forceinline__ int convert<bf16, int>(bf16 v) { return to_i32((double)bf16_to_float(v)); }
template <> __device__ __forceinline__ bf16 convert<double, bf16>(double v) { return float_to_bf16((float)v); }
template <> __device__ __forceinline__ int convert<int, int>(int v) { return v; }
template <> __device__ __forceinline__ bf16 convert<bf16, bf16>(bf16 v) { return v; }

// dst[dst_off(i)] = convert(src[src_off(i)]) for i < n over `shape`; n < 2^32.
template <typename S, typename D>
__device__ __forceinline__ void copy_strided(const S* __restrict__ src, D* __restrict__ dst, u32 n, Shape8 shape,
                                             Strides8 ss, Strides8 ds) {
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    i64 os, od;
    strided_offset2((u32)i, shape, ss, ds, os, od);
    dst[od] = convert<S, D>(src[os]);
  }
}

template <typename S, typename D>
__device__ __forceinline__ void cast_contig(const S* __restrict__ src, D* __restrict__ dst, u64 n) {
  for (u64 i = global_thread(); i < n; i += grid_threads()) dst[i] = convert<S, D>(src[i]);
}

// Strided copies between any two types; contiguous casts only between different types (a
// contiguous copy of one type is a memcpy).
#define PW_INST_COPY(ssfx, S, dsfx, D)                                                                     \
  extern "C" __global__ void copy_##ssfx##_##dsfx(const S* __restrict__ src, D* __restrict__ dst, u32 n, \
                                                  Shape8 shape, Strides8 ss, Strides8 ds) {              \
    copy_strided<S, D>(src, dst, n, shape, ss, ds);                                                      \
  }
#define PW_INST_CAST(ssfx, S, dsfx, D)                                                                     \
  extern "C" __global__ void cast_##ssfx##_##dsfx(const S* __restrict__ src, D* __restrict__ dst, u64 n) { \
    cast_contig<S, D>(src, dst, n);                                                                      \
  }
#define PW_INST_COPY_S(ssfx, S)                                                                            \
  PW_INST_COPY(ssfx, S, f32, float) PW_INST_COPY(ssfx, S, f64, double) PW_INST_COPY(ssfx, S, bf16, bf16) \
  PW_INST_COPY(ssfx, S, i32, int)
PW_INST_COPY_S(f32, float)
PW_INST_COPY_S(f64, double)
PW_INST_COPY_S(bf16, bf16)
PW_INST_COPY_S(i32, int)
PW_INST_CAST(f32, float, f64, double)
PW_INST_CAST(f32, float, bf16, bf16)
PW_INST_CAST(f32, float, i32, int)
PW_INST_CAST(f64, double, f32, float)
PW_INST_CAST(f64, double, bf16, bf16)
PW_INST_CAST(f64, double, i32, int)
PW_INST_CAST(bf16, bf16, f32, float)
PW_INST_CAST(bf16, bf16, f64, double)
PW_INST_CAST(bf16, bf16, i32, int)
PW_INST_CAST(i32, int, f32, float)
PW_INST_CAST(i32, int, f64, double)
PW_INST_CAST(i32, int, bf16, bf16)

// dst[dst_off(i)] = scale * src[src_off(i)] (float or double compute).
template <typename S, typename D>
__device__ __forceinline__ void copy_scaled(const S* __restrict__ src, D* __restrict__ dst, u32 n, Shape8 shape,
                                            Strides8 ss, Strides8 ds, double scale) {
  typedef typename Acc<S>::type C;
  const C sc = (C)scale;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    i64 os, od;
    strided_offset2((u32)i, shape, ss, ds, os, od);
    dst[od] = store_as<D>(load_as<C>(src[os]) * sc);
  }
}
extern "C" __global__ void copy_scaled_f32_f32(const float* __restrict__ src, float* __restrict__ dst, u32 n,
                                               Shape8 shape, Strides8 ss, Strides8 ds, double scale) {
  copy_scaled<float, float>(src, dst, n, shape, ss, ds, scale);
}
extern "C" __global__ void copy_scaled_f64_f64(const double* __restrict__ src, double* __restrict__ dst, u32 n,
                                               Shape8 shape, Strides8 ss, Strides8 ds, double scale) {
  copy_scaled<double, double>(src, dst, n, shape, ss, ds, scale);
}
extern "C" __global__ void copy_scaled_f32_bf16(const float* __restrict__ src, bf16* __restrict__ dst, u32 n,
                                                Shape8 shape, Strides8 ss, Strides8 ds, double scale) {
  copy_scaled<float, bf16>(src, dst, n, shape, ss, ds, scale);
}

// 64-bit fill (float64 values); 32- and 16-bit fills use cuMemsetD32/D16.
extern "C" __global__ void fill_u64(u64* __restrict__ dst, u64 n, u64 value) {
  for (u64 i = global_thread(); i < n; i += grid_threads()) dst[i] = value;
}

// start + i * step, computed in double (separately rounded multiply and add, no FMA, as in
// JavaScript) then stored.
template <typename T> __device__ __forceinline__ void arange(T* __restrict__ dst, u64 n, double start, double step) {
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    dst[i] = store_as<T>(__dadd_rn(start, __dmul_rn((double)i, step)));
  }
}
extern "C" __global__ void arange_f32(float* dst, u64 n, double start, double step) { arange<float>(dst, n, start, step); }
extern "C" __global__ void arange_f64(double* dst, u64 n, double start, double step) { arange<double>(dst, n, start, step); }
extern "C" __global__ void arange_bf16(bf16* dst, u64 n, double start, double step) { arange<bf16>(dst, n, start, step); }
extern "C" __global__ void arange_i32(int* dst, u64 n, double start, double step) { arange<int>(dst, n, start, step); }

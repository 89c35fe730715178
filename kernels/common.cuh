// Shared device helpers for patchwork kernels. Included by every kernels/*.cu file; NVRTC gets it
// as a named header (no standard headers are available there, so everything is written here).
#pragma once

// Large families are compiled as several NVRTC programs in parallel: the host defines PW_PART=k
// for part k and each part instantiates its share. Without PW_PART (nvcc checks) all is built.
#ifdef PW_PART
#define PW_PART_ON(k) (PW_PART == (k))
#else
#define PW_PART_ON(k) 1
#endif

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;

// bfloat16 kept as raw bits; arithmetic happens in float.
struct bf16 {
  unsigned short x;
};

__device__ __forceinline__ float bf16_to_float(bf16 v) { return __uint_as_float(((u32)v.x) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN. Same bits as dtype.ts toBFloat16Bits.
__device__ __forceinline__ bf16 float_to_bf16(float f) {
  u32 u = __float_as_uint(f);
  bf16 r;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0u) {
    r.x = (unsigned short)((u >> 16) | 0x40u);
    return r;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.x = (unsigned short)(u >> 16);
  return r;
}

__device__ __forceinline__ bool is_nan_d(double x) { return x != x; }
__device__ __forceinline__ bool is_nan_f(float x) { return x != x; }
__device__ __forceinline__ double inf_d() { return __longlong_as_double(0x7ff0000000000000ll); }
__device__ __forceinline__ float inf_f() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ double nan_d() { return __longlong_as_double(0x7ff8000000000000ll); }
__device__ __forceinline__ float nan_f() { return __int_as_float(0x7fc00000); }

// JavaScript ToInt32 of a double (what storing a number into an Int32Array does): truncate,
// then wrap modulo 2^32. NaN and infinities give 0; so do magnitudes of 2^63 and more (exact
// for those of 2^84 and more, which are multiples of 2^32).
__device__ __forceinline__ int to_i32(double v) {
  if (!(fabs(v) < 9.2233720368547758e18)) return 0;
  return (int)(u32)(u64)(i64)v;
}

template <typename T> struct IsInt {
  static const bool value = false;
};
template <> struct IsInt<int> {
  static const bool value = true;
};

// Compute type of each storage type: float for float32 and bfloat16, double for float64 and int32.
template <typename T> struct Acc;
template <> struct Acc<float> { typedef float type; };
template <> struct Acc<double> { typedef double type; };
template <> struct Acc<bf16> { typedef float type; };
template <> struct Acc<int> { typedef double type; };

// Conversions between storage types and compute types.
template <typename C, typename T> __device__ __forceinline__ C load_as(T v);
template <> __device__ __forceinline__ float load_as<float, float>(float v) { return v; }
template <> __device__ __forceinline__ float load_as<float, double>(double v) { return (float)v; }
template <> __device__ __forceinline__ float load_as<float, bf16>(bf16 v) { return bf16_to_float(v); }
template <> __device__ __forceinline__ float load_as<float, int>(int v) { return (float)v; }
template <> __device__ __forceinline__ double load_as<double, float>(float v) { return (double)v; }
template <> __device__ __forceinline__ double load_as<double, double>(double v) { return v; }
template <> __device__ __forceinline__ double load_as<double, bf16>(bf16 v) { return (double)bf16_to_float(v); }
template <> __device__ __forceinline__ double load_as<double, int>(int v) { return (double)v; }

template <typename T, typename C> __device__ __forceinline__ T store_as(C v);
template <> __device__ __forceinline__ float store_as<float, float>(float v) { return v; }
template <> __device__ __forceinline__ float store_as<float, double>(double v) { return (float)v; }
template <> __device__ __forceinline__ double store_as<double, float>(float v) { return (double)v; }
template <> __device__ __forceinline__ double store_as<double, double>(double v) { return v; }
template <> __device__ __forceinline__ bf16 store_as<bf16, float>(float v) { return float_to_bf16(v); }
// double -> bfloat16 rounds through float32 first, as the CPU backend's Float32Array path does.
template <> __device__ __forceinline__ bf16 store_as<bf16, double>(double v) { return float_to_bf16((float)v); }
template <> __device__ __forceinline__ int store_as<int, float>(float v) { return to_i32((double)v); }
template <> __device__ __forceinline__ int store_as<int, double>(double v) { return to_i32(v); }

// Up to 8 dimensions: extents (32-bit) and element strides (64-bit, may be 0 or negative).
#define PW_MAX_DIMS 8
struct Shape8 {
  u32 ndim;
  u32 size[PW_MAX_DIMS];
};
struct Strides8 {
  i64 s[PW_MAX_DIMS];
};

// Element offset of linear (row-major) index i of `shape` under `st`.
__device__ __forceinline__ i64 strided_offset(u32 i, const Shape8& shape, const Strides8& st) {
  if (shape.ndim == 1) return (i64)i * st.s[0];
  i64 off = 0;
#pragma unroll
  for (int d = PW_MAX_DIMS - 1; d >= 0; --d) {
    if (d < (int)shape.ndim) {
      u32 n = shape.size[d];
      u32 q = i / n;
      off += (i64)(i - q * n) * st.s[d];
      i = q;
    }
  }
  return off;
}

// Offsets of linear index i under two stride sets at once (one index decomposition).
__device__ __forceinline__ void strided_offset2(u32 i, const Shape8& shape, const Strides8& a, const Strides8& b,
                                                i64& oa, i64& ob) {
  if (shape.ndim == 1) {
    oa = (i64)i * a.s[0];
    ob = (i64)i * b.s[0];
    return;
  }
  oa = 0;
  ob = 0;
#pragma unroll
  for (int d = PW_MAX_DIMS - 1; d >= 0; --d) {
    if (d < (int)shape.ndim) {
      u32 n = shape.size[d];
      u32 q = i / n;
      i64 c = (i64)(i - q * n);
      oa += c * a.s[d];
      ob += c * b.s[d];
      i = q;
    }
  }
}

__device__ __forceinline__ void strided_offset3(u32 i, const Shape8& shape, const Strides8& a, const Strides8& b,
                                                const Strides8& c3, i64& oa, i64& ob, i64& oc) {
  oa = 0;
  ob = 0;
  oc = 0;
#pragma unroll
  for (int d = PW_MAX_DIMS - 1; d >= 0; --d) {
    if (d < (int)shape.ndim) {
      u32 n = shape.size[d];
      u32 q = i / n;
      i64 c = (i64)(i - q * n);
      oa += c * a.s[d];
      ob += c * b.s[d];
      oc += c * c3.s[d];
      i = q;
    }
  }
}

// 16-byte vector of storage elements.
template <typename T, int N> struct __align__(16) Vec {
  T v[N];
};
template <typename T> struct VecWidth {
  static const int value = 16 / sizeof(T);
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_max(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ u64 global_thread() { return (u64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ u64 grid_threads() { return (u64)gridDim.x * blockDim.x; }

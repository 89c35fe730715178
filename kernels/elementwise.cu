// Elementwise kernels: the unary and binary ops of src/tensor/op_defs.ts and where(). Every op has
// one line in PW_UNARY_OPS or PW_BINARY_OPS below (its name there is its name in op_defs.ts), from
// which two kernels per storage type are instantiated by name: <kernel>_<dtype>, a vectorised
// contiguous grid-stride loop (16-byte loads), and <kernel>_strided_<dtype> (up to 8 dims), where
// <kernel> is unary_<name> or binary_<name> and <dtype> is f32, f64, bf16 or i32.
// Arithmetic in Acc<T> (float for float/bf16, double for double/int).
// Parts: 0-3 unary (float, double, bf16, int), 4-7 binary (same order), 8-9 where().
#include "common.cuh"

// ---- math overloads (NVRTC has no <cmath> overloads) ----
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double m_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double m_rsqrt(double x) { return rsqrt(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }
__device__ __forceinline__ float m_sin(float x) { return sinf(x); }
__device__ __forceinline__ double m_sin(double x) { return sin(x); }
__device__ __forceinline__ float m_cos(float x) { return cosf(x); }
__device__ __forceinline__ double m_cos(double x) { return cos(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_erf(float x) { return erff(x); }
__device__ __forceinline__ double m_erf(double x) { return erf(x); }
__device__ __forceinline__ float m_floor(float x) { return floorf(x); }
__device__ __forceinline__ double m_floor(double x) { return floor(x); }
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }

// Derivatives of the GELUs (backward of gelu / gelu_tanh).
template <typename C> __device__ __forceinline__ C gelu_grad_f(C x) {
  return (C)0.5 * ((C)1 + m_erf(x * (C)0.70710678118654752440)) +
         x * (C)0.39894228040143267794 * m_exp((C)-0.5 * x * x);
}
template <typename C> __device__ __forceinline__ C gelu_tanh_grad_f(C x) {
  const C c = (C)0.79788456080286535588, a = (C)0.044715;
  const C t = m_tanh(c * (x + a * x * x * x));
  return (C)0.5 * ((C)1 + t) + (C)0.5 * x * ((C)1 - t * t) * c * ((C)1 + (C)3 * a * x * x);
}

// ---- unary ops: X(name, value at x of compute type C), one line per op of UNARY_OPS ----
#define PW_UNARY_OPS(X)                                                                                 \
  X(neg, -x)                                                                                            \
  X(exp, m_exp(x))                                                                                      \
  X(log, m_log(x))                                                                                      \
  X(sqrt, m_sqrt(x))                                                                                    \
  X(rsqrt, m_rsqrt(x))                                                                                  \
  X(abs, m_abs(x))                                                                                      \
  X(sign, (x > (C)0 ? (C)1 : (x < (C)0 ? (C)-1 : x)))                                                   \
  X(sin, m_sin(x))                                                                                      \
  X(cos, m_cos(x))                                                                                      \
  X(tanh, m_tanh(x))                                                                                    \
  X(sigmoid, (C)1 / ((C)1 + m_exp(-x)))                                                                 \
  X(relu, (x > (C)0 ? x : (x != x ? x : (C)0)))                                                         \
  X(gelu, (C)0.5 * x * ((C)1 + m_erf(x * (C)0.70710678118654752440)))                                   \
  X(gelu_tanh, (C)0.5 * x * ((C)1 + m_tanh((C)0.79788456080286535588 * (x + (C)0.044715 * x * x * x)))) \
  X(silu, x / ((C)1 + m_exp(-x)))                                                                       \
  X(softplus, (x > (C)0 ? x : (C)0) + m_log1p(m_exp(-m_abs(x))))                                        \
  X(erf, m_erf(x))                                                                                      \
  X(reciprocal, (C)1 / x)                                                                               \
  X(floor, m_floor(x))                                                                                  \
  X(gelu_grad, gelu_grad_f(x))                                                                          \
  X(gelu_tanh_grad, gelu_tanh_grad_f(x))

#define PW_DEF_UNARY(name, expr)                         \
  struct U_##name {                                      \
    template <typename C>                                \
    __device__ __forceinline__ C operator()(C x) const { \
      return expr;                                       \
    }                                                    \
  };
PW_UNARY_OPS(PW_DEF_UNARY)

// ---- binary ops: X(name, value at a, b of compute type C), one line per op of BINARY_OPS ----
#define PW_BINARY_OPS(X)                  \
  X(add, a + b)                           \
  X(sub, a - b)                           \
  X(mul, a * b)                           \
  X(div, a / b)                           \
  X(pow, m_pow(a, b))                     \
  X(maximum, ((a > b || a != a) ? a : b)) \
  X(minimum, ((a < b || a != a) ? a : b)) \
  X(eq, (a == b ? (C)1 : (C)0))           \
  X(ne, (a != b ? (C)1 : (C)0))           \
  X(lt, (a < b ? (C)1 : (C)0))            \
  X(le, (a <= b ? (C)1 : (C)0))           \
  X(gt, (a > b ? (C)1 : (C)0))            \
  X(ge, (a >= b ? (C)1 : (C)0))

#define PW_DEF_BINARY(name, expr)                             \
  struct B_##name {                                           \
    template <typename C>                                     \
    __device__ __forceinline__ C operator()(C a, C b) const { \
      return expr;                                            \
    }                                                         \
  };
PW_BINARY_OPS(PW_DEF_BINARY)

// int32 storage computes in double, except where the CPU backend uses integer arithmetic:
// mul wraps like Math.imul, pow is an integer power that wraps (negative exponents give 0
// unless the base is +-1).
__device__ __forceinline__ double int_mul(double a, double b) {
  return (double)(int)((u32)to_i32(a) * (u32)to_i32(b));
}
__device__ __forceinline__ double int_pow(double a, double b) {
  int x = to_i32(a), e = to_i32(b);
  if (e < 0) return x == 1 ? 1.0 : (x == -1 ? ((e & 1) == 0 ? 1.0 : -1.0) : 0.0);
  u32 r = 1u, base = (u32)x;
  while (e > 0) {
    if (e & 1) r *= base;
    base *= base;
    e >>= 1;
  }
  return (double)(int)r;
}
template <class Op, typename T> struct IntAware {
  template <typename C> __device__ __forceinline__ C operator()(C a, C b) const { return Op()(a, b); }
};
template <> struct IntAware<B_mul, int> {
  __device__ __forceinline__ double operator()(double a, double b) const { return int_mul(a, b); }
};
template <> struct IntAware<B_pow, int> {
  __device__ __forceinline__ double operator()(double a, double b) const { return int_pow(a, b); }
};

// ---- contiguous kernels (pointers 16-byte aligned; host checks) ----
template <class Op, typename T>
__device__ __forceinline__ void unary_contig(const T* __restrict__ x, T* __restrict__ y, u64 n) {
  typedef typename Acc<T>::type C;
  const int W = VecWidth<T>::value;
  typedef Vec<T, W> V;
  const V* __restrict__ xv = reinterpret_cast<const V*>(x);
  V* __restrict__ yv = reinterpret_cast<V*>(y);
  const u64 nv = n / W;
  const u64 stride = grid_threads();
  u64 i = global_thread();
  Op op;
  for (; i + stride < nv; i += 2 * stride) {
    V a0 = xv[i];
    V a1 = xv[i + stride];
    V r0, r1;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      r0.v[k] = store_as<T>(op(load_as<C>(a0.v[k])));
      r1.v[k] = store_as<T>(op(load_as<C>(a1.v[k])));
    }
    yv[i] = r0;
    yv[i + stride] = r1;
  }
  if (i < nv) {
    V a0 = xv[i];
    V r0;
#pragma unroll
    for (int k = 0; k < W; ++k) r0.v[k] = store_as<T>(op(load_as<C>(a0.v[k])));
    yv[i] = r0;
  }
  const u64 t = nv * W + global_thread();
  if (t < n) y[t] = store_as<T>(op(load_as<C>(x[t])));
}

// flags: bit 0 = a is the scalar sa, bit 1 = b is the scalar sb.
template <class Op, typename T>
__device__ __forceinline__ void binary_contig(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,
                                              u64 n, double sa, double sb, u32 flags) {
  typedef typename Acc<T>::type C;
  const int W = VecWidth<T>::value;
  typedef Vec<T, W> V;
  const V* __restrict__ av = reinterpret_cast<const V*>(a);
  const V* __restrict__ bv = reinterpret_cast<const V*>(b);
  V* __restrict__ yv = reinterpret_cast<V*>(y);
  const bool as = flags & 1u, bs = flags & 2u;
  const C ca = (C)sa, cb = (C)sb;
  const u64 nv = n / W;
  const u64 stride = grid_threads();
  u64 i = global_thread();
  IntAware<Op, T> op;
  if (!as && !bs) {
    for (; i + stride < nv; i += 2 * stride) {
      V a0 = av[i], a1 = av[i + stride];
      V b0 = bv[i], b1 = bv[i + stride];
      V r0, r1;
#pragma unroll
      for (int k = 0; k < W; ++k) {
        r0.v[k] = store_as<T>(op(load_as<C>(a0.v[k]), load_as<C>(b0.v[k])));
        r1.v[k] = store_as<T>(op(load_as<C>(a1.v[k]), load_as<C>(b1.v[k])));
      }
      yv[i] = r0;
      yv[i + stride] = r1;
    }
    if (i < nv) {
      V a0 = av[i], b0 = bv[i];
      V r0;
#pragma unroll
      for (int k = 0; k < W; ++k) r0.v[k] = store_as<T>(op(load_as<C>(a0.v[k]), load_as<C>(b0.v[k])));
      yv[i] = r0;
    }
  } else if (bs) {
    for (; i < nv; i += stride) {
      V a0 = av[i];
      V r0;
#pragma unroll
      for (int k = 0; k < W; ++k) r0.v[k] = store_as<T>(op(as ? ca : load_as<C>(a0.v[k]), cb));
      yv[i] = r0;
    }
  } else {
    for (; i < nv; i += stride) {
      V b0 = bv[i];
      V r0;
#pragma unroll
      for (int k = 0; k < W; ++k) r0.v[k] = store_as<T>(op(ca, load_as<C>(b0.v[k])));
      yv[i] = r0;
    }
  }
  const u64 t = nv * W + global_thread();
  if (t < n) y[t] = store_as<T>(op(as ? ca : load_as<C>(a[t]), bs ? cb : load_as<C>(b[t])));
}

// ---- strided kernels: output contiguous, inputs strided; n < 2^32 (host splits larger) ----
template <class Op, typename T>
__device__ __forceinline__ void unary_strided(const T* __restrict__ x, T* __restrict__ y, u32 n, Shape8 shape,
                                              Strides8 xs) {
  typedef typename Acc<T>::type C;
  Op op;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    i64 o = strided_offset((u32)i, shape, xs);
    y[i] = store_as<T>(op(load_as<C>(x[o])));
  }
}

template <class Op, typename T>
__device__ __forceinline__ void binary_strided(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,
                                               u32 n, Shape8 shape, Strides8 as_, Strides8 bs_, double sa, double sb,
                                               u32 flags) {
  typedef typename Acc<T>::type C;
  const C ca = (C)sa, cb = (C)sb;
  IntAware<Op, T> op;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    i64 oa, ob;
    strided_offset2((u32)i, shape, as_, bs_, oa, ob);
    C x = (flags & 1u) ? ca : load_as<C>(a[oa]);
    C z = (flags & 2u) ? cb : load_as<C>(b[ob]);
    y[i] = store_as<T>(op(x, z));
  }
}

// where: cond of type CT (nonzero = true), a/b of T (or scalars by flags), output contiguous T.
template <typename CT, typename T>
__device__ __forceinline__ void where_contig(const CT* __restrict__ c, const T* __restrict__ a,
                                             const T* __restrict__ b, T* __restrict__ y, u64 n, double sa, double sb,
                                             u32 flags) {
  typedef typename Acc<CT>::type CC;
  typedef typename Acc<T>::type C;
  const C ca = (C)sa, cb = (C)sb;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    bool t = load_as<CC>(c[i]) != (CC)0;
    C v = t ? ((flags & 1u) ? ca : load_as<C>(a[i])) : ((flags & 2u) ? cb : load_as<C>(b[i]));
    y[i] = store_as<T>(v);
  }
}

template <typename CT, typename T>
__device__ __forceinline__ void where_strided(const CT* __restrict__ c, const T* __restrict__ a,
                                              const T* __restrict__ b, T* __restrict__ y, u32 n, Shape8 shape,
                                              Strides8 cs, Strides8 as_, Strides8 bs_, double sa, double sb,
                                              u32 flags) {
  typedef typename Acc<CT>::type CC;
  typedef typename Acc<T>::type C;
  const C ca = (C)sa, cb = (C)sb;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    i64 oc, oa, ob;
    strided_offset3((u32)i, shape, cs, as_, bs_, oc, oa, ob);
    bool t = load_as<CC>(c[oc]) != (CC)0;
    C v = t ? ((flags & 1u) ? ca : load_as<C>(a[oa])) : ((flags & 2u) ? cb : load_as<C>(b[ob]));
    y[i] = store_as<T>(v);
  }
}

// ---- extern "C" instantiations: two kernels per op and storage type, named after the op ----
#define PW_INST_UNARY(name, sfx, T)                                                                    \
  extern "C" __global__ void unary_##name##_##sfx(const T* __restrict__ x, T* __restrict__ y, u64 n) { \
    unary_contig<U_##name, T>(x, y, n);                                                                \
  }                                                                                                    \
  extern "C" __global__ void unary_##name##_strided_##sfx(const T* __restrict__ x, T* __restrict__ y,  \
                                                          u32 n, Shape8 shape, Strides8 xs) {          \
    unary_strided<U_##name, T>(x, y, n, shape, xs);                                                    \
  }
#define PW_INST_BINARY(name, sfx, T)                                                                 \
  extern "C" __global__ void binary_##name##_##sfx(const T* __restrict__ a, const T* __restrict__ b, \
                                                   T* __restrict__ y, u64 n, double sa, double sb,   \
                                                   u32 flags) {                                      \
    binary_contig<B_##name, T>(a, b, y, n, sa, sb, flags);                                           \
  }                                                                                                  \
  extern "C" __global__ void binary_##name##_strided_##sfx(                                          \
      const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, u32 n, Shape8 shape,      \
      Strides8 as_, Strides8 bs_, double sa, double sb, u32 flags) {                                 \
    binary_strided<B_##name, T>(a, b, y, n, shape, as_, bs_, sa, sb, flags);                         \
  }

// The op lists carry (name, expression); these bind the storage type for one part each.
#define PW_UNARY_F32(name, expr) PW_INST_UNARY(name, f32, float)
#define PW_UNARY_F64(name, expr) PW_INST_UNARY(name, f64, double)
#define PW_UNARY_BF16(name, expr) PW_INST_UNARY(name, bf16, bf16)
#define PW_UNARY_I32(name, expr) PW_INST_UNARY(name, i32, int)
#define PW_BINARY_F32(name, expr) PW_INST_BINARY(name, f32, float)
#define PW_BINARY_F64(name, expr) PW_INST_BINARY(name, f64, double)
#define PW_BINARY_BF16(name, expr) PW_INST_BINARY(name, bf16, bf16)
#define PW_BINARY_I32(name, expr) PW_INST_BINARY(name, i32, int)

#if PW_PART_ON(0)
PW_UNARY_OPS(PW_UNARY_F32)
#endif
#if PW_PART_ON(1)
PW_UNARY_OPS(PW_UNARY_F64)
#endif
#if PW_PART_ON(2)
PW_UNARY_OPS(PW_UNARY_BF16)
#endif
#if PW_PART_ON(3)
PW_UNARY_OPS(PW_UNARY_I32)
#endif
#if PW_PART_ON(4)
PW_BINARY_OPS(PW_BINARY_F32)
#endif
#if PW_PART_ON(5)
PW_BINARY_OPS(PW_BINARY_F64)
#endif
#if PW_PART_ON(6)
PW_BINARY_OPS(PW_BINARY_BF16)
#endif
#if PW_PART_ON(7)
PW_BINARY_OPS(PW_BINARY_I32)
#endif

#define PW_INST_WHERE2(csfx, CT, sfx, T)                                                                   \
  extern "C" __global__ void where_##csfx##_##sfx(const CT* __restrict__ c, const T* __restrict__ a,     \
                                                  const T* __restrict__ b, T* __restrict__ y, u64 n,     \
                                                  double sa, double sb, u32 flags) {                     \
    where_contig<CT, T>(c, a, b, y, n, sa, sb, flags);                                                   \
  }                                                                                                      \
  extern "C" __global__ void where_strided_##csfx##_##sfx(                                               \
      const CT* __restrict__ c, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,     \
      u32 n, Shape8 shape, Strides8 cs, Strides8 as_, Strides8 bs_, double sa, double sb, u32 flags) {   \
    where_strided<CT, T>(c, a, b, y, n, shape, cs, as_, bs_, sa, sb, flags);                             \
  }
#define PW_INST_WHERE_C(csfx, CT) \
  PW_INST_WHERE2(csfx, CT, f32, float) \
  PW_INST_WHERE2(csfx, CT, f64, double) PW_INST_WHERE2(csfx, CT, bf16, bf16) PW_INST_WHERE2(csfx, CT, i32, int)
#if PW_PART_ON(8)
PW_INST_WHERE_C(f32, float)
PW_INST_WHERE_C(f64, double)
#endif
#if PW_PART_ON(9)
PW_INST_WHERE_C(bf16, bf16)
PW_INST_WHERE_C(i32, int)
#endif

// Reductions over an arbitrary set of axes, and argmax/argmin along one axis.
// The host splits the view's axes into kept axes (the output, row-major) and reduced axes, both
// with their element strides, and picks a mode:
//   row_warp / row_block: the reduced axes hold the input's innermost memory axis, so a warp (or
//     a block) walks one output's reduced elements with coalesced loads, then shuffles.
//   col: the kept axes hold the innermost memory axis; one thread per output walks the reduced
//     elements (coalesced across threads).
// `splits` > 1 cuts each output's reduced range into parts written as partials (accumulator
// type) that a second launch reduces; this keeps the GPU busy when there are few outputs.
// Parts: 0 sum, 1 prod, 2 max, 3 min, 4 argmax/argmin.
#include "common.cuh"

struct RDims {
  u32 kn;
  u32 ksize[PW_MAX_DIMS];
  i64 kstride[PW_MAX_DIMS];
  u32 rn;
  u32 rsize[PW_MAX_DIMS];
  i64 rstride[PW_MAX_DIMS];
};

__device__ __forceinline__ i64 kept_offset(u32 o, const RDims& d) {
  i64 off = 0;
#pragma unroll
  for (int k = PW_MAX_DIMS - 1; k >= 0; --k) {
    if (k < (int)d.kn) {
      u32 n = d.ksize[k];
      u32 q = o / n;
      off += (i64)(o - q * n) * d.kstride[k];
      o = q;
    }
  }
  return off;
}

__device__ __forceinline__ i64 red_offset(u32 r, const RDims& d) {
  if (d.rn == 1) return (i64)r * d.rstride[0];
  i64 off = 0;
#pragma unroll
  for (int k = PW_MAX_DIMS - 1; k >= 0; --k) {
    if (k < (int)d.rn) {
      u32 n = d.rsize[k];
      u32 q = r / n;
      off += (i64)(r - q * n) * d.rstride[k];
      r = q;
    }
  }
  return off;
}

struct OpSum {
  template <typename C> __device__ __forceinline__ static C init() { return (C)0; }
  template <typename C> __device__ __forceinline__ static C f(C a, C b) { return a + b; }
};
struct OpProd {
  template <typename C> __device__ __forceinline__ static C init() { return (C)1; }
  template <typename C> __device__ __forceinline__ static C f(C a, C b) { return a * b; }
};
template <typename C> __device__ __forceinline__ C neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -inf_f(); }
template <> __device__ __forceinline__ double neg_inf<double>() { return -inf_d(); }
struct OpMax {
  template <typename C> __device__ __forceinline__ static C init() { return neg_inf<C>(); }
  template <typename C> __device__ __forceinline__ static C f(C a, C b) { return (a > b || a != a) ? a : b; }
};
struct OpMin {
  template <typename C> __device__ __forceinline__ static C init() { return -neg_inf<C>(); }
  template <typename C> __device__ __forceinline__ static C f(C a, C b) { return (a < b || a != a) ? a : b; }
};

template <class Op, typename C> __device__ __forceinline__ C warp_reduce(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Op::template f<C>(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reduction; every thread gets the result. blockDim.x is a multiple of 32, <= 1024.
template <class Op, typename C> __device__ __forceinline__ C block_reduce(C v) {
  __shared__ C sm[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_reduce<Op, C>(v);
  __syncthreads();
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  v = lane < nw ? sm[lane] : Op::template init<C>();
  return warp_reduce<Op, C>(v);
}

template <class Op, typename In, typename Out>
__device__ __forceinline__ void reduce_row_warp(const In* __restrict__ x, Out* __restrict__ y, u32 nOut, u32 nRed,
                                                u32 splits, u32 chunk, const RDims& d) {
  typedef typename Acc<In>::type C;
  const u64 warps = (u64)gridDim.x * (blockDim.x >> 5);
  const int lane = threadIdx.x & 31;
  for (u64 w = global_thread() >> 5; w < (u64)nOut * splits; w += warps) {
    const u32 o = (u32)(w / splits), p = (u32)(w % splits);
    const In* xo = x + kept_offset(o, d);
    const u32 start = p * chunk;
    const u32 end = min(nRed, start + chunk);
    C acc = Op::template init<C>();
    if (d.rn == 1) {
      const i64 s = d.rstride[0];
      for (u32 r = start + lane; r < end; r += 32) acc = Op::template f<C>(acc, load_as<C>(xo[(i64)r * s]));
    } else {
      for (u32 r = start + lane; r < end; r += 32) acc = Op::template f<C>(acc, load_as<C>(xo[red_offset(r, d)]));
    }
    acc = warp_reduce<Op, C>(acc);
    if (lane == 0) y[w] = store_as<Out>(acc);
  }
}

template <class Op, typename In, typename Out>
__device__ __forceinline__ void reduce_row_block(const In* __restrict__ x, Out* __restrict__ y, u32 nOut, u32 nRed,
                                                 u32 splits, u32 chunk, const RDims& d) {
  typedef typename Acc<In>::type C;
  for (u64 w = blockIdx.x; w < (u64)nOut * splits; w += gridDim.x) {
    const u32 o = (u32)(w / splits), p = (u32)(w % splits);
    const In* xo = x + kept_offset(o, d);
    const u32 start = p * chunk;
    const u32 end = min(nRed, start + chunk);
    C a0 = Op::template init<C>(), a1 = a0, a2 = a0, a3 = a0;
    const u32 bd = blockDim.x;
    const int W = VecWidth<In>::value;
    const In* base = xo + start;
    const u32 len = end > start ? end - start : 0u;
    if (d.rn == 1 && d.rstride[0] == 1 && (((u64)base) & 15u) == 0 && len >= (u32)W) {
      // 16-byte vector loads, two in flight per thread, then the scalar tail.
      typedef Vec<In, W> V;
      const V* __restrict__ bv = reinterpret_cast<const V*>(base);
      const u32 nv = len / W;
      u32 v = threadIdx.x;
      for (; v + bd < nv; v += 2 * bd) {
        const V x0 = bv[v], x1 = bv[v + bd];
#pragma unroll
        for (int k = 0; k < W; ++k) {
          a0 = Op::template f<C>(a0, load_as<C>(x0.v[k]));
          a1 = Op::template f<C>(a1, load_as<C>(x1.v[k]));
        }
      }
      if (v < nv) {
        const V x0 = bv[v];
#pragma unroll
        for (int k = 0; k < W; ++k) a2 = Op::template f<C>(a2, load_as<C>(x0.v[k]));
      }
      for (u32 r = nv * W + threadIdx.x; r < len; r += bd) a3 = Op::template f<C>(a3, load_as<C>(base[r]));
    } else if (d.rn == 1 && d.rstride[0] == 1) {
      u32 r = start + threadIdx.x;
      for (; r + 3 * bd < end; r += 4 * bd) {
        a0 = Op::template f<C>(a0, load_as<C>(xo[r]));
        a1 = Op::template f<C>(a1, load_as<C>(xo[r + bd]));
        a2 = Op::template f<C>(a2, load_as<C>(xo[r + 2 * bd]));
        a3 = Op::template f<C>(a3, load_as<C>(xo[r + 3 * bd]));
      }
      for (; r < end; r += bd) a0 = Op::template f<C>(a0, load_as<C>(xo[r]));
    } else {
      for (u32 r = start + threadIdx.x; r < end; r += bd) a0 = Op::template f<C>(a0, load_as<C>(xo[red_offset(r, d)]));
    }
    C acc = Op::template f<C>(Op::template f<C>(a0, a1), Op::template f<C>(a2, a3));
    acc = block_reduce<Op, C>(acc);
    if (threadIdx.x == 0) y[w] = store_as<Out>(acc);
  }
}

template <class Op, typename In, typename Out>
__device__ __forceinline__ void reduce_col(const In* __restrict__ x, Out* __restrict__ y, u32 nOut, u32 nRed,
                                           u32 splits, u32 chunk, const RDims& d) {
  typedef typename Acc<In>::type C;
  for (u64 t = global_thread(); t < (u64)nOut * splits; t += grid_threads()) {
    const u32 o = (u32)(t % nOut), p = (u32)(t / nOut);
    const In* xo = x + kept_offset(o, d);
    const u32 start = p * chunk;
    const u32 end = min(nRed, start + chunk);
    C acc = Op::template init<C>();
    if (d.rn == 1) {
      const i64 s = d.rstride[0];
      for (u32 r = start; r < end; ++r) acc = Op::template f<C>(acc, load_as<C>(xo[(i64)r * s]));
    } else {
      for (u32 r = start; r < end; ++r) acc = Op::template f<C>(acc, load_as<C>(xo[red_offset(r, d)]));
    }
    y[(u64)o * splits + p] = store_as<Out>(acc);
  }
}

#define PW_INST_REDUCE(opname, Op, isfx, In, osfx, Out)                                                      \
  extern "C" __global__ void reduce_row_warp_##opname##_##isfx##_##osfx(                                    \
      const In* __restrict__ x, Out* __restrict__ y, u32 nOut, u32 nRed, u32 splits, u32 chunk, RDims d) {  \
    reduce_row_warp<Op, In, Out>(x, y, nOut, nRed, splits, chunk, d);                                       \
  }                                                                                                         \
  extern "C" __global__ void reduce_row_block_##opname##_##isfx##_##osfx(                                   \
      const In* __restrict__ x, Out* __restrict__ y, u32 nOut, u32 nRed, u32 splits, u32 chunk, RDims d) {  \
    reduce_row_block<Op, In, Out>(x, y, nOut, nRed, splits, chunk, d);                                      \
  }                                                                                                         \
  extern "C" __global__ void reduce_col_##opname##_##isfx##_##osfx(                                         \
      const In* __restrict__ x, Out* __restrict__ y, u32 nOut, u32 nRed, u32 splits, u32 chunk, RDims d) {  \
    reduce_col<Op, In, Out>(x, y, nOut, nRed, splits, chunk, d);                                            \
  }
// Pairs: same type; partials in the accumulator type (bf16 -> f32, i32 -> f64); and back.
#define PW_INST_REDUCE_OP(opname, Op)                          \
  PW_INST_REDUCE(opname, Op, f32, float, f32, float)           \
  PW_INST_REDUCE(opname, Op, f64, double, f64, double)         \
  PW_INST_REDUCE(opname, Op, bf16, bf16, bf16, bf16)           \
  PW_INST_REDUCE(opname, Op, i32, int, i32, int)               \
  PW_INST_REDUCE(opname, Op, bf16, bf16, f32, float)           \
  PW_INST_REDUCE(opname, Op, i32, int, f64, double)            \
  PW_INST_REDUCE(opname, Op, f32, float, bf16, bf16)           \
  PW_INST_REDUCE(opname, Op, f64, double, i32, int)
#if PW_PART_ON(0)
PW_INST_REDUCE_OP(sum, OpSum)
#endif
#if PW_PART_ON(1)
PW_INST_REDUCE_OP(prod, OpProd)
#endif
#if PW_PART_ON(2)
PW_INST_REDUCE_OP(max, OpMax)
#endif
#if PW_PART_ON(3)
PW_INST_REDUCE_OP(min, OpMin)
#endif

// ---- argmax / argmin along one axis (d.rn == 1: that axis; kept dims: the rest) ----
// Ties pick the smaller index; NaN counts as the extreme (first NaN wins), as NumPy does.
template <bool IsMax, typename C>
__device__ __forceinline__ bool arg_better(C v1, u32 i1, C v2, u32 i2) {
  if (i2 == 0xffffffffu) return i1 != 0xffffffffu;
  if (i1 == 0xffffffffu) return false;
  const bool n1 = v1 != v1, n2 = v2 != v2;
  if (n1 || n2) return n1 && (!n2 || i1 < i2);
  if (IsMax ? v1 > v2 : v1 < v2) return true;
  if (v1 == v2) return i1 < i2;
  return false;
}

template <bool IsMax, typename T>
__device__ __forceinline__ void arg_row_block(const T* __restrict__ x, int* __restrict__ y, u32 nOut, u32 n,
                                              const RDims& d) {
  typedef typename Acc<T>::type C;
  __shared__ C sv[32];
  __shared__ u32 si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const i64 s = d.rstride[0];
  for (u32 o = blockIdx.x; o < nOut; o += gridDim.x) {
    const T* xo = x + kept_offset(o, d);
    C bv = (C)0;
    u32 bi = 0xffffffffu;
    for (u32 r = threadIdx.x; r < n; r += blockDim.x) {
      C v = load_as<C>(xo[(i64)r * s]);
      if (arg_better<IsMax, C>(v, r, bv, bi)) {
        bv = v;
        bi = r;
      }
    }
#pragma unroll
    for (int k = 16; k > 0; k >>= 1) {
      C ov = __shfl_xor_sync(0xffffffffu, bv, k);
      u32 oi = __shfl_xor_sync(0xffffffffu, bi, k);
      if (arg_better<IsMax, C>(ov, oi, bv, bi)) {
        bv = ov;
        bi = oi;
      }
    }
    __syncthreads();
    if (lane == 0) {
      sv[warp] = bv;
      si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
      bv = lane < nw ? sv[lane] : (C)0;
      bi = lane < nw ? si[lane] : 0xffffffffu;
#pragma unroll
      for (int k = 16; k > 0; k >>= 1) {
        C ov = __shfl_xor_sync(0xffffffffu, bv, k);
        u32 oi = __shfl_xor_sync(0xffffffffu, bi, k);
        if (arg_better<IsMax, C>(ov, oi, bv, bi)) {
          bv = ov;
          bi = oi;
        }
      }
      if (lane == 0) y[o] = bi == 0xffffffffu ? 0 : (int)bi;
    }
  }
}

template <bool IsMax, typename T>
__device__ __forceinline__ void arg_col(const T* __restrict__ x, int* __restrict__ y, u32 nOut, u32 n,
                                        const RDims& d) {
  typedef typename Acc<T>::type C;
  const i64 s = d.rstride[0];
  for (u64 o = global_thread(); o < nOut; o += grid_threads()) {
    const T* xo = x + kept_offset((u32)o, d);
    C bv = (C)0;
    u32 bi = 0xffffffffu;
    for (u32 r = 0; r < n; ++r) {
      C v = load_as<C>(xo[(i64)r * s]);
      if (arg_better<IsMax, C>(v, r, bv, bi)) {
        bv = v;
        bi = r;
      }
    }
    y[o] = bi == 0xffffffffu ? 0 : (int)bi;
  }
}

#define PW_INST_ARG(sfx, T)                                                                                   \
  extern "C" __global__ void argmax_row_##sfx(const T* __restrict__ x, int* __restrict__ y, u32 nOut, u32 n, \
                                              RDims d) {                                                     \
    arg_row_block<true, T>(x, y, nOut, n, d);                                                                \
  }                                                                                                          \
  extern "C" __global__ void argmin_row_##sfx(const T* __restrict__ x, int* __restrict__ y, u32 nOut, u32 n, \
                                              RDims d) {                                                     \
    arg_row_block<false, T>(x, y, nOut, n, d);                                                               \
  }                                                                                                          \
  extern "C" __global__ void argmax_col_##sfx(const T* __restrict__ x, int* __restrict__ y, u32 nOut, u32 n, \
                                              RDims d) {                                                     \
    arg_col<true, T>(x, y, nOut, n, d);                                                                      \
  }                                                                                                          \
  extern "C" __global__ void argmin_col_##sfx(const T* __restrict__ x, int* __restrict__ y, u32 nOut, u32 n, \
                                              RDims d) {                                                     \
    arg_col<false, T>(x, y, nOut, n, d);                                                                     \
  }
#if PW_PART_ON(4)
PW_INST_ARG(f32, float)
PW_INST_ARG(f64, double)
PW_INST_ARG(bf16, bf16)
PW_INST_ARG(i32, int)
#endif

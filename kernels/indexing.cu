// gather and scatter-add along one axis. Index tensors are int32 with the same rank as the data;
// a negative index counts from the end; an index still out of range reads 0 (gather) or is
// dropped (scatter-add) rather than touching memory outside the tensor.
#include "common.cuh"

// y[i] = x[coords(i) with coords[axis] = idx[coords(i)]]; i over idx's shape (y contiguous).
template <typename T>
__device__ __forceinline__ void gather(const T* __restrict__ x, const int* __restrict__ idx, T* __restrict__ y,
                                       u32 n, Shape8 shape, Strides8 xs, Strides8 is, u32 axis, u32 axisSize) {
  for (u64 t = global_thread(); t < n; t += grid_threads()) {
    u32 i = (u32)t;
    i64 xo = 0, io = 0;
#pragma unroll
    for (int d = PW_MAX_DIMS - 1; d >= 0; --d) {
      if (d < (int)shape.ndim) {
        const u32 sz = shape.size[d];
        const u32 q = i / sz;
        const i64 c = (i64)(i - q * sz);
        i = q;
        io += c * is.s[d];
        if (d != (int)axis) xo += c * xs.s[d];
      }
    }
    i64 j = idx[io];
    if (j < 0) j += axisSize;
    if (j < 0 || j >= (i64)axisSize) {
      y[t] = store_as<T>((typename Acc<T>::type)0);
    } else {
      y[t] = x[xo + j * xs.s[axis]];
    }
  }
}

// out[coords(i) with coords[axis] = idx[coords(i)]] += src[coords(i)]; i over src's shape.
template <typename S, typename A>
__device__ __forceinline__ void scatter_add(const S* __restrict__ src, const int* __restrict__ idx, A* __restrict__ out,
                                            u32 n, Shape8 shape, Strides8 ss, Strides8 is, Strides8 os, u32 axis,
                                            u32 axisSize) {
  for (u64 t = global_thread(); t < n; t += grid_threads()) {
    u32 i = (u32)t;
    i64 so = 0, io = 0, oo = 0;
#pragma unroll
    for (int d = PW_MAX_DIMS - 1; d >= 0; --d) {
      if (d < (int)shape.ndim) {
        const u32 sz = shape.size[d];
        const u32 q = i / sz;
        const i64 c = (i64)(i - q * sz);
        i = q;
        so += c * ss.s[d];
        io += c * is.s[d];
        if (d != (int)axis) oo += c * os.s[d];
      }
    }
    i64 j = idx[io];
    if (j < 0) j += axisSize;
    if (j >= 0 && j < (i64)axisSize) {
      atomicAdd(out + oo + j * os.s[axis], load_as<typename Acc<S>::type>(src[so]));
    }
  }
}


#define PW_INST_GATHER(sfx, T)                                                                              \
  extern "C" __global__ void gather_##sfx(const T* __restrict__ x, const int* __restrict__ idx,            \
                                          T* __restrict__ y, u32 n, Shape8 shape, Strides8 xs, Strides8 is, \
                                          u32 axis, u32 axisSize) {                                         \
    gather<T>(x, idx, y, n, shape, xs, is, axis, axisSize);                                                 \
  }
PW_INST_GATHER(f32, float)
PW_INST_GATHER(f64, double)
PW_INST_GATHER(bf16, bf16)
PW_INST_GATHER(i32, int)

// float and bfloat16 sources accumulate into float, float64 into double, int32 into int (through
// the double accumulator's exact small-integer values).
extern "C" __global__ void scatter_add_f32(const float* __restrict__ src, const int* __restrict__ idx,
                                           float* __restrict__ out, u32 n, Shape8 shape, Strides8 ss, Strides8 is,
                                           Strides8 os, u32 axis, u32 axisSize) {
  scatter_add<float, float>(src, idx, out, n, shape, ss, is, os, axis, axisSize);
}
extern "C" __global__ void scatter_add_bf16(const bf16* __restrict__ src, const int* __restrict__ idx,
                                            float* __restrict__ out, u32 n, Shape8 shape, Strides8 ss, Strides8 is,
                                            Strides8 os, u32 axis, u32 axisSize) {
  scatter_add<bf16, float>(src, idx, out, n, shape, ss, is, os, axis, axisSize);
}
extern "C" __global__ void scatter_add_f64(const double* __restrict__ src, const int* __restrict__ idx,
                                           double* __restrict__ out, u32 n, Shape8 shape, Strides8 ss, Strides8 is,
                                           Strides8 os, u32 axis, u32 axisSize) {
  scatter_add<double, double>(src, idx, out, n, shape, ss, is, os, axis, axisSize);
}
extern "C" __global__ void scatter_add_i32(const int* __restrict__ src, const int* __restrict__ idx,
                                           double* __restrict__ out, u32 n, Shape8 shape, Strides8 ss, Strides8 is,
                                           Strides8 os, u32 axis, u32 axisSize) {
  scatter_add<int, double>(src, idx, out, n, shape, ss, is, os, axis, axisSize);
}

// SwiGLU's gating (FusedPrimitives.swiglu / swigluBackward), elementwise:
//   y = silu(gate)·up = gate·σ(gate)·up
//   dgate = g·up·σ(gate)·(1 + gate·(1 − σ(gate))),  dup = g·gate·σ(gate)
#include "common.cuh"

template <typename C> __device__ __forceinline__ C w_sigmoid(C x);
template <> __device__ __forceinline__ float w_sigmoid<float>(float x) { return 1.0f / (1.0f + expf(-x)); }
template <> __device__ __forceinline__ double w_sigmoid<double>(double x) { return 1.0 / (1.0 + exp(-x)); }

template <typename T>
__device__ void swiglu_fwd(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ y, u64 n) {
  typedef typename Acc<T>::type C;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    const C a = load_as<C>(gate[i]);
    y[i] = store_as<T>(a * w_sigmoid<C>(a) * load_as<C>(up[i]));
  }
}

template <typename T>
__device__ void swiglu_bwd(const T* __restrict__ gate, const T* __restrict__ up, const T* __restrict__ g,
                           T* __restrict__ dgate, T* __restrict__ dup, u64 n) {
  typedef typename Acc<T>::type C;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    const C a = load_as<C>(gate[i]), u = load_as<C>(up[i]), gy = load_as<C>(g[i]);
    const C s = w_sigmoid<C>(a);
    dgate[i] = store_as<T>(gy * u * s * ((C)1 + a * ((C)1 - s)));
    dup[i] = store_as<T>(gy * a * s);
  }
}

#define PW_INST_SWIGLU(sfx, T)                                                                           \
  extern "C" __global__ void swiglu_fwd_##sfx(const T* gate, const T* up, T* y, u64 n) {                 \
    swiglu_fwd<T>(gate, up, y, n);                                                                       \
  }                                                                                                      \
  extern "C" __global__ void swiglu_bwd_##sfx(const T* gate, const T* up, const T* g, T* dgate, T* dup,  \
                                              u64 n) {                                                   \
    swiglu_bwd<T>(gate, up, g, dgate, dup, n);                                                           \
  }
PW_INST_SWIGLU(f32, float)
PW_INST_SWIGLU(bf16, bf16)
PW_INST_SWIGLU(f64, double)

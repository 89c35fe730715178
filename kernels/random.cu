// Counter-based random numbers: Philox4x32-10 (Random123), bit-identical to the CPU backend.
// Element i uses counter c = offset + i as words (c mod 2^32, c / 2^32, 0, 0) and key
// (seed mod 2^32, seed / 2^32 mod 2^32). uniform: (x0 + 0.5) * 2^-32 in double;
// normal: sqrt(-2 ln u1) * cos(2 pi u2), u1 from x0 and u2 from x1, in double.
#include "common.cuh"

struct U4 {
  u32 x0, x1, x2, x3;
};

__device__ __forceinline__ U4 philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const u32 lo0 = 0xD2511F53u * c0;
    const u32 hi0 = __umulhi(0xD2511F53u, c0);
    const u32 lo1 = 0xCD9E8D57u * c2;
    const u32 hi1 = __umulhi(0xCD9E8D57u, c2);
    const u32 n0 = hi1 ^ c1 ^ k0;
    const u32 n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  U4 r;
  r.x0 = c0;
  r.x1 = c1;
  r.x2 = c2;
  r.x3 = c3;
  return r;
}

__device__ __forceinline__ double to_unit(u32 x) { return ((double)x + 0.5) * 2.3283064365386963e-10; }

template <typename T>
__device__ __forceinline__ void random_uniform(T* __restrict__ out, u64 n, u32 k0, u32 k1, u64 offset) {
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    const u64 c = offset + i;
    U4 r = philox4x32_10((u32)c, (u32)(c >> 32), 0u, 0u, k0, k1);
    out[i] = store_as<T>(to_unit(r.x0));
  }
}

template <typename T>
__device__ __forceinline__ void random_normal(T* __restrict__ out, u64 n, u32 k0, u32 k1, u64 offset) {
  const double two_pi = 2.0 * 3.141592653589793;
  for (u64 i = global_thread(); i < n; i += grid_threads()) {
    const u64 c = offset + i;
    U4 r = philox4x32_10((u32)c, (u32)(c >> 32), 0u, 0u, k0, k1);
    const double u1 = to_unit(r.x0), u2 = to_unit(r.x1);
    const double z = sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
    out[i] = store_as<T>(z);
  }
}

#define PW_INST_RANDOM(sfx, T)                                                                               \
  extern "C" __global__ void random_uniform_##sfx(T* __restrict__ out, u64 n, u32 k0, u32 k1, u64 offset) { \
    random_uniform<T>(out, n, k0, k1, offset);                                                             \
  }                                                                                                        \
  extern "C" __global__ void random_normal_##sfx(T* __restrict__ out, u64 n, u32 k0, u32 k1, u64 offset) {  \
    random_normal<T>(out, n, k0, k1, offset);                                                              \
  }
PW_INST_RANDOM(f32, float)
PW_INST_RANDOM(f64, double)
PW_INST_RANDOM(bf16, bf16)
PW_INST_RANDOM(i32, int)

// The diagonal linear recurrence of a selective state-space model (src/lm/ssm_scan.ts, whose
// linearScanHost is the CPU path of this kernel):
//   forward  h[t] = a[t]·h[t−1] + b[t],  h[−1] = h0
//   reverse  h[t] = a[t]·h[t+1] + b[t],  h[T]  = h0
// over contiguous [batch, T, N] arrays (h0: [batch, N], or null for zeros), in float64 whatever
// the storage type, each state rounded once when stored.
//
// One block per (batch, n) column, parallel over time: thread j of the block owns the j-th chunk
// of steps.
//   1. each thread runs its chunk from a zero state, giving the chunk as an affine map
//      s -> P·s + S (P the product of its a's, S its end state);
//   2. the block scans these maps in shared memory (composition is associative:
//      (P2, S2)∘(P1, S1) = (P2·P1, P2·S1 + S2)), giving each chunk the state entering it;
//   3. each thread runs its chunk again from that state and stores every step.
// The steps inside a chunk are the host path's operations (one rounded multiply, one rounded add,
// no fused multiply-add); the states entering the chunks are the same products regrouped, so the
// two paths agree to rounding (bit for bit where the column fits one chunk).
#include "common.cuh"

#define PW_SSM_THREADS 256

template <typename T>
__device__ __forceinline__ void ssm_scan(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ h0,
                                         T* __restrict__ h, u32 batch, u32 L, u32 N, int reverse) {
  __shared__ double sp[PW_SSM_THREADS];
  __shared__ double ss[PW_SSM_THREADS];
  const u32 nt = blockDim.x;
  const u32 chunk = (L + nt - 1) / nt;
  for (u64 col = blockIdx.x; col < (u64)batch * N; col += gridDim.x) {
    const u64 bi = col / N, n = col % N;
    const u64 base = bi * (u64)L * N + n;
    // Chunk j covers steps k in [k0, k1) of the walk (k = t forward, k = T − 1 − t reverse).
    const u32 k0 = min(L, threadIdx.x * chunk), k1 = min(L, k0 + chunk);
    double p = 1.0, s = 0.0;
    for (u32 k = k0; k < k1; ++k) {
      const u64 i = base + (u64)(reverse ? L - 1 - k : k) * N;
      const double ak = load_as<double>(a[i]);
      p = __dmul_rn(ak, p);
      s = __dadd_rn(__dmul_rn(ak, s), load_as<double>(b[i]));
    }
    sp[threadIdx.x] = p;
    ss[threadIdx.x] = s;
    __syncthreads();
    // Inclusive scan of the maps (Hillis–Steele): after it, thread j holds chunks 0..j composed.
    for (u32 o = 1; o < nt; o <<= 1) {
      double pp = 1.0, ps = 0.0;
      const bool take = threadIdx.x >= o;
      if (take) {
        pp = sp[threadIdx.x - o];
        ps = ss[threadIdx.x - o];
      }
      __syncthreads();
      if (take) {
        ss[threadIdx.x] = __dadd_rn(__dmul_rn(sp[threadIdx.x], ps), ss[threadIdx.x]);
        sp[threadIdx.x] = __dmul_rn(sp[threadIdx.x], pp);
      }
      __syncthreads();
    }
    const double start = h0 ? load_as<double>(h0[col]) : 0.0;
    double state = start;
    if (threadIdx.x > 0) state = __dadd_rn(__dmul_rn(sp[threadIdx.x - 1], start), ss[threadIdx.x - 1]);
    for (u32 k = k0; k < k1; ++k) {
      const u64 i = base + (u64)(reverse ? L - 1 - k : k) * N;
      state = __dadd_rn(__dmul_rn(load_as<double>(a[i]), state), load_as<double>(b[i]));
      h[i] = store_as<T>(state);
    }
    __syncthreads();
  }
}

#define PW_INST_SSM_SCAN(sfx, T)                                                                              \
  extern "C" __global__ void ssm_scan_##sfx(const T* __restrict__ a, const T* __restrict__ b,                 \
                                            const T* __restrict__ h0, T* __restrict__ h, u32 batch, u32 L,   \
                                            u32 N, int reverse) {                                           \
    ssm_scan<T>(a, b, h0, h, batch, L, N, reverse);                                                         \
  }
PW_INST_SSM_SCAN(f32, float)
PW_INST_SSM_SCAN(f64, double)
PW_INST_SSM_SCAN(bf16, bf16)

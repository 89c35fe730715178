// Attention in the flash-attention manner (FusedPrimitives.attention / attentionBackward): an online
// softmax over tiles of keys staged in shared memory, so no Tq x Tk matrix exists in global memory.
// Grouped-query heads (query head h reads key/value head h / (HQ/HKV)), a causal mask whose first
// query sits at `qoff` among the keys, and an optional sliding window (window < 0: none).
//
// Layouts (contiguous): q [B, HQ, TQ, D], k [B, HKV, TK, D], v [B, HKV, TK, DV], out [B, HQ, TQ, DV],
// lse [B, HQ, TQ] (the compute type: float for float32/bfloat16, double for float64).
//
// Forward and dQ: a warp per query row; a block holds ROWS rows of one key/value head (the rows of
// its grouped query heads side by side), so they share each key tile. dK/dV: a warp per key row,
// the query rows streamed through shared memory in tiles; no atomics. Each lane holds DPL of the
// head's columns (DPL = ceil(width / 32), instantiated for 1, 2, 4, 8: widths up to 256).
// The host passes the tile length bk and sizes the dynamic shared memory to match. Grids are 1-D:
// block x covers tile x % tiles of the rows of (batch, key/value head) x / tiles.
#include "common.cuh"

#define ROWS 8

template <typename C> __device__ __forceinline__ C a_exp(C x);
template <> __device__ __forceinline__ float a_exp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double a_exp<double>(double x) { return exp(x); }
template <typename C> __device__ __forceinline__ C a_log(C x);
template <> __device__ __forceinline__ float a_log<float>(float x) { return logf(x); }
template <> __device__ __forceinline__ double a_log<double>(double x) { return log(x); }
template <typename C> __device__ __forceinline__ C a_ninf();
template <> __device__ __forceinline__ float a_ninf<float>() { return -inf_f(); }
template <> __device__ __forceinline__ double a_ninf<double>() { return -inf_d(); }

// Passed by value in one parameter slot: 64 bytes, laid out as the host writes them.
struct AttnDims {
  u32 B, HQ, HKV, TQ, TK, D, DV, pad;
  u64 qoff;
  i64 window;
  u32 causal, bk;
  double scale;
};

// Keys [first, last] that query i sees (last < first: none).
__device__ __forceinline__ void key_range(const AttnDims& a, u32 i, i64& first, i64& last) {
  last = (i64)a.TK - 1;
  first = 0;
  if (a.causal) {
    const i64 pos = (i64)a.qoff + i;
    if (pos < last) last = pos;
    if (a.window >= 0 && pos - a.window + 1 > 0) first = pos - a.window + 1;
  }
}

// Loads rows [j0, j0 + n) of a [.., rows, width] slab into shared memory as C.
template <typename T, typename C>
__device__ __forceinline__ void stage(const T* __restrict__ src, C* dst, u64 base, i64 j0, u32 n, u32 width) {
  for (u32 e = threadIdx.x; e < n * width; e += blockDim.x) dst[e] = load_as<C>(src[(base + j0) * width + e]);
}

// Loads a row of `width` columns into each lane's DPL registers (zeros past the width).
template <typename T, typename C, int DPL>
__device__ __forceinline__ void row_regs(const T* __restrict__ src, u64 row, u32 width, C* r) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const u32 c = lane + 32 * t;
    r[t] = c < width ? load_as<C>(src[row * width + c]) : (C)0;
  }
}

// Σ_c a[c]·s[c] over the warp (a in registers, s a row in shared memory).
template <typename C, int DPL>
__device__ __forceinline__ C warp_dot(const C* a, const C* s, u32 width) {
  const int lane = threadIdx.x & 31;
  C part = 0;
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const u32 c = lane + 32 * t;
    if (c < width) part += a[t] * s[c];
  }
  return warp_sum(part);
}

// acc[u] += p·s[c] over the lane's columns c < width.
template <typename C, int DPL>
__device__ __forceinline__ void lane_axpy(C* acc, C p, const C* s, u32 width) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < DPL; ++u) {
    const u32 c = lane + 32 * u;
    if (c < width) acc[u] += p * s[c];
  }
}

// dst[row·width + c] = acc[u]·f over the lane's columns.
template <typename T, typename C, int DPL>
__device__ __forceinline__ void store_lanes(T* __restrict__ dst, u64 row, const C* acc, C f, u32 width) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < DPL; ++u) {
    const u32 c = lane + 32 * u;
    if (c < width) dst[row * width + c] = store_as<T>(acc[u] * f);
  }
}

// The query rows of this block: ROWS consecutive (group, query) rows of key/value head kvh.
struct RowInfo {
  bool valid;
  u32 i;     // query index
  u64 qrow;  // row of q / out / lse
};

__device__ __forceinline__ RowInfo row_info(const AttnDims& a, u32 b, u32 kvh, u32 r) {
  const u32 G = a.HQ / a.HKV;
  RowInfo info;
  info.valid = r < G * a.TQ;
  const u32 g = info.valid ? r / a.TQ : 0, i = info.valid ? r % a.TQ : 0;
  info.i = i;
  info.qrow = ((u64)b * a.HQ + (u64)kvh * G + g) * a.TQ + i;
  return info;
}

// The union of the key ranges of the block's rows.
__device__ __forceinline__ void block_keys(const AttnDims& a, u32 r0, i64& lo, i64& hi) {
  const u32 rows = (a.HQ / a.HKV) * a.TQ;
  lo = (i64)a.TK;
  hi = -1;
  for (u32 r = r0; r < r0 + ROWS && r < rows; ++r) {
    i64 f, l;
    key_range(a, r % a.TQ, f, l);
    if (f < lo) lo = f;
    if (l > hi) hi = l;
  }
}

// The block of ROWS query rows this block handles: its (batch, key/value head), first row, and
// the calling warp's row.
struct QueryBlock {
  u32 b, kvh, r0;
  RowInfo me;
};

__device__ __forceinline__ QueryBlock query_block(const AttnDims& a) {
  const u32 tiles = ((a.HQ / a.HKV) * a.TQ + ROWS - 1) / ROWS, bh = blockIdx.x / tiles;
  QueryBlock qb;
  qb.b = bh / a.HKV;
  qb.kvh = bh % a.HKV;
  qb.r0 = (blockIdx.x % tiles) * ROWS;
  qb.me = row_info(a, qb.b, qb.kvh, qb.r0 + (threadIdx.x >> 5));
  return qb;
}

// Walks the key tiles the block's rows see, staging each tile of k and v in shared memory (ks,
// vs), and calls visit(t) for every key t of a tile that the warp's own row sees.
template <typename T, typename C, typename F>
__device__ __forceinline__ void key_tiles(const AttnDims& a, const QueryBlock& qb, const T* __restrict__ k,
                                          const T* __restrict__ v, C* ks, C* vs, F visit) {
  i64 first, last, lo, hi;
  key_range(a, qb.me.i, first, last);
  block_keys(a, qb.r0, lo, hi);
  const u64 kvBase = ((u64)qb.b * a.HKV + qb.kvh) * a.TK;
  for (i64 j0 = lo; j0 <= hi; j0 += a.bk) {
    const u32 n = (u32)min((i64)a.bk, hi - j0 + 1);
    __syncthreads();
    stage<T, C>(k, ks, kvBase, j0, n, a.D);
    stage<T, C>(v, vs, kvBase, j0, n, a.DV);
    __syncthreads();
    if (!qb.me.valid) continue;
    for (u32 t = 0; t < n; ++t) {
      const i64 j = j0 + t;
      if (j >= first && j <= last) visit(t);
    }
  }
}

template <typename T, int DPL>
__device__ void attn_fwd(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ out,
                         typename Acc<T>::type* __restrict__ lse, AttnDims a) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char smem[];
  C* ks = (C*)smem;
  C* vs = ks + (u64)a.bk * a.D;
  const C scale = (C)a.scale;
  const u32 lane = threadIdx.x & 31;
  const QueryBlock qb = query_block(a);
  C qr[DPL], acc[DPL];
  row_regs<T, C, DPL>(q, qb.me.qrow, a.D, qr);
#pragma unroll
  for (int t = 0; t < DPL; ++t) acc[t] = 0;
  C m = a_ninf<C>(), l = 0;
  key_tiles<T, C>(a, qb, k, v, ks, vs, [&](u32 t) {
    const C s = warp_dot<C, DPL>(qr, ks + (u64)t * a.D, a.D) * scale;
    if (s > m) {
      const C rescale = a_exp<C>(m - s);
      l *= rescale;
#pragma unroll
      for (int u = 0; u < DPL; ++u) acc[u] *= rescale;
      m = s;
    }
    const C p = a_exp<C>(s - m);
    l += p;
    lane_axpy<C, DPL>(acc, p, vs + (u64)t * a.DV, a.DV);
  });
  if (!qb.me.valid) return;
  store_lanes<T, C, DPL>(out, qb.me.qrow, acc, (C)1 / l, a.DV);
  if (lane == 0) lse[qb.me.qrow] = m + a_log<C>(l);
}

// delta[row] = Σ_c g·out over a query row (a warp per row, grid-stride): the softmax backward's row term.
template <typename T, int DPL>
__device__ void attn_delta(const T* __restrict__ out, const T* __restrict__ g, typename Acc<T>::type* __restrict__ delta,
                           u64 rows, u32 DV) {
  typedef typename Acc<T>::type C;
  for (u64 row = global_thread() >> 5; row < rows; row += grid_threads() >> 5) {
    C o[DPL], gr[DPL];
    row_regs<T, C, DPL>(out, row, DV, o);
    row_regs<T, C, DPL>(g, row, DV, gr);
    C part = 0;
#pragma unroll
    for (int t = 0; t < DPL; ++t) part += o[t] * gr[t];
    part = warp_sum(part);
    if ((threadIdx.x & 31) == 0) delta[row] = part;
  }
}

// dq for each query row: Σ_j p_ij (dO_i·v_j − delta_i) · scale · k_j, p_ij = exp(s_ij − lse_i).
template <typename T, int DPL>
__device__ void attn_dq(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const T* __restrict__ g, const typename Acc<T>::type* __restrict__ lse,
                        const typename Acc<T>::type* __restrict__ delta, T* __restrict__ dq, AttnDims a) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char smem[];
  C* ks = (C*)smem;
  C* vs = ks + (u64)a.bk * a.D;
  const C scale = (C)a.scale;
  const QueryBlock qb = query_block(a);
  C qr[DPL], gr[DPL], acc[DPL];
  row_regs<T, C, DPL>(q, qb.me.qrow, a.D, qr);
  row_regs<T, C, DPL>(g, qb.me.qrow, a.DV, gr);
#pragma unroll
  for (int t = 0; t < DPL; ++t) acc[t] = 0;
  const C myLse = qb.me.valid ? lse[qb.me.qrow] : (C)0, myDelta = qb.me.valid ? delta[qb.me.qrow] : (C)0;
  key_tiles<T, C>(a, qb, k, v, ks, vs, [&](u32 t) {
    const C p = a_exp<C>(warp_dot<C, DPL>(qr, ks + (u64)t * a.D, a.D) * scale - myLse);
    const C ds = p * (warp_dot<C, DPL>(gr, vs + (u64)t * a.DV, a.DV) - myDelta) * scale;
    lane_axpy<C, DPL>(acc, ds, ks + (u64)t * a.D, a.D);
  });
  if (qb.me.valid) store_lanes<T, C, DPL>(dq, qb.me.qrow, acc, (C)1, a.D);
}

// dk, dv for each key row j of a key/value head, over every query row of its grouped heads that
// sees it: dv_j = Σ p_ij dO_i, dk_j = Σ p_ij (dO_i·v_j − delta_i) · scale · q_i. Query rows are
// staged in tiles of bk: shared holds q and dO rows and their lse and delta.
template <typename T, int DPL>
__device__ void attn_dkdv(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                          const T* __restrict__ g, const typename Acc<T>::type* __restrict__ lse,
                          const typename Acc<T>::type* __restrict__ delta, T* __restrict__ dk, T* __restrict__ dv,
                          AttnDims a) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char smem[];
  C* qs = (C*)smem;
  C* gs = qs + (u64)a.bk * a.D;
  C* ls = gs + (u64)a.bk * a.DV;
  C* ds_ = ls + a.bk;
  const C scale = (C)a.scale;
  const u32 G = a.HQ / a.HKV;
  const u32 tiles = (a.TK + ROWS - 1) / ROWS, bh = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const u32 b = bh / a.HKV, kvh = bh % a.HKV;
  const i64 j = (i64)tile * ROWS + (threadIdx.x >> 5);
  const bool valid = j < (i64)a.TK;
  const u64 krow = ((u64)b * a.HKV + kvh) * a.TK + (valid ? j : 0);
  C kr[DPL], vr[DPL], dka[DPL], dva[DPL];
  row_regs<T, C, DPL>(k, krow, a.D, kr);
  row_regs<T, C, DPL>(v, krow, a.DV, vr);
#pragma unroll
  for (int t = 0; t < DPL; ++t) dka[t] = dva[t] = 0;
  // Queries that may see the block's keys: i >= jmin - qoff (and, with a window, i < jmax - qoff + window).
  const i64 jmin = (i64)tile * ROWS, jmax = jmin + ROWS - 1;
  i64 ilo = 0, ihi = (i64)a.TQ - 1;
  if (a.causal) {
    ilo = max((i64)0, jmin - (i64)a.qoff);
    if (a.window >= 0) ihi = min(ihi, jmax - (i64)a.qoff + a.window - 1);
  }
  for (u32 grp = 0; grp < G; ++grp) {
    const u64 rowBase = ((u64)b * a.HQ + (u64)kvh * G + grp) * a.TQ;
    for (i64 i0 = ilo; i0 <= ihi; i0 += a.bk) {
      const u32 n = (u32)min((i64)a.bk, ihi - i0 + 1);
      __syncthreads();
      stage<T, C>(q, qs, rowBase, i0, n, a.D);
      stage<T, C>(g, gs, rowBase, i0, n, a.DV);
      for (u32 e = threadIdx.x; e < n; e += blockDim.x) {
        ls[e] = lse[rowBase + i0 + e];
        ds_[e] = delta[rowBase + i0 + e];
      }
      __syncthreads();
      if (!valid) continue;
      for (u32 t = 0; t < n; ++t) {
        i64 first, last;
        key_range(a, (u32)(i0 + t), first, last);
        if (j < first || j > last) continue;
        const C p = a_exp<C>(warp_dot<C, DPL>(kr, qs + (u64)t * a.D, a.D) * scale - ls[t]);
        const C ds = p * (warp_dot<C, DPL>(vr, gs + (u64)t * a.DV, a.DV) - ds_[t]) * scale;
        lane_axpy<C, DPL>(dva, p, gs + (u64)t * a.DV, a.DV);
        lane_axpy<C, DPL>(dka, ds, qs + (u64)t * a.D, a.D);
      }
    }
  }
  if (!valid) return;
  store_lanes<T, C, DPL>(dk, krow, dka, (C)1, a.D);
  store_lanes<T, C, DPL>(dv, krow, dva, (C)1, a.DV);
}

#define PW_INST_ATTN(sfx, T, C, DPL)                                                                          \
  extern "C" __global__ void attn_fwd_##sfx##_##DPL(const T* q, const T* k, const T* v, T* out, C* lse,   \
                                                     AttnDims a) {                                         \
    attn_fwd<T, DPL>(q, k, v, out, lse, a);                                                               \
  }                                                                                                       \
  extern "C" __global__ void attn_delta_##sfx##_##DPL(const T* out, const T* g, C* delta, u64 rows, u32 DV) { \
    attn_delta<T, DPL>(out, g, delta, rows, DV);                                                          \
  }                                                                                                       \
  extern "C" __global__ void attn_dq_##sfx##_##DPL(const T* q, const T* k, const T* v, const T* g,        \
                                                    const C* lse, const C* delta, T* dq, AttnDims a) {     \
    attn_dq<T, DPL>(q, k, v, g, lse, delta, dq, a);                                                       \
  }                                                                                                       \
  extern "C" __global__ void attn_dkdv_##sfx##_##DPL(const T* q, const T* k, const T* v, const T* g,      \
                                                      const C* lse, const C* delta, T* dk, T* dv,          \
                                                      AttnDims a) {                                        \
    attn_dkdv<T, DPL>(q, k, v, g, lse, delta, dk, dv, a);                                                 \
  }

#define PW_INST_ATTN_ALL(sfx, T, C) \
  PW_INST_ATTN(sfx, T, C, 1)        \
  PW_INST_ATTN(sfx, T, C, 2)        \
  PW_INST_ATTN(sfx, T, C, 4)        \
  PW_INST_ATTN(sfx, T, C, 8)

#if PW_PART_ON(0)
PW_INST_ATTN_ALL(f32, float, float)
#endif
#if PW_PART_ON(1)
PW_INST_ATTN_ALL(bf16, bf16, float)
#endif
#if PW_PART_ON(2)
PW_INST_ATTN_ALL(f64, double, double)
#endif

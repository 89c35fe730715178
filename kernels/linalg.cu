// Batched dense linear algebra: Cholesky, triangular solves, LU with partial pivoting, solves from
// an LU factorisation, and thin Householder QR. The semantics are those of the CPU backend
// (src/backend/cpu/linalg.ts): same algorithms, same pivot and sign conventions, arithmetic in
// double precision whatever the storage type (float32 results are rounded once, at the end).
//
// One thread block per matrix of the batch (blockIdx.x), one launch for the whole batch. Operands
// are read straight from their strided views: the batch offset comes from the batch shape and
// strides (Shape8/Strides8, shared by every operand of a launch), the matrix element (i, j) is at
// i*rs + j*cs, so transposed, broadcast and reversed operands need no copy. The working matrix
// lives in dynamic shared memory when it fits (rows padded to an odd stride so that column walks
// are free of bank conflicts), else in a global workspace `ws` given by the host (one slice per
// matrix, or the float64 output itself); the code is the same, only the pointer differs. Status
// arrays (info, pivots) are written on the device.
#include "common.cuh"

struct LinDims {
  u32 n;     // order (columns for QR)
  u32 k;     // right-hand sides (triangular and LU solves)
  u32 kc;    // right-hand sides per pass through shared memory
  u32 flags; // trsm: 1 upper (after transposition), 2 unit diagonal; lu_solve: 1 transposed
  u32 count; // matrices in the batch
  u32 m;     // rows (QR)
};

extern __shared__ __align__(16) unsigned char pw_linalg_smem[];

#define PW_FULL 0xffffffffu

__device__ __forceinline__ double pw_lin_inf() { return inf_d(); }

// Copies `total` elements across the block, 8 loads in flight per thread: `load(idx, v)` returns
// whether element idx is wanted (and sets v), `store(idx, v)` writes it.
template <typename L, typename S> __device__ __forceinline__ void block_copy(u32 total, L load, S store) {
  const u32 nt = blockDim.x;
  for (u32 base = threadIdx.x; base < total; base += nt * 8u) {
    double v[8];
    bool ok[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const u32 idx = base + (u32)u * nt;
      ok[u] = idx < total && load(idx, v[u]);
    }
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      if (ok[u]) store(base + (u32)u * nt, v[u]);
    }
  }
}

// Index of the first column c > j owned by warp w when columns are dealt round robin to nw warps.
__device__ __forceinline__ int first_owned(int j, int w, int nw) {
  const int c0 = j + 1;
  const int r = ((w - c0) % nw + nw) % nw;
  return c0 + r;
}

// ------------------------------------------------------------------ triangular solve core

// Solves T'·Y = X' in place for a lower-triangular T' of order n and kc right-hand sides, where
// T'(i, p) = S[sb + i*RS + p*CS] and X'(i, c) = X[xb + i*xrs + c]. Upper-triangular, transposed and
// reversed systems are all this one under a change of strides. Blocks of 32 rows: a warp per
// right-hand side solves the diagonal block with shuffles, then the block updates the rows below.
// Zero coefficients are skipped (as on the CPU, so a zero times an infinity gives no NaN). Ends
// with a block barrier.
__device__ void trsm_core(const double* S, i64 sb, i64 RS, i64 CS, double* X, i64 xb, i64 xrs, int n, int kc,
                          bool unit) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int j0 = 0; j0 < n; j0 += 32) {
    const int jb = min(32, n - j0);
    // Each lane holds the reciprocal of its row's diagonal, so the serial chain is mul, shuffle, fma.
    const double dinv = (unit || lane >= jb) ? 1.0 : 1.0 / S[sb + (i64)(j0 + lane) * (RS + CS)];
    for (int c = warp; c < kc; c += nw) {
      const int i = j0 + lane;
      double val = lane < jb ? X[xb + (i64)i * xrs + c] : 0.0;
      for (int p = 0; p < jb; ++p) {
        const double xp = __shfl_sync(PW_FULL, val * dinv, p);
        if (lane == p) {
          val = xp;
        } else if (lane > p && lane < jb) {
          const double t = S[sb + (i64)i * RS + (i64)(j0 + p) * CS];
          if (t != 0.0) val -= t * xp;
        }
      }
      if (lane < jb) X[xb + (i64)i * xrs + c] = val;
    }
    __syncthreads();
    const int r0 = j0 + jb;
    const int rows = n - r0;
    if (rows > 0) {
      const u32 items = (u32)rows * (u32)kc;
      for (u32 idx = threadIdx.x; idx < items; idx += blockDim.x) {
        const int i = r0 + (int)(idx / (u32)kc);
        const int c = (int)(idx % (u32)kc);
        double v = X[xb + (i64)i * xrs + c];
        const double* trow = S + sb + (i64)i * RS + (i64)j0 * CS;
        for (int p = 0; p < jb; ++p) {
          const double t = trow[(i64)p * CS];
          if (t != 0.0) v -= t * X[xb + (i64)(j0 + p) * xrs + c];
        }
        X[xb + (i64)i * xrs + c] = v;
      }
      __syncthreads();
    }
  }
}

// ------------------------------------------------------------------ Cholesky

// Right-looking, one barrier per column. col[] holds two copies of the current column's updated
// values (double-buffered: step j reads one and writes the next column into the other), so the
// trailing update never reads the column being scaled.
template <typename T>
__device__ __forceinline__ void cholesky_impl(const T* __restrict__ a, const Shape8& bshape, const Strides8& bstr,
                                              i64 rs, i64 cs, T* __restrict__ out, int* __restrict__ info,
                                              double* ws, const LinDims& d) {
  const u32 b = blockIdx.x;
  if (b >= d.count) return;
  const int n = (int)d.n;
  const T* A = a + strided_offset(b, bshape, bstr);
  double* col = (double*)pw_linalg_smem; // 2n
  const int ld = ws ? n : (n | 1);
  double* S = ws ? ws + (u64)b * n * n : col + 2 * n;
  block_copy(
      (u32)(n * n),
      [&](u32 idx, double& v) {
        const int i = (int)(idx / (u32)n), j = (int)(idx % (u32)n);
        if (j > i) return false;
        v = load_as<double>(A[(i64)i * rs + (i64)j * cs]);
        return true;
      },
      [&](u32 idx, double v) {
        const int i = (int)(idx / (u32)n), j = (int)(idx % (u32)n);
        S[i * ld + j] = v;
        if (j == 0) col[i] = v;
      });
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  int fail = 0;
  for (int j = 0; j < n; ++j) {
    const double* cur = col + (j & 1) * n;
    double* nxt = col + ((j + 1) & 1) * n;
    const double dj = cur[j];
    if (!(dj > 0.0 && dj < pw_lin_inf())) {
      fail = j + 1;
      break;
    }
    const double r = rsqrt(dj);
    for (int i = j + (int)threadIdx.x; i < n; i += (int)blockDim.x) S[i * ld + j] = i == j ? dj * r : cur[i] * r;
    for (int i = j + 1 + warp; i < n; i += nw) {
      const double li = cur[i] * r;
      double* row = S + i * ld;
      for (int k = j + 1 + lane; k <= i; k += 32) {
        const double v = row[k] - li * (cur[k] * r);
        row[k] = v;
        if (k == j + 1) nxt[i] = v;
      }
    }
    __syncthreads();
  }
  __syncthreads();
  T* O = out + (u64)b * n * n;
  const int zeroFrom = fail ? fail - 1 : n;
  for (u32 idx = threadIdx.x; idx < (u32)(n * n); idx += blockDim.x) {
    const int i = (int)(idx / (u32)n), k = (int)(idx % (u32)n);
    const double v = (k > i || i >= zeroFrom) ? 0.0 : S[i * ld + k];
    O[idx] = store_as<T>(v);
  }
  if (threadIdx.x == 0) info[b] = fail;
}

// The same right-looking sweep with the matrix in registers, for n ≤ 32·CPT and n ≤ TY·RPT: thread
// (ty, tx) owns rows ty + r·TY and columns tx + 32·c. Per step a thread reads the current column
// (broadcast along a warp, consecutive across lanes) and updates the elements it owns; only the
// column buffer is in shared memory. Two step bodies: HOIST issues every shared load of a step at
// once and updates branch-free (shortest latency: best when a block has its SM nearly to itself,
// measured 53 µs against 88 µs for 64 matrices of order 64 on an H100), the other branches over
// inactive rows (fewer instructions and registers: best when many blocks share an SM, 0.82 ms
// against 1.17 ms for 4096 such matrices). The host picks by batch size.
template <typename T, int TY, int RPT, int CPT, bool HOIST>
__device__ __forceinline__ void cholesky_reg_impl(const T* __restrict__ a, const Shape8& bshape,
                                                  const Strides8& bstr, i64 rs, i64 cs, T* __restrict__ out,
                                                  int* __restrict__ info, const LinDims& d) {
  const u32 b = blockIdx.x;
  if (b >= d.count) return;
  const int n = (int)d.n;
  const T* A = a + strided_offset(b, bshape, bstr);
  double* col = (double*)pw_linalg_smem; // 2n
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  double reg[RPT][CPT];
#pragma unroll
  for (int r = 0; r < RPT; ++r) {
    const int i = ty + r * TY;
#pragma unroll
    for (int c = 0; c < CPT; ++c) {
      const int k = tx + 32 * c;
      reg[r][c] = (i < n && k <= i) ? load_as<double>(A[(i64)i * rs + (i64)k * cs]) : 0.0;
    }
  }
  if (tx == 0) {
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
      const int i = ty + r * TY;
      if (i < n) col[i] = reg[r][0];
    }
  }
  __syncthreads();
  int fail = 0;
  for (int j = 0; j < n; ++j) {
    const double* cur = col + (j & 1) * n;
    double* nxt = col + ((j + 1) & 1) * n;
    if constexpr (HOIST) {
      // Every shared load of the step is issued before anything waits on one.
      const double dj = cur[j];
      double ci[RPT], ck[CPT];
#pragma unroll
      for (int r = 0; r < RPT; ++r) ci[r] = cur[min(ty + r * TY, n - 1)];
#pragma unroll
      for (int c = 0; c < CPT; ++c) ck[c] = cur[min(tx + 32 * c, n - 1)];
      if (!(dj > 0.0 && dj < pw_lin_inf())) {
        fail = j + 1;
        break;
      }
      const double rj = rsqrt(dj);
      const double sj = dj * rj;
#pragma unroll
      for (int c = 0; c < CPT; ++c) ck[c] *= rj;
#pragma unroll
      for (int r = 0; r < RPT; ++r) {
        const int i = ty + r * TY;
        const double li = ci[r] * rj;
#pragma unroll
        for (int c = 0; c < CPT; ++c) {
          const int k = tx + 32 * c;
          const double upd = reg[r][c] - li * ck[c];
          const bool set = i < n && k == j && i >= j;
          const bool update = i < n && k > j && k <= i;
          reg[r][c] = set ? (i == j ? sj : li) : (update ? upd : reg[r][c]);
          if (update && k == j + 1) nxt[i] = upd;
        }
      }
    } else {
      const double dj = cur[j];
      if (!(dj > 0.0 && dj < pw_lin_inf())) {
        fail = j + 1;
        break;
      }
      const double rj = rsqrt(dj);
      double lk[CPT];
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int k = tx + 32 * c;
        lk[c] = k < n ? cur[k] * rj : 0.0;
      }
#pragma unroll
      for (int r = 0; r < RPT; ++r) {
        const int i = ty + r * TY;
        if (i < n && i >= j) {
          const double li = cur[i] * rj;
#pragma unroll
          for (int c = 0; c < CPT; ++c) {
            const int k = tx + 32 * c;
            if (k == j) {
              reg[r][c] = i == j ? dj * rj : li;
            } else if (k > j && k <= i) {
              const double v = reg[r][c] - li * lk[c];
              reg[r][c] = v;
              if (k == j + 1) nxt[i] = v;
            }
          }
        }
      }
    }
    __syncthreads();
  }
  T* O = out + (u64)b * n * n;
  const int zeroFrom = fail ? fail - 1 : n;
#pragma unroll
  for (int r = 0; r < RPT; ++r) {
    const int i = ty + r * TY;
    if (i >= n) continue;
#pragma unroll
    for (int c = 0; c < CPT; ++c) {
      const int k = tx + 32 * c;
      if (k < n) O[(u64)i * n + k] = store_as<T>((k > i || i >= zeroFrom) ? 0.0 : reg[r][c]);
    }
  }
  if (threadIdx.x == 0) info[b] = fail;
}

// ------------------------------------------------------------------ triangular solve

template <typename T>
__device__ __forceinline__ void trsm_impl(const T* __restrict__ a, const Shape8& bshape, const Strides8& abstr,
                                          i64 ars, i64 acs, const T* __restrict__ bm, const Strides8& bbstr, i64 brs,
                                          i64 bcs, T* __restrict__ out, double* ws, const LinDims& d) {
  const u32 b = blockIdx.x;
  if (b >= d.count) return;
  const int n = (int)d.n, k = (int)d.k;
  const bool upper = (d.flags & 1u) != 0, unit = (d.flags & 2u) != 0;
  const T* A = a + strided_offset(b, bshape, abstr);
  const T* B = bm + strided_offset(b, bshape, bbstr);
  T* O = out + (u64)b * n * k;
  const int ld = ws ? n : (n | 1);
  const int kc = ws ? k : (int)d.kc;
  double* S = ws ? ws + (u64)b * ((u64)n * n + (u64)n * k) : (double*)pw_linalg_smem;
  double* X = S + (u64)n * ld;
  block_copy(
      (u32)(n * n),
      [&](u32 idx, double& v) {
        const int i = (int)(idx / (u32)n), j = (int)(idx % (u32)n);
        if (upper ? j < i : j > i) return false;
        v = load_as<double>(A[(i64)i * ars + (i64)j * acs]);
        return true;
      },
      [&](u32 idx, double v) { S[(idx / (u32)n) * ld + idx % (u32)n] = v; });
  const i64 sb = upper ? (i64)(n - 1) * (ld + 1) : 0;
  const i64 RS = upper ? -(i64)ld : (i64)ld, CS = upper ? -1 : 1;
  for (int c0 = 0; c0 < k; c0 += kc) {
    const int kcur = min(kc, k - c0);
    block_copy(
        (u32)(n * kcur),
        [&](u32 idx, double& v) {
          const int i = (int)(idx / (u32)kcur), c = (int)(idx % (u32)kcur);
          v = load_as<double>(B[(i64)i * brs + (i64)(c0 + c) * bcs]);
          return true;
        },
        [&](u32 idx, double v) { X[(idx / (u32)kcur) * kc + idx % (u32)kcur] = v; });
    __syncthreads();
    const i64 xb = upper ? (i64)(n - 1) * kc : 0;
    const i64 xrs = upper ? -(i64)kc : (i64)kc;
    trsm_core(S, sb, RS, CS, X, xb, xrs, n, kcur, unit);
    for (u32 idx = threadIdx.x; idx < (u32)(n * kcur); idx += blockDim.x) {
      const u32 i = idx / (u32)kcur, c = idx % (u32)kcur;
      O[(u64)i * k + c0 + c] = store_as<T>(X[i * kc + c]);
    }
    __syncthreads();
  }
}

// ------------------------------------------------------------------ LU with partial pivoting

// Right-looking. Step k: warp 0 finds the pivot (first largest |a[i][k]|, i ≥ k, NaN never wins;
// a NaN diagonal keeps row k, as the CPU's strict comparison does), swaps the rows and records
// the 1-based interchange; after a barrier the warps share out the rows below k. A zero pivot
// records info and skips the step. Same operations in the same order as the CPU, without fused
// multiply-adds, so factors, pivots and info equal the CPU backend's bit for bit.
template <typename T>
__device__ __forceinline__ void lu_impl(const T* __restrict__ a, const Shape8& bshape, const Strides8& bstr, i64 rs,
                                        i64 cs, T* __restrict__ out, int* __restrict__ piv, int* __restrict__ info,
                                        double* ws, const LinDims& d) {
  const u32 b = blockIdx.x;
  if (b >= d.count) return;
  const int n = (int)d.n;
  const T* A = a + strided_offset(b, bshape, bstr);
  const int ld = ws ? n : (n | 1);
  double* S = ws ? ws + (u64)b * n * n : (double*)pw_linalg_smem;
  int* P = piv + (u64)b * n;
  block_copy(
      (u32)(n * n),
      [&](u32 idx, double& v) {
        v = load_as<double>(A[(i64)(idx / (u32)n) * rs + (i64)(idx % (u32)n) * cs]);
        return true;
      },
      [&](u32 idx, double v) { S[(idx / (u32)n) * ld + idx % (u32)n] = v; });
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  int status = 0;
  for (int k = 0; k < n; ++k) {
    if (warp == 0) {
      const double akk = S[k * ld + k];
      int p = k;
      if (!is_nan_d(akk)) {
        double best = -1.0;
        int bi = n;
        for (int i = k + lane; i < n; i += 32) {
          const double v = fabs(S[i * ld + k]);
          if (v > best) {
            best = v;
            bi = i;
          }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
          const double ob = __shfl_xor_sync(PW_FULL, best, o);
          const int oi = __shfl_xor_sync(PW_FULL, bi, o);
          if (ob > best || (ob == best && oi < bi)) {
            best = ob;
            bi = oi;
          }
        }
        p = bi;
      }
      if (p != k) {
        for (int j = lane; j < n; j += 32) {
          const double t = S[k * ld + j];
          S[k * ld + j] = S[p * ld + j];
          S[p * ld + j] = t;
        }
      }
      if (lane == 0) P[k] = p + 1;
    }
    __syncthreads();
    const double akk = S[k * ld + k];
    if (akk == 0.0) {
      if (status == 0) status = k + 1;
      continue;
    }
    // Warp w owns rows k+1+w, k+1+w+nw, ...; lane r divides row r of a group of 32 (the divisions
    // run side by side), then the rows are updated one after the other, lanes over columns.
    const double* prow = S + k * ld;
    for (int i0 = k + 1 + warp; i0 < n; i0 += nw * 32) {
      const int mine = i0 + nw * lane;
      double lv = 0.0;
      if (mine < n) {
        lv = S[mine * ld + k] / akk;
        S[mine * ld + k] = lv;
      }
      for (int q = 0; q < 32; ++q) {
        const int i = i0 + nw * q;
        if (i >= n) break;
        const double l = __shfl_sync(PW_FULL, lv, q);
        if (l == 0.0) continue;
        double* row = S + i * ld;
        // Rounded product, then rounded difference: the CPU's arithmetic, bit for bit.
        for (int j = k + 1 + lane; j < n; j += 32) row[j] = __dsub_rn(row[j], __dmul_rn(l, prow[j]));
      }
    }
    __syncthreads();
  }
  T* O = out + (u64)b * n * n;
  for (u32 idx = threadIdx.x; idx < (u32)(n * n); idx += blockDim.x) {
    O[idx] = store_as<T>(S[(idx / (u32)n) * ld + idx % (u32)n]);
  }
  if (threadIdx.x == 0) info[b] = status;
}

// ------------------------------------------------------------------ solve from LU

template <typename T>
__device__ __forceinline__ void lu_solve_impl(const T* __restrict__ lu, const Shape8& bshape, const Strides8& lbstr,
                                              i64 lrs, i64 lcs, const int* __restrict__ piv, const Strides8& pbstr,
                                              i64 ps, const T* __restrict__ bm, const Strides8& bbstr, i64 brs,
                                              i64 bcs, T* __restrict__ out, double* ws, const LinDims& d) {
  const u32 b = blockIdx.x;
  if (b >= d.count) return;
  const int n = (int)d.n, k = (int)d.k;
  const bool transposed = (d.flags & 1u) != 0;
  const T* L = lu + strided_offset(b, bshape, lbstr);
  const int* Pv = piv + strided_offset(b, bshape, pbstr);
  const T* B = bm + strided_offset(b, bshape, bbstr);
  T* O = out + (u64)b * n * k;
  const int ld = ws ? n : (n | 1);
  const int kc = ws ? k : (int)d.kc;
  int* P = (int*)pw_linalg_smem; // n ints, padded to 16 bytes
  double* base = (double*)(pw_linalg_smem + ((n * 4 + 15) / 16) * 16);
  double* S = ws ? ws + (u64)b * ((u64)n * n + (u64)n * k) : base;
  double* X = S + (u64)n * ld;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int p = Pv[(i64)i * ps] - 1;
    P[i] = (p >= 0 && p < n) ? p : i;
  }
  block_copy(
      (u32)(n * n),
      [&](u32 idx, double& v) {
        v = load_as<double>(L[(i64)(idx / (u32)n) * lrs + (i64)(idx % (u32)n) * lcs]);
        return true;
      },
      [&](u32 idx, double v) { S[(idx / (u32)n) * ld + idx % (u32)n] = v; });
  const i64 last = (i64)(n - 1) * (ld + 1);
  for (int c0 = 0; c0 < k; c0 += kc) {
    const int kcur = min(kc, k - c0);
    block_copy(
        (u32)(n * kcur),
        [&](u32 idx, double& v) {
          const int i = (int)(idx / (u32)kcur), c = (int)(idx % (u32)kcur);
          v = load_as<double>(B[(i64)i * brs + (i64)(c0 + c) * bcs]);
          return true;
        },
        [&](u32 idx, double v) { X[(idx / (u32)kcur) * kc + idx % (u32)kcur] = v; });
    __syncthreads();
    const i64 fwd = (i64)kc, bwd = -(i64)kc, xlast = (i64)(n - 1) * kc;
    if (!transposed) {
      for (int c = threadIdx.x; c < kcur; c += blockDim.x) {
        for (int i = 0; i < n; ++i) {
          const int p = P[i];
          if (p != i) {
            const double t = X[i * kc + c];
            X[i * kc + c] = X[p * kc + c];
            X[p * kc + c] = t;
          }
        }
      }
      __syncthreads();
      trsm_core(S, 0, ld, 1, X, 0, fwd, n, kcur, true);           // L (unit lower)
      trsm_core(S, last, -(i64)ld, -1, X, xlast, bwd, n, kcur, false); // U (upper)
    } else {
      trsm_core(S, 0, 1, ld, X, 0, fwd, n, kcur, false);           // Uᵀ (lower)
      trsm_core(S, last, -1, -(i64)ld, X, xlast, bwd, n, kcur, true); // Lᵀ (unit upper)
      for (int c = threadIdx.x; c < kcur; c += blockDim.x) {
        for (int i = n - 1; i >= 0; --i) {
          const int p = P[i];
          if (p != i) {
            const double t = X[i * kc + c];
            X[i * kc + c] = X[p * kc + c];
            X[p * kc + c] = t;
          }
        }
      }
      __syncthreads();
    }
    for (u32 idx = threadIdx.x; idx < (u32)(n * kcur); idx += blockDim.x) {
      const u32 i = idx / (u32)kcur, c = idx % (u32)kcur;
      O[(u64)i * k + c0 + c] = store_as<T>(X[i * kc + c]);
    }
    __syncthreads();
  }
}

// ------------------------------------------------------------------ thin Householder QR

// A(i, c) = A[i*ri + c*ci] (column-major in shared memory and in the workspace). The reflector of
// column j is v = (vd[j], A[j+1.., j]) with beta[j] = 2/|v|², R's diagonal entry in A[j][j]. A warp
// owns every nw-th column; the owner of column j+1 computes its reflector right after applying
// H_j to it, so each step needs one barrier. Q = H_0 ··· H_{n-1}·[I; 0] is then formed in place
// from the last reflector back (the column of a reflector is overwritten by Q's once no later
// step reads it), and the signs are fixed so that R has a non-negative diagonal, as on the CPU.
__device__ __forceinline__ void qr_house(double* A, i64 ri, i64 ci, double* vd, double* beta, int j, int m,
                                         int lane) {
  double s2 = 0.0;
  for (int i = j + lane; i < m; i += 32) {
    const double x = A[i * ri + j * ci];
    s2 += x * x;
  }
  s2 = warp_sum(s2);
  const double norm = sqrt(s2);
  const double a0 = A[j * ri + j * ci];
  __syncwarp();
  if (norm == 0.0) {
    if (lane == 0) {
      vd[j] = 0.0;
      beta[j] = 0.0;
    }
    return;
  }
  const double alpha = a0 >= 0.0 ? -norm : norm;
  const double v0 = a0 - alpha;
  const double vn2 = s2 - a0 * a0 + v0 * v0;
  if (lane == 0) {
    vd[j] = v0;
    beta[j] = vn2 > 0.0 ? 2.0 / vn2 : 0.0;
    A[j * ri + j * ci] = alpha;
  }
}

// Applies H_j (reflector stored in column j) to column c (rows ≥ j), one warp.
__device__ __forceinline__ void qr_apply(double* A, i64 ri, i64 ci, const double* vd, const double* beta, int j,
                                         int c, int m, int lane) {
  const double bj = beta[j];
  if (bj == 0.0) return;
  double s = 0.0;
  for (int i = j + lane; i < m; i += 32) {
    const double v = i == j ? vd[j] : A[i * ri + j * ci];
    s += v * A[i * ri + c * ci];
  }
  s = warp_sum(s) * bj;
  if (s == 0.0) return;
  for (int i = j + lane; i < m; i += 32) {
    const double v = i == j ? vd[j] : A[i * ri + j * ci];
    A[i * ri + c * ci] -= s * v;
  }
}

// Overwrites column c (its reflector) with Q's column c before H_{c-1}…H_0: H_c·e_c.
__device__ __forceinline__ void qr_finish(double* A, i64 ri, i64 ci, const double* vd, const double* beta, int c,
                                          int m, int lane) {
  const double s = beta[c] * vd[c];
  for (int i = lane; i < m; i += 32) {
    double q;
    if (i < c) q = 0.0;
    else if (s == 0.0) q = i == c ? 1.0 : 0.0;
    else if (i == c) q = 1.0 - s * vd[c];
    else q = 0.0 - s * A[i * ri + c * ci];
    A[i * ri + c * ci] = q;
  }
}

template <typename T>
__device__ __forceinline__ void qr_impl(const T* __restrict__ a, const Shape8& bshape, const Strides8& bstr, i64 rs,
                                        i64 cs, T* __restrict__ q, T* __restrict__ r, double* ws, const LinDims& d) {
  const u32 b = blockIdx.x;
  if (b >= d.count) return;
  const int m = (int)d.m, n = (int)d.n;
  const T* Ain = a + strided_offset(b, bshape, bstr);
  double* vd = (double*)pw_linalg_smem;
  double* beta = vd + n;
  double* sg = beta + n;
  double* A = ws ? ws + (u64)b * m * n : sg + n;
  const i64 ri = 1, ci = m;
  block_copy(
      (u32)(m * n),
      [&](u32 idx, double& v) {
        v = load_as<double>(Ain[(i64)(idx / (u32)n) * rs + (i64)(idx % (u32)n) * cs]);
        return true;
      },
      [&](u32 idx, double v) { A[(idx / (u32)n) * ri + (idx % (u32)n) * ci] = v; });
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (warp == 0) qr_house(A, ri, ci, vd, beta, 0, m, lane);
  __syncthreads();
  for (int j = 0; j < n; ++j) {
    for (int c = first_owned(j, warp, nw); c < n; c += nw) {
      qr_apply(A, ri, ci, vd, beta, j, c, m, lane);
      if (c == j + 1) {
        __syncwarp();
        qr_house(A, ri, ci, vd, beta, c, m, lane);
      }
    }
    __syncthreads();
  }
  for (int i = threadIdx.x; i < n; i += blockDim.x) sg[i] = A[i * ri + i * ci] < 0.0 ? -1.0 : 1.0;
  __syncthreads();
  T* R = r + (u64)b * n * n;
  for (u32 idx = threadIdx.x; idx < (u32)(n * n); idx += blockDim.x) {
    const int i = (int)(idx / (u32)n), c = (int)(idx % (u32)n);
    R[idx] = store_as<T>(c < i ? 0.0 : sg[i] * A[i * ri + c * ci]);
  }
  __syncthreads();
  for (int j = n - 2; j >= 0; --j) {
    for (int c = first_owned(j, warp, nw); c < n; c += nw) {
      if (c == j + 1) {
        qr_finish(A, ri, ci, vd, beta, c, m, lane);
        __syncwarp();
      }
      qr_apply(A, ri, ci, vd, beta, j, c, m, lane);
    }
    __syncthreads();
  }
  if (warp == 0) qr_finish(A, ri, ci, vd, beta, 0, m, lane);
  __syncthreads();
  T* Q = q + (u64)b * m * n;
  for (u32 idx = threadIdx.x; idx < (u32)(m * n); idx += blockDim.x) {
    const int i = (int)(idx / (u32)n), c = (int)(idx % (u32)n);
    Q[idx] = store_as<T>(sg[c] * A[i * ri + c * ci]);
  }
}

// ------------------------------------------------------------------ entry points

#define PW_INST_CHOL_REG(sfx, T, name, TY, RPT, CPT, HOIST)                                                     \
  extern "C" __global__ void __launch_bounds__(32 * TY) name##_##sfx(const T* a, Shape8 bshape, Strides8 bstr,  \
                                                                      i64 rs, i64 cs, T* out, int* info,       \
                                                                      double* ws, LinDims d) {                 \
    cholesky_reg_impl<T, TY, RPT, CPT, HOIST>(a, bshape, bstr, rs, cs, out, info, d);                           \
  }

#define PW_INST_LINALG(sfx, T)                                                                                  \
  PW_INST_CHOL_REG(sfx, T, cholesky_r32, 4, 8, 1, false)                                                        \
  PW_INST_CHOL_REG(sfx, T, cholesky_r32h, 4, 8, 1, true)                                                        \
  PW_INST_CHOL_REG(sfx, T, cholesky_r64, 8, 8, 2, false)                                                        \
  PW_INST_CHOL_REG(sfx, T, cholesky_r64h, 8, 8, 2, true)                                                        \
  PW_INST_CHOL_REG(sfx, T, cholesky_r128, 16, 8, 4, false)                                                      \
  extern "C" __global__ void cholesky_##sfx(const T* a, Shape8 bshape, Strides8 bstr, i64 rs, i64 cs, T* out,   \
                                            int* info, double* ws, LinDims d) {                                 \
    cholesky_impl<T>(a, bshape, bstr, rs, cs, out, info, ws, d);                                                \
  }                                                                                                             \
  extern "C" __global__ void trsm_##sfx(const T* a, Shape8 bshape, Strides8 abstr, i64 ars, i64 acs, const T* b, \
                                        Strides8 bbstr, i64 brs, i64 bcs, T* out, double* ws, LinDims d) {      \
    trsm_impl<T>(a, bshape, abstr, ars, acs, b, bbstr, brs, bcs, out, ws, d);                                   \
  }                                                                                                             \
  extern "C" __global__ void lu_##sfx(const T* a, Shape8 bshape, Strides8 bstr, i64 rs, i64 cs, T* out, int* piv, \
                                      int* info, double* ws, LinDims d) {                                       \
    lu_impl<T>(a, bshape, bstr, rs, cs, out, piv, info, ws, d);                                                 \
  }                                                                                                             \
  extern "C" __global__ void lu_solve_##sfx(const T* lu, Shape8 bshape, Strides8 lbstr, i64 lrs, i64 lcs,       \
                                            const int* piv, Strides8 pbstr, i64 ps, const T* b, Strides8 bbstr, \
                                            i64 brs, i64 bcs, T* out, double* ws, LinDims d) {                  \
    lu_solve_impl<T>(lu, bshape, lbstr, lrs, lcs, piv, pbstr, ps, b, bbstr, brs, bcs, out, ws, d);              \
  }                                                                                                             \
  extern "C" __global__ void qr_##sfx(const T* a, Shape8 bshape, Strides8 bstr, i64 rs, i64 cs, T* q, T* r,     \
                                      double* ws, LinDims d) {                                                  \
    qr_impl<T>(a, bshape, bstr, rs, cs, q, r, ws, d);                                                           \
  }

PW_INST_LINALG(f32, float)
PW_INST_LINALG(f64, double)

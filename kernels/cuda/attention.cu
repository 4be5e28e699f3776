// Fused flash-style attention on CUDA. Reference: kernels/cpu/attention.cpp.
//
// Forward: a block takes kBlockRows query rows of one (batch, head); each warp owns
// kRowsPerWarp of them. K/V tiles of kTile keys are staged in shared memory (one key per lane
// for the scores); an online softmax keeps a running max and sum per row, and each lane keeps
// D/32 output columns per row in registers. The log-sum-exp per row is saved.
// Backward (deterministic, no atomics): (1) D_i = rowsum(dO * O); (2) dQ: per query block,
// loop over K/V tiles recomputing P = exp(s - lse) and dS = P * (dP - D_i); (3) dK, dV: per
// key block, loop over Q/dO tiles with the same recomputation. Arithmetic in f32 (f64 for f64).
#include <type_traits>
#include "kernels/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/scratch.cuh"

namespace retort::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarps * kRowsPerWarp;  // rows per block
constexpr int kTile = 32;                          // keys (or queries) per shared tile, one per lane
static_assert(kBlockRows == kTile, "the dK/dV causal start assumes key blocks align with query tiles");

__device__ __forceinline__ float fexp(float x) { return expf(x); }
__device__ __forceinline__ double fexp(double x) { return ::exp(x); }
__device__ __forceinline__ float flog(float x) { return logf(x); }
__device__ __forceinline__ double flog(double x) { return ::log(x); }

template <typename V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
template <typename V>
__device__ __forceinline__ V warp_max(V v) {
  for (int off = 16; off > 0; off >>= 1) v = ::max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Copies rows [row0, row0 + nrows) of a [L, D] matrix into shared memory with row stride
// `ld_s`, zero-filling rows past L.
template <typename T, typename A>
__device__ void load_rows(A* dst, int ld_s, const T* src, int64_t row0, int nrows, int64_t L, int D) {
  for (int idx = threadIdx.x; idx < nrows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx - r * D;
    const int64_t row = row0 + r;
    dst[r * ld_s + d] = row < L ? ld(src, row * D + d) : A(0);
  }
}

template <typename T, int DPL>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(const T* q, const T* k, const T* v, int64_t Lq, int64_t Lk, int D, bool causal,
                         typename Acc<T>::type scale, int64_t q_blocks, T* out, typename Acc<T>::type* lse) {
  using A = typename Acc<T>::type;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ks = reinterpret_cast<A*>(smem_raw);  // [kTile][D + 1]
  A* vs = ks + kTile * (D + 1);             // [kTile][D]
  A* qs = vs + kTile * D;                   // [kBlockRows][D]
  const int64_t bh = blockIdx.x / q_blocks, m0 = (blockIdx.x % q_blocks) * int64_t(kBlockRows);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const T* qb = q + bh * Lq * D;
  const T* kb = k + bh * Lk * D;
  const T* vb = v + bh * Lk * D;
  load_rows(qs, D, qb, m0, kBlockRows, Lq, D);

  A m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][DPL];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0;
#pragma unroll
    for (int t = 0; t < DPL; ++t) o[r][t] = 0;
  }
  const A* qw = qs + warp * kRowsPerWarp * D;
  const int64_t row0 = m0 + warp * kRowsPerWarp;
  const int64_t kend = (causal && m0 + kBlockRows < Lk) ? m0 + kBlockRows : Lk;
  for (int64_t n0 = 0; n0 < kend; n0 += kTile) {
    __syncthreads();  // the previous tile is consumed (first pass: nothing to wait for)
    load_rows(ks, D + 1, kb, n0, kTile, Lk, D);
    load_rows(vs, D, vb, n0, kTile, Lk, D);
    __syncthreads();
    A s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = 0;
    for (int d = 0; d < D; ++d) {
      const A kd = ks[lane * (D + 1) + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) s[r] += qw[r * D + d] * kd;
    }
    const int64_t key = n0 + lane;
    A p[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool valid = key < Lk && (!causal || key <= row0 + r);
      const A sv = valid ? s[r] * scale : A(-INFINITY);
      const A m_new = ::max(m[r], warp_max(sv));
      const A m_use = m_new == A(-INFINITY) ? A(0) : m_new;  // a row with nothing visible yet
      const A alpha = fexp(m[r] - m_use);
      p[r] = valid ? fexp(sv - m_use) : A(0);
      l[r] = l[r] * alpha + warp_sum(p[r]);
      m[r] = m_new;
#pragma unroll
      for (int t = 0; t < DPL; ++t) o[r][t] *= alpha;
    }
    const int ntile = int(Lk - n0 < kTile ? Lk - n0 : kTile);
    for (int j = 0; j < ntile; ++j) {
      A pj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) pj[r] = __shfl_sync(0xffffffffu, p[r], j);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int d = lane + 32 * t;
        if (d < D) {
          const A vv = vs[j * D + d];
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) o[r][t] += pj[r] * vv;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + r;
    if (i >= Lq) continue;
    const A inv = A(1) / l[r];
#pragma unroll
    for (int t = 0; t < DPL; ++t) {
      const int d = lane + 32 * t;
      if (d < D) st(out, (bh * Lq + i) * D + d, o[r][t] * inv);
    }
    if (lane == 0) lse[bh * Lq + i] = m[r] + flog(l[r]);
  }
}

// delta[row] = sum_d dO[row, d] * O[row, d]; one warp per row.
template <typename T>
__global__ void attention_delta_kernel(const T* grad_out, const T* out, int64_t rows, int D,
                                       typename Acc<T>::type* delta) {
  using A = typename Acc<T>::type;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  A s = 0;
  for (int d = lane; d < D; d += 32) s += ld(grad_out, row * D + d) * ld(out, row * D + d);
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

// dQ = scale * dS K per query block, dS = P * (dP - delta), P = exp(scale * q.k - lse).
template <typename T, int DPL>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dq_kernel(const T* grad_out, const T* q, const T* k, const T* v,
                             const typename Acc<T>::type* lse, const typename Acc<T>::type* delta, int64_t Lq,
                             int64_t Lk, int D, bool causal, typename Acc<T>::type scale, int64_t q_blocks, T* grad_q) {
  using A = typename Acc<T>::type;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ks = reinterpret_cast<A*>(smem_raw);  // [kTile][D + 1]
  A* vs = ks + kTile * (D + 1);             // [kTile][D + 1]
  A* qs = vs + kTile * (D + 1);             // [kBlockRows][D]
  A* dos = qs + kBlockRows * D;             // [kBlockRows][D]
  const int64_t bh = blockIdx.x / q_blocks, m0 = (blockIdx.x % q_blocks) * int64_t(kBlockRows);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const T* kb = k + bh * Lk * D;
  const T* vb = v + bh * Lk * D;
  load_rows(qs, D, q + bh * Lq * D, m0, kBlockRows, Lq, D);
  load_rows(dos, D, grad_out + bh * Lq * D, m0, kBlockRows, Lq, D);

  const int64_t row0 = m0 + warp * kRowsPerWarp;
  A row_lse[kRowsPerWarp], row_delta[kRowsPerWarp], dq[kRowsPerWarp][DPL];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + r;
    row_lse[r] = i < Lq ? lse[bh * Lq + i] : A(0);
    row_delta[r] = i < Lq ? delta[bh * Lq + i] : A(0);
#pragma unroll
    for (int t = 0; t < DPL; ++t) dq[r][t] = 0;
  }
  const A* qw = qs + warp * kRowsPerWarp * D;
  const A* dow = dos + warp * kRowsPerWarp * D;
  const int64_t kend = (causal && m0 + kBlockRows < Lk) ? m0 + kBlockRows : Lk;
  for (int64_t n0 = 0; n0 < kend; n0 += kTile) {
    __syncthreads();
    load_rows(ks, D + 1, kb, n0, kTile, Lk, D);
    load_rows(vs, D + 1, vb, n0, kTile, Lk, D);
    __syncthreads();
    A s[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = dp[r] = 0;
    for (int d = 0; d < D; ++d) {
      const A kd = ks[lane * (D + 1) + d], vd = vs[lane * (D + 1) + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        s[r] += qw[r * D + d] * kd;
        dp[r] += dow[r * D + d] * vd;
      }
    }
    const int64_t key = n0 + lane;
    A ds[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool valid = key < Lk && row0 + r < Lq && (!causal || key <= row0 + r);
      const A p = valid ? fexp(s[r] * scale - row_lse[r]) : A(0);
      ds[r] = p * (dp[r] - row_delta[r]);
    }
    const int ntile = int(Lk - n0 < kTile ? Lk - n0 : kTile);
    for (int j = 0; j < ntile; ++j) {
      A dsj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) dsj[r] = __shfl_sync(0xffffffffu, ds[r], j);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int d = lane + 32 * t;
        if (d < D) {
          const A kv = ks[j * (D + 1) + d];
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) dq[r][t] += dsj[r] * kv;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + r;
    if (i >= Lq) continue;
#pragma unroll
    for (int t = 0; t < DPL; ++t) {
      const int d = lane + 32 * t;
      if (d < D) st(grad_q, (bh * Lq + i) * D + d, dq[r][t] * scale);
    }
  }
}

// dV = P^T dO and dK = scale * dS^T Q per key block, looping over query tiles.
template <typename T, int DPL>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dkdv_kernel(const T* grad_out, const T* q, const T* k, const T* v,
                               const typename Acc<T>::type* lse, const typename Acc<T>::type* delta, int64_t Lq,
                               int64_t Lk, int D, bool causal, typename Acc<T>::type scale, int64_t k_blocks,
                               T* grad_k, T* grad_v) {
  using A = typename Acc<T>::type;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* qs = reinterpret_cast<A*>(smem_raw);  // [kTile][D + 1]
  A* dos = qs + kTile * (D + 1);            // [kTile][D + 1]
  A* ks = dos + kTile * (D + 1);            // [kBlockRows][D]
  A* vs = ks + kBlockRows * D;              // [kBlockRows][D]
  A* lse_s = vs + kBlockRows * D;           // [kTile]
  A* delta_s = lse_s + kTile;               // [kTile]
  const int64_t bh = blockIdx.x / k_blocks, n0 = (blockIdx.x % k_blocks) * int64_t(kBlockRows);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const T* qb = q + bh * Lq * D;
  const T* dob = grad_out + bh * Lq * D;
  load_rows(ks, D, k + bh * Lk * D, n0, kBlockRows, Lk, D);
  load_rows(vs, D, v + bh * Lk * D, n0, kBlockRows, Lk, D);

  const int64_t key0 = n0 + warp * kRowsPerWarp;
  A dk[kRowsPerWarp][DPL], dv[kRowsPerWarp][DPL];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
    for (int t = 0; t < DPL; ++t) dk[r][t] = dv[r][t] = 0;
  const A* kw = ks + warp * kRowsPerWarp * D;
  const A* vw = vs + warp * kRowsPerWarp * D;
  // Causal: queries before this key block see none of its keys.
  for (int64_t i0 = causal ? n0 : 0; i0 < Lq; i0 += kTile) {
    __syncthreads();
    load_rows(qs, D + 1, qb, i0, kTile, Lq, D);
    load_rows(dos, D + 1, dob, i0, kTile, Lq, D);
    if (threadIdx.x < kTile) {
      const int64_t i = i0 + threadIdx.x;
      lse_s[threadIdx.x] = i < Lq ? lse[bh * Lq + i] : A(0);
      delta_s[threadIdx.x] = i < Lq ? delta[bh * Lq + i] : A(0);
    }
    __syncthreads();
    A s[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = dp[r] = 0;
    for (int d = 0; d < D; ++d) {
      const A qd = qs[lane * (D + 1) + d], dod = dos[lane * (D + 1) + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        s[r] += qd * kw[r * D + d];
        dp[r] += dod * vw[r * D + d];
      }
    }
    const int64_t query = i0 + lane;
    A p[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t key = key0 + r;
      const bool valid = query < Lq && key < Lk && (!causal || key <= query);
      p[r] = valid ? fexp(s[r] * scale - lse_s[lane]) : A(0);
      ds[r] = p[r] * (dp[r] - delta_s[lane]);
    }
    const int ntile = int(Lq - i0 < kTile ? Lq - i0 : kTile);
    for (int j = 0; j < ntile; ++j) {
      A pj[kRowsPerWarp], dsj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        pj[r] = __shfl_sync(0xffffffffu, p[r], j);
        dsj[r] = __shfl_sync(0xffffffffu, ds[r], j);
      }
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int d = lane + 32 * t;
        if (d < D) {
          const A qv = qs[j * (D + 1) + d], dov = dos[j * (D + 1) + d];
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) {
            dv[r][t] += pj[r] * dov;
            dk[r][t] += dsj[r] * qv;
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t key = key0 + r;
    if (key >= Lk) continue;
#pragma unroll
    for (int t = 0; t < DPL; ++t) {
      const int d = lane + 32 * t;
      if (d >= D) continue;
      if (grad_k) st(grad_k, (bh * Lk + key) * D + d, dk[r][t] * scale);
      if (grad_v) st(grad_v, (bh * Lk + key) * D + d, dv[r][t]);
    }
  }
}

// Raises the dynamic shared-memory limit when a kernel needs more than the default 48 KiB.
template <typename Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  RETORT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <typename T, int DPL>
void forward_impl(const T* q, const T* k, const T* v, int64_t BH, int64_t Lq, int64_t Lk, int D, bool causal,
                  double scale, T* out, typename Acc<T>::type* lse) {
  using A = typename Acc<T>::type;
  const int64_t q_blocks = (Lq + kBlockRows - 1) / kBlockRows;
  const size_t smem = size_t(kTile * (D + 1) + kTile * D + kBlockRows * D) * sizeof(A);
  auto kernel = flash_forward_kernel<T, DPL>;
  set_smem(kernel, smem);
  kernel<<<unsigned(BH * q_blocks), kThreads, smem, stream()>>>(q, k, v, Lq, Lk, D, causal, A(scale), q_blocks, out,
                                                                 lse);
  RETORT_CUDA_LAUNCH_CHECK();
}

template <typename T, int DPL>
void backward_impl(const T* grad_out, const T* q, const T* k, const T* v, const T* out,
                   const typename Acc<T>::type* lse, int64_t BH, int64_t Lq, int64_t Lk, int D, bool causal,
                   double scale, T* grad_q, T* grad_k, T* grad_v) {
  using A = typename Acc<T>::type;
  const Scratch scratch(size_t(BH * Lq) * sizeof(A));
  A* delta = scratch.as<A>();
  attention_delta_kernel<T><<<unsigned((BH * Lq + kWarps - 1) / kWarps), kThreads, 0, stream()>>>(grad_out, out,
                                                                                                   BH * Lq, D, delta);
  RETORT_CUDA_LAUNCH_CHECK();
  if (grad_q) {
    const int64_t q_blocks = (Lq + kBlockRows - 1) / kBlockRows;
    const size_t smem = size_t(2 * kTile * (D + 1) + 2 * kBlockRows * D) * sizeof(A);
    auto kernel = flash_backward_dq_kernel<T, DPL>;
    set_smem(kernel, smem);
    kernel<<<unsigned(BH * q_blocks), kThreads, smem, stream()>>>(grad_out, q, k, v, lse, delta, Lq, Lk, D, causal,
                                                                   A(scale), q_blocks, grad_q);
    RETORT_CUDA_LAUNCH_CHECK();
  }
  if (grad_k || grad_v) {
    const int64_t k_blocks = (Lk + kBlockRows - 1) / kBlockRows;
    const size_t smem = size_t(2 * kTile * (D + 1) + 2 * kBlockRows * D + 2 * kTile) * sizeof(A);
    auto kernel = flash_backward_dkdv_kernel<T, DPL>;
    set_smem(kernel, smem);
    kernel<<<unsigned(BH * k_blocks), kThreads, smem, stream()>>>(grad_out, q, k, v, lse, delta, Lq, Lk, D, causal,
                                                                   A(scale), k_blocks, grad_k, grad_v);
    RETORT_CUDA_LAUNCH_CHECK();
  }
}

// Calls f(std::integral_constant<int, DPL>) with DPL = ceil(D / 32) in 1..4.
template <typename F>
void dispatch_head_dim(int64_t D, F&& f) {
  RETORT_REQUIRE(D >= 1 && D <= kFlashMaxHeadDim, "scaled_dot_product_attention: head dim ", D, " is outside [1, ",
                 kFlashMaxHeadDim, "] on CUDA");
  switch ((D + 31) / 32) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

}  // namespace

void attention_forward(DType type, const void* q, const void* k, const void* v, int64_t BH, int64_t Lq, int64_t Lk,
                       int64_t D, bool causal, double scale, void* out, void* lse) {
  if (BH * Lq == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "scaled_dot_product_attention", [&] {
    using A = typename Acc<scalar_t>::type;
    dispatch_head_dim(D, [&](auto dpl) {
      constexpr int DPL = decltype(dpl)::value;
      forward_impl<scalar_t, DPL>(static_cast<const scalar_t*>(q), static_cast<const scalar_t*>(k),
                                  static_cast<const scalar_t*>(v), BH, Lq, Lk, int(D), causal, scale,
                                  static_cast<scalar_t*>(out), static_cast<A*>(lse));
    });
  });
}

void attention_backward(DType type, const void* grad_out, const void* q, const void* k, const void* v,
                        const void* out, const void* lse, int64_t BH, int64_t Lq, int64_t Lk, int64_t D, bool causal,
                        double scale, void* grad_q, void* grad_k, void* grad_v) {
  if (BH * Lq == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "scaled_dot_product_attention backward", [&] {
    using A = typename Acc<scalar_t>::type;
    dispatch_head_dim(D, [&](auto dpl) {
      constexpr int DPL = decltype(dpl)::value;
      backward_impl<scalar_t, DPL>(static_cast<const scalar_t*>(grad_out), static_cast<const scalar_t*>(q),
                                   static_cast<const scalar_t*>(k), static_cast<const scalar_t*>(v),
                                   static_cast<const scalar_t*>(out), static_cast<const A*>(lse), BH, Lq, Lk, int(D),
                                   causal, scale, static_cast<scalar_t*>(grad_q), static_cast<scalar_t*>(grad_k),
                                   static_cast<scalar_t*>(grad_v));
    });
  });
}

}  // namespace retort::cuda

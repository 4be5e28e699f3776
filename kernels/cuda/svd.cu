// CUDA svd_right kernels, one block per matrix, all in f64 (semantics in kernels/svd.h; the
// reference is kernels/cpu/svd.cpp). The forward diagonalises the Gram matrix by cyclic Jacobi
// rotations in round-robin order: each step rotates K/2 disjoint pairs (p, q) at once, the
// columns of G and of the accumulated eigenvectors first, then the rows of G; sweeps stop when
// no pair has |g_pq| > 2^-52 sqrt(g_pp g_qq) (at most 60 sweeps).
#include <math_constants.h>
#include <cmath>
#include "kernels/cuda/common.cuh"
#include "kernels/svd.h"

namespace retort::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxK = 1024;  // min(M, C) per matrix: the shared pair tables
constexpr int kMaxSweeps = 60;
constexpr double kEps = 0x1p-52;

template <typename T>
__device__ __forceinline__ double ld64(const T* p, int64_t i) {
  return double(ld(p, i));
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    svd_forward_kernel(const T* x, double* sv, double* u, double* work, int64_t per, int64_t M, int64_t C) {
  const int64_t K = M < C ? M : C;
  const bool tall = M >= C;
  const int64_t b = blockIdx.x;
  const int tid = threadIdx.x;
  const T* xb = x + b * M * C;
  double* svb = sv + b * (1 + C) * K;
  double* V = svb + K;  // V[c * K + r]
  double* ub = u ? u + b * M * K : nullptr;
  double* G = work + b * per;
  double* J = G + K * K;  // J[k * K + j]: component k of eigenvector j
  double* lam = J + K * K;

  __shared__ double s_c[kMaxK / 2], s_s[kMaxK / 2];
  __shared__ int s_p[kMaxK / 2], s_q[kMaxK / 2];
  __shared__ int s_order[kMaxK];
  __shared__ int s_flag;

  // A non-finite entry: NaN everywhere.
  if (tid == 0) s_flag = 1;
  __syncthreads();
  for (int64_t i = tid; i < M * C; i += blockDim.x)
    if (!isfinite(ld64(xb, i))) s_flag = 0;
  __syncthreads();
  if (!s_flag) {
    for (int64_t i = tid; i < (1 + C) * K; i += blockDim.x) svb[i] = CUDART_NAN;
    for (int64_t i = tid; ub && i < M * K; i += blockDim.x) ub[i] = CUDART_NAN;
    return;
  }

  // Gram matrix of the smaller side, each entry summed in ascending order as on the CPU.
  for (int64_t idx = tid; idx < K * K; idx += blockDim.x) {
    const int64_t i = idx / K, j = idx % K;
    double acc = 0;
    if (tall)
      for (int64_t m = 0; m < M; ++m) acc += ld64(xb, m * C + i) * ld64(xb, m * C + j);
    else
      for (int64_t c = 0; c < C; ++c) acc += ld64(xb, i * C + c) * ld64(xb, j * C + c);
    G[idx] = acc;
    J[idx] = i == j ? 1.0 : 0.0;
  }
  __syncthreads();

  // Jacobi sweeps; n players in a round-robin tournament (a dummy when K is odd).
  const int n = int(K + (K & 1)), pairs = n / 2;
  for (int sweep = 0; sweep < kMaxSweeps && K > 1; ++sweep) {
    if (tid == 0) s_flag = 0;
    __syncthreads();
    for (int step = 0; step < n - 1; ++step) {
      for (int t = tid; t < pairs; t += blockDim.x) {
        int p = t == 0 ? n - 1 : (step + t) % (n - 1);
        int q = t == 0 ? step : (step - t + n - 1) % (n - 1);
        if (p > q) {
          const int w = p;
          p = q;
          q = w;
        }
        double c = 1, s = 0;
        if (q < K) {
          const double app = G[p * K + p], aqq = G[q * K + q], apq = G[p * K + q];
          if (apq != 0 && fabs(apq) > kEps * sqrt(fabs(app) * fabs(aqq))) {
            const double theta = (aqq - app) / (2 * apq);
            const double tt = fabs(theta) > 1e150 ? 0.5 / theta
                                                  : (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
            c = 1 / sqrt(tt * tt + 1);
            s = tt * c;
            s_flag = 1;
          } else {
            p = -1;
          }
        } else {
          p = -1;
        }
        s_p[t] = p;
        s_q[t] = q;
        s_c[t] = c;
        s_s[t] = s;
      }
      __syncthreads();
      for (int64_t idx = tid; idx < int64_t(pairs) * K; idx += blockDim.x) {  // columns of G and J
        const int t = int(idx / K);
        const int64_t k = idx % K;
        const int p = s_p[t];
        if (p < 0) continue;
        const int q = s_q[t];
        const double c = s_c[t], s = s_s[t];
        const double gp = G[k * K + p], gq = G[k * K + q];
        G[k * K + p] = c * gp - s * gq;
        G[k * K + q] = s * gp + c * gq;
        const double jp = J[k * K + p], jq = J[k * K + q];
        J[k * K + p] = c * jp - s * jq;
        J[k * K + q] = s * jp + c * jq;
      }
      __syncthreads();
      for (int64_t idx = tid; idx < int64_t(pairs) * K; idx += blockDim.x) {  // rows of G
        const int t = int(idx / K);
        const int64_t k = idx % K;
        const int p = s_p[t];
        if (p < 0) continue;
        const int q = s_q[t];
        const double c = s_c[t], s = s_s[t];
        const double gp = G[p * K + k], gq = G[q * K + k];
        G[p * K + k] = c * gp - s * gq;
        G[q * K + k] = s * gp + c * gq;
      }
      __syncthreads();
      for (int t = tid; t < pairs; t += blockDim.x)
        if (s_p[t] >= 0) G[s_p[t] * K + s_q[t]] = G[s_q[t] * K + s_p[t]] = 0;
      __syncthreads();
    }
    const int rotated = s_flag;
    __syncthreads();
    if (!rotated) break;
  }

  // Descending order of the eigenvalues (stable in the index).
  for (int64_t j = tid; j < K; j += blockDim.x) lam[j] = G[j * K + j];
  __syncthreads();
  for (int64_t j = tid; j < K; j += blockDim.x) {
    int64_t rank = 0;
    for (int64_t i = 0; i < K; ++i) rank += lam[i] > lam[j] || (lam[i] == lam[j] && i < j);
    s_order[rank] = int(j);
  }
  __syncthreads();
  const double lam_max = fmax(lam[s_order[0]], 0.0);
  const double floor = 8.0 * double(K) * kEps * lam_max;
  for (int64_t r = tid; r < K; r += blockDim.x) {
    const double l = lam[s_order[r]];
    svb[r] = l > floor ? sqrt(l) : 0.0;
  }
  // The eigenvectors are V (tall) or U (wide; in G's place when U is not wanted); the other side
  // is x V / sigma or x^T U / sigma.
  double* E = tall ? V : (ub ? ub : G);
  for (int64_t idx = tid; idx < K * K; idx += blockDim.x) {
    const int64_t k = idx / K, r = idx % K;
    E[k * K + r] = J[k * K + s_order[r]];
  }
  __syncthreads();
  double* O = tall ? ub : V;
  const int64_t other = tall ? M : C;
  for (int64_t idx = tid; O && idx < other * K; idx += blockDim.x) {
    const int64_t k = idx / K, r = idx % K;
    const double s = svb[r];
    double acc = 0;
    if (tall)
      for (int64_t c = 0; c < C; ++c) acc += ld64(xb, k * C + c) * E[c * K + r];
    else
      for (int64_t m = 0; m < M; ++m) acc += ld64(xb, m * C + k) * E[m * K + r];
    O[k * K + r] = s > 0 ? acc / s : 0.0;
  }
  __syncthreads();
  if (!tall && tid == 0) {  // complete the columns of zero singular values (rare: one thread)
    for (int64_t r = 0; r < K; ++r) {
      if (svb[r] > 0) continue;
      int64_t best = 0;
      double best_res = -1;
      for (int64_t i = 0; i < C; ++i) {
        double res = 1;
        for (int64_t q = 0; q < K; ++q)
          if (svb[q] > 0 || q < r) res -= V[i * K + q] * V[i * K + q];
        if (res > best_res) best_res = res, best = i;
      }
      for (int64_t c = 0; c < C; ++c) V[c * K + r] = c == best ? 1.0 : 0.0;
      for (int pass = 0; pass < 2; ++pass)
        for (int64_t q = 0; q < K; ++q) {
          if (!(svb[q] > 0 || q < r)) continue;
          double dot = 0;
          for (int64_t c = 0; c < C; ++c) dot += V[c * K + q] * V[c * K + r];
          for (int64_t c = 0; c < C; ++c) V[c * K + r] -= dot * V[c * K + q];
        }
      double nrm = 0;
      for (int64_t c = 0; c < C; ++c) nrm += V[c * K + r] * V[c * K + r];
      nrm = sqrt(nrm);
      for (int64_t c = 0; c < C; ++c) V[c * K + r] /= nrm;
    }
  }
  __syncthreads();
  for (int64_t r = tid; r < K; r += blockDim.x) {  // sign: the largest |entry| of V_r positive
    int64_t at = 0;
    for (int64_t c = 1; c < C; ++c)
      if (fabs(V[c * K + r]) > fabs(V[at * K + r])) at = c;
    if (V[at * K + r] < 0) {
      for (int64_t c = 0; c < C; ++c) V[c * K + r] = -V[c * K + r];
      if (ub)
        for (int64_t m = 0; m < M; ++m) ub[m * K + r] = -ub[m * K + r];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) svd_backward_kernel(const double* sv, const double* u, const T* g, T* dx,
                                                                double* work, int64_t per, int64_t M, int64_t C) {
  const int64_t K = M < C ? M : C;
  const int64_t b = blockIdx.x;
  const int tid = threadIdx.x;
  const double* s = sv + b * (1 + C) * K;
  const double* V = s + K;
  const double* U = u + b * M * K;
  const T* gs = g + b * (1 + C) * K;
  const T* gV = gs + K;
  double* P = work + b * per;
  double* inner = P + K * K;
  double* H = inner + K * K;
  for (int64_t idx = tid; idx < K * K; idx += blockDim.x) {  // P = V^T gV
    const int64_t i = idx / K, j = idx % K;
    double acc = 0;
    for (int64_t c = 0; c < C; ++c) acc += V[c * K + i] * ld64(gV, c * K + j);
    P[idx] = acc;
  }
  __syncthreads();
  for (int64_t idx = tid; idx < K * K; idx += blockDim.x) {
    const int64_t i = idx / K, j = idx % K;
    if (i == j) {
      inner[idx] = ld64(gs, i);
    } else {
      const double num = P[i * K + j] - P[j * K + i];
      inner[idx] = num == 0 ? 0.0 : s[i] * num / (s[j] * s[j] - s[i] * s[i]);
    }
  }
  __syncthreads();
  for (int64_t idx = tid; idx < K * C; idx += blockDim.x) {  // H = inner V^T (+ the M < C term)
    const int64_t i = idx / C, c = idx % C;
    double acc = 0;
    for (int64_t j = 0; j < K; ++j) acc += inner[i * K + j] * V[c * K + j];
    if (M < C) {
      double r = ld64(gV, c * K + i);
      for (int64_t j = 0; j < K; ++j) r -= P[j * K + i] * V[c * K + j];
      if (r != 0) acc += r / s[i];
    }
    H[idx] = acc;
  }
  __syncthreads();
  T* dxb = dx + b * M * C;
  for (int64_t idx = tid; idx < M * C; idx += blockDim.x) {  // dx = U H
    const int64_t m = idx / C, c = idx % C;
    double acc = 0;
    for (int64_t i = 0; i < K; ++i) acc += U[m * K + i] * H[i * C + c];
    st(dxb, idx, typename Acc<T>::type(acc));
  }
}

void check_sizes(int64_t B, int64_t M, int64_t C, const char* op) {
  const int64_t K = M < C ? M : C;
  RETORT_REQUIRE(K <= kMaxK, op, ": min(M, C) = ", K, " exceeds ", kMaxK, " on CUDA");
  RETORT_REQUIRE(B <= 2147483647, op, ": ", B, " matrices exceed the CUDA grid");
}

}  // namespace

void svd_right_forward(DType type, const void* x, double* sv, double* u, double* work, int64_t B, int64_t M,
                       int64_t C) {
  if (B == 0) return;
  check_sizes(B, M, C, "svd_right");
  RETORT_CUDA_DISPATCH_FLOAT(type, "svd_right", [&] {
    svd_forward_kernel<scalar_t><<<unsigned(B), kThreads, 0, stream()>>>(
        static_cast<const scalar_t*>(x), sv, u, work, kernels::svd_right_forward_work(M, C), M, C);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void svd_right_backward(DType type, const double* sv, const double* u, const void* g, void* dx, double* work,
                        int64_t B, int64_t M, int64_t C) {
  if (B == 0) return;
  check_sizes(B, M, C, "svd_right backward");
  RETORT_CUDA_DISPATCH_FLOAT(type, "svd_right backward", [&] {
    svd_backward_kernel<scalar_t><<<unsigned(B), kThreads, 0, stream()>>>(
        sv, u, static_cast<const scalar_t*>(g), static_cast<scalar_t*>(dx), work,
        kernels::svd_right_backward_work(M, C), M, C);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

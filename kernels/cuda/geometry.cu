// CUDA geometry kernels: L2 normalisation (one block per row) and pairwise squared distances
// (16x16 output tiles with the operands staged through shared memory, forward and backward).
// Reference: kernels/cpu/geometry.cpp.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/geometry.h"

namespace retort::cuda {
namespace {
constexpr int kTile = 16;

template <typename T>
__global__ void l2_forward_kernel(const T* x, T* y, typename Acc<T>::type* norm, int64_t rows, int64_t n, double eps) {
  using A = typename Acc<T>::type;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    A ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += ld(xr, i) * ld(xr, i);
    ss = block_sum(ss);
    const A nr = ::sqrt(ss);
    if (threadIdx.x == 0) norm[r] = nr;
    const A inv = A(1) / (nr > A(eps) ? nr : A(eps));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(y + r * n, i, A(ld(xr, i) * inv));
  }
}

template <typename T>
__global__ void l2_backward_kernel(const T* y, const T* g, const typename Acc<T>::type* norm, T* dx, int64_t rows,
                                   int64_t n, double eps) {
  using A = typename Acc<T>::type;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * n;
    const T* gr = g + r * n;
    const bool clamped = !(norm[r] > A(eps));
    A dot = 0;
    if (!clamped)
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dot += ld(gr, i) * ld(yr, i);
    dot = block_sum(dot);  // every thread takes part (clamped is uniform per row)
    const A inv = A(1) / (clamped ? A(eps) : norm[r]);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(dx + r * n, i, A((ld(gr, i) - ld(yr, i) * dot) * inv));
  }
}

template <typename T>
__global__ void pairwise_forward_kernel(const T* a, const T* b, T* out, int64_t N, int64_t M, int64_t D) {
  using A = typename Acc<T>::type;
  __shared__ A as[kTile][kTile + 1], bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  A acc = 0;
  for (int64_t k0 = 0; k0 < D; k0 += kTile) {
    const int64_t k = k0 + tx;
    as[ty][tx] = (i0 + ty < N && k < D) ? ld(a, (i0 + ty) * D + k) : A(0);
    bs[ty][tx] = (j0 + ty < M && k < D) ? ld(b, (j0 + ty) * D + k) : A(0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) {
      A d = as[ty][kk] - bs[tx][kk];
      acc += d * d;
    }
    __syncthreads();
  }
  if (i0 + ty < N && j0 + tx < M) st(out, (i0 + ty) * M + j0 + tx, acc);
}

template <typename T>
__global__ void pairwise_grad_kernel(const T* g, const T* a, const T* b, T* ga, int64_t N, int64_t M, int64_t D) {
  using A = typename Acc<T>::type;
  __shared__ A gs[kTile][kTile + 1], bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = int64_t(blockIdx.y) * kTile + ty, k = int64_t(blockIdx.x) * kTile + tx;
  const A aik = (i < N && k < D) ? ld(a, i * D + k) : A(0);
  A acc = 0;
  for (int64_t j0 = 0; j0 < M; j0 += kTile) {
    gs[ty][tx] = (i < N && j0 + tx < M) ? ld(g, i * M + j0 + tx) : A(0);
    bs[ty][tx] = (j0 + ty < M && k < D) ? ld(b, (j0 + ty) * D + k) : A(0);
    __syncthreads();
#pragma unroll
    for (int jj = 0; jj < kTile; ++jj) acc += gs[ty][jj] * (aik - bs[jj][tx]);
    __syncthreads();
  }
  if (i < N && k < D) st(ga, i * D + k, A(2) * acc);
}

void check_grid(int64_t rows, const char* op) {
  RETORT_REQUIRE((rows + kTile - 1) / kTile <= 65535, op, ": ", rows, " rows exceed the CUDA grid limit");
}
}  // namespace

void l2_normalize_forward(DType type, const void* x, void* y, void* norm, int64_t rows, int64_t n, double eps) {
  if (rows == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "l2_normalize", [&] {
    using A = typename Acc<scalar_t>::type;
    l2_forward_kernel<scalar_t><<<row_grid(rows), row_block_threads(n), 0, stream()>>>(
        static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), static_cast<A*>(norm), rows, n, eps);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void l2_normalize_backward(DType type, const void* y, const void* g, const void* norm, void* dx, int64_t rows,
                           int64_t n, double eps) {
  if (rows == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "l2_normalize backward", [&] {
    using A = typename Acc<scalar_t>::type;
    l2_backward_kernel<scalar_t><<<row_grid(rows), row_block_threads(n), 0, stream()>>>(
        static_cast<const scalar_t*>(y), static_cast<const scalar_t*>(g), static_cast<const A*>(norm),
        static_cast<scalar_t*>(dx), rows, n, eps);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void pairwise_sq_dist_forward(DType type, const void* a, const void* b, void* out, int64_t N, int64_t M, int64_t D) {
  if (N * M == 0) return;
  check_grid(N, "pairwise_sq_dist");
  RETORT_CUDA_DISPATCH_FLOAT(type, "pairwise_sq_dist", [&] {
    dim3 block(kTile, kTile), grid(unsigned((M + kTile - 1) / kTile), unsigned((N + kTile - 1) / kTile));
    pairwise_forward_kernel<scalar_t><<<grid, block, 0, stream()>>>(
        static_cast<const scalar_t*>(a), static_cast<const scalar_t*>(b), static_cast<scalar_t*>(out), N, M, D);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void pairwise_sq_dist_grad(DType type, const void* g, const void* a, const void* b, void* ga, int64_t N, int64_t M,
                           int64_t D) {
  if (N * D == 0) return;
  check_grid(N, "pairwise_sq_dist backward");
  RETORT_CUDA_DISPATCH_FLOAT(type, "pairwise_sq_dist backward", [&] {
    dim3 block(kTile, kTile), grid(unsigned((D + kTile - 1) / kTile), unsigned((N + kTile - 1) / kTile));
    pairwise_grad_kernel<scalar_t><<<grid, block, 0, stream()>>>(
        static_cast<const scalar_t*>(g), static_cast<const scalar_t*>(a), static_cast<const scalar_t*>(b),
        static_cast<scalar_t*>(ga), N, M, D);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

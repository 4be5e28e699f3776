// CUDA softmax / log_softmax: one block per row, block-wide max and sum, then one write pass;
// the fused backward reduces sum(g*y) (or sum(g)) per row. Reference: kernels/cpu/softmax.cpp.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/softmax.h"

namespace retort::cuda {
namespace {
template <typename T>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  using A = typename Acc<T>::type;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    A m = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = MaxOp{}(m, ld(xr, i));
    m = block_max(m);
    if (::isinf(m) && m < 0) m = 0;
    A s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ::exp(ld(xr, i) - m);
    s = block_sum(s);
    if (log) {
      A log_s = ::log(s);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(yr, i, A((ld(xr, i) - m) - log_s));
    } else {
      A inv = A(1) / s;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(yr, i, A(::exp(ld(xr, i) - m) * inv));
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* y, const T* g, T* dx, int64_t rows, int64_t n, bool log) {
  using A = typename Acc<T>::type;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * n;
    const T* gr = g + r * n;
    T* dr = dx + r * n;
    A s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += log ? ld(gr, i) : ld(gr, i) * ld(yr, i);
    s = block_sum(s);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      A yi = ld(yr, i), gi = ld(gr, i);
      st(dr, i, A(log ? gi - ::exp(yi) * s : yi * (gi - s)));
    }
  }
}
}  // namespace

void softmax_forward(DType type, const void* x, void* y, int64_t rows, int64_t n, bool log) {
  if (rows * n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "softmax", [&] {
    softmax_forward_kernel<scalar_t><<<row_grid(rows), row_block_threads(n), 0, stream()>>>(
        static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), rows, n, log);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void softmax_backward(DType type, const void* y, const void* g, void* dx, int64_t rows, int64_t n, bool log) {
  if (rows * n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "softmax backward", [&] {
    softmax_backward_kernel<scalar_t><<<row_grid(rows), row_block_threads(n), 0, stream()>>>(
        static_cast<const scalar_t*>(y), static_cast<const scalar_t*>(g), static_cast<scalar_t*>(dx), rows, n, log);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

// CUDA batch norm and layer norm entry points. Reference: kernels/cpu/norm.cpp.
// Batch norm: channels-last inputs go to bn_nhwc.cu; NCHW ones to the full-chip kernels
// (bn_chip_*.cu, the default) or the one-block-per-channel ones (bn_block.cu) by RETORT_CUDA_BN,
// read once (set_batch_norm_kernels switches).
// Layer norm: one warp per row for the forward and dx; weight/bias gradients reduce over rows in
// two deterministic passes (per-chunk partial sums, then a sum over chunks).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include "kernels/cuda/bn_kernels.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/scratch.cuh"
#include "kernels/norm.h"

namespace retort::cuda {
namespace {

constexpr int kLnWarpsPerBlock = 8;

template <typename V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename T>
__global__ void ln_forward_kernel(const T* x, const T* w, const T* b, int64_t rows, int64_t cols, double eps, T* y,
                                  typename Acc<T>::type* mean, typename Acc<T>::type* rstd) {
  using A = typename Acc<T>::type;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* p = x + row * cols;
  A s = 0;
  for (int64_t i = lane; i < cols; i += 32) s += ld(p, i);
  const A mu = warp_sum(s) / A(cols);
  A sq = 0;
  for (int64_t i = lane; i < cols; i += 32) {
    const A d = ld(p, i) - mu;
    sq += d * d;
  }
  const A rs = A(1) / ::sqrt(warp_sum(sq) / A(cols) + A(eps));
  if (lane == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  T* q = y + row * cols;
  for (int64_t i = lane; i < cols; i += 32) {
    A v = (ld(p, i) - mu) * rs;
    if (w) v *= ld(w, i);
    if (b) v += ld(b, i);
    st(q, i, v);
  }
}

template <typename T>
__global__ void ln_backward_dx_kernel(const T* g, const T* x, const T* w, const typename Acc<T>::type* mean,
                                      const typename Acc<T>::type* rstd, int64_t rows, int64_t cols, T* gx) {
  using A = typename Acc<T>::type;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* gr = g + row * cols;
  const T* xr = x + row * cols;
  const A mu = mean[row], rs = rstd[row];
  A sum_gw = 0, sum_gwx = 0;
  for (int64_t i = lane; i < cols; i += 32) {
    const A gwi = ld(gr, i) * (w ? ld(w, i) : A(1));
    sum_gw += gwi;
    sum_gwx += gwi * ((ld(xr, i) - mu) * rs);
  }
  const A mean_gw = warp_sum(sum_gw) / A(cols), mean_gwx = warp_sum(sum_gwx) / A(cols);
  for (int64_t i = lane; i < cols; i += 32) {
    const A gwi = ld(gr, i) * (w ? ld(w, i) : A(1));
    const A xhat = (ld(xr, i) - mu) * rs;
    st(gx, row * cols + i, rs * (gwi - mean_gw - xhat * mean_gwx));
  }
}

// Block (32, 8): 32 columns, rows of chunk blockIdx.y strided by gridDim.y * 8; writes one
// partial sum per (chunk, column).
template <typename T>
__global__ void ln_backward_partial_kernel(const T* g, const T* x, const typename Acc<T>::type* mean,
                                           const typename Acc<T>::type* rstd, int64_t rows, int64_t cols,
                                           typename Acc<T>::type* part_w, typename Acc<T>::type* part_b) {
  using A = typename Acc<T>::type;
  __shared__ A sw_s[8][33], sb_s[8][33];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x;
  A sw = 0, sb = 0;
  if (col < cols)
    for (int64_t r = int64_t(blockIdx.y) * 8 + threadIdx.y; r < rows; r += int64_t(gridDim.y) * 8) {
      const A gi = ld(g, r * cols + col);
      sw += gi * ((ld(x, r * cols + col) - mean[r]) * rstd[r]);
      sb += gi;
    }
  sw_s[threadIdx.y][threadIdx.x] = sw;
  sb_s[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int k = 1; k < 8; ++k) {
      sw += sw_s[k][threadIdx.x];
      sb += sb_s[k][threadIdx.x];
    }
    part_w[int64_t(blockIdx.y) * cols + col] = sw;
    part_b[int64_t(blockIdx.y) * cols + col] = sb;
  }
}

template <typename A>
__global__ void sum_partials_kernel(const A* part_w, const A* part_b, int64_t chunks, int64_t cols, A* gw, A* gb) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < cols; col += int64_t(gridDim.x) * blockDim.x) {
    A sw = 0, sb = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      sw += part_w[k * cols + col];
      sb += part_b[k * cols + col];
    }
    if (gw) gw[col] = sw;
    if (gb) gb[col] = sb;
  }
}

BatchNormKernels initial_batch_norm_kernels() {
  const char* env = std::getenv("RETORT_CUDA_BN");
  if (env && std::strcmp(env, "block") == 0) return BatchNormKernels::block_per_channel;
  RETORT_REQUIRE(!env || !*env || std::strcmp(env, "chip") == 0, "RETORT_CUDA_BN='", env,
                 "' is not a CUDA batch-norm implementation (chip, the default, or block)");
  return BatchNormKernels::full_chip;
}
std::atomic<BatchNormKernels>& batch_norm_kernels_setting() {
  static std::atomic<BatchNormKernels> setting{initial_batch_norm_kernels()};
  return setting;
}

}  // namespace

BatchNormKernels batch_norm_kernels() { return batch_norm_kernels_setting().load(std::memory_order_relaxed); }
void set_batch_norm_kernels(BatchNormKernels kernels) {
  batch_norm_kernels_setting().store(kernels, std::memory_order_relaxed);
}

void batch_norm_forward(DType type, const void* x, const void* weight, const void* bias, int64_t N, int64_t C,
                        int64_t S, bool channels_last, bool use_batch_stats, double eps,
                        const kernels::BnEpilogue& epi, void* mean, void* var, void* invstd, void* y) {
  BatchNormForwardIn* run = channels_last ? batch_norm_forward_nhwc
                            : batch_norm_kernels() == BatchNormKernels::block_per_channel ? batch_norm_forward_block
                                                                                         : batch_norm_forward_chip;
  run(type, x, weight, bias, N, C, S, use_batch_stats, eps, epi, mean, var, invstd, y);
}

void batch_norm_backward(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                         const void* invstd, int64_t N, int64_t C, int64_t S, bool channels_last,
                         bool use_batch_stats, const void* relu_y, void* grad_x, void* grad_weight, void* grad_bias,
                         void* grad_residual) {
  BatchNormBackwardIn* run = channels_last ? batch_norm_backward_nhwc
                             : batch_norm_kernels() == BatchNormKernels::block_per_channel ? batch_norm_backward_block
                                                                                          : batch_norm_backward_chip;
  run(type, grad_y, x, weight, mean, invstd, N, C, S, use_batch_stats, relu_y, grad_x, grad_weight, grad_bias,
      grad_residual);
}

void layer_norm_forward(DType type, const void* x, const void* weight, const void* bias, int64_t rows,
                        int64_t cols, double eps, void* y, void* mean, void* rstd) {
  if (rows == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "layer_norm", [&] {
    using A = typename Acc<scalar_t>::type;
    const unsigned grid = unsigned((rows + kLnWarpsPerBlock - 1) / kLnWarpsPerBlock);
    ln_forward_kernel<scalar_t><<<grid, kLnWarpsPerBlock * 32, 0, stream()>>>(
        static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(weight), static_cast<const scalar_t*>(bias),
        rows, cols, eps, static_cast<scalar_t*>(y), static_cast<A*>(mean), static_cast<A*>(rstd));
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void layer_norm_backward(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                         const void* rstd, int64_t rows, int64_t cols, void* grad_x, void* grad_weight,
                         void* grad_bias) {
  if (rows == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "layer_norm backward", [&] {
    using A = typename Acc<scalar_t>::type;
    const scalar_t* g = static_cast<const scalar_t*>(grad_y);
    const scalar_t* xp = static_cast<const scalar_t*>(x);
    if (grad_x) {
      const unsigned grid = unsigned((rows + kLnWarpsPerBlock - 1) / kLnWarpsPerBlock);
      ln_backward_dx_kernel<scalar_t><<<grid, kLnWarpsPerBlock * 32, 0, stream()>>>(
          g, xp, static_cast<const scalar_t*>(weight), static_cast<const A*>(mean), static_cast<const A*>(rstd), rows,
          cols, static_cast<scalar_t*>(grad_x));
      RETORT_CUDA_LAUNCH_CHECK();
    }
    if (grad_weight || grad_bias) {
      const int64_t chunks = std::min<int64_t>((rows + 31) / 32, 128);
      const Scratch scratch(size_t(2 * chunks * cols) * sizeof(A));
      A* part = scratch.as<A>();
      const dim3 grid(unsigned((cols + 31) / 32), unsigned(chunks)), block(32, 8);
      ln_backward_partial_kernel<scalar_t><<<grid, block, 0, stream()>>>(
          g, xp, static_cast<const A*>(mean), static_cast<const A*>(rstd), rows, cols, part, part + chunks * cols);
      RETORT_CUDA_LAUNCH_CHECK();
      sum_partials_kernel<A><<<grid_for(cols), 256, 0, stream()>>>(part, part + chunks * cols, chunks, cols,
                                                                    static_cast<A*>(grad_weight),
                                                                    static_cast<A*>(grad_bias));
      RETORT_CUDA_LAUNCH_CHECK();
    }
  });
}

}  // namespace retort::cuda

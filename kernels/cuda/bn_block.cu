// CUDA batch norm, one thread block per channel (selected by RETORT_CUDA_BN=block; the default
// is the full-chip bn_chip_*.cu). Reference: kernels/cpu/norm.cpp. Block reductions, the
// statistics summed in double like the CPU, two passes (mean, then squared deviations); the
// epilogue (residual, ReLU) in the normalising pass, its mask in the backward's.
#include "kernels/cuda/bn_kernels.h"
#include "kernels/cuda/bn_pointers.cuh"
#include "kernels/cuda/common.cuh"

namespace retort::cuda {
namespace {

constexpr int kBnThreads = 512;

template <typename V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block; every thread gets the result. `scratch` holds 32 values.
template <typename V>
__device__ V block_sum(V v, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = threadIdx.x < nwarps ? scratch[threadIdx.x] : V(0);
  if (warp == 0) v = warp_sum(v);
  if (threadIdx.x == 0) scratch[0] = v;
  __syncthreads();
  v = scratch[0];
  __syncthreads();
  return v;
}

// Element j of channel c in [N, C, S], j in [0, N*S).
__device__ __forceinline__ int64_t bn_index(int64_t j, int64_t c, int64_t C, int64_t S) {
  const int64_t n = j / S;
  return (n * C + c) * S + (j - n * S);
}

template <typename T>
__global__ void bn_forward_kernel(const T* x, const typename Acc<T>::type* w, const typename Acc<T>::type* b,
                                  int64_t N, int64_t C, int64_t S, bool batch_stats, double eps, const T* residual,
                                  bool relu, typename Acc<T>::type* mean,
                                  typename Acc<T>::type* var, typename Acc<T>::type* invstd, T* y) {
  using A = typename Acc<T>::type;
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, M = N * S;
  A mu, v;
  if (batch_stats) {
    double s = 0;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) s += double(ld(x, bn_index(j, c, C, S)));
    mu = A(block_sum(s, scratch) / double(M));
    double sq = 0;
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      const double d = double(ld(x, bn_index(j, c, C, S))) - double(mu);
      sq += d * d;
    }
    v = A(block_sum(sq, scratch) / double(M));
    if (threadIdx.x == 0) {
      mean[c] = mu;
      var[c] = v;
    }
  } else {
    mu = mean[c];
    v = var[c];
  }
  const A is = A(1) / ::sqrt(v + A(eps));
  if (threadIdx.x == 0) invstd[c] = is;
  const A scale = w ? w[c] * is : is;
  const A shift = (b ? b[c] : A(0)) - mu * scale;
  for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    const int64_t i = bn_index(j, c, C, S);
    A v = ld(x, i) * scale + shift;
    if (residual) v += ld(residual, i);
    if (relu) v = v < A(0) ? A(0) : v;
    st(y, i, v);
  }
}

template <typename T>
__global__ void bn_backward_kernel(const T* g, const T* x, const T* relu_y, const typename Acc<T>::type* w,
                                   const typename Acc<T>::type* mean, const typename Acc<T>::type* invstd, int64_t N,
                                   int64_t C, int64_t S, bool batch_stats, T* gx, typename Acc<T>::type* gw,
                                   typename Acc<T>::type* gb, T* g_residual) {
  using A = typename Acc<T>::type;
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, M = N * S;
  const A mu = mean[c], is = invstd[c];
  // g' = g through the forward's ReLU mask (kernels/norm.h's epilogue)
  auto masked = [&](int64_t i) { return relu_y && !(ld(relu_y, i) > A(0)) ? A(0) : ld(g, i); };
  double sum_g = 0, sum_gx = 0;
  for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    const int64_t i = bn_index(j, c, C, S);
    const double gi = double(masked(i));
    sum_g += gi;
    sum_gx += gi * double((ld(x, i) - mu) * is);
  }
  sum_g = block_sum(sum_g, scratch);
  sum_gx = block_sum(sum_gx, scratch);
  if (threadIdx.x == 0) {
    if (gw) gw[c] = A(sum_gx);
    if (gb) gb[c] = A(sum_g);
  }
  if (g_residual)
    for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
      const int64_t i = bn_index(j, c, C, S);
      st(g_residual, i, masked(i));
    }
  if (!gx) return;
  const A k = (w ? w[c] : A(1)) * is;
  const A mean_g = batch_stats ? A(sum_g / double(M)) : A(0);
  const A mean_gx = batch_stats ? A(sum_gx / double(M)) : A(0);
  for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    const int64_t i = bn_index(j, c, C, S);
    const A xhat = (ld(x, i) - mu) * is;
    st(gx, i, k * (masked(i) - mean_g - xhat * mean_gx));
  }
}

}  // namespace

void batch_norm_forward_block(DType type, const void* x, const void* weight, const void* bias, int64_t N,
                              int64_t C, int64_t S, bool use_batch_stats, double eps, const kernels::BnEpilogue& epi,
                              void* mean, void* var, void* invstd, void* y) {
  if (N * C * S == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "batch_norm2d", [&] {
    const auto p = bn::forward_pointers<scalar_t>(x, weight, bias, epi, mean, var, invstd, y);
    bn_forward_kernel<scalar_t><<<unsigned(C), kBnThreads, 0, stream()>>>(
        p.x, p.w, p.b, N, C, S, use_batch_stats, eps, p.residual, p.relu, p.mean, p.var, p.invstd, p.y);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void batch_norm_backward_block(DType type, const void* grad_y, const void* x, const void* weight,
                               const void* mean, const void* invstd, int64_t N, int64_t C, int64_t S,
                               bool use_batch_stats, const void* relu_y, void* grad_x, void* grad_weight,
                               void* grad_bias, void* grad_residual) {
  if (N * C * S == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "batch_norm2d backward", [&] {
    const auto p = bn::backward_pointers<scalar_t>(grad_y, x, relu_y, weight, mean, invstd, grad_x, grad_weight,
                                                   grad_bias, grad_residual);
    bn_backward_kernel<scalar_t><<<unsigned(C), kBnThreads, 0, stream()>>>(
        p.g, p.x, p.relu_y, p.w, p.mean, p.invstd, N, C, S, use_batch_stats, p.gx, p.gw, p.gb, p.g_residual);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

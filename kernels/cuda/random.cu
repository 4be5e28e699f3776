// CUDA random kernels (uniform, normal, dropout) on the counter-based generator: the same
// counters as kernels/cpu/random.cpp, so uniforms and dropout masks match the CPU bit for bit.
#include "kernels/cuda/common.cuh"
#include "kernels/random.h"
#include "kernels/random_draws.h"

namespace retort::cuda {
namespace {
#define RETORT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Stores a [0, 1) double so that it stays below 1 after rounding to T (as on the CPU).
template <typename T> __device__ __forceinline__ T unit_value(double u) { return T(u); }
template <> __device__ __forceinline__ float unit_value<float>(double u) {
  float f = float(u);
  return f < 1.0f ? f : kBelowOneF32;
}
template <> __device__ __forceinline__ __nv_bfloat16 unit_value<__nv_bfloat16>(double u) {
  __nv_bfloat16 b = __float2bfloat16(float(u));
  return __bfloat162float(b) < 1.0f ? b : __float2bfloat16(kBelowOneBF16);
}
template <typename T> __device__ __forceinline__ T from_double(double v) { return T(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_double<__nv_bfloat16>(double v) {
  return __float2bfloat16(float(v));
}

template <typename T>
__global__ void uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t base) {
  RETORT_GRID_LOOP(i, n) out[i] = unit_value<T>(uniform_at(seed, base, i));
}
template <typename T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t base) {
  RETORT_GRID_LOOP(i, n) out[i] = from_double<T>(normal_at(seed, base, i));
}
template <typename T>
__global__ void dropout_kernel(const T* x, Layout lx, T* out, uint8_t* mask, int64_t n, uint64_t seed, uint64_t base,
                               double p, double scale) {
  using A = typename Acc<T>::type;
  const A s = A(scale);
  RETORT_GRID_LOOP(i, n) {
    const bool keep = dropout_keep(seed, base, i, p);
    mask[i] = keep ? 1 : 0;
    st(out, i, keep ? ld(x, lx.offset_of(i)) * s : A(0));
  }
}
template <typename T>
__global__ void dropout_backward_kernel(const T* g, Layout lg, const uint8_t* mask, double scale, T* out, int64_t n) {
  using A = typename Acc<T>::type;
  const A s = A(scale);
  RETORT_GRID_LOOP(i, n) st(out, i, mask[i] ? ld(g, lg.offset_of(i)) * s : A(0));
}
}  // namespace

void uniform(DType type, void* out, int64_t n, uint64_t seed, uint64_t base) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "rand", [&] {
    uniform_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(static_cast<scalar_t*>(out), n, seed, base);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void normal(DType type, void* out, int64_t n, uint64_t seed, uint64_t base) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "randn", [&] {
    normal_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(static_cast<scalar_t*>(out), n, seed, base);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void dropout(DType type, const void* x, const Layout& lx, void* out, uint8_t* mask, int64_t n, uint64_t seed,
             uint64_t base, double p, double scale) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "dropout", [&] {
    dropout_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(static_cast<const scalar_t*>(x), lx,
                                                                static_cast<scalar_t*>(out), mask, n, seed, base, p,
                                                                scale);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void dropout_backward(DType type, const void* grad_out, const Layout& lg, const uint8_t* mask, double scale,
                      void* grad_in, int64_t n) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "dropout backward", [&] {
    dropout_backward_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(static_cast<const scalar_t*>(grad_out), lg,
                                                                         mask, scale, static_cast<scalar_t*>(grad_in),
                                                                         n);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

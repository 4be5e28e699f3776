// CUDA broadcast binary kernels (add, sub, mul, div, maximum, ge_mask). Reference: kernels/cpu/elementwise_binary.cpp.
#include "kernels/cuda/common.cuh"
#include "kernels/binary.h"

namespace retort::cuda {
namespace {
template <typename A>
__device__ __forceinline__ A apply(BinaryOp op, A x, A y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
    case BinaryOp::maximum: return (x >= y || x != x) ? x : y;  // NaN propagates
    case BinaryOp::ge_mask: return x >= y ? A(1) : A(0);
  }
  return x;
}
template <typename T>
__global__ void binary_kernel(BinaryOp op, const T* a, Layout la, const T* b, Layout lb, T* out, int64_t n) {
  using A = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(out, i, apply<A>(op, ld(a, la.offset_of(i)), ld(b, lb.offset_of(i))));
}
}  // namespace

void binary(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb, void* out,
            int64_t n) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "binary op", [&] {
    binary_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(op, static_cast<const scalar_t*>(a), la,
                                                               static_cast<const scalar_t*>(b), lb,
                                                               static_cast<scalar_t*>(out), n);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

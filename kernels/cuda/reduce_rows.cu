// CUDA row reductions (sum, max): one block per row, warp shuffles, float/double accumulation.
// Reference: kernels/cpu/reduce_rows.cpp.
#include <cfloat>
#include "kernels/cuda/common.cuh"
#include "kernels/reduce.h"

namespace retort::cuda {
namespace {
template <typename A>
__device__ __forceinline__ A combine(ReduceOp op, A x, A y) {
  if (op == ReduceOp::sum) return x + y;
  return (x > y || x != x) ? x : y;
}
template <typename T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* in, T* out, int64_t outer, int64_t inner) {
  using A = typename Acc<T>::type;
  const A init = op == ReduceOp::sum ? A(0) : A(-INFINITY);
  __shared__ A warp_acc[32];
  for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const T* row = in + r * inner;
    A acc = init;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) acc = combine(op, acc, ld(row, i));
    for (int off = 16; off > 0; off >>= 1) acc = combine(op, acc, __shfl_down_sync(0xffffffffu, acc, off));
    if ((threadIdx.x & 31) == 0) warp_acc[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
      int nwarps = blockDim.x >> 5;
      acc = threadIdx.x < nwarps ? warp_acc[threadIdx.x] : init;
      for (int off = 16; off > 0; off >>= 1) acc = combine(op, acc, __shfl_down_sync(0xffffffffu, acc, off));
      if (threadIdx.x == 0) st(out, r, acc);
    }
    __syncthreads();
  }
}
}  // namespace

void reduce_rows(ReduceOp op, DType type, const void* in, void* out, int64_t outer, int64_t inner) {
  if (outer == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "reduce", [&] {
    unsigned grid = unsigned(outer < 65535 * 8 ? outer : 65535 * 8);
    reduce_rows_kernel<scalar_t><<<grid, 256, 0, stream()>>>(op, static_cast<const scalar_t*>(in),
                                                             static_cast<scalar_t*>(out), outer, inner);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

// CUDA max-with-index row reduction (one block per row, (value, index) pairs reduced with warp
// shuffles, ties to the lower index, NaN wins) and the scatter for max's backward.
// Reference: kernels/cpu/reduce_arg.cpp.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/reduce.h"

namespace retort::cuda {
namespace {
// True when (v2, i2) should replace (v1, i1) as the running maximum.
template <typename A>
__device__ __forceinline__ bool better(A v1, int64_t i1, A v2, int64_t i2) {
  bool n1 = v1 != v1, n2 = v2 != v2;
  if (n1 || n2) return n2 && (!n1 || i2 < i1);
  return v2 > v1 || (v2 == v1 && i2 < i1);
}

template <typename T>
__global__ void max_rows_kernel(const T* in, T* values, int64_t* index, int64_t outer, int64_t inner) {
  using A = typename Acc<T>::type;
  __shared__ A sv[32];
  __shared__ int64_t si[32];
  for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const T* row = in + r * inner;
    A bv = -INFINITY;
    int64_t bi = inner;  // sentinel: loses against any real index
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
      A x = ld(row, i);
      if (bi == inner || better(bv, bi, x, i)) { bv = x; bi = i; }
    }
    for (int off = 16; off > 0; off >>= 1) {
      A ov = __shfl_xor_sync(0xffffffffu, bv, off);
      int64_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
      if (oi != inner && (bi == inner || better(bv, bi, ov, oi))) { bv = ov; bi = oi; }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
      const int nwarps = int(blockDim.x) >> 5;
      bv = lane < nwarps ? sv[lane] : A(-INFINITY);
      bi = lane < nwarps ? si[lane] : inner;
      for (int off = 16; off > 0; off >>= 1) {
        A ov = __shfl_xor_sync(0xffffffffu, bv, off);
        int64_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (oi != inner && (bi == inner || better(bv, bi, ov, oi))) { bv = ov; bi = oi; }
      }
      if (lane == 0) {
        index[r] = bi;
        if (values) values[r] = row[bi];
      }
    }
  }
}

template <typename T>
__global__ void scatter_rows_kernel(const T* g, const int64_t* index, T* out, int64_t outer, int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = k / inner, i = k % inner;
    out[k] = i == index[r] ? g[r] : T(0.0f);
  }
}
}  // namespace

void max_rows(DType type, const void* in, void* values, int64_t* index, int64_t outer, int64_t inner) {
  if (outer == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "max/argmax", [&] {
    max_rows_kernel<scalar_t><<<row_grid(outer), row_block_threads(inner), 0, stream()>>>(
        static_cast<const scalar_t*>(in), static_cast<scalar_t*>(values), index, outer, inner);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void scatter_rows(DType type, const void* g, const int64_t* index, void* out, int64_t outer, int64_t inner) {
  if (outer * inner == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "max backward", [&] {
    scatter_rows_kernel<scalar_t><<<grid_for(outer * inner), 256, 0, stream()>>>(
        static_cast<const scalar_t*>(g), index, static_cast<scalar_t*>(out), outer, inner);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

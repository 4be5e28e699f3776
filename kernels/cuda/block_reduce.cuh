// Block-wide all-reduce helpers for the row kernels (softmax, losses, geometry): every thread
// of the block gets the result. blockDim.x must be a multiple of 32 (at most 1024).
#pragma once
#include <cuda_runtime.h>

namespace retort::cuda {

template <typename A, typename Op>
__device__ __forceinline__ A warp_all_reduce(A v, Op op) {
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Safe to call repeatedly in one kernel: it synchronises before reusing its shared buffer.
template <typename A, typename Op>
__device__ __forceinline__ A block_all_reduce(A v, Op op, A identity) {
  __shared__ A buf[32];
  v = warp_all_reduce(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  const int nwarps = int(blockDim.x + 31) >> 5;
  v = lane < nwarps ? buf[lane] : identity;
  return warp_all_reduce(v, op);
}

struct SumOp {
  template <typename A> __device__ __forceinline__ A operator()(A x, A y) const { return x + y; }
};
struct MaxOp {
  template <typename A> __device__ __forceinline__ A operator()(A x, A y) const { return (x > y || x != x) ? x : y; }
};

template <typename A> __device__ __forceinline__ A block_sum(A v) { return block_all_reduce(v, SumOp{}, A(0)); }
template <typename A> __device__ __forceinline__ A block_max(A v) { return block_all_reduce(v, MaxOp{}, A(-INFINITY)); }

// Threads per block for one-block-per-row kernels: enough warps to cover the row, at most 256.
inline unsigned row_block_threads(int64_t inner) {
  int64_t t = (inner + 31) / 32 * 32;
  return unsigned(t < 32 ? 32 : (t > 256 ? 256 : t));
}
inline unsigned row_grid(int64_t rows) { return unsigned(rows < 65535 * 8 ? (rows < 1 ? 1 : rows) : 65535 * 8); }

}  // namespace retort::cuda

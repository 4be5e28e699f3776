// CUDA fused SGD and AdamW updates, in place: a grid-stride kernel per parameter
// (sgd_update, adamw_update), and multi-tensor kernels that update a whole list of parameters
// in one launch (sgd_multi_update, adamw_multi_update), or sum the squares of a whole list
// (sum_squares_multi: a chunk per block, then one block adds the chunks in a fixed order). The
// per-element math is kernels/optim_math.h, shared with the CPU reference (kernels/cpu/optim.cpp).
//
// Multi-tensor launches (the idea of apex's / PyTorch's multi_tensor_apply): the tensors' pointers
// and sizes travel by value in the kernel's parameters (a __grid_constant__ TensorTable, kept
// under the 4 KB parameter limit of older toolkits), with each tensor's first chunk; block b
// works on chunk b, finds its tensor by a binary search over the first chunks, so every block
// holds one chunk (kChunk elements) of one tensor. A table holds up to 136 tensors (SGD without
// momentum), 106 (SGD with momentum), 87 (AdamW) or 191 (sum of squares); longer lists are split into several
// launches. resnet8x4 has 32 parameter tensors (11 decay + 21 no-decay): SGD with momentum
// takes 2 launches (one per group) instead of 32. ViT-S (vit_small) has 152 (52 + 100): AdamW
// takes 3 launches (1 + 2) instead of 152, or 2 with a single group. The skip flag is read once
// per block, by thread 0; a block that sees it nonzero writes nothing. So are AdamW's step count
// and the learning rate when they live on the device (then thread 0 computes the factors).
// Nothing here synchronises with the host.
#include <array>
#include <climits>
#include <type_traits>
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/scratch.cuh"
#include "kernels/optim.h"
#include "kernels/optim_math.h"

namespace retort::cuda {
namespace {
using optim_math::AdamWFactors;
using optim_math::SgdFactors;

template <typename T, typename A>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdFactors<A> f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A b = f.use_momentum ? ld(buf, i) : A(0);
    st(p, i, optim_math::sgd_element(f, ld(p, i), ld(g, i), b));
    if (f.use_momentum) st(buf, i, b);
  }
}

template <typename T, typename A>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, AdamWFactors<A> f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A mi = ld(m, i), vi = ld(v, i);
    st(p, i, optim_math::adamw_element(f, ld(p, i), ld(g, i), mi, vi));
    st(m, i, mi);
    st(v, i, vi);
  }
}

// ---- multi-tensor launches

constexpr int kThreads = 256;
constexpr int kIlp = 4;                           // elements each thread loads before it computes
constexpr int64_t kChunk = kThreads * kIlp * 16;  // 16384 elements per block
constexpr size_t kTableBytes = 3840;              // the rest of 4 KB: the factors, hyper-parameters, pointers

// How many tensors fit a table with Depth pointers per tensor (pointers, size, first chunk).
constexpr int max_tensors(int depth) {
  return int((kTableBytes - 8) / (depth * sizeof(void*) + sizeof(int64_t) + sizeof(int32_t)));
}

// Depth pointers per tensor: ptr[0] the parameter, ptr[1] the gradient (only read), then the
// state (momentum buffer; or exp_avg, exp_avg_sq). first_chunk[t] is the first block of tensor t.
template <int Depth> struct TensorTable {
  static constexpr int kMaxTensors = max_tensors(Depth);
  void* ptr[Depth][kMaxTensors];
  int64_t n[kMaxTensors];
  int32_t first_chunk[kMaxTensors];
  int32_t count;
};
static_assert(sizeof(TensorTable<2>) <= kTableBytes && sizeof(TensorTable<3>) <= kTableBytes &&
              sizeof(TensorTable<4>) <= kTableBytes);
static_assert(sizeof(TensorTable<4>) + sizeof(AdamWFactors<double>) + 3 * sizeof(void*) + sizeof(AdamWHyper) <= 4096);
static_assert(sizeof(TensorTable<3>) + sizeof(SgdFactors<double>) + 2 * sizeof(void*) + sizeof(SgdHyper) <= 4096);
static_assert(TensorTable<1>::kMaxTensors == 191 && TensorTable<2>::kMaxTensors == 136 &&
                  TensorTable<3>::kMaxTensors == 106 && TensorTable<4>::kMaxTensors == 87,
              "the capacities quoted at the top of this file");

// Thread 0 reads the flag, the block follows it.
__device__ __forceinline__ bool block_skips(const float* skip) {
  __shared__ int skip_block;
  if (threadIdx.x == 0) skip_block = skip != nullptr && *skip != 0.0f;  // NaN is nonzero
  __syncthreads();
  return skip_block != 0;
}

// This block's tensor: the last t with first_chunk[t] <= blockIdx.x.
template <int Depth> __device__ __forceinline__ int block_tensor(const TensorTable<Depth>& table) {
  int lo = 0, hi = table.count - 1;
  const int32_t chunk = int32_t(blockIdx.x);
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table.first_chunk[mid] <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Runs op on every element of this block's chunk: each thread loads kIlp elements of every
// pointer, then op(values) updates them, and all but the gradient (slot 1) are stored back.
template <typename T, typename A, int Depth, typename Op>
__device__ __forceinline__ void update_block_chunk(const TensorTable<Depth>& table, Op op) {
  const int t = block_tensor(table);
  const int64_t begin = int64_t(int32_t(blockIdx.x) - table.first_chunk[t]) * kChunk;
  const int64_t end = begin + kChunk < table.n[t] ? begin + kChunk : table.n[t];
  T* ptr[Depth];
#pragma unroll
  for (int d = 0; d < Depth; ++d) ptr[d] = static_cast<T*>(table.ptr[d][t]);
  for (int64_t base = begin + threadIdx.x; base < end; base += int64_t(kIlp) * kThreads) {
    A v[kIlp][Depth];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + int64_t(k) * kThreads;
      if (i < end)
#pragma unroll
        for (int d = 0; d < Depth; ++d) v[k][d] = ld(ptr[d], i);
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + int64_t(k) * kThreads;
      if (i >= end) continue;
      op(v[k]);
#pragma unroll
      for (int d = 0; d < Depth; ++d)
        if (d != 1) st(ptr[d], i, v[k][d]);
    }
  }
}

// Depth 3 with momentum (parameter, gradient, buffer), 2 without.
template <typename T, typename A, int Depth>
__global__ void __launch_bounds__(kThreads)
    sgd_multi_kernel(const __grid_constant__ TensorTable<Depth> table, SgdFactors<A> f, const float* skip,
                     const double* lr, SgdHyper h) {
  if (block_skips(skip)) return;
  if (lr) {  // uniform over the grid: every thread reaches the barrier
    __shared__ SgdFactors<A> at_lr;
    if (threadIdx.x == 0) {
      h.lr = *lr;
      at_lr = optim_math::sgd_factors<A>(h);
    }
    __syncthreads();
    f = at_lr;
  }
  update_block_chunk<T, A, Depth>(table, [&](A(&x)[Depth]) {
    if constexpr (Depth == 3) {
      x[0] = optim_math::sgd_element(f, x[0], x[1], x[2]);
    } else {
      A no_buffer = A(0);  // untouched: f.use_momentum is false
      x[0] = optim_math::sgd_element(f, x[0], x[1], no_buffer);
    }
  });
}

// With a step count or a learning rate on the device, thread 0 computes the step's factors from
// them (in double, as the host would) and the block uses them instead of f.
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    adamw_multi_kernel(const __grid_constant__ TensorTable<4> table, AdamWFactors<A> f, const float* skip,
                       const double* step_count, const double* lr, AdamWHyper h) {
  if (block_skips(skip)) return;
  if (step_count || lr) {  // uniform over the grid: every thread reaches the barrier
    __shared__ AdamWFactors<A> at_step;
    if (threadIdx.x == 0) {
      if (lr) h.lr = *lr;
      at_step = optim_math::adamw_factors<A>(h, step_count ? *step_count : double(h.step));
    }
    __syncthreads();
    f = at_step;
  }
  update_block_chunk<T, A, 4>(table, [&](A(&x)[4]) { x[0] = optim_math::adamw_element(f, x[0], x[1], x[2], x[3]); });
}

// This block's chunk of one tensor, each element squared in double, summed by a tree into
// partials[blockIdx.x].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    sum_squares_chunk_kernel(const __grid_constant__ TensorTable<1> table, double* partials) {
  const int t = block_tensor(table);
  const int64_t begin = int64_t(int32_t(blockIdx.x) - table.first_chunk[t]) * kChunk;
  const int64_t end = begin + kChunk < table.n[t] ? begin + kChunk : table.n[t];
  const T* p = static_cast<const T*>(table.ptr[0][t]);
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const double v = double(ld(p, i));
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// One block adds the n partials: thread k those at k, k + kThreads, ... in order, then a tree.
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const double* partials, int64_t n, double* out) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += partials[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

// Fills tables from tensors[0..count) (pointers_of(tensor): an array of at least Depth
// pointers) and calls launch(table, blocks) whenever one is full, and for the last one. Empty
// tensors are left out.
template <int Depth, typename Tensor, typename PointersOf, typename Launch>
void launch_in_tables(const Tensor* tensors, int64_t count, PointersOf pointers_of, Launch launch) {
  TensorTable<Depth> table{};
  int64_t blocks = 0;
  auto flush = [&] {
    if (table.count > 0) launch(table, blocks);
    table.count = 0;
    blocks = 0;
  };
  for (int64_t i = 0; i < count; ++i) {
    const Tensor& tensor = tensors[i];
    if (tensor.n == 0) continue;
    const int64_t chunks = (tensor.n + kChunk - 1) / kChunk;
    RETORT_REQUIRE(chunks <= INT32_MAX, "multi-tensor update: a tensor of ", tensor.n, " elements is too large");
    if (table.count == TensorTable<Depth>::kMaxTensors || blocks + chunks > INT32_MAX) flush();
    const int t = table.count++;
    const auto pointers = pointers_of(tensor);
    for (int d = 0; d < Depth; ++d) table.ptr[d][t] = pointers[size_t(d)];
    table.n[t] = tensor.n;
    table.first_chunk[t] = int32_t(blocks);
    blocks += chunks;
  }
  flush();
}
}  // namespace

void sgd_update(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "sgd_update", [&] {
    using A = typename Acc<scalar_t>::type;
    sgd_kernel<scalar_t, A><<<grid_for(n), 256, 0, stream()>>>(
        static_cast<scalar_t*>(param), static_cast<const scalar_t*>(grad), static_cast<scalar_t*>(momentum_buf), n,
        optim_math::sgd_factors<A>(h));
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void adamw_update(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                  const AdamWHyper& h) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "adamw_update", [&] {
    using A = typename Acc<scalar_t>::type;
    adamw_kernel<scalar_t, A><<<grid_for(n), 256, 0, stream()>>>(
        static_cast<scalar_t*>(param), static_cast<const scalar_t*>(grad), static_cast<scalar_t*>(exp_avg),
        static_cast<scalar_t*>(exp_avg_sq), n, optim_math::adamw_factors<A>(h));
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void sgd_multi_update(DType type, const SgdTensor* tensors, int64_t count, const SgdHyper& h, const float* skip,
                      const double* lr) {
  RETORT_CUDA_DISPATCH_FLOAT(type, "sgd_multi_update", [&] {
    using A = typename Acc<scalar_t>::type;
    const SgdFactors<A> f = optim_math::sgd_factors<A>(h);
    auto run = [&](auto depth) {
      constexpr int kDepth = decltype(depth)::value;
      auto pointers_of = [](const SgdTensor& s) {
        return std::array<void*, 3>{s.param, const_cast<void*>(s.grad), s.momentum_buf};
      };
      launch_in_tables<kDepth>(tensors, count, pointers_of, [&](const TensorTable<kDepth>& table, int64_t blocks) {
        sgd_multi_kernel<scalar_t, A, kDepth>
            <<<unsigned(blocks), kThreads, 0, stream()>>>(table, f, skip, lr, h);
        RETORT_CUDA_LAUNCH_CHECK();
      });
    };
    if (f.use_momentum) run(std::integral_constant<int, 3>{});
    else run(std::integral_constant<int, 2>{});
  });
}

void adamw_multi_update(DType type, const AdamwTensor* tensors, int64_t count, const AdamWHyper& h,
                        const float* skip, const double* step_count, const double* lr) {
  RETORT_CUDA_DISPATCH_FLOAT(type, "adamw_multi_update", [&] {
    using A = typename Acc<scalar_t>::type;
    const AdamWFactors<A> f = optim_math::adamw_factors<A>(h);
    auto pointers_of = [](const AdamwTensor& s) {
      return std::array<void*, 4>{s.param, const_cast<void*>(s.grad), s.exp_avg, s.exp_avg_sq};
    };
    launch_in_tables<4>(tensors, count, pointers_of, [&](const TensorTable<4>& table, int64_t blocks) {
      adamw_multi_kernel<scalar_t, A>
          <<<unsigned(blocks), kThreads, 0, stream()>>>(table, f, skip, step_count, lr, h);
      RETORT_CUDA_LAUNCH_CHECK();
    });
  });
}

void sum_squares_multi(DType type, const DenseInput* tensors, int64_t count, double* out) {
  int64_t chunks = 0;
  for (int64_t i = 0; i < count; ++i) chunks += (tensors[i].n + kChunk - 1) / kChunk;
  const Scratch partials(size_t(chunks) * sizeof(double));
  RETORT_CUDA_DISPATCH_FLOAT(type, "sum_squares_multi", [&] {
    int64_t offset = 0;
    auto pointers_of = [](const DenseInput& s) { return std::array<void*, 1>{const_cast<void*>(s.data)}; };
    launch_in_tables<1>(tensors, count, pointers_of, [&](const TensorTable<1>& table, int64_t blocks) {
      sum_squares_chunk_kernel<scalar_t>
          <<<unsigned(blocks), kThreads, 0, stream()>>>(table, partials.as<double>() + offset);
      RETORT_CUDA_LAUNCH_CHECK();
      offset += blocks;
    });
  });
  sum_partials_kernel<<<1, kThreads, 0, stream()>>>(partials.as<double>(), chunks, out);  // 0 without elements
  RETORT_CUDA_LAUNCH_CHECK();
}

}  // namespace retort::cuda

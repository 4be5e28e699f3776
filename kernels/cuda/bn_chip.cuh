// Shared pieces of the full-chip batch-norm kernels (bn_chip_forward.cu, bn_chip_backward.cu,
// and the channels-last bn_nhwc.cu): device side, the per-channel affine and gradient
// coefficients, the two elementwise passes (normalise, input gradient) for either layout, loads
// and stores of a unit (1 or 4 elements; 4 as one 16-byte float4, two
// double2 or one 8-byte pair of bf16x2), a block sum of two doubles in a fixed order, and the
// last-block-done handshake; host side (bn_chip_host.cu), the chip size, the per-channel arrival
// counters and scratch memory from the engine's stream-ordered pool.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include "kernels/bn_tiling.h"
#include "kernels/cuda/bn_pointers.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/scratch.cuh"

namespace retort::cuda::bn_chip {

using kernels::bn::kThreads;

// ---- device

// Unit i (element offset, a multiple of V when V == 4) of p, in the compute type.
template <typename T, int V>
__device__ __forceinline__ void load_unit(const T* p, int64_t i, typename Acc<T>::type (&v)[V]) {
  if constexpr (V == 1) {
    v[0] = ld(p, i);
  } else if constexpr (sizeof(T) == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p + i);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else if constexpr (sizeof(T) == 8) {
    const double2 a = reinterpret_cast<const double2*>(p + i)[0], b = reinterpret_cast<const double2*>(p + i)[1];
    v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
  } else {
    alignas(8) __nv_bfloat162 h[2];
    *reinterpret_cast<uint2*>(h) = *reinterpret_cast<const uint2*>(p + i);
    const float2 a = __bfloat1622float2(h[0]), b = __bfloat1622float2(h[1]);
    v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
  }
}

template <typename T, int V>
__device__ __forceinline__ void store_unit(T* p, int64_t i, const typename Acc<T>::type (&v)[V]) {
  if constexpr (V == 1) {
    st(p, i, v[0]);
  } else if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
  } else if constexpr (sizeof(T) == 8) {
    reinterpret_cast<double2*>(p + i)[0] = make_double2(v[0], v[1]);
    reinterpret_cast<double2*>(p + i)[1] = make_double2(v[2], v[3]);
  } else {
    alignas(8) __nv_bfloat162 h[2] = {__floats2bfloat162_rn(v[0], v[1]), __floats2bfloat162_rn(v[2], v[3])};
    *reinterpret_cast<uint2*>(p + i) = *reinterpret_cast<const uint2*>(h);
  }
}

// The forward epilogue on a unit at element offset i (kernels/norm.h): the normalised values
// plus the residual's, through the ReLU (the relu op's expression).
template <typename T, int V>
__device__ __forceinline__ void epilogue_unit(typename Acc<T>::type (&v)[V], const T* residual, int64_t i,
                                              bool relu) {
  using A = typename Acc<T>::type;
  if (residual) {
    A r[V];
    load_unit<T, V>(residual, i, r);
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] += r[k];
  }
  if (relu)
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = v[k] < A(0) ? A(0) : v[k];
}

// The backward's g' on a unit: zero where the forward's ReLU output y is not positive.
template <typename T, int V>
__device__ __forceinline__ void mask_unit(typename Acc<T>::type (&g)[V], const T* relu_y, int64_t i) {
  using A = typename Acc<T>::type;
  if (!relu_y) return;
  A y[V];
  load_unit<T, V>(relu_y, i, y);
#pragma unroll
  for (int k = 0; k < V; ++k) g[k] = y[k] > A(0) ? g[k] : A(0);
}

// A channel's normalisation y = x * scale + shift.
template <typename A>
struct ChannelAffine {
  A scale, shift;
};

// invstd = 1/sqrt(var + eps) (like the CPU), scale = w * invstd, shift = b - mean * scale; w and
// b (the accumulation dtype) may be null.
template <typename A>
__device__ __forceinline__ void write_affine(int64_t c, A mu, A var, const A* w, const A* b, double eps, A* invstd,
                                             ChannelAffine<A>* affine) {
  const A is = A(1) / ::sqrt(var + A(eps));
  invstd[c] = is;
  const A scale = w ? w[c] * is : is;
  affine[c] = {scale, (b ? b[c] : A(0)) - mu * scale};
}

// A channel's input gradient dx = k * (g - mean_g - (x - mu) * is * mean_gx), as the CPU computes it.
template <typename A>
struct GradCoef {
  A mu, is, k, mean_g, mean_gx;
};

template <typename A>
__device__ __forceinline__ GradCoef<A> grad_coef(int64_t c, A mu, A is, const A* w, bool batch_stats, double sum_g,
                                                 double sum_gx, int64_t M) {
  const A k = (w ? w[c] : A(1)) * is;
  if (!batch_stats) return {mu, is, k, A(0), A(0)};
  return {mu, is, k, A(sum_g / double(M)), A(sum_gx / double(M))};
}

// Eval mode's affine from the given mean and var, one thread per channel.
template <typename A>
__global__ void bn_affine_kernel(const A* w, const A* b, int64_t C, double eps, const A* mean, const A* var, A* invstd,
                                 ChannelAffine<A>* affine) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c < C) write_affine(c, mean[c], var[c], w, b, eps, invstd, affine);
}

// Without batch statistics and without parameter gradients dx needs no sums: the coefficients
// alone, one thread per channel.
template <typename A>
__global__ void bn_grad_coef_kernel(const A* w, const A* mean, const A* invstd, int64_t C, GradCoef<A>* coef) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c < C) coef[c] = grad_coef(c, mean[c], invstd[c], w, false, 0.0, 0.0, 1);
}

// The elementwise passes over the whole tensor (grid-stride, kernels/bn_tiling.h's ElementPlan),
// for NCHW (a unit's V elements share channel at.c) and channels-last (kChannelsLast: element k
// of a unit is channel at.c + k; V divides C).
template <bool kChannelsLast>
__device__ __forceinline__ int64_t unit_channel(int64_t c, int k) {
  return kChannelsLast ? c + k : c;
}

// y = epilogue(x * scale + shift) per channel.
template <typename T, int V, bool kChannelsLast>
__global__ void __launch_bounds__(kThreads)
    normalise_kernel(const T* x, const ChannelAffine<typename Acc<T>::type>* __restrict__ affine,
                     kernels::bn::ElementPlan p, const T* residual, bool relu, T* y) {
  using A = typename Acc<T>::type;
  for (kernels::bn::ChannelWalk at(p, int64_t(blockIdx.x) * kThreads + threadIdx.x); at.u < p.total_units;
       at.advance(p)) {
    A v[V];
    load_unit<T, V>(x, at.u * V, v);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const ChannelAffine<A> a = affine[unit_channel<kChannelsLast>(at.c, k)];
      v[k] = v[k] * a.scale + a.shift;
    }
    epilogue_unit<T, V>(v, residual, at.u * V, relu);
    store_unit<T, V>(y, at.u * V, v);
  }
}

// g' = g through the ReLU's mask, written as the residual's gradient when asked; then
// dx = k * (g' - mean_g - xhat * mean_gx) per channel when gx is asked.
template <typename T, int V, bool kChannelsLast>
__global__ void __launch_bounds__(kThreads)
    grad_input_kernel(const T* g, const T* x, const T* relu_y,
                      const GradCoef<typename Acc<T>::type>* __restrict__ coef, kernels::bn::ElementPlan p, T* gx,
                      T* g_residual) {
  using A = typename Acc<T>::type;
  for (kernels::bn::ChannelWalk at(p, int64_t(blockIdx.x) * kThreads + threadIdx.x); at.u < p.total_units;
       at.advance(p)) {
    A gv[V], xv[V];
    load_unit<T, V>(g, at.u * V, gv);
    mask_unit<T, V>(gv, relu_y, at.u * V);
    if (g_residual) store_unit<T, V>(g_residual, at.u * V, gv);
    if (!gx) continue;
    load_unit<T, V>(x, at.u * V, xv);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const GradCoef<A> cf = coef[unit_channel<kChannelsLast>(at.c, k)];
      const A xhat = (xv[k] - cf.mu) * cf.is;
      gv[k] = cf.k * (gv[k] - cf.mean_g - xhat * cf.mean_gx);
    }
    store_unit<T, V>(gx, at.u * V, gv);
  }
}

// Sums a and b over the block (blockDim.x == kThreads) in a fixed tree: shuffles down within
// each warp, then warp 0 over the warps' sums. The result is valid in thread 0 only. Safe to
// call repeatedly in one kernel.
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double warp_a[kThreads / 32], warp_b[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int off = 16; off > 0; off >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, off);
    b += __shfl_down_sync(0xffffffffu, b, off);
  }
  __syncthreads();  // a previous call's reads of warp_a / warp_b are done
  if (lane == 0) {
    warp_a[warp] = a;
    warp_b[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < kThreads / 32 ? warp_a[lane] : 0.0;
    b = lane < kThreads / 32 ? warp_b[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, off);
      b += __shfl_down_sync(0xffffffffu, b, off);
    }
  }
}

// Thread 0 has just written this block's partial sums. Counts the block in `counter` (one per
// channel) and tells every thread whether it was the last of `expected` blocks to arrive; the
// last block resets the counter to 0 for the next launch and may then read the other blocks'
// partials (with __ldcg, from L2).
__device__ __forceinline__ bool arrive_last(unsigned* counter, unsigned expected) {
  __shared__ bool last;
  if (threadIdx.x == 0) {
    __threadfence();  // the partial is visible device-wide before the count says so
    const unsigned before = atomicAdd(counter, 1u);
    last = before + 1 == expected;
    if (last) {
      *counter = 0;
      __threadfence();  // the other blocks' partials are read after their counts were seen
    }
  }
  __syncthreads();
  return last;
}

// Sums the partial pairs part[2k], part[2k + 1], k < count, over the block in a fixed order
// (thread i takes k = i, i + kThreads, ...; then block_sum2). Valid in thread 0.
__device__ __forceinline__ void sum_partials(const double* part, int64_t count, double& a, double& b) {
  a = 0;
  b = 0;
  for (int64_t k = threadIdx.x; k < count; k += kThreads) {
    a += __ldcg(part + 2 * k);
    b += __ldcg(part + 2 * k + 1);
  }
  block_sum2(a, b);
}

// ---- host

// Blocks of kThreads threads of `kernel` resident on the whole chip: SMs x blocks per SM
// (both cached; one device per process).
int64_t chip_blocks(const void* kernel);
// At least `channels` arrival counters, all 0 between launches (each last block resets its
// own); kept for the life of the process, grown (and zeroed, stream-ordered) when needed.
unsigned* channel_counters(int64_t channels);
// True when every non-null pointer is 16-byte aligned (4-element units can be loaded whole).
bool aligned16(std::initializer_list<const void*> pointers);

}  // namespace retort::cuda::bn_chip

// Full-chip CUDA batch-norm forward (the default; RETORT_CUDA_BN=block selects bn_block.cu).
// Reference: kernels/cpu/norm.cpp. Training: bn_stats_kernel, C x tiles blocks (the split of
// kernels/bn_tiling.h, sized to fill the chip), each summing its tile's values shifted by the
// channel's first value (sum(x - K), sum((x - K)^2), in double) into a partial; the last block of
// each channel to arrive merges the channel's partials in tile order and writes mean, biased
// variance, invstd and the channel's scale and shift. Eval: bn_affine_kernel turns the given
// (running) mean and variance into invstd, scale and shift. Then bn_chip::normalise_kernel, a
// grid-stride pass over the whole tensor in 4-element units where the layout allows, with the
// epilogue (residual, ReLU) when asked.
// Deterministic: no float atomics; a fixed tiling per device and fixed merge orders, so the same
// input gives the same bits on the same GPU (a GPU with another SM count tiles differently, and
// a pointer not 16-byte aligned takes 1-element units, tiled differently too).
#include <type_traits>
#include "kernels/cuda/bn_chip.cuh"
#include "kernels/cuda/bn_kernels.h"

namespace retort::cuda {
namespace {

using bn_chip::ChannelAffine;
template <typename T, int V>
constexpr auto normalise = bn_chip::normalise_kernel<T, V, false>;
using bn_chip::kThreads;
using bn_chip::write_affine;
using kernels::bn::ChannelWalk;
using kernels::bn::ElementPlan;
using kernels::bn::PlaneWalk;
using kernels::bn::ReducePlan;

template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    bn_stats_kernel(const T* __restrict__ x, const typename Acc<T>::type* w, const typename Acc<T>::type* b,
                    ReducePlan p, double eps, double* partials,
                    unsigned* counters, typename Acc<T>::type* mean, typename Acc<T>::type* var,
                    typename Acc<T>::type* invstd, ChannelAffine<typename Acc<T>::type>* affine) {
  using A = typename Acc<T>::type;
  const int64_t c = int64_t(blockIdx.x) / p.tiles, t = int64_t(blockIdx.x) - c * p.tiles;
  const double K = double(ld(x, c * p.S));  // the channel's value at n = 0, s = 0
  double s1 = 0, s2 = 0;
  const int64_t end = p.tile_end(t);
  for (PlaneWalk at(p, c, p.tile_begin(t) + threadIdx.x); at.u < end; at.advance(p)) {
    A v[V];
    bn_chip::load_unit<T, V>(x, at.offset, v);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const double d = double(v[k]) - K;
      s1 += d;
      s2 += d * d;
    }
  }
  bn_chip::block_sum2(s1, s2);
  if (threadIdx.x == 0) {
    partials[2 * int64_t(blockIdx.x)] = s1;
    partials[2 * int64_t(blockIdx.x) + 1] = s2;
  }
  if (!bn_chip::arrive_last(counters + c, unsigned(p.tiles))) return;
  bn_chip::sum_partials(partials + 2 * c * p.tiles, p.tiles, s1, s2);
  if (threadIdx.x != 0) return;
  double m, v;
  kernels::bn::shifted_moments(K, s1, s2, p.N * p.S, m, v);
  const A mu = A(m), va = A(v);
  mean[c] = mu;
  var[c] = va;
  write_affine(c, mu, va, w, b, eps, invstd, affine);
}

template <typename T, int V>
void batch_stats(const T* x, const typename Acc<T>::type* w, const typename Acc<T>::type* b, int64_t N, int64_t C,
                 int64_t S, double eps,
                 typename Acc<T>::type* mean, typename Acc<T>::type* var, typename Acc<T>::type* invstd,
                 ChannelAffine<typename Acc<T>::type>* affine, double* partials, const ReducePlan& plan) {
  const int64_t blocks = C * plan.tiles;
  RETORT_REQUIRE(blocks < (int64_t(1) << 31), "batch_norm2d: ", C, " channels are too many for one CUDA grid");
  bn_stats_kernel<T, V><<<unsigned(blocks), kThreads, 0, stream()>>>(
      x, w, b, plan, eps, partials, bn_chip::channel_counters(C), mean, var, invstd, affine);
  RETORT_CUDA_LAUNCH_CHECK();
}

template <typename T, int V>
void forward(const bn::ForwardPointers<T>& p, int64_t N, int64_t C, int64_t S, bool use_batch_stats, double eps) {
  using A = typename Acc<T>::type;
  const auto& [x, w, b, residual, relu, mean, var, invstd, y] = p;
  ReducePlan plan;
  if (use_batch_stats)
    plan = kernels::bn::make_reduce_plan(N, C, S, V, bn_chip::chip_blocks((const void*)bn_stats_kernel<T, V>));
  const size_t partial_bytes = use_batch_stats ? size_t(2 * C * plan.tiles) * sizeof(double) : 0;
  Scratch scratch(partial_bytes + size_t(C) * sizeof(ChannelAffine<A>));
  auto* partials = static_cast<double*>(scratch.data());
  auto* affine = reinterpret_cast<ChannelAffine<A>*>(static_cast<char*>(scratch.data()) + partial_bytes);
  if (use_batch_stats) {
    batch_stats<T, V>(x, w, b, N, C, S, eps, mean, var, invstd, affine, partials, plan);
  } else {
    bn_chip::bn_affine_kernel<A><<<grid_for(C, kThreads), kThreads, 0, stream()>>>(w, b, C, eps, mean, var, invstd,
                                                                                 affine);
    RETORT_CUDA_LAUNCH_CHECK();
  }
  const ElementPlan ep =
      kernels::bn::make_element_plan(N, C, S, V, bn_chip::chip_blocks((const void*)normalise<T, V>));
  normalise<T, V><<<unsigned(ep.blocks), kThreads, 0, stream()>>>(x, affine, ep, residual, relu, y);
  RETORT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void batch_norm_forward_chip(DType type, const void* x, const void* weight, const void* bias, int64_t N, int64_t C,
                             int64_t S, bool use_batch_stats, double eps, const kernels::BnEpilogue& epi,
                             void* mean, void* var, void* invstd, void* y) {
  if (N * C * S == 0) return;
  const bool whole_units = S % 4 == 0 && bn_chip::aligned16({x, y, epi.residual});
  RETORT_CUDA_DISPATCH_FLOAT(type, "batch_norm2d", [&] {
    const auto p = bn::forward_pointers<scalar_t>(x, weight, bias, epi, mean, var, invstd, y);
    bn::with_unit_width(whole_units, [&](auto vec) {
      forward<scalar_t, decltype(vec)::value>(p, N, C, S, use_batch_stats, eps);
    });
  });
}

}  // namespace retort::cuda

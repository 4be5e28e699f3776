// Full-chip CUDA batch-norm backward (the default; RETORT_CUDA_BN=block selects bn_block.cu).
// Reference: kernels/cpu/norm.cpp. bn_grad_sums_kernel: C x tiles blocks (kernels/bn_tiling.h)
// each summing sum(g) and sum(g * (x - mean)) over its tile in double into a partial; the last
// block of each channel to arrive merges the channel's partials in tile order and writes
// grad_weight = invstd * sum(g * (x - mean)), grad_bias = sum(g) and the channel's dx
// coefficients. bn_chip::grad_input_kernel: one grid-stride pass over the tensor,
// dx = w*invstd * (g - mean(g) - xhat * mean(g*xhat)) with batch statistics, dx = w*invstd*g
// without (then no sums are needed unless a parameter gradient is asked for). After a fused
// ReLU, g is first masked by the forward's output (both passes), and the masked g is written as
// the residual's gradient when asked (kernels/norm.h's epilogue).
// Deterministic like the forward: no float atomics, fixed tiling and merge orders per device.
#include <type_traits>
#include "kernels/cuda/bn_chip.cuh"
#include "kernels/cuda/bn_kernels.h"

namespace retort::cuda {
namespace {

using bn_chip::grad_coef;
template <typename T, int V>
constexpr auto grad_input = bn_chip::grad_input_kernel<T, V, false>;
using bn_chip::GradCoef;
using bn_chip::kThreads;
using kernels::bn::ChannelWalk;
using kernels::bn::ElementPlan;
using kernels::bn::PlaneWalk;
using kernels::bn::ReducePlan;

template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    bn_grad_sums_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* relu_y,
                        const typename Acc<T>::type* w, const typename Acc<T>::type* mean,
                        const typename Acc<T>::type* invstd, ReducePlan p,
                        bool batch_stats, double* partials, unsigned* counters, typename Acc<T>::type* gw,
                        typename Acc<T>::type* gb, GradCoef<typename Acc<T>::type>* coef) {
  using A = typename Acc<T>::type;
  const int64_t c = int64_t(blockIdx.x) / p.tiles, t = int64_t(blockIdx.x) - c * p.tiles;
  const A mu = mean[c];
  double sum_g = 0, sum_gxmu = 0;  // sum(g), sum(g * (x - mu))
  const int64_t end = p.tile_end(t);
  for (PlaneWalk at(p, c, p.tile_begin(t) + threadIdx.x); at.u < end; at.advance(p)) {
    A gv[V], xv[V];
    bn_chip::load_unit<T, V>(g, at.offset, gv);
    bn_chip::mask_unit<T, V>(gv, relu_y, at.offset);
    bn_chip::load_unit<T, V>(x, at.offset, xv);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      sum_g += double(gv[k]);
      sum_gxmu += double(gv[k]) * (double(xv[k]) - double(mu));
    }
  }
  bn_chip::block_sum2(sum_g, sum_gxmu);
  if (threadIdx.x == 0) {
    partials[2 * int64_t(blockIdx.x)] = sum_g;
    partials[2 * int64_t(blockIdx.x) + 1] = sum_gxmu;
  }
  if (!bn_chip::arrive_last(counters + c, unsigned(p.tiles))) return;
  bn_chip::sum_partials(partials + 2 * c * p.tiles, p.tiles, sum_g, sum_gxmu);
  if (threadIdx.x != 0) return;
  const A is = invstd[c];
  const double sum_gx = sum_gxmu * double(is);  // sum(g * xhat)
  if (gw) gw[c] = A(sum_gx);
  if (gb) gb[c] = A(sum_g);
  if (coef) coef[c] = grad_coef(c, mu, is, w, batch_stats, sum_g, sum_gx, p.N * p.S);
}

template <typename T, int V>
void backward(const bn::BackwardPointers<T>& p, int64_t N, int64_t C, int64_t S, bool batch_stats) {
  using A = typename Acc<T>::type;
  const auto& [g, x, relu_y, w, mean, invstd, gx, gw, gb, g_residual] = p;
  const bool sums = gw || gb || (gx && batch_stats);
  if (!sums && !gx && !g_residual) return;
  ReducePlan plan;
  if (sums)
    plan = kernels::bn::make_reduce_plan(N, C, S, V, bn_chip::chip_blocks((const void*)bn_grad_sums_kernel<T, V>));
  const size_t partial_bytes = sums ? size_t(2 * C * plan.tiles) * sizeof(double) : 0;
  Scratch scratch(partial_bytes + (gx ? size_t(C) * sizeof(GradCoef<A>) : 0));
  auto* partials = static_cast<double*>(scratch.data());
  auto* coef = gx ? reinterpret_cast<GradCoef<A>*>(static_cast<char*>(scratch.data()) + partial_bytes) : nullptr;
  if (sums) {
    const int64_t blocks = C * plan.tiles;
    RETORT_REQUIRE(blocks < (int64_t(1) << 31), "batch_norm2d backward: ", C, " channels are too many for one CUDA grid");
    bn_grad_sums_kernel<T, V><<<unsigned(blocks), kThreads, 0, stream()>>>(
        g, x, relu_y, w, mean, invstd, plan, batch_stats, partials, bn_chip::channel_counters(C), gw, gb, coef);
    RETORT_CUDA_LAUNCH_CHECK();
  } else if (gx) {
    bn_chip::bn_grad_coef_kernel<A><<<grid_for(C, kThreads), kThreads, 0, stream()>>>(w, mean, invstd, C, coef);
    RETORT_CUDA_LAUNCH_CHECK();
  }
  if (!gx && !g_residual) return;
  const ElementPlan ep =
      kernels::bn::make_element_plan(N, C, S, V, bn_chip::chip_blocks((const void*)grad_input<T, V>));
  grad_input<T, V><<<unsigned(ep.blocks), kThreads, 0, stream()>>>(g, x, relu_y, coef, ep, gx, g_residual);
  RETORT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void batch_norm_backward_chip(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                              const void* invstd, int64_t N, int64_t C, int64_t S, bool use_batch_stats,
                              const void* relu_y, void* grad_x, void* grad_weight, void* grad_bias,
                              void* grad_residual) {
  if (N * C * S == 0) return;
  const bool whole_units = S % 4 == 0 && bn_chip::aligned16({grad_y, x, grad_x, relu_y, grad_residual});
  RETORT_CUDA_DISPATCH_FLOAT(type, "batch_norm2d backward", [&] {
    const auto p = bn::backward_pointers<scalar_t>(grad_y, x, relu_y, weight, mean, invstd, grad_x, grad_weight,
                                                   grad_bias, grad_residual);
    bn::with_unit_width(whole_units, [&](auto vec) {
      backward<scalar_t, decltype(vec)::value>(p, N, C, S, use_batch_stats);
    });
  });
}

}  // namespace retort::cuda

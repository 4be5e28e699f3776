// Channels-last (NHWC) CUDA batch norm: the activation is M = N*H*W rows of C channels, read and
// written in place, no NCHW copy. Reference: kernels/cpu/norm.cpp (its channels_last form).
// Statistics: nhwc_stats_kernel, chunks x tiles blocks (kernels/bn_tiling.h's RowPlan): each
// block sums 32 consecutive channels (one coalesced row segment per warp) over one tile of rows,
// shifted by the channel's first value, in double, into a partial per (channel, tile); the last
// block of each chunk to arrive merges the partials in tile order and writes mean, variance,
// invstd and the channel's scale and shift. Backward: nhwc_grad_sums_kernel the same way for
// sum(g) and sum(g * (x - mean)). The elementwise passes (bn_chip.cuh's normalise_kernel and
// grad_input_kernel, shared with NCHW) walk the tensor in 4-channel units (C % 4 == 0 and
// 16-byte aligned pointers) with ElementPlan at S = 1.
// Deterministic: no float atomics, fixed tiling and merge orders per device, like the NCHW
// full-chip kernels (bn_chip_*.cu), whose shared pieces it uses (bn_chip.cuh).
#include <type_traits>
#include "kernels/cuda/bn_chip.cuh"
#include "kernels/cuda/bn_kernels.h"

namespace retort::cuda {
namespace {

using bn_chip::ChannelAffine;
using bn_chip::GradCoef;
using bn_chip::kThreads;
using kernels::bn::ChannelWalk;
using kernels::bn::ElementPlan;
using kernels::bn::kRowChannels;
using kernels::bn::kRowLanes;
using kernels::bn::RowPlan;
template <typename T, int V>
constexpr auto normalise = bn_chip::normalise_kernel<T, V, true>;
template <typename T, int V>
constexpr auto grad_input = bn_chip::grad_input_kernel<T, V, true>;

// Sums a and b of each channel column over the block's kRowLanes lanes, lane 0 first; valid in
// lane 0 (threads 0..31). Every thread of the block calls it.
__device__ __forceinline__ void lane_sum2(double& a, double& b) {
  __shared__ double lane_a[kRowLanes][kRowChannels], lane_b[kRowLanes][kRowChannels];
  const int ch = threadIdx.x % kRowChannels, lane = threadIdx.x / kRowChannels;
  __syncthreads();  // a previous call's reads are done
  lane_a[lane][ch] = a;
  lane_b[lane][ch] = b;
  __syncthreads();
  if (lane != 0) return;
  for (int k = 1; k < kRowLanes; ++k) {
    a += lane_a[k][ch];
    b += lane_b[k][ch];
  }
}

// Writes this block's partial pair of channel c (lane 0), then counts the block in its chunk's
// counter: true in every thread of the chunk's last block to arrive.
__device__ __forceinline__ bool publish_partial(const RowPlan& p, int64_t c, int64_t t, bool live, double a, double b,
                                                double* partials, unsigned* counter) {
  if (live && threadIdx.x < kRowChannels) {
    partials[2 * (c * p.tiles + t)] = a;
    partials[2 * (c * p.tiles + t) + 1] = b;
    __threadfence();  // visible device-wide before the block is counted
  }
  __syncthreads();
  return bn_chip::arrive_last(counter, unsigned(p.tiles));
}

// The last block's merge: channel c's partial pairs summed in tile order (lane l takes tiles
// l, l + kRowLanes, ..., then the lanes in order). Valid in lane 0.
__device__ __forceinline__ void merge_partials(const RowPlan& p, int64_t c, bool live, const double* partials,
                                               double& a, double& b) {
  a = 0;
  b = 0;
  if (live)
    for (int64_t k = threadIdx.x / kRowChannels; k < p.tiles; k += kRowLanes) {
      a += __ldcg(partials + 2 * (c * p.tiles + k));
      b += __ldcg(partials + 2 * (c * p.tiles + k) + 1);
    }
  lane_sum2(a, b);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    nhwc_stats_kernel(const T* __restrict__ x, const typename Acc<T>::type* w, const typename Acc<T>::type* b,
                      RowPlan p, double eps, double* partials, unsigned* counters, typename Acc<T>::type* mean,
                      typename Acc<T>::type* var, typename Acc<T>::type* invstd,
                      ChannelAffine<typename Acc<T>::type>* affine) {
  using A = typename Acc<T>::type;
  const int64_t chunk = int64_t(blockIdx.x) / p.tiles, t = int64_t(blockIdx.x) - chunk * p.tiles;
  const int64_t c = chunk * kRowChannels + threadIdx.x % kRowChannels;
  const bool live = c < p.C;
  const double K = live ? double(ld(x, c)) : 0.0;  // the channel's value in row 0
  double s1 = 0, s2 = 0;
  if (live)
    for (int64_t r = p.tile_begin(t) + threadIdx.x / kRowChannels; r < p.tile_end(t); r += kRowLanes) {
      const double d = double(ld(x, r * p.C + c)) - K;
      s1 += d;
      s2 += d * d;
    }
  lane_sum2(s1, s2);
  if (!publish_partial(p, c, t, live, s1, s2, partials, counters + chunk)) return;
  merge_partials(p, c, live, partials, s1, s2);
  if (threadIdx.x >= kRowChannels || !live) return;
  double m, v;
  kernels::bn::shifted_moments(K, s1, s2, p.M, m, v);
  mean[c] = A(m);
  var[c] = A(v);
  bn_chip::write_affine(c, A(m), A(v), w, b, eps, invstd, affine);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    nhwc_grad_sums_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* relu_y,
                          const typename Acc<T>::type* w,
                          const typename Acc<T>::type* mean, const typename Acc<T>::type* invstd, RowPlan p,
                          bool batch_stats, double* partials, unsigned* counters, typename Acc<T>::type* gw,
                          typename Acc<T>::type* gb, GradCoef<typename Acc<T>::type>* coef) {
  using A = typename Acc<T>::type;
  const int64_t chunk = int64_t(blockIdx.x) / p.tiles, t = int64_t(blockIdx.x) - chunk * p.tiles;
  const int64_t c = chunk * kRowChannels + threadIdx.x % kRowChannels;
  const bool live = c < p.C;
  const double mu = live ? double(mean[c]) : 0.0;
  double sum_g = 0, sum_gxmu = 0;  // sum(g), sum(g * (x - mu))
  if (live)
    for (int64_t r = p.tile_begin(t) + threadIdx.x / kRowChannels; r < p.tile_end(t); r += kRowLanes) {
      const int64_t i = r * p.C + c;
      const double gi = relu_y && !(ld(relu_y, i) > A(0)) ? 0.0 : double(ld(g, i));
      sum_g += gi;
      sum_gxmu += gi * (double(ld(x, i)) - mu);
    }
  lane_sum2(sum_g, sum_gxmu);
  if (!publish_partial(p, c, t, live, sum_g, sum_gxmu, partials, counters + chunk)) return;
  merge_partials(p, c, live, partials, sum_g, sum_gxmu);
  if (threadIdx.x >= kRowChannels || !live) return;
  const A is = invstd[c];
  const double sum_gx = sum_gxmu * double(is);  // sum(g * xhat)
  if (gw) gw[c] = A(sum_gx);
  if (gb) gb[c] = A(sum_g);
  if (coef) coef[c] = bn_chip::grad_coef(c, A(mu), is, w, batch_stats, sum_g, sum_gx, p.M);
}

// The row tiling for `kernel` on this chip, and its scratch: 2 doubles per (channel, tile).
template <typename Kernel>
RowPlan row_plan(Kernel* kernel, int64_t M, int64_t C, const char* op) {
  const RowPlan plan = kernels::bn::make_row_plan(M, C, bn_chip::chip_blocks((const void*)kernel));
  RETORT_REQUIRE(plan.chunks * plan.tiles < (int64_t(1) << 31), op, ": ", C,
                 " channels are too many for one CUDA grid");
  return plan;
}

template <typename Kernel>
ElementPlan element_plan(Kernel* kernel, int64_t M, int64_t C, int V) {
  return kernels::bn::make_element_plan(M, C, 1, V, bn_chip::chip_blocks((const void*)kernel));
}

template <typename T, int V>
void forward(const bn::ForwardPointers<T>& p, int64_t M, int64_t C, bool use_batch_stats, double eps) {
  using A = typename Acc<T>::type;
  const auto& [x, w, b, residual, relu, mean, var, invstd, y] = p;
  RowPlan plan;
  if (use_batch_stats) plan = row_plan(nhwc_stats_kernel<T>, M, C, "batch_norm2d");
  const size_t partial_bytes = use_batch_stats ? size_t(2 * C * plan.tiles) * sizeof(double) : 0;
  Scratch scratch(partial_bytes + size_t(C) * sizeof(ChannelAffine<A>));
  auto* partials = static_cast<double*>(scratch.data());
  auto* affine = reinterpret_cast<ChannelAffine<A>*>(static_cast<char*>(scratch.data()) + partial_bytes);
  if (use_batch_stats) {
    nhwc_stats_kernel<T><<<unsigned(plan.chunks * plan.tiles), kThreads, 0, stream()>>>(
        x, w, b, plan, eps, partials, bn_chip::channel_counters(plan.chunks), mean, var, invstd, affine);
  } else {
    bn_chip::bn_affine_kernel<A><<<grid_for(C, kThreads), kThreads, 0, stream()>>>(w, b, C, eps, mean, var, invstd,
                                                                                 affine);
  }
  RETORT_CUDA_LAUNCH_CHECK();
  const ElementPlan ep = element_plan(normalise<T, V>, M, C, V);
  normalise<T, V><<<unsigned(ep.blocks), kThreads, 0, stream()>>>(x, affine, ep, residual, relu, y);
  RETORT_CUDA_LAUNCH_CHECK();
}

template <typename T, int V>
void backward(const bn::BackwardPointers<T>& p, int64_t M, int64_t C, bool batch_stats) {
  using A = typename Acc<T>::type;
  const auto& [g, x, relu_y, w, mean, invstd, gx, gw, gb, g_residual] = p;
  const bool sums = gw || gb || (gx && batch_stats);
  if (!sums && !gx && !g_residual) return;
  RowPlan plan;
  if (sums) plan = row_plan(nhwc_grad_sums_kernel<T>, M, C, "batch_norm2d backward");
  const size_t partial_bytes = sums ? size_t(2 * C * plan.tiles) * sizeof(double) : 0;
  Scratch scratch(partial_bytes + (gx ? size_t(C) * sizeof(GradCoef<A>) : 0));
  auto* partials = static_cast<double*>(scratch.data());
  auto* coef = gx ? reinterpret_cast<GradCoef<A>*>(static_cast<char*>(scratch.data()) + partial_bytes) : nullptr;
  if (sums) {
    nhwc_grad_sums_kernel<T><<<unsigned(plan.chunks * plan.tiles), kThreads, 0, stream()>>>(
        g, x, relu_y, w, mean, invstd, plan, batch_stats, partials, bn_chip::channel_counters(plan.chunks), gw, gb,
        coef);
    RETORT_CUDA_LAUNCH_CHECK();
  } else if (gx) {
    bn_chip::bn_grad_coef_kernel<A><<<grid_for(C, kThreads), kThreads, 0, stream()>>>(w, mean, invstd, C, coef);
    RETORT_CUDA_LAUNCH_CHECK();
  }
  if (!gx && !g_residual) return;
  const ElementPlan ep = element_plan(grad_input<T, V>, M, C, V);
  grad_input<T, V><<<unsigned(ep.blocks), kThreads, 0, stream()>>>(g, x, relu_y, coef, ep, gx, g_residual);
  RETORT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void batch_norm_forward_nhwc(DType type, const void* x, const void* weight, const void* bias, int64_t N, int64_t C,
                             int64_t S, bool use_batch_stats, double eps, const kernels::BnEpilogue& epi,
                             void* mean, void* var, void* invstd, void* y) {
  if (N * C * S == 0) return;
  const bool whole_units = C % 4 == 0 && bn_chip::aligned16({x, y, epi.residual});
  RETORT_CUDA_DISPATCH_FLOAT(type, "batch_norm2d", [&] {
    const auto p = bn::forward_pointers<scalar_t>(x, weight, bias, epi, mean, var, invstd, y);
    bn::with_unit_width(whole_units, [&](auto vec) {
      forward<scalar_t, decltype(vec)::value>(p, N * S, C, use_batch_stats, eps);
    });
  });
}

void batch_norm_backward_nhwc(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                              const void* invstd, int64_t N, int64_t C, int64_t S, bool use_batch_stats,
                              const void* relu_y, void* grad_x, void* grad_weight, void* grad_bias,
                              void* grad_residual) {
  if (N * C * S == 0) return;
  const bool whole_units = C % 4 == 0 && bn_chip::aligned16({grad_y, x, grad_x, relu_y, grad_residual});
  RETORT_CUDA_DISPATCH_FLOAT(type, "batch_norm2d backward", [&] {
    const auto p = bn::backward_pointers<scalar_t>(grad_y, x, relu_y, weight, mean, invstd, grad_x, grad_weight,
                                                   grad_bias, grad_residual);
    bn::with_unit_width(whole_units, [&](auto vec) {
      backward<scalar_t, decltype(vec)::value>(p, N * S, C, use_batch_stats);
    });
  });
}

}  // namespace retort::cuda

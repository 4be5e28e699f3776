// CPU batch norm and layer norm kernels (the reference for kernels/cuda/norm.cu).
// Batch norm: one channel per OpenMP iteration, two-pass mean/variance; each image's plane is
// summed in vector lanes (acc_t), the planes in double; the optional epilogue (residual, ReLU)
// runs in the normalising pass and its mask in the backward's passes. Its channels-last (NHWC)
// form is a plain reference for the CUDA NHWC kernels: every sum in double, row after row, one
// thread (the engine's CPU op normalises channels-last inputs through their NCHW copy, so CPU
// results do not depend on the layout). Layer norm: one row per iteration, its two-pass
// statistics in vector lanes; weight/bias gradients sum blocks of rows in lanes, then the
// blocks in double.
#include <algorithm>
#include <cmath>
#include <vector>
#include "kernels/cpu/dispatch.h"
#include "kernels/norm.h"

namespace retort::cpu {
namespace {

// A plane's sum and its squared deviation from `mu`, in acc_t lanes (vectorised: the lanes'
// partial sums are added in a fixed order, so the bits depend only on the build's vector width);
// the planes of a channel then add up in double.
template <typename T, typename A>
A plane_sum(const T* p, int64_t S) {
  A s = 0;
  _Pragma("omp simd reduction(+ : s)")
  for (int64_t i = 0; i < S; ++i) s += A(p[i]);
  return s;
}
template <typename T, typename A>
A plane_squared_deviation(const T* p, int64_t S, A mu) {
  A s = 0;
  _Pragma("omp simd reduction(+ : s)")
  for (int64_t i = 0; i < S; ++i) {
    const A d = A(p[i]) - mu;
    s += d * d;
  }
  return s;
}

// Layer norm's weight and bias gradients: column sums over rows of g * xhat and g. Rows go in
// fixed blocks, each summed across its columns in vector lanes, then the blocks add up in double
// in order: the bits do not depend on the thread count.
template <typename T, typename A>
void layer_norm_param_grads(const T* g, const T* x, const A* mean, const A* rstd, int64_t rows, int64_t cols, A* gw,
                            A* gb) {
  constexpr int64_t kRowsPerBlock = 64;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<A> part_w(size_t(blocks * cols), A(0)), part_b(size_t(blocks * cols), A(0));
  _Pragma("omp parallel for if (rows * cols > 32768)")
  for (int64_t blk = 0; blk < blocks; ++blk) {
    A* __restrict pw = part_w.data() + blk * cols;
    A* __restrict pb = part_b.data() + blk * cols;
    for (int64_t r = blk * kRowsPerBlock; r < std::min(rows, (blk + 1) * kRowsPerBlock); ++r) {
      const T* gr = g + r * cols;
      const T* xr = x + r * cols;
      const A mu = mean[r], rs = rstd[r];
      _Pragma("omp simd")
      for (int64_t i = 0; i < cols; ++i) {
        pw[i] += A(gr[i]) * ((A(xr[i]) - mu) * rs);
        pb[i] += A(gr[i]);
      }
    }
  }
  _Pragma("omp parallel for if (blocks * cols > 32768)")
  for (int64_t i = 0; i < cols; ++i) {
    double sw = 0, sb = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      sw += double(part_w[size_t(blk * cols + i)]);
      sb += double(part_b[size_t(blk * cols + i)]);
    }
    if (gw) gw[i] = A(sw);
    if (gb) gb[i] = A(sb);
  }
}

// The forward epilogue (kernels/norm.h): the normalised value v plus the residual, through the
// ReLU (the relu op's expression), rounded to T once.
template <typename T, typename A>
[[gnu::always_inline]] inline T finish(A v, const T* residual, int64_t i, bool relu) {
  if (residual) v += A(residual[i]);
  if (relu) v = v < A(0) ? A(0) : v;
  return T(v);
}

// The backward's output gradient g' = y > 0 ? g : 0 through the forward's ReLU (none: g).
template <typename T, typename A>
[[gnu::always_inline]] inline A masked_grad(const T* g, const T* relu_y, int64_t i) {
  return relu_y && !(A(relu_y[i]) > A(0)) ? A(0) : A(g[i]);
}

// A plane's sum(g') and sum(g' * (x - mu)) in acc_t lanes. The masked and the plain loop are
// the same vectorised reduction (one select more), so a fused ReLU's sums have the bits of the
// composed ops' (which mask g first, in the relu op).
template <bool kMask, typename T, typename A>
[[gnu::always_inline]] inline void plane_grad_sums(const T* g, const T* x, const T* relu_y, int64_t S, A mu,
                                                   A& part_g, A& part_gx) {
  A sg = 0, sgx = 0;
  _Pragma("omp simd reduction(+ : sg, sgx)")
  for (int64_t i = 0; i < S; ++i) {
    const A gi = kMask ? (A(relu_y[i]) > A(0) ? A(g[i]) : A(0)) : A(g[i]);
    sg += gi;
    sgx += gi * (A(x[i]) - mu);
  }
  part_g = sg;
  part_gx = sgx;
}

// Channels-last batch norm, the reference of kernels/cuda/bn_nhwc.cu: x, y are M = N*S rows of
// C channels. Sums in double, rows in order.
template <typename T, typename A>
void nhwc_forward(const T* x, const A* w, const A* b, int64_t M, int64_t C, bool use_batch_stats, double eps,
                  const T* residual, bool relu, A* mean, A* var, A* invstd, T* y) {
  if (use_batch_stats) {
    std::vector<double> sum(static_cast<size_t>(C), 0.0), sq(static_cast<size_t>(C), 0.0);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t c = 0; c < C; ++c) sum[size_t(c)] += double(A(x[r * C + c]));
    for (int64_t c = 0; c < C; ++c) mean[c] = A(sum[size_t(c)] / double(M));
    for (int64_t r = 0; r < M; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const double d = double(A(x[r * C + c])) - double(mean[c]);
        sq[size_t(c)] += d * d;
      }
    for (int64_t c = 0; c < C; ++c) var[c] = A(sq[size_t(c)] / double(M));
  }
  std::vector<A> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const A is = A(1) / std::sqrt(var[c] + A(eps));
    invstd[c] = is;
    scale[size_t(c)] = w ? w[c] * is : is;
    shift[size_t(c)] = (b ? b[c] : A(0)) - mean[c] * scale[size_t(c)];
  }
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < C; ++c)
      y[r * C + c] = finish<T, A>(A(x[r * C + c]) * scale[size_t(c)] + shift[size_t(c)], residual, r * C + c, relu);
}

template <typename T, typename A>
void nhwc_backward(const T* g, const T* x, const A* w, const A* mean, const A* invstd, int64_t M, int64_t C,
                   bool use_batch_stats, const T* relu_y, T* gx, A* gw, A* gb, T* g_residual) {
  std::vector<double> sum_g(static_cast<size_t>(C), 0.0), sum_gx(static_cast<size_t>(C), 0.0);  // sum(g'), sum(g' xhat)
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const double gi = double(masked_grad<T, A>(g, relu_y, r * C + c));
      sum_g[size_t(c)] += gi;
      sum_gx[size_t(c)] += gi * (double(A(x[r * C + c])) - double(mean[c]));
    }
  for (int64_t c = 0; c < C; ++c) {
    sum_gx[size_t(c)] *= double(invstd[c]);
    if (gw) gw[c] = A(sum_gx[size_t(c)]);
    if (gb) gb[c] = A(sum_g[size_t(c)]);
  }
  if (g_residual)
    for (int64_t i = 0; i < M * C; ++i) g_residual[i] = T(masked_grad<T, A>(g, relu_y, i));
  if (!gx) return;
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const A is = invstd[c], k = (w ? w[c] : A(1)) * is;
      const A mean_g = use_batch_stats ? A(sum_g[size_t(c)] / double(M)) : A(0);
      const A mean_gx = use_batch_stats ? A(sum_gx[size_t(c)] / double(M)) : A(0);
      const A xhat = (A(x[r * C + c]) - mean[c]) * is;
      gx[r * C + c] = T(k * (masked_grad<T, A>(g, relu_y, r * C + c) - mean_g - xhat * mean_gx));
    }
}

}  // namespace

void batch_norm_forward(DType type, const void* x_, const void* weight_, const void* bias_, int64_t N, int64_t C,
                        int64_t S, bool channels_last, bool use_batch_stats, double eps,
                        const kernels::BnEpilogue& epi, void* mean_, void* var_, void* invstd_, void* y_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "batch_norm2d", [&] {
    const scalar_t* x = static_cast<const scalar_t*>(x_);
    const scalar_t* residual = static_cast<const scalar_t*>(epi.residual);
    const bool relu = epi.relu;
    const acc_t* w = static_cast<const acc_t*>(weight_);
    const acc_t* b = static_cast<const acc_t*>(bias_);
    acc_t* mean = static_cast<acc_t*>(mean_);
    acc_t* var = static_cast<acc_t*>(var_);
    acc_t* invstd = static_cast<acc_t*>(invstd_);
    scalar_t* y = static_cast<scalar_t*>(y_);
    const int64_t M = N * S;
    if (channels_last)
      return nhwc_forward(x, w, b, M, C, use_batch_stats, eps, residual, relu, mean, var, invstd, y);
    _Pragma("omp parallel for if (C > 1 && C * M > 32768)")
    for (int64_t c = 0; c < C; ++c) {
      acc_t mu, v;
      if (use_batch_stats) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) s += double(plane_sum<scalar_t, acc_t>(x + (n * C + c) * S, S));
        mu = acc_t(s / double(M));
        double sq = 0;
        for (int64_t n = 0; n < N; ++n)
          sq += double(plane_squared_deviation<scalar_t, acc_t>(x + (n * C + c) * S, S, mu));
        v = acc_t(sq / double(M));
        mean[c] = mu;
        var[c] = v;
      } else {
        mu = mean[c];
        v = var[c];
      }
      const acc_t is = acc_t(1) / std::sqrt(v + acc_t(eps));
      invstd[c] = is;
      const acc_t scale = w ? w[c] * is : is;
      const acc_t shift = (b ? b[c] : acc_t(0)) - mu * scale;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * S;
        const scalar_t* p = x + base;
        scalar_t* q = y + base;
        if (!residual && !relu) {
          _Pragma("omp simd")
          for (int64_t i = 0; i < S; ++i) q[i] = scalar_t(acc_t(p[i]) * scale + shift);
          continue;
        }
        const scalar_t* r = residual ? residual + base : nullptr;
        _Pragma("omp simd")
        for (int64_t i = 0; i < S; ++i) q[i] = finish<scalar_t, acc_t>(acc_t(p[i]) * scale + shift, r, i, relu);
      }
    }
  });
}

void batch_norm_backward(DType type, const void* grad_y_, const void* x_, const void* weight_, const void* mean_,
                         const void* invstd_, int64_t N, int64_t C, int64_t S, bool channels_last,
                         bool use_batch_stats, const void* relu_y_, void* grad_x_, void* grad_weight_,
                         void* grad_bias_, void* grad_residual_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "batch_norm2d backward", [&] {
    const scalar_t* g = static_cast<const scalar_t*>(grad_y_);
    const scalar_t* relu_y = static_cast<const scalar_t*>(relu_y_);
    scalar_t* g_residual = static_cast<scalar_t*>(grad_residual_);
    const scalar_t* x = static_cast<const scalar_t*>(x_);
    const acc_t* w = static_cast<const acc_t*>(weight_);
    const acc_t* mean = static_cast<const acc_t*>(mean_);
    const acc_t* invstd = static_cast<const acc_t*>(invstd_);
    scalar_t* gx = static_cast<scalar_t*>(grad_x_);
    acc_t* gw = static_cast<acc_t*>(grad_weight_);
    acc_t* gb = static_cast<acc_t*>(grad_bias_);
    const int64_t M = N * S;
    if (channels_last)
      return nhwc_backward(g, x, w, mean, invstd, M, C, use_batch_stats, relu_y, gx, gw, gb, g_residual);
    _Pragma("omp parallel for if (C > 1 && C * M > 32768)")
    for (int64_t c = 0; c < C; ++c) {
      const acc_t mu = mean[c], is = invstd[c];
      double sum_g = 0, sum_gx = 0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * S;
        acc_t part_g = 0, part_gx = 0;
        if (relu_y)
          plane_grad_sums<true>(g + base, x + base, relu_y + base, S, mu, part_g, part_gx);
        else
          plane_grad_sums<false>(g + base, x + base, relu_y, S, mu, part_g, part_gx);
        sum_g += double(part_g);
        sum_gx += double(part_gx) * double(is);
      }
      if (gw) gw[c] = acc_t(sum_gx);
      if (gb) gb[c] = acc_t(sum_g);
      if (g_residual)
        for (int64_t n = 0; n < N; ++n) {
          const int64_t base = (n * C + c) * S;
          _Pragma("omp simd")
          for (int64_t i = 0; i < S; ++i)
            g_residual[base + i] = scalar_t(masked_grad<scalar_t, acc_t>(g, relu_y, base + i));
        }
      if (!gx) continue;
      const acc_t k = (w ? w[c] : acc_t(1)) * is;
      const acc_t mean_g = use_batch_stats ? acc_t(sum_g / double(M)) : acc_t(0);
      const acc_t mean_gx = use_batch_stats ? acc_t(sum_gx / double(M)) : acc_t(0);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * S;
        _Pragma("omp simd")
        for (int64_t i = 0; i < S; ++i) {
          const acc_t xhat = (acc_t(x[base + i]) - mu) * is;
          gx[base + i] = scalar_t(k * (masked_grad<scalar_t, acc_t>(g, relu_y, base + i) - mean_g - xhat * mean_gx));
        }
      }
    }
  });
}

void layer_norm_forward(DType type, const void* x_, const void* weight_, const void* bias_, int64_t rows,
                        int64_t cols, double eps, void* y_, void* mean_, void* rstd_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "layer_norm", [&] {
    const scalar_t* x = static_cast<const scalar_t*>(x_);
    const scalar_t* w = static_cast<const scalar_t*>(weight_);
    const scalar_t* b = static_cast<const scalar_t*>(bias_);
    scalar_t* y = static_cast<scalar_t*>(y_);
    acc_t* mean = static_cast<acc_t*>(mean_);
    acc_t* rstd = static_cast<acc_t*>(rstd_);
    _Pragma("omp parallel for if (rows * cols > 32768)")
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* p = x + r * cols;
      const acc_t mu = plane_sum<scalar_t, acc_t>(p, cols) / acc_t(cols);
      const acc_t var = plane_squared_deviation<scalar_t, acc_t>(p, cols, mu) / acc_t(cols);
      const acc_t rs = acc_t(1) / std::sqrt(var + acc_t(eps));
      mean[r] = mu;
      rstd[r] = rs;
      scalar_t* __restrict q = y + r * cols;
      _Pragma("omp simd")
      for (int64_t i = 0; i < cols; ++i) {
        acc_t v = (acc_t(p[i]) - mu) * rs;
        if (w) v *= acc_t(w[i]);
        if (b) v += acc_t(b[i]);
        q[i] = scalar_t(v);
      }
    }
  });
}

void layer_norm_backward(DType type, const void* grad_y_, const void* x_, const void* weight_, const void* mean_,
                         const void* rstd_, int64_t rows, int64_t cols, void* grad_x_, void* grad_weight_,
                         void* grad_bias_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "layer_norm backward", [&] {
    const scalar_t* g = static_cast<const scalar_t*>(grad_y_);
    const scalar_t* x = static_cast<const scalar_t*>(x_);
    const scalar_t* w = static_cast<const scalar_t*>(weight_);
    const acc_t* mean = static_cast<const acc_t*>(mean_);
    const acc_t* rstd = static_cast<const acc_t*>(rstd_);
    scalar_t* gx = static_cast<scalar_t*>(grad_x_);
    acc_t* gw = static_cast<acc_t*>(grad_weight_);
    acc_t* gb = static_cast<acc_t*>(grad_bias_);
    if (gx) {
      _Pragma("omp parallel for if (rows * cols > 32768)")
      for (int64_t r = 0; r < rows; ++r) {
        const scalar_t* gr = g + r * cols;
        const scalar_t* xr = x + r * cols;
        const acc_t mu = mean[r], rs = rstd[r];
        acc_t sum_gw = 0, sum_gwx = 0;  // sums of (g*w) and (g*w*xhat) over the row
        _Pragma("omp simd reduction(+ : sum_gw, sum_gwx)")
        for (int64_t i = 0; i < cols; ++i) {
          const acc_t gwi = acc_t(gr[i]) * (w ? acc_t(w[i]) : acc_t(1));
          sum_gw += gwi;
          sum_gwx += gwi * ((acc_t(xr[i]) - mu) * rs);
        }
        const acc_t mean_gw = sum_gw / acc_t(cols), mean_gwx = sum_gwx / acc_t(cols);
        scalar_t* __restrict out = gx + r * cols;
        _Pragma("omp simd")
        for (int64_t i = 0; i < cols; ++i) {
          const acc_t gwi = acc_t(gr[i]) * (w ? acc_t(w[i]) : acc_t(1));
          const acc_t xhat = (acc_t(xr[i]) - mu) * rs;
          out[i] = scalar_t(rs * (gwi - mean_gw - xhat * mean_gwx));
        }
      }
    }
    if (gw || gb) layer_norm_param_grads(g, x, mean, rstd, rows, cols, gw, gb);
  });
}

}  // namespace retort::cpu

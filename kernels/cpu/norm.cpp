// CPU batch norm and layer norm kernels (the reference for kernels/cuda/norm.cu).
// Batch norm: one channel per OpenMP iteration, two-pass mean/variance. Layer norm: one row
// per iteration; weight/bias gradients reduce over rows one column at a time. Sums accumulate
// in double so the reference stays accurate for long rows and large batches.
#include <cmath>
#include "kernels/cpu/dispatch.h"
#include "kernels/norm.h"

namespace retort::cpu {

void batch_norm_forward(DType type, const void* x_, const void* weight_, const void* bias_, int64_t N, int64_t C,
                        int64_t S, bool use_batch_stats, double eps, void* mean_, void* var_, void* invstd_,
                        void* y_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "batch_norm2d", [&] {
    const scalar_t* x = static_cast<const scalar_t*>(x_);
    const scalar_t* w = static_cast<const scalar_t*>(weight_);
    const scalar_t* b = static_cast<const scalar_t*>(bias_);
    acc_t* mean = static_cast<acc_t*>(mean_);
    acc_t* var = static_cast<acc_t*>(var_);
    acc_t* invstd = static_cast<acc_t*>(invstd_);
    scalar_t* y = static_cast<scalar_t*>(y_);
    const int64_t M = N * S;
    _Pragma("omp parallel for if (C > 1 && C * M > 32768)")
    for (int64_t c = 0; c < C; ++c) {
      acc_t mu, v;
      if (use_batch_stats) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) {
          const scalar_t* p = x + (n * C + c) * S;
          for (int64_t i = 0; i < S; ++i) s += double(acc_t(p[i]));
        }
        mu = acc_t(s / double(M));
        double sq = 0;
        for (int64_t n = 0; n < N; ++n) {
          const scalar_t* p = x + (n * C + c) * S;
          for (int64_t i = 0; i < S; ++i) {
            double d = double(acc_t(p[i])) - double(mu);
            sq += d * d;
          }
        }
        v = acc_t(sq / double(M));
        mean[c] = mu;
        var[c] = v;
      } else {
        mu = mean[c];
        v = var[c];
      }
      const acc_t is = acc_t(1) / std::sqrt(v + acc_t(eps));
      invstd[c] = is;
      const acc_t scale = w ? acc_t(w[c]) * is : is;
      const acc_t shift = (b ? acc_t(b[c]) : acc_t(0)) - mu * scale;
      for (int64_t n = 0; n < N; ++n) {
        const scalar_t* p = x + (n * C + c) * S;
        scalar_t* q = y + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) q[i] = scalar_t(acc_t(p[i]) * scale + shift);
      }
    }
  });
}

void batch_norm_backward(DType type, const void* grad_y_, const void* x_, const void* weight_, const void* mean_,
                         const void* invstd_, int64_t N, int64_t C, int64_t S, bool use_batch_stats, void* grad_x_,
                         void* grad_weight_, void* grad_bias_) {
  RETORT_CPU_DISPATCH_FLOAT(type, "batch_norm2d backward", [&] {
    const scalar_t* g = static_cast<const scalar_t*>(grad_y_);
    const scalar_t* x = static_cast<const scalar_t*>(x_);
    const scalar_t* w = static_cast<const scalar_t*>(weight_);
    const acc_t* mean = static_cast<const acc_t*>(mean_);
    const acc_t* invstd = static_cast<const acc_t*>(invstd_);
    scalar_t* gx = static_cast<scalar_t*>(grad_x_);
    acc_t* gw = static_cast<acc_t*>(grad_weight_);
    acc_t* gb = static_cast<acc_t*>(grad_bias_);
    const int64_t M = N * S;
    _Pragma("omp parallel for if (C > 1 && C * M > 32768)")
    for (int64_t c = 0; c < C; ++c) {
      const acc_t mu = mean[c], is = invstd[c];
      double sum_g = 0, sum_gx = 0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) {
          const double gi = double(acc_t(g[base + i]));
          sum_g += gi;
          sum_gx += gi * double((acc_t(x[base + i]) - mu) * is);
        }
      }
      if (gw) gw[c] = acc_t(sum_gx);
      if (gb) gb[c] = acc_t(sum_g);
      if (!gx) continue;
      const acc_t k = (w ? acc_t(w[c]) : acc_t(1)) * is;
      const acc_t mean_g = use_batch_stats ? acc_t(sum_g / double(M)) : acc_t(0);
      const acc_t mean_gx = use_batch_stats ? acc_t(sum_gx / double(M)) : acc_t(0);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) {
          const acc_t xhat = (acc_t(x[base + i]) - mu) * is;
          gx[base + i] = scalar_t(k * (acc_t(g[base + i]) - mean_g - xhat * mean_gx));
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
      double s = 0;
      for (int64_t i = 0; i < cols; ++i) s += double(acc_t(p[i]));
      const acc_t mu = acc_t(s / double(cols));
      double sq = 0;
      for (int64_t i = 0; i < cols; ++i) {
        const double d = double(acc_t(p[i])) - double(mu);
        sq += d * d;
      }
      const acc_t rs = acc_t(1) / std::sqrt(acc_t(sq / double(cols)) + acc_t(eps));
      mean[r] = mu;
      rstd[r] = rs;
      scalar_t* q = y + r * cols;
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
        double sum_gw = 0, sum_gwx = 0;  // sums of (g*w) and (g*w*xhat) over the row
        for (int64_t i = 0; i < cols; ++i) {
          const acc_t gwi = acc_t(gr[i]) * (w ? acc_t(w[i]) : acc_t(1));
          sum_gw += double(gwi);
          sum_gwx += double(gwi * ((acc_t(xr[i]) - mu) * rs));
        }
        const acc_t mean_gw = acc_t(sum_gw / double(cols)), mean_gwx = acc_t(sum_gwx / double(cols));
        scalar_t* out = gx + r * cols;
        for (int64_t i = 0; i < cols; ++i) {
          const acc_t gwi = acc_t(gr[i]) * (w ? acc_t(w[i]) : acc_t(1));
          const acc_t xhat = (acc_t(xr[i]) - mu) * rs;
          out[i] = scalar_t(rs * (gwi - mean_gw - xhat * mean_gwx));
        }
      }
    }
    if (gw || gb) {
      _Pragma("omp parallel for if (rows * cols > 32768)")
      for (int64_t i = 0; i < cols; ++i) {
        double sw = 0, sb = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const acc_t gi = acc_t(g[r * cols + i]);
          sw += double(gi * ((acc_t(x[r * cols + i]) - mean[r]) * rstd[r]));
          sb += double(gi);
        }
        if (gw) gw[i] = acc_t(sw);
        if (gb) gb[i] = acc_t(sb);
      }
    }
  });
}

}  // namespace retort::cpu

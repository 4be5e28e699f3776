// CPU loss kernels (cross-entropy rows, KL / smooth-L1 terms): the reference for kernels/cuda/loss.cu.
#include <cmath>
#include <limits>
#include "kernels/cpu/dispatch.h"
#include "kernels/loss.h"

namespace retort::cpu {
namespace {
template <typename A>
inline A term(PointwiseLoss kind, A a, A b, A beta) {
  switch (kind) {
    case PointwiseLoss::kl_div: return (b == A(0) ? A(0) : b * std::log(b)) - b * a;
    case PointwiseLoss::kl_div_log_target: return std::exp(b) * (b - a);
    case PointwiseLoss::smooth_l1: {
      A ad = std::abs(a - b);
      return ad < beta ? A(0.5) * (a - b) * (a - b) / beta : ad - A(0.5) * beta;
    }
  }
  return A(0);
}
// d term / da and d term / db.
template <typename A>
inline void term_grad(PointwiseLoss kind, A a, A b, A beta, A& da, A& db) {
  switch (kind) {
    case PointwiseLoss::kl_div:
      da = -b;
      db = (b == A(0) ? A(0) : std::log(b) + A(1)) - a;
      return;
    case PointwiseLoss::kl_div_log_target: {
      A e = std::exp(b);
      da = -e;
      db = e * (b - a + A(1));
      return;
    }
    case PointwiseLoss::smooth_l1: {
      A d = a - b;
      A s = std::abs(d) < beta ? d / beta : (d > A(0) ? A(1) : (d < A(0) ? A(-1) : A(0)));
      da = s;
      db = -s;
      return;
    }
  }
}
}  // namespace

void cross_entropy_forward(DType type, const void* logits, const int64_t* target, void* loss, void* lse,
                           int64_t rows, int64_t classes, double smoothing, int64_t* bad_row) {
  RETORT_CPU_DISPATCH_FLOAT(type, "cross_entropy", [&] {
    const scalar_t* x = static_cast<const scalar_t*>(logits);
    scalar_t* pl = static_cast<scalar_t*>(loss);
    acc_t* plse = static_cast<acc_t*>(lse);
    const acc_t eps = acc_t(smoothing), C = acc_t(classes);
    int64_t first_bad = *bad_row;
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* xr = x + r * classes;
      acc_t m = -std::numeric_limits<acc_t>::infinity();
      for (int64_t j = 0; j < classes; ++j) {
        acc_t v = acc_t(xr[j]);
        if (v > m || std::isnan(v)) m = v;
      }
      acc_t s = 0, sum_shifted = 0;
      for (int64_t j = 0; j < classes; ++j) {
        acc_t d = acc_t(xr[j]) - m;
        s += std::exp(d);
        sum_shifted += d;
      }
      acc_t log_s = std::log(s);
      plse[r] = m + log_s;
      const int64_t t = target[r];
      if (t < 0 || t >= classes) {
        if (r < first_bad) first_bad = r;
        pl[r] = scalar_t(std::numeric_limits<acc_t>::quiet_NaN());
        continue;
      }
      // -sum_j q_j (x_j - m - log s) with q = (1 - eps) onehot + eps / C
      pl[r] = scalar_t(log_s - (acc_t(1) - eps) * (acc_t(xr[t]) - m) - eps / C * sum_shifted);
    }
    *bad_row = first_bad;
  });
}

void cross_entropy_backward(DType type, const void* logits, const int64_t* target, const void* lse,
                            const void* grad, void* dx, int64_t rows, int64_t classes, double smoothing) {
  RETORT_CPU_DISPATCH_FLOAT(type, "cross_entropy backward", [&] {
    const scalar_t* x = static_cast<const scalar_t*>(logits);
    const acc_t* plse = static_cast<const acc_t*>(lse);
    const scalar_t* g = static_cast<const scalar_t*>(grad);
    scalar_t* pd = static_cast<scalar_t*>(dx);
    const acc_t eps = acc_t(smoothing), off = eps / acc_t(classes), on = acc_t(1) - eps + off;
    _Pragma("omp parallel for if (rows * classes > 32768)")
    for (int64_t r = 0; r < rows; ++r) {
      const acc_t gr = acc_t(g[r]);
      for (int64_t j = 0; j < classes; ++j) {
        acc_t q = j == target[r] ? on : off;
        pd[r * classes + j] = scalar_t(gr * (std::exp(acc_t(x[r * classes + j]) - plse[r]) - q));
      }
    }
  });
}

void pointwise_loss_forward(PointwiseLoss kind, DType type, const void* a, const void* b, void* out, int64_t n,
                            double beta) {
  RETORT_CPU_DISPATCH_FLOAT(type, "loss", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a);
    const scalar_t* pb = static_cast<const scalar_t*>(b);
    scalar_t* po = static_cast<scalar_t*>(out);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) po[i] = scalar_t(term<acc_t>(kind, acc_t(pa[i]), acc_t(pb[i]), acc_t(beta)));
  });
}

void pointwise_loss_backward(PointwiseLoss kind, DType type, const void* a, const void* b, const void* g, void* ga,
                             void* gb, int64_t n, double beta) {
  RETORT_CPU_DISPATCH_FLOAT(type, "loss backward", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a);
    const scalar_t* pb = static_cast<const scalar_t*>(b);
    const scalar_t* pg = static_cast<const scalar_t*>(g);
    scalar_t* pga = static_cast<scalar_t*>(ga);
    scalar_t* pgb = static_cast<scalar_t*>(gb);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t da = 0, db = 0;
      term_grad<acc_t>(kind, acc_t(pa[i]), acc_t(pb[i]), acc_t(beta), da, db);
      if (pga) pga[i] = scalar_t(acc_t(pg[i]) * da);
      if (pgb) pgb[i] = scalar_t(acc_t(pg[i]) * db);
    }
  });
}

}  // namespace retort::cpu

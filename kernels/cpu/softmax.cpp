// CPU softmax / log_softmax rows, forward and backward: the reference for kernels/cuda/softmax.cu.
#include <cmath>
#include <limits>
#include "kernels/cpu/dispatch.h"
#include "kernels/softmax.h"

namespace retort::cpu {

void softmax_forward(DType type, const void* x, void* y, int64_t rows, int64_t n, bool log) {
  RETORT_CPU_DISPATCH_FLOAT(type, "softmax", [&] {
    const scalar_t* px = static_cast<const scalar_t*>(x);
    scalar_t* py = static_cast<scalar_t*>(y);
    _Pragma("omp parallel for if (rows * n > 32768)")
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* xr = px + r * n;
      scalar_t* yr = py + r * n;
      acc_t m = -std::numeric_limits<acc_t>::infinity();
      for (int64_t i = 0; i < n; ++i) {
        acc_t v = acc_t(xr[i]);
        if (v > m || std::isnan(v)) m = v;
      }
      if (std::isinf(m) && m < 0) m = 0;  // all -inf: avoid inf - inf
      acc_t s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(acc_t(xr[i]) - m);
      if (log) {
        acc_t log_s = std::log(s);  // (x - m) - log s keeps precision for large logits
        for (int64_t i = 0; i < n; ++i) yr[i] = scalar_t((acc_t(xr[i]) - m) - log_s);
      } else {
        acc_t inv = acc_t(1) / s;
        for (int64_t i = 0; i < n; ++i) yr[i] = scalar_t(std::exp(acc_t(xr[i]) - m) * inv);
      }
    }
  });
}

void softmax_backward(DType type, const void* y, const void* g, void* dx, int64_t rows, int64_t n, bool log) {
  RETORT_CPU_DISPATCH_FLOAT(type, "softmax backward", [&] {
    const scalar_t* py = static_cast<const scalar_t*>(y);
    const scalar_t* pg = static_cast<const scalar_t*>(g);
    scalar_t* pd = static_cast<scalar_t*>(dx);
    _Pragma("omp parallel for if (rows * n > 32768)")
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* yr = py + r * n;
      const scalar_t* gr = pg + r * n;
      scalar_t* dr = pd + r * n;
      acc_t s = 0;
      if (log) {
        for (int64_t i = 0; i < n; ++i) s += acc_t(gr[i]);
        for (int64_t i = 0; i < n; ++i) dr[i] = scalar_t(acc_t(gr[i]) - std::exp(acc_t(yr[i])) * s);
      } else {
        for (int64_t i = 0; i < n; ++i) s += acc_t(gr[i]) * acc_t(yr[i]);
        for (int64_t i = 0; i < n; ++i) dr[i] = scalar_t(acc_t(yr[i]) * (acc_t(gr[i]) - s));
      }
    }
  });
}

}  // namespace retort::cpu

// CPU row reductions (sum, max): the reference for kernels/cuda/reduce_rows.cu.
#include <cmath>
#include <limits>
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/reduce.h"

namespace retort::cpu {
namespace {
template <typename T, typename A>
A pairwise_sum(const T* p, int64_t n) {
  if (n <= 64) {
    A s = 0;
    for (int64_t i = 0; i < n; ++i) s += A(p[i]);
    return s;
  }
  int64_t h = n / 2;
  return pairwise_sum<T, A>(p, h) + pairwise_sum<T, A>(p + h, n - h);
}
}  // namespace

void reduce_rows(ReduceOp op, DType type, const void* in, void* out, int64_t outer, int64_t inner) {
  RETORT_CPU_DISPATCH_FLOAT(type, "reduce", [&] {
    const scalar_t* p = static_cast<const scalar_t*>(in);
    scalar_t* o = static_cast<scalar_t*>(out);
    _Pragma("omp parallel for if (outer * inner > 65536)")
    for (int64_t r = 0; r < outer; ++r) {
      const scalar_t* row = p + r * inner;
      if (op == ReduceOp::sum) {
        o[r] = scalar_t(pairwise_sum<scalar_t, acc_t>(row, inner));
      } else {
        acc_t m = -std::numeric_limits<acc_t>::infinity();
        for (int64_t i = 0; i < inner; ++i) {
          acc_t v = acc_t(row[i]);
          if (v > m || std::isnan(v)) m = v;
          if (std::isnan(m)) break;
        }
        o[r] = scalar_t(m);
      }
    }
  });
}

}  // namespace retort::cpu

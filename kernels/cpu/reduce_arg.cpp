// CPU max-with-index row reduction and its scatter: the reference for kernels/cuda/reduce_arg.cu.
#include <cmath>
#include "kernels/cpu/dispatch.h"
#include "kernels/reduce.h"

namespace retort::cpu {

void max_rows(DType type, const void* in, void* values, int64_t* index, int64_t outer, int64_t inner) {
  RETORT_CPU_DISPATCH_FLOAT(type, "max/argmax", [&] {
    const scalar_t* p = static_cast<const scalar_t*>(in);
    scalar_t* v = static_cast<scalar_t*>(values);
    _Pragma("omp parallel for if (outer * inner > 65536)")
    for (int64_t r = 0; r < outer; ++r) {
      const scalar_t* row = p + r * inner;
      int64_t best = 0;
      acc_t bv = acc_t(row[0]);
      for (int64_t i = 1; i < inner && !std::isnan(bv); ++i) {
        acc_t x = acc_t(row[i]);
        if (x > bv || std::isnan(x)) {
          bv = x;
          best = i;
        }
      }
      index[r] = best;
      if (v) v[r] = row[best];
    }
  });
}

void scatter_rows(DType type, const void* g, const int64_t* index, void* out, int64_t outer, int64_t inner) {
  RETORT_CPU_DISPATCH_FLOAT(type, "max backward", [&] {
    const scalar_t* pg = static_cast<const scalar_t*>(g);
    scalar_t* o = static_cast<scalar_t*>(out);
    static_assert(sizeof(acc_t) > 0);
    _Pragma("omp parallel for if (outer * inner > 65536)")
    for (int64_t r = 0; r < outer; ++r) {
      scalar_t* row = o + r * inner;
      for (int64_t i = 0; i < inner; ++i) row[i] = scalar_t(0.0f);
      row[index[r]] = pg[r];
    }
  });
}

}  // namespace retort::cpu

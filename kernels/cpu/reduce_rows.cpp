// CPU row reductions (sum, max): the reference for kernels/cuda/reduce_rows.cu. Also the column
// sum, which reduces the leading dim of a contiguous [rows, cols] block in the same pairwise order
// as a row sum of its transpose (so it gives the same bits without the transposing copy).
#include <cmath>
#include <limits>
#include "kernels/cpu/dispatch.h"
#include "kernels/reduce.h"

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

// pairwise_sum of W neighbouring columns at once: acc[j] = pairwise_sum of p[i * stride + j] over
// i < n. Lane j performs exactly the scalar recursion's additions, in its order.
template <typename T, typename A, int W>
void pairwise_cols(const T* p, int64_t n, int64_t stride, A* acc) {
  if (n <= 64) {
    A s[W];
    for (int j = 0; j < W; ++j) s[j] = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* row = p + i * stride;
      for (int j = 0; j < W; ++j) s[j] += A(row[j]);
    }
    for (int j = 0; j < W; ++j) acc[j] = s[j];
    return;
  }
  const int64_t h = n / 2;
  A left[W], right[W];
  pairwise_cols<T, A, W>(p, h, stride, left);
  pairwise_cols<T, A, W>(p + h * stride, n - h, stride, right);
  for (int j = 0; j < W; ++j) acc[j] = left[j] + right[j];
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

void sum_cols(DType type, const void* in, void* out, int64_t rows, int64_t cols) {
  constexpr int kTile = 16;  // columns summed together: one 64-byte line of f32
  RETORT_CPU_DISPATCH_FLOAT(type, "sum", [&] {
    const scalar_t* p = static_cast<const scalar_t*>(in);
    scalar_t* o = static_cast<scalar_t*>(out);
    const int64_t tiles = cols / kTile, tail = cols - tiles * kTile;
    _Pragma("omp parallel for if (rows * cols > 65536)")
    for (int64_t t = 0; t < tiles + tail; ++t) {
      if (t < tiles) {
        acc_t acc[kTile];
        pairwise_cols<scalar_t, acc_t, kTile>(p + t * kTile, rows, cols, acc);
        for (int j = 0; j < kTile; ++j) o[t * kTile + j] = scalar_t(acc[j]);
      } else {
        const int64_t c = tiles * kTile + (t - tiles);
        acc_t acc[1];
        pairwise_cols<scalar_t, acc_t, 1>(p + c, rows, cols, acc);
        o[c] = scalar_t(acc[0]);
      }
    }
  });
}

}  // namespace retort::cpu

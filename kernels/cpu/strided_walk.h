// Walking strided operands without a division per element: the elements of a row-major shape
// are visited run by run (a run: consecutive indices along the innermost dimension), with each
// operand's offset computed once per run and stepped by its innermost stride inside it. Dims of
// size 1 are dropped and neighbouring dims that every operand steps through contiguously are
// merged first, so a transposed or broadcast view costs little more than a dense one. The
// visiting order and the values are those of Layout::offset_of (core/layout.h), which stays
// the per-element reference (and what the CUDA kernels use).
#pragma once
#include <omp.h>
#include <algorithm>
#include <array>
#include <cstdint>
#include "core/layout.h"

namespace retort::cpu {

// K operands of one shape, dims merged where all K allow it.
template <int K>
struct StridedWalk {
  int ndim = 0;  // at least 1
  int64_t shape[kMaxDims] = {};
  int64_t strides[K][kMaxDims] = {};

  // The layouts must share one shape (broadcast operands carry stride 0).
  explicit StridedWalk(const std::array<const Layout*, K>& layouts) {
    const Layout& first = *layouts[0];
    for (int d = 0; d < first.ndim; ++d) {
      if (first.shape[d] == 1) continue;  // contributes nothing to any offset
      // Merge into the previous kept dim when every operand steps through both contiguously.
      bool merge = ndim > 0;
      for (int k = 0; k < K && merge; ++k)
        merge = strides[k][ndim - 1] == layouts[k]->strides[d] * first.shape[d];
      if (merge) {
        shape[ndim - 1] *= first.shape[d];
        for (int k = 0; k < K; ++k) strides[k][ndim - 1] = layouts[k]->strides[d];
      } else {
        shape[ndim] = first.shape[d];
        for (int k = 0; k < K; ++k) strides[k][ndim] = layouts[k]->strides[d];
        ++ndim;
      }
    }
    if (ndim == 0) {  // a single element
      ndim = 1;
      shape[0] = 1;
    }
  }

  int64_t inner_stride(int k) const { return strides[k][ndim - 1]; }

  // Calls run(i, len, off) for the linear indices [begin, end), one run at a time: the run
  // covers i .. i + len - 1, and operand k's element i + j sits at off[k] + j * inner_stride(k).
  template <typename Run>
  void walk(int64_t begin, int64_t end, Run&& run) const {
    if (begin >= end) return;
    int64_t idx[kMaxDims];
    std::array<int64_t, K> off{};
    int64_t rest = begin;
    for (int d = ndim - 1; d >= 0; --d) {
      idx[d] = rest % shape[d];
      rest /= shape[d];
      for (int k = 0; k < K; ++k) off[k] += idx[d] * strides[k][d];
    }
    const int last = ndim - 1;
    for (int64_t i = begin; i < end;) {
      const int64_t len = std::min(shape[last] - idx[last], end - i);
      run(i, len, off);
      i += len;
      idx[last] += len;
      for (int k = 0; k < K; ++k) off[k] += len * strides[k][last];
      for (int d = last; d > 0 && idx[d] == shape[d]; --d) {  // carry into the outer dims
        idx[d] = 0;
        ++idx[d - 1];
        for (int k = 0; k < K; ++k) off[k] += strides[k][d - 1] - shape[d] * strides[k][d];
      }
    }
  }

  // walk() over [0, n), the range split evenly over the OpenMP team when `parallel`.
  template <typename Run>
  void walk_all(int64_t n, bool parallel, Run&& run) const {
    if (!parallel) {
      walk(0, n, run);
      return;
    }
#pragma omp parallel
    {
      const int64_t teams = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t per = (n + teams - 1) / teams;
      walk(std::min(n, t * per), std::min(n, (t + 1) * per), run);
    }
  }
};

}  // namespace retort::cpu

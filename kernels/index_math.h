// Index arithmetic shared by the CPU and CUDA gather / scatter_add kernels.
#pragma once
#include <cstdint>
#include "core/layout.h"

namespace retort {

// For the linear (row-major) element i of the index's shape (layout li): its offset in the
// index tensor, and the offset in the data tensor (layout ld) of the same coordinates with the
// coordinate along `dim` left out (the caller adds index_value * ld.strides[dim]).
RETORT_HD inline void gather_offsets(const Layout& li, const Layout& ld, int dim, int64_t i, int64_t& index_off,
                                     int64_t& data_off) {
  index_off = 0;
  data_off = 0;
  for (int d = li.ndim - 1; d >= 0; --d) {
    int64_t c = i % li.shape[d];
    i /= li.shape[d];
    index_off += c * li.strides[d];
    if (d != dim) data_off += c * ld.strides[d];
  }
}

}  // namespace retort

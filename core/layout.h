// Layout (core/): shape + strides (in elements) of up to 8 dims, passed by value to CPU and CUDA
// kernels so both index strided and broadcast (stride 0) operands the same way.
#pragma once
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define RETORT_HD __host__ __device__
#else
#define RETORT_HD
#endif

namespace retort {

constexpr int kMaxDims = 8;

struct Layout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  // Element offset of the linear (row-major) index i of this shape.
  RETORT_HD int64_t offset_of(int64_t i) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t idx = i % shape[d];
      i /= shape[d];
      off += idx * strides[d];
    }
    return off;
  }
  // True when the elements lie row-major and contiguous (size-1 dims may have any stride).
  RETORT_HD bool is_dense() const {
    int64_t expect = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (shape[d] != 1 && strides[d] != expect) return false;
      expect *= shape[d];
    }
    return true;
  }
  RETORT_HD int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= shape[d];
    return n;
  }
};

inline Layout make_layout(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  Layout l;
  l.ndim = int(shape.size());
  for (int d = 0; d < l.ndim; ++d) {
    l.shape[d] = shape[d];
    l.strides[d] = strides[d];
  }
  return l;
}

}  // namespace retort

// CPU comparisons and selection (gt, eq, where, index_select/index_add, gather/scatter_add):
// the reference for kernels/cuda/select.cu. Index checks run in a serial pass before the
// parallel loops (an exception must not leave an OpenMP region).
#include "kernels/select.h"
#include <cstring>
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/strided_walk.h"
#include "kernels/index_math.h"

namespace retort::cpu {
namespace {
// Runs fn(T{}) with T the C++ type of any dtype.
template <typename Fn>
void dispatch_any(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::f64: fn(double{}); return;
    case DType::bf16: fn(bf16{}); return;
    case DType::i64: fn(int64_t{}); return;
    case DType::u8: fn(uint8_t{}); return;
  }
}
template <typename T> double as_double(T v) { return double(v); }
template <> double as_double<bf16>(bf16 v) { return double(float(v)); }
template <typename T> bool same(T x, T y) { return x == y; }
template <> bool same<bf16>(bf16 x, bf16 y) { return float(x) == float(y); }

void check_index(int64_t j, int64_t size, const char* op) {
  RETORT_REQUIRE(j >= 0 && j < size, op, ": index ", j, " is out of range for a dim of size ", size);
}
}  // namespace

void gt_scalar(DType type, const void* in, const Layout& l, double s, uint8_t* out, int64_t n) {
  dispatch_any(type, [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(in);
    const StridedWalk<1> walk({&l});
    const int64_t step = walk.inner_stride(0);
    walk.walk_all(n, n > 32768, [&](int64_t i, int64_t len, const std::array<int64_t, 1>& off) {
      for (int64_t j = 0; j < len; ++j) out[i + j] = as_double(p[off[0] + j * step]) > s ? 1 : 0;
    });
  });
}

void eq(DType type, const void* a, const Layout& la, const void* b, const Layout& lb, uint8_t* out, int64_t n) {
  dispatch_any(type, [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    const StridedWalk<2> walk({&la, &lb});
    const int64_t sa = walk.inner_stride(0), sb = walk.inner_stride(1);
    walk.walk_all(n, n > 32768, [&](int64_t i, int64_t len, const std::array<int64_t, 2>& off) {
      for (int64_t j = 0; j < len; ++j) out[i + j] = same(pa[off[0] + j * sa], pb[off[1] + j * sb]) ? 1 : 0;
    });
  });
}

void where(size_t elem_size, const uint8_t* mask, const Layout& lm, const void* a, const Layout& la, const void* b,
           const Layout& lb, void* out, int64_t n) {
  dispatch_word(elem_size, [&](auto tag) {
    using W = decltype(tag);
    const W* pa = static_cast<const W*>(a);
    const W* pb = static_cast<const W*>(b);
    W* po = static_cast<W*>(out);
    // run by run, without a division per element (kernels/cpu/strided_walk.h)
    const StridedWalk<3> walk({&lm, &la, &lb});
    const int64_t sm = walk.inner_stride(0), sa = walk.inner_stride(1), sb = walk.inner_stride(2);
    walk.walk_all(n, n > 32768, [&](int64_t i, int64_t len, const std::array<int64_t, 3>& off) {
      for (int64_t j = 0; j < len; ++j)
        po[i + j] = mask[off[0] + j * sm] ? pa[off[1] + j * sa] : pb[off[2] + j * sb];
    });
  });
}

void index_select(size_t elem_size, const void* in, int64_t outer, int64_t src_size, int64_t inner,
                  const int64_t* index, int64_t num_index, void* out) {
  for (int64_t k = 0; k < num_index; ++k) check_index(index[k], src_size, "index_select");
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  const size_t row = size_t(inner) * elem_size;
  const int64_t rows = outer * num_index;
  _Pragma("omp parallel for if (rows * inner > 32768)")
  for (int64_t r = 0; r < rows; ++r) {
    int64_t o = r / num_index, k = r % num_index;
    std::memcpy(dst + size_t(r) * row, src + size_t(o * src_size + index[k]) * row, row);
  }
}

void index_add(DType type, const void* src, int64_t outer, int64_t num_index, int64_t inner, const int64_t* index,
               int64_t dst_size, void* out) {
  for (int64_t k = 0; k < num_index; ++k) check_index(index[k], dst_size, "index_add");
  RETORT_CPU_DISPATCH_FLOAT(type, "index_add", [&] {
    const scalar_t* s = static_cast<const scalar_t*>(src);
    scalar_t* d = static_cast<scalar_t*>(out);
    // Parallel over outer: each o owns its own destination slab, so no two threads collide.
    _Pragma("omp parallel for if (outer * num_index * inner > 32768)")
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < num_index; ++k) {
        const scalar_t* srow = s + (o * num_index + k) * inner;
        scalar_t* drow = d + (o * dst_size + index[k]) * inner;
        for (int64_t i = 0; i < inner; ++i) drow[i] = scalar_t(acc_t(drow[i]) + acc_t(srow[i]));
      }
  });
}

void gather(size_t elem_size, const void* in, const Layout& la, int dim, const int64_t* index, const Layout& li,
            void* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) check_index(index[li.offset_of(i)], la.shape[dim], "gather");
  dispatch_word(elem_size, [&](auto tag) {
    using W = decltype(tag);
    const W* src = static_cast<const W*>(in);
    W* dst = static_cast<W*>(out);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      int64_t io, ao;
      gather_offsets(li, la, dim, i, io, ao);
      dst[i] = src[ao + index[io] * la.strides[dim]];
    }
  });
}

void scatter_add(DType type, const void* src, const int64_t* index, const Layout& li, int dim, void* out,
                 const Layout& lo, int64_t n) {
  for (int64_t i = 0; i < n; ++i) check_index(index[li.offset_of(i)], lo.shape[dim], "scatter_add");
  RETORT_CPU_DISPATCH_FLOAT(type, "scatter_add", [&] {
    const scalar_t* s = static_cast<const scalar_t*>(src);
    scalar_t* d = static_cast<scalar_t*>(out);
    // Serial: different elements may land on the same destination.
    for (int64_t i = 0; i < n; ++i) {
      int64_t io, oo;
      gather_offsets(li, lo, dim, i, io, oo);
      scalar_t& t = d[oo + index[io] * lo.strides[dim]];
      t = scalar_t(acc_t(t) + acc_t(s[i]));
    }
  });
}

}  // namespace retort::cpu

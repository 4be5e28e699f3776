// CPU strided copy / cast / fill / in-place scalar add: the reference for kernels/cuda/copy.cu.
#include "kernels/copy.h"
#include <cstring>
#include "core/check.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/strided_walk.h"

namespace retort::cpu {
namespace {

template <typename T>
double load(const void* p, int64_t i) { return double(static_cast<const T*>(p)[i]); }
template <typename T>
void store(void* p, int64_t i, double v) { static_cast<T*>(p)[i] = T(v); }
template <>
void store<bf16>(void* p, int64_t i, double v) { static_cast<bf16*>(p)[i] = bf16(float(v)); }
template <>
double load<bf16>(const void* p, int64_t i) { return double(float(static_cast<const bf16*>(p)[i])); }

using LoadFn = double (*)(const void*, int64_t);
using StoreFn = void (*)(void*, int64_t, double);
LoadFn loader(DType t) {
  switch (t) {
    case DType::f32: return load<float>;
    case DType::f64: return load<double>;
    case DType::bf16: return load<bf16>;
    case DType::i64: return load<int64_t>;
    case DType::u8: return load<uint8_t>;
  }
  return nullptr;
}
StoreFn storer(DType t) {
  switch (t) {
    case DType::f32: return store<float>;
    case DType::f64: return store<double>;
    case DType::bf16: return store<bf16>;
    case DType::i64: return store<int64_t>;
    case DType::u8: return store<uint8_t>;
  }
  return nullptr;
}

template <typename Word>
void copy_same(Word* dst, const Layout& dl, const Word* src, const Layout& sl, int64_t n) {
  const StridedWalk<2> walk({&dl, &sl});
  const int64_t sd = walk.inner_stride(0), ss = walk.inner_stride(1);
  walk.walk_all(n, n > 65536, [&](int64_t, int64_t len, const std::array<int64_t, 2>& off) {
    Word* d = dst + off[0];
    const Word* s = src + off[1];
    for (int64_t j = 0; j < len; ++j) d[j * sd] = s[j * ss];
  });
}

}  // namespace

void strided_copy(void* dst, DType dt, const Layout& dl, const void* src, DType st, const Layout& sl) {
  const int64_t n = dl.numel();
  if (n == 0) return;
  if (dt == st) {
    size_t es = dtype_size(dt);
    if (dl.is_dense() && sl.is_dense()) {
      std::memcpy(dst, src, size_t(n) * es);
      return;
    }
    dispatch_word(es, [&](auto word) {
      using W = decltype(word);
      copy_same(static_cast<W*>(dst), dl, static_cast<const W*>(src), sl, n);
    });
    return;
  }
  LoadFn ld = loader(st);
  StoreFn sto = storer(dt);
  const StridedWalk<2> walk({&dl, &sl});
  const int64_t sd = walk.inner_stride(0), ss = walk.inner_stride(1);
  walk.walk_all(n, n > 65536, [&](int64_t, int64_t len, const std::array<int64_t, 2>& off) {
    for (int64_t j = 0; j < len; ++j) sto(dst, off[0] + j * sd, ld(src, off[1] + j * ss));
  });
}

// The value is converted to the dtype once, then its bytes are replicated (OpenMP over large n).
void add_scalar_in_place(void* data, DType t, int64_t n, double v) {
  const LoadFn ld = loader(t);
  const StoreFn st = storer(t);
  _Pragma("omp parallel for if (n > 262144)")
  for (int64_t i = 0; i < n; ++i) st(data, i, ld(data, i) + v);
}

void fill(void* dst, DType t, int64_t n, double v) {
  if (n <= 0) return;
  alignas(8) unsigned char one[8] = {};
  storer(t)(one, 0, v);
  dispatch_word(dtype_size(t), [&](auto word) {
    using W = decltype(word);
    std::memcpy(&word, one, sizeof(W));
    W* p = static_cast<W*>(dst);
    _Pragma("omp parallel for if (n > 262144)")
    for (int64_t i = 0; i < n; ++i) p[i] = word;
  });
}

}  // namespace retort::cpu

// CPU random kernels (uniform, normal, dropout): the reference for kernels/cuda/random.cu.
#include "kernels/random.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/random_draws.h"

namespace retort::cpu {
namespace {
// Stores a [0, 1) double so that it stays below 1 after rounding to T.
template <typename T> T unit_value(double u) { return T(u); }
template <> float unit_value<float>(double u) {
  float f = float(u);
  return f < 1.0f ? f : kBelowOneF32;
}
template <> bf16 unit_value<bf16>(double u) {
  const bf16 b{float(u)};
  return float(b) < 1.0f ? b : bf16(kBelowOneBF16);
}
template <typename T> T from_double(double v) { return T(v); }
template <> bf16 from_double<bf16>(double v) { return bf16(float(v)); }
}  // namespace

void uniform(DType type, void* out, int64_t n, uint64_t seed, uint64_t base) {
  RETORT_CPU_DISPATCH_FLOAT(type, "rand", [&] {
    static_assert(sizeof(acc_t) > 0, "draws are computed in double, not acc_t");
    scalar_t* o = static_cast<scalar_t*>(out);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) o[i] = unit_value<scalar_t>(uniform_at(seed, base, i));
  });
}

void normal(DType type, void* out, int64_t n, uint64_t seed, uint64_t base) {
  RETORT_CPU_DISPATCH_FLOAT(type, "randn", [&] {
    static_assert(sizeof(acc_t) > 0, "draws are computed in double, not acc_t");
    scalar_t* o = static_cast<scalar_t*>(out);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) o[i] = from_double<scalar_t>(normal_at(seed, base, i));
  });
}

void dropout(DType type, const void* x, const Layout& lx, void* out, uint8_t* mask, int64_t n, uint64_t seed,
             uint64_t base, double p, double scale) {
  RETORT_CPU_DISPATCH_FLOAT(type, "dropout", [&] {
    const scalar_t* in = static_cast<const scalar_t*>(x);
    scalar_t* o = static_cast<scalar_t*>(out);
    const acc_t s = acc_t(scale);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = dropout_keep(seed, base, i, p);
      mask[i] = keep ? 1 : 0;
      o[i] = keep ? scalar_t(acc_t(in[lx.offset_of(i)]) * s) : scalar_t(acc_t(0));
    }
  });
}

void dropout_backward(DType type, const void* grad_out, const Layout& lg, const uint8_t* mask, double scale,
                      void* grad_in, int64_t n) {
  RETORT_CPU_DISPATCH_FLOAT(type, "dropout backward", [&] {
    const scalar_t* g = static_cast<const scalar_t*>(grad_out);
    scalar_t* o = static_cast<scalar_t*>(grad_in);
    const acc_t s = acc_t(scale);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) o[i] = mask[i] ? scalar_t(acc_t(g[lg.offset_of(i)]) * s) : scalar_t(acc_t(0));
  });
}

}  // namespace retort::cpu

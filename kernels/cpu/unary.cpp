// CPU unary kernels and their fused backward: the reference for kernels/cuda/unary.cu.
#include "kernels/cpu/unary.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/unary_math.h"

namespace retort::cpu {
namespace {
bool dense(const Layout& l) {
  int64_t expect = 1;
  for (int d = l.ndim - 1; d >= 0; --d) {
    if (l.shape[d] != 1 && l.strides[d] != expect) return false;
    expect *= l.shape[d];
  }
  return true;
}
}  // namespace

void unary(UnaryOp op, UnaryParams prm, DType type, const void* in, const Layout& li, void* out, int64_t n) {
  RETORT_CPU_DISPATCH_FLOAT(type, "unary op", [&] {
    const scalar_t* x = static_cast<const scalar_t*>(in);
    scalar_t* y = static_cast<scalar_t*>(out);
    const acc_t p0 = acc_t(prm.p0), p1 = acc_t(prm.p1);
    const bool contiguous = dense(li);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t v = acc_t(x[contiguous ? i : li.offset_of(i)]);
      y[i] = scalar_t(unary_math::forward<acc_t>(op, v, p0, p1));
    }
  });
}

void unary_backward(UnaryOp op, UnaryParams prm, DType type, const void* grad_out, const Layout& lg,
                    const void* saved, const Layout& ls, void* grad_in, int64_t n) {
  RETORT_CPU_DISPATCH_FLOAT(type, "unary op backward", [&] {
    const scalar_t* g = static_cast<const scalar_t*>(grad_out);
    const scalar_t* s = static_cast<const scalar_t*>(saved);
    scalar_t* gi = static_cast<scalar_t*>(grad_in);
    const acc_t p0 = acc_t(prm.p0), p1 = acc_t(prm.p1);
    const bool contiguous = dense(lg) && dense(ls);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t gv = acc_t(g[contiguous ? i : lg.offset_of(i)]);
      acc_t sv = acc_t(s[contiguous ? i : ls.offset_of(i)]);
      gi[i] = scalar_t(unary_math::backward<acc_t>(op, gv, sv, p0, p1));
    }
  });
}

}  // namespace retort::cpu

// CPU broadcast binary kernels (add, sub, mul, div, maximum, ge_mask): reference for CUDA.
#include "kernels/cpu/dispatch.h"
#include "kernels/binary.h"
#include "kernels/cpu/strided_walk.h"

namespace retort::cpu {
namespace {
template <typename A>
inline A apply(BinaryOp op, A x, A y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
    case BinaryOp::maximum: return (x >= y || x != x) ? x : y;  // NaN propagates
    case BinaryOp::ge_mask: return x >= y ? A(1) : A(0);
  }
  return x;
}
}  // namespace

void binary(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb, void* out,
            int64_t n) {
  RETORT_CPU_DISPATCH_FLOAT(type, "binary op", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a);
    const scalar_t* pb = static_cast<const scalar_t*>(b);
    scalar_t* po = static_cast<scalar_t*>(out);
    if (la.is_dense() && lb.is_dense()) {
      _Pragma("omp parallel for if (n > 32768)")
      for (int64_t i = 0; i < n; ++i) po[i] = scalar_t(apply<acc_t>(op, acc_t(pa[i]), acc_t(pb[i])));
    } else {
      const StridedWalk<2> walk({&la, &lb});
      const int64_t sa = walk.inner_stride(0), sb = walk.inner_stride(1);
      walk.walk_all(n, n > 32768, [&](int64_t i, int64_t len, const std::array<int64_t, 2>& off) {
        const scalar_t* ra = pa + off[0];
        const scalar_t* rb = pb + off[1];
        scalar_t* ro = po + i;
        for (int64_t j = 0; j < len; ++j) ro[j] = scalar_t(apply<acc_t>(op, acc_t(ra[j * sa]), acc_t(rb[j * sb])));
      });
    }
  });
}

}  // namespace retort::cpu

// CPU broadcast binary kernels (add, sub, mul, div, maximum, ge_mask): reference for CUDA.
#include "kernels/cpu/dispatch.h"
#include "kernels/binary.h"
#include "kernels/cpu/strided_walk.h"
#include <type_traits>

namespace retort::cpu {
namespace {
template <typename A>
[[gnu::always_inline]] inline A apply(BinaryOp op, A x, A y) {
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

// Each op gets its own loops (the op a template constant), with the operands as plain pointers:
// the dense loop and the common broadcast rows (a row against a scalar) vectorise. `out` may be
// `a` itself (autograd accumulates gradients in place), so only the inputs are restrict-free too.
template <BinaryOp kOp, typename A, typename T>
void binary_dense(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = T(apply<A>(kOp, A(a[i]), A(b[i])));
}

template <BinaryOp kOp, typename A, typename T>
void binary_row(const T* a, int64_t sa, const T* b, int64_t sb, T* out, int64_t len) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) out[j] = T(apply<A>(kOp, A(a[j]), A(b[j])));
  } else if (sa == 1 && sb == 0) {
    const A y = A(b[0]);
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) out[j] = T(apply<A>(kOp, A(a[j]), y));
  } else if (sa == 0 && sb == 1) {
    const A x = A(a[0]);
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) out[j] = T(apply<A>(kOp, x, A(b[j])));
  } else {
    for (int64_t j = 0; j < len; ++j) out[j] = T(apply<A>(kOp, A(a[j * sa]), A(b[j * sb])));
  }
}

template <typename Body>
void with_op(BinaryOp op, Body&& body) {
  switch (op) {
    case BinaryOp::add: return body(std::integral_constant<BinaryOp, BinaryOp::add>{});
    case BinaryOp::sub: return body(std::integral_constant<BinaryOp, BinaryOp::sub>{});
    case BinaryOp::mul: return body(std::integral_constant<BinaryOp, BinaryOp::mul>{});
    case BinaryOp::div: return body(std::integral_constant<BinaryOp, BinaryOp::div>{});
    case BinaryOp::maximum: return body(std::integral_constant<BinaryOp, BinaryOp::maximum>{});
    case BinaryOp::ge_mask: return body(std::integral_constant<BinaryOp, BinaryOp::ge_mask>{});
  }
}
}  // namespace

void binary(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb, void* out,
            int64_t n) {
  RETORT_CPU_DISPATCH_FLOAT(type, "binary op", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a);
    const scalar_t* pb = static_cast<const scalar_t*>(b);
    scalar_t* po = static_cast<scalar_t*>(out);
    with_op(op, [&](auto opc) {
      constexpr BinaryOp kOp = decltype(opc)::value;
      if (la.is_dense() && lb.is_dense()) {
        binary_dense<kOp, acc_t>(pa, pb, po, n);
      } else {
        const StridedWalk<2> walk({&la, &lb});
        const int64_t sa = walk.inner_stride(0), sb = walk.inner_stride(1);
        walk.walk_all(n, n > 32768, [&](int64_t i, int64_t len, const std::array<int64_t, 2>& off) {
          binary_row<kOp, acc_t>(pa + off[0], sa, pb + off[1], sb, po + i, len);
        });
      }
    });
  });
}

}  // namespace retort::cpu

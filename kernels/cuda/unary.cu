// CUDA unary kernels and their fused backward: grid-stride loops, one template instance per
// op so the per-element switch folds away. Reference: kernels/cpu/unary.cpp; the formulas are
// shared with it through kernels/unary_math.h.
#include "kernels/cuda/common.cuh"
#include "kernels/unary.h"
#include "kernels/unary_math.h"

namespace retort::cuda {
namespace {
template <typename T, UnaryOp OP>
__global__ void unary_kernel(const T* x, Layout lx, bool contiguous, T* y, int64_t n, double p0d, double p1d) {
  using A = typename Acc<T>::type;
  const A p0 = A(p0d), p1 = A(p1d);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A v = ld(x, contiguous ? i : lx.offset_of(i));
    st(y, i, unary_math::forward<A>(OP, v, p0, p1));
  }
}

template <typename T, UnaryOp OP>
__global__ void unary_backward_kernel(const T* g, Layout lg, const T* s, Layout ls, bool contiguous, T* gi, int64_t n,
                                      double p0d, double p1d) {
  using A = typename Acc<T>::type;
  const A p0 = A(p0d), p1 = A(p1d);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A gv = ld(g, contiguous ? i : lg.offset_of(i));
    A sv = ld(s, contiguous ? i : ls.offset_of(i));
    st(gi, i, unary_math::backward<A>(OP, gv, sv, p0, p1));
  }
}

// Calls fn(std::integral_constant<UnaryOp, op>{}) so kernels are instantiated per op.
template <typename Fn>
void for_op(UnaryOp op, Fn&& fn) {
#define RETORT_UNARY_CASE(name, reads) \
  case UnaryOp::name: fn(std::integral_constant<UnaryOp, UnaryOp::name>{}); return;
  switch (op) { RETORT_UNARY_OPS(RETORT_UNARY_CASE) }
#undef RETORT_UNARY_CASE
  raise("unary op: unknown op ", int(op));
}
}  // namespace

void unary(UnaryOp op, UnaryParams prm, DType type, const void* in, const Layout& li, void* out, int64_t n) {
  if (n == 0) return;
  const bool contiguous = li.is_dense();
  RETORT_CUDA_DISPATCH_FLOAT(type, "unary op", [&] {
    for_op(op, [&](auto tag) {
      unary_kernel<scalar_t, decltype(tag)::value><<<grid_for(n), 256, 0, stream()>>>(
          static_cast<const scalar_t*>(in), li, contiguous, static_cast<scalar_t*>(out), n, prm.p0, prm.p1);
    });
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void unary_backward(UnaryOp op, UnaryParams prm, DType type, const void* grad_out, const Layout& lg,
                    const void* saved, const Layout& ls, void* grad_in, int64_t n) {
  if (n == 0) return;
  const bool contiguous = lg.is_dense() && ls.is_dense();
  RETORT_CUDA_DISPATCH_FLOAT(type, "unary op backward", [&] {
    for_op(op, [&](auto tag) {
      unary_backward_kernel<scalar_t, decltype(tag)::value><<<grid_for(n), 256, 0, stream()>>>(
          static_cast<const scalar_t*>(grad_out), lg, static_cast<const scalar_t*>(saved), ls, contiguous,
          static_cast<scalar_t*>(grad_in), n, prm.p0, prm.p1);
    });
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda

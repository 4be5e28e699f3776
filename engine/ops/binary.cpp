// Broadcast binary ops add, sub, mul, div: shape checks, autograd, dispatch.
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "kernels/binary.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
Tensor broadcast_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_same(a, b, name);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  Layout la = broadcast_layout(a, out_shape), lb = broadcast_layout(b, out_shape);
  RETORT_KERNEL(a.device(), binary, op, a.dtype(), a.raw_data(), la, b.raw_data(), lb, out.raw_data(), out.numel());
  return out;
}

Tensor add(const Tensor& a_ac, const Tensor& b_ac) {
  const auto promoted = autocast::promote(a_ac, b_ac);
  const Tensor& a = promoted.first;
  const Tensor& b = promoted.second;
  RETORT_PROFILE_OP("add", a, b);
  Tensor out = broadcast_binary(BinaryOp::add, a, b, "add");
  if (needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    record(out, "add", {a, b}, [sa, sb](const Tensor& g) { return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)}; });
  }
  prof.add_output_bytes(out);
  return out;
}
Tensor sub(const Tensor& a_ac, const Tensor& b_ac) {
  const auto promoted = autocast::promote(a_ac, b_ac);
  const Tensor& a = promoted.first;
  const Tensor& b = promoted.second;
  RETORT_PROFILE_OP("sub", a, b);
  Tensor out = broadcast_binary(BinaryOp::sub, a, b, "sub");
  if (needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    record(out, "sub", {a, b}, [sa, sb](const Tensor& g) { return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)}; });
  }
  prof.add_output_bytes(out);
  return out;
}
Tensor mul(const Tensor& a_ac, const Tensor& b_ac) {
  const auto promoted = autocast::promote(a_ac, b_ac);
  const Tensor& a = promoted.first;
  const Tensor& b = promoted.second;
  RETORT_PROFILE_OP("mul", a, b);
  Tensor out = broadcast_binary(BinaryOp::mul, a, b, "mul");
  if (needs_grad({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record(out, "mul", {a, b}, [ad, bd, ga, gb](const Tensor& g) {
      return std::vector<Tensor>{ga ? sum_to(mul(g, bd), ad.shape()) : Tensor(),
                                 gb ? sum_to(mul(g, ad), bd.shape()) : Tensor()};
    });
  }
  prof.add_output_bytes(out);
  return out;
}
Tensor div(const Tensor& a_ac, const Tensor& b_ac) {
  const auto promoted = autocast::promote(a_ac, b_ac);
  const Tensor& a = promoted.first;
  const Tensor& b = promoted.second;
  RETORT_PROFILE_OP("div", a, b);
  Tensor out = broadcast_binary(BinaryOp::div, a, b, "div");
  if (needs_grad({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record(out, "div", {a, b}, [ad, bd, ga, gb](const Tensor& g) {
      Tensor gq = div(g, bd);
      return std::vector<Tensor>{ga ? sum_to(gq, ad.shape()) : Tensor(),
                                 gb ? sum_to(neg(mul(gq, div(ad, bd))), bd.shape()) : Tensor()};
    });
  }
  prof.add_output_bytes(out);
  return out;
}
}  // namespace retort

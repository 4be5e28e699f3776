// Broadcast binary ops add, sub, mul, div: shape checks, autograd, dispatch. The output keeps
// the memory format of the first dense operand of its shape (engine/memory_format.h); the
// backward of add and sub passes the output gradient through, so their input gradients have the
// format the gradient arrives in (mul and div: that of the first dense operand of the product).
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/memory_format.h"
#include "engine/profiler.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "kernels/binary.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
// The output's memory format: that of the first operand with the output's shape whose memory is
// dense (channels-last or contiguous), so a channels-last residual add stays channels-last and
// an expanded gradient (g of a sum) times a channels-last tensor is channels-last; contiguous
// when no operand qualifies.
MemoryFormat binary_output_format(const Tensor& a, const Tensor& b, const Shape& out_shape) {
  for (const Tensor* t : {&a, &b}) {
    if (t->shape() != out_shape) continue;
    if (suggest_memory_format(*t) == MemoryFormat::channels_last) return MemoryFormat::channels_last;
    if (t->is_contiguous()) return MemoryFormat::contiguous;
  }
  return MemoryFormat::contiguous;
}
}  // namespace

Tensor broadcast_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_same(a, b, name);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  const MemoryFormat f = binary_output_format(a, b, out_shape);
  Tensor out = empty_in_format(out_shape, f, a.dtype(), a.device());
  // Both operands are walked in the output's memory order (dense for same-format operands).
  Layout la = layout_in_format(broadcast_layout(a, out_shape), f);
  Layout lb = layout_in_format(broadcast_layout(b, out_shape), f);
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

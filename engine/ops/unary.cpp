// Elementwise unary ops (exp, log, sqrt, pow, abs, clamp, relu, gelu, sigmoid, tanh): checks,
// autograd (one fused backward kernel per op) and dispatch to kernels/cpu|cuda/unary. Outputs
// and input gradients keep the operand's memory format (engine/memory_format.h).
#include <cmath>
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/memory_format.h"
#include "engine/ops.h"
#include "engine/ops/unary_util.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/unary.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
// The output takes a's memory format (channels-last stays channels-last); the kernel walks the
// operands in that memory order, so a channels-last operand is read as a dense block.
Tensor unary_raw(UnaryOp op, const Tensor& a, UnaryParams prm) {
  const MemoryFormat f = suggest_memory_format(a);
  Tensor out = empty_in_format(a.shape(), f, a.dtype(), a.device());
  Layout l = layout_in_format(make_layout(a.shape(), a.strides()), f);
  RETORT_KERNEL(a.device(), unary, op, prm, a.dtype(), a.raw_data(), l, out.raw_data(), out.numel());
  return out;
}
// The input gradient takes the saved value's memory format; g may arrive in any layout. A g in
// another layout is first made dense in the saved value's, so the one dense kernel computes every
// element (the strided loop's scalar maths need not round as the vectorised one does: gelu's erf
// differed in its last bit on AVX2, and a channels-last step must equal the NCHW one bit for bit).
Tensor unary_grad(UnaryOp op, const Tensor& g_any, const Tensor& saved, UnaryParams prm) {
  const MemoryFormat f = suggest_memory_format(saved);
  Tensor gi = empty_in_format(saved.shape(), f, saved.dtype(), saved.device());
  const bool saved_dense = layout_in_format(make_layout(saved.shape(), saved.strides()), f).is_dense();
  const bool g_dense = layout_in_format(make_layout(g_any.shape(), g_any.strides()), f).is_dense();
  const Tensor g = saved_dense && !g_dense ? to_memory_format(g_any.detach(), f) : g_any;
  Layout lg = layout_in_format(make_layout(g.shape(), g.strides()), f);
  Layout ls = layout_in_format(make_layout(saved.shape(), saved.strides()), f);
  RETORT_KERNEL(saved.device(), unary_backward, op, prm, saved.dtype(), g.raw_data(), lg, saved.raw_data(), ls,
                gi.raw_data(), gi.numel());
  return gi;
}
}  // namespace

Tensor unary_op(UnaryOp op, const Tensor& a, const char* name, UnaryParams prm) {
  RETORT_PROFILE_OP(name, a);
  RETORT_CHECK(a.defined(), "{}: the operand is undefined", name);
  RETORT_CHECK(is_floating(a.dtype()), "{}: the operand must be floating (f32, f64 or bf16), got {}", name, a.str());
  Tensor out = unary_raw(op, a, prm);
  if (needs_grad({&a})) {
    Tensor saved = unary_grad_uses_output(op) ? out.detach() : a.detach();
    record(out, name, {a}, [op, prm, saved](const Tensor& g) {
      RETORT_CHECK(g.dtype() == saved.dtype() && g.device() == saved.device(),
                   "backward: gradient {} does not match the saved {}", g.str(), saved.str());
      return std::vector<Tensor>{unary_grad(op, g, saved, prm)};
    });
  }
  prof.add_output_bytes(out);
  return out;
}

Tensor exp(const Tensor& a) { return unary_op(UnaryOp::exp, autocast::to_f32(a), "exp"); }
Tensor log(const Tensor& a) { return unary_op(UnaryOp::log, autocast::to_f32(a), "log"); }
Tensor sqrt(const Tensor& a) { return unary_op(UnaryOp::sqrt, autocast::to_f32(a), "sqrt"); }
Tensor pow(const Tensor& a, double exponent) {
  return unary_op(UnaryOp::pow, autocast::to_f32(a), "pow", {exponent, 0.0});
}
Tensor abs(const Tensor& a) { return unary_op(UnaryOp::abs, a, "abs"); }
Tensor clamp(const Tensor& a, double lo, double hi) {
  RETORT_CHECK(!(lo > hi), "clamp: lo {} is greater than hi {}", lo, hi);
  RETORT_CHECK(!std::isnan(lo) && !std::isnan(hi), "clamp: bounds must not be NaN (use +-infinity for one-sided)");
  return unary_op(UnaryOp::clamp, a, "clamp", {lo, hi});
}
Tensor relu(const Tensor& a) { return unary_op(UnaryOp::relu, a, "relu"); }
Tensor gelu(const Tensor& a) { return unary_op(UnaryOp::gelu, a, "gelu"); }
Tensor sigmoid(const Tensor& a) { return unary_op(UnaryOp::sigmoid, a, "sigmoid"); }
Tensor tanh(const Tensor& a) { return unary_op(UnaryOp::tanh, a, "tanh"); }

}  // namespace retort

// Autocast: the thread's precision scope and the per-operand cast rules (see engine/autocast.h).
#include "engine/autocast.h"
#include "engine/error.h"
#include "kernels/math_mode.h"

namespace retort {
namespace {
thread_local Precision g_precision = Precision::f32;

void apply(Precision p) {
  g_precision = p;
  kernels::set_tf32_allowed(p == Precision::tf32);
}
}  // namespace

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::f32: return "f32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  for (Precision p : {Precision::f32, Precision::tf32, Precision::bf16})
    if (name == precision_name(p)) return p;
  fail("precision: unknown value \"{}\" (use \"f32\", \"tf32\" or \"bf16\")", name);
}

namespace autocast {

Precision current() { return g_precision; }
bool casting() { return g_precision == Precision::bf16; }

Tensor lower(const Tensor& t) {
  if (!casting() || !t.defined() || t.dtype() != DType::f32) return t;
  return t.to(DType::bf16);
}

Tensor to_f32(const Tensor& t) {
  if (!casting() || !t.defined() || t.dtype() != DType::bf16) return t;
  return t.to(DType::f32);
}

std::pair<Tensor, Tensor> promote(const Tensor& a, const Tensor& b) {
  if (!casting() || !a.defined() || !b.defined() || a.dtype() == b.dtype()) return {a, b};
  const bool mixed = (a.dtype() == DType::bf16 && b.dtype() == DType::f32) ||
                     (a.dtype() == DType::f32 && b.dtype() == DType::bf16);
  if (!mixed) return {a, b};
  return {a.to(DType::f32), b.to(DType::f32)};
}

std::vector<Tensor> promote(const std::vector<Tensor>& xs) {
  if (!casting()) return xs;
  bool any_bf16 = false, any_f32 = false;
  for (const auto& x : xs) {
    any_bf16 = any_bf16 || (x.defined() && x.dtype() == DType::bf16);
    any_f32 = any_f32 || (x.defined() && x.dtype() == DType::f32);
  }
  if (!(any_bf16 && any_f32)) return xs;
  std::vector<Tensor> out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(x.defined() && x.dtype() == DType::bf16 ? x.to(DType::f32) : x);
  return out;
}

}  // namespace autocast

AutocastScope::AutocastScope(Precision p) : prev_(g_precision) { apply(p); }
AutocastScope::~AutocastScope() { apply(prev_); }

}  // namespace retort

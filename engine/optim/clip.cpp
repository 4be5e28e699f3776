// clip_grad_norm_on_device: the norm from one multi-tensor sum of squares per (device, dtype)
// (kernels/optim.h), the clip factor by where(), and the scaling by an in-place broadcast
// multiply; clip_grad_norm reads the norm once; nonfinite_flag for the optimizer's skip.
#include "engine/optim/clip.h"
#include <algorithm>
#include <cstddef>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/kernel_call.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "engine/profiler.h"
#include "kernels/binary.h"
#include "kernels/optim.h"

namespace retort {
namespace {
struct ParamGrad {
  Tensor param, grad;
};

std::vector<ParamGrad> defined_grads(const std::vector<Tensor>& params) {
  std::vector<ParamGrad> out;
  for (const auto& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (g.defined()) out.push_back({p, g});
  }
  return out;
}

// The gradients of one device and dtype, dense, for one sum_squares_multi call.
struct SquaresGroup {
  Device device;
  DType dtype;
  std::vector<DenseInput> inputs;
};

// sqrt(the sum over the gradients of every element squared), each (device, dtype) group summed
// in one multi-tensor pass in f64, the groups' sums added in order on the first gradient's device.
// A non-contiguous (broadcast) gradient is summed over a dense copy, as sum(g * g) would see it.
Tensor total_norm(const std::vector<ParamGrad>& grads) {
  profiler::Range prof("gradient norm", profiler::Kind::op);
  double bytes = 0;
  std::vector<Tensor> dense;
  std::vector<SquaresGroup> groups;
  for (const auto& pg : grads) {
    const Tensor& g = dense.emplace_back(pg.grad.is_contiguous() ? pg.grad : pg.grad.contiguous());
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const SquaresGroup& s) { return s.device == g.device() && s.dtype == g.dtype(); });
    if (it == groups.end()) it = groups.insert(groups.end(), SquaresGroup{g.device(), g.dtype(), {}});
    it->inputs.push_back(DenseInput{g.raw_data(), g.numel()});
    bytes += double(g.nbytes());
  }
  if (prof.on()) prof.set_bytes(bytes);
  const Device device = grads.front().grad.device();
  Tensor total;
  for (const SquaresGroup& s : groups) {
    Tensor part = Tensor::empty({}, DType::f64, s.device);
    RETORT_KERNEL(s.device, sum_squares_multi, s.dtype, s.inputs.data(), int64_t(s.inputs.size()),
                  static_cast<double*>(part.raw_data()));
    part = part.to(device);
    total = total.defined() ? add(total, part) : part;
  }
  return sqrt(total);
}

// u8 mask: 1 where x is finite (x * 0 is 0 there, NaN for NaN and +-inf).
Tensor finite_mask(const Tensor& x) { return eq(mul(x, 0.0), Tensor::zeros(x.shape(), x.dtype(), x.device())); }

// max_norm / (norm + 1e-6) when the norm is finite and above max_norm, else exactly 1.
Tensor clip_factor(const Tensor& norm, double max_norm) {
  const Tensor one = Tensor::ones(norm.shape(), norm.dtype(), norm.device());
  const Tensor clipped = where(gt(norm, max_norm), rdiv(max_norm, add(norm, 1e-6)), one);
  return where(finite_mask(norm), clipped, one);
}

// The factor in a gradient's dtype and on its device, converted once per (dtype, device).
class FactorCache {
 public:
  explicit FactorCache(Tensor factor) : factor_(std::move(factor)) {}
  const Tensor& like(const Tensor& g) {
    for (const Tensor& f : converted_)
      if (f.dtype() == g.dtype() && f.device() == g.device()) return f;
    converted_.push_back(factor_.to(g.dtype()).to(g.device()));
    return converted_.back();
  }

 private:
  Tensor factor_;
  std::vector<Tensor> converted_;
};

// g *= factor (a one-element tensor of g's dtype and device), in place.
void scale_in_place(const Tensor& g, const Tensor& factor) {
  RETORT_KERNEL(g.device(), binary, BinaryOp::mul, g.dtype(), g.raw_data(), broadcast_layout(g, g.shape()),
                factor.raw_data(), broadcast_layout(factor, g.shape()), g.raw_data(), g.numel());
}

// The bytes a dense gradient occupies.
struct Span {
  const std::byte* begin;
  const std::byte* end;
  Device device;
};
Span span_of(const Tensor& g) {
  const auto* b = static_cast<const std::byte*>(g.raw_data());
  return {b, b + g.nbytes(), g.device()};
}

enum class Overlap { none, same, partial };
Overlap overlap_with(const Span& s, const std::vector<Span>& written) {
  for (const Span& w : written) {
    if (w.device != s.device || s.begin >= w.end || w.begin >= s.end) continue;
    return (s.begin == w.begin && s.end == w.end) ? Overlap::same : Overlap::partial;
  }
  return Overlap::none;
}

// Scales every gradient by factor. Replacements (non-contiguous gradients, or ones partly
// overlapping a gradient scaled in place) are computed before any in-place write, so each
// reads the values the norm was computed from; a gradient that is exactly the memory of one
// scaled in place is already scaled.
void scale_gradients(const std::vector<ParamGrad>& grads, const Tensor& factor) {
  FactorCache factors(factor);
  std::vector<Span> written;
  std::vector<Tensor> in_place;
  std::vector<ParamGrad> replaced;
  for (const auto& pg : grads) {
    if (pg.grad.is_contiguous() && pg.grad.numel() > 0) {
      const Span s = span_of(pg.grad);
      const Overlap o = overlap_with(s, written);
      if (o == Overlap::same) continue;
      if (o == Overlap::none) {
        written.push_back(s);
        in_place.push_back(pg.grad);
        continue;
      }
    }
    replaced.push_back({pg.param, mul(pg.grad, factors.like(pg.grad))});
  }
  for (const Tensor& g : in_place) scale_in_place(g, factors.like(g));
  for (const auto& pg : replaced) {
    Tensor handle = pg.param;
    handle.set_grad(pg.grad);
  }
}
}  // namespace

Tensor clip_grad_norm_on_device(const std::vector<Tensor>& params, double max_norm) {
  RETORT_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be non-negative, got {}", max_norm);
  NoGradGuard no_grad;
  const std::vector<ParamGrad> grads = defined_grads(params);
  if (grads.empty()) {
    const Device device = !params.empty() && params.front().defined() ? params.front().device() : Device::cpu();
    return Tensor::zeros({}, DType::f64, device);
  }
  const Tensor norm = total_norm(grads);
  scale_gradients(grads, clip_factor(norm, max_norm));
  return norm;
}

Tensor gradient_norm_on_device(const std::vector<Tensor>& params) {
  NoGradGuard no_grad;
  const std::vector<ParamGrad> grads = defined_grads(params);
  if (grads.empty()) {
    const Device device = !params.empty() && params.front().defined() ? params.front().device() : Device::cpu();
    return Tensor::zeros({}, DType::f64, device);
  }
  return total_norm(grads);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  return clip_grad_norm_on_device(params, max_norm).item();
}

Tensor nonfinite_flag(const Tensor& value) {
  RETORT_CHECK(value.defined() && value.numel() == 1, "nonfinite_flag: expected one element, got {}",
               value.defined() ? value.str() : "an undefined tensor");
  NoGradGuard no_grad;
  const Tensor v = value.detach().reshape({1});
  const Tensor zero = Tensor::zeros({1}, v.dtype(), v.device()), one = Tensor::ones({1}, v.dtype(), v.device());
  return where(finite_mask(v), zero, one).to(DType::f32);
}

}  // namespace retort

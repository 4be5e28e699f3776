// Losses: cross_entropy (fused log-softmax kernel with label smoothing), kl_div (PyTorch
// semantics, batchmean divides by size(0)), mse_loss, smooth_l1_loss; shared reductions.
#include <limits>
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/loss.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
// none: as is; sum: total; mean: total / numel; batchmean: total / size(0).
Tensor reduce_loss(const Tensor& terms, Reduction reduction) {
  switch (reduction) {
    case Reduction::none: return terms;
    case Reduction::sum: return sum(terms);
    case Reduction::mean: return mean(terms);
    case Reduction::batchmean: {
      const int64_t n = terms.dim() == 0 ? 1 : terms.size(0);
      return mul(sum(terms), 1.0 / double(n));
    }
  }
  return terms;
}

void check_pair(const Tensor& a, const Tensor& b, const char* op, const char* first, const char* second) {
  RETORT_CHECK(a.defined() && b.defined(), "{}: undefined operand", op);
  RETORT_CHECK(is_floating(a.dtype()), "{}: {} must be floating, got {}", op, first, a.str());
  RETORT_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch: {} is {}, {} is {}", op, first, a.str(), second, b.str());
  RETORT_CHECK(a.device() == b.device(), "{}: device mismatch: {} is {}, {} is {}", op, first, a.str(), second,
               b.str());
  RETORT_CHECK(a.shape() == b.shape(), "{}: shapes differ: {} is {}, {} is {}", op, first, shape_str(a.shape()), second,
               shape_str(b.shape()));
}

// Elementwise loss terms with their fused backward kernel.
Tensor pointwise_loss(PointwiseLoss kind, const Tensor& a_in, const Tensor& b_in, double beta, const char* op) {
  Tensor a = a_in.detach().contiguous(), b = b_in.detach().contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  RETORT_KERNEL(a.device(), pointwise_loss_forward, kind, a.dtype(), a.raw_data(), b.raw_data(), out.raw_data(),
                a.numel(), beta);
  if (needs_grad({&a_in, &b_in})) {
    bool need_a = a_in.requires_grad(), need_b = b_in.requires_grad();
    record(out, op, {a_in, b_in}, [=](const Tensor& g_in) {
      Tensor g = g_in.contiguous();
      Tensor ga = need_a ? Tensor::empty(a.shape(), a.dtype(), a.device()) : Tensor();
      Tensor gb = need_b ? Tensor::empty(a.shape(), a.dtype(), a.device()) : Tensor();
      void* pa = need_a ? ga.raw_data() : nullptr;
      void* pb = need_b ? gb.raw_data() : nullptr;
      RETORT_KERNEL(a.device(), pointwise_loss_backward, kind, a.dtype(), a.raw_data(), b.raw_data(), g.raw_data(), pa,
                    pb, a.numel(), beta);
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}
thread_local bool g_defer_label_check = false;
bool label_check_deferred() { return g_defer_label_check; }

// [1]: NaN when the kernel found a bad row (bad < rows), else 0; in the loss's dtype.
Tensor nan_where_bad(const Tensor& bad, int64_t rows, const Tensor& like) {
  NoGradGuard no_grad;
  const Tensor found = gt(rsub(double(rows), bad.to(DType::f32)), 0.5);
  const Tensor nan = Tensor::full({1}, std::numeric_limits<double>::quiet_NaN(), like.dtype(), like.device());
  return where(found, nan, Tensor::zeros({1}, like.dtype(), like.device()));
}

}  // namespace

DeferLabelCheck::DeferLabelCheck() : prev_(g_defer_label_check) { g_defer_label_check = true; }
DeferLabelCheck::~DeferLabelCheck() { g_defer_label_check = prev_; }

Tensor cross_entropy(const Tensor& logits_ac, const Tensor& target, double label_smoothing, Reduction reduction) {
  const Tensor logits = autocast::to_f32(logits_ac);
  RETORT_PROFILE_OP("cross_entropy", logits, target);
  RETORT_CHECK(logits.defined() && target.defined(), "cross_entropy: undefined operand");
  RETORT_CHECK(logits.dim() == 2 && is_floating(logits.dtype()),
               "cross_entropy: logits must be a floating [N, C] tensor, got {}", logits.str());
  RETORT_CHECK(target.dtype() == DType::i64 && target.dim() == 1 && target.size(0) == logits.size(0),
               "cross_entropy: target must be i64 [N] with N = {} (logits {}), got {}", logits.size(0), logits.str(),
               target.str());
  RETORT_CHECK(target.device() == logits.device(), "cross_entropy: target is on {}, logits on {}",
               target.device().str(), logits.device().str());
  RETORT_CHECK(logits.size(1) > 0, "cross_entropy: logits {} have no classes", logits.str());
  RETORT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
               "cross_entropy: label_smoothing must be in [0, 1], got {}", label_smoothing);
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const Device dev = logits.device();
  Tensor x = logits.detach().contiguous(), t = target.detach().contiguous();
  Tensor loss = Tensor::empty({rows}, x.dtype(), dev);
  Tensor lse = Tensor::empty({rows}, x.dtype() == DType::f64 ? DType::f64 : DType::f32, dev);
  Tensor bad = Tensor::full({1}, double(rows), DType::i64, dev);
  RETORT_KERNEL(dev, cross_entropy_forward, x.dtype(), x.raw_data(), t.data<int64_t>(), loss.raw_data(), lse.raw_data(),
                rows, classes, label_smoothing, bad.data<int64_t>());
  if (!label_check_deferred()) {
    const int64_t bad_row = bad.to_i64_vector()[0];
    if (bad_row < rows) {
      const int64_t label = t.slice(0, bad_row, bad_row + 1).to_i64_vector()[0];
      fail("cross_entropy: target label {} at row {} is out of range [0, {}) for logits {}", label, bad_row, classes,
           logits.str());
    }
  }
  if (needs_grad({&logits})) {
    record(loss, "cross_entropy", {logits}, [x, t, lse, rows, classes, label_smoothing](const Tensor& g_in) {
      Tensor g = g_in.contiguous();
      Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
      RETORT_KERNEL(x.device(), cross_entropy_backward, x.dtype(), x.raw_data(), t.data<int64_t>(), lse.raw_data(),
                    g.raw_data(), dx.raw_data(), rows, classes, label_smoothing);
      return std::vector<Tensor>{dx};
    });
  }
  // Deferred check: a label out of range makes the loss NaN on the device (no host read).
  if (label_check_deferred()) loss = add(loss, nan_where_bad(bad, rows, loss));
  return reduce_loss(loss, reduction);
}

Tensor kl_div(const Tensor& log_q_ac, const Tensor& target_ac, Reduction reduction, bool log_target) {
  const Tensor log_q = autocast::to_f32(log_q_ac);
  const Tensor target = autocast::to_f32(target_ac);
  RETORT_PROFILE_OP("kl_div", log_q, target);
  check_pair(log_q, target, "kl_div", "input (log q)", "target");
  Tensor terms = pointwise_loss(log_target ? PointwiseLoss::kl_div_log_target : PointwiseLoss::kl_div, log_q, target,
                                0.0, "kl_div");
  return reduce_loss(terms, reduction);
}

Tensor mse_loss(const Tensor& a_ac, const Tensor& b_ac, Reduction reduction) {
  const Tensor a = autocast::to_f32(a_ac);
  const Tensor b = autocast::to_f32(b_ac);
  RETORT_PROFILE_OP("mse_loss", a, b);
  check_pair(a, b, "mse_loss", "input", "target");
  Tensor d = sub(a, b);
  return reduce_loss(mul(d, d), reduction);
}

Tensor smooth_l1_loss(const Tensor& a_ac, const Tensor& b_ac, double beta, Reduction reduction) {
  const Tensor a = autocast::to_f32(a_ac);
  const Tensor b = autocast::to_f32(b_ac);
  RETORT_PROFILE_OP("smooth_l1_loss", a, b);
  check_pair(a, b, "smooth_l1_loss", "input", "target");
  RETORT_CHECK(beta >= 0.0, "smooth_l1_loss: beta must be >= 0, got {}", beta);
  return reduce_loss(pointwise_loss(PointwiseLoss::smooth_l1, a, b, beta, "smooth_l1_loss"), reduction);
}

}  // namespace retort

// Device-side step bookkeeping, read once per interval (see train/step_health.h).
#include "train/step_health.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/optim/clip.h"
#include "train/evaluate.h"

namespace retort {
namespace {
Tensor scalar_f32(const Tensor& t) { return t.detach().to(DType::f32).reshape({1}); }
}  // namespace

// The buffers are made once and only zeroed after: a captured step (CUDA graph) writes them.
StepHealth::StepHealth(Device device, int64_t num_terms) : device_(device), num_terms_(num_terms) {
  for (Tensor* t : {&loss_sum_, &last_loss_, &hits_, &any_bad_, &first_bad_index_, &step_index_, &gradient_bad_})
    *t = Tensor::zeros({1}, DType::f32, device_);
  terms_at_first_bad_ = Tensor::zeros({std::max<int64_t>(num_terms_, 1)}, DType::f32, device_);
}

void StepHealth::reset() {
  steps_ = 0;
  for (Tensor* t : {&loss_sum_, &last_loss_, &hits_, &any_bad_, &first_bad_index_, &step_index_, &terms_at_first_bad_,
                    &gradient_bad_})
    t->zero_();
}

void StepHealth::record(const Tensor& total, const std::vector<Tensor>& terms, const Tensor& logits, const Tensor& y) {
  RETORT_CHECK(int64_t(terms.size()) == num_terms_, "StepHealth: {} loss terms recorded, {} expected", terms.size(),
               num_terms_);
  NoGradGuard no_grad;
  const Tensor t = scalar_f32(total);
  const Tensor bad_now = nonfinite_flag(t);
  const Tensor first_now = mul(bad_now, rsub(1.0, any_bad_));  // 1 only at the interval's first bad step
  first_bad_index_.copy_(add(first_bad_index_, mul(first_now, step_index_)));
  if (num_terms_ > 0) {
    std::vector<Tensor> values;
    for (const auto& term : terms) values.push_back(scalar_f32(term));
    terms_at_first_bad_.copy_(where(gt(first_now, 0.5), concat(values, 0), terms_at_first_bad_));
  }
  any_bad_.copy_(maximum(any_bad_, bad_now));
  loss_sum_.copy_(add(loss_sum_, t));
  last_loss_.copy_(t);
  if (logits.defined() && y.defined()) hits_.copy_(add(hits_, top1_hits_on_device(logits, y)));
  step_index_.add_(1.0);
  ++steps_;
}

void StepHealth::record_gradient_norm(const Tensor& norm) {
  NoGradGuard no_grad;
  const Tensor bad_now = nonfinite_flag(norm);
  const Tensor first_now = mul(bad_now, rsub(1.0, any_bad_));  // this step (recorded last) is the first bad one
  first_bad_index_.copy_(add(first_bad_index_, mul(first_now, add(step_index_, -1.0))));
  gradient_bad_.copy_(maximum(gradient_bad_, first_now));
  any_bad_.copy_(maximum(any_bad_, bad_now));
}

StepHealth::Reading StepHealth::read() {
  Reading r;
  r.steps = steps_;
  if (steps_ == 0) return r;
  // The interval's one host read: every accumulator in one tensor.
  const std::vector<double> v =
      concat({loss_sum_, last_loss_, hits_, any_bad_, first_bad_index_, gradient_bad_, terms_at_first_bad_}, 0)
          .to_vector();
  r.loss_sum = v[0];
  r.last_loss = v[1];
  r.hits = int64_t(v[2]);
  if (v[3] != 0) {
    r.first_bad = int64_t(v[4]);
    r.gradient_at_first_bad = v[5] != 0;
    r.terms_at_first_bad.assign(v.begin() + 6, v.begin() + 6 + num_terms_);
  }
  reset();
  return r;
}

}  // namespace retort

// DKD: the target / non-target split of the KD loss, weighted apart (see transfer/dkd.h).
#include "transfer/dkd.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/logit_agreement.h"

namespace retort::transfer {
namespace {

void check_inputs(const Tensor& s, const Tensor& t, const Tensor& labels, double temperature) {
  RETORT_CHECK(s.dim() == 2 && s.shape() == t.shape(),
               "dkd: student logits {} and teacher logits {} must both be [B, C] of the same shape", s.str(), t.str());
  RETORT_CHECK(s.size(1) >= 2, "dkd: logits {} need at least two classes", s.str());
  RETORT_CHECK(labels.defined() && labels.dtype() == DType::i64 && labels.dim() == 1 && labels.size(0) == s.size(0),
               "dkd: labels must be i64 [{}], got {}", s.size(0), labels.defined() ? labels.str() : "none");
  RETORT_CHECK(temperature > 0, "dkd: temperature must be positive, got {}", temperature);
}

// 1 where the column is the example's label, else 0; [B, C] in the logits' dtype.
Tensor target_mask(const Tensor& logits, const Tensor& labels) {
  Tensor classes = Tensor::arange(logits.size(1), DType::i64, logits.device());
  return eq(labels.unsqueeze(1), classes).to(logits.dtype());
}

// (p_y, 1 - p_y) as mdistiller's cat_mask computes it: both sums taken from p.  [B, 2]
Tensor binary_split(const Tensor& p, const Tensor& gt) {
  Tensor target = sum(mul(p, gt), {1}, true);
  Tensor other = sum(mul(p, rsub(1.0, gt)), {1}, true);
  return concat({target, other}, 1);
}

}  // namespace

Tensor dkd_target_loss(const Tensor& s, const Tensor& t, const Tensor& labels, double temperature) {
  check_inputs(s, t, labels, temperature);
  Tensor gt = target_mask(s, labels);
  Tensor b_t;
  {
    NoGradGuard no_grad;
    b_t = binary_split(softmax(mul(t.detach(), 1.0 / temperature), 1), gt);
  }
  Tensor log_b_s = log(binary_split(softmax(mul(s, 1.0 / temperature), 1), gt));
  return mul(kl_div(log_b_s, b_t, Reduction::batchmean), temperature * temperature);
}

Tensor dkd_non_target_loss(const Tensor& s, const Tensor& t, const Tensor& labels, double temperature) {
  check_inputs(s, t, labels, temperature);
  Tensor shift = mul(target_mask(s, labels), kDkdNonTargetShift);
  Tensor log_p_t;
  {
    NoGradGuard no_grad;
    log_p_t = log_softmax(sub(mul(t.detach(), 1.0 / temperature), shift), 1);
  }
  Tensor log_p_s = log_softmax(sub(mul(s, 1.0 / temperature), shift), 1);
  return mul(kl_div(log_p_s, log_p_t, Reduction::batchmean, /*log_target=*/true), temperature * temperature);
}

Tensor dkd_loss(const Tensor& s, const Tensor& t, const Tensor& labels, const DkdOptions& o) {
  Tensor tckd = dkd_target_loss(s, t, labels, o.temperature);
  Tensor nckd = dkd_non_target_loss(s, t, labels, o.temperature);
  return add(mul(tckd, o.alpha), mul(nckd, o.beta));
}

Tensor DkdLoss::compute(const StepInputs& in) {
  RETORT_CHECK(in.labels.defined(), "loss 'dkd' needs labels, but this stage's data is unlabelled");
  Tensor loss = dkd_loss(in.student_tap("logits"), in.teacher_tap(teacher_, "logits"), in.labels, options_);
  return mul(loss, warmup_.factor(in.clock));
}

std::map<std::string, Tensor> DkdLoss::step_stats(const StepInputs& in) const {
  return logit_agreement(in.student_tap("logits"), in.teacher_tap(teacher_, "logits"), options_.temperature);
}

void register_dkd_loss() {
  std::vector<ParamSpec> params{
      ParamSpec("teacher", ValueKind::model, kRequired, "the teacher model whose logits are matched"),
      ParamSpec("alpha", ValueKind::number, kDkdDefaultAlpha, "weight of TCKD (target vs the rest)").at_least(0),
      ParamSpec("beta", ValueKind::number, kDkdDefaultBeta, "weight of NCKD (among the non-target classes)")
          .at_least(0),
      ParamSpec("T", ValueKind::number, kDkdDefaultTemperature, "softmax temperature").positive()};
  for (auto& p : warmup_params(kDkdDefaultWarmupEpochs)) params.push_back(std::move(p));
  register_loss(
      "dkd", std::move(params),
      "DKD (Zhao 2022): alpha * TCKD + beta * NCKD, T^2 * KL of the target/non-target split and of the "
      "non-target classes; warm-up over 20 epochs",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          stage_teacher(c);
          DkdOptions o;
          o.alpha = c.args->number("alpha");
          o.beta = c.args->number("beta");
          o.temperature = c.args->number("T");
          RETORT_CHECK(o.alpha + o.beta > 0, "dkd: alpha and beta are both 0; the loss would be constant");
          return std::make_unique<DkdLoss>(c.args->string("teacher"), o, warmup_from_args(*c.args));
        });
      },
      kDkdDefaultWeight);
}

}  // namespace retort::transfer

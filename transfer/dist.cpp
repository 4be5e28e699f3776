// DIST: Pearson correlations of softened predictions, across classes and across the batch
// (see transfer/dist.h).
#include "transfer/dist.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

void check_logits(const Tensor& s, const Tensor& t, double temperature) {
  RETORT_CHECK(s.dim() == 2 && s.shape() == t.shape(),
               "dist: student logits {} and teacher logits {} must both be [B, C] of the same shape", s.str(),
               t.str());
  RETORT_CHECK(s.size(0) >= 2 && s.size(1) >= 2,
               "dist: logits {} need at least two examples and two classes (correlations over each)", s.str());
  RETORT_CHECK(temperature > 0, "dist: temperature must be positive, got {}", temperature);
}

Tensor soften(const Tensor& logits, double temperature) { return softmax(mul(logits, 1.0 / temperature), 1); }

// tau^2 * (1 - mean row correlation) of the softened predictions, transposed first for intra.
Tensor relation_loss(const Tensor& s, const Tensor& t, double temperature, bool transpose) {
  check_logits(s, t, temperature);
  Tensor y_t;
  {
    NoGradGuard no_grad;
    y_t = soften(t.detach(), temperature);
  }
  Tensor y_s = soften(s, temperature);
  if (transpose) {
    y_s = y_s.transpose(0, 1);
    y_t = y_t.transpose(0, 1);
  }
  return mul(rsub(1.0, mean(dist_row_pearson(y_s, y_t))), temperature * temperature);
}

}  // namespace

Tensor dist_row_pearson(const Tensor& a, const Tensor& b) {
  RETORT_CHECK(a.dim() == 2 && a.shape() == b.shape(), "dist: correlations need two [N, M] tensors, got {} and {}",
               a.str(), b.str());
  Tensor ca = sub(a, mean(a, {1}, true));
  Tensor cb = sub(b, mean(b, {1}, true));
  Tensor norms = mul(sqrt(sum(mul(ca, ca), {1})), sqrt(sum(mul(cb, cb), {1})));
  return div(sum(mul(ca, cb), {1}), add(norms, kDistEps));
}

Tensor dist_inter_loss(const Tensor& s, const Tensor& t, double temperature) {
  return relation_loss(s, t, temperature, false);
}

Tensor dist_intra_loss(const Tensor& s, const Tensor& t, double temperature) {
  return relation_loss(s, t, temperature, true);
}

Tensor dist_loss(const Tensor& s, const Tensor& t, const DistOptions& o) {
  return add(mul(dist_inter_loss(s, t, o.temperature), o.beta), mul(dist_intra_loss(s, t, o.temperature), o.gamma));
}

Tensor DistLoss::compute(const StepInputs& in) {
  return dist_loss(in.student_tap("logits"), in.teacher_tap(teacher_, "logits"), options_);
}

void register_dist_loss() {
  register_loss(
      "dist",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher model whose logits are matched"),
       ParamSpec("beta", ValueKind::number, kDistDefaultBeta, "weight of the inter-class term (per example)")
           .at_least(0),
       ParamSpec("gamma", ValueKind::number, kDistDefaultGamma, "weight of the intra-class term (per class)")
           .at_least(0),
       ParamSpec("T", ValueKind::number, kDistDefaultTemperature, "softmax temperature").positive()},
      "DIST (Huang 2022): T^2 * (beta (1 - Pearson per example) + gamma (1 - Pearson per class)) of the softened "
      "predictions; weight 2",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          stage_teacher(c);
          DistOptions o;
          o.beta = c.args->number("beta");
          o.gamma = c.args->number("gamma");
          o.temperature = c.args->number("T");
          RETORT_CHECK(o.beta + o.gamma > 0, "dist: beta and gamma are both 0; the loss would be constant");
          return std::make_unique<DistLoss>(c.args->string("teacher"), o);
        });
      },
      kDistDefaultWeight);
}

}  // namespace retort::transfer

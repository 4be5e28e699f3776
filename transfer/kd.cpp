// Hinton KD loss: T^2 * batch-mean KL(teacher || student) of temperature-softened softmaxes; the
// "kd" loss term with its step statistics (student/teacher agreement).
#include "transfer/kd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/logit_agreement.h"

namespace retort::transfer {
namespace {

class KdTerm : public Loss {
 public:
  KdTerm(std::string teacher, double temperature) : teacher_(std::move(teacher)), temperature_(temperature) {}
  Tensor compute(const StepInputs& in) override {
    return kd_loss(in.student_tap("logits"), in.teacher_tap(teacher_, "logits"), temperature_);
  }
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override {
    return logit_agreement(in.student_tap("logits"), in.teacher_tap(teacher_, "logits"), temperature_);
  }
  std::vector<std::string> teachers() const override { return {teacher_}; }

 private:
  std::string teacher_;
  double temperature_;
};

}  // namespace

Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature) {
  RETORT_CHECK(student_logits.dim() == 2 && student_logits.shape() == teacher_logits.shape(),
               "kd: student logits {} and teacher logits {} must both be [B, C] of the same shape",
               student_logits.str(), teacher_logits.str());
  RETORT_CHECK(temperature > 0, "kd: temperature must be positive, got {}", temperature);
  Tensor log_q = log_softmax(mul(student_logits, 1.0 / temperature), 1);
  Tensor log_p = log_softmax(mul(teacher_logits.detach(), 1.0 / temperature), 1);
  return mul(kl_div(log_q, log_p, Reduction::batchmean, /*log_target=*/true), temperature * temperature);
}

std::unique_ptr<Loss> make_kd_loss(std::string teacher, double temperature) {
  RETORT_CHECK(temperature > 0, "kd: temperature must be positive, got {}", temperature);
  return std::make_unique<KdTerm>(std::move(teacher), temperature);
}

void register_kd_loss() {
  register_loss("kd",
                {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher model whose logits are matched"),
                 ParamSpec("T", ValueKind::number, kKdDefaultTemperature, "softmax temperature").positive()},
                "Hinton KD: T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), batch mean",
                [](const BuildContext& c) { return make_kd_loss(c.args->string("teacher"), c.args->number("T")); },
                kKdDefaultKdWeight);
}

}  // namespace retort::transfer

// DeiT's distillation-token losses, hard and soft (see transfer/deit.h).
#include "transfer/deit.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

void check_logits(const Tensor& s, const Tensor& t) {
  RETORT_CHECK(s.dim() == 2 && s.shape() == t.shape(),
               "deit: the distillation head's logits {} and the teacher's logits {} must both be [B, C] of the same "
               "shape",
               s.str(), t.str());
}

}  // namespace

Tensor deit_hard_loss(const Tensor& s, const Tensor& t) {
  check_logits(s, t);
  Tensor decisions;
  {
    NoGradGuard no_grad;
    decisions = argmax(t.detach(), 1);
  }
  return cross_entropy(s, decisions);
}

Tensor deit_soft_loss(const Tensor& s, const Tensor& t, double temperature) {
  check_logits(s, t);
  RETORT_CHECK(temperature > 0, "deit: temperature must be positive, got {}", temperature);
  Tensor log_p_t;
  {
    NoGradGuard no_grad;
    log_p_t = log_softmax(mul(t.detach(), 1.0 / temperature), 1);
  }
  Tensor log_q = log_softmax(mul(s, 1.0 / temperature), 1);
  const double scale = temperature * temperature / double(s.numel());
  return mul(kl_div(log_q, log_p_t, Reduction::sum, /*log_target=*/true), scale);
}

Tensor DeitLoss::compute(const StepInputs& in) {
  const Tensor& s = in.student_tap(kDeitStudentTap);
  const Tensor& t = in.teacher_tap(teacher_, "logits");
  return form_ == DeitForm::hard ? deit_hard_loss(s, t) : deit_soft_loss(s, t, temperature_);
}

void register_deit_loss() {
  register_loss(
      "deit",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose predictions the distillation head learns"),
       ParamSpec("form", ValueKind::string, "hard", "\"hard\": CE with the teacher's argmax; \"soft\": T^2 KL / (B C)")
           .one_of({"hard", "soft"}),
       ParamSpec("T", ValueKind::number, kDeitDefaultTemperature, "softmax temperature of the soft form").positive()},
      "DeiT (Touvron 2021): the student's distillation token head learns the teacher's hard decisions (or soft "
      "predictions); a distilled ViT student; weight 0.5 with CE 0.5",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          stage_teacher(c);
          const models::Model& student = stage_student(c);
          try {
            find_tap(student, kDeitStudentTap, c.input_shape, "deit", "student");
          } catch (const Error& e) {
            fail("{} (the `deit` loss trains a ViT's distillation token: give the student a distilled arch such as "
                 "\"deit_tiny_distilled\")",
                 e.what());
          }
          const DeitForm form = c.args->string("form") == "soft" ? DeitForm::soft : DeitForm::hard;
          return std::make_unique<DeitLoss>(c.args->string("teacher"), form, c.args->number("T"));
        });
      },
      kDeitDefaultWeight);
}

}  // namespace retort::transfer

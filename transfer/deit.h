// DeiT's distillation token (Hugo Touvron, Matthieu Cord, Matthijs Douze, Francisco Massa,
// Alexandre Sablayrolles, Herve Jegou, "Training data-efficient image transformers &
// distillation through attention", ICML 2021).
//
// The student is a distilled ViT (deit_tiny_distilled, ...: models/vit.h): a second prefix token
// that attends like CLS and has its own head. The CLS head learns from the labels ("ce" on the
// logits); the distillation head learns from the teacher, whose architecture is free (a ResNet,
// a WRN, another ViT):
//   hard:  L = CE(z_dist, argmax_c z_t)                                  (the teacher's decision)
//   soft:  L = T^2 * sum_{b,c} KL(softmax(z_t / T) || softmax(z_dist / T)) / (B * C)
// z_dist: the student's distillation-head logits (tap "dist_logits"), z_t the teacher's logits,
// a constant. At inference the student predicts with the mean of its two heads (the model does
// this in evaluation mode), so the transfer lands in the prediction without a second pass.
// DeiT's total loss is (1 - alpha) * CE + alpha * L, alpha 0.5: a recipe writes it as the terms
// { name = "ce", weight = 0.5 } and { name = "deit", weight = 0.5 } (the default weight).
//
// Reference code and defaults: facebookresearch/deit 7e160fe losses.py:10-71 (DistillationLoss:
// hard = F.cross_entropy(outputs_kd, teacher_outputs.argmax(dim=1)); soft = kl_div(log_softmax(
// outputs_kd / T), log_softmax(teacher / T), reduction 'sum', log_target) * T^2 /
// outputs_kd.numel(), the division by B * C kept "to have the legacy PyTorch behavior");
// main.py:145-147 (alpha 0.5, tau 1.0; the README trains with --distillation-type hard);
// models.py:18-60 (the token after CLS, pos_embed over N + 2 tokens, the heads' mean in eval).
// The paper's soft setting is tau 3, alpha 0.1 (section 5.1); the code's default tau is 1, and so
// is retort's. The fixtures tests/fixtures/losses/deit_hard.safetensors and deit_soft.safetensors
// are DeiT's DistillationLoss with alpha 1 (the distillation term alone).
// Deviations: none in the loss. The ties of argmax go to the first maximum, as torch's.
#pragma once
#include <memory>
#include <string>
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kDeitDefaultWeight = 0.5;       // alpha (with CE at 1 - alpha)
constexpr double kDeitDefaultTemperature = 1.0;  // soft form: main.py's --distillation-tau
inline constexpr const char* kDeitStudentTap = "dist_logits";

enum class DeitForm { hard, soft };

// The distillation-token losses of the student's distillation-head logits [B, C] against the
// teacher's logits [B, C] (a constant).
Tensor deit_hard_loss(const Tensor& dist_logits, const Tensor& teacher_logits);
Tensor deit_soft_loss(const Tensor& dist_logits, const Tensor& teacher_logits, double temperature);

class DeitLoss : public Loss {
 public:
  DeitLoss(std::string teacher, DeitForm form, double temperature)
      : teacher_(std::move(teacher)), form_(form), temperature_(temperature) {}
  Tensor compute(const StepInputs& in) override;
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {kDeitStudentTap}; }
  DeitForm form() const { return form_; }
  double temperature() const { return temperature_; }

 private:
  std::string teacher_;
  DeitForm form_;
  double temperature_;
};

// Registers "deit" (keys: teacher, form = "hard" | "soft", T; default weight 0.5). The student
// must be a distilled ViT: any other fails when the term is built, naming the recipe line.
void register_deit_loss();

}  // namespace retort::transfer

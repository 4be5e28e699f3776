// Hinton knowledge distillation (Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a
// Neural Network").
//
//   L_KD = T^2 * (1/B) * sum_b KL( softmax(z_t,b / T) || softmax(z_s,b / T) )
//
// z_s, z_t: student and teacher logits [B, C]; the teacher is treated as a constant (no
// gradient flows into it). T^2 keeps the gradient scale independent of T.
// Defaults (CIFAR standard, RepDistiller/CRD): T = 4, total loss = 0.1 * CE + 0.9 * L_KD.
// Note: torchdistill's `alpha` weights CE instead of KD -- retort's recipe weights are explicit.
// Step stats (transfer/logit_agreement.h, at the term's T): top1_agreement, soft_agreement (the
// overlap sum_c min(p_s, p_t) of the softened distributions) and teacher_confidence.
#pragma once
#include <memory>
#include <string>
#include "engine/tensor.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kKdDefaultTemperature = 4.0;
constexpr double kKdDefaultCeWeight = 0.1;
constexpr double kKdDefaultKdWeight = 0.9;

Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature = kKdDefaultTemperature);

// The "kd" loss term: kd_loss of the student's and teacher `teacher`'s logits; its step_stats are
// logit_agreement at `temperature`.
std::unique_ptr<Loss> make_kd_loss(std::string teacher, double temperature = kKdDefaultTemperature);
// Registers "kd" (keys: teacher, T; default weight 0.9).
void register_kd_loss();

}  // namespace retort::transfer

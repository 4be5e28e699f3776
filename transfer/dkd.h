// DKD, decoupled knowledge distillation (Borui Zhao, Quan Cui, Renjie Song, Yiyu Qiu, Jiajun
// Liang, "Decoupled Knowledge Distillation", CVPR 2022).
//
// z_s, z_t: student and teacher logits [B, C]; y: the labels [B]; T the temperature.
//   p   = softmax(z / T)                                     [B, C]
//   b   = (p_y, 1 - p_y): the binary target / non-target split, summed from p's entries
//   TCKD = T^2 * (1/B) * sum_b KL(b_t || b_s)                target-class KD
//   p~  = softmax(z / T - 1000 * onehot(y))                  the non-target classes alone
//   NCKD = T^2 * (1/B) * sum_b KL(p~_t || p~_s)              non-target-class KD
//   L_DKD = w(epoch) * (alpha * TCKD + beta * NCKD)
// Classical KD is TCKD + (1 - p_t,y) * NCKD; DKD frees the weight of NCKD (beta). The teacher is
// a constant; the term needs labels. w is a linear warm-up (transfer/loss_warmup.h):
// min(epoch / 20, 1) with mdistiller's 1-based epochs.
//
// Reference code and defaults: mdistiller a08d46f mdistiller/distillers/DKD.py:8-31 (dkd_loss:
// cat_mask sums, log of the binary probabilities, kl_div(size_average=False) * T^2 / B, the
// 1000 * gt_mask shift) and :65-75 (the warm-up factor min(epoch / WARMUP, 1)); defaults
// mdistiller/engine/cfg.py:161-167 (CE 1, alpha 1, beta 8, T 4, warm-up 20 epochs). The CIFAR-100
// configs set beta per pair (configs/cifar100/dkd/*.yaml: 8 for resnet32x4 -> resnet8x4, 6 for
// wrn_40_2 -> wrn_16_2, 2 for the resnet56/110 pairs); retort's default is cfg.py's 8. The
// fixture tests/fixtures/losses/dkd.safetensors is mdistiller's dkd_loss.
// Deviations: none in the value. The warm-up is the term's (the recipe's `weight` multiplies it);
// warmup_granularity = "step" is retort's addition for stages shorter than the warm-up.
// Step stats: KD's (transfer/logit_agreement.h, at the term's T): top1_agreement, soft_agreement,
// teacher_confidence; labels are not needed for them.
#pragma once
#include <memory>
#include <string>
#include "transfer/loss_term.h"
#include "transfer/loss_warmup.h"

namespace retort::transfer {

constexpr double kDkdDefaultWeight = 1.0;
constexpr double kDkdDefaultAlpha = 1.0;
constexpr double kDkdDefaultBeta = 8.0;
constexpr double kDkdDefaultTemperature = 4.0;
constexpr double kDkdDefaultWarmupEpochs = 20.0;
constexpr double kDkdNonTargetShift = 1000.0;  // subtracted from the target logit / T for NCKD

struct DkdOptions {
  double alpha = kDkdDefaultAlpha;
  double beta = kDkdDefaultBeta;
  double temperature = kDkdDefaultTemperature;
};

// TCKD and NCKD of [B, C] logits and i64 [B] labels (the teacher's side a constant).
Tensor dkd_target_loss(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& labels,
                       double temperature);
Tensor dkd_non_target_loss(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& labels,
                           double temperature);
// alpha * TCKD + beta * NCKD (no warm-up).
Tensor dkd_loss(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& labels,
                const DkdOptions& options = {});

class DkdLoss : public Loss {
 public:
  DkdLoss(std::string teacher, const DkdOptions& options, const LossWarmup& warmup)
      : teacher_(std::move(teacher)), options_(options), warmup_(warmup) {}
  Tensor compute(const StepInputs& in) override;
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override;
  bool needs_labels() const override { return true; }
  bool settled_at(const StepClock& clock) const override { return warmup_.factor(clock) >= 1.0; }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  const DkdOptions& options() const { return options_; }
  const LossWarmup& warmup() const { return warmup_; }

 private:
  std::string teacher_;
  DkdOptions options_;
  LossWarmup warmup_;
};

// Registers "dkd" (keys: teacher, alpha, beta, T, warmup_epochs, warmup_granularity).
void register_dkd_loss();

}  // namespace retort::transfer

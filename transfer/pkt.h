// PKT, probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018, "Learning Deep
// Representations with Probabilistic Knowledge Transfer").
//
// x: a tap flattened to [B, D] (default "pooled"); student and teacher widths may differ.
//   x^_i   = x_i / (||x_i|| + eps)                      (a NaN entry becomes 0)
//   K      = X^ X^T                                      [B, B] cosines, diagonal included
//   K'     = (K + 1) / 2                                 in [0, 1]
//   P_ij   = K'_ij / sum_j K'_ij                         each row a distribution over j
//   L_PKT  = (1/B^2) sum_{i,j} P^t_ij * log( (P^t_ij + eps) / (P^s_ij + eps) )      eps = 1e-7
// The reduction is a mean over all B^2 entries: the row-wise KL averaged over rows, divided by B
// once more. The teacher's P is a constant.
//
// Reference defaults: RepDistiller b84f547 distiller_zoo/PKT.py:7-42 (the authors' code;
// cosine_similarity_loss at :17-42, eps = 1e-7 at :17), run on feat[-1] = "pooled"
// (helper/loops.py:153-156, teacher features detached at :115-117) with beta = 30000
// (scripts/run_cifar_distill.sh:19), CE weight 1, no KD. mdistiller (distillers/PKT.py:8-63,
// FEAT_WEIGHT 30000) and torchdistill 1.1.5 PKTLoss (losses/mid_level.py:358-427, eps 1e-7,
// on the input of fc = the pooled vector) compute the same formula; the fixture
// (bench/torch_reference/loss_refs/pkt.py) is torchdistill's PKTLoss, checked there to equal
// RepDistiller's value to 1e-14.
// Deviation: the norm is sqrt(max(sum x^2, FLT_MIN)) instead of sqrt(sum x^2). The value is the
// same unless a row's norm is below 1e-19, and an all-zero row (possible for post-ReLU pooled
// features) then gets a finite gradient where the references' is NaN (sqrt'(0) * 0).
#pragma once
#include <memory>
#include <string>
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kPktDefaultWeight = 30000.0;  // beta (RepDistiller's CIFAR-100 script)
constexpr double kPktDefaultEps = 1e-7;

// P: [B, D] (any rank, flattened to [B, -1]) -> [B, B] row-stochastic conditional probabilities.
Tensor pkt_probabilities(const Tensor& x, double eps = kPktDefaultEps);
// L_PKT of student and teacher features (the teacher's side a constant).
Tensor pkt_loss(const Tensor& f_s, const Tensor& f_t, double eps = kPktDefaultEps);

class PktLoss : public Loss {
 public:
  PktLoss(std::string teacher, std::string student_tap, std::string teacher_tap, double eps = kPktDefaultEps);
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override { return "its conditional probabilities compare every pair of examples in the batch"; }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {student_tap_}; }
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }

 private:
  std::string teacher_, student_tap_, teacher_tap_;
  double eps_;
};

// Registers "pkt" (keys: teacher, student_tap, teacher_tap, eps; default weight 30000).
void register_pkt_loss();

}  // namespace retort::transfer

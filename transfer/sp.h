// SP, similarity-preserving KD (Frederick Tung, Greg Mori, "Similarity-Preserving Knowledge
// Distillation", ICCV 2019).
//
//   Q_s = f_s flattened per example to [B, d_s], Q_t = f_t flattened to [B, d_t]
//   G   = normalize(Q Q^T)              [B, B], each row L2-normalised
//                                       (normalize(x) = x / max(||x||_2, 1e-12))
//   L_SP = || G_t - G_s ||_F^2 / B^2    (sum over the B*B entries, divided by B^2)
// G_t is a constant. Only the B x B matrices meet, so the two taps may have any shapes: maps of
// different sizes and widths, ViT tokens [B, 1+h*w, D] (flattened as they are, CLS token
// included), vectors ("pooled", "cls"); nothing is pooled or projected. The loss couples the
// examples of a batch (G spans the batch).
//
// Reference code and defaults:
//   RepDistiller b84f547 distiller_zoo/SP.py:16-30 (Similarity: view(B, -1), torch.mm, F.normalize
//     with its default dim 1, sum of squared differences / B^2); tap feat[-2] = "stage3" on both
//     sides (helper/loops.py:144-148); beta = 3000 (scripts/run_cifar_distill.sh:11, gamma = 1,
//     alpha = 0).
//   The fixture tests/fixtures/losses/sp.safetensors is RepDistiller's Similarity.
//   torchdistill 1.1.5 SPKDLoss(reduction='batchmean') is NOT the same loss, despite the same
//     formula on paper: its matmul_and_normalize calls normalize(G, 1) (losses/mid_level.py:
//     821-823) where the positional 1 is F.normalize's exponent p, not dim, so each row of G is
//     divided by its L1 norm. On the fixture's inputs it gives 0.00173 where RepDistiller gives
//     0.00835. retort follows RepDistiller and the paper (L2 rows).
// Deviations: none from RepDistiller. The teacher tap defaults to the student's ("stage3").
#pragma once
#include <memory>
#include <string>
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kSpDefaultWeight = 3000.0;
inline constexpr const char* kSpDefaultTap = "stage3";

// normalize(Q Q^T) for any tensor [B, ...] (flattened per example): [B, B].
Tensor sp_similarity(const Tensor& f);
// ||G_t - G_s||_F^2 / B^2 for taps of any shapes with the same B; the teacher is a constant.
Tensor sp_loss(const Tensor& f_s, const Tensor& f_t);

class SpLoss : public Loss {
 public:
  SpLoss(std::string teacher, std::string student_tap, std::string teacher_tap)
      : teacher_(std::move(teacher)), student_tap_(std::move(student_tap)), teacher_tap_(std::move(teacher_tap)) {}
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override { return "its similarity matrices compare every pair of examples in the batch"; }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {student_tap_}; }
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }

 private:
  std::string teacher_, student_tap_, teacher_tap_;
};

// Builds an SpLoss after checking both taps exist for `input` (an unknown name lists the taps).
std::unique_ptr<SpLoss> make_sp_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, const std::string& student_tap,
                                     const std::string& teacher_tap, const Shape& input);

// Registers "sp" (keys: teacher, student_tap, teacher_tap; default weight 3000).
void register_sp_loss();

}  // namespace retort::transfer

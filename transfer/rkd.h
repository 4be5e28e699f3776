// RKD, relational knowledge distillation: distance and angle (Park, Kim, Lu, Cho, CVPR 2019,
// "Relational Knowledge Distillation").
//
// x: a tap flattened to [B, D] (default "pooled"; RepDistiller views f as [B, -1], torchdistill
// flattens from dim 1, so a map or token tap works as well). Student and teacher widths may
// differ: only B x B distances and B x B x B angles are compared.
//   Distance term:
//     psi(i, j) = sqrt( max(||x_i - x_j||^2, 1e-12) ),  psi(i, i) = 0               [B, B]
//     mu        = mean of the entries psi > 0 (the off-diagonal ones)
//     L_D       = mean over all B^2 entries of SmoothL1(psi_s / mu_s - psi_t / mu_t)   (beta 1)
//   Angle term:
//     e_ij      = (x_j - x_i) / max(||x_j - x_i||, 1e-12)   (e_ii = 0)               [B, B, D]
//     A(i,j,k)  = <e_ij, e_ik>                                                       [B, B, B]
//     L_A       = mean over all B^3 entries of SmoothL1(A_s - A_t)
//   L_RKD = distance_weight * L_D + angle_weight * L_A       (25 and 50)
// The teacher's distances and angles are constants (computed without gradient). On the diagonal
// psi is set to 0 after the clamp (as the references do) and e_ii is multiplied by 0 (it is 0
// already), so neither the sqrt at the clamp nor the normalisation of a zero vector (derivative
// 1/1e-12) passes a gradient; all values are the references'.
//
// Reference defaults: RepDistiller b84f547 distiller_zoo/RKD.py:8-58 (w_d = 25, w_a = 50 at
// :10; pdist squared=False, eps 1e-12 clamp, diagonal zeroed at :47-58; teacher under no_grad at
// :20-23 and :32-35), run on feat[-1] = "pooled" (helper/loops.py:149-152) with beta = 1
// (scripts/run_cifar_distill.sh:17), CE weight 1, no KD. mdistiller (distillers/RKD.py:8-84)
// is identical. torchdistill 1.1.5 RKDLoss (losses/mid_level.py:563-646) is the same code with
// dist_factor/angle_factor (its sample config uses 1 and 2 on layer4; RepDistiller's 25/50 are
// our defaults); the fixture (bench/torch_reference/loss_refs/rkd.py) is torchdistill's RKDLoss
// with 25/50, checked there to equal RepDistiller's value.
// Deviations: psi is computed from the differences (pairwise_sq_dist) rather than from
// ||a||^2 + ||b||^2 - 2 a.b: the same value up to rounding, and exactly 0 before the clamp on the
// diagonal; e_ii is masked (see above: same value, no gradient through 1/eps). A term whose
// weight is 0 is skipped (torchdistill does the same), which saves the B^3 angle tensor.
// Batches need B >= 2 (with B = 1 the references' mean over no positive distance is NaN); the
// trainer drops the last partial batch, so B is the stage's batch size.
#pragma once
#include <memory>
#include <string>
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kRkdDefaultWeight = 1.0;  // beta (RepDistiller's CIFAR-100 script)
constexpr double kRkdDistanceWeight = 25.0;
constexpr double kRkdAngleWeight = 50.0;
constexpr double kRkdDistanceEps = 1e-12;  // clamp of the squared distance before the sqrt

struct RkdOptions {
  double distance_weight = kRkdDistanceWeight;
  double angle_weight = kRkdAngleWeight;
};

// psi: [B, D] -> [B, B], sqrt(max(||x_i - x_j||^2, 1e-12)) off the diagonal, 0 on it.
Tensor rkd_pairwise_distances(const Tensor& x);
// psi / (mean of psi's positive entries).
Tensor rkd_normalized_distances(const Tensor& x);
// A: [B, D] -> [B, B, B], A(i, j, k) = <e_ij, e_ik>.
Tensor rkd_angles(const Tensor& x);
// L_D and L_A of [B, D_s] student and [B, D_t] teacher features (the teacher's side a constant).
Tensor rkd_distance_loss(const Tensor& f_s, const Tensor& f_t);
Tensor rkd_angle_loss(const Tensor& f_s, const Tensor& f_t);
// distance_weight * L_D + angle_weight * L_A; features of any rank are flattened to [B, -1].
Tensor rkd_loss(const Tensor& f_s, const Tensor& f_t, const RkdOptions& options = {});

class RkdLoss : public Loss {
 public:
  RkdLoss(std::string teacher, std::string student_tap, std::string teacher_tap, const RkdOptions& options);
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override { return "its distances and angles relate every pair and triple of examples in the batch"; }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {student_tap_}; }
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }
  const RkdOptions& options() const { return options_; }

 private:
  std::string teacher_, student_tap_, teacher_tap_;
  RkdOptions options_;
};

// Registers "rkd" (keys: teacher, student_tap, teacher_tap, distance_weight, angle_weight;
// default weight 1).
void register_rkd_loss();

}  // namespace retort::transfer

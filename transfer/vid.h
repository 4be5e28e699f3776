// VID, variational information distillation (Ahn, Hu, Damianou, Lawrence, Dai, CVPR 2019,
// "Variational Information Distillation for Knowledge Transfer").
//
// The teacher map t is modelled as a Gaussian whose mean is predicted from the student map s and
// whose variance is learned per channel; the loss is its negative log-likelihood (a variational
// lower bound on the mutual information I(t; s), up to constants). Per stage l:
//   s, t      = the stage's student / teacher maps; when their heights differ, the larger is
//               adaptive-average-pooled to the smaller's size (RD pools whichever is larger:
//               the student before the regressor, or the teacher)
//   mu        = r(s) = conv1x1(C_t->C_t)( relu( conv1x1(C_t->C_t)( relu( conv1x1(C_s->C_t)(s) )))),
//               convs without bias, PyTorch default init; middle width = C_t
//   sigma2_c  = softplus(alpha_c) + eps = log(1 + exp(alpha_c)) + eps, alpha in R^{C_t},
//               alpha_0 = log(exp(init_pred_var - eps) - 1) so that sigma2 starts at init_pred_var
//   L_l       = mean over b, c, h, w of 0.5 * ( (mu - t)^2 / sigma2_c + log sigma2_c )
//   L_VID     = sum_l L_l                                   (the recipe's weight beta multiplies it)
// The teacher maps are constants; r and alpha are learned with the student (parameters(), named
// as RD's criterion ModuleList: "<l>.regressor.{0,2,4}.weight", "<l>.log_scale").
//
// Reference defaults (RepDistiller b84f547, "RD"):
//   taps f1..f3 = RD feat[1:-1], post-ReLU stage outputs, both sides (train_student.py:219-226,
//     helper/loops.py:166-170): here "stage1".."stage3";
//   regressor VIDLoss(s, t, t): middle width C_t (train_student.py:223, distiller_zoo/VID.py:26-32);
//   init_pred_var 5.0, eps 1e-5 (VID.py:16-17, 33-35); softplus written log(1 + exp(.)) (VID.py:48);
//   pooling (VID.py:39-46); torch.mean over all elements (VID.py:50-53); stages summed
//     (loops.py:170); beta = 1 (scripts/run_cifar_distill.sh:15, with CE weight 1, KD weight 0).
// Deviations and other references:
//   - softplus is evaluated as max(a, 0) + log(1 + exp(-|a|)) (the same value, no overflow in f32).
//   - RD pools to (t_H, t_H) judging by the height alone; retort pools to (min H, min W), the same
//     for the square maps of every model here.
//   - mdistiller (distillers/VID.py:52-69) keeps the alphas in a plain list, so they never train
//     (sigma2 stays 5): key `learn_variance = false` reproduces that; default true (RD).
//   - torchdistill 1.1.5 VIDLoss + Regressor4VID (losses/mid_level.py:649-712, models/wrapper.py:
//     297-375): the same regressor, softplus, init and per-pair mean, but no pooling (the pair must
//     already agree in size). Both are compared in the tests (fixtures vid_rd, vid_td).
// Cross-architecture: ViT token taps "tokens.<i>" [B, 1+h*w, D] become [B, D, h, w] maps
// (TokensToMap) on either side, then pool-to-match as above; vector taps ("pooled", "cls") are
// refused at build time. The default taps do not exist on a ViT, so a ViT side must name its
// taps (`student_taps` / `teacher_taps`).
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "transfer/adapters.h"
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kVidDefaultWeight = 1.0;
constexpr double kVidInitPredVar = 5.0;
constexpr double kVidEps = 1e-5;

// alpha_0 = log(exp(init_pred_var - eps) - 1): softplus(alpha_0) + eps == init_pred_var.
double vid_initial_log_scale(double init_pred_var, double eps);
// sigma2 = softplus(log_scale) + eps, elementwise (log_scale [C] -> [C]).
Tensor vid_variance(const Tensor& log_scale, double eps);
// mean over all elements of 0.5 * ((mean - target)^2 / var + log var); mean/target [B, C, H, W],
// var [C] (broadcast over B, H, W). The target is a constant.
Tensor vid_nll(const Tensor& mean, const Tensor& target, const Tensor& variance);
// The regressor on raw weights: conv1x1(w[0]) -> relu -> conv1x1(w[1]) -> relu -> conv1x1(w[2]).
Tensor vid_regress(const Tensor& x, const std::vector<Tensor>& conv_weights);
// One stage on raw tensors: pool-to-match, regress, nll (student [B, C_s, H, W], teacher
// [B, C_t, h, w], conv weights [C_t, C_s, 1, 1], [C_t, C_t, 1, 1] x 2, log_scale [C_t]).
Tensor vid_stage_loss(const Tensor& student, const Tensor& teacher, const std::vector<Tensor>& conv_weights,
                      const Tensor& log_scale, double eps);

struct VidOptions {
  double init_pred_var = kVidInitPredVar;
  double eps = kVidEps;
  bool learn_variance = true;  // false: the alphas stay at their initial value (mdistiller)
};

class VidLoss : public Loss {
 public:
  VidLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
          const std::vector<models::TapInfo>& teacher_taps, const VidOptions& options, Device device, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors, in tap order.
  Tensor compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps);
  nn::NamedTensors parameters() const override { return stages_->named_parameters(); }
  nn::NamedTensors buffers() const override { return stages_->named_buffers(); }
  void train(bool on) override { stages_->train(on); }
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }
  size_t num_stages() const { return taps_.size(); }
  // Stage k's regressor conv weights (3) and log_scale: handles to the learned tensors, which a
  // test may overwrite in place or replace (assign) before computing.
  std::vector<Tensor*> regressor_weights(size_t k);
  Tensor& log_scale(size_t k);
  // Moves the learned tensors to dtype (tests in f64).
  void to(DType dtype) { stages_->to(dtype); }
  const VidOptions& options() const { return options_; }

 private:
  TapPairs taps_;
  VidOptions options_;
  std::shared_ptr<nn::Module> stages_;  // children "0", "1", ...: regressor + log_scale each
};

// The default taps, RD's f1..f3: "stage1".."stage3".
std::vector<std::string> vid_default_taps();
// Builds a VidLoss from the models (taps looked up with find_tap for `input`); empty
// student_taps = the defaults; empty teacher_taps = the student's names.
std::unique_ptr<VidLoss> make_vid_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, std::vector<std::string> student_taps,
                                       std::vector<std::string> teacher_taps, const Shape& input,
                                       const VidOptions& options, Device device, uint64_t seed);

// Registers "vid" (keys: teacher, student_taps, teacher_taps, init_pred_var, eps, learn_variance).
void register_vid_loss();

}  // namespace retort::transfer

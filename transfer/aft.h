// Adaptive Feature Transfer (AFT): Qiu, Han, Maddix, Zhang, Wang, Wilson, "Transferring
// Knowledge from Large Foundation Models to Small Downstream Models", ICML 2024.
//
// Kernel form (default, variant = "kernel"):
//   phi  [B, d_s]: the student's "pooled" feature;  psi [B, d_t]: the teachers' "pooled"
//   features concatenated in the order of `teachers` (frozen: no gradient reaches them).
//   rho = sigmoid(s), s in R^{d_t} initialised to 0 (rho = 0.5);  psi' = rho * psi.
//   centre each column over the batch, divide each row by (its L2 norm + 1e-8):  Phi, Psi
//   K_s = Phi Phi^T,  K_t = Psi Psi^T   (B x B)
//   R = sqrt( mean_{i,j} (K_s - K_t)_{ij}^2 + 1e-8 )          <- the loss term's value
// The recipe weight is beta (10 in the authors' example): total = CE + beta * R.
// Variants of the official code: "dense" uses psi' = psi S with a learned d_t x d_t matrix S
// (initialised to the identity) instead of rho * psi; "rbf" uses K = exp(-||x_i - x_j||^2)
// on the same normalised features; "linear" is kernel-free: mean((U psi - phi)^2) with a
// learned linear map U: d_t -> d_s (with bias).
// Defaults: variant "kernel", learn_rho = true (false keeps rho = 0.5 fixed, as the official
// script does without its flag), rho_lr = 1e-2. The learned prior parameters (s, S or U) are
// trained in their own optimizer group with lr = rho_lr, no weight decay and, like the authors'
// code (which trains everything with Adam), Adam's update (rho_optimizer = "adam"; the stage's
// lr schedule scales it like every group). Under the stage's SGD instead (rho_optimizer =
// "stage"), the gradient on s (~1e-3 per element) moves rho by ~1e-4 per step at lr 1e-2:
// rho stays within +-0.02 of 0.5 over an epoch, so "learned" rho would not be learned. rho's
// mean, min, max and spread are logged after every epoch (epoch_stats, metrics.jsonl); its mean,
// min and max also on logged steps (step_stats "rho_mean", "rho_min", "rho_max", steps.jsonl), and
// the whole vector rho [d_t] is drawn in the run report (pictures "rho"), all when rho is learned.
// Not here: the cached, augmentation-free teacher features of the paper (the trainer runs the
// teachers on every batch).
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "engine/nn/layers.h"
#include "engine/tensor.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

enum class AftVariant { kernel, dense, rbf, linear };
AftVariant parse_aft_variant(const std::string& name);  // throws naming the valid ones

constexpr double kAftDefaultBeta = 10.0;
constexpr double kAftDefaultRhoLr = 1e-2;

// Centres x [B, D] over the batch, then divides each row by (its L2 norm + 1e-8).
Tensor aft_center_normalize(const Tensor& x);
// R = sqrt(mean((K_s - K_t)^2) + 1e-8) with K = X X^T (rbf: exp(-||x_i - x_j||^2)) of the
// centred, normalised phi [B, d_s] and weighted teacher features psi_w [B, d_t].
Tensor aft_kernel_distance(const Tensor& phi, const Tensor& psi_weighted, bool rbf = false);
// The kernel form with rho = sigmoid(s): aft_kernel_distance(phi, sigmoid(s) * psi).
Tensor aft_kernel_loss(const Tensor& phi, const Tensor& psi, const Tensor& s, bool rbf = false);

struct AftOptions {
  AftVariant variant = AftVariant::kernel;
  bool learn_rho = true;
  double rho_lr = kAftDefaultRhoLr;
  bool rho_adam = true;  // the prior trains with Adam (the authors' optimizer), not the stage's SGD
};

class AftLoss : public Loss {
 public:
  // teacher_names: the teachers whose "pooled" features are concatenated (d_t = their sum).
  AftLoss(std::vector<std::string> teacher_names, int64_t student_dim, int64_t teacher_dim, const AftOptions& options,
          uint64_t seed, Device device, DType dtype);
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override {
    return options_.variant == AftVariant::linear ? "" : "its kernels compare every pair of examples in the batch";
  }
  // The loss on features directly: phi [B, d_s], psi [B, d_t] (detached here).
  Tensor value(const Tensor& phi, const Tensor& psi) const;

  nn::NamedTensors parameters() const override;
  std::vector<LossParamGroup> param_groups() const override;
  // rho's mean, min, max and standard deviation (learned kernel / rbf forms): it should move.
  std::map<std::string, double> epoch_stats() const override;
  // rho_mean, rho_min, rho_max as one-element device tensors (learned kernel / rbf forms).
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override;
  // "rho": the learned rho = sigmoid(s), [d_t] (the teachers' features in `teachers` order).
  std::map<std::string, Tensor> pictures(const StepInputs& in) const override;
  std::vector<std::string> teachers() const override { return teacher_names_; }
  std::vector<std::string> student_taps() const override { return {"pooled"}; }
  std::vector<std::string> teacher_taps() const override { return {"pooled"}; }

  const AftOptions& options() const { return options_; }
  Tensor rho() const;  // sigmoid(s) (kernel, rbf)

  Tensor s;      // [d_t], kernel / rbf (a parameter when learn_rho)
  Tensor dense;  // [d_t, d_t], dense variant
  std::shared_ptr<nn::Linear> map;  // d_t -> d_s, linear variant

 private:
  // rho's mean, min, max and std as one-element device tensors (f64 for an f64 s, else f32); none
  // unless rho is learned. What epoch_stats reads and step_stats returns.
  std::map<std::string, Tensor> rho_stats() const;

  std::vector<std::string> teacher_names_;
  int64_t student_dim_, teacher_dim_;
  AftOptions options_;
};

// Registers the "aft" loss term (keys: teachers, variant, learn_rho, rho_lr).
void register_aft_loss();

}  // namespace retort::transfer

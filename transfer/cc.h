// CC, correlation congruence (Peng, Jin, Liu, Li, Wu, Liu, Zhou, Zhang, ICCV 2019, "Correlation
// Congruence for Knowledge Distillation").
//
// x_s, x_t: a student and a teacher tap flattened to [B, D_s], [B, D_t] (default "pooled").
// Two learned linear embeddings, both trained with the student (the teacher's features are
// constants, its embedding is not):
//   e_s = W_s x_s + b_s,  e_t = W_t x_t + b_t            [B, feat_dim], feat_dim = 128, no
//   normalisation (optional: `normalize = true` L2-normalises each row, eps 1e-12)
// Two forms of the loss (key `form`):
//   "repdistiller" (default; the code RepDistiller got from the CC authors):
//     delta_i = |e_s,i - e_t,i|                                              [B, feat_dim]
//     L_CC    = (1/(B-1)) sum_{i=1}^{B-1} sum_d delta_{i,d} * delta_{i+1,d}
//     Each example is paired with the next one in batch order (the loader shuffles).
//   "kernel" (torchdistill's CCKDLoss, the paper's correlation matrices):
//     C_ij = k(e_i, e_j) on each side                                         [B, B]
//       kernel "gaussian": exp(-2 gamma) * sum_{p=0}^{max_p} (2 gamma)^p / p! * (e_i . e_j)^p,
//         the Taylor series of exp(-gamma ||e_i - e_j||^2) for unit vectors (the embeddings are
//         not unit vectors unless `normalize`; torchdistill does not normalise either)
//       kernel "bilinear": e_i . e_j
//     L_CC = ||C_s - C_t||_F / B^2            (Frobenius norm, not squared; 'batchmean')
//
// Reference defaults: RepDistiller b84f547 distiller_zoo/CC.py:7-17 (Correlation), the
// embeddings models/util.py:185-194 (LinearEmbed: view(B, -1), nn.Linear, no normalisation)
// built at train_student.py:211-218 with feat_dim = 128 (:81) and both added to the trainable
// list (trained by the student's SGD, default init), applied to feat[-1] = "pooled" at
// helper/loops.py:162-165 (teacher features detached at :115-117); beta = 0.02
// (scripts/run_cifar_distill.sh:13), CE weight 1, no KD. mdistiller has no CC.
// torchdistill 1.1.5 CCKDLoss (losses/mid_level.py:715-788, Taylor kernel at :761-772, torch.dist
// at :787) on Linear4CCKD embeddings (models/wrapper.py:378-425, nn.Linear on the flattened
// input, both trainable); its sample config (ImageNet) uses gamma 0.4, max_p 2, weight 0.003
// with KL at T = 1 and no CE -- gamma/max_p defaults here. (Its yaml passes `kernel_params:
// {key: ...}`, but the 1.1.5 constructor reads `kernel_config['type']`.)
// Fixtures: "cc" is RepDistiller's Correlation on LinearEmbed outputs; "cc_kernel" and
// "cc_kernel_bilinear" are torchdistill's CCKDLoss (bench/torch_reference/loss_refs/cc.py).
// Deviations: the Frobenius norm is sqrt(max(sum, FLT_MIN)), so identical correlation
// matrices give a zero (not NaN) gradient; batches need B >= 2 (B = 1 has no adjacent pair: the
// reference's mean over nothing is NaN; the trainer drops the last partial batch). The weight
// β = 0.02 is RepDistiller's for the default form; give the kernel form its own weight.
#pragma once
#include <memory>
#include <string>
#include "engine/nn/layers.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kCcDefaultWeight = 0.02;  // beta (RepDistiller's CIFAR-100 script)
constexpr int64_t kCcDefaultFeatDim = 128;
constexpr double kCcDefaultGamma = 0.4;
constexpr int64_t kCcDefaultMaxP = 2;

enum class CcForm { repdistiller, kernel };
enum class CcKernel { gaussian, bilinear };
CcForm parse_cc_form(const std::string& s);
CcKernel parse_cc_kernel(const std::string& s);

struct CcOptions {
  CcForm form = CcForm::repdistiller;
  int64_t feat_dim = kCcDefaultFeatDim;
  CcKernel kernel = CcKernel::gaussian;
  double gamma = kCcDefaultGamma;
  int64_t max_p = kCcDefaultMaxP;
  bool normalize = false;
};

// RepDistiller's form on embeddings [B, F]: mean over i < B of sum_d |d_i| * |d_{i+1}|, d = e_s - e_t.
Tensor cc_adjacent_loss(const Tensor& e_s, const Tensor& e_t);
// The B x B correlation matrix of embeddings [B, F] under a kernel.
Tensor cc_correlation_matrix(const Tensor& e, CcKernel kernel, double gamma = kCcDefaultGamma,
                             int64_t max_p = kCcDefaultMaxP);
// The kernel form: ||C(e_s) - C(e_t)||_F / B^2 (both sides differentiable: both embeddings learn).
Tensor cc_kernel_loss(const Tensor& e_s, const Tensor& e_t, CcKernel kernel, double gamma = kCcDefaultGamma,
                      int64_t max_p = kCcDefaultMaxP);

class CcLoss : public Loss {
 public:
  // student_dim / teacher_dim: the flattened widths of the two taps.
  CcLoss(std::string teacher, std::string student_tap, std::string teacher_tap, int64_t student_dim,
         int64_t teacher_dim, const CcOptions& options, Device device, DType dtype, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override { return "its correlation compares every pair of examples in the batch"; }
  // The loss on raw tap tensors (the teacher's features are detached here).
  Tensor compute(const Tensor& student_features, const Tensor& teacher_features);
  // The two embeddings of raw tap tensors (after `normalize`), as the loss sees them.
  std::pair<Tensor, Tensor> embed(const Tensor& student_features, const Tensor& teacher_features);
  nn::NamedTensors parameters() const override { return embeddings_->named_parameters(); }  // embed_s.*, embed_t.*
  void train(bool on) override { embeddings_->train(on); }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {student_tap_}; }
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }
  nn::Linear& embed_s() { return *embed_s_; }
  nn::Linear& embed_t() { return *embed_t_; }
  const CcOptions& options() const { return options_; }

 private:
  std::string teacher_, student_tap_, teacher_tap_;
  CcOptions options_;
  std::shared_ptr<nn::Linear> embed_s_, embed_t_;
  std::shared_ptr<nn::Module> embeddings_;  // owns both (parameter names)
};

// Registers "cc" (keys: teacher, student_tap, teacher_tap, form, feat_dim, kernel, gamma, max_p,
// normalize; default weight 0.02).
void register_cc_loss();

}  // namespace retort::transfer

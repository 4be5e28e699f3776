// FitNets hints (Romero, Ballas, Kahou, Chassang, Gatta, Bengio, ICLR 2015, "FitNets: Hints for
// Thin Deep Nets").
//
//   L_hint = mean over all elements of ( r(f_s) - f_t )^2
//
// f_s: a student tap ("guided layer"), f_t: a teacher tap ("hint", a constant: no gradient
// reaches the teacher), r: a learned regressor from the student's shape to the teacher's,
// built by make_tap_adapter (transfer/adapters.h), always present (also when the shapes
// already agree) and trained with the student:
//   regressor = "convreg" (default, RepDistiller's, also torchdistill's and mdistiller's):
//     maps: ConvReg (transfer/conv_reg.h) = a conv that learns the resampling (3x3 stride 2
//     when the student map is twice the teacher's, 4x4 stride-2 transposed conv when half, a
//     (1+H_s-H_t)x(1+W_s-W_t) conv otherwise, all with bias) + BatchNorm2d + ReLU; ViT tokens
//     are laid out on their grid first. Vectors: Linear + ReLU (RepDistiller's Regress).
//   regressor = "projection" (retort's extension, also where ConvReg cannot resample: a
//     student map smaller than the teacher's but not half of it): the larger map average- or
//     max-pooled (`pool`) to the smaller, then 1x1 conv (no bias) + BatchNorm2d; vectors:
//     Linear. No ReLU. This was retort's only form before issue 20.
// Defaults (RepDistiller / CRD CIFAR table): hint at the middle stage, student "stage2" ->
// teacher "stage2", recipe weight beta = 100 (usually next to CE, optionally KD); the paper's
// two-step training (hint stage first, then KD) is recipes/fmnist_fitnet.toml.
// Step stats: "hint", the unweighted L_hint of the step (kept from compute(), not recomputed).
#pragma once
#include <memory>
#include <string>
#include "transfer/adapters.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kFitNetDefaultWeight = 100.0;
inline constexpr const char* kFitNetDefaultTap = "stage2";

// The hint loss of already-regressed student features: mse(regressed, teacher) (mean).
Tensor fitnet_loss(const Tensor& regressed_student, const Tensor& teacher_features);

class FitNetLoss : public Loss {
 public:
  // Builds the regressor for the two taps' shapes (throws when they cannot be paired).
  FitNetLoss(std::string teacher, const models::TapInfo& student_tap, const models::TapInfo& teacher_tap,
             Device device, uint64_t seed, PoolMode pool = PoolMode::average, bool conv_reg = true);
  Tensor compute(const StepInputs& in) override;
  // The regressor alone on raw tap tensors: the loss for given student/teacher features.
  Tensor compute(const Tensor& student_features, const Tensor& teacher_features);
  // "hint": the unweighted hint loss of the last compute() (kept, not recomputed).
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override;
  nn::NamedTensors parameters() const override;
  nn::NamedTensors buffers() const override;
  void train(bool on) override;
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {student_tap_}; }
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }
  nn::Sequential& regressor() { return *adapter_.student; }
  const TapAdapter& adapter() const { return adapter_; }

 private:
  std::string teacher_, student_tap_, teacher_tap_;
  TapAdapter adapter_;
  Tensor last_hint_;  // the last compute()'s value, detached
};

// Builds a FitNetLoss from the models (taps looked up with tap_info for `input`).
std::unique_ptr<FitNetLoss> make_fitnet_loss(const models::Model& student, const models::Model& teacher,
                                             const std::string& teacher_name, const std::string& student_tap,
                                             const std::string& teacher_tap, const Shape& input, Device device,
                                             uint64_t seed, PoolMode pool = PoolMode::average, bool conv_reg = true);

// Registers "fitnet" (keys: teacher, student_tap, teacher_tap, regressor, pool).
void register_fitnet_loss();

}  // namespace retort::transfer

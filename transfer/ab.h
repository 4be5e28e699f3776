// AB, distillation of activation boundaries (Heo, Lee, Yun, Choi, AAAI 2019, "Knowledge Transfer via
// Distillation of Activation Boundaries Formed by Hidden Neurons").
//
// Transfers each hidden neuron's on/off decision: the student's pre-activation must take the sign
// of the teacher's, with a margin m. Per stage l = 1..n, with s = c_l(student pre-ReLU map) (a
// connector, below) and t = the teacher's pre-ReLU map (a constant), elementwise:
//   e(s, t) = (s + m)^2   if s > -m and t <= 0      (teacher off: push s below -m)
//           = (s - m)^2   if s <= m and t > 0       (teacher on:  push s above  m)
//           = 0           otherwise
//   L_l  = sum of e over all B*C*H*W elements
//   L_AB = (3/1000) * (1/B) * sum_l 2^(l-n) * L_l            (n = 3: stage weights 1/4, 1/2, 1)
// The connector c_l (learned, trained with the student) is RepDistiller's Connector: identity when
// the channel count and height agree, otherwise the shared ConvReg without its ReLU
// (transfer/conv_reg.h: conv with bias + BatchNorm2d(C_t), PyTorch default init), the conv chosen
// by the heights:
//   student height == 2 * teacher's   3x3 conv, stride 2, padding 1
//   student height == teacher's / 2   4x4 transposed conv, stride 2, padding 1
//   student height >= teacher's       (1 + H_s - H_t) x (1 + W_s - W_t) conv (1x1 for equal sizes)
//   otherwise                         refused at build time, naming the taps and shapes
//                                      (RepDistiller raises NotImplemented too)
// Parameters are named as RD's Connector: "connectors.<l>.conv.{weight,bias}", "connectors.<l>.bn.*".
//
// Reference defaults (RepDistiller b84f547, "RD"):
//   taps: pre-ReLU stage outputs f1..f3 on both sides, feat[1:-1] with preact=True
//     (helper/pretrain.py:57-67, train_student.py:227-238): here "stage1.preact".."stage3.preact"
//     (models/resnet.h: the last block's residual sum before its ReLU; models/wrn.h: the next BN
//     applied to the stage output, as RD's wrn.py);
//   margin 1.0, weights 2^(i-n+1) for i = 0..n-1, / B, * 3/1000 (distiller_zoo/AB.py:11-29);
//   connectors: models/util.py:65-90 (Connector) and 131-154 (ConvReg);
//   training: AB is ONLY an initialisation stage in RD (helper/pretrain.py:11-94, init_epochs 30):
//     SGD lr 0.05 (the run's base lr), momentum 0.9, wd 5e-4, constant lr, on the connectors and
//     the student's feature layers (not the classifier), teacher in eval mode, loss L_AB alone.
//     The main stage then trains on CE only (loops.py:171-173 sets the AB term to 0; alpha = 0 in
//     scripts/run_cifar_distill.sh:21). The recipe weight (default 1) multiplies L_AB in that
//     init stage; recipes/fmnist_ab.toml has the stages.
// Other references:
//   - torchdistill 1.1.5 AltActTransferLoss (losses/mid_level.py:480-560) + Connector4DAB
//     (models/wrapper.py:248-294): the same elementwise term; reduction 'mean' divides by B only,
//     per-pair weights default 1; with weights 1/4, 1/2, 1 and a factor 3/1000 it equals RD's.
//     The fixtures compare both (ab_rd: RD's ABLoss + Connector; ab_td: torchdistill's class).
//   - The authors' script (bhheo/AB_distillation) trains the whole student in the init stage, keeps
//     the teacher in train mode and follows with KD alone; retort follows RD.
// Cross-architecture: a ViT has no pre-ReLU tap (its blocks use GELU on the token stream), so the
// default taps are not found on a ViT (the error lists its taps), and a token or vector tap named
// explicitly is refused at build time: AB needs [B, C, H, W] maps on both sides.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "engine/nn/layers.h"
#include "transfer/conv_reg.h"
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kAbDefaultWeight = 1.0;
constexpr double kAbMargin = 1.0;
constexpr double kAbScale = 3.0 / 1000.0;

// The elementwise term e(s, t) (same shapes; t is a constant).
Tensor ab_elementwise(const Tensor& student, const Tensor& teacher, double margin = kAbMargin);
// (3/1000) (1/B) sum_l 2^(l-n) sum e(s_l, t_l), for already-connected student maps s_l.
Tensor ab_loss(const std::vector<Tensor>& connected_student, const std::vector<Tensor>& teacher,
               double margin = kAbMargin);

class AbLoss : public Loss {
 public:
  AbLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
         const std::vector<models::TapInfo>& teacher_taps, double margin, Device device, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors, in tap order.
  Tensor compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps);
  nn::NamedTensors parameters() const override { return root_->named_parameters(); }
  nn::NamedTensors buffers() const override { return root_->named_buffers(); }
  void train(bool on) override { root_->train(on); }
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }
  size_t num_stages() const { return taps_.size(); }
  // Stage k's connector (its conv and bn), or null for an identity connector.
  std::shared_ptr<ConvReg> connector(size_t k) const;
  void to(DType dtype) { root_->to(dtype); }
  double margin() const { return margin_; }

 private:
  TapPairs taps_;  // maps as they are (no to-map modules): AB reads pre-ReLU maps only
  double margin_;
  std::shared_ptr<nn::Module> root_;  // child "connectors": a Sequential of the per-stage connectors
  std::shared_ptr<nn::Sequential> connectors_;
};

// The default taps: "stage1.preact".."stage3.preact".
std::vector<std::string> ab_default_taps();
// Builds an AbLoss from the models; empty student_taps = the defaults, empty teacher_taps = the
// student's names.
std::unique_ptr<AbLoss> make_ab_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, std::vector<std::string> student_taps,
                                     std::vector<std::string> teacher_taps, const Shape& input, double margin,
                                     Device device, uint64_t seed);

// Registers "ab" (keys: teacher, student_taps, teacher_taps, margin).
void register_ab_loss();

}  // namespace retort::transfer

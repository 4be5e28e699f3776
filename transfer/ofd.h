// OFD, overhaul of feature distillation (Heo, Kim, Yun, Park, Kwak, Choi, ICCV 2019, "A
// Comprehensive Overhaul of Feature Distillation").
//
// Distils pre-ReLU maps: the student's (through a learned connector) towards the teacher's, where
// the teacher's negative values are raised to a per-channel margin and the student is not pushed
// where it is already below a non-positive target. Per stage l = 1..n, with s = c_l(student map)
// (the connector: conv k x k, stride 1, padding (k-1)/2, no bias, then BatchNorm2d(C_t)), t = the
// teacher's pre-ReLU map (a constant, adaptive-average-pooled to s's height and width when they
// differ) and m the teacher's margin for each channel:
//   target     T = max(t, m)                                  (m broadcast over B, H, W)
//   partial L2 e = (s - T)^2   where s > T or T > 0,   else 0
//   L_l  = sum of e over all B*C*H*W elements
//   L    = (1/B) * sum_l 2^(l-n) * L_l                         (n = 3: stage weights 1/4, 1/2, 1)
// and the recipe's weight (default 0.001) multiplies L. The margin of a teacher channel is the
// mean of its pre-ReLU response where that is negative, taken from the batch norm before its
// ReLU: x ~ N(beta, gamma^2) with gamma, beta that BN's weight and bias, sigma = |gamma|, and
//   m = E[x | x < 0] = beta - sigma * phi(beta/sigma) / Phi(-beta/sigma)   if Phi(-beta/sigma) > 0.001
//     = -3 * sigma                                                         otherwise
// (phi, Phi: the standard normal pdf and cdf; "otherwise" is a channel that is almost never
// negative, where the conditional mean is numerically unstable). m < 0 always, so T > 0 exactly
// where t > 0.
//
// Reference defaults (mdistiller, megvii-research/mdistiller, "MD"):
//   loss: distillers/OFD.py:11-19 feat_loss, (s-m)^2 [s>m, t<=m] + (s-t)^2 [s>t, m<t<=0] +
//     (s-t)^2 [t>0], .mean(dim=0).sum(): the same e as above (case by case, given m <= 0) summed
//     over C, H, W and averaged over the batch; stages weighted / 2^(n-1-i) (OFD.py:151-160), the
//     teacher map adaptive-average-pooled to the student's size (OFD.py:156-158);
//   margin: OFD.py:90-109 (scipy's norm.cdf, the 0.001 branch at :98, stored as float32);
//   connector: OFD.py:41-60 ConnectorConvBN, conv weight N(0, 2/(k*k*C_t)), BN weight 1, bias 0,
//     trained with the student, in training mode (batch statistics, OFD.py:114-121);
//   features: preact_feats[1:] of both models (the stage outputs before their ReLU, the stem left
//     out; OFD.py:136-138), the last min(n_s, n_t) of each (OFD.py:143-145, 163-165 _align_list);
//     for CIFAR ResNets and WRNs here "stage1.preact".."stage3.preact" (models/resnet.h, wrn.h);
//     the BNs: models/cifar/resnet.py:167-179 (the last block's bn2, or bn3 for Bottleneck),
//     models/cifar/wrn.py:116-121 (block2.layer[0].bn1, block3.layer[0].bn1, bn1), as
//     models::Model::bn_before_relu;
//   weights: engine/cfg.py:100-105 CE_WEIGHT 1.0, FEAT_WEIGHT 0.001, CONNECTOR.KERNEL_SIZE 1;
//     configs/cifar100/ofd.yaml: resnet32x4 -> resnet8x4, SGD lr 0.05, 240 epochs, batch 64.
// The authors' code (clovaai/overhaul-distillation 76344a8, CIFAR-100/distiller.py): the same
// margin (get_margin_from_BN) and connector (1x1 only), distillation_loss = sum of
// mse(s, max(t, m)) * [(s > T) | (T > 0)] (the form above), stages / 2^(n-1-i), and the training
// loss CE + L_distill / B / 1000 (train_with_distillation.py:91; ImageNet: / 10000 and all four
// ResNet stages, where MD's ImageNet ResNet drops stage 1). Both put the TEACHER in training mode
// during distillation (CIFAR-100/train_with_distillation.py:73-75; MD's OFD.train, OFD.py:114-121,
// drops the base Distiller's teacher.eval(), _base.py:12-20), so its BNs normalise with batch
// statistics and its running statistics move.
// Retort's deviations:
//   - the teacher stays in eval mode (running statistics), as for every retort method;
//   - the margins are computed in double precision (MD and the authors round them to float32);
//     a BN weight of exactly 0 (MD and the authors divide by zero) gets the limit min(beta, 0);
//   - the margins are read from the teacher's BNs when the term's stage starts (begin_stage(), or
//     the first compute() when no stage runs it), not when the loss is built: a recipe builds
//     every term before the teacher's own stage has trained it;
//   - the margins are not saved as buffers (MD keeps them in a plain list; they follow the teacher).
// Cross-architecture: the student tap must be a [B, C, H, W] map, and every teacher tap needs a BN
// right before its ReLU, so a ViT (GELU on tokens, LayerNorm) cannot take part on either side: the
// build fails naming the tap.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "engine/nn/layers.h"
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kOfdDefaultWeight = 1e-3;   // MD engine/cfg.py:103 FEAT_WEIGHT
constexpr int64_t kOfdDefaultKernel = 1;     // MD engine/cfg.py:105 CONNECTOR.KERNEL_SIZE
constexpr double kOfdMinNegativeMass = 1e-3;  // MD OFD.py:96: Phi(-beta/sigma) > 0.001

// The margin of one teacher channel from its BN's weight (gamma) and bias (beta).
double ofd_channel_margin(double gamma, double beta);
// Every channel's margin of `bn`, computed in double precision.
std::vector<double> ofd_margins(const nn::BatchNorm2d& bn);

// The elementwise partial L2 e(s, max(t, m)); margin is [1, C, 1, 1] (or broadcastable), t a constant.
Tensor ofd_elementwise(const Tensor& student, const Tensor& teacher, const Tensor& margin);
// (1/B) sum_l 2^(l-n) sum e(s_l, t_l, m_l) for already-connected student maps and teacher maps of
// the same shapes.
Tensor ofd_loss(const std::vector<Tensor>& connected_student, const std::vector<Tensor>& teacher,
                const std::vector<Tensor>& margins);

class OfdLoss : public Loss {
 public:
  // teacher_bns[k]: the BN before the ReLU of teacher tap k (read for the margins when the stage
  // starts). Throws for a tap that is not a map or a BN whose channels are not the teacher map's.
  OfdLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
          const std::vector<models::TapInfo>& teacher_taps, std::vector<std::shared_ptr<nn::BatchNorm2d>> teacher_bns,
          int64_t kernel_size, Device device, DType dtype, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors, in tap order (the student's through the connectors).
  Tensor compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps);
  nn::NamedTensors parameters() const override { return root_->named_parameters(); }
  nn::NamedTensors buffers() const override { return root_->named_buffers(); }
  void train(bool on) override { root_->train(on); }
  // Reads the margins from the teacher's BNs as they are now (trained by an earlier stage).
  void begin_stage() override { update_margins(); }
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }

  size_t num_stages() const { return taps_.size(); }
  // Stage k's connector: [0] the conv (no bias), [1] the BatchNorm2d.
  nn::Sequential& connector(size_t k) const;
  void update_margins();
  // Stage k's margins (one per teacher channel) as last read; reads them first if never read.
  const std::vector<double>& margins(size_t k);
  void to(DType dtype) { root_->to(dtype); }

 private:
  const std::vector<Tensor>& margin_tensors(DType dtype, Device device);

  TapPairs taps_;  // maps as they are (no to-map modules)
  std::vector<std::shared_ptr<nn::BatchNorm2d>> teacher_bns_;
  std::shared_ptr<nn::Module> root_;  // child "connectors": a Sequential of the per-stage connectors
  std::shared_ptr<nn::Sequential> connectors_;
  std::vector<std::vector<double>> margins_;  // empty until read
  std::vector<Tensor> margin_tensors_;        // margins_ as [1, C, 1, 1] in the last compute's dtype
};

// The default taps of a model: its "stage<i>.preact" taps in stage order (none on a ViT).
std::vector<std::string> ofd_preact_taps(const models::Model& model, const Shape& input);
// Builds an OfdLoss from the models. Empty student_taps and teacher_taps: the last
// min(n_s, n_t) preact taps of each (MD's _align_list); empty teacher_taps alone: the student's
// names. Every teacher tap needs a BN before its ReLU (models::Model::bn_before_relu).
std::unique_ptr<OfdLoss> make_ofd_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, std::vector<std::string> student_taps,
                                       std::vector<std::string> teacher_taps, const Shape& input,
                                       int64_t kernel_size, Device device, DType dtype, uint64_t seed);

// Registers "ofd" (keys: teacher, student_taps, teacher_taps, kernel_size).
void register_ofd_loss();

}  // namespace retort::transfer

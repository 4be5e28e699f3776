// Wide ResNet (RepDistiller wrn.py, Zagoruyko & Komodakis) with its parameter names:
// conv1, blockS.layer.B.{bn1, conv1, bn2, conv2, convShortcut}, bn1, fc. Pre-activation
// blocks: BN - ReLU - conv3x3(stride) - BN - ReLU - [dropout] - conv3x3, + identity or a 1x1
// conv shortcut (applied to the activated input) when the width changes. Widths 16, 16k,
// 32k, 64k; (depth - 4) / 6 blocks per stage; final BN - ReLU - global average pool - fc.
// Taps, as RepDistiller's is_feat features: "stem" (conv1 output), "stage<i>" = the raw
// output of block i (a residual sum: pre-activation blocks end without ReLU),
// "stage<i>.preact" = RepDistiller's preact=True feature, the next BN applied to it (the next
// stage's first bn1, or the final bn1; computed once inside the normal forward, so running
// statistics are not updated twice), "pooled", "logits".
// bn2_folded marks a frozen inference copy (models/fold_batch_norm.h): bn2 was folded into conv1
// and conv1 + bn2 + ReLU runs as one conv2d_bias_act (eval only); the other BNs stay.
#pragma once
#include <memory>
#include <vector>
#include "engine/nn/layers.h"
#include "models/model.h"

namespace retort::models {

class WideBasicBlock : public nn::Module {
 public:
  WideBasicBlock(int64_t in_planes, int64_t out_planes, int64_t stride, double drop, Generator& gen);
  std::string type_name() const override { return "BasicBlock"; }
  Tensor forward(const Tensor& x) override { return forward(x, nullptr, nullptr); }
  // normed_in / act_in receive bn1(x) and relu(bn1(x)) when non-null.
  Tensor forward(const Tensor& x, Tensor* normed_in, Tensor* act_in);

  bool equal_in_out;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv_shortcut;  // conv_shortcut null when equal_in_out
  std::shared_ptr<nn::Dropout> drop;                        // null when drop == 0
  bool bn2_folded = false;  // bn2 folded into conv1 (fold_batch_norm.h)
};

// RepDistiller's NetworkBlock: a Sequential named "layer".
class NetworkBlock : public nn::Module {
 public:
  NetworkBlock(int64_t blocks, int64_t in_planes, int64_t out_planes, int64_t stride, double drop, Generator& gen);
  std::string type_name() const override { return "NetworkBlock"; }
  Tensor forward(const Tensor& x) override { return layer->forward(x); }
  std::shared_ptr<nn::Sequential> layer;
};

class WideResNet : public Model {
 public:
  WideResNet(const std::string& name, int64_t depth, int64_t widen_factor, const ModelConfig& cfg);
  std::string type_name() const override { return "WideResNet"; }
  std::string family() const override { return "wrn"; }
  using Model::forward;
  Tensor forward(const Tensor& x, Taps* taps) override;
  std::vector<TapInfo> tap_info(const Shape& input) const override;
  // "stage<i>.preact" is that BN's own output: block<i+1>.layer.0.bn1 for i < 3, the final bn1
  // for the last stage (mdistiller's and the OFD authors' get_bn_before_relu); else null.
  std::shared_ptr<nn::BatchNorm2d> bn_before_relu(const std::string& tap) const override;
  // What it was built from (make_frozen_inference_copy builds another).
  const std::string& name() const { return name_; }
  int64_t depth() const { return 6 * int64_t(blocks.front()->layer->size()) + 4; }
  int64_t widen_factor() const { return widths_[1] / 16; }
  const ModelConfig& config() const override { return cfg_; }

  std::shared_ptr<nn::Conv2d> conv1;
  std::vector<std::shared_ptr<NetworkBlock>> blocks;  // block1..block3
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Linear> fc;

 private:
  std::string name_;
  std::vector<int64_t> widths_;
  ModelConfig cfg_;
};

}  // namespace retort::models

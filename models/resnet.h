// ResNets with torchvision/RepDistiller parameter names (conv1, bn1, layerS.B.conv1, ...,
// layerS.B.downsample.0/1, fc). One class covers both families:
//  * CIFAR (RepDistiller resnet.py): 3x3 stem conv + BN + ReLU, three stages of BasicBlocks
//    with strides 1, 2, 2, a 1x1-conv + BN shortcut where the shape changes (option B);
//    resnet8..110 use widths 16-16-32-64, resnet8x4/32x4 use 32-64-128-256.
//  * ImageNet (torchvision): 7x7/2 stem conv + BN + ReLU + 3x3/2 max-pool, four stages with
//    strides 1, 2, 2, 2; BasicBlock (resnet18/34) or Bottleneck with the stride on the 3x3
//    (resnet50).
// Global average pooling before fc (RepDistiller's AvgPool2d(8) is the same on 32x32 inputs).
// Taps: "stem", "stage<i>" (stage output after ReLU), "stage<i>.preact" (the last block's
// sum before its final ReLU), "pooled" [B, C], "logits".
// The *bn_folded flags mark a frozen inference copy (models/fold_batch_norm.h): the BatchNorms
// were folded into the convolutions and forward runs conv2d_bias_act instead (eval only).
#pragma once
#include <memory>
#include <vector>
#include "engine/nn/layers.h"
#include "models/model.h"

namespace retort::models {

// conv3x3 - BN - ReLU - conv3x3 - BN, + shortcut, ReLU. forward returns the output after
// the final ReLU and stores the sum before it in *preact when non-null.
class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen);
  std::string type_name() const override { return "BasicBlock"; }
  Tensor forward(const Tensor& x) override { return forward(x, nullptr); }
  Tensor forward(const Tensor& x, Tensor* preact);

  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;  // null when the shape is unchanged
  bool bn_folded = false;  // bn1, bn2 and downsample's BN folded into the convs (fold_batch_norm.h)

 private:
  Tensor forward_folded(const Tensor& x, Tensor* preact);
};

// conv1x1 - BN - ReLU - conv3x3(stride) - BN - ReLU - conv1x1(4x) - BN, + shortcut, ReLU.
class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen);
  std::string type_name() const override { return "Bottleneck"; }
  Tensor forward(const Tensor& x) override { return forward(x, nullptr); }
  Tensor forward(const Tensor& x, Tensor* preact);

  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<nn::Sequential> downsample;
  bool bn_folded = false;  // bn1..bn3 and downsample's BN folded into the convs (fold_batch_norm.h)

 private:
  Tensor forward_folded(const Tensor& x, Tensor* preact);
};

struct ResNetSpec {
  std::string name;
  bool imagenet_stem = false;          // 7x7/2 conv + max-pool (else 3x3/1 conv)
  bool bottleneck = false;             // Bottleneck blocks (else BasicBlock)
  int64_t stem_width = 16;
  std::vector<int64_t> widths;         // planes per stage
  std::vector<int64_t> blocks;         // blocks per stage
};

// RepDistiller CIFAR ResNet of this depth ((depth - 2) % 6 == 0) and widths [stem, s1, s2, s3].
ResNetSpec cifar_resnet_spec(const std::string& name, int64_t depth, const std::vector<int64_t>& widths);
// torchvision resnet18 / resnet34 / resnet50.
ResNetSpec imagenet_resnet_spec(const std::string& name);

class ResNet : public Model {
 public:
  ResNet(const ResNetSpec& spec, const ModelConfig& cfg);
  std::string type_name() const override { return "ResNet"; }
  std::string family() const override { return spec_.imagenet_stem ? "resnet-imagenet" : "resnet-cifar"; }
  using Model::forward;
  Tensor forward(const Tensor& x, Taps* taps) override;
  std::vector<TapInfo> tap_info(const Shape& input) const override;
  // "stage<i>.preact": the last block's bn2 (BasicBlock) or bn3 (Bottleneck), whose output plus
  // the shortcut is the tap (mdistiller's and the OFD authors' get_bn_before_relu); else null.
  std::shared_ptr<nn::BatchNorm2d> bn_before_relu(const std::string& tap) const override;
  const ResNetSpec& spec() const { return spec_; }
  const ModelConfig& config() const override { return cfg_; }

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  bool stem_bn_folded = false;  // bn1 folded into conv1 (fold_batch_norm.h)
  std::vector<std::shared_ptr<nn::Sequential>> layers;  // layer1, layer2, ...
  std::shared_ptr<nn::Linear> fc;

 private:
  ResNetSpec spec_;
  ModelConfig cfg_;
};

}  // namespace retort::models

// The ONNX graphs of ResNet (CIFAR and ImageNet, BasicBlock and Bottleneck) and WRN: each mirrors
// the model's eval-mode forward (models/resnet.cpp, models/wrn.cpp), BatchNorms as
// BatchNormalization nodes with the running statistics, or, in a BN-folded inference copy
// (models/fold_batch_norm.h), the folded convolutions with their biases.
#include <fmt/format.h>
#include "engine/nn/layers.h"
#include "models/onnx_families.h"
#include "models/onnx_layers.h"
#include "models/resnet.h"
#include "models/wrn.h"

namespace retort::models::onnx_writer {

namespace {
// The shortcut of a ResNet block: downsample's conv + BN, or the input itself.
std::string shortcut(OnnxGraph& g, const std::shared_ptr<nn::Sequential>& downsample, bool bn_folded,
                     const std::string& scope, const std::string& x) {
  if (!downsample) return x;
  return conv_bn(g, *downsample->at<nn::Conv2d>(0), scope + ".downsample.0", *downsample->at<nn::BatchNorm2d>(1),
                 scope + ".downsample.1", bn_folded, x);
}

std::string basic_block(OnnxGraph& g, const BasicBlock& b, const std::string& scope, const std::string& x) {
  std::string out = relu(g, scope, conv_bn(g, *b.conv1, scope + ".conv1", *b.bn1, scope + ".bn1", b.bn_folded, x));
  out = conv_bn(g, *b.conv2, scope + ".conv2", *b.bn2, scope + ".bn2", b.bn_folded, out);
  return relu(g, scope, add(g, scope, out, shortcut(g, b.downsample, b.bn_folded, scope, x)));
}

std::string bottleneck(OnnxGraph& g, const Bottleneck& b, const std::string& scope, const std::string& x) {
  std::string out = relu(g, scope, conv_bn(g, *b.conv1, scope + ".conv1", *b.bn1, scope + ".bn1", b.bn_folded, x));
  out = relu(g, scope, conv_bn(g, *b.conv2, scope + ".conv2", *b.bn2, scope + ".bn2", b.bn_folded, out));
  out = conv_bn(g, *b.conv3, scope + ".conv3", *b.bn3, scope + ".bn3", b.bn_folded, out);
  return relu(g, scope, add(g, scope, out, shortcut(g, b.downsample, b.bn_folded, scope, x)));
}

// RepDistiller's pre-activation block: BN - ReLU - conv - BN - ReLU - conv, + the raw input or
// the 1x1 shortcut of the activated input.
std::string wide_block(OnnxGraph& g, const WideBasicBlock& b, const std::string& scope, const std::string& x) {
  std::string act = relu(g, scope, batch_norm(g, *b.bn1, scope + ".bn1", x));
  std::string out =
      relu(g, scope, conv_bn(g, *b.conv1, scope + ".conv1", *b.bn2, scope + ".bn2", b.bn2_folded, act));
  out = conv2d(g, *b.conv2, scope + ".conv2", out);
  std::string residual = b.equal_in_out ? x : conv2d(g, *b.conv_shortcut, scope + ".convShortcut", act);
  return add(g, scope, residual, out);
}
}  // namespace

std::string resnet_graph(OnnxGraph& g, const ResNet& model, const std::string& images) {
  std::string h = relu(g, "stem", conv_bn(g, *model.conv1, "conv1", *model.bn1, "bn1", model.stem_bn_folded, images));
  if (model.spec().imagenet_stem)
    h = g.node("MaxPool", "maxpool", {h},
               {ints_attr("kernel_shape", {3, 3}), ints_attr("strides", {2, 2}), ints_attr("pads", {1, 1, 1, 1})});
  for (size_t s = 0; s < model.layers.size(); ++s) {
    const auto& layer = *model.layers[s];
    for (size_t b = 0; b < layer.size(); ++b) {
      std::string scope = fmt::format("layer{}.{}", s + 1, b);
      h = model.spec().bottleneck ? bottleneck(g, *layer.at<Bottleneck>(b), scope, h)
                                  : basic_block(g, *layer.at<BasicBlock>(b), scope, h);
    }
  }
  return linear(g, *model.fc, "fc", global_average_pool(g, "pool", h), true);
}

std::string wrn_graph(OnnxGraph& g, const WideResNet& model, const std::string& images) {
  std::string h = conv2d(g, *model.conv1, "conv1", images);
  for (size_t s = 0; s < model.blocks.size(); ++s) {
    const auto& layer = *model.blocks[s]->layer;
    for (size_t b = 0; b < layer.size(); ++b)
      h = wide_block(g, *layer.at<WideBasicBlock>(b), fmt::format("block{}.layer.{}", s + 1, b), h);
  }
  h = relu(g, "bn1", batch_norm(g, *model.bn1, "bn1", h));
  return linear(g, *model.fc, "fc", global_average_pool(g, "pool", h), true);
}

}  // namespace retort::models::onnx_writer

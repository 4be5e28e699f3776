// ResNet blocks and the CIFAR/ImageNet ResNet model (see resnet.h).
#include "models/resnet.h"
#include <optional>
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"
#include "models/fold_batch_norm.h"

namespace retort::models {

namespace {
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, Generator& gen) {
  return std::make_shared<nn::Conv2d>(in, out, nn::Conv2dSpec{k, stride, pad, 1, 1, false}, gen);
}

std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride, Generator& gen) {
  if (stride == 1 && in == out) return nullptr;
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(conv(in, out, 1, stride, 0, gen));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(out));
  return seq;
}

// The shortcut of a block whose downsample BN was folded into its conv.
Tensor folded_shortcut(const std::shared_ptr<nn::Sequential>& downsample, const Tensor& x) {
  return downsample ? folded_conv(*downsample->at<nn::Conv2d>(0), x, Tensor(), false) : x;
}
}  // namespace

// ---------------------------------------------------------------- blocks
BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen) {
  conv1 = register_module("conv1", conv(in_planes, planes, 3, stride, 1, gen));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1, gen));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  downsample = make_downsample(in_planes, planes * expansion, stride, gen);
  if (downsample) register_module("downsample", downsample);
}

Tensor BasicBlock::forward(const Tensor& x, Tensor* preact) {
  if (bn_folded) return forward_folded(x, preact);
  Tensor out = bn1->forward_act(conv1->forward(x), Tensor(), true);
  const Tensor shortcut = downsample ? downsample->forward(x) : x;
  if (!preact) return bn2->forward_act(conv2->forward(out), shortcut, true);
  *preact = add(bn2->forward(conv2->forward(out)), shortcut);  // the tap wants the sum before the ReLU
  return relu(*preact);
}

Tensor BasicBlock::forward_folded(const Tensor& x, Tensor* preact) {
  Tensor out = folded_conv(*conv1, x, Tensor(), true);
  return folded_conv_add_relu(*conv2, out, folded_shortcut(downsample, x), preact);
}

Bottleneck::Bottleneck(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen) {
  conv1 = register_module("conv1", conv(in_planes, planes, 1, 1, 0, gen));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1, gen));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  conv3 = register_module("conv3", conv(planes, planes * expansion, 1, 1, 0, gen));
  bn3 = register_module("bn3", std::make_shared<nn::BatchNorm2d>(planes * expansion));
  downsample = make_downsample(in_planes, planes * expansion, stride, gen);
  if (downsample) register_module("downsample", downsample);
}

Tensor Bottleneck::forward(const Tensor& x, Tensor* preact) {
  if (bn_folded) return forward_folded(x, preact);
  Tensor out = bn1->forward_act(conv1->forward(x), Tensor(), true);
  out = bn2->forward_act(conv2->forward(out), Tensor(), true);
  const Tensor shortcut = downsample ? downsample->forward(x) : x;
  if (!preact) return bn3->forward_act(conv3->forward(out), shortcut, true);
  *preact = add(bn3->forward(conv3->forward(out)), shortcut);  // the tap wants the sum before the ReLU
  return relu(*preact);
}

Tensor Bottleneck::forward_folded(const Tensor& x, Tensor* preact) {
  Tensor out = folded_conv(*conv1, x, Tensor(), true);
  out = folded_conv(*conv2, out, Tensor(), true);
  return folded_conv_add_relu(*conv3, out, folded_shortcut(downsample, x), preact);
}

// ---------------------------------------------------------------- specs
ResNetSpec cifar_resnet_spec(const std::string& name, int64_t depth, const std::vector<int64_t>& widths) {
  RETORT_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "{}: CIFAR ResNet depth {} must be 6n+2 (8, 14, 20, 32, ...)", name,
               depth);
  RETORT_CHECK(widths.size() == 4, "{}: CIFAR ResNet needs 4 widths (stem + 3 stages)", name);
  int64_t n = (depth - 2) / 6;
  return ResNetSpec{name, false, false, widths[0], {widths[1], widths[2], widths[3]}, {n, n, n}};
}

ResNetSpec imagenet_resnet_spec(const std::string& name) {
  std::vector<int64_t> widths{64, 128, 256, 512};
  if (name == "resnet18") return ResNetSpec{name, true, false, 64, widths, {2, 2, 2, 2}};
  if (name == "resnet34") return ResNetSpec{name, true, false, 64, widths, {3, 4, 6, 3}};
  if (name == "resnet50") return ResNetSpec{name, true, true, 64, widths, {3, 4, 6, 3}};
  fail("imagenet_resnet_spec: unknown ResNet '{}' (resnet18, resnet34, resnet50)", name);
}

// ---------------------------------------------------------------- model
ResNet::ResNet(const ResNetSpec& spec, const ModelConfig& cfg) : spec_(spec), cfg_(cfg) {
  RETORT_CHECK(spec.widths.size() == spec.blocks.size() && !spec.widths.empty(), "{}: widths and blocks disagree",
               spec.name);
  RETORT_CHECK(cfg.in_channels > 0 && cfg.num_classes >= 0,
               "{}: in_channels must be positive and num_classes at least 0 (0: no classifier)", spec.name);
  Generator gen(cfg.seed);
  // Layers are built without their default init: the model initialises every tensor below.
  std::optional<nn::SkipInitGuard> building(std::in_place);
  int64_t expansion = spec.bottleneck ? Bottleneck::expansion : BasicBlock::expansion;
  if (spec.imagenet_stem)
    conv1 = register_module("conv1", conv(cfg.in_channels, spec.stem_width, 7, 2, 3, gen));
  else
    conv1 = register_module("conv1", conv(cfg.in_channels, spec.stem_width, 3, 1, 1, gen));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(spec.stem_width));

  int64_t in_planes = spec.stem_width;
  for (size_t s = 0; s < spec.widths.size(); ++s) {
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < spec.blocks[s]; ++b) {
      int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      if (spec.bottleneck)
        layer->push_back(std::make_shared<Bottleneck>(in_planes, spec.widths[s], stride, gen));
      else
        layer->push_back(std::make_shared<BasicBlock>(in_planes, spec.widths[s], stride, gen));
      in_planes = spec.widths[s] * expansion;
    }
    layers.push_back(register_module("layer" + std::to_string(s + 1), layer));
  }
  if (cfg.num_classes > 0) fc = register_module("fc", std::make_shared<nn::Linear>(in_planes, cfg.num_classes, gen));

  // torchvision and RepDistiller: convs kaiming_normal(fan_out, relu); BN weight 1, bias 0
  // (set by BatchNorm2d); fc the Linear default.
  building.reset();
  for (auto& [name, m] : named_modules())
    if (auto* c = dynamic_cast<nn::Conv2d*>(m)) nn::kaiming_normal_(c->weight, gen, 0.0, nn::FanMode::fan_out);
  if (fc) fc->reset_parameters(gen);
}

Tensor ResNet::forward(const Tensor& input, Taps* taps) {
  const Tensor x = adapted(input);  // the data's images resized / converted when the model wants others
  check_image_input(spec_.name, x, cfg_.in_channels);
  Tensor h = stem_bn_folded ? folded_conv(*conv1, x, Tensor(), true)
                            : bn1->forward_act(conv1->forward(x), Tensor(), true);
  if (spec_.imagenet_stem) h = max_pool2d(h, {3, 3}, {2, 2}, {1, 1});
  put_tap(taps, "stem", h);
  for (size_t s = 0; s < layers.size(); ++s) {
    auto& layer = *layers[s];
    Tensor preact;
    for (size_t b = 0; b < layer.size(); ++b) {
      Tensor* want = (b + 1 == layer.size() && taps) ? &preact : nullptr;
      if (spec_.bottleneck)
        h = layer.at<Bottleneck>(b)->forward(h, want);
      else
        h = layer.at<BasicBlock>(b)->forward(h, want);
    }
    std::string stage = "stage" + std::to_string(s + 1);
    put_tap(taps, stage, h);
    put_tap(taps, stage + ".preact", preact);
  }
  Tensor pooled = mean(h, {2, 3});
  put_tap(taps, "pooled", pooled);
  if (!fc) return pooled;  // no classifier: a feature extractor
  Tensor logits = fc->forward(pooled);
  put_tap(taps, "logits", logits);
  return logits;
}

std::vector<TapInfo> ResNet::tap_info(const Shape& input) const {
  const Shape in = adapted(input);
  check_image_shape(spec_.name, in, cfg_.in_channels);
  int64_t B = in[0], H = in[2], W = in[3];
  if (spec_.imagenet_stem) {
    H = window_out(window_out(H, 7, 2, 3), 3, 2, 1);
    W = window_out(window_out(W, 7, 2, 3), 3, 2, 1);
  }
  std::vector<TapInfo> out{{"stem", {B, spec_.stem_width, H, W}}};
  int64_t expansion = spec_.bottleneck ? Bottleneck::expansion : BasicBlock::expansion;
  for (size_t s = 0; s < spec_.widths.size(); ++s) {
    if (s > 0) {
      H = window_out(H, 3, 2, 1);
      W = window_out(W, 3, 2, 1);
    }
    Shape shape{B, spec_.widths[s] * expansion, H, W};
    std::string stage = "stage" + std::to_string(s + 1);
    out.push_back({stage, shape});
    out.push_back({stage + ".preact", shape});
  }
  out.push_back({"pooled", {B, spec_.widths.back() * expansion}});
  if (cfg_.num_classes > 0) out.push_back({"logits", {B, cfg_.num_classes}});
  return out;
}

std::shared_ptr<nn::BatchNorm2d> ResNet::bn_before_relu(const std::string& tap) const {
  for (size_t s = 0; s < layers.size(); ++s) {
    if (tap != "stage" + std::to_string(s + 1) + ".preact") continue;
    const auto& layer = *layers[s];
    if (spec_.bottleneck) return layer.at<Bottleneck>(layer.size() - 1)->bn3;
    return layer.at<BasicBlock>(layer.size() - 1)->bn2;
  }
  return nullptr;
}

}  // namespace retort::models

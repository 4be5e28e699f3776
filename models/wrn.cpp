// Wide ResNet blocks and model (see wrn.h).
#include "models/wrn.h"
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
}  // namespace

WideBasicBlock::WideBasicBlock(int64_t in_planes, int64_t out_planes, int64_t stride, double p, Generator& gen)
    : equal_in_out(in_planes == out_planes) {
  RETORT_CHECK(!(equal_in_out && stride != 1), "WRN block: stride {} with an identity shortcut", stride);
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(in_planes));
  conv1 = register_module("conv1", conv(in_planes, out_planes, 3, stride, 1, gen));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out_planes));
  conv2 = register_module("conv2", conv(out_planes, out_planes, 3, 1, 1, gen));
  if (!equal_in_out) conv_shortcut = register_module("convShortcut", conv(in_planes, out_planes, 1, stride, 0, gen));
  if (p > 0) drop = register_module("drop", std::make_shared<nn::Dropout>(p, gen));
}

Tensor WideBasicBlock::forward(const Tensor& x, Tensor* normed_in, Tensor* act_in) {
  Tensor act;
  if (normed_in) {  // the tap wants the BN's output before the ReLU
    *normed_in = bn1->forward(x);
    act = relu(*normed_in);
  } else {
    act = bn1->forward_act(x, Tensor(), true);
  }
  if (act_in) *act_in = act;
  Tensor out = bn2_folded ? folded_conv(*conv1, act, Tensor(), true)
                          : bn2->forward_act(conv1->forward(act), Tensor(), true);
  if (drop) out = drop->forward(out);
  out = conv2->forward(out);
  // RepDistiller: identity adds the raw input; the projection reads the activated input.
  return add(equal_in_out ? x : conv_shortcut->forward(act), out);
}

NetworkBlock::NetworkBlock(int64_t n, int64_t in_planes, int64_t out_planes, int64_t stride, double p,
                           Generator& gen) {
  layer = register_module("layer", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < n; ++i)
    layer->push_back(std::make_shared<WideBasicBlock>(i == 0 ? in_planes : out_planes, out_planes,
                                                      i == 0 ? stride : 1, p, gen));
}

WideResNet::WideResNet(const std::string& name, int64_t depth, int64_t k, const ModelConfig& cfg)
    : name_(name), cfg_(cfg) {
  RETORT_CHECK(depth >= 10 && (depth - 4) % 6 == 0, "{}: WRN depth {} must be 6n+4 (10, 16, 22, 28, 40, ...)", name,
               depth);
  RETORT_CHECK(k >= 1, "{}: widen factor {} must be >= 1", name, k);
  RETORT_CHECK(cfg.in_channels > 0 && cfg.num_classes >= 0,
               "{}: in_channels must be positive and num_classes at least 0 (0: no classifier)", name);
  Generator gen(cfg.seed);
  // Layers are built without their default init: the model initialises every tensor below.
  std::optional<nn::SkipInitGuard> building(std::in_place);
  int64_t n = (depth - 4) / 6;
  widths_ = {16, 16 * k, 32 * k, 64 * k};
  conv1 = register_module("conv1", conv(cfg.in_channels, widths_[0], 3, 1, 1, gen));
  for (int s = 0; s < 3; ++s)
    blocks.push_back(register_module("block" + std::to_string(s + 1),
                                     std::make_shared<NetworkBlock>(n, widths_[s], widths_[s + 1], s == 0 ? 1 : 2,
                                                                    cfg.dropout, gen)));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(widths_[3]));
  if (cfg.num_classes > 0) fc = register_module("fc", std::make_shared<nn::Linear>(widths_[3], cfg.num_classes, gen));
  // wrn.py: conv weights N(0, sqrt(2 / (k*k*out))) = kaiming_normal(fan_out); BN 1/0; fc bias 0.
  building.reset();
  for (auto& [mname, m] : named_modules())
    if (auto* c = dynamic_cast<nn::Conv2d*>(m)) nn::kaiming_normal_(c->weight, gen, 0.0, nn::FanMode::fan_out);
  if (fc) {
    fc->reset_parameters(gen);
    nn::constant_(fc->bias, 0.0);
  }
}

Tensor WideResNet::forward(const Tensor& input, Taps* taps) {
  const Tensor x = adapted(input);  // the data's images resized / converted when the model wants others
  check_image_input(name_, x, cfg_.in_channels);
  Tensor h = conv1->forward(x);
  put_tap(taps, "stem", h);
  Tensor normed;  // the BN of the previous stage's output, computed by the next block
  for (size_t s = 0; s < blocks.size(); ++s) {
    auto& layer = *blocks[s]->layer;
    for (size_t b = 0; b < layer.size(); ++b) {
      bool first_of_later_stage = (b == 0 && s > 0 && taps);
      h = layer.at<WideBasicBlock>(b)->forward(h, first_of_later_stage ? &normed : nullptr, nullptr);
      if (first_of_later_stage) put_tap(taps, "stage" + std::to_string(s) + ".preact", normed);
    }
    put_tap(taps, "stage" + std::to_string(s + 1), h);
  }
  Tensor act;
  if (taps) {  // the stage3.preact tap is the BN's output before the ReLU
    normed = bn1->forward(h);
    put_tap(taps, "stage3.preact", normed);
    act = relu(normed);
  } else {
    act = bn1->forward_act(h, Tensor(), true);
  }
  Tensor pooled = mean(act, {2, 3});
  put_tap(taps, "pooled", pooled);
  if (!fc) return pooled;  // no classifier: a feature extractor
  Tensor logits = fc->forward(pooled);
  put_tap(taps, "logits", logits);
  return logits;
}

std::vector<TapInfo> WideResNet::tap_info(const Shape& input) const {
  const Shape in = adapted(input);
  check_image_shape(name_, in, cfg_.in_channels);
  int64_t B = in[0], H = in[2], W = in[3];
  std::vector<TapInfo> out{{"stem", {B, widths_[0], H, W}}};
  for (int s = 0; s < 3; ++s) {
    if (s > 0) {
      H = window_out(H, 3, 2, 1);
      W = window_out(W, 3, 2, 1);
    }
    std::string stage = "stage" + std::to_string(s + 1);
    out.push_back({stage, {B, widths_[s + 1], H, W}});
    out.push_back({stage + ".preact", {B, widths_[s + 1], H, W}});
  }
  out.push_back({"pooled", {B, widths_[3]}});
  if (cfg_.num_classes > 0) out.push_back({"logits", {B, cfg_.num_classes}});
  return out;
}

std::shared_ptr<nn::BatchNorm2d> WideResNet::bn_before_relu(const std::string& tap) const {
  for (size_t s = 0; s < blocks.size(); ++s) {
    if (tap != "stage" + std::to_string(s + 1) + ".preact") continue;
    if (s + 1 == blocks.size()) return bn1;
    return blocks[s + 1]->layer->at<WideBasicBlock>(0)->bn1;
  }
  return nullptr;
}

}  // namespace retort::models

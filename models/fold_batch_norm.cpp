// make_frozen_inference_copy: a copy of the same architecture with the teacher's state, then
// each BatchNorm that directly follows a convolution folded into it (see fold_batch_norm.h).
#include "models/fold_batch_norm.h"
#include <cmath>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "models/resnet.h"
#include "models/vit.h"
#include "models/wrn.h"

namespace retort::models {

// ---------------------------------------------------------------- the fused forward pieces
Tensor folded_conv(const nn::Conv2d& conv, const Tensor& x, const Tensor& residual, bool relu) {
  RETORT_CHECK(!conv.is_training(),
               "a convolution with a folded BatchNorm (models/fold_batch_norm.h) runs in eval mode only: this "
               "frozen inference copy was switched to train()");
  RETORT_CHECK(conv.bias.defined(), "folded_conv: Conv2d({}, {}) has no folded bias", conv.in_channels,
               conv.out_channels);
  Conv2dOptions o;
  o.stride = {conv.spec.stride, conv.spec.stride};
  o.padding = {conv.spec.padding, conv.spec.padding};
  o.dilation = {conv.spec.dilation, conv.spec.dilation};
  o.groups = conv.spec.groups;
  return conv2d_bias_act(x, conv.weight, conv.bias, residual, relu, o);
}

Tensor folded_conv_add_relu(const nn::Conv2d& conv, const Tensor& x, const Tensor& residual, Tensor* preact) {
  if (!preact) return folded_conv(conv, x, residual, true);
  *preact = folded_conv(conv, x, residual, false);
  return relu(*preact);
}

// ---------------------------------------------------------------- folding
void fold_batch_norm_into(nn::Conv2d& conv, const nn::BatchNorm2d& bn) {
  RETORT_CHECK(conv.out_channels == bn.channels, "fold_batch_norm_into: Conv2d has {} output channels, BatchNorm2d {}",
               conv.out_channels, bn.channels);
  NoGradGuard no_grad;
  const DType dtype = conv.weight.dtype();
  auto f64 = [](const Tensor& t) { return t.detach().to(DType::f64); };
  const Tensor s = f64(bn.weight) / sqrt(f64(bn.running_var) + bn.eps);
  const Tensor w = f64(conv.weight) * s.reshape({conv.out_channels, 1, 1, 1});
  Tensor b = f64(bn.bias) - f64(bn.running_mean) * s;
  if (conv.bias.defined()) b = b + f64(conv.bias) * s;
  conv.weight.copy_(w);
  if (conv.bias.defined())
    conv.bias.copy_(b);
  else
    conv.bias = b.to(dtype);  // the slot registered as "bias" is now defined
}

namespace {

void fold_downsample(const std::shared_ptr<nn::Sequential>& downsample) {
  if (downsample) fold_batch_norm_into(*downsample->at<nn::Conv2d>(0), *downsample->at<nn::BatchNorm2d>(1));
}

void fold_block(BasicBlock& b) {
  fold_batch_norm_into(*b.conv1, *b.bn1);
  fold_batch_norm_into(*b.conv2, *b.bn2);
  fold_downsample(b.downsample);
  b.bn_folded = true;
}

void fold_block(Bottleneck& b) {
  fold_batch_norm_into(*b.conv1, *b.bn1);
  fold_batch_norm_into(*b.conv2, *b.bn2);
  fold_batch_norm_into(*b.conv3, *b.bn3);
  fold_downsample(b.downsample);
  b.bn_folded = true;
}

void fold_resnet(ResNet& net) {
  fold_batch_norm_into(*net.conv1, *net.bn1);
  net.stem_bn_folded = true;
  for (auto& layer : net.layers)
    for (size_t i = 0; i < layer->size(); ++i) {
      if (net.spec().bottleneck)
        fold_block(*layer->at<Bottleneck>(i));
      else
        fold_block(*layer->at<BasicBlock>(i));
    }
}

// Only bn2 directly follows a convolution (conv1) in a pre-activation block.
void fold_wrn(WideResNet& net) {
  for (auto& stage : net.blocks)
    for (size_t i = 0; i < stage->layer->size(); ++i) {
      WideBasicBlock& b = *stage->layer->at<WideBasicBlock>(i);
      fold_batch_norm_into(*b.conv1, *b.bn2);
      b.bn2_folded = true;
    }
}

bool already_folded(const Model& m) {
  if (auto* r = dynamic_cast<const ResNet*>(&m)) return r->stem_bn_folded;
  if (auto* w = dynamic_cast<const WideResNet*>(&m))
    return w->blocks.front()->layer->at<WideBasicBlock>(0)->bn2_folded;
  return false;
}

// ---------------------------------------------------------------- copying
// A VisionTransformer's spec and config, read back from its modules (vit.h keeps its own private).
ViTSpec vit_spec_of(const VisionTransformer& v) {
  ViTSpec s;
  s.name = v.family();
  s.dim = v.patch_embed->proj->out_channels;
  s.heads = v.blocks.front()->attn->num_heads;
  s.depth = int64_t(v.blocks.size());
  s.patch = v.patch_embed->proj->spec.kernel;
  // int64_t(dim * ratio) must give the hidden width back exactly: aim at its middle
  s.mlp_ratio = (double(v.blocks.front()->mlp->fc1->out_features) + 0.5) / double(s.dim);
  s.distilled = v.distilled();
  return s;
}

ModelConfig vit_config_of(const VisionTransformer& v) {
  ModelConfig c;
  c.in_channels = v.patch_embed->proj->in_channels;
  c.num_classes = v.head ? v.head->out_features : 0;  // 0: no classifier
  c.patch_size = v.patch_embed->proj->spec.kernel;
  c.image_size = int64_t(std::llround(std::sqrt(double(v.num_patches())))) * c.patch_size;
  c.depth = int64_t(v.blocks.size());
  c.dropout = v.blocks.front()->drop ? v.blocks.front()->drop->p : 0.0;
  return c;
}

// A new model of the same architecture (uninitialised: its state is loaded next).
std::shared_ptr<Model> same_architecture(const Model& m) {
  nn::SkipInitGuard skip;
  if (auto* r = dynamic_cast<const ResNet*>(&m)) return std::make_shared<ResNet>(r->spec(), r->config());
  if (auto* w = dynamic_cast<const WideResNet*>(&m))
    return std::make_shared<WideResNet>(w->name(), w->depth(), w->widen_factor(), w->config());
  if (auto* v = dynamic_cast<const VisionTransformer*>(&m))
    return std::make_shared<VisionTransformer>(vit_spec_of(*v), vit_config_of(*v));
  fail("make_frozen_inference_copy: {} (family '{}') is not supported (ResNet, WideResNet, VisionTransformer)",
       m.type_name(), m.family());
}

DType floating_dtype(const Model& m) {
  for (auto& [name, t] : m.state_dict())
    if (is_floating(t.dtype())) return t.dtype();
  return DType::f32;
}

// A deep copy (own storage) on m's device, in m's dtype, in eval mode, with no gradients.
std::shared_ptr<Model> frozen_copy(const Model& m) {
  std::shared_ptr<Model> copy = same_architecture(m);
  copy->set_input_adapter(m.input_adapter());  // fed as the original is
  copy->to(floating_dtype(m));
  copy->to(m.device());
  {
    NoGradGuard no_grad;
    copy->load_state_dict(m.state_dict(), /*strict=*/true);
  }
  copy->eval();
  copy->requires_grad_(false);
  return copy;
}

}  // namespace

std::shared_ptr<Model> make_frozen_inference_copy(const Model& teacher) {
  RETORT_CHECK(!already_folded(teacher),
               "make_frozen_inference_copy: this {} is already a folded inference copy; copy the original teacher",
               teacher.type_name());
  std::shared_ptr<Model> copy = frozen_copy(teacher);
  if (auto* r = dynamic_cast<ResNet*>(copy.get())) fold_resnet(*r);
  if (auto* w = dynamic_cast<WideResNet*>(copy.get())) fold_wrn(*w);
  return copy;
}

}  // namespace retort::models

// Vision Transformer (see vit.h).
#include "models/vit.h"
#include <optional>
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"

namespace retort::models {

ViTSpec vit_spec(const std::string& size, const ModelConfig& cfg) {
  ViTSpec s;
  if (size == "vit_tiny") s = {size, 192, 3};
  else if (size == "vit_small") s = {size, 384, 6};
  else if (size == "vit_base") s = {size, 768, 12};
  else fail("vit_spec: unknown ViT size '{}' (vit_tiny, vit_small, vit_base)", size);
  s.depth = cfg.depth > 0 ? cfg.depth : 12;
  s.patch = cfg.patch_size > 0 ? cfg.patch_size : (cfg.image_size >= 128 ? 16 : 4);
  return s;
}

PatchEmbed::PatchEmbed(int64_t in_channels, int64_t dim, int64_t patch, Generator& gen) {
  proj = register_module("proj", std::make_shared<nn::Conv2d>(in_channels, dim, nn::Conv2dSpec{patch, patch, 0, 1, 1, true}, gen));
}

Tensor PatchEmbed::forward(const Tensor& x) {
  return proj->forward(x).flatten(2).transpose(1, 2);  // [B, D, g, g] -> [B, g*g, D]
}

ViTBlock::ViTBlock(int64_t dim, int64_t heads, int64_t hidden, double p, Generator& gen) {
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(dim, 1e-6));
  attn = register_module("attn", std::make_shared<nn::MultiheadSelfAttention>(dim, heads, gen));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(dim, 1e-6));
  mlp = register_module("mlp", std::make_shared<nn::Mlp>(dim, hidden, dim, gen, p));
  if (p > 0) drop = register_module("drop", std::make_shared<nn::Dropout>(p, gen));
}

Tensor ViTBlock::forward(const Tensor& x) {
  Tensor a = attn->forward(norm1->forward(x));
  if (drop) a = drop->forward(a);
  Tensor h = add(x, a);
  return add(h, mlp->forward(norm2->forward(h)));
}

VisionTransformer::VisionTransformer(const ViTSpec& spec, const ModelConfig& cfg) : spec_(spec), cfg_(cfg) {
  RETORT_CHECK(cfg.in_channels > 0 && cfg.num_classes >= 0,
               "{}: in_channels must be positive and num_classes at least 0 (0: no classifier)", spec.name);
  RETORT_CHECK(spec.patch > 0 && cfg.image_size % spec.patch == 0,
               "{}: image_size {} is not a multiple of patch_size {} (set patch_size in the model config)", spec.name,
               cfg.image_size, spec.patch);
  RETORT_CHECK(spec.depth > 0, "{}: depth must be positive", spec.name);
  grid_ = cfg.image_size / spec.patch;
  cfg_.patch_size = spec.patch;  // the family defaults resolved: config() says what was built
  cfg_.depth = spec.depth;
  Generator gen(cfg.seed);
  // Layers are built without their default init: the model initialises every tensor below.
  std::optional<nn::SkipInitGuard> building(std::in_place);
  int64_t D = spec.dim;
  patch_embed = register_module("patch_embed", std::make_shared<PatchEmbed>(cfg.in_channels, D, spec.patch, gen));
  cls_token = Tensor::empty({1, 1, D});
  pos_embed = Tensor::empty({1, num_patches() + prefix_tokens(), D});
  register_parameter("cls_token", &cls_token);
  if (spec.distilled) {
    dist_token = Tensor::empty({1, 1, D});
    register_parameter("dist_token", &dist_token);
  }
  register_parameter("pos_embed", &pos_embed);
  auto block_list = register_module("blocks", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < spec.depth; ++i)
    blocks.push_back(block_list->push_back(
        std::make_shared<ViTBlock>(D, spec.heads, int64_t(double(D) * spec.mlp_ratio), cfg.dropout, gen)));
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(D, 1e-6));
  if (cfg.num_classes > 0) head = register_module("head", std::make_shared<nn::Linear>(D, cfg.num_classes, gen));
  if (spec.distilled && cfg.num_classes > 0) head_dist = register_module("head_dist", std::make_shared<nn::Linear>(D, cfg.num_classes, gen));

  // timm init_weights(''): pos_embed trunc_normal(.02), cls_token normal(1e-6), every Linear
  // trunc_normal(.02) with zero bias; convs and LayerNorms keep their defaults. The distillation
  // token: trunc_normal(.02) (timm's VisionTransformerDistilled).
  building.reset();
  patch_embed->proj->reset_parameters(gen);
  nn::trunc_normal_(pos_embed, gen, 0.0, 0.02);
  nn::normal_(cls_token, gen, 0.0, 1e-6);
  if (spec.distilled) nn::trunc_normal_(dist_token, gen, 0.0, 0.02);
  for (auto& [name, m] : named_modules())
    if (auto* l = dynamic_cast<nn::Linear*>(m)) {
      nn::trunc_normal_(l->weight, gen, 0.0, 0.02);
      if (l->bias.defined()) nn::constant_(l->bias, 0.0);
    }
}

Tensor VisionTransformer::forward(const Tensor& input, Taps* taps) {
  const Tensor x = adapted(input);  // the data's images resized / converted when the model wants others
  check_image_input(spec_.name, x, cfg_.in_channels);
  RETORT_CHECK(x.size(2) == cfg_.image_size && x.size(3) == cfg_.image_size,
               "{}: input {} does not match image_size {} (pos_embed is sized for it)", spec_.name, x.str(),
               cfg_.image_size);
  int64_t B = x.size(0);
  Tensor tokens = patch_embed->forward(x);                                 // [B, N, D]
  std::vector<Tensor> prefix{cls_token.expand({B, 1, spec_.dim})};
  if (spec_.distilled) prefix.push_back(dist_token.expand({B, 1, spec_.dim}));
  prefix.push_back(tokens);
  Tensor h = add(concat(prefix, 1), pos_embed);                            // [B, prefix + N, D]
  for (size_t i = 0; i < blocks.size(); ++i) {
    h = blocks[i]->forward(h);
    put_tap(taps, "tokens." + std::to_string(i), h);
  }
  Tensor normed = norm->forward(h);
  Tensor cls_out = normed.select(1, 0);                                    // [B, D]
  put_tap(taps, "cls", cls_out);
  put_tap(taps, "pooled", cls_out);
  if (!head) {  // no classifier: a feature extractor
    if (spec_.distilled && taps) put_tap(taps, "dist", normed.select(1, 1));
    return cls_out;
  }
  Tensor logits = head->forward(cls_out);
  if (spec_.distilled) {
    Tensor dist_out = normed.select(1, 1);
    Tensor dist_logits = head_dist->forward(dist_out);
    put_tap(taps, "dist", dist_out);
    put_tap(taps, "dist_logits", dist_logits);
    if (!is_training()) logits = mul(add(logits, dist_logits), 0.5);  // DeiT's inference: the heads' mean
  }
  put_tap(taps, "logits", logits);
  return logits;
}

std::vector<TapInfo> VisionTransformer::tap_info(const Shape& input) const {
  const Shape in = adapted(input);
  check_image_shape(spec_.name, in, cfg_.in_channels);
  RETORT_CHECK(in[2] == cfg_.image_size && in[3] == cfg_.image_size, "{}: input {} does not match image_size {}",
               spec_.name, shape_str(in), cfg_.image_size);
  int64_t B = in[0];
  std::vector<TapInfo> out;
  for (size_t i = 0; i < blocks.size(); ++i)
    out.push_back({"tokens." + std::to_string(i), {B, num_patches() + prefix_tokens(), spec_.dim}, prefix_tokens()});
  out.push_back({"cls", {B, spec_.dim}});
  out.push_back({"pooled", {B, spec_.dim}});
  if (spec_.distilled) out.push_back({"dist", {B, spec_.dim}});
  if (cfg_.num_classes == 0) return out;  // no classifier
  if (spec_.distilled) out.push_back({"dist_logits", {B, cfg_.num_classes}});
  out.push_back({"logits", {B, cfg_.num_classes}});
  return out;
}

}  // namespace retort::models

// Vision Transformer with timm's parameter names: patch_embed.proj, cls_token, pos_embed,
// blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm, head. Pre-norm
// blocks (x + attn(norm1(x)), x + mlp(norm2(x))), LayerNorm eps 1e-6, exact GELU, MLP ratio
// 4, class-token pooling. Init as timm: trunc_normal(.02) for Linear weights and pos_embed,
// zero biases, cls_token N(0, 1e-6), PyTorch default for the patch conv.
// Taps: "tokens.<i>" after block i [B, N+1, D], "cls" (final-normed CLS token [B, D]),
// "pooled" (= cls), "logits".
// Distilled (DeiT, Touvron et al. 2021, timm's VisionTransformerDistilled): a second prefix token
// dist_token [1, 1, D] after CLS (pos_embed [1, N+2, D], tokens taps [B, N+2, D]) and a second
// head head_dist on it. In training the logits are the CLS head's and the tap "dist_logits" is
// the distillation head's (what the `deit` loss reads); in evaluation the logits are the mean of
// the two heads (DeiT's inference rule), and "dist_logits" is still the second head's. Tap
// "dist" is the final-normed distillation token [B, D].
#pragma once
#include <memory>
#include <vector>
#include "engine/nn/attention.h"
#include "models/model.h"

namespace retort::models {

struct ViTSpec {
  std::string name;
  int64_t dim = 192;
  int64_t heads = 3;
  int64_t depth = 12;
  int64_t patch = 16;
  double mlp_ratio = 4.0;
  bool distilled = false;  // DeiT: a distillation token and head
};

// vit_tiny (192, 3 heads), vit_small (384, 6), vit_base (768, 12); depth and patch from cfg
// (0 = 12 blocks; patch 16 for images >= 128 px, else 4).
ViTSpec vit_spec(const std::string& size_name, const ModelConfig& cfg);

class PatchEmbed : public nn::Module {
 public:
  PatchEmbed(int64_t in_channels, int64_t dim, int64_t patch, Generator& gen);
  std::string type_name() const override { return "PatchEmbed"; }
  Tensor forward(const Tensor& x) override;  // [B, C, H, W] -> [B, N, D]
  std::shared_ptr<nn::Conv2d> proj;
};

class ViTBlock : public nn::Module {
 public:
  ViTBlock(int64_t dim, int64_t heads, int64_t hidden, double drop, Generator& gen);
  std::string type_name() const override { return "Block"; }
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::MultiheadSelfAttention> attn;
  std::shared_ptr<nn::Mlp> mlp;
  std::shared_ptr<nn::Dropout> drop;  // on the attention output (timm proj_drop); null when 0
};

class VisionTransformer : public Model {
 public:
  VisionTransformer(const ViTSpec& spec, const ModelConfig& cfg);
  const ModelConfig& config() const override { return cfg_; }
  std::string type_name() const override { return "VisionTransformer"; }
  std::string family() const override { return "vit"; }
  std::string head_name() const override { return "head"; }
  using Model::forward;
  Tensor forward(const Tensor& x, Taps* taps) override;
  std::vector<TapInfo> tap_info(const Shape& input) const override;
  int64_t num_patches() const { return grid_ * grid_; }
  int64_t prefix_tokens() const { return spec_.distilled ? 2 : 1; }  // CLS (+ the distillation token)
  bool distilled() const { return spec_.distilled; }

  std::shared_ptr<PatchEmbed> patch_embed;
  Tensor cls_token, pos_embed;  // [1, 1, D], [1, N + prefix_tokens(), D]
  Tensor dist_token;            // [1, 1, D] when distilled
  std::vector<std::shared_ptr<ViTBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
  std::shared_ptr<nn::Linear> head_dist;  // when distilled

 private:
  ViTSpec spec_;
  ModelConfig cfg_;
  int64_t grid_ = 0;  // patches per side
};

}  // namespace retort::models

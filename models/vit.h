// Vision Transformer with timm's parameter names: patch_embed.proj, cls_token, pos_embed,
// blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm, head. Pre-norm
// blocks (x + attn(norm1(x)), x + mlp(norm2(x))), LayerNorm eps 1e-6, exact GELU, MLP ratio
// 4, class-token pooling. Init as timm: trunc_normal(.02) for Linear weights and pos_embed,
// zero biases, cls_token N(0, 1e-6), PyTorch default for the patch conv.
// Taps: "tokens.<i>" after block i [B, N+1, D], "cls" (final-normed CLS token [B, D]),
// "pooled" (= cls), "logits".
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
  std::string type_name() const override { return "VisionTransformer"; }
  std::string family() const override { return "vit"; }
  std::string head_name() const override { return "head"; }
  using Model::forward;
  Tensor forward(const Tensor& x, Taps* taps) override;
  std::vector<TapInfo> tap_info(const Shape& input) const override;
  int64_t num_patches() const { return grid_ * grid_; }

  std::shared_ptr<PatchEmbed> patch_embed;
  Tensor cls_token, pos_embed;  // [1, 1, D], [1, N+1, D]
  std::vector<std::shared_ptr<ViTBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;

 private:
  ViTSpec spec_;
  ModelConfig cfg_;
  int64_t grid_ = 0;  // patches per side
};

}  // namespace retort::models

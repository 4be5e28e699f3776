// The ONNX graph of a Vision Transformer and DeiT's distilled variant, mirroring the eval-mode
// forward of models/vit.cpp: patch embedding, the prefix token(s) broadcast over the batch,
// + pos_embed, pre-norm blocks, the final LayerNorm, and the class token's head (DeiT: the mean
// of the class and distillation heads).
#include <fmt/format.h>
#include "models/onnx_families.h"
#include "models/onnx_layers.h"
#include "models/vit.h"

namespace retort::models::onnx_writer {

namespace {
// [B, C, H, W] -> [B, N, D]: the patch conv, flattened over the grid and transposed.
std::string patch_tokens(OnnxGraph& g, const PatchEmbed& embed, const std::string& images) {
  std::string grid = conv2d(g, *embed.proj, "patch_embed.proj", images);               // [B, D, g, g]
  std::string flat = g.node("Reshape", "patch_embed", {grid, g.i64_constant({0, 0, -1})});  // [B, D, N]
  return g.node("Transpose", "patch_embed", {flat}, {ints_attr("perm", {0, 2, 1})});
}

// A [1, 1, D] token parameter broadcast to [B, 1, D], B read from the images' shape.
std::string batch_token(OnnxGraph& g, const std::string& name, const Tensor& token, const std::string& images) {
  std::string batch = g.node("Shape", name, {images}, {int_attr("start", 0), int_attr("end", 1)});  // [B]
  std::string shape = g.node("Concat", name, {batch, g.i64_constant({1, token.size(2)})}, {int_attr("axis", 0)});
  return g.node("Expand", name, {g.weight(name, token), shape});
}

std::string block(OnnxGraph& g, const ViTBlock& b, const std::string& scope, const std::string& x) {
  std::string a = self_attention(g, *b.attn, scope + ".attn", layer_norm(g, *b.norm1, scope + ".norm1", x));
  std::string h = add(g, scope, x, a);
  return add(g, scope, h, mlp(g, *b.mlp, scope + ".mlp", layer_norm(g, *b.norm2, scope + ".norm2", h)));
}

// Token `index` of [B, T, D], as [B, D].
std::string token(OnnxGraph& g, const std::string& scope, const std::string& x, int64_t index) {
  return g.node("Gather", scope, {x, g.i64_scalar(index)}, {int_attr("axis", 1)});
}
}  // namespace

std::string vit_graph(OnnxGraph& g, const VisionTransformer& model, const std::string& images) {
  std::vector<std::string> sequence{batch_token(g, "cls_token", model.cls_token, images)};
  if (model.distilled()) sequence.push_back(batch_token(g, "dist_token", model.dist_token, images));
  sequence.push_back(patch_tokens(g, *model.patch_embed, images));
  std::string h = g.node("Concat", "tokens", sequence, {int_attr("axis", 1)});  // [B, prefix + N, D]
  h = add(g, "pos_embed", h, g.weight("pos_embed", model.pos_embed));
  for (size_t i = 0; i < model.blocks.size(); ++i) h = block(g, *model.blocks[i], fmt::format("blocks.{}", i), h);
  std::string normed = layer_norm(g, *model.norm, "norm", h);
  std::string logits = linear(g, *model.head, "head", token(g, "cls", normed, 0), true);
  if (!model.distilled()) return logits;
  std::string dist_logits = linear(g, *model.head_dist, "head_dist", token(g, "dist", normed, 1), true);
  return g.node("Mul", "logits", {add(g, "logits", logits, dist_logits), g.f32_scalar(0.5f)});  // DeiT's inference
}

}  // namespace retort::models::onnx_writer

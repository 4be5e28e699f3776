// ViT: timm names, parameter count of vit_tiny_patch16_224, forward and tap shapes,
// token/cls tap semantics, gradcheck of a 1-block dim-4 ViT in f64.
#include <set>
#include "engine/nn/nn.h"
#include "helpers.h"
#include "models/registry.h"
#include "models/vit.h"
#include "nn/module_gradcheck.h"

using namespace retort;
using namespace retort::models;
using retort::test::gradcheck;
using retort::test::random_tensor;

TEST_CASE("vit: timm names and the vit_tiny_patch16_224 parameter count") {
  nn::SkipInitGuard skip;
  ModelConfig cfg;
  cfg.num_classes = 1000;
  auto vit = create_model("vit_tiny_patch16_224", cfg);
  std::set<std::string> names;
  for (auto& [n, t] : vit->state_dict()) names.insert(n);
  for (auto n : {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight",
                 "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight", "blocks.0.norm2.bias",
                 "blocks.0.mlp.fc1.weight", "blocks.11.mlp.fc2.bias", "norm.weight", "head.weight", "head.bias"})
    CHECK_MESSAGE(names.count(n), n);
  CHECK(vit->find_tensor("pos_embed")->shape() == Shape{1, 197, 192});
  CHECK(vit->find_tensor("blocks.0.attn.qkv.weight")->shape() == Shape{576, 192});
  CHECK(vit->find_tensor("patch_embed.proj.weight")->shape() == Shape{192, 3, 16, 16});
  // patch_embed 3*16*16*192 + 192 = 147648; cls 192; pos 197*192 = 37824;
  // per block: norm1 384 + qkv 110592+576 + proj 36864+192 + norm2 384 + fc1 147456+768
  //            + fc2 147456+192 = 444864, x12 = 5338368; norm 384; head 192000+1000.
  CHECK(384 + 111168 + 37056 + 384 + 148224 + 147648 == 444864);
  CHECK(147648 + 192 + 37824 + 12 * 444864 + 384 + 193000 == 5717416);
  CHECK(vit->num_parameters() == 5717416);
  // Sizes: small 384/6 heads, base 768/12 heads.
  auto small = create_model("vit_small_patch16_224", cfg), base = create_model("vit_base_patch16_224", cfg);
  CHECK(small->find_tensor("blocks.0.attn.qkv.weight")->shape() == Shape{1152, 384});
  CHECK(dynamic_cast<VisionTransformer&>(*small).blocks[0]->attn->num_heads == 6);
  CHECK(dynamic_cast<VisionTransformer&>(*base).blocks[0]->attn->num_heads == 12);
  CHECK(base->num_parameters() == 86567656);  // timm vit_base_patch16_224 (same formula with D=768)
}

TEST_CASE("vit: forward output and tap shapes, cls = pooled = normed token 0") {
  ModelConfig cfg;
  cfg.in_channels = 1;
  cfg.num_classes = 10;
  cfg.image_size = 28;  // default patch 4 -> 7x7 = 49 patches
  cfg.depth = 2;
  auto vit = create_model("vit_tiny", cfg);
  auto& v = dynamic_cast<VisionTransformer&>(*vit);
  CHECK(v.num_patches() == 49);
  Taps taps;
  Tensor x = random_tensor({2, 1, 28, 28}, 3, -1, 1, DType::f32);
  Tensor logits = vit->forward(x, &taps);
  CHECK(logits.shape() == Shape{2, 10});
  auto info = vit->tap_info({2, 1, 28, 28});
  REQUIRE(info.size() == 5);
  CHECK(info[0].name == "tokens.0");
  CHECK(info[1].shape == Shape{2, 50, 192});
  CHECK(taps.size() == info.size());
  for (auto& t : info) {
    INFO(t.name);
    REQUIRE(taps.count(t.name));
    CHECK(taps[t.name].shape() == t.shape);
  }
  CHECK(taps["cls"].to_vector() == taps["pooled"].to_vector());
  test::check_close(taps["cls"], v.norm->forward(taps["tokens.1"].select(1, 0)).to_vector(), 1e-6);
  test::check_close(logits, v.head->forward(taps["cls"]).to_vector(), 1e-6);
  CHECK_THROWS_WITH_AS(vit->forward(Tensor::ones({1, 1, 32, 32})), doctest::Contains("image_size 28"), Error);
  cfg.image_size = 30;
  CHECK_THROWS_WITH_AS(create_model("vit_tiny", cfg), doctest::Contains("not a multiple of patch_size"), Error);
}

TEST_CASE("vit: gradcheck of a 1-block dim-4 ViT in f64") {
  ViTSpec spec{"vit_micro", 4, 2, 1, 2, 2.0};
  ModelConfig cfg;
  cfg.in_channels = 1;
  cfg.num_classes = 3;
  cfg.image_size = 4;
  VisionTransformer vit(spec, cfg);
  vit.to(DType::f64);
  // Larger weights than trunc_normal(.02) so attention is far from uniform.
  Generator gen(5);
  for (auto& [n, p] : vit.named_parameters())
    if (n.find("norm") == std::string::npos) nn::normal_(p, gen, 0.0, 0.5);
  Tensor x = random_tensor({1, 1, 4, 4}, 6);
  gradcheck([&](const std::vector<Tensor>& in) { return vit(in[0]); }, {x});
  test::module_param_gradcheck(vit, [&] { return vit(x); });
}

// Registry: every listed name builds, list_models reports counts and taps, unknown names
// suggest the nearest valid one.
#include "helpers.h"
#include "engine/nn/init.h"
#include "models/registry.h"

using namespace retort;
using namespace retort::models;

TEST_CASE("registry: every name builds with 1 input channel and lists counts and taps") {
  auto infos = list_models();
  CHECK(infos.size() == model_names().size());
  std::map<std::string, ModelInfo> by_name;
  for (auto& i : infos) by_name[i.name] = i;
  for (auto n : {"resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4",
                 "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "wrn_40_4", "resnet18", "resnet34",
                 "resnet50", "vit_tiny", "vit_small", "vit_base"})
    CHECK_MESSAGE(by_name.count(n), n);
  CHECK(by_name["resnet20"].family == "resnet-cifar");
  CHECK(by_name["wrn_40_2"].family == "wrn");
  CHECK(by_name["resnet50"].family == "resnet-imagenet");
  CHECK(by_name["vit_small"].family == "vit");
  // resnet20, 1 input channel, 10 classes: 278324 - 288 (conv1 has 1 input channel not 3)
  // - 5850 (fc 64*10+10 instead of 64*100+100).
  CHECK(by_name["resnet20"].num_parameters == 278324 - 288 - 5850);
  CHECK(by_name["resnet20"].input == Shape{1, 1, 28, 28});
  CHECK(by_name["resnet20"].taps.back().name == "logits");
  CHECK(by_name["vit_tiny"].taps.size() == 12 + 3);
  for (auto& i : infos) CHECK(i.num_parameters > 0);
}

TEST_CASE("registry: create_model options and unknown names") {
  nn::SkipInitGuard skip;
  ModelConfig cfg;
  cfg.in_channels = 1;
  cfg.num_classes = 7;
  auto m = create_model("resnet32x4", cfg);
  CHECK(m->find_tensor("conv1.weight")->shape() == Shape{32, 1, 3, 3});
  CHECK(m->find_tensor("fc.weight")->shape() == Shape{7, 256});
  CHECK(create_model("wrn_22_3", cfg)->find_tensor("fc.weight")->shape() == Shape{7, 192});  // any 6n+4 depth
  CHECK_THROWS_WITH_AS(create_model("wrn_18_2", cfg), doctest::Contains("6n+4"), Error);
  CHECK_THROWS_WITH_AS(create_model("resnet21", cfg), doctest::Contains("did you mean 'resnet20'"), Error);
  CHECK_THROWS_WITH_AS(create_model("vit_tiny_patch16", cfg), doctest::Contains("did you mean 'vit_tiny'"), Error);
  CHECK(nearest_model_name("wrn40_2") == "wrn_40_2");
  CHECK(nearest_model_name("ResNet50") == "resnet50");
}

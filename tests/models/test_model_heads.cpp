// A model's classifier for a new task (models/import_weights.h HeadPolicy): a model built with
// num_classes = 0 has none (its forward is its pooled feature); loading with head = reset leaves
// the file's classifier out and keeps the model's own seeded head, with drop the model has none;
// keep (the default) refuses a classifier of another size and says how to reset it.
#include <doctest/doctest.h>
#include "helpers.h"
#include "models/import_weights.h"
#include "models/registry.h"
#include "tests/train/recipe_test_util.h"

using namespace retort;
using namespace retort::models;

namespace {

StoredState state_of(const Model& m) {
  StoredState s;
  for (auto& [n, t] : m.state_dict()) s.tensors[n] = t.clone();
  return s;
}

ModelConfig config(int64_t classes, uint64_t seed, int64_t image = 32, int64_t channels = 3) {
  ModelConfig c;
  c.num_classes = classes;
  c.seed = seed;
  c.image_size = image;
  c.in_channels = channels;
  c.patch_size = 8;  // ViT: a 4x4 grid
  c.depth = 2;
  return c;
}

std::map<std::string, std::vector<double>> values(const Model& m) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [n, t] : m.state_dict()) out[n] = t.to_vector();
  return out;
}

}  // namespace

TEST_CASE("heads: a model without a classifier returns its pooled feature and has no logits tap") {
  for (const char* arch : {"resnet8", "wrn_16_2", "vit_tiny", "deit_tiny_distilled"}) {
    INFO(arch);
    auto headless = create_model(arch, config(0, 1));
    auto full = create_model(arch, config(10, 1));
    CHECK_FALSE(headless->has_classifier());
    CHECK(full->has_classifier());
    CHECK(headless->num_parameters() < full->num_parameters());
    headless->eval();
    const Tensor x = test::random_tensor({2, 3, 32, 32}, 7, -1.0, 1.0, DType::f32);
    Taps taps;
    const Tensor out = headless->forward(x, &taps);
    CHECK(taps.count("logits") == 0);
    REQUIRE(taps.count("pooled") == 1);
    CHECK(out.shape() == taps.at("pooled").shape());
    CHECK(test::same_bits(out, taps.at("pooled")));
    for (const auto& t : headless->tap_info({2, 3, 32, 32})) CHECK(t.name.find("logits") == std::string::npos);
    // The body is the same network: with the full model's body loaded, the features agree to the bit.
    headless->load_state_dict(full->state_dict(), /*strict=*/false);
    const Tensor features = headless->forward(x, nullptr);
    full->eval();
    Taps full_taps;
    full->forward(x, &full_taps);
    CHECK(test::same_bits(full_taps.at("pooled"), features));
  }
}

TEST_CASE("heads: reset loads the body and keeps the model's own seeded head; the report says what was left out") {
  auto pretrained = create_model("resnet8", config(5, 11));  // another task: 5 classes
  const StoredState file = state_of(*pretrained);
  auto fresh = create_model("resnet8", config(10, 22));
  const auto fresh_values = values(*fresh);
  auto model = create_model("resnet8", config(10, 22));

  const std::string refused = test::error_of([&] { load_weights(*model, file, "pre.safetensors"); });
  CHECK(refused.find("'fc.weight': shape [5, 64] in the file but [10, 64]") != std::string::npos);
  CHECK(refused.find("head = \"reset\"") != std::string::npos);
  CHECK(values(*model) == fresh_values);  // a refused load changes nothing

  ImportOptions reset;
  reset.head = HeadPolicy::reset;
  ImportReport r = load_weights(*model, file, "pre.safetensors", reset);
  const auto loaded = values(*model);
  const auto pre = values(*pretrained);
  for (const auto& [name, v] : loaded) {
    INFO(name);
    if (name.rfind("fc.", 0) == 0) CHECK(v == fresh_values.at(name));  // the seeded new head
    else CHECK(v == pre.at(name));                                       // the pretrained body
  }
  CHECK(r.head_left == std::vector<std::string>{"fc.bias [5]", "fc.weight [5, 64]"});
  CHECK(r.missing.empty());
  CHECK(r.loaded == int64_t(file.tensors.size()) - 2);
  std::string lines;
  for (const auto& l : r.lines()) lines += l + "\n";
  CHECK(lines.find("head reset: the file's classifier (fc.bias [5], fc.weight [5, 64]) is not loaded; the model's own "
                   "10-class head keeps its seeded initialisation") != std::string::npos);
}

TEST_CASE("heads: drop loads the body into a model without a classifier, and needs such a model") {
  auto pretrained = create_model("vit_tiny", config(5, 3));
  const StoredState file = state_of(*pretrained);
  ImportOptions drop;
  drop.head = HeadPolicy::drop;
  auto headless = create_model("vit_tiny", config(0, 4));
  ImportReport r = load_weights(*headless, file, "vit.safetensors", drop);
  CHECK(r.head_left == std::vector<std::string>{"head.bias [5]", "head.weight [5, 192]"});
  CHECK(r.head_note.find("head dropped") != std::string::npos);
  const auto pre = values(*pretrained);
  for (const auto& [name, v] : values(*headless)) CHECK(v == pre.at(name));
  auto with_head = create_model("vit_tiny", config(10, 4));
  CHECK(test::error_of([&] { load_weights(*with_head, file, "vit.safetensors", drop); })
            .find("head = \"drop\" needs a model built without a classifier") != std::string::npos);
  // A distilled ViT's second head is a classifier too.
  auto deit = create_model("deit_tiny_distilled", config(5, 5));
  auto deit_new = create_model("deit_tiny_distilled", config(7, 6));
  ImportOptions reset;
  reset.head = HeadPolicy::reset;
  CHECK(load_weights(*deit_new, state_of(*deit), "deit.safetensors", reset).head_left.size() == 4);
  CHECK(parse_head_policy("reset") == HeadPolicy::reset);
  CHECK(test::error_of([] { parse_head_policy("replace"); }).find("keep") != std::string::npos);
}

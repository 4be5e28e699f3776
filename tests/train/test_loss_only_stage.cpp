// A stage with trainable = "none": the model stays as it is (weights and BatchNorm statistics),
// only the loss terms' own parts train; their final state is kept in the run directory
// (models/<stage>.losses.safetensors) and in the stage cache, where a later stage's term reads
// it (transfer::EarlierLossState, e.g. FT's paraphraser). A stage that would train nothing is
// refused before anything runs.
#include <doctest/doctest.h>
#include <filesystem>
#include "recipe_test_util.h"
#include "train/recipe.h"
#include "train/recipe_models.h"
#include "train/runner.h"

using namespace retort;
using retort::test::error_of;
using retort::test::TempDir;
using retort::test::weights_of;

namespace {
std::string recipe_text(const std::string& losses) {
  return R"(
[run]
name = "loss_only"
seed = 3
device = "cpu"
[data]
dataset = "fashion-mnist"
labelled_per_class = 4
[models.teacher]
arch = "resnet8"
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 8
[[stages]]
name = "regress"
train = "student"
trainable = "none"
teachers = ["teacher"]
epochs = 1
batch_size = 8
optimizer = { type = "sgd", lr = 0.1, momentum = 0.9 }
losses = )" + losses + "\n";
}
}  // namespace

TEST_CASE("loss-only stage: the student stays bit-identical, the loss's regressor trains and is kept") {
  const Recipe recipe = parse_recipe(recipe_text("[ { name = \"fitnet\", teacher = \"teacher\" } ]"), "lo.toml");
  auto fresh = build_recipe_model(recipe, "student", 10, Device::cpu(), [](const std::string&) {});
  TempDir dir;
  RunOptions o;
  o.quiet = true;
  o.out_dir = (dir.path / "run").string();
  o.stage_cache_dir = (dir.path / "cache").string();
  o.max_batches_per_epoch = 3;
  REQUIRE(run_recipe(recipe, o).completed);
  const auto after = weights_of(dir.path / "run/models/student.safetensors");
  REQUIRE(after.size() == fresh->state_dict().size());
  for (auto& [name, t] : fresh->state_dict()) {
    INFO(name);
    CHECK(after.at(name) == t.to_vector());  // weights and running statistics untouched
  }
  // The regressor's trained state: in the run directory and in the stage cache's entry.
  const auto state = weights_of(dir.path / "run/models/regress.losses.safetensors");
  REQUIRE_FALSE(state.empty());
  for (const auto& [name, v] : state) CHECK_MESSAGE(name.rfind("loss0.regressor.", 0) == 0, name);
  bool cached = false;
  for (const auto& e : std::filesystem::recursive_directory_iterator((dir.path / "cache")))
    if (e.path().filename() == "losses.safetensors") {
      CHECK(weights_of(e.path()) == state);
      cached = true;
    }
  CHECK(cached);
}

TEST_CASE("loss-only stage: refused when no loss term has parts of its own to train") {
  const std::string msg = error_of([] {
    const Recipe recipe = parse_recipe(recipe_text("[ { name = \"ce\" } ]"), "lo.toml");
    TempDir dir;
    RunOptions o;
    o.quiet = true;
    o.out_dir = (dir.path / "run").string();
    run_recipe(recipe, o);
  });
  CHECK(msg.find("stage 'regress' has trainable = \"none\" but none of its loss terms has parameters of its own")
        != std::string::npos);
  CHECK(msg.find("lo.toml:") != std::string::npos);
}

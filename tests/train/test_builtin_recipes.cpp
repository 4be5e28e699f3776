// Every built-in recipe (recipes/*.toml) loads, validates and runs end to end as written: each
// stage for two batches of 16 per epoch (and two test batches) on a 600-image slice of Fashion-MNIST,
// writing summary.json with one result per stage. Catches a recipe that a change to the parser,
// the losses or the models broke, long before someone runs it for an hour.
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "train/catalog.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "tests/train/recipe_test_util.h"
#include "transfer/loss_term.h"

using namespace retort;

namespace {
// The built-in recipes whose name starts (few_label) or does not start with "fmnist_few_".
std::vector<RecipeInfo> builtin_recipes(bool few_label) {
  std::vector<RecipeInfo> out;
  for (const RecipeInfo& info : list_recipes(builtin_recipe_dir()))
    if ((info.name.rfind("fmnist_few_", 0) == 0) == few_label) out.push_back(info);
  return out;
}

// Loads each recipe (as written, then shrunk by overrides), runs it and checks its summary.
void run_each(const std::vector<RecipeInfo>& recipes) {
  for (const RecipeInfo& info : recipes) {
    CAPTURE(info.name);
    CHECK_FALSE(info.description.empty());  // `retort list recipes` shows the first comment line
    const Recipe as_written = load_recipe(info.path.string());
    // A slice of the training set keeps the teacher-feature caches and the pool small; the
    // few-label recipes' 100 labels per class become 5 so the slice still has a pool.
    std::vector<std::string> overrides = {"data.train_subset=600", "run.device=cpu"};
    if (as_written.data.labelled_per_class > 0) overrides.push_back("data.labelled_per_class=5");
    for (size_t i = 0; i < as_written.stages.size(); ++i)
      overrides.push_back("stages." + std::to_string(i) + ".batch_size=16");
    const Recipe recipe = load_recipe(info.path.string(), overrides);
    check_recipe_files(recipe);

    test::TempDir dir;
    RunOptions options;
    options.out_dir = (dir.path / "run").string();
    options.quiet = true;
    options.max_batches_per_epoch = 2;
    const RunResult result = run_recipe(recipe, options);
    CHECK(result.completed);

    std::ifstream in(dir.path / "run" / "summary.json");
    REQUIRE(in.good());
    const nlohmann::json summary = nlohmann::json::parse(in);
    CHECK(summary.at("status") == "finished");
    std::vector<std::string> stages_reported;
    for (const auto& row : summary.at("results")) {
      const std::string stage = row.at("stage");
      if (stages_reported.empty() || stages_reported.back() != stage) stages_reported.push_back(stage);
      const double top1 = row.at("test_top1");
      CHECK(top1 >= 0.0);
      CHECK(top1 <= 100.0);
    }
    std::vector<std::string> stages_written;
    for (const StageSpec& st : recipe.stages) stages_written.push_back(st.name);
    CHECK(stages_reported == stages_written);
  }
}
}  // namespace

// Two cases so ctest runs them side by side. Each regime has 8 recipes (one per method and the
// task-oriented/agnostic pair); fewer means the recipe directory was not found.
TEST_CASE("built-in recipes: the few-label ones load, validate and run every stage (two batches of 16)") {
  const auto recipes = builtin_recipes(true);
  REQUIRE(recipes.size() >= 8);
  run_each(recipes);
}

TEST_CASE("built-in recipes: the full-data ones load, validate and run every stage (two batches of 16)") {
  const auto recipes = builtin_recipes(false);
  REQUIRE(recipes.size() >= 8);
  run_each(recipes);
}

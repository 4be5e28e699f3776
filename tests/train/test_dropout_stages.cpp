// A model with dropout trained by two stages in a row: the second stage's masks continue the
// Dropout generators where the first stage left them. Two ways of skipping the first stage must
// keep that: reusing it from the stage cache, and resuming a run that finished it. Both must
// give bit-identical weights to a run that trained both stages itself (CPU).
#include <doctest/doctest.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include "train/recipe.h"
#include "train/runner.h"
#include "tests/train/recipe_test_util.h"
#include "transfer/loss_term.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
const char* kTwoDropoutStages = R"(
[run]
name = "dropout_stages"
seed = 5
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 6
workers = 2

[models.student]
arch = "vit_tiny"
options = { patch_size = 7, depth = 1, dropout = 0.3 }

[[stages]]
name = "first"
train = "student"
data = "labelled"
epochs = 1
batch_size = 12
optimizer = { type = "adamw", lr = 1e-3 }

[[stages]]
name = "second"
train = "student"
data = "labelled"
epochs = 1
batch_size = 4
optimizer = { type = "adamw", lr = 1e-3 }
)";

// Quiet runs of at most 10 steps per stage and 10 x 256 test images per evaluation.
RunOptions short_run() {
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 10;
  return o;
}

}  // namespace

TEST_CASE("stage cache: a reused stage restores its Dropout generators, so the next stage matches") {
  test::TempDir tmp;
  const Recipe both = parse_recipe(kTwoDropoutStages, "dropout_stages.toml");
  RunOptions o = short_run();

  o.out_dir = (tmp.path / "uncached").string();
  const RunResult uncached = run_recipe(both, o);
  REQUIRE(uncached.completed);

  // The cache learns stage "first" from a run that has only that stage; the run with both
  // stages then reuses it and trains "second" itself.
  o.stage_cache_dir = (tmp.path / "stage_cache").string();
  Recipe first_only = both;
  first_only.stages.pop_back();
  o.out_dir = (tmp.path / "first_only").string();
  REQUIRE(run_recipe(first_only, o).completed);
  CHECK(test::cache_entries(tmp.path / "stage_cache") == 1);
  o.out_dir = (tmp.path / "cached").string();
  const RunResult cached = run_recipe(both, o);
  REQUIRE(cached.completed);
  CHECK(test::cache_entries(tmp.path / "stage_cache") == 2);  // "first" reused, "second" trained and stored

  test::check_same_weights(uncached.run_dir, cached.run_dir, "student");
  CHECK(cached.summary["results"][1]["test_top1"] == uncached.summary["results"][1]["test_top1"]);
}

TEST_CASE("runner: a resume that skips a finished stage restores its Dropout generators") {
  test::TempDir tmp;
  const Recipe both = parse_recipe(kTwoDropoutStages, "dropout_stages.toml");
  RunOptions o = short_run();
  o.out_dir = (tmp.path / "uninterrupted").string();
  const RunResult uninterrupted = run_recipe(both, o);
  REQUIRE(uninterrupted.completed);

  // 60 labelled images: "first" takes 5 steps (batch 12) and finishes; "second" (batch 4: 15
  // steps, cut to 10; one checkpoint at its epoch's end) is killed at its step 7, before any
  // checkpoint of it. The resume loads "first"'s result from models/student.safetensors and trains
  // "second" from its start.
  o.out_dir = (tmp.path / "killed").string();
  o.stop_after_steps = 7;
  const RunResult killed = run_recipe(both, o);
  REQUIRE_FALSE(killed.completed);
  const auto recorded = nlohmann::json::parse(test::read_text(fs::path(killed.run_dir) / "summary.json"))["results"];
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0]["stage"] == "first");
  o.stop_after_steps = 0;
  o.resume = true;
  const RunResult resumed = run_recipe(both, o);
  REQUIRE(resumed.completed);

  test::check_same_weights(uninterrupted.run_dir, resumed.run_dir, "student");
}

// A run under bad input, interrupts and damage (issue 18): a resume under a changed recipe is
// refused (or recorded when allowed), a recipe that cannot run fails before its directory
// exists, a run directory has one writer, SIGINT stops after a step with a checkpoint and the
// run resumes to the same weights, and damaged or half-written files are found or repaired.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/device.h"
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "tests/train/recipe_test_util.h"
#include "train/interrupt.h"
#include "train/recipe.h"
#include "train/run_dir.h"
#include "train/runner.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
const char* kRecipe = R"(
[run]
name = "safety"
seed = 5
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 4
workers = 0

[models.teacher]
arch = "resnet8"

[models.student]
arch = "resnet8"

[[stages]]
name = "teacher"
train = "teacher"
epochs = 2
batch_size = 8

[[stages]]
name = "kd"
train = "student"
teachers = ["teacher"]
epochs = 1
batch_size = 8
losses = [ { name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 } ]
)";

RunOptions quick(const fs::path& out) {
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 3;
  o.out_dir = out.string();
  return o;
}

nlohmann::json summary_of(const fs::path& run) {
  std::ifstream in(run / "summary.json");
  return nlohmann::json::parse(in);
}
}  // namespace

TEST_CASE("run safety: a resume under a changed recipe is refused, naming what changed") {
  test::TempDir tmp;
  const fs::path out = tmp.path / "run";
  RunOptions o = quick(out);
  o.stop_after_steps = 2;
  o.checkpoint_every_steps = 1;
  CHECK_FALSE(run_recipe(parse_recipe(kRecipe, "safety.toml"), o).completed);
  o.stop_after_steps = 0;
  o.resume = true;
  const Recipe changed = parse_recipe(kRecipe, "safety.toml", {"stages.0.epochs=3", "stages.1.optimizer.lr=0.2"});
  const std::string e = test::error_of([&] { run_recipe(changed, o); });
  CHECK(e.find("with a different recipe") != std::string::npos);
  CHECK(e.find("stages[0].epochs: 2 -> 3") != std::string::npos);
  CHECK(e.find("stages[1].optimizer: { type = \"sgd\", lr = 0.05") != std::string::npos);
  CHECK(e.find("--allow-recipe-change") != std::string::npos);
  // Nothing changed on disk: resolved.toml still holds the first recipe.
  CHECK(parse_recipe(test::read_text(out / "resolved.toml"), "r.toml") == parse_recipe(kRecipe, "safety.toml"));

  // Allowed: the run finishes and summary.json records the change and where it took effect.
  o.allow_recipe_change = true;
  REQUIRE(run_recipe(changed, o).completed);
  const auto changes = summary_of(out)["recipe_changes"];
  REQUIRE(changes.size() == 1);
  CHECK(changes[0]["changes"].size() == 2);
  CHECK(changes[0]["took_effect"]["stage"] == "teacher");
  CHECK(changes[0]["took_effect"]["step"] == 2);
  CHECK(parse_recipe(test::read_text(out / "resolved.toml"), "r.toml") == changed);
}

TEST_CASE("run safety: a recipe that cannot run fails before its run directory exists") {
  test::TempDir tmp;
  const fs::path out = tmp.path / "run";
  // A stage with no training images: val_size holds out every training image.
  const Recipe empty = parse_recipe(kRecipe, "safety.toml", {"data.val_size=60000", "data.labelled_per_class=0"});
  CHECK(test::error_of([&] { run_recipe(empty, quick(out)); }).find("stage 'teacher' has no training images") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(out));
  // A stage cache that is a file.
  RunOptions o = quick(out);
  o.stage_cache_dir = tmp.write("not_a_dir", "x");
  CHECK(test::error_of([&] { run_recipe(parse_recipe(kRecipe, "safety.toml"), o); })
            .find("--stage-cache '" + o.stage_cache_dir + "' exists and is not a directory") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  // Checks of the recipe itself, at parse time: an unknown architecture, a loss parameter out of
  // range in the last stage, a learning rate that is not finite.
  CHECK(test::error_of([] { parse_recipe(kRecipe, "s.toml", {"models.student.arch=resnet9"}); })
            .find("unknown arch 'resnet9' in [models.student]; did you mean 'resnet8'?") != std::string::npos);
  CHECK(test::error_of([] { parse_recipe(kRecipe, "s.toml", {"stages.1.losses.1.T=0"}); })
            .find("key 'T' in [stages.losses.kd] must be positive, got integer 0") != std::string::npos);
  CHECK(test::error_of([] { parse_recipe(kRecipe, "s.toml", {"stages.0.optimizer.lr=inf"}); })
            .find("key 'lr' in [stages.optimizer] must be a finite number, got number inf") != std::string::npos);
}

TEST_CASE("run safety: a run directory has one writer; a second is refused with the holder's pid") {
  test::TempDir tmp;
  const Recipe recipe = parse_recipe(kRecipe, "safety.toml");
  RunDir first = RunDir::create(recipe, (tmp.path / "run").string());
  const std::string e = test::error_of([&] { RunDir::open(recipe, (tmp.path / "run").string()); });
  CHECK(e.find("is in use by process " + std::to_string(::getpid())) != std::string::npos);
}

TEST_CASE("run safety: SIGINT stops after the step with a checkpoint; the resume gives the same weights") {
  test::TempDir tmp;
  const Recipe recipe = parse_recipe(kRecipe, "safety.toml");
  const fs::path whole = tmp.path / "whole", cut = tmp.path / "cut";
  REQUIRE(run_recipe(recipe, quick(whole)).completed);

  RunOptions o = quick(cut);
  o.raise_signal_after_steps = 4;  // in the teacher's second epoch
  o.raise_signal = SIGINT;
  try {
    run_recipe(recipe, o);
    FAIL("the run was not interrupted");
  } catch (const Interrupted& e) {
    CHECK(e.signal == SIGINT);
    CHECK(std::string(e.what()) == "SIGINT during stage 'teacher' after step 4 (checkpoint written)");
  }
  CHECK(summary_of(cut)["status"] == "interrupted: SIGINT during stage 'teacher' after step 4 (checkpoint written)");
  CHECK(fs::exists(cut / "checkpoints" / "teacher.ckpt.safetensors"));
  o.raise_signal_after_steps = 0;
  o.resume = true;
  REQUIRE(run_recipe(recipe, o).completed);
  for (const char* model : {"teacher", "student"}) CHECK(test::check_same_weights(whole, cut, model) > 10);
}

TEST_CASE("run safety: damaged and half-written files are found or repaired") {
  test::TempDir tmp;
  const Recipe recipe = parse_recipe(kRecipe, "safety.toml");
  const fs::path out = tmp.path / "run";
  RunOptions o = quick(out);
  o.stop_after_steps = 4;
  o.checkpoint_every_steps = 2;
  CHECK_FALSE(run_recipe(recipe, o).completed);
  o.stop_after_steps = 0;
  o.resume = true;

  // A flipped bit in the checkpoint's weights: the resume names the file and the tensor.
  const fs::path ckpt = out / "checkpoints" / "teacher.ckpt.safetensors";
  std::string bytes = test::read_text(ckpt);
  bytes[bytes.size() - 3] ^= 0x10;
  std::ofstream(ckpt, std::ios::binary) << bytes;
  const std::string e = test::error_of([&] { run_recipe(recipe, o); });
  CHECK(e.find(ckpt.string() + ": byte") != std::string::npos);
  CHECK(e.find("does not match the checksum stored when it was written") != std::string::npos);
  bytes[bytes.size() - 3] ^= 0x10;
  std::ofstream(ckpt, std::ios::binary) << bytes;

  // A temporary file a killed write left, and a partial last line of metrics.jsonl.
  std::ofstream(out / "checkpoints" / "kd.ckpt.safetensors.tmp.99999") << "half";
  std::ofstream(out / "metrics.jsonl", std::ios::app) << "{\"stage\": \"tea";
  REQUIRE(run_recipe(recipe, o).completed);
  CHECK_FALSE(fs::exists(out / "checkpoints" / "kd.ckpt.safetensors.tmp.99999"));
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  int rows = 0;
  while (std::getline(metrics, line)) {
    CHECK_NOTHROW(nlohmann::json::parse(line));
    ++rows;
  }
  CHECK(rows == 3);  // teacher epochs 1 and 2, kd epoch 1
}

TEST_CASE("run safety: device names are read whole") {
  CHECK_THROWS_WITH_AS(resolve_device("cuda:1x"), doctest::Contains("unknown device 'cuda:1x'"), Error);
  CHECK_THROWS_WITH_AS(resolve_device("cuda:"), doctest::Contains("unknown device 'cuda:'"), Error);
  CHECK_THROWS_WITH_AS(resolve_device("cuda:-1"), doctest::Contains("cuda:-1"), Error);
}

// Run directory: layout, resolved.toml, metrics.jsonl lines and the atomic summary.json.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include "recipe_test_util.h"
#include "train/run_dir.h"

using namespace retort;
using retort::test::read_text;
using retort::test::TempDir;

namespace {
Recipe small_recipe(const std::string& out_dir) {
  return parse_recipe("[run]\nname = \"tiny\"\n[models.m]\narch = \"resnet8\"\n[[stages]]\nname = \"fit\"\ntrain = "
                      "\"m\"\nepochs = 2\n",
                      "tiny.toml", {"run.out_dir=\"" + out_dir + "\""});
}
}  // namespace

TEST_CASE("run dir: created under out_dir with resolved.toml and a running summary") {
  TempDir tmp;
  const Recipe recipe = small_recipe((tmp.path / "runs").string());
  RunDir run = RunDir::create(recipe);
  const std::string dirname = run.path().filename().string();
  CHECK(run.path().parent_path() == tmp.path / "runs");
  REQUIRE(dirname.size() == std::string("tiny-20261123-052900").size());
  CHECK(dirname.starts_with("tiny-20"));
  CHECK(dirname[13] == '-');

  const Recipe resolved = load_recipe(run.file("resolved.toml").string());
  CHECK(resolved == recipe);

  const auto summary = nlohmann::json::parse(read_text(run.file("summary.json")));
  CHECK(summary["recipe"] == "tiny");
  CHECK(summary["status"] == "running");
  CHECK(summary["results"].empty());

  // A second run in the same second gets its own directory.
  RunDir second = RunDir::create(recipe);
  CHECK(second.path() != run.path());
  CHECK(std::filesystem::exists(second.file("resolved.toml")));
  CHECK(run.checkpoint_path("fit", "m") == run.path() / "checkpoints" / "fit-m.safetensors");
}

TEST_CASE("run dir: metrics.jsonl gets one JSON object per evaluation") {
  TempDir tmp;
  RunDir run = RunDir::create(small_recipe((tmp.path / "runs").string()), (tmp.path / "explicit").string());
  CHECK(run.path() == tmp.path / "explicit");
  run.append_metrics({"fit", "m", 1, 469, "train", 0.75, 71.5, 97.25, 1234.5, 10.0, 0.8, 70.25, 5000.0, 0, {}});
  run.append_metrics({"fit", "m", 1, 469, "test", 0.5, 80.0, NAN, NAN, 11.5, NAN, NAN, NAN, 0,
                      {{"aft.rho_mean", 0.625}, {"aft.rho_max", NAN}}});

  std::istringstream lines(read_text(run.file("metrics.jsonl")));
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(lines, line)) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] == nlohmann::json{{"stage", "fit"}, {"model", "m"}, {"epoch", 1}, {"step", 469}, {"split", "train"},
                                  {"loss", 0.75}, {"top1", 71.5}, {"top5", 97.25}, {"images_per_s", 1234.5},
                                  {"wall_s", 10.0}, {"train_loss", 0.8}, {"train_top1", 70.25},
                                  {"eval_images_per_s", 5000.0}, {"nonfinite_logits", 0}});
  CHECK(rows[1]["split"] == "test");
  CHECK(rows[1]["train_loss"].is_null());  // not given: null, never a made-up number
  CHECK(rows[1]["top1"] == 80.0);
  CHECK(rows[1]["top5"].is_null());  // NaN is not JSON: written as null
  CHECK(rows[1]["images_per_s"].is_null());
  // A loss term's own scalars (Loss::epoch_stats) ride along, only when there are some.
  CHECK_FALSE(rows[0].contains("loss_stats"));
  CHECK(rows[1]["loss_stats"] == nlohmann::json{{"aft.rho_mean", 0.625}, {"aft.rho_max", nullptr}});
  // What is written reads back as the same record (the stage cache replays records this way).
  const EvalRecord back = eval_record_from_json(rows[0]);
  CHECK(back.stage == "fit");
  CHECK(back.step == 469);
  CHECK(back.train_top1 == 70.25);
  CHECK(back.eval_images_per_s == 5000.0);
  CHECK(std::isnan(eval_record_from_json(rows[1]).top5));
  CHECK(eval_record_from_json(rows[1]).loss_stats.at("aft.rho_mean") == 0.625);
  CHECK(std::isnan(eval_record_from_json(rows[1]).loss_stats.at("aft.rho_max")));
  CHECK_THROWS_WITH_AS(eval_record_from_json(nlohmann::json{{"epoch", 1}}), doctest::Contains("needs 'stage' and 'model'"),
                       Error);

  // An explicit directory that is not empty is refused (results are never overwritten).
  CHECK_THROWS_WITH_AS(RunDir::create(small_recipe("runs"), run.path().string()),
                       doctest::Contains("already exists and is not empty"), Error);
}

TEST_CASE("run dir: summary.json holds the final result per stage and model") {
  TempDir tmp;
  RunDir run = RunDir::create(small_recipe((tmp.path / "runs").string()));
  run.record_result({"teach", "teacher", 91.25, 99.5, 120.0, 272474});
  run.record_result({"fit", "m", 85.0, 99.0, 60.5, 78042});
  run.record_result({"teach", "teacher", 91.5, 99.75, 121.0, 272474});  // replaces the first
  run.set_status("finished");

  const auto summary = nlohmann::json::parse(read_text(run.file("summary.json")));
  CHECK(summary["status"] == "finished");
  CHECK(summary["run_dir"] == run.path().string());
  CHECK(summary["source"] == "tiny.toml");
  REQUIRE(summary["results"].size() == 2);
  CHECK(summary["results"][0] == nlohmann::json{{"stage", "teach"}, {"model", "teacher"}, {"test_top1", 91.5},
                                                {"test_top5", 99.75}, {"wall_s", 121.0}, {"parameters", 272474}});
  CHECK(summary["results"][1]["model"] == "m");
  CHECK(summary["results"][1]["parameters"] == 78042);
  // Only its own files (and the lock, train/run_lock.h): no temporary is left behind.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(run.path())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{".lock", "resolved.toml", "summary.json"});
}

// Model selection on validation (train/model_selection.h): a strictly better validation top-1
// wins, ties keep the earlier epoch, non-finite results never win, the best weights survive in
// their file for a resume; and a run with data.val_size evaluates validation every epoch, keeps
// the best (or, with keep = "last", the last) and reports both with their test accuracies.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/train/recipe_test_util.h"
#include "train/model_selection.h"
#include "train/recipe.h"
#include "train/runner.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {

EvalResult val_result(double top1, double loss = 1.0) {
  EvalResult r;
  r.top1 = top1;
  r.loss = loss;
  r.images = 100;
  return r;
}

std::vector<double> first_weights(const models::Model& m) { return m.state_dict().front().second.to_vector(); }

void scale_weights(models::Model& m, double factor) {
  for (auto& [name, t] : m.state_dict())
    if (is_floating(t.dtype())) t.copy_(mul(t, factor));
}

const char* kSelectionRecipe = R"(
[run]
name = "selection"
seed = 3
device = "cpu"
[data]
dataset = "fashion-mnist"
val_size = 256
train_subset = 512
workers = 0
[models.student]
arch = "resnet8"
[[stages]]
name = "fit"
train = "student"
epochs = 3
batch_size = 32
)";

RunOptions quick(const fs::path& out) {
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 3;
  o.out_dir = out.string();
  return o;
}

// metrics.jsonl's rows of one split, in order.
std::vector<nlohmann::json> rows_of(const fs::path& run, const std::string& split) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);)
    if (auto j = nlohmann::json::parse(line); j.value("split", "") == split) out.push_back(j);
  return out;
}

nlohmann::json selection_of(const fs::path& run) {
  const auto summary = nlohmann::json::parse(test::read_text(run / "summary.json"));
  REQUIRE(summary["results"].size() == 1);
  REQUIRE(summary["results"][0].contains("selection"));
  return summary["results"][0];
}

}  // namespace

TEST_CASE("model selection: strictly better wins, ties keep the earlier epoch, non-finite never wins") {
  test::TempDir tmp;
  const std::string file = (tmp.path / "fit.best.safetensors").string();
  auto model = models::create_model("resnet8", {});
  BestOnValidation best(file, "fit", /*writes=*/true, {{"arch", "resnet8"}});
  CHECK_FALSE(best.any());
  CHECK(best.offer(*model, 1, val_result(50)));
  const std::vector<double> epoch1 = first_weights(*model);
  scale_weights(*model, 0.5);
  CHECK_FALSE(best.offer(*model, 2, val_result(50)));  // a tie: epoch 1 stays
  CHECK(best.best_epoch() == 1);
  scale_weights(*model, 0.5);
  CHECK(best.offer(*model, 3, val_result(60.5)));
  const std::vector<double> epoch3 = first_weights(*model);
  scale_weights(*model, 0.5);
  CHECK_FALSE(best.offer(*model, 4, val_result(90, NAN)));  // a non-finite loss never wins
  CHECK_FALSE(best.offer(*model, 5, val_result(NAN)));
  CHECK(best.best_epoch() == 3);
  CHECK(best.best_top1() == 60.5);
  CHECK(epoch1 != epoch3);
  best.load_best_into(*model);
  CHECK(first_weights(*model) == epoch3);

  // The file holds epoch 3's weights and says so; a resumed stage reads them back.
  const auto saved = read_safetensors(file);
  CHECK(saved.metadata.at("epoch") == "3");
  CHECK(std::stod(saved.metadata.at("val_top1")) == 60.5);
  CHECK(saved.metadata.at("arch") == "resnet8");
  auto other = models::create_model("resnet8", {});
  BestOnValidation resumed(file, "fit", true);
  resumed.resume(*other);
  CHECK(resumed.best_epoch() == 3);
  CHECK(resumed.best_top1() == 60.5);
  CHECK_FALSE(resumed.offer(*other, 4, val_result(60.5)));  // still a tie with the resumed best
  resumed.load_best_into(*other);
  CHECK(first_weights(*other) == epoch3);
  // Another stage's file is not taken for this one's.
  BestOnValidation stranger(file, "probe", true);
  stranger.resume(*other);
  CHECK_FALSE(stranger.any());
}

TEST_CASE("model selection: a run keeps the best epoch on validation and reports both models on test") {
  test::TempDir tmp;
  const fs::path out = tmp.path / "run";
  run_recipe(parse_recipe(kSelectionRecipe, "selection.toml"), quick(out));
  const auto val = rows_of(out, "val");
  REQUIRE(val.size() == 3);  // validated every epoch, beside the test rows
  CHECK(rows_of(out, "test").size() >= 3);
  int64_t best_epoch = 0;
  double best = -1;
  for (const auto& r : val)
    if (r["top1"].get<double>() > best) best = r["top1"].get<double>(), best_epoch = r["epoch"].get<int64_t>();
  const auto row = selection_of(out);
  const auto& s = row["selection"];
  CHECK(s["kept"] == "best");
  CHECK(s["best_epoch"] == best_epoch);
  CHECK(s["best_val_top1"].get<double>() == best);
  CHECK(s["last_epoch"] == 3);
  CHECK(s["last_val_top1"].get<double>() == val.back()["top1"].get<double>());
  CHECK(row["test_top1"].get<double>() == s["best_test_top1"].get<double>());  // the kept model's
  // The kept model is the best epoch's; the last epoch's is written beside it.
  const auto kept = test::weights_of(out / "models" / "student.safetensors");
  CHECK(kept == test::weights_of(out / "models" / "fit.best.safetensors"));
  CHECK(fs::exists(out / "models" / "fit.last.safetensors"));
  if (best_epoch == 3) CHECK(kept == test::weights_of(out / "models" / "fit.last.safetensors"));
  else CHECK(kept != test::weights_of(out / "models" / "fit.last.safetensors"));
  // The model file describes the model and its input (train/model_file.h).
  const auto meta = read_safetensors((out / "models" / "student.safetensors").string()).metadata;
  CHECK(meta.at("arch") == "resnet8");
  CHECK(meta.at("model.num_classes") == "10");
  CHECK(meta.at("input.image_size") == "28");
  CHECK(meta.at("input.class_names").find("Ankle boot") != std::string::npos);
}

TEST_CASE("model selection: on a tie the earlier epoch is kept; keep = \"last\" keeps the last") {
  // A linear probe whose learning rate is too small to move an f32 weight: every epoch's model,
  // and so its validation top-1, is the same, and the first epoch is the best.
  const std::vector<std::string> still = {"stages.0.trainable=\"head\"", "stages.0.optimizer.lr=1e-30",
                                          "stages.0.optimizer.momentum=0", "stages.0.optimizer.weight_decay=0"};
  test::TempDir tmp;
  const fs::path best_run = tmp.path / "best";
  run_recipe(parse_recipe(kSelectionRecipe, "selection.toml", still), quick(best_run));
  const auto row = selection_of(best_run);
  CHECK(row["selection"]["kept"] == "best");
  CHECK(row["selection"]["best_epoch"] == 1);
  CHECK(row["selection"]["best_val_top1"] == row["selection"]["last_val_top1"]);
  CHECK(row["selection"]["best_test_top1"] == row["selection"]["last_test_top1"]);
  CHECK(row["test_top1"] == row["selection"]["best_test_top1"]);

  std::vector<std::string> last = still;
  last.push_back("stages.0.keep=\"last\"");
  const fs::path last_run = tmp.path / "last";
  run_recipe(parse_recipe(kSelectionRecipe, "selection.toml", last), quick(last_run));
  CHECK(selection_of(last_run)["selection"]["kept"] == "last");
  CHECK(test::weights_of(last_run / "models" / "student.safetensors") ==
        test::weights_of(last_run / "models" / "fit.last.safetensors"));
}

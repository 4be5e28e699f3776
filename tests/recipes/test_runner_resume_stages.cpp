// Resuming a run killed after its first stage finished: the finished stage is neither trained
// nor evaluated again (its recorded result stays as it was; its weights come from the stage's
// model file), and the run ends bit-identical to an uninterrupted one.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "recipes/recipe.h"
#include "recipes/runner.h"
#include "tests/recipes/recipe_test_util.h"
#include "transfer/loss_term.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
const char* kTwoStages = R"(
[run]
name = "two"
seed = 4
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 6
workers = 2

[models.teacher]
arch = "resnet8"

[models.student]
arch = "resnet8"

[[stages]]
name = "teacher"
train = "teacher"
epochs = 2
batch_size = 12
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9 }

[[stages]]
name = "kd"
train = "student"
teachers = ["teacher"]
epochs = 3
batch_size = 12
optimizer = { type = "adamw", lr = 1e-3 }
losses = [ { name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 } ]
)";

nlohmann::json summary_of(const fs::path& run) {
  std::ifstream in(run / "summary.json");
  nlohmann::json j;
  in >> j;
  return j;
}

std::map<std::string, std::vector<double>> weights_of(const fs::path& file) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [name, t] : read_safetensors(file.string()).tensors) out[name] = t.to_vector();
  return out;
}
}  // namespace

TEST_CASE("runner: a run killed in its second stage resumes without redoing the first") {
  transfer::register_builtin_losses();
  Recipe recipe = parse_recipe(kTwoStages, "two.toml");
  test::TempDir tmp;
  RunOptions base;
  base.quiet = true;
  base.checkpoint_every_steps = 2;

  RunOptions oa = base;
  oa.out_dir = (tmp.path / "uninterrupted").string();
  RunResult ra = run_recipe(recipe, oa);
  REQUIRE(ra.completed);

  // 60 labelled images, batch 12: 5 steps per epoch; the teacher stage takes 10 steps and
  // finishes, the kd stage (15 steps) is stopped at step 12.
  const fs::path b = tmp.path / "killed";
  RunOptions ob = base;
  ob.out_dir = b.string();
  ob.stop_after_steps = 12;
  CHECK_FALSE(run_recipe(recipe, ob).completed);
  const nlohmann::json before = summary_of(b)["results"];
  REQUIRE(before.size() == 1);
  CHECK(before[0]["stage"] == "teacher");

  ob.stop_after_steps = 0;
  ob.resume = true;
  RunResult rb = run_recipe(recipe, ob);
  REQUIRE(rb.completed);
  // The teacher's record is the very one the killed run wrote (a redone stage would record a
  // new wall time).
  REQUIRE(rb.summary["results"].size() == 2);
  CHECK(rb.summary["results"][0] == before[0]);
  CHECK(rb.summary["results"][1]["test_top1"] == ra.summary["results"][1]["test_top1"]);
  for (const char* model : {"teacher", "student"}) {
    auto wa = weights_of(fs::path(ra.run_dir) / "models" / (std::string(model) + ".safetensors"));
    auto wb = weights_of(b / "models" / (std::string(model) + ".safetensors"));
    REQUIRE(wa.size() == wb.size());
    for (auto& [name, va] : wa) {
      INFO(model << " tensor " << name);
      CHECK(va == wb.at(name));  // bit-identical
    }
  }
}

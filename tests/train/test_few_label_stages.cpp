// The stage options behind task-oriented transfer and the few-label regime: retrieval of the
// nearest pool images (hand-computed), the linear probe (only the head changes; BatchNorm
// statistics stay), training on the labelled pool, retrieval-curated transfer sets, the
// stage cache (reuse and invalidation), and the recipe errors for impossible settings.
#include <filesystem>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "tests/train/recipe_test_util.h"
#include "transfer/loss_term.h"
#include "transfer/retrieval.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
const char* kFewLabelRecipe = R"(
[run]
name = "few"
seed = 2
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 3
train_subset = 600
workers = 2

[models.teacher]
arch = "resnet8"

[models.student]
arch = "resnet8"

[[stages]]
name = "pretrain"
train = "teacher"
data = "pool"
epochs = 1
batch_size = 32
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9 }

[[stages]]
name = "probe"
train = "teacher"
trainable = "head"
reset_head = true
epochs = 2
batch_size = 10
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9 }

[[stages]]
name = "distil"
train = "student"
teachers = ["teacher"]
data = "unlabelled"
retrieve_k = 2
epochs = 1
batch_size = 16
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9 }
losses = [ { name = "kd", teacher = "teacher", T = 4.0 } ]
)";

}  // namespace

TEST_CASE("retrieval: k nearest pool rows by cosine, ties to the lower position") {
  // Queries along x and y; pool rows at known angles (norms differ: cosine ignores them).
  Tensor q = transfer::l2_normalised_rows(Tensor::from_vector({1, 0, 0, 2}, {2, 2}));
  Tensor pool = transfer::l2_normalised_rows(Tensor::from_vector({3, 0,      // 0: along x (cos 1 with q0)
                                                                  1, 1,      // 1: 45 degrees
                                                                  0, 5,      // 2: along y
                                                                  -1, 0,     // 3: opposite x
                                                                  2, 2,      // 4: 45 degrees again (tie with 1)
                                                                  1, 3},     // 5: closer to y
                                                                 {6, 2}));
  auto nn = transfer::nearest_neighbours(q, pool, 3);
  REQUIRE(nn.size() == 2);
  CHECK(nn[0] == std::vector<int64_t>{0, 1, 4});  // cos 1, 0.707 (pos 1 before its tie 4)
  CHECK(nn[1] == std::vector<int64_t>{2, 5, 1});  // cos 1, 0.949, 0.707 (1 before 4)
  auto all = transfer::nearest_neighbours(q, pool, 100);  // k capped at the pool size
  CHECK(all[0].size() == 6);
  CHECK(all[0].back() == 3);
}

TEST_CASE("few-label stages: pool pretraining, a linear probe, a retrieval-curated transfer set") {
  test::TempDir tmp;
  // Only the first stage, on the pool with its labels (no "needs labels" error), shortened.
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 3;
  o.out_dir = (tmp.path / "run").string();
  Recipe recipe = parse_recipe(kFewLabelRecipe, "few.toml");
  RunResult r = run_recipe(recipe, o);
  REQUIRE(r.completed);
  REQUIRE(r.summary["results"].size() == 3);
  CHECK(r.summary["results"][2]["stage"] == "distil");

  // The probe changed the head and nothing else: compare the teacher after pretrain (a
  // one-stage run of the same recipe) with the teacher after the probe.
  test::TempDir tmp2;
  RunOptions o2 = o;
  o2.out_dir = (tmp2.path / "run").string();
  Recipe only_pretrain = recipe;
  only_pretrain.stages.resize(1);
  RunResult r2 = run_recipe(only_pretrain, o2);
  auto before = test::weights_of(fs::path(r2.run_dir) / "models" / "teacher.safetensors");
  auto after = test::weights_of(fs::path(r.run_dir) / "models" / "teacher.safetensors");
  REQUIRE(before.size() == after.size());
  int changed = 0;
  for (const auto& [name, v] : before) {
    INFO("tensor " << name);
    if (name.rfind("fc.", 0) == 0) {
      CHECK(v != after.at(name));
      ++changed;
    } else {
      CHECK(v == after.at(name));  // body weights and BatchNorm running statistics untouched
    }
  }
  CHECK(changed == 2);
}

TEST_CASE("stage cache: an identical stage is reused, a changed one trains again") {
  test::TempDir tmp;
  const fs::path cache = tmp.path / "stage_cache";
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 2;
  o.stage_cache_dir = cache.string();
  Recipe recipe = parse_recipe(kFewLabelRecipe, "few.toml");
  o.out_dir = (tmp.path / "a").string();
  RunResult a = run_recipe(recipe, o);
  CHECK(test::cache_entries(cache) == 3);
  o.out_dir = (tmp.path / "b").string();
  RunResult b = run_recipe(recipe, o);
  CHECK(test::cache_entries(cache) == 3);  // everything reused
  for (const char* m : {"teacher", "student"}) test::check_same_weights(a.run_dir, b.run_dir, m);
  CHECK(a.summary["results"] == b.summary["results"]);
  // A different probe learning rate: the pretrain stage is reused, the probe and the
  // distillation (whose teacher changed) train again.
  Recipe changed = parse_recipe(kFewLabelRecipe, "few.toml", {"stages.probe.optimizer.lr=0.02"});
  o.out_dir = (tmp.path / "c").string();
  run_recipe(changed, o);
  CHECK(test::cache_entries(cache) == 5);
}

TEST_CASE("few-label stages: impossible settings fail at load time naming the line") {
  std::string e1 = test::error_of([] { parse_recipe(kFewLabelRecipe, "few.toml", {"stages.distil.data=labelled"}); });
  CHECK(e1.find("retrieve_k") != std::string::npos);
  CHECK(e1.find("few.toml:") != std::string::npos);
  std::string e2 = test::error_of(
      [] { parse_recipe(kFewLabelRecipe, "few.toml", {"stages.distil.retrieve_with=nobody"}); });
  CHECK(e2.find("undefined model 'nobody'") != std::string::npos);
  std::string e3 = test::error_of([] { parse_recipe(kFewLabelRecipe, "few.toml", {"stages.probe.trainable=body"}); });
  CHECK(e3.find("trainable") != std::string::npos);
  // CE needs labels: on the unlabelled part it is refused before anything trains.
  test::TempDir tmp;
  Recipe r = parse_recipe(kFewLabelRecipe, "few.toml", {"stages.pretrain.data=unlabelled"});
  RunOptions o;
  o.quiet = true;
  o.out_dir = (tmp.path / "run").string();
  std::string e4 = test::error_of([&] { run_recipe(r, o); });
  CHECK(e4.find("needs labels") != std::string::npos);
}

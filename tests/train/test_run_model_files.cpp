// The model files a run writes (run dir models/<name>.safetensors) carry exactly the model's
// state-dict names with no prefix, so PyTorch's load_state_dict(strict=True) and retort's
// strict import accept them; checkpoints keep their "model." prefix beside the optimizer.
#include <filesystem>
#include <set>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "io/temp_dir.h"
#include "models/import_weights.h"
#include "models/registry.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "transfer/loss_term.h"

using namespace retort;
using namespace retort::models;
using retort::test::TempDir;

TEST_CASE("import: model files in a run directory carry the plain state-dict names") {
  const char* recipe_text = R"(
[run]
name = "names"
seed = 1
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 2

[models.student]
arch = "resnet8"

[[stages]]
name = "fit"
train = "student"
epochs = 1
batch_size = 10
optimizer = { type = "sgd", lr = 0.01 }
)";
  TempDir dir("import_run");
  Recipe recipe = parse_recipe(recipe_text, "names.toml");
  RunOptions o;
  o.quiet = true;
  o.out_dir = dir.file("run");
  o.max_batches_per_epoch = 1;
  REQUIRE(run_recipe(recipe, o).completed);
  const std::string model_file = dir.file("run/models/student.safetensors");
  SafetensorsContents c = read_safetensors(model_file);
  ModelConfig cfg;
  cfg.in_channels = 1;
  auto fresh = create_model("resnet8", cfg);
  std::vector<std::string> names, want;
  for (auto& [n, t] : c.tensors) names.push_back(n);
  for (auto& [n, t] : fresh->state_dict()) want.push_back(n);
  CHECK(names == want);  // same names, same order, no prefix
  for (auto& n : names) CHECK(n.rfind("model.", 0) != 0);
  // It loads strictly, as PyTorch's load_state_dict(strict=True) would.
  ImportReport r = load_weights_file(*fresh, model_file);
  CHECK(r.loaded == int64_t(want.size()));
  CHECK(r.missing.empty());
  CHECK(r.unexpected.empty());
  // Checkpoints (not model files) keep the "model." prefix beside the optimizer state.
  for (const auto& e : std::filesystem::directory_iterator(dir.file("run/checkpoints"))) {
    std::set<std::string> prefixes;
    for (auto& [n, t] : read_safetensors(e.path().string()).tensors) prefixes.insert(n.substr(0, n.find('.')));
    CHECK(prefixes.count("model"));
  }
}

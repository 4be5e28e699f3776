// The teacher-feature cache gives the same run as no cache. (1) What it hands a batch is
// exactly (bit for bit) what the teacher computes for those images. (2) A student trained with
// KD, FitNets and AFT against cached taps (in memory, and from files written by one run and
// read back by the next) reaches the same test accuracy as one whose teacher runs on every
// batch, and weights equal to float rounding: not bit-identical, because a CPU GEMM rounds a
// row differently depending on its position in the batch (measured: teacher taps differ by
// up to 9e-7 between batchings), and ten SGD steps carry that to a relative weight difference
// of about 1e-4 (measured 1.04e-4). Augmented data with an explicit cache is refused.
#include <filesystem>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "recipes/recipe.h"
#include "recipes/runner.h"
#include "tests/recipes/recipe_test_util.h"
#include "transfer/feature_cache.h"
#include "transfer/loss_term.h"
#include "engine/autograd.h"
#include "engine/data/batch.h"
#include "engine/data/registry.h"
#include "models/registry.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
const char* kCacheRecipe = R"(
[run]
name = "cache"
seed = 5
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 8
workers = 2

[models.teacher]
arch = "resnet8"

[models.student]
arch = "resnet8"

[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 16
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }

[[stages]]
name = "student"
train = "student"
teachers = ["teacher"]
epochs = 2
batch_size = 16
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }
losses = [
  { name = "ce", weight = 0.5 },
  { name = "kd", teacher = "teacher", weight = 0.5, T = 4.0 },
  { name = "fitnet", teacher = "teacher", weight = 1.0, student_tap = "stage2", teacher_tap = "stage2" },
  { name = "aft", teachers = ["teacher"], weight = 1.0 },
]
)";

std::map<std::string, std::vector<double>> student_weights(const std::string& run_dir) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [name, t] : read_safetensors((fs::path(run_dir) / "models" / "student.safetensors").string()).tensors)
    out[name] = t.to_vector();
  return out;
}

RunResult run_with_cache(const std::string& mode, const fs::path& out, const std::string& feature_dir) {
  Recipe recipe = parse_recipe(kCacheRecipe, "cache.toml", {"stages.student.teacher_cache=" + mode});
  RunOptions o;
  o.quiet = true;
  o.out_dir = out.string();
  o.feature_cache_dir = feature_dir;
  o.max_batches_per_epoch = 6;  // all 5 training batches; 6 x 256 test images
  return run_recipe(recipe, o);
}
}  // namespace

TEST_CASE("teacher cache: cached teacher features give the same student as running the teacher") {
  transfer::register_builtin_losses();
  test::TempDir tmp;
  const std::string features = (tmp.path / "features").string();
  RunResult off = run_with_cache("off", tmp.path / "off", features);
  RunResult memory = run_with_cache("memory", tmp.path / "memory", features);
  CHECK_FALSE(fs::exists(features));  // memory mode writes no files
  RunResult file_first = run_with_cache("file", tmp.path / "file1", features);
  // One file per (teacher, tap): logits (kd), stage2 (fitnet), pooled (aft).
  int files = 0;
  for (const auto& e : fs::directory_iterator(features)) {
    CHECK(e.path().filename().string().rfind("teacher.", 0) == 0);
    ++files;
  }
  CHECK(files == 3);
  RunResult file_again = run_with_cache("file", tmp.path / "file2", features);  // reads the files back

  auto reference = student_weights(off.run_dir);
  REQUIRE(reference.size() > 10);
  for (const RunResult* r : {&memory, &file_first, &file_again}) {
    auto w = student_weights(r->run_dir);
    REQUIRE(w.size() == reference.size());
    double worst = 0;
    for (const auto& [name, values] : reference) {
      double diff = 0, scale = 0;
      for (size_t i = 0; i < values.size(); ++i) {
        diff = std::max(diff, std::abs(w.at(name)[i] - values[i]));
        scale = std::max(scale, std::abs(values[i]));
      }
      worst = std::max(worst, diff / std::max(scale, 1e-12));
    }
    MESSAGE("worst relative weight difference vs no cache: " << worst);
    CHECK(worst < 1e-3);
    CHECK(r->summary["results"][1]["test_top1"] == off.summary["results"][1]["test_top1"]);
  }
}

TEST_CASE("teacher cache: a gathered batch is bit-identical to the teacher's own forward") {
  data::DatasetRequest req;
  req.name = "fashion-mnist";
  auto ds = std::make_shared<const data::Dataset>(data::load_dataset(req));
  std::vector<int64_t> picks;
  for (int64_t i = 0; i < 300; ++i) picks.push_back((i * 7919) % ds->size());
  data::DatasetView view(ds, picks);
  models::ModelConfig cfg;
  cfg.in_channels = 1;
  cfg.image_size = 28;
  cfg.seed = 11;
  auto teacher = models::create_model("resnet8", cfg);
  std::vector<data::BatchTransform> transforms{data::normalize_transform({0.286f}, {0.353f})};
  transfer::TeacherFeatureCache cache(*teacher, "teacher", {"logits", "stage2", "pooled"}, view, transforms,
                                      Device::cpu(), "test", "");
  CHECK(cache.size() == 300);
  CHECK(cache.bytes() == 300 * (10 + 32 * 14 * 14 + 64) * 4);
  // The second batch of 256 as the cache computed it: positions 256..299.
  std::vector<int64_t> positions;
  for (int64_t p = 256; p < 300; ++p) positions.push_back(p);
  data::Batch batch = data::make_batch(view, positions);
  Generator unused(0);
  for (const auto& t : transforms) t.apply(batch, unused);
  models::Taps direct;
  {
    NoGradGuard no_grad;
    teacher->eval();
    direct["logits"] = teacher->forward(batch.images_tensor(), &direct);
  }
  models::Taps gathered = cache.gather(positions, Device::cpu());
  for (const char* tap : {"logits", "stage2", "pooled"}) {
    INFO("tap " << tap);
    CHECK(gathered.at(tap).shape() == direct.at(tap).shape());
    CHECK(gathered.at(tap).to_vector() == direct.at(tap).to_vector());
  }
}

TEST_CASE("teacher cache: an explicit cache on augmented data is refused with the reason") {
  transfer::register_builtin_losses();
  test::TempDir tmp;
  Recipe recipe = parse_recipe(kCacheRecipe, "cache.toml",
                               {"stages.student.teacher_cache=memory", "data.augment.hflip=true", "stages.teacher.epochs=1"});
  RunOptions o;
  o.quiet = true;
  o.out_dir = (tmp.path / "run").string();
  o.max_batches_per_epoch = 1;
  std::string message = test::error_of([&] { run_recipe(recipe, o); });
  CHECK(message.find("augmented") != std::string::npos);
  CHECK(message.find("teacher_cache") != std::string::npos);
}

// The teacher-feature cache gives the same run as no cache. (1) What it hands a batch is
// exactly (bit for bit) what the teacher computes for those images in that batch. (2) In a
// whole run (KD, FitNets and AFT terms; cache in memory, and in files written by one run and
// read back by the next) every epoch's training loss equals the uncached run's to float
// rounding. The student's learning rate is ~0 there, so the comparison is not drowned by
// chaos: a CPU GEMM rounds a row differently depending on its position in the batch (teacher
// taps differ by up to 9e-7 between batchings), and normal training amplifies such ulps
// (measured: 1e-4 relative weight difference after ten steps with 2 threads, 3e-3 with one).
// A wiring error (a wrong image's features) would show as a loss difference near 1e-1.
// (3) Augmented data with an explicit cache is refused.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "tests/train/recipe_test_util.h"
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

// The student stage's training loss per epoch, from metrics.jsonl.
std::vector<double> student_train_losses(const std::string& run_dir) {
  std::vector<double> out;
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["stage"] == "student") out.push_back(j["train_loss"].get<double>());
  }
  return out;
}

RunResult run_with_cache(const std::string& mode, const fs::path& out, const std::string& feature_dir) {
  Recipe recipe = parse_recipe(kCacheRecipe, "cache.toml",
                               {"stages.student.teacher_cache=" + mode, "stages.student.optimizer.lr=1e-30"});
  RunOptions o;
  o.quiet = true;
  o.out_dir = out.string();
  o.feature_cache_dir = feature_dir;
  o.max_batches_per_epoch = 6;  // all 5 training batches; 6 x 256 test images
  return run_recipe(recipe, o);
}
}  // namespace

TEST_CASE("teacher cache: cached teacher features give the same student as running the teacher") {
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

  const auto reference = student_train_losses(off.run_dir);
  REQUIRE(reference.size() == 2);
  for (const RunResult* r : {&memory, &file_first, &file_again}) {
    const auto losses = student_train_losses(r->run_dir);
    REQUIRE(losses.size() == reference.size());
    for (size_t e = 0; e < losses.size(); ++e) {
      INFO("epoch " << e + 1 << " of " << r->run_dir << ": " << losses[e] << " vs " << reference[e]);
      CHECK(std::abs(losses[e] - reference[e]) <= 1e-5 * std::abs(reference[e]));
    }
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

// data.extra_unlabelled_folder: images in or below a folder (any layout) join the unlabelled
// transfer data of stages with data = "unlabelled" or "all", never the labelled ones or the
// labelled pool. Checked through the step counts a run records. The stage-cache key lists the
// folder's (and the data directory's) files, so a changed folder trains the stage again.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/data/image_folder.h"
#include "helpers.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "train/stage_cache.h"
#include "tests/train/recipe_test_util.h"
#include "transfer/loss_term.h"

#include "stb_image_write_impl.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
// A grey w x h PNG whose pixel (x, y) is (x + y + seed) * 5.
void write_grey_png(const fs::path& path, int w, int h, int seed) {
  fs::create_directories(path.parent_path());
  std::vector<uint8_t> px(size_t(w * h));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) px[size_t(y * w + x)] = uint8_t((x + y + seed) * 5);
  REQUIRE(stbi_write_png(path.string().c_str(), w, h, 1, px.data(), w) != 0);
}

const char* kExtraRecipe = R"(
[run]
name = "extra"
seed = 1
device = "cpu"

[data]
dataset = "fashion-mnist"
labelled_per_class = 2
train_subset = 100
workers = 1

[models.teacher]
arch = "resnet8"

[models.student]
arch = "resnet8"

[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 4
optimizer = { type = "sgd", lr = 0.01 }

[[stages]]
name = "distil"
train = "student"
teachers = ["teacher"]
data = "unlabelled"
epochs = 1
batch_size = 4
optimizer = { type = "sgd", lr = 0.01 }
losses = [ { name = "kd", teacher = "teacher" } ]
)";

// The optimizer steps each stage took, from metrics.jsonl.
std::map<std::string, int64_t> steps_by_stage(const std::string& run_dir) {
  std::map<std::string, int64_t> out;
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    out[j["stage"].get<std::string>()] = j["step"].get<int64_t>();
  }
  return out;
}
}  // namespace

TEST_CASE("extra unlabelled folder: every image in or below it, sorted by path, at the dataset's size") {
  test::TempDir tmp;
  write_grey_png(tmp.path / "b.png", 3, 2, 1);
  write_grey_png(tmp.path / "sub" / "a.png", 3, 2, 2);
  tmp.write("notes.txt", "not an image");
  int64_t count = 0;
  auto pixels = data::load_unlabelled_images(tmp.path.string(), 1, 2, 3, count);
  REQUIRE(count == 2);
  REQUIRE(pixels.size() == 12);
  CHECK(pixels[0] == 5);       // b.png sorts before sub/a.png; its (0, 0) is (0 + 0 + 1) * 5
  CHECK(pixels[6] == 10);      // sub/a.png (0, 0): (0 + 0 + 2) * 5
  CHECK(pixels[6 + 5] == 25);  // sub/a.png (2, 1): (2 + 1 + 2) * 5
  std::string e = test::error_of([&] { data::load_unlabelled_images((tmp.path / "none").string(), 1, 2, 3, count); });
  CHECK(e.find("no such directory") != std::string::npos);
}

TEST_CASE("extra unlabelled folder: joins unlabelled stages, not labelled ones") {
  test::TempDir tmp;
  for (int i = 0; i < 12; ++i) write_grey_png(tmp.path / "extra" / ("img" + std::to_string(i) + ".png"), 28, 28, i);
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 0;
  // Without the folder: 20 labelled (5 steps of 4), 80 unlabelled (20 steps).
  o.out_dir = (tmp.path / "plain").string();
  auto plain = steps_by_stage(run_recipe(parse_recipe(kExtraRecipe, "extra.toml"), o).run_dir);
  CHECK(plain.at("teacher") == 5);
  CHECK(plain.at("distil") == 20);
  // With it: the labelled stage is unchanged, the unlabelled one gets 12 more images (3 steps).
  o.out_dir = (tmp.path / "extra_run").string();
  Recipe with = parse_recipe(kExtraRecipe, "extra.toml", {"data.extra_unlabelled_folder=" + (tmp.path / "extra").string()});
  auto extra = steps_by_stage(run_recipe(with, o).run_dir);
  CHECK(extra.at("teacher") == 5);
  CHECK(extra.at("distil") == 23);
}

TEST_CASE("stage cache key: covers the extra folder's and the data directory's files") {
  test::TempDir tmp;
  write_grey_png(tmp.path / "extra" / "a.png", 28, 28, 1);
  Recipe recipe = parse_recipe(kExtraRecipe, "extra.toml", {"data.extra_unlabelled_folder=" + (tmp.path / "extra").string()});
  const std::map<std::string, std::string> models{{"teacher", "t0"}, {"student", "s0"}};
  auto key = [&](const Recipe& r) { return StageCache::stage_key(r, r.stages.at(1), models, Device::cpu(), 0); };
  const std::string k0 = key(recipe);
  CHECK(key(recipe) == k0);  // deterministic
  write_grey_png(tmp.path / "extra" / "sub" / "b.png", 28, 28, 2);  // an image added below the folder
  const std::string k1 = key(recipe);
  CHECK(k1 != k0);
  write_grey_png(tmp.path / "extra" / "sub" / "b.png", 14, 14, 2);  // the same name, other content
  CHECK(key(recipe) != k1);
  fs::remove(tmp.path / "extra" / "sub" / "b.png");
  fs::remove(tmp.path / "extra" / "sub");
  CHECK(key(recipe) == k0);  // back to the first listing
  // The data directory counts too (the key lists files, it does not read them).
  test::TempDir root;
  root.write("train-images-idx3-ubyte.gz", "x");
  root.write("t10k-images-idx3-ubyte.gz", "y");
  Recipe other_root = parse_recipe(kExtraRecipe, "extra.toml", {"data.root=" + root.path.string()});
  const std::string r0 = key(other_root);
  CHECK(r0 != key(parse_recipe(kExtraRecipe, "extra.toml")));
  root.write("t10k-images-idx3-ubyte.gz", "yy");
  CHECK(key(other_root) != r0);
}

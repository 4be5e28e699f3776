// A pretrained model on a new task in a recipe: [models.X] num_classes and head = "keep" |
// "reset" | "drop" are checked before anything runs (with the key's line), a classifier that does
// not match the data is refused naming the fix, and a teacher from another task is imported with
// its head reset and probed on this one (its body untouched by the probe).
#include <filesystem>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "models/registry.h"
#include "tests/train/recipe_test_util.h"
#include "train/recipe.h"
#include "train/runner.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {

// A resnet8 trained on "another task" (5 classes, 1 channel), as a file.
std::string five_class_weights(const test::TempDir& tmp) {
  models::ModelConfig c;
  c.in_channels = 1;
  c.num_classes = 5;
  c.seed = 99;
  auto m = models::create_model("resnet8", c);
  const std::string path = (tmp.path / "five.safetensors").string();
  write_safetensors(path, m->state_dict(), {});
  return path;
}

std::string probe_recipe(const std::string& weights, const std::string& model_extra) {
  return R"(
[run]
name = "heads"
device = "cpu"
[data]
dataset = "fashion-mnist"
workers = 0
[models.teacher]
arch = "resnet8"
weights = ")" + weights + R"("
)" + model_extra + R"(
[[stages]]
name = "probe"
train = "teacher"
trainable = "head"
epochs = 1
batch_size = 16
)";
}

}  // namespace

TEST_CASE("recipe heads: head and num_classes are checked before anything runs") {
  // a stage trains model b; the lines after the base belong to [models.a] (its line 11 is arch)
  const std::string base = "[run]\nname = \"h\"\n[data]\ndataset = \"fashion-mnist\"\n[[stages]]\ntrain = \"b\"\n"
                           "epochs = 1\n[models.b]\narch = \"resnet8\"\n[models.a]\narch = \"resnet8\"\n";
  CHECK(test::error_of([&] { parse_recipe(base + "head = \"reset\"\n", "h.toml"); })
            .find("h.toml:12: [models.a] head = \"reset\" acts on a weights file's classifier, but the model has no "
                  "'weights'") != std::string::npos);
  CHECK(test::error_of([&] { parse_recipe(base + "head = \"replace\"\n", "h.toml"); }).find("head") != std::string::npos);
  const std::string with_weights = base + "weights = \"w.safetensors\"\n";
  CHECK(test::error_of([&] { parse_recipe(with_weights + "head = \"drop\"\nnum_classes = 4\n", "h.toml"); })
            .find("head = \"drop\" builds the model without a classifier, but num_classes = 4 asks for one") !=
        std::string::npos);
  CHECK(test::error_of([&] {
          parse_recipe(with_weights + "head = \"drop\"\n[[stages]]\ntrain = \"a\"\nepochs = 1\n", "h.toml");
        }).find("h.toml:15: stage 'stage1' trains model 'a', which has no classifier (head = \"drop\")") !=
        std::string::npos);
  CHECK(test::error_of([&] { parse_recipe(base + "num_classes = -1\n", "h.toml"); }).find("num_classes") !=
        std::string::npos);
}

TEST_CASE("recipe heads: a 5-class teacher is refused on 10-class data unless its head is reset, then probed") {
  test::TempDir tmp;
  const std::string weights = five_class_weights(tmp);
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 2;
  o.out_dir = (tmp.path / "keep").string();
  // keep: the file's classifier does not fit a 10-class model
  CHECK(test::error_of([&] { run_recipe(parse_recipe(probe_recipe(weights, ""), "p.toml"), o); })
            .find("the classifier 'fc.weight' has 5 outputs in the file and 10 in the model: for a new task, leave "
                  "the file's head out (recipe: head = \"reset\"") != std::string::npos);
  // num_classes = 5 fits the file but not the data
  CHECK(test::error_of([&] { run_recipe(parse_recipe(probe_recipe(weights, "num_classes = 5"), "p.toml"), o); })
            .find("stage 'probe' trains model 'teacher', whose classifier has 5 outputs, but the data "
                  "(fashion-mnist/train) has 10 classes: set num_classes = 10 in [models.teacher] and head = "
                  "\"reset\"") != std::string::npos);
  CHECK_FALSE(fs::exists(o.out_dir));  // refused before the run directory exists
  // reset: a fresh 10-class head, probed; the body is the file's, untouched by the probe
  o.out_dir = (tmp.path / "reset").string();
  run_recipe(parse_recipe(probe_recipe(weights, "head = \"reset\""), "p.toml"), o);
  const auto trained = test::weights_of(fs::path(o.out_dir) / "models" / "teacher.safetensors");
  const auto original = test::weights_of(weights);
  size_t body = 0;
  for (const auto& [name, v] : trained) {
    INFO(name);
    if (name.rfind("fc.", 0) == 0) {
      CHECK(v.size() == (name == "fc.weight" ? 640u : 10u));
    } else {
      CHECK(v == original.at(name));
      ++body;
    }
  }
  CHECK(body + 2 == trained.size());
  const auto meta = read_safetensors((fs::path(o.out_dir) / "models" / "teacher.safetensors").string()).metadata;
  CHECK(meta.at("model.num_classes") == "10");
}

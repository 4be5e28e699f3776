// init_from: a model that starts from another model's initial weights (same arch and options),
// so "student alone" and "student with a method" differ only in the method; the recipe checks
// what it names before anything is built.
#include <doctest/doctest.h>
#include "recipe_test_util.h"
#include "train/recipe.h"
#include "train/recipe_models.h"
#include "train/stage_cache.h"

using namespace retort;
using retort::test::error_of;

namespace {
std::string recipe_text(const std::string& student_kd_table) {
  return R"(
[models.teacher]
arch = "wrn_16_2"
[models.student]
arch = "resnet8"
[models.student_kd]
)" + student_kd_table + R"(
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
[[stages]]
name = "student_kd"
train = "student_kd"
epochs = 1
teachers = ["teacher"]
losses = [ { name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher" } ]
)";
}

std::map<std::string, std::vector<double>> initial_weights(const Recipe& r, const std::string& name) {
  auto model = build_recipe_model(r, name, 10, Device::cpu(), [](const std::string&) {});
  std::map<std::string, std::vector<double>> out;
  for (auto& [n, t] : model->state_dict()) out[n] = t.to_vector();
  return out;
}
}  // namespace

TEST_CASE("init_from: the model starts from the named model's initial weights, bit for bit") {
  const Recipe same = parse_recipe(recipe_text("arch = \"resnet8\"\ninit_from = \"student\""), "same.toml");
  const Recipe own = parse_recipe(recipe_text("arch = \"resnet8\""), "own.toml");
  CHECK(same.model("student_kd").init_from == "student");
  const auto student = initial_weights(same, "student");
  CHECK(initial_weights(same, "student_kd") == student);
  // Without it each model is seeded from its own name: other weights.
  CHECK(initial_weights(own, "student_kd") != student);
  // The resolved recipe keeps the key, and the stage cache keys the two starts apart.
  CHECK(parse_recipe(to_toml(same), "back.toml") == same);
  CHECK(StageCache::initial_model_key(same, "student_kd") != StageCache::initial_model_key(own, "student_kd"));
}

TEST_CASE("init_from: an unknown model, itself, another arch or a weights file is refused with the line") {
  auto err = [](const std::string& table) {
    return error_of([&] { parse_recipe(recipe_text(table), "bad.toml"); });
  };
  const std::string unknown = err("arch = \"resnet8\"\ninit_from = \"studnet\"");
  CHECK(unknown.find("bad.toml:8") != std::string::npos);
  CHECK(unknown.find("must name another model of the recipe, got 'studnet'") != std::string::npos);
  CHECK(unknown.find("did you mean 'student'") != std::string::npos);
  CHECK(err("arch = \"resnet8\"\ninit_from = \"student_kd\"").find("must name another model") != std::string::npos);
  const std::string arch = err("arch = \"resnet14\"\ninit_from = \"student\"");
  CHECK(arch.find("needs the same arch and options: 'student' is resnet8, 'student_kd' is resnet14") !=
        std::string::npos);
  const std::string weights = err("arch = \"resnet8\"\ninit_from = \"student\"\nweights = \"w.safetensors\"");
  CHECK(weights.find("starts from a weights file") != std::string::npos);
}

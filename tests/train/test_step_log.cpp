// Per-step metrics (train/step_log.h): a run's steps.jsonl rows hold each loss term unweighted,
// their weights (the weighted sum is the row's loss), the learning rate, the gradient norm,
// images/s, the window's training accuracy and the terms' own statistics; a logged step's extra
// values come back in one host read; the recipe's run.log_every_steps sets the interval and
// --log-steps overrides it. Also the report's pictures file (train/stage_pictures.h): the final
// evaluation's confusion matrix (whose trace is its top-1) and the first test images.
#include <doctest/doctest.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/autograd.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/optim/clip.h"
#include "engine/random.h"
#include "recipe_test_util.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "train/step_log.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {

std::vector<nlohmann::json> jsonl_rows(const fs::path& file) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::vector<nlohmann::json> rows_of(const std::vector<nlohmann::json>& rows, const std::string& stage) {
  std::vector<nlohmann::json> out;
  for (const auto& r : rows)
    if (r.at("stage") == stage) out.push_back(r);
  return out;
}

// The tiny KD recipe (ce + kd) run for 6 batches per epoch into `dir`.
void run_tiny_kd(const fs::path& dir, int64_t log_every, const std::vector<std::string>& overrides = {}) {
  const Recipe recipe = parse_recipe(
      test::tiny_kd_recipe(R"({ name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 })"),
      "step_log.toml", overrides);
  RunOptions o;
  o.quiet = true;
  o.out_dir = dir.string();
  o.max_batches_per_epoch = 6;
  o.log_every_steps = log_every;
  run_recipe(recipe, o);
}

}  // namespace

TEST_CASE("step log: steps.jsonl rows hold each term, their weights, lr, gradient norm, images/s and statistics") {
  test::TempDir tmp;
  const fs::path dir = tmp.path / "run";
  run_tiny_kd(dir, 2);
  const auto kd = rows_of(jsonl_rows(dir / "steps.jsonl"), "kd");
  REQUIRE(kd.size() == 3);  // steps 2, 4, 6
  for (size_t i = 0; i < kd.size(); ++i) {
    const auto& r = kd[i];
    INFO(r.dump());
    CHECK(r.at("step") == int64_t(2 * (i + 1)));
    CHECK(r.at("epoch") == 1);
    CHECK(r.at("lr").get<double>() == doctest::Approx(0.05));
    CHECK(r.at("images") == 16);  // two steps of batch 8 since the previous row
    CHECK(r.at("images_per_s").get<double>() > 0);
    const double top1 = r.at("train_top1").get<double>();
    CHECK((top1 >= 0 && top1 <= 100));
    CHECK(r.at("grad_norm").get<double>() > 0);
    const auto& terms = r.at("terms");
    const auto& weights = r.at("weights");
    REQUIRE(terms.size() == 2);
    CHECK(weights.at("ce").get<double>() == 0.1);
    CHECK(weights.at("kd").get<double>() == 0.9);
    const double weighted = 0.1 * terms.at("ce").get<double>() + 0.9 * terms.at("kd").get<double>();
    CHECK(r.at("loss").get<double>() == doctest::Approx(weighted).epsilon(1e-6));
    const double agreement = r.at("stats").at("kd.top1_agreement").get<double>();
    CHECK((agreement >= 0 && agreement <= 1));
  }
  // the teacher stage (its default term: ce, weight 1) is logged the same way
  const auto teacher = rows_of(jsonl_rows(dir / "steps.jsonl"), "teacher");
  REQUIRE(teacher.size() == 3);
  CHECK(teacher[0].at("loss").get<double>() == doctest::Approx(teacher[0].at("terms").at("ce").get<double>()));
}

TEST_CASE("step log: the recipe's run.log_every_steps sets the interval; --log-steps overrides it; 0 writes none") {
  test::TempDir tmp;
  run_tiny_kd(tmp.path / "recipe", -1, {"run.log_every_steps=3"});
  CHECK(rows_of(jsonl_rows(tmp.path / "recipe" / "steps.jsonl"), "kd").size() == 2);  // steps 3 and 6
  run_tiny_kd(tmp.path / "cli", 6, {"run.log_every_steps=3"});
  CHECK(rows_of(jsonl_rows(tmp.path / "cli" / "steps.jsonl"), "kd").size() == 1);
  run_tiny_kd(tmp.path / "off", 0);
  CHECK_FALSE(fs::exists(tmp.path / "off" / "steps.jsonl"));
}

TEST_CASE("step log: a probe's terms, gradient norm and statistics come back in one host read") {
  StepProbe p;
  p.terms = {Tensor::scalar(1.5), Tensor::full({1}, 2.5)};
  p.grad_norm = Tensor::scalar(3.0).to(DType::f64);
  p.stats = {{"kd.top1_agreement", Tensor::full({1}, 0.25)}};
  const int64_t before = host_read_count();
  const StepProbe::Values v = p.read();
  CHECK(host_read_count() - before == 1);
  CHECK(v.terms == std::vector<double>{1.5, 2.5});
  CHECK(v.grad_norm == 3.0);
  REQUIRE(v.stats.size() == 1);
  CHECK(v.stats[0].first == "kd.top1_agreement");
  CHECK(v.stats[0].second == 0.25);
}

TEST_CASE("step log: the gradient norm is clipping's norm, and leaves the gradients as they were") {
  Generator gen(7);
  Tensor a = randn(Shape{3, 4}, gen);
  Tensor b = randn(Shape{5}, gen);
  a.requires_grad_(true);
  b.requires_grad_(true);
  add(sum(mul(a, a)), sum(mul(b, 3.0))).backward();
  const std::vector<double> ga = a.grad().to_vector();
  const double norm = gradient_norm_on_device(std::vector<Tensor>{a, b}).item();
  CHECK(a.grad().to_vector() == ga);
  double expected = 0;
  for (double g : ga) expected += g * g;
  expected += 5 * 9.0;
  CHECK(norm == doctest::Approx(std::sqrt(expected)).epsilon(1e-6));
  CHECK(clip_grad_norm_on_device(std::vector<Tensor>{a, b}, 1e9).item() == doctest::Approx(norm).epsilon(1e-12));
}

TEST_CASE("step log: a stage's pictures hold its final evaluation's confusion matrix and the first test images") {
  test::TempDir tmp;
  const fs::path dir = tmp.path / "run";
  run_tiny_kd(dir, 0);
  const SafetensorsContents pics = read_safetensors((dir / "pictures" / "kd.safetensors").string());
  CHECK(pics.metadata.at("stage") == "kd");
  CHECK(pics.metadata.at("model") == "student");
  std::map<std::string, Tensor> t(pics.tensors.begin(), pics.tensors.end());
  REQUIRE(t.count("confusion"));
  CHECK(t.at("confusion").shape() == Shape{10, 10});
  CHECK(t.at("images").shape() == Shape{8, 1, 28, 28});
  CHECK(t.at("labels").shape() == Shape{8});
  const std::vector<double> c = t.at("confusion").to_vector();
  double total = 0, diagonal = 0;
  for (int64_t i = 0; i < 10; ++i)
    for (int64_t j = 0; j < 10; ++j) {
      total += c[size_t(i * 10 + j)];
      if (i == j) diagonal += c[size_t(i * 10 + j)];
    }
  CHECK(total == 6 * 256);  // 6 test batches of 256 (--max-batches 6)
  const auto summary = nlohmann::json::parse(test::read_text(dir / "summary.json"));
  for (const auto& r : summary.at("results"))
    if (r.at("stage") == "kd") CHECK(100.0 * diagonal / total == doctest::Approx(r.at("test_top1").get<double>()));
  CHECK(fs::exists(dir / "pictures" / "teacher.safetensors"));
}

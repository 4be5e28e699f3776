// Training steps as CUDA graph replays (train/graph_steps.h, stage key cuda_graph), what the
// CPU can check: which steps run eagerly (the two warm-up steps, logged steps, batches that are
// not full, steps while a loss's warm-up factor still changes) and that the first regular step
// goes to the capture (which, without a GPU, fails with an error and nothing is counted as
// captured); the refusals before any work (a CPU run, dropout, CRD, a teacher cache, data
// parallelism and micro-batches) naming the stage and its line; and a CPU run asking for it
// stopping before its directory exists. Capture and replay themselves run in the GPU kit.
#include <doctest/doctest.h>
#include <filesystem>
#include "engine/error.h"
#include "helpers.h"
#include "recipe_test_util.h"
#include "train/graph_steps.h"
#include "train/recipe.h"
#include "train/recipe_models.h"
#include "train/runner.h"
#include "train/stage_losses.h"
#include "train/step_graph.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {
// One KD stage's step parts on the CPU, built as the trainer builds them.
struct KdStage {
  explicit KdStage(const std::string& losses)
      : recipe(parse_recipe(test::tiny_kd_recipe(losses, "cuda_graph = true"), "graph.toml")),
        stage(recipe.stages.at(1)) {
    const auto quiet = [](const std::string&) {};
    teacher = build_recipe_model(recipe, "teacher", 10, Device::cpu(), quiet);
    student = build_recipe_model(recipe, "student", 10, Device::cpu(), quiet);
    teachers["teacher"] = teacher;
    stage_losses = build_stage_losses(recipe, stage, student, teachers, {1, 1, 28, 28}, Device::cpu(), 1, true, 64);
    optimizer = make_stage_optimizer(stage, *student, stage_losses.losses);
    parts = StepParts{&stage, student.get(), &teachers, &stage_losses, optimizer.optimizer.get(),
                      &optimizer.trained, nullptr, 64};
    health = std::make_unique<StepHealth>(Device::cpu(), int64_t(stage_losses.losses.size()));
  }
  Recipe recipe;
  StageSpec stage;
  std::shared_ptr<models::Model> teacher, student;
  TeacherMap teachers;
  StageLosses stage_losses;
  StageOptimizer optimizer;
  StepParts parts;
  std::unique_ptr<StepHealth> health;
};

Tensor batch(int64_t rows) { return test::random_tensor({rows, 1, 28, 28}, 7, -1, 1, DType::f32); }
Tensor labels(int64_t rows) {
  std::vector<int64_t> y;
  for (int64_t i = 0; i < rows; ++i) y.push_back(i % 10);
  return Tensor::from_i64(y, {rows});
}
}  // namespace

TEST_CASE("graph steps: warm-up, logged steps, partial batches and warming losses run eagerly; then the capture") {
  KdStage s(R"({ name = "ce" }, { name = "dkd", teacher = "teacher", warmup_epochs = 2 })");
  std::vector<std::string> said;
  GraphedSteps steps(s.parts, *s.health, [&](const std::string& m) { said.push_back(m); });
  const transfer::StepClock warming{0, 0, 10}, settled{5, 0, 10};
  const Tensor x = batch(8), y = labels(8);
  for (int i = 0; i < 2; ++i) steps.step(x, y, nullptr, settled, nullptr);  // the warm-up
  CHECK(steps.counts().eager == GraphedSteps::kEagerWarmupSteps);
  StepProbe probe;
  steps.step(x, y, nullptr, settled, &probe);                   // a logged step
  steps.step(batch(4), labels(4), nullptr, settled, nullptr);   // the epoch's short last batch
  steps.step(x, y, nullptr, warming, nullptr);                  // DKD's factor is still 1/2
  CHECK(steps.counts().eager == 5);
  CHECK(s.health->pending() == 5);
  // The first regular step is captured: without a GPU the capture cannot start.
  CHECK_THROWS_WITH_AS(steps.step(x, y, nullptr, settled, nullptr), doctest::Contains("CUDA"), Error);
  CHECK(steps.counts().eager == 5);
  CHECK(steps.counts().captured == 0);
  CHECK(said.empty());
}

TEST_CASE("graph steps: DKD and ReviewKD are settled once their warm-up factor reaches 1") {
  KdStage s(R"({ name = "dkd", teacher = "teacher", warmup_epochs = 2 })");
  const auto& dkd = *s.stage_losses.losses.at(0);
  CHECK_FALSE(dkd.settled_at({0, 9, 10}));  // epoch granularity: 1/2 in the first epoch
  CHECK(dkd.settled_at({1, 0, 10}));        // 2/2 from the second
  KdStage plain(R"({ name = "kd", teacher = "teacher" })");
  CHECK(plain.stage_losses.losses.at(0)->settled_at({0, 0, 10}));
}

TEST_CASE("graph steps: refused before any work, naming the stage, its line and why") {
  auto refusal = [](const std::string& losses, const std::string& extra, Device device, int ranks) {
    const Recipe r = parse_recipe(test::tiny_kd_recipe(losses, "cuda_graph = true\n" + extra), "graph.toml");
    try {
      check_graph_stage(r, r.stages.at(1), device, ranks);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string ce = R"({ name = "ce" })";
  CHECK(refusal(ce, "", Device::cuda(), 1).empty());
  const std::string on_cpu = refusal(ce, "", Device::cpu(), 1);
  CHECK(on_cpu.find("graph.toml:") != std::string::npos);
  CHECK(on_cpu.find("stage 'kd' asks for cuda_graph = true") != std::string::npos);
  CHECK(on_cpu.find("this run is on cpu") != std::string::npos);
  CHECK(on_cpu.find("set cuda_graph = false") != std::string::npos);
  CHECK(refusal(ce, "", Device::cuda(), 2).find("data parallelism") != std::string::npos);
  CHECK(refusal(ce, "micro_batches = 2", Device::cuda(), 1).find("micro-batches") != std::string::npos);
  CHECK(refusal(ce, "teacher_cache = \"memory\"", Device::cuda(), 1).find("teacher_cache = \"memory\"") !=
        std::string::npos);
  CHECK(refusal(R"({ name = "ce" }, { name = "crd", teacher = "teacher" })", "", Device::cuda(), 1).find("CRD") !=
        std::string::npos);
  const Recipe without = parse_recipe(test::tiny_kd_recipe(ce), "graph.toml");
  CHECK_NOTHROW(check_graph_stage(without, without.stages.at(1), Device::cpu(), 4));  // not asked for
}

TEST_CASE("graph steps: a CPU run asking for cuda_graph stops before its directory exists") {
  const Recipe recipe = parse_recipe(test::tiny_kd_recipe(R"({ name = "ce" })", "cuda_graph = true"), "graph.toml");
  const fs::path dir = fs::temp_directory_path() / "retort_graph_steps_cpu";
  fs::remove_all(dir);
  RunOptions o;
  o.quiet = true;
  o.out_dir = dir.string();
  CHECK_THROWS_WITH_AS(run_recipe(recipe, o), doctest::Contains("CUDA graphs need a CUDA device"), Error);
  CHECK_FALSE(fs::exists(dir));
}

// The training-step benchmark behind `retort bench` (see train/step_bench.h).
#include "train/step_bench.h"
#include <algorithm>
#include <chrono>
#include "engine/data/registry.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/machine.h"
#include "engine/ops.h"
#include "engine/storage.h"
#include "kernels/cuda/cuda_api.h"
#include "train/recipe_models.h"
#include "train/train_step.h"
#include "transfer/loss_term.h"

namespace retort {
namespace {
using Clock = std::chrono::steady_clock;

const StageSpec& chosen_stage(const Recipe& recipe, const std::string& name) {
  RETORT_CHECK(!recipe.stages.empty(), "bench: recipe '{}' has no stages", recipe.run.name);
  if (name.empty()) return recipe.stages.back();
  std::vector<std::string> names;
  for (const auto& s : recipe.stages) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  fail("bench: recipe '{}' has no stage '{}'; its stages: {}", recipe.run.name, name, fmt::join(names, ", "));
}

void check_options(const StepBenchOptions& o) {
  RETORT_CHECK(o.batch_size >= 0, "bench: --batch-size must be positive, got {}", o.batch_size);
  RETORT_CHECK(o.warmup >= 0, "bench: --warmup must be 0 or more, got {}", o.warmup);
  RETORT_CHECK(o.steps >= 1, "bench: --steps must be at least 1, got {}", o.steps);
  RETORT_CHECK(o.rounds >= 1, "bench: --rounds must be at least 1, got {}", o.rounds);
}

void wait_for_device(Device device) {
  if (device.is_cuda()) cuda::synchronize();
}

struct SyntheticBatch {
  Tensor images, labels;
};
SyntheticBatch synthetic_batch(const Recipe& recipe, int64_t batch, int64_t classes, Device device) {
  Generator gen(uint64_t(recipe.run.seed) ^ 0xbe1c4ull);
  const int64_t side = recipe.data.image_size;
  SyntheticBatch b;
  b.images = randn({batch, recipe.data.channels, side, side}, gen, DType::f32, device);
  std::vector<int64_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = gen.randint(classes);
  b.labels = Tensor::from_i64(labels, {batch}).to(device);
  return b;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

nlohmann::json StepBenchResult::to_json() const {
  return {{"framework", "retort"},   {"recipe", recipe},
          {"stage", stage},          {"student", student},
          {"teachers", teachers},    {"device", device},
          {"machine", machine},      {"batch", batch},
          {"warmup_steps", warmup},  {"steps", steps},
          {"rounds", rounds},        {"warmup_s", warmup_s},
          {"ms_per_step", ms_per_step}, {"images_per_s", images_per_s},
          {"round_ms", round_ms},    {"final_loss", final_loss},
          {"params_student", student_parameters}, {"peak_mem_mb", peak_mem_mb}};
}

StepBenchResult bench_stage_steps(const Recipe& recipe, const StepBenchOptions& options) {
  check_options(options);
  const StageSpec& stage = chosen_stage(recipe, options.stage);
  const int64_t classes = data::dataset_info(to_string(recipe.data.dataset)).num_classes;
  RETORT_CHECK(classes > 0, "bench: dataset '{}' has no fixed class count; synthetic batches need one",
               to_string(recipe.data.dataset));
  const int64_t batch = options.batch_size > 0 ? options.batch_size : stage.batch_size;
  const Device device = resolve_device(options.device.empty() ? recipe.run.device : options.device);
  auto quiet = [](const std::string&) {};

  // ---- the stage's models, losses and optimizer, as the runner and trainer build them
  std::map<std::string, std::shared_ptr<models::Model>> teachers;
  for (const auto& t : stage.teachers) teachers[t] = build_recipe_model(recipe, t, classes, device, quiet);
  auto student = build_recipe_model(recipe, stage.train, classes, device, quiet);
  const Shape input{1, recipe.data.channels, recipe.data.image_size, recipe.data.image_size};
  StageLosses losses =
      build_stage_losses(recipe, stage, student, teachers, input, device, uint64_t(recipe.run.seed), true);
  prepare_trainable(stage, *student, uint64_t(recipe.run.seed));
  StageOptimizer opt = make_stage_optimizer(stage, *student, losses.losses);
  for (auto& [name, t] : teachers) {
    t->eval();
    t->requires_grad_(false);
  }
  student->train(stage.trainable != Trainable::head);
  for (auto& l : losses.losses) l->train(true);
  const StepParts parts{&stage, student.get(), &teachers, &losses, opt.optimizer.get(), &opt.trained, nullptr};
  const SyntheticBatch data = synthetic_batch(recipe, batch, classes, device);

  StepBenchResult r;
  reset_peak_memory(device);
  int64_t step = 0;
  auto one_step = [&] {
    r.final_loss = train_step(parts, data.images, data.labels, nullptr, [&] {
                     return fmt::format("bench step {} (stage '{}')", step, stage.name);
                   }).loss;
    ++step;
  };
  const auto warm_start = Clock::now();
  for (int64_t i = 0; i < options.warmup; ++i) one_step();
  wait_for_device(device);
  r.warmup_s = std::chrono::duration<double>(Clock::now() - warm_start).count();
  for (int64_t round = 0; round < options.rounds; ++round) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < options.steps; ++i) one_step();
    wait_for_device(device);
    r.round_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }

  r.recipe = recipe.run.name;
  r.stage = stage.name;
  r.student = recipe.models.at(stage.train).arch;
  for (const auto& t : stage.teachers) r.teachers.push_back(recipe.models.at(t).arch);
  r.device = device.str();
  r.machine = describe_machine(device).line();
  r.batch = batch;
  r.warmup = options.warmup;
  r.steps = options.steps;
  r.rounds = options.rounds;
  r.student_parameters = student->num_parameters();
  r.peak_mem_mb = double(memory_stats(device).peak_bytes) / double(1 << 20);
  r.ms_per_step = median(r.round_ms) / double(options.steps);
  r.images_per_s = double(batch) * 1000.0 / r.ms_per_step;
  return r;
}

}  // namespace retort

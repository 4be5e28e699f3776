// The training-step benchmark behind `retort bench` (see train/step_bench.h).
#include "train/step_bench.h"
#include <algorithm>
#include <chrono>
#include "engine/device.h"
#include "engine/error.h"
#include "engine/machine.h"
#include "engine/storage.h"
#include "kernels/cuda/cuda_api.h"
#include "train/bench_stage.h"

namespace retort {
namespace {
using Clock = std::chrono::steady_clock;

void check_options(const StepBenchOptions& o) {
  RETORT_CHECK(o.warmup >= 0, "bench: --warmup must be 0 or more, got {}", o.warmup);
  RETORT_CHECK(o.steps >= 1, "bench: --steps must be at least 1, got {}", o.steps);
  RETORT_CHECK(o.rounds >= 1, "bench: --rounds must be at least 1, got {}", o.rounds);
}

void wait_for_device(Device device) {
  if (device.is_cuda()) cuda::synchronize();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

nlohmann::json StepBenchResult::to_json() const {
  return {{"framework", "retort"},   {"recipe", recipe},
          {"stage", stage},          {"precision", precision},  {"cuda_graph", cuda_graph},  {"memory_format", memory_format},  {"student", student},
          {"teachers", teachers},    {"device", device},
          {"machine", machine},      {"data", data},
          {"batch", batch},
          {"warmup_steps", warmup},  {"steps", steps},
          {"rounds", rounds},        {"warmup_s", warmup_s},
          {"ms_per_step", ms_per_step}, {"images_per_s", images_per_s},
          {"round_ms", round_ms},    {"final_loss", final_loss},
          {"params_student", student_parameters}, {"peak_mem_mb", peak_mem_mb}};
}

StepBenchResult bench_stage_steps(const Recipe& recipe, const StepBenchOptions& options) {
  check_options(options);
  BenchStage bench(recipe, options.stage);
  const Device device = bench.device();

  StepBenchResult r;
  reset_peak_memory(device);
  const auto warm_start = Clock::now();
  for (int64_t i = 0; i < options.warmup; ++i) bench.step();
  if (options.warmup > 0) r.final_loss = bench.read_loss();
  wait_for_device(device);
  r.warmup_s = std::chrono::duration<double>(Clock::now() - warm_start).count();
  for (int64_t round = 0; round < options.rounds; ++round) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < options.steps; ++i) bench.step();
    r.final_loss = bench.read_loss();  // the round's one host read (it waits for the device)
    wait_for_device(device);
    r.round_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }

  const StageSpec& stage = bench.stage();
  r.recipe = recipe.run.name;
  r.stage = stage.name;
  r.precision = precision_name(stage.precision);
  r.cuda_graph = bench.graph_status();
  r.memory_format = memory_format_name(stage.memory_format);
  r.student = recipe.models.at(stage.train).arch;
  for (const auto& t : stage.teachers) r.teachers.push_back(recipe.models.at(t).arch);
  r.device = device.str();
  r.machine = describe_machine(device).line();
  r.data = bench.real_data() ? "real" : "synthetic";
  r.batch = bench.batch();
  r.warmup = options.warmup;
  r.steps = options.steps;
  r.rounds = options.rounds;
  r.student_parameters = bench.student().num_parameters();
  r.peak_mem_mb = double(memory_stats(device).peak_bytes) / double(1 << 20);
  r.ms_per_step = median(r.round_ms) / double(options.steps);
  r.images_per_s = double(r.batch) * 1000.0 / r.ms_per_step;
  return r;
}

}  // namespace retort

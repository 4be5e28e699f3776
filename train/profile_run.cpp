// The profiled steps behind `retort profile` (see train/profile_run.h).
#include "train/profile_run.h"
#include <chrono>
#include "engine/error.h"
#include "engine/machine.h"
#include "engine/profiler.h"
#include "engine/storage.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {
namespace {
using Clock = std::chrono::steady_clock;

void wait_for_device(Device device) {
  if (device.is_cuda()) cuda::synchronize();
}
}  // namespace

std::string ProfileResult::header() const {
  return fmt::format("{} / {} on {} ({}): student {}, batch {}, {} data", recipe, stage, device, machine, student,
                     batch, data);
}

nlohmann::json ProfileResult::to_json() const {
  return {{"framework", "retort"}, {"recipe", recipe},   {"stage", stage},
          {"student", student},    {"device", device},   {"machine", machine},
          {"data", data},          {"batch", batch},     {"peak_mem_mb", peak_mem_mb},
          {"unprofiled_ms_per_step", unprofiled_ms_per_step}, {"summary", profiler::summary_json(summary)}};
}

ProfileResult profile_stage(const Recipe& recipe, const ProfileOptions& options) {
  RETORT_CHECK(options.warmup >= 0, "profile: --warmup must be 0 or more, got {}", options.warmup);
  RETORT_CHECK(options.steps >= 1, "profile: --steps must be at least 1, got {}", options.steps);
  BenchStage bench(recipe, options.stage);
  const Device device = bench.device();
  ProfileResult r;
  // Warm-up: the first step allocates and (on CUDA) picks algorithms; the rest give the
  // unprofiled step time the profiled one is compared with.
  if (options.warmup > 0) bench.step();
  wait_for_device(device);
  const auto t0 = Clock::now();
  for (int64_t i = 1; i < options.warmup; ++i) bench.step();
  wait_for_device(device);
  if (options.warmup > 1)
    r.unprofiled_ms_per_step =
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / double(options.warmup - 1);

  reset_peak_memory(device);
  profiler::Options po;
  po.device = device;
  profiler::start(po);
  if (device.is_cuda()) cuda::profiler_capture(true);
  try {
    for (int64_t i = 0; i < options.steps; ++i) bench.step();
    wait_for_device(device);
  } catch (...) {
    if (device.is_cuda()) cuda::profiler_capture(false);
    profiler::stop();
    throw;
  }
  if (device.is_cuda()) cuda::profiler_capture(false);
  r.events = profiler::stop();
  r.summary = profiler::summarise(r.events);
  bench.read_loss();  // a non-finite loss in any step is an error here too

  const StageSpec& stage = bench.stage();
  r.recipe = recipe.run.name;
  r.stage = stage.name;
  r.student = recipe.models.at(stage.train).arch;
  r.device = device.str();
  r.machine = describe_machine(device).line();
  r.data = bench.real_data() ? "real" : "synthetic";
  r.batch = bench.batch();
  r.peak_mem_mb = double(memory_stats(device).peak_bytes) / double(1 << 20);
  return r;
}

}  // namespace retort

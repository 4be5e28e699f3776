// `retort profile`: runs warm-up steps of one stage (train/bench_stage.h) unprofiled, then
// profiles `steps` more (engine/profiler.h): every op, backward node, step phase and allocation,
// summarised per op and per phase (engine/profile_report.h), with the raw events for a trace.
// On CUDA the profiled steps lie between cudaProfilerStart and cudaProfilerStop.
#pragma once
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "engine/profile_report.h"
#include "train/bench_stage.h"
#include "train/recipe.h"

namespace retort {

struct ProfileOptions {
  BenchStageOptions stage;
  int64_t warmup = 3, steps = 10;
};

struct ProfileResult {
  std::string recipe, stage, student, device, machine, data;
  int64_t batch = 0;
  double peak_mem_mb = 0;   // the engine's allocator during the profiled steps (models included)
  double unprofiled_ms_per_step = 0;  // the warm-up steps after the first, for the overhead
  profiler::Summary summary;
  std::vector<profiler::Event> events;
  std::string header() const;  // "recipe / stage on device (machine): batch B, data D"
  nlohmann::json to_json() const;  // the header's fields and the summary (not the events)
};

ProfileResult profile_stage(const Recipe& recipe, const ProfileOptions& options);

}  // namespace retort

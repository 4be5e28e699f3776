// `retort bench`: times the training step of one stage of a recipe (train/bench_stage.h): on
// synthetic batches that live on the device (random normal images of the recipe's shape, random
// labels), so that only the step is measured, or on the recipe's real data through the stage's
// loader; the stage's teachers, student, loss terms, optimizer and batch size, and the same step
// function the trainer runs (train/train_step.h), which makes no host read. Warm-up steps first
// (cuDNN algorithm search, memory pool growth), then `rounds` rounds of `steps` steps, each
// ended by one read of the loss and a device synchronisation; the median round counts.
#pragma once
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "train/bench_stage.h"
#include "train/recipe.h"

namespace retort {

struct StepBenchOptions {
  BenchStageOptions stage;  // which stage, on what device, batch size, data
  int64_t warmup = 5, steps = 20, rounds = 3;
};

struct StepBenchResult {
  std::string recipe, stage, precision, student, device, machine, data;
  std::string cuda_graph = "off";  // BenchStage::graph_status()
  std::string memory_format = "contiguous";
  std::vector<std::string> teachers;
  int64_t batch = 0, warmup = 0, steps = 0, rounds = 0, student_parameters = 0;
  double warmup_s = 0, ms_per_step = 0, images_per_s = 0, final_loss = 0;
  double peak_mem_mb = 0;  // the engine's allocator during the steps (models and batch included)
  std::vector<double> round_ms;
  nlohmann::json to_json() const;
};

// Checks the options (a known stage, positive counts, a dataset whose class count is known)
// before building anything; a non-finite loss is an error, as in training.
StepBenchResult bench_stage_steps(const Recipe& recipe, const StepBenchOptions& options);

}  // namespace retort

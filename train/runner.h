// Runs a whole recipe: loads the data, builds every model, runs the stages in order
// (resuming where a previous run stopped), and writes the run directory: resolved.toml,
// metrics.jsonl, summary.json, checkpoints/ and models/<name>.safetensors.
#pragma once
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "train/recipe.h"

namespace retort {

struct RunOptions {
  std::string out_dir;         // "" = <run.out_dir>/<run.name>-<UTC time>
  std::string device;          // "" = the recipe's run.device
  bool resume = false;         // continue the run found in out_dir
  bool quiet = false;          // no progress bar
  int64_t checkpoint_every_steps = 0;
  int64_t stop_after_steps = 0;      // testing aid: stop the first unfinished stage after N steps
  int raise_signal_after_steps = 0;  // testing aid: raise raise_signal after N steps of a stage
  int raise_signal = 0;
  bool allow_recipe_change = false;  // --resume under a recipe that differs from the run's (recorded)
  int64_t max_batches_per_epoch = 0;  // smoke tests
  std::string stage_cache_dir;    // "" = off; see train/stage_cache.h
  std::string feature_cache_dir;  // teacher_cache = "file" (default <run.out_dir>/feature_cache)
  bool verify_replicas = false;   // data parallelism: compare every rank's weights after every step
  int64_t log_every_steps = -1;   // steps.jsonl every N-th step (0: none; < 0: the recipe's run.log_every_steps)
  int64_t read_every_steps = 0;   // host reads of the steps' loss (0: auto; see StageOptions)
};

struct RunResult {
  std::string run_dir;
  nlohmann::json summary;  // what summary.json holds
  bool completed = true;
};

RunResult run_recipe(const Recipe& recipe, const RunOptions& options);

}  // namespace retort

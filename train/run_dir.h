// A run directory: out_dir/<name>-<UTC timestamp> (or an explicit --out) holding
// resolved.toml (the recipe with every default), metrics.jsonl (one JSON object per
// evaluation, appended) and summary.json (final results per stage and model, rewritten
// atomically after each one so it is never half-written).
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>
#include "engine/machine.h"
#include "train/metrics.h"
#include "train/recipe.h"

namespace retort {

// The final result of training one model in one stage (summary.json).
struct ModelResult {
  std::string stage;
  std::string model;
  double test_top1 = NAN;  // percent
  double test_top5 = NAN;  // percent
  double wall_s = NAN;     // the stage's wall time
  int64_t parameters = 0;
};

// Writes `text` to `path` through a temporary file in the same directory and a rename,
// so readers see the old or the new content, never a mix.
void write_file_atomic(const std::filesystem::path& path, const std::string& text);

class RunDir {
 public:
  // Creates the directory (out_dir/<run.name>-<YYYYmmdd-HHMMSS>, with -2, -3 ... when taken,
  // or `explicit_dir` which must be absent or empty) and writes resolved.toml and an
  // initial summary.json with status "running".
  static RunDir create(const Recipe& recipe, const std::string& explicit_dir = "");
  // Re-opens an existing run directory to resume it: the results already in its
  // summary.json are kept, resolved.toml is rewritten, the status goes back to "running".
  static RunDir open(const Recipe& recipe, const std::string& dir);

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path file(const std::string& name) const { return path_ / name; }
  // Where a stage saves a trained model: <run>/checkpoints/<stage>-<model>.safetensors.
  std::filesystem::path checkpoint_path(const std::string& stage, const std::string& model) const;

  void append_metrics(const EvalRecord& record);
  // Adds (or replaces, same stage and model) a result and rewrites summary.json.
  void record_result(const ModelResult& result);
  // "running", "finished" or "failed: <why>"; rewrites summary.json.
  void set_status(const std::string& status);
  const std::vector<ModelResult>& results() const { return results_; }
  // Records what computes the run (summary.json "machine"). Returns the line of the machine a
  // resumed run's summary names when its numerics (numerics_key) differ from this one's (the
  // digits will differ from an uninterrupted run's), else "".
  std::string set_machine(const MachineDescription& machine);

  RunDir(RunDir&& other) noexcept;

 private:
  RunDir() = default;
  void write_summary();  // with mutex_ held

  std::filesystem::path path_;
  std::string recipe_name_, recipe_source_, started_utc_, status_ = "running";
  std::vector<ModelResult> results_;
  MachineDescription machine_;
  MachineDescription previous_machine_;  // summary.json's machine when resumed (device "" when none)
  std::mutex mutex_;
};

// UTC time as "20261123-052900" (for directory names) or ISO 8601 "2026-11-23T05:29:00Z".
std::string utc_stamp(bool iso = false);

}  // namespace retort

// A run directory: out_dir/<name>-<UTC timestamp> (or an explicit --out) holding
// resolved.toml (the recipe with every default), metrics.jsonl (one JSON object per
// evaluation, appended) and summary.json (final results per stage and model, rewritten
// atomically after each one so it is never half-written).
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include "engine/machine.h"
#include "train/metrics.h"
#include "train/recipe.h"
#include "train/run_lock.h"
#include <nlohmann/json.hpp>

namespace retort {

// The final result of training one model in one stage (summary.json).
struct ModelResult {
  std::string stage;
  std::string model;
  double test_top1 = NAN;  // percent
  double test_top5 = NAN;  // percent
  double wall_s = NAN;     // the stage's wall time
  int64_t parameters = 0;
  // With a validation split (train/model_selection.h): which model was kept ("best" or "last"; ""
  // without validation), the best epoch, and both models' validation and test top-1.
  std::string kept = std::string();
  int64_t best_epoch = 0, last_epoch = 0;
  double best_val_top1 = NAN, last_val_top1 = NAN, best_test_top1 = NAN, last_test_top1 = NAN;
};

// Writes `text` to `path` through a temporary file in the same directory and a rename,
// so readers see the old or the new content, never a mix.
void write_file_atomic(const std::filesystem::path& path, const std::string& text);

class RunDir {
 public:
  // Creates the directory (out_dir/<run.name>-<YYYYmmdd-HHMMSS>, with -2, -3 ... when taken,
  // or `explicit_dir` which must be absent or empty), locks it (train/run_lock.h) and writes
  // resolved.toml and an initial summary.json with status "running".
  static RunDir create(const Recipe& recipe, const std::string& explicit_dir = "");
  // Re-opens an existing run directory to resume it: locks it (another process writing into
  // it is refused, naming its pid), removes the temporary files a killed write left, cuts a
  // partial last line off metrics.jsonl, and compares the recipe with the run's resolved.toml:
  // a different recipe is refused, naming every key that differs, unless allow_recipe_change,
  // which records the change in summary.json ("recipe_changes", with where it took effect:
  // note_change_effect). The results already in summary.json are kept; resolved.toml becomes
  // the new recipe; the status goes back to "running". `say` reports what was repaired.
  static RunDir open(const Recipe& recipe, const std::string& dir, bool allow_recipe_change = false,
                     const std::function<void(const std::string&)>& say = {});

  // The view a data-parallel rank other than 0 has of rank 0's run directory: the same path
  // and (resuming) the same results, but it never writes (rank 0 alone writes the run).
  static RunDir replica(const std::string& dir, bool resumed);

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path file(const std::string& name) const { return path_ / name; }
  // Where a stage saves a trained model: <run>/checkpoints/<stage>-<model>.safetensors.
  std::filesystem::path checkpoint_path(const std::string& stage, const std::string& model) const;

  void append_metrics(const EvalRecord& record);
  // One training step's row (stage, epoch, step, loss, lr, images) appended to steps.jsonl.
  void append_step(const nlohmann::json& row);
  // Adds (or replaces, same stage and model) a result and rewrites summary.json.
  void record_result(const ModelResult& result);
  // "running", "finished" or "failed: <why>"; rewrites summary.json.
  void set_status(const std::string& status);
  const std::vector<ModelResult>& results() const { return results_; }
  // Records what computes the run (summary.json "machine"). Returns the line of the machine a
  // resumed run's summary names when its numerics (numerics_key) differ from this one's (the
  // digits will differ from an uninterrupted run's), else "".
  std::string set_machine(const MachineDescription& machine);
  // Where an allowed recipe change took effect: the first stage trained after the resume, and
  // the step it resumed at (0: from its start). Only the first call after open() records.
  void note_change_effect(const std::string& stage, int64_t step);

  RunDir(RunDir&& other) noexcept;
  ~RunDir();

 private:
  RunDir() = default;
  void write_summary();  // with mutex_ held
  void append_line(const std::string& name, const nlohmann::json& row);  // one JSON line to a .jsonl file
  void read_summary();   // a resumed run's results, machine and recipe changes
  void check_recipe(const Recipe& recipe, bool allow_change);

  std::filesystem::path path_;
  std::string recipe_name_, recipe_source_, started_utc_, status_ = "running";
  std::vector<ModelResult> results_;
  MachineDescription machine_;
  MachineDescription previous_machine_;  // summary.json's machine when resumed (device "" when none)
  nlohmann::json recipe_changes_ = nlohmann::json::array();  // summary.json "recipe_changes"
  bool change_effect_pending_ = false;
  bool writes_ = true;  // false on a replica
  std::unique_ptr<RunLock> lock_;
  std::mutex mutex_;
};

// UTC time as "20261123-052900" (for directory names) or ISO 8601 "2026-11-23T05:29:00Z".
std::string utc_stamp(bool iso = false);

}  // namespace retort

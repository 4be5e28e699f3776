// A run directory read into plain structs for `retort report` (train/report_html.h): the
// recipe's stages and losses (resolved.toml), the results (summary.json), the per-epoch
// evaluations (metrics.jsonl), the logged training steps (steps.jsonl) and the pictures a
// stage saved (pictures/<stage>.safetensors). Every file but one of summary.json and
// resolved.toml is optional; a missing value reads as NaN. A corrupt file throws a
// retort::Error naming the file (and the line of a JSON-lines file or of the TOML).
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>
#include "train/run_dir.h"

namespace retort::report {

// One loss term of a stage: its kind, weight and other settings ("T=4").
struct LossInfo {
  std::string name;
  double weight = NAN;
  std::vector<std::string> settings;
};

// One [[stages]] table of resolved.toml.
struct StageInfo {
  std::string name, train, arch;  // arch: the trained model's architecture
  std::vector<std::string> teachers;
  int64_t epochs = 0, batch_size = 0;
  std::string optimizer;  // e.g. "sgd lr 0.1, cosine"
  std::vector<LossInfo> losses;
};

// One row of steps.jsonl (every N-th training step).
struct StepRow {
  std::string stage;
  int64_t epoch = 0, step = 0;
  double loss = NAN, lr = NAN, images = NAN, images_per_s = NAN, train_top1 = NAN, grad_norm = NAN;
  std::map<std::string, double> terms, weights, stats;  // unweighted terms; weights; method stats
};

// One row of metrics.jsonl (an evaluation).
struct EvalRow {
  std::string stage, model, split;
  int64_t epoch = 0, step = 0;
  double loss = NAN, top1 = NAN, top5 = NAN, train_loss = NAN, train_top1 = NAN, images_per_s = NAN, wall_s = NAN;
  std::map<std::string, double> loss_stats;
};

// A tensor of a pictures file, as row-major doubles.
struct Array {
  std::vector<int64_t> shape;
  std::vector<double> values;
  int64_t dim(size_t i) const { return i < shape.size() ? shape[i] : 0; }
};

// pictures/<stage>.safetensors: "confusion", "images", "labels" and the loss terms' tensors.
struct Pictures {
  std::string stage, model, file;
  std::map<std::string, Array> tensors;
  const Array* find(const std::string& name) const;
};

struct RunData {
  std::filesystem::path dir;
  std::string recipe, status, machine, started_utc, source, dataset;
  std::vector<ModelResult> results;
  std::vector<StageInfo> stages;
  std::vector<StepRow> steps;
  std::vector<EvalRow> evals;
  std::vector<Pictures> pictures;
  std::vector<std::string> notes;  // what was missing or skipped (shown on the page)

  const StageInfo* stage(const std::string& name) const;
  // The stages in recipe order, then any other stage that has results, metrics or steps.
  std::vector<std::string> stage_names() const;
  std::vector<const StepRow*> steps_of(const std::string& stage) const;
  std::vector<const EvalRow*> evals_of(const std::string& stage) const;
  const Pictures* pictures_of(const std::string& stage) const;
};

// Mean and sample standard deviation (NaN below 2 values) of the finite values.
struct MeanStd {
  double mean = NAN, std = NAN;
  size_t n = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// One stage of one recipe across runs (seeds): which runs have it and their test top-1.
struct ResultGroup {
  std::string recipe, stage, model;
  std::vector<size_t> runs;  // indices into the runs
  std::vector<double> top1;  // test top-1 per run, same order
  MeanStd stats;
};
// Groups the runs' results by (recipe, stage), in order of first appearance.
std::vector<ResultGroup> group_results(const std::vector<RunData>& runs);

// Reads a run directory. Throws a retort::Error when `dir` is not a directory, holds neither
// summary.json nor resolved.toml, or holds a corrupt file (naming the file and line).
RunData read_run_dir(const std::filesystem::path& dir);

// The parts, exposed for tests: each throws naming `label` (and the line).
void read_summary(const std::string& text, const std::string& label, RunData& run);
void read_resolved(const std::string& text, const std::string& label, RunData& run);
std::vector<StepRow> read_steps(const std::string& text, const std::string& label, std::vector<std::string>& notes);
std::vector<EvalRow> read_evals(const std::string& text, const std::string& label, std::vector<std::string>& notes);
Pictures read_pictures(const std::filesystem::path& file);

}  // namespace retort::report

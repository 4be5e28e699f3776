// Stage cache: runs that share a stage reuse its trained weights instead of training again.
// Comparing transfer methods means many recipes that start with the same teacher stage (and
// the same student-alone baseline); with `retort run --stage-cache DIR`, the first run that
// trains such a stage stores the result under a key, and every later run with the same key
// loads it. The key covers everything the stage's outcome depends on: the data settings, the
// stage's own settings (name included: it seeds the loader), the run seed, the device kind and
// its numerics (CPU thread count and OpenBLAS kernel set, or the GPU), the smoke-test batch
// limit, the code (the bytes of the running executable: a rebuilt retort trains again), the
// data directory's and extra image folder's listings (path, size, mtime of every file), and the
// state of every model the stage reads, which is itself a key: a model's
// initial key (name, arch, options, seed, weights file bytes) or the key of the stage that
// last trained it. An entry holds the trained model's weights and its Dropout generators' states
// (so later stages draw the masks they would have drawn had this run trained it), its results
// and its metrics. Entries are directories written atomically (temp + rename).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "engine/device.h"
#include "engine/io/safetensors.h"
#include "models/model.h"
#include "train/metrics.h"
#include "train/recipe.h"

namespace retort {

struct CachedStage {
  std::map<std::string, Tensor> weights;  // the trained model's state dict
  StringMap rngs;                         // kModelFileRngPrefix + Dropout module path -> "<seed> <offset>"
  nlohmann::json result;                  // {"test_top1", "test_top5", "wall_s", "parameters", "run_dir", ...}
  std::vector<EvalRecord> metrics;        // the stage's evaluation records, in order
  std::map<std::string, Tensor> loss_state;  // the loss terms' learned tensors ("loss<i>.<name>"), may be empty
};

class StageCache {
 public:
  explicit StageCache(std::string dir = "") : dir_(std::move(dir)) {}
  bool enabled() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }

  // The key of a model before any stage trains it.
  static std::string initial_model_key(const Recipe& recipe, const std::string& model_name);
  // The key of a stage, given the current keys of the recipe's models.
  static std::string stage_key(const Recipe& recipe, const StageSpec& stage,
                               const std::map<std::string, std::string>& model_keys, Device device,
                               int64_t max_batches_per_epoch);

  std::optional<CachedStage> find(const std::string& key) const;
  // loss_state: the stage's loss terms' learned tensors, kept for later stages that read them.
  void store(const std::string& key, const models::Model& model, const nlohmann::json& result,
             const std::vector<EvalRecord>& metrics, const nn::NamedTensors& loss_state = {}) const;

 private:
  std::string dir_;
};

}  // namespace retort

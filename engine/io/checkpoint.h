// Training checkpoints: one safetensors file (written atomically) holding the model's named
// tensors under "model.<name>", the optimizer's state tensors under "optim.<name>", and in
// the metadata the progress (step, epoch, batch in epoch), the RNG (seed, offset), the stage
// name, the optimizer's scalars (exact round-trip decimal) and the caller's key/values.
#pragma once
#include <cstdint>
#include <string>
#include "engine/io/safetensors.h"

namespace retort {

class Generator;
class Optimizer;

struct TrainingProgress {
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;  // batches of `epoch` already consumed
  uint64_t rng_seed = 0;
  uint64_t rng_offset = 0;
  std::string stage;           // recipe stage name
  StringMap extra;             // the caller's own key/values

  void capture_rng(const Generator& gen);
  void restore_rng(Generator& gen) const;
};

// Writes model tensors (parameters and buffers, by name), the optimizer state (when
// optimizer is not null) and the progress to `path`, atomically.
void save_checkpoint(const std::string& path, const NamedTensors& model_tensors, const Optimizer* optimizer,
                     const TrainingProgress& progress);

// Loads `path` into the live model tensors (copied in place) and the optimizer (when not
// null) and returns the progress. Every live name must be in the file with the same shape
// and every "model." name in the file must be live; all missing, unexpected and mismatched
// names are listed in one retort::Error, and nothing is modified unless everything fits.
TrainingProgress load_checkpoint(const std::string& path, const NamedTensors& model_tensors, Optimizer* optimizer);

// The progress stored in a checkpoint, without touching any model.
TrainingProgress read_checkpoint_progress(const std::string& path);

}  // namespace retort

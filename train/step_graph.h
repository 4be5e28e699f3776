// CUDA graphs for the training step (`retort bench --cuda-graph`): the step is captured once,
// after its warm-up, and replayed as one graph launch per step, so the hundreds of kernel
// launches of a small model's step cost one launch of CPU time.
//
// A replay repeats exactly what was captured, so a step can be a graph only where nothing the
// host decides changes between steps. `graph_refusal` says, before any work, why a stage cannot
// (empty when it can): dropout (its random stream advances on the host), CRD (negative sampling
// and its bank's bookkeeping run on the host), a device other than CUDA. AdamW (and AFT's
// Adam-trained rho) can: the kernels read the step count from the device
// (engine/optim/step_counter.h), which each replay advances; a step in which a parameter's own
// count lagged the optimizer's (it missed a gradient) cannot, and its capture fails saying so. The benchmark also holds the batch and the
// learning rate fixed. Whatever the capture meets that cannot be captured (a host copy, a
// synchronisation) makes it fail with the reason, and the benchmark then runs eagerly and says so.
// The step's bookkeeping (train/step_health.h) writes fixed device buffers, so replays keep
// accumulating into what the host reads.
#pragma once
#include <functional>
#include <string>
#include "engine/device.h"
#include "train/recipe.h"

namespace retort {

// Why this stage's step cannot be replayed as a CUDA graph ("" when it can).
std::string graph_refusal(const Recipe& recipe, const StageSpec& stage, Device device);

class StepGraph {
 public:
  StepGraph() = default;
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Captures one call of `step` and runs it once (capturing records the work without doing it).
  // On failure nothing is kept, the reason is returned, and the caller runs eagerly.
  std::string capture_and_run(const std::function<void()>& step);
  void replay();
  bool ready() const { return graph_ != nullptr; }

 private:
  void* graph_ = nullptr;
};

}  // namespace retort

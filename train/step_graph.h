// CUDA graphs for the training step (`retort bench --cuda-graph`, and training with the stage
// key cuda_graph: train/graph_steps.h): the step is captured once, after its warm-up, and
// replayed as one graph launch per step, so the hundreds of kernel launches of a small model's
// step cost one launch of CPU time.
//
// A replay repeats exactly what was captured, so a step can be a graph only where nothing the
// host decides changes between steps. `graph_refusal` says, before any work, why a stage cannot
// (empty when it can): dropout (its random stream advances on the host), CRD (negative sampling
// and its bank's bookkeeping run on the host), a device other than CUDA; check_graph_stage adds
// training's conditions. AdamW (and AFT's Adam-trained rho) can: the kernels read the step
// count from the device (engine/optim/step_counter.h), which each replay advances; a step in
// which a parameter's own count lagged the optimizer's (it missed a gradient) cannot, and its
// capture fails saying so. The learning rates live on the device too
// (engine/optim/device_rates.h), written before each replay. Whatever the capture meets that
// cannot be captured (a host copy, a synchronisation) makes it fail with the reason: the
// benchmark then runs eagerly and says so, training stops. The step's bookkeeping
// (train/step_health.h) writes fixed device buffers, so replays keep accumulating into what the
// host reads.
#pragma once
#include <functional>
#include <string>
#include "engine/device.h"
#include "engine/optim/optimizer.h"
#include "train/recipe.h"

namespace retort {

// Why this stage's step cannot be replayed as a CUDA graph ("" when it can).
std::string graph_refusal(const Recipe& recipe, const StageSpec& stage, Device device);
// Before any work: a stage with cuda_graph = true must be able to train as replays (a CUDA device,
// one process and one micro-batch, no teacher cache read by the batch's positions, nothing
// graph_refusal names); the error names the stage and its line, and how to run it instead.
void check_graph_stage(const Recipe& recipe, const StageSpec& stage, Device device, int ranks);
// Inside a capture, after the captured step: fails, and so fails the capture, when the step's
// optimizer baked a parameter's own step count into a launch (it lagged the device count: it
// missed a gradient), which replays would not advance.
void require_steps_on_device(const Optimizer& optimizer);

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

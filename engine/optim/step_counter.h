// DeviceStepCounter: an optimizer's step count kept as one f64 on the parameters' device, for
// the update rules whose arithmetic depends on the step (AdamW's bias correction, also under
// another optimizer: AFT's Adam-trained rho). Each step queues `count += 1` before the updates,
// and their kernels read the count where they run (kernels/optim.h), so a step captured as a
// CUDA graph (train/step_graph.h) takes each replay's own step instead of the one it was
// captured at. A host mirror counts what was queued, so no read is needed to know the value.
//
// A parameter's own step (its host-side count, which checkpoints keep) is the counter's only
// while the parameter has had a gradient at every step since the counter began; one that missed
// a step uses its own count, baked into the launch, and `in_lockstep()` turns false: such a step
// is still exact eagerly, but a graph of it would not be, so the graph is refused.
#pragma once
#include "engine/tensor.h"

namespace retort {

class DeviceStepCounter {
 public:
  // Starts an optimizer step: queues count += 1 when the counter exists.
  void begin_step();
  // The count to hand the kernels of a parameter on `device` whose step (after this step's
  // increment) is `param_step`: the counter's element when it matches, creating the counter at
  // `param_step` on the step's first such parameter; null otherwise (the parameter lags).
  const double* pointer_for(int64_t param_step, Device device);
  // True unless a parameter of the last step had to use its own step count.
  bool in_lockstep() const { return lockstep_; }
  // A replayed step (a CUDA graph) queued count += 1 on the device: the mirror follows.
  void note_replayed_step() {
    if (count_.defined()) ++mirror_;
  }
  // Forgets the counter (state imported from a checkpoint: the next step starts it again).
  void reset();
  // The queued count (what the device holds once the queued work has run); 0 before any.
  int64_t mirror() const { return mirror_; }
  const Tensor& count() const { return count_; }

 private:
  Tensor count_;  // f64 [1] on the parameters' device; undefined until first needed
  int64_t mirror_ = 0;
  bool lockstep_ = true;
};

}  // namespace retort

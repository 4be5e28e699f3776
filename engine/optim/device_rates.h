// DeviceRates: each parameter group's learning rate kept as one f64 on the parameters' device,
// which the multi-tensor update kernels read where they run (kernels/optim.h). A schedule sets
// the rate on the host each step; `write` queues a fill of the device value only when it
// changed, before the step's updates, outside any captured work. So a step captured as a CUDA
// graph (train/step_graph.h) follows the schedule on each replay, where a rate baked into the
// launch would stay the one it was captured with. On the CPU the kernels compute the same bits
// as with the rate passed by value.
#pragma once
#include <cstddef>
#include <vector>
#include "engine/tensor.h"

namespace retort {

class DeviceRates {
 public:
  // Makes group `group`'s value on `device` equal `lr` (created at the first call, filled again
  // only when the value changed). Never while a CUDA graph is being captured: the fill would be
  // recorded with its value.
  void write(size_t group, double lr, Device device);
  // The element the kernels read for `group` on `device` (write() must have made it).
  const double* pointer(size_t group, Device device) const;
  // Fills queued since construction (tests: a rate that did not change is not written again).
  int64_t fills() const { return fills_; }

 private:
  struct Rate {
    size_t group;
    Device device;
    double value;
    Tensor on_device;  // f64 [1]
  };
  std::vector<Rate> rates_;
  int64_t fills_ = 0;
};

}  // namespace retort

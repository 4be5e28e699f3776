// DeviceStepCounter (see engine/optim/step_counter.h).
#include "engine/optim/step_counter.h"

namespace retort {

void DeviceStepCounter::begin_step() {
  lockstep_ = true;
  if (!count_.defined()) return;
  count_.add_(1.0);
  ++mirror_;
}

const double* DeviceStepCounter::pointer_for(int64_t param_step, Device device) {
  if (!count_.defined()) {
    count_ = Tensor::full({1}, double(param_step), DType::f64, device);
    mirror_ = param_step;
  }
  if (param_step != mirror_ || device != count_.device()) {
    lockstep_ = false;
    return nullptr;
  }
  return static_cast<const double*>(count_.raw_data());
}

void DeviceStepCounter::reset() {
  count_ = Tensor();
  mirror_ = 0;
  lockstep_ = true;
}

}  // namespace retort

// DeviceRates (see engine/optim/device_rates.h).
#include "engine/optim/device_rates.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {

void DeviceRates::write(size_t group, double lr, Device device) {
  for (Rate& r : rates_) {
    if (r.group != group || r.device != device) continue;
    if (r.value == lr) return;
    RETORT_CHECK(!cuda::capturing(), "the learning rate of group {} changed from {} to {} while a CUDA graph was being "
                 "captured (write it before the capture)", group, r.value, lr);
    NoGradGuard no_grad;
    r.on_device.fill_(lr);
    r.value = lr;
    ++fills_;
    return;
  }
  rates_.push_back({group, device, lr, Tensor::full({1}, lr, DType::f64, device)});
  ++fills_;
}

const double* DeviceRates::pointer(size_t group, Device device) const {
  for (const Rate& r : rates_)
    if (r.group == group && r.device == device) return static_cast<const double*>(r.on_device.raw_data());
  fail("DeviceRates: no learning rate of group {} on {} was written", group, device.str());
}

}  // namespace retort

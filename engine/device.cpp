// Device parsing and the "is a GPU usable here" question, answered once per process.
#include "engine/device.h"
#include <charconv>
#include <cstdio>
#include <mutex>
#include "engine/error.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {

int cuda_device_count() {
  static int n = cuda::device_count();
  return n;
}
bool cuda_available() { return cuda_device_count() > 0; }
std::string cuda_unavailable_reason() { return cuda_available() ? "" : cuda::unavailable_reason(); }

Device resolve_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "auto") {
    if (cuda_available()) {
      cuda::use_device(0);
      return Device::cuda(0);
    }
    static std::once_flag said;
    std::call_once(said, [] {
      std::fprintf(stderr, "[retort] device auto: no usable GPU (%s); running on the CPU\n",
                   cuda_unavailable_reason().c_str());
    });
    return Device::cpu();
  }
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name.size() > 4) {
      RETORT_CHECK(name[4] == ':' && name.size() > 5, "unknown device '{}': use auto, cpu, cuda or cuda:N", name);
      const std::string digits = name.substr(5);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
      RETORT_CHECK(ec == std::errc() && end == digits.data() + digits.size(),
                   "unknown device '{}': use auto, cpu, cuda or cuda:N (N a GPU index)", name);
    }
    RETORT_CHECK(cuda_available(), "device '{}' was asked for but CUDA is not usable here: {}. Use --device cpu or auto.",
                 name, cuda_unavailable_reason());
    RETORT_CHECK(index >= 0 && index < cuda_device_count(), "device '{}' does not exist: {} GPU(s) visible", name,
                 cuda_device_count());
    cuda::use_device(index);  // binds the process to it: kernels, memory and handles all go there
    return Device::cuda(index);
  }
  fail("unknown device '{}': use auto, cpu, cuda or cuda:N", name);
}

}  // namespace retort
